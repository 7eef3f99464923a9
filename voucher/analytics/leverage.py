"""Leverage (杠杆率): consumption driven per yuan, gross and honestly labelled (docs/design.md §6 Leverage).

Gross figures count whole orders in which a voucher was redeemed; people would have bought part of
that anyway, so the page shows beside them the mechanical floor a 满X减Y voucher forces (an order of
at least X per Y of subsidy) and the excess over it, and the causal estimate separately.

Claims are dated by when they were claimed, redemptions by when they were redeemed: a date range
filters each side by its own date for the gross figures. Redemption rate and breakage are not gross
figures but a claim cohort's (`Cohort`): the vouchers claimed in the range and what became of them
(redeemed at any time since, expired, still open), in vouchers and in money (face value issued vs
subsidy paid), so a day's rate never divides other days' redemptions by its claims. The rollup cannot
give them (its facts date redemptions by their own day), so they are read live (`_cohort_query`).
Ratios are floats for display; every amount stays integer fen.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, timedelta

import numpy as np
from sqlalchemy import Select, String, and_, case, cast, func, literal, select

from voucher.analytics import rollup
from voucher.analytics.floor import FORCED_ORDER
from voucher.analytics.models import LEVERAGE_TRUTH, LeverageFact, SyntheticTruth
from voucher.campaigns.models import Campaign, Measure, Release, VoucherProduct
from voucher.core.clock import local_day_start_utc
from voucher.core.db import db, local_day_text, reads
from voucher.core.money import format_yuan
from voucher.merchants.models import Merchant, Redemption, Store
from voucher.vouchers.models import Voucher, VoucherStatus


@dataclass(frozen=True)
class LeverageFilter:
    campaign_id: int | None = None
    date_from: date | None = None
    date_until: date | None = None


@dataclass
class Cohort:
    """The vouchers claimed in a selection's dates and what became of them, whenever it happened:
    redeemed (a standing redemption, at any time after), expired, or still open."""
    claimed: int = 0
    face_fen: int = 0
    redeemed: int = 0
    #: the discount granted on the cohort's standing redemptions (a percentage voucher's is below its face value)
    subsidy_fen: int = 0
    expired: int = 0
    expired_face_fen: int = 0

    @property
    def open(self) -> int:
        return self.claimed - self.redeemed - self.expired

    def add(self, other: Cohort) -> None:
        for name in ("claimed", "face_fen", "redeemed", "subsidy_fen", "expired", "expired_face_fen"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def redemption_rate(self) -> float | None:
        """按张数: of the vouchers claimed, the share redeemed (at any time since); never above 1."""
        return self.redeemed / self.claimed if self.claimed else None

    @property
    def redemption_rate_money(self) -> float | None:
        """按金额: the subsidy paid on the cohort's vouchers over their face value issued; never above 1, as a
        redemption's subsidy never exceeds its voucher's face value."""
        return self.subsidy_fen / self.face_fen if self.face_fen else None


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
    #: the claim cohort behind redemption rate and breakage (empty where issue is not attributable)
    cohort: Cohort = field(default_factory=Cohort)

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
        """What citizens paid themselves per yuan of subsidy: a multiple (倍), not a share (docs/design.md §6)."""
        return self._ratio(self.driven_fen - self.subsidy_paid_fen, self.subsidy_paid_fen)

    @property
    def co_payment_share(self) -> float | None:
        """Citizens' own part of the driven consumption: a share (0-1), shown as a percentage."""
        return self._ratio(self.driven_fen - self.subsidy_paid_fen, self.driven_fen)

    @property
    def redemption_rate(self) -> float | None:
        """In vouchers: of the vouchers claimed in the selection, the share redeemed (at any time since)."""
        return self.cohort.redemption_rate if self.attributable_issue else None

    @property
    def breakage(self) -> float | None:
        """In vouchers: the unused remainder of the cohort (expired and still open)."""
        rate = self.redemption_rate
        return None if rate is None else 1 - rate

    @property
    def redemption_rate_money(self) -> float | None:
        """In money: the subsidy paid on the cohort's vouchers over their face value issued."""
        return self.cohort.redemption_rate_money if self.attributable_issue else None

    @property
    def breakage_money(self) -> float | None:
        """In money: the face value issued the cohort never paid out (a percentage voucher's unused cap
        included)."""
        rate = self.redemption_rate_money
        return None if rate is None else 1 - rate

    @property
    def expired_share(self) -> float | None:
        """The part of the breakage in vouchers that expired (the rest is still open)."""
        return self._ratio(self.cohort.expired, self.cohort.claimed) if self.attributable_issue else None

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


