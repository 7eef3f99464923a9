"""Form fields shared across domains."""
from __future__ import annotations

from wtforms import StringField
from wtforms.validators import ValidationError

from voucher.core.errors import InvalidAmount
from voucher.core.money import parse_yuan


class YuanField(StringField):
    """Typed in yuan (at most two decimals), held in fen as `.fen`; anything else is a Chinese error."""

    def __init__(self, label=None, validators=None, allow_zero: bool = False, **kwargs):
        super().__init__(label, validators, **kwargs)
        self.allow_zero = allow_zero
        self.fen: int | None = None

    def pre_validate(self, form) -> None:
        try:
            # "订单金额（元）" -> "订单金额": the unit is already in the message.
            name = str(self.label.text).split("（")[0]
            self.fen = parse_yuan(self.data, field=name, allow_zero=self.allow_zero)
        except InvalidAmount as error:
            raise ValidationError(error.message) from None
