"""Form fields shared across domains."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import date
from typing import TypeVar

# types-WTForms 3.2 predates SelectChoice (WTForms 3.3)
from wtforms import SelectChoice, StringField  # type: ignore[attr-defined]
from wtforms.validators import ValidationError

from voucher.core.errors import DomainError, InvalidAmount, InvalidInput
from voucher.core.money import parse_yuan

T = TypeVar("T")
_ID = re.compile(r"[0-9]{1,9}")
#: the years a report's date range can mean; outside them date arithmetic (a day after 9999-12-31) fails
REPORT_YEARS = range(2000, 2100)


def keeper(errors: list[InvalidInput]) -> Callable[[Callable[[], T], T], T]:
    """kept(parse, default): parse()'s value, or `default` with the refusal added to `errors`. A report's
    filter keeps every field that is right and says why it left one out, instead of clearing them all."""
    def kept(parse: Callable[[], T], default: T) -> T:
        try:
            return parse()
        except InvalidInput as error:
            errors.append(error)
            return default

    return kept


def parse_day(text: str, label: str) -> date | None:
    """An ISO day (YYYY-MM-DD) for a report filter, or None for an empty text; InvalidInput otherwise."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{label}格式应为 YYYY-MM-DD") from None
    if day.year not in REPORT_YEARS:
        raise InvalidInput(f"{label}超出范围（{REPORT_YEARS.start}–{REPORT_YEARS.stop - 1} 年）")
    return day


def reason_text(text: str | None, *, missing: str | DomainError, label: str = "原因", limit: int = 200) -> str:
    """A person's reason, as it is kept: runs of whitespace (line breaks too) made one space. Refused when
    nothing is left (`missing` says what to write, or is the error to raise) or longer than `limit`."""
    reason = " ".join((text or "").split())
    if not reason:
        raise missing if isinstance(missing, DomainError) else InvalidInput(missing)
    if len(reason) > limit:
        raise InvalidInput(f"{label}不能超过 {limit} 个字（现为 {len(reason)} 个字）")
    return reason


def parse_id(text: str | None) -> int | None:
    """A positive whole number of at most 9 ASCII digits (a record's id, a year, a count), else None.
    Not str.isdigit(): it admits digits such as "²" that int() then refuses."""
    return int(text) if text and _ID.fullmatch(text) else None


def as_choices(pairs: Iterable[tuple[object, str]]) -> list[SelectChoice]:
    """(value, label) pairs as the options of a SelectField, SelectMultipleField or RadioField, declared or
    set in a view: `choices=as_choices(LABELS.items())`. WTForms 3.3 deprecates choices given as tuples
    (removed in 3.4); a value keeps its type (an id stays an int, for coerce=int)."""
    return [SelectChoice(value, label) for value, label in pairs]


def _field_name(field) -> str:
    # "订单金额（元）" -> "订单金额": the unit is already in the message.
    return str(field.label.text).split("（")[0]


class YuanField(StringField):
    """Typed in yuan (at most two decimals), held in fen as `.fen`; anything else is a Chinese error.

    With optional=True an empty box is allowed and gives fen None.
    """

    def __init__(self, label=None, validators=None, allow_zero: bool = False, optional: bool = False, **kwargs):
        super().__init__(label, validators, **kwargs)
        self.allow_zero = allow_zero
        self.optional = optional
        self.fen: int | None = None

    def pre_validate(self, form) -> None:
        self.fen = None
        if self.optional and not (self.data or "").strip():
            return
        try:
            self.fen = parse_yuan(self.data, field=_field_name(self), allow_zero=self.allow_zero)
        except InvalidAmount as error:
            raise ValidationError(error.message) from None


_PERCENT = re.compile(r"^[0-9]{1,3}(?:\.[0-9]{1,2})?$")


class PercentField(StringField):
    """A percentage typed as "10" or "12.5", held in basis points as `.bp` (1000 = 10%)."""

    def __init__(self, label=None, validators=None, **kwargs):
        super().__init__(label, validators, **kwargs)
        self.bp: int | None = None

    def pre_validate(self, form) -> None:
        self.bp = None
        raw = (self.data or "").strip().rstrip("%％").strip()
        if not raw:
            return
        if not _PERCENT.match(raw):
            raise ValidationError(f"{_field_name(self)}格式不正确：请输入百分数，例如 10 或 12.5")
        whole, _, frac = raw.partition(".")
        self.bp = int(whole) * 100 + int((frac + "00")[:2])
        if not 1 <= self.bp <= 10000:
            raise ValidationError(f"{_field_name(self)}应在 0.01 到 100 之间")