DIMENSIONS = {
    "measure": ("措施", True),
    "campaign": ("活动", True),
    "release": ("场次", True),
    "day": ("日期", True),
    "category": ("商户类别", False),
    "district": ("区县", False),
    "size": ("商户规模", False),
}


@dataclass(frozen=True)
class _Split:
    """A selection cut at the rollup: days up to `rolled_until` come from the facts, later ones live."""
    rolled: tuple[date | None, date] | None
    live: LeverageFilter | None


def _split(f: LeverageFilter) -> _Split:
    through = rollup.built_through()
    if through is None:
        return _Split(None, f)
    rolled_until = min(through, f.date_until) if f.date_until else through
    rolled = (f.date_from, rolled_until) if f.date_from is None or f.date_from <= rolled_until else None
    live_from = max(f.date_from, through + timedelta(days=1)) if f.date_from else through + timedelta(days=1)
    live = replace(f, date_from=live_from) if f.date_until is None or live_from <= f.date_until else None
    return _Split(rolled, live)


def _claims(f: LeverageFilter) -> Select:
    query = select(func.count(Voucher.id), func.coalesce(func.sum(Voucher.face_value_fen), 0)).where(
        Voucher.claimed_at.is_not(None))
    return _filtered(query, f, Voucher.claimed_at, Voucher.campaign_id)


def _redemptions(f: LeverageFilter) -> Select:
    query = (
        select(func.count(Redemption.id), func.coalesce(func.sum(Redemption.subsidy_fen), 0),
               func.coalesce(func.sum(Redemption.order_amount_fen), 0), func.coalesce(func.sum(FORCED_ORDER), 0))
        .join(VoucherProduct, VoucherProduct.campaign_id == Redemption.campaign_id)
        .where(Redemption.reversed_at.is_(None))
    )
    return _filtered(query, f, Redemption.created_at, Redemption.campaign_id)


def standing_redemptions(f: LeverageFilter) -> Select:
    """The gross figures' redemptions of a selection (count, subsidy, driven, forced order), for a reader
    that groups them its own way (the 受益结构 page, by merchant): one definition of "driven"."""
    return _redemptions(f)


def _filtered(query: Select, f: LeverageFilter, when, campaign_column) -> Select:
    if f.campaign_id is not None:
        query = query.where(campaign_column == f.campaign_id)
    if f.date_from is not None:
        query = query.where(when >= local_day_start_utc(f.date_from))
    if f.date_until is not None:
        query = query.where(when < local_day_start_utc(f.date_until + timedelta(days=1)))
    return query


_FACT_SUMS = (func.coalesce(func.sum(LeverageFact.vouchers_claimed), 0), func.coalesce(func.sum(LeverageFact.issued_fen), 0),
              func.coalesce(func.sum(LeverageFact.vouchers_redeemed), 0), func.coalesce(func.sum(LeverageFact.subsidy_fen), 0),
              func.coalesce(func.sum(LeverageFact.driven_fen), 0), func.coalesce(func.sum(LeverageFact.floor_fen), 0))


def _facts(f: LeverageFilter, days: tuple[date | None, date]) -> Select:
    query = select(*_FACT_SUMS).where(LeverageFact.day <= days[1])
    if days[0] is not None:
        query = query.where(LeverageFact.day >= days[0])
    if f.campaign_id is not None:
        query = query.where(LeverageFact.campaign_id == f.campaign_id)
    return query


