"""How a bank account number and a contact phone are shown on a page: masked.

The full number is for the payout file the bank imports (voucher/settlement/payout_file.py) and
nowhere else: not on a page, in an audit record or in a log line. The masked form hides the length too.
"""
from __future__ import annotations

import re


def mask_account_no(number: str | None) -> str:
    """"6217 **** **** 1234"; a short number keeps only its last four digits: "**** 5678"."""
    digits = re.sub(r"[\s-]", "", number or "")
    if not digits:
        return ""
    if len(digits) < 12:
        return f"**** {digits[-4:]}" if len(digits) > 4 else "****"
    return f"{digits[:4]} **** **** {digits[-4:]}"


def mask_phone(number: str | None) -> str:
    """"138****8000": the carrier prefix and the last four; a landline keeps its area code and last four."""
    text = number or ""
    if not text:
        return ""
    if "-" in text:
        area, local = text.split("-", 1)
        return f"{area}-****{local[-4:]}"
    return f"{text[:3]}****{text[-4:]}" if len(text) > 7 else "****"
