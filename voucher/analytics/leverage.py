"""Leverage (杠杆率): consumption driven per yuan, gross and honestly labelled (DESIGN.md section 6).

Gross figures count whole orders in which a voucher was redeemed; people would have bought part of
that anyway, so the page shows beside them the mechanical floor a 满X减Y voucher forces (an order of
at least X per Y of subsidy) and the excess over it, and the causal estimate separately.

Claims are dated by when they were claimed, redemptions by when they were redeemed: a date range
filters each side by its own date. Ratios are floats for display; every amount stays integer fen.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Select, String, case, cast, func, literal, select

from voucher.campaigns.models import Campaign, Measure, Release, VoucherProduct
from voucher.core.clock import local_day_end_utc, local_day_start_utc
from voucher.core.db import db
from voucher.core.money import format_yuan
from voucher.merchants.models import Merchant, Redemption, Store
from voucher.vouchers.models import Voucher


@dataclass(frozen=True)
class LeverageFilter:
    campaign_id: int | None = None
    date_from: date | None = None
    date_until: date | None = None


@dataclass
class Figures:
    vouchers_claimed: int = 0
    issued_fen: int = 0
    vouchers_redeemed: int = 0
    subsidy_paid_fen: int = 0
    driven_fen: int = 0
    #: the spending the vouchers' thresholds forced at the least: max(X, Y) per 满X减Y redemption
    floor_driven_fen: int = 0
    merchants: int = 0
    #: None on a breakdown by merchant (category, district, size): a claim has no merchant yet
    attributable_issue: bool = True

    @staticmethod
    def _ratio(numerator: int, denominator: int) -> float | None:
        return numerator / denominator if denominator else None

    @property
    def leverage_on_issued(self) -> float | None:
        return self._ratio(self.driven_fen, self.issued_fen) if self.attributable_issue else None

    @property
    def leverage_on_paid(self) -> float | None:
        return self._ratio(self.driven_fen, self.subsidy_paid_fen)

    @property
    def co_payment_ratio(self) -> float | None:
        return self._ratio(self.driven_fen - self.subsidy_paid_fen, self.subsidy_paid_fen)

    @property
    def redemption_rate(self) -> float | None:
        return self._ratio(self.vouchers_redeemed, self.vouchers_claimed) if self.attributable_issue else None

    @property
    def breakage(self) -> float | None:
        rate = self.redemption_rate
        return None if rate is None else 1 - rate

    @property
    def floor(self) -> float | None:
        """The mechanical floor of leverage on issued (on paid where issue is not attributable)."""
        denominator = self.issued_fen if self.attributable_issue else self.subsidy_paid_fen
        return self._ratio(self.floor_driven_fen, denominator)

    @property
    def excess(self) -> float | None:
        """Leverage above the floor: what the thresholds alone do not explain."""
        gross = self.leverage_on_issued if self.attributable_issue else self.leverage_on_paid
        return None if gross is None or self.floor is None else gross - self.floor


def _max(a, b):
    return case((a > b, a), else_=b)


#: per redemption, the least order its voucher forced: X for 满X减Y (at least the subsidy itself);
#: for a percentage voucher, the order that yields its subsidy (rounded up to the fen)
_FORCED = case(
    (VoucherProduct.kind == "percentage",
     _max(func.coalesce(VoucherProduct.threshold_fen, 0),
          (Redemption.subsidy_fen * 10000 + VoucherProduct.percent_bp - 1) / VoucherProduct.percent_bp)),
    else_=_max(func.coalesce(VoucherProduct.threshold_fen, 0), Redemption.subsidy_fen),
)

DIMENSIONS = {
    "measure": ("措施", True),
    "campaign": ("活动", True),
    "round": ("场次", True),
    "day": ("日期", True),
    "category": ("商户类别", False),
    "district": ("区县", False),
    "size": ("商户规模", False),
}


def _claims(f: LeverageFilter) -> Select:
    query = select(func.count(Voucher.id), func.coalesce(func.sum(Voucher.face_value_fen), 0)).where(
        Voucher.claimed_at.is_not(None))
    return _filtered(query, f, Voucher.claimed_at, Voucher.campaign_id)


def _redemptions(f: LeverageFilter) -> Select:
    query = (
        select(func.count(Redemption.id), func.coalesce(func.sum(Redemption.subsidy_fen), 0),
               func.coalesce(func.sum(Redemption.order_amount_fen), 0), func.coalesce(func.sum(_FORCED), 0),
               func.count(Redemption.merchant_id.distinct()))
        .join(VoucherProduct, VoucherProduct.campaign_id == Redemption.campaign_id)
        .where(Redemption.reversed_at.is_(None))
    )
    return _filtered(query, f, Redemption.created_at, Redemption.campaign_id)


def _filtered(query: Select, f: LeverageFilter, when, campaign_column) -> Select:
    if f.campaign_id is not None:
        query = query.where(campaign_column == f.campaign_id)
    if f.date_from is not None:
        query = query.where(when >= local_day_start_utc(f.date_from))
    if f.date_until is not None:
        query = query.where(when < local_day_end_utc(f.date_until))
    return query


def headline(f: LeverageFilter = LeverageFilter()) -> Figures:
    claimed, issued = db.session.execute(_claims(f)).one()
    redeemed, paid, driven, forced, merchants = db.session.execute(_redemptions(f)).one()
    return Figures(int(claimed), int(issued), int(redeemed), int(paid), int(driven), int(forced), int(merchants))


def _day(column):
    """The local (UTC+8) calendar day of a naive UTC timestamp, on both databases."""
    if db.session.get_bind().dialect.name == "postgresql":
        return func.to_char(column + func.make_interval(0, 0, 0, 0, 8), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", column, "+8 hours")


def breakdown(dimension: str, f: LeverageFilter = LeverageFilter()) -> list[tuple[str, Figures]]:
    """Figures per value of one dimension, in a stable order."""
    if dimension not in DIMENSIONS:
        raise ValueError(dimension)
    attributable = DIMENSIONS[dimension][1]
    rows: dict[str, Figures] = {}

    def row(label) -> Figures:
        return rows.setdefault(str(label), Figures(attributable_issue=attributable))

    redemption_key, claim_key, joins = _keys(dimension)
    query = _redemptions(f).add_columns(redemption_key).group_by(redemption_key)
    for join in joins:
        query = join(query)
    for redeemed, paid, driven, forced, merchants, key in db.session.execute(query):
        figures = row(key)
        figures.vouchers_redeemed, figures.subsidy_paid_fen, figures.driven_fen = int(redeemed), int(paid), int(driven)
        figures.floor_driven_fen, figures.merchants = int(forced), int(merchants)
    if claim_key is not None:
        claims = _claims(f).add_columns(claim_key).group_by(claim_key)
        if dimension in ("measure", "round"):
            claims = claims.join(Release, Release.id == Voucher.release_id).join(
                Campaign, Campaign.id == Voucher.campaign_id).join(Measure, Measure.id == Campaign.measure_id)
        elif dimension == "campaign":
            claims = claims.join(Campaign, Campaign.id == Voucher.campaign_id)
        for claimed, issued, key in db.session.execute(claims):
            figures = row(key)
            figures.vouchers_claimed, figures.issued_fen = int(claimed), int(issued)
    return sorted(rows.items())


def _keys(dimension: str):
    """(key over redemptions, key over claims or None, joins the redemption query needs)."""
    def via_voucher(query):
        return query.join(Voucher, Voucher.id == Redemption.voucher_id)

    def via_campaign(query):
        return query.join(Campaign, Campaign.id == Redemption.campaign_id)

    def via_measure(query):
        return via_campaign(query).join(Measure, Measure.id == Campaign.measure_id)

    def via_release(query):
        return via_measure(via_voucher(query)).join(Release, Release.id == Voucher.release_id)

    def via_merchant(query):
        return query.join(Merchant, Merchant.id == Redemption.merchant_id)

    def via_store(query):
        return query.join(Store, Store.id == Redemption.store_id)

    measure_label = literal("措施") + cast(Measure.number, String) + literal("：") + Measure.short_title
    if dimension == "measure":
        return measure_label, measure_label, [via_measure]
    if dimension == "campaign":
        return Campaign.name, Campaign.name, [via_campaign]
    if dimension == "round":
        label = Campaign.name + literal(" · ") + Release.name
        return label, label, [via_release]
    if dimension == "day":
        return _day(Redemption.created_at), _day(Voucher.claimed_at), []
    if dimension == "category":
        return Merchant.category, None, [via_merchant]
    if dimension == "district":
        return Store.district, None, [via_store]
    return Merchant.size_class, None, [via_merchant]


REPORT_KEYS = ("vouchers_claimed", "vouchers_redeemed", "issued_yuan", "subsidy_paid_yuan", "driven_yuan", "merchants",
               "leverage_on_issued", "leverage_on_paid", "floor", "excess", "causal_leverage", "causal_ci_low",
               "causal_ci_high")


def report(f: Figures, causal: tuple[float, float, float] | None = None) -> dict:
    """The headline for scripts: yuan as decimal strings to the fen, ratios as numbers (4 places),
    None where a figure is undefined (nothing issued yet; no causal estimate for this selection)."""
    def ratio(value: float | None) -> float | None:
        return None if value is None else round(value, 4)

    estimate, low, high = causal if causal is not None else (None, None, None)
    return {
        "vouchers_claimed": f.vouchers_claimed, "vouchers_redeemed": f.vouchers_redeemed,
        "issued_yuan": format_yuan(f.issued_fen, grouping=False),
        "subsidy_paid_yuan": format_yuan(f.subsidy_paid_fen, grouping=False),
        "driven_yuan": format_yuan(f.driven_fen, grouping=False), "merchants": f.merchants,
        "leverage_on_issued": ratio(f.leverage_on_issued), "leverage_on_paid": ratio(f.leverage_on_paid),
        "floor": ratio(f.floor), "excess": ratio(f.excess),
        "causal_leverage": ratio(estimate), "causal_ci_low": ratio(low), "causal_ci_high": ratio(high),
    }
