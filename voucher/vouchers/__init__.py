"""Vouchers: minting, claims by citizens, signed QR tokens and typeable codes."""
