"""Bank-statement reconciliation: import the bank's statement, match its lines to settlement batches,
and let a finance officer resolve what does not match."""