def _add(figures: Figures, claimed=0, issued=0, redeemed=0, paid=0, driven=0, forced=0) -> None:
    figures.vouchers_claimed += int(claimed)
    figures.issued_fen += int(issued)
    figures.vouchers_redeemed += int(redeemed)
    figures.subsidy_paid_fen += int(paid)
    figures.driven_fen += int(driven)
    figures.floor_driven_fen += int(forced)


def headline(f: LeverageFilter = LeverageFilter()) -> Figures:
    figures = Figures()
    split = _split(f)
    if split.rolled is not None:
        _add(figures, *reads().execute(_facts(f, split.rolled)).one())
    if split.live is not None:
        _add(figures, *reads().execute(_claims(split.live)).one())  # the claims: the first two figures
        _add(figures, 0, 0, *reads().execute(_redemptions(split.live)).one())
    figures.merchants = _merchant_count(f, split)
    figures.cohort = _cohorts(f, None).get("", Cohort())
    return figures


def _cohort_query(f: LeverageFilter) -> Select:
    """The claim cohort, live: one aggregate over the vouchers claimed in the range (ix_vouchers_claimed_at),
    each joined to its standing redemption if any (uq_redemptions_voucher_live), whatever its day."""
    redeemed = Redemption.id.is_not(None)
    expired = Voucher.status == VoucherStatus.EXPIRED.value
    query = (
        select(func.count(Voucher.id), func.coalesce(func.sum(Voucher.face_value_fen), 0), func.count(Redemption.id),
               func.coalesce(func.sum(Redemption.subsidy_fen), 0),
               func.coalesce(func.sum(case((and_(expired, ~redeemed), 1), else_=0)), 0),
               func.coalesce(func.sum(case((and_(expired, ~redeemed), Voucher.face_value_fen), else_=0)), 0))
        .select_from(Voucher)
        .outerjoin(Redemption, and_(Redemption.voucher_id == Voucher.id, Redemption.reversed_at.is_(None)))
        .where(Voucher.claimed_at.is_not(None))
    )
    return _filtered(query, f, Voucher.claimed_at, Voucher.campaign_id)


def _whole_cohorts(campaign_ids: list[int] | None) -> dict[int, Cohort]:
    """Without a date range the cohort is every claimed voucher, and its redemptions are every standing
    redemption of its campaign, so `_cohort_query`'s figures come from two aggregates with no join (at city
    scale the join costs 2-4 s, the two scans under 1 s; benchmarks/cohort_query.py). This rests on what the
    counter keeps true: a voucher has a standing redemption exactly while its status is redeemed (reversal
    makes it claimed again; expiry and closing touch only claimed vouchers), and a redemption's campaign is its
    voucher's. tests/test_dashboard.py holds the two to the same figures."""
    expired = Voucher.status == VoucherStatus.EXPIRED.value
    vouchers = (
        select(Voucher.campaign_id, func.count(Voucher.id), func.coalesce(func.sum(Voucher.face_value_fen), 0),
               func.coalesce(func.sum(case((expired, 1), else_=0)), 0),
               func.coalesce(func.sum(case((expired, Voucher.face_value_fen), else_=0)), 0))
        .where(Voucher.claimed_at.is_not(None)).group_by(Voucher.campaign_id)
    )
    redemptions = (
        select(Redemption.campaign_id, func.count(Redemption.id), func.coalesce(func.sum(Redemption.subsidy_fen), 0))
        .where(Redemption.reversed_at.is_(None)).group_by(Redemption.campaign_id)
    )
    if campaign_ids is not None:
        vouchers = vouchers.where(Voucher.campaign_id.in_(campaign_ids))
        redemptions = redemptions.where(Redemption.campaign_id.in_(campaign_ids))
    paid = {campaign_id: (int(n), int(subsidy)) for campaign_id, n, subsidy in reads().execute(redemptions)}
    return {
        int(campaign_id): Cohort(int(claimed), int(face), *paid.get(campaign_id, (0, 0)), int(lapsed), int(lapsed_face))
        for campaign_id, claimed, face, lapsed, lapsed_face in reads().execute(vouchers)
    }


