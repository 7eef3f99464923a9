"""Vouchers: minting (opening a release), lottery draws, claims by citizens, signed QR tokens and typeable codes,
expiry, and closing a campaign (its vouchers withdrawn)."""
