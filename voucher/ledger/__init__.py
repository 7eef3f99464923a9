"""Double-entry ledger: the only writer of money. Postings are append-only; balances are derived."""