def _cohorts(f: LeverageFilter, dimension: str | None) -> dict[str, Cohort]:
    """The cohort of the whole selection (key "") or per value of an attributable dimension's claim key."""
    if dimension is None and f.date_from is None and f.date_until is None:
        whole = Cohort()
        for cohort in _whole_cohorts(None if f.campaign_id is None else [f.campaign_id]).values():
            whole.add(cohort)
        return {"": whole}
    query = _cohort_query(f)
    if dimension is None:
        return {"": Cohort(*(int(v) for v in reads().execute(query).one()))}
    _, claim_key, _ = _keys(dimension)
    if claim_key is None:
        return {}
    query = _claim_joins(query.add_columns(claim_key).group_by(claim_key), dimension)
    return {str(key): Cohort(*(int(v) for v in values)) for *values, key in reads().execute(query)}


def cohorts_by_campaign(campaign_ids: list[int]) -> dict[int, Cohort]:
    """Each campaign's whole claim cohort (no date range), by campaign id, in one query: the dashboard's 核销率,
    the same figures as the leverage page filtered to that campaign. A campaign with no claim is absent."""
    return _whole_cohorts(campaign_ids)


def _claim_joins(query: Select, dimension: str) -> Select:
    if dimension in ("measure", "release"):
        return query.join(Release, Release.id == Voucher.release_id).join(
            Campaign, Campaign.id == Voucher.campaign_id).join(Measure, Measure.id == Campaign.measure_id)
    if dimension == "campaign":
        return query.join(Campaign, Campaign.id == Voucher.campaign_id)
    return query


def _merchant_count(f: LeverageFilter, split: _Split) -> int:
    """Distinct merchants: the rolled-up days' bitmaps, plus the live days' merchants."""
    if split.rolled is None:
        query = select(Redemption.merchant_id).where(Redemption.reversed_at.is_(None)).distinct()
        return int(reads().execute(select(func.count()).select_from(
            _filtered(query, f, Redemption.created_at, Redemption.campaign_id).subquery())).scalar_one())
    ids = rollup.merchant_ids(f.campaign_id, *split.rolled)
    if split.live is None:
        return len(ids)
    query = select(Redemption.merchant_id).where(Redemption.reversed_at.is_(None)).distinct()
    live = reads().scalars(_filtered(query, split.live, Redemption.created_at, Redemption.campaign_id)).all()
    return len(np.union1d(ids, np.asarray(live, dtype=np.int64)))


def breakdown(dimension: str, f: LeverageFilter = LeverageFilter()) -> list[tuple[str, Figures]]:
    """Figures per value of one dimension, in a stable order (merchant counts: headline only)."""
    if dimension not in DIMENSIONS:
        raise ValueError(dimension)
    attributable = DIMENSIONS[dimension][1]
    rows: dict[str, Figures] = {}

    def row(label) -> Figures:
        return rows.setdefault(str(label), Figures(attributable_issue=attributable))

    split = _split(f)
    if split.rolled is not None:
        key, joins = _fact_key(dimension)
        query = _facts(f, split.rolled).add_columns(key).group_by(key)
        if not attributable:  # claim rows carry no merchant
            query = query.where(LeverageFact.vouchers_claimed == 0)
        for join in joins:
            query = join(query)
        for claimed, issued, redeemed, paid, driven, forced, label in reads().execute(query):
            _add(row(label), claimed if attributable else 0, issued if attributable else 0, redeemed, paid, driven,
                 forced)
    if split.live is not None:
        _live_breakdown(dimension, split.live, row)
    if attributable:
        for label, cohort in _cohorts(f, dimension).items():
            row(label).cohort = cohort
    return sorted(rows.items())


