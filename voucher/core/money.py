"""Money is integer fen. Conversion to and from yuan happens only here, at the edges."""
from __future__ import annotations

import re
import unicodedata
from decimal import ROUND_HALF_UP, Decimal

from voucher.core.errors import InvalidAmount
from voucher.core.typed_text import clean

#: Digits with thousands separators in groups of three, or without; then decimals. More than two
#: decimals are read only when the extra ones are zeros ("1.500", as some banks write).
_AMOUNT = re.compile(r"^(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.([0-9]+))?$")
#: "1 000" or "12 50": a space between digits could be a separator or a slip; refused, never guessed
_SPACED_DIGITS = re.compile(r"[0-9]\s+[0-9]")
#: a trillion yuan: far inside BIGINT fen, far above any real amount; longer digit strings are typos
LIMIT_FEN = 10**14


class AmountUnreadable(InvalidAmount):
    """Text that is not an amount of yuan. `reason` says why, for a reader that words its own message:
    blank | format | decimals | range | negative."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def read_fen(text: str | None, *, signed: bool = False, what: str = "金额") -> int:
    """The one reader of yuan written by a person, a spreadsheet or a bank, into fen.

    Reads "100", "99.5", "1,000.00", "¥20", "20元", a Chinese IME's "１２．５" and "99。5", spaces
    around the number (not between digits); with `signed`, "-5.00", "+5", "(5.00)" and "-¥5" too. Never through a float. Raises
    AmountUnreadable with a message naming `what` and quoting the text."""
    raw = clean(text).removesuffix("元").lstrip("¥")
    if _SPACED_DIGITS.search(unicodedata.normalize("NFKC", text or "")):
        raise AmountUnreadable("format", f"{what}「{text}」不是有效金额")
    negative = False
    if raw.startswith(("+", "-")):
        negative, raw = raw[0] == "-", raw[1:]
    elif raw.startswith("(") and raw.endswith(")"):
        negative, raw = True, raw[1:-1]
    raw = raw.lstrip("¥")
    if not raw:
        raise AmountUnreadable("blank", f"请填写{what}")
    if negative and not signed:
        raise AmountUnreadable("negative", f"{what}「{text}」为负数")
    match = _AMOUNT.match(raw)
    if not match:
        raise AmountUnreadable("format", f"{what}「{text}」不是有效金额")
    if len((match.group(1) or "").rstrip("0")) > 2:
        raise AmountUnreadable("decimals", f"{what}「{text}」超过两位小数")
    fen_value = int(Decimal(raw.replace(",", "")) * 100)
    if fen_value >= LIMIT_FEN:
        raise AmountUnreadable("range", f"{what}「{text}」超出允许范围")
    return -fen_value if negative else fen_value


def parse_yuan(text: str | None, *, field: str = "金额", allow_zero: bool = False) -> int:
    """A form's amount in yuan, into fen: what read_fen reads, positive (or zero where allowed)."""
    try:
        fen_value = read_fen(text, what=field)
    except AmountUnreadable as error:
        if error.reason == "blank":
            raise
        raise InvalidAmount(f"{field}格式不正确：请输入不超过两位小数的元金额，例如 100 或 99.50") from None
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


def short_yuan(fen_value: int) -> str:
    """An amount as a rule is read aloud: 100000 yuan as "10万", 15000 as "1.5万", 2500 as "2500", 99.5
    as "99.5" (满10万减3000, not 满100000减3000). Exact: 万 only where it loses nothing."""
    whole, cents = divmod(int(fen_value), 100)
    if cents:
        return f"{whole}.{cents:02d}".rstrip("0")
    wan, rest = divmod(whole, 10_000)
    if wan and rest % 1_000 == 0:  # 10万, 1.5万; never a rounded 万
        return f"{wan}万" if rest == 0 else f"{wan}.{rest // 1_000}万"
    return str(whole)


def yuan_per(fen_value: int, count: int, places: int = 2) -> str:
    """An amount shared over a count (per resident, per merchant) in yuan, rounded half up to `places`
    decimals and grouped: 12345 fen over 1000 people -> '0.12'. '—' when there is nobody to share it."""
    if count <= 0:
        return "—"
    value = (Decimal(int(fen_value)) / 100 / int(count)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return f"{value:,.{places}f}"


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
