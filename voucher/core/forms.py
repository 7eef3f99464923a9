"""Form fields shared across domains."""
from __future__ import annotations

import re

from wtforms import StringField
from wtforms.validators import ValidationError

from voucher.core.errors import InvalidAmount
from voucher.core.money import parse_yuan


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
