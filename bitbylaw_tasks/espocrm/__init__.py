"""The EspoCRM half of the product: its extension package and `bitbylaw espocrm setup` (docs/espocrm-extension.md)."""
