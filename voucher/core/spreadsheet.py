"""Text bound for a spreadsheet cell, made inert.

A value someone typed (a merchant's name from its application, a remark) that starts with =, +, -, @
or a control character is read by Excel and WPS as a formula when the file is opened (CSV injection:
`=HYPERLINK(...)`, `=cmd|...`). Such a value gets a leading apostrophe, the spreadsheet's own mark for
"this is text", which shows the value unchanged and runs nothing.
"""
from __future__ import annotations

from typing import Any

_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")


def inert(value: Any) -> Any:
    """Strings that a spreadsheet would evaluate get a leading apostrophe; everything else as it is.
    Numbers stay numbers: a negative amount is a number cell, not text."""
    if isinstance(value, str) and value.startswith(_TRIGGERS):
        return "'" + value
    return value


def inert_row(values: list[Any]) -> list[Any]:
    return [inert(v) for v in values]
