"""The least order a voucher forces: the mechanical floor of leverage (docs/leverage.md). One SQL
expression, read by the live figures (leverage.py) and the daily rollup (rollup.py) alike."""
from __future__ import annotations

from sqlalchemy import case, func

from voucher.campaigns.models import VoucherProduct
from voucher.merchants.models import Redemption


def _max(a, b):
    return case((a > b, a), else_=b)


#: per redemption, the least order its voucher forced: X for 满X减Y (at least the subsidy itself);
#: for a percentage voucher, the order that yields its subsidy (rounded up to the fen)
FORCED_ORDER = case(
    (VoucherProduct.kind == "percentage",
     _max(func.coalesce(VoucherProduct.threshold_fen, 0),
          (Redemption.subsidy_fen * 10000 + VoucherProduct.percent_bp - 1) // VoucherProduct.percent_bp)),
    else_=_max(func.coalesce(VoucherProduct.threshold_fen, 0), Redemption.subsidy_fen),
)