def _live_breakdown(dimension: str, f: LeverageFilter, row) -> None:
    redemption_key, claim_key, joins = _keys(dimension)
    query = _redemptions(f).add_columns(redemption_key).group_by(redemption_key)
    for join in joins:
        query = join(query)
    for redeemed, paid, driven, forced, key in reads().execute(query):
        _add(row(key), 0, 0, redeemed, paid, driven, forced)
    if claim_key is not None:
        claims = _claim_joins(_claims(f).add_columns(claim_key).group_by(claim_key), dimension)
        for claimed, issued, key in reads().execute(claims):
            _add(row(key), claimed, issued)


_MEASURE_LABEL = literal("措施") + cast(Measure.number, String) + literal("：") + Measure.short_title
_ROUND_LABEL = Campaign.name + literal(" · ") + Release.name


def _fact_key(dimension: str):
    """(label over the facts, joins): the same labels the live queries give."""
    def via_campaign(query):
        return query.join(Campaign, Campaign.id == LeverageFact.campaign_id)

    def via_measure(query):
        return via_campaign(query).join(Measure, Measure.id == Campaign.measure_id)

    def via_release(query):
        return via_campaign(query).join(Release, Release.id == LeverageFact.release_id)

    if dimension == "measure":
        return _MEASURE_LABEL, [via_measure]
    if dimension == "campaign":
        return Campaign.name, [via_campaign]
    if dimension == "release":
        return _ROUND_LABEL, [via_release]
    if dimension == "day":
        if db.session.get_bind().dialect.name == "postgresql":
            return func.to_char(LeverageFact.day, "YYYY-MM-DD"), []
        return LeverageFact.day, []  # SQLite keeps a date as 'YYYY-MM-DD' text
    column = {"category": LeverageFact.category, "district": LeverageFact.district, "size": LeverageFact.size_class}
    return column[dimension], []


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

    if dimension == "measure":
        return _MEASURE_LABEL, _MEASURE_LABEL, [via_measure]
    if dimension == "campaign":
        return Campaign.name, Campaign.name, [via_campaign]
    if dimension == "release":
        return _ROUND_LABEL, _ROUND_LABEL, [via_release]
    if dimension == "day":
        return local_day_text(Redemption.created_at), local_day_text(Voucher.claimed_at), []
    if dimension == "category":
        return Merchant.category, None, [via_merchant]
    if dimension == "district":
        return Store.district, None, [via_store]
    return Merchant.size_class, None, [via_merchant]


def planted_truth() -> float | None:
    """The causal leverage planted in a generated (synthetic) data set, if one is loaded."""
    truth = reads().scalar(select(SyntheticTruth.value).where(SyntheticTruth.name == LEVERAGE_TRUTH))
    return None if truth is None else float(truth["value"])


REPORT_KEYS = ("vouchers_claimed", "vouchers_redeemed", "issued_yuan", "subsidy_paid_yuan", "driven_yuan", "merchants",
               "leverage_on_issued", "leverage_on_paid", "floor", "excess", "redemption_rate", "breakage",
               "redemption_rate_money", "breakage_money", "causal_leverage", "causal_ci_low",
               "causal_ci_high", "causal_note")


def report(f: Figures, causal: tuple[float, float, float] | None = None, causal_note: str | None = None) -> dict:
    """The headline for scripts: yuan as decimal strings to the fen, ratios as numbers (4 places),
    None where a figure is undefined (nothing issued yet; no causal estimate for this selection, and
    `causal_note` says why: no panel yet, too few merchants, or checks that failed)."""
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
        "redemption_rate": ratio(f.redemption_rate), "breakage": ratio(f.breakage),
        "redemption_rate_money": ratio(f.redemption_rate_money), "breakage_money": ratio(f.breakage_money),
        "causal_leverage": ratio(estimate), "causal_ci_low": ratio(low), "causal_ci_high": ratio(high),
        "causal_note": causal_note,
    }
