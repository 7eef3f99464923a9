"""Paying merchants what they redeemed: daily batches, payout files, confirmation into the ledger."""
