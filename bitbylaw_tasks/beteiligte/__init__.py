"""beteiligte."""
