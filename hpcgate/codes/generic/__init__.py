"""Any program run by its own command: parameters as data, no validation."""
