"""Merchants, their stores, cashiers and terminals (redemption at the counter is voucher/counter/)."""
