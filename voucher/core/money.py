"""Money is integer fen. Conversion to and from yuan happens only here, at the edges."""
from __future__ import annotations

import re
from decimal import Decimal

from voucher.core.errors import InvalidAmount

# Up to 12 integer digits (under a trillion yuan, far inside BIGINT fen) and at most two decimals;
# thousands separators allowed. ASCII digits only, after folding a Chinese IME's full-width input.
_YUAN = re.compile(r"^(?:[0-9]{1,3}(?:,[0-9]{3}){1,3}|[0-9]{1,12})(?:\.[0-9]{1,2})?$")
_FULL_WIDTH = str.maketrans("０１２３４５６７８９．，", "0123456789.,")


def parse_yuan(text: str | None, *, field: str = "金额", allow_zero: bool = False) -> int:
    """Parse user input in yuan ("100", "99.5", "1,000.00", "¥20") into fen; refuse anything else."""
    raw = (text or "").translate(_FULL_WIDTH).strip().lstrip("¥￥").strip()
    if not raw:
        raise InvalidAmount(f"请填写{field}")
    if not _YUAN.match(raw):
        raise InvalidAmount(f"{field}格式不正确：请输入不超过两位小数的元金额，例如 100 或 99.50")
    fen_value = int(Decimal(raw.replace(",", "")) * 100)
    if fen_value == 0 and not allow_zero:
        raise InvalidAmount(f"{field}必须大于 0")
    return fen_value


def format_yuan(fen_value: int | None, *, grouping: bool = True) -> str:
    """1234567 -> '12,345.67'. Negative amounts keep their sign."""
    if fen_value is None:
        return "—"
    sign = "-" if fen_value < 0 else ""
    whole, cents = divmod(abs(int(fen_value)), 100)
    whole_text = f"{whole:,}" if grouping else str(whole)
    return f"{sign}{whole_text}.{cents:02d}"


def to_yuan(fen_value: int) -> Decimal:
    """Fen as an exact Decimal of yuan, for a number cell in an export (never a float)."""
    return Decimal(int(fen_value)) / 100


def split_by_shares(amount: int, shares: list[int]) -> list[int]:
    """Split fen across co-funders in proportion to integer shares, losing and creating no fen.

    Largest remainder: each part is floored, then the leftover fen go one each to the parts with the
    largest remainders (ties to the earlier part, so the result is deterministic).
    """
    if amount < 0:
        raise ValueError("amount must be non-negative")
    if not shares or any(s < 0 for s in shares) or sum(shares) == 0:
        raise ValueError("shares must be non-negative and not all zero")
    total = sum(shares)
    parts = [amount * s // total for s in shares]
    remainders = [amount * s % total for s in shares]
    leftover = amount - sum(parts)
    order = sorted(range(len(shares)), key=lambda i: (-remainders[i], i))
    for i in order[:leftover]:
        parts[i] += 1
    return parts


def split_within(amount: int, shares: list[int], ceilings: list[int]) -> list[int]:
    """Split like split_by_shares, but no part may exceed its ceiling (what that funder reserved).

    Largest-remainder splits are not monotone in the amount (the Alabama paradox), so the split of a
    smaller subsidy can ask one funder for a fen more than it reserved for the voucher; that fen is
    moved to the next funder with room. Requires amount <= sum(ceilings).
    """
    if amount > sum(ceilings):
        raise ValueError("amount exceeds the ceilings")
    parts = split_by_shares(amount, shares)
    excess = 0
    for i, ceiling in enumerate(ceilings):
        if parts[i] > ceiling:
            excess += parts[i] - ceiling
            parts[i] = ceiling
    for i, ceiling in enumerate(ceilings):
        if excess == 0:
            break
        room = min(ceiling - parts[i], excess)
        parts[i] += room
        excess -= room
    return parts
