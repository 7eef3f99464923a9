"""Reports for finance and oversight, read from the ledger and the records."""
