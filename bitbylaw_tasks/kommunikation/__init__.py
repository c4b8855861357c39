"""kommunikation."""
