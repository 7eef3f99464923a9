"""The counter: redemption and its reversal, and the risk flags scanned from redemptions."""
