"""How a bank account number is shown on a page: the bank's first four digits and the last four.

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
