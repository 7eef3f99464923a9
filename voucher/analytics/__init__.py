"""Read-only figures: budget execution, vouchers and leverage."""
