"""Merchants, their stores and cashiers, and redemption at the counter."""
