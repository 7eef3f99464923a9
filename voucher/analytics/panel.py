"""The difference-in-differences panel behind the causal leverage, and the estimate over it.

For each campaign with redemptions: the campaign's days (valid_from to valid_until, or yesterday while
it runs) and the PRE_DAYS days before them. Its units are the merchants with a sales baseline in both
windows that either redeemed for the campaign (treated) or are eligible for it (category, district)
and took no subsidy at all in either window (comparable). Per unit the panel keeps the sums of sales
and of subsidy paid over the days that have a baseline, so a missing day drops from both sides alike.

`build()` runs nightly with the leverage rollup, after a baseline import and after a city-scale load;
the page then estimates from a few thousand rows at once (voucher/analytics/causal.py).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import and_, case, delete, func, insert, select, text

from voucher.analytics import causal, rollup
from voucher.analytics.models import CausalPanelUnit, CausalPanelWeek, MerchantDailySales, RollupState
from voucher.analytics.rollup import lock_state
from voucher.campaigns.models import Campaign, CampaignStatus
from voucher.core.clock import local_day_start_utc, local_today, utcnow
from voucher.core.db import db, local_day, reads
from voucher.core.progress import Progress, silent
from voucher.merchants.models import Merchant, Redemption, Store

NAME = "causal_panel"
PRE_DAYS = 56  # eight whole weeks, so weekdays weigh alike before and during
POST_DAYS = 28  # four whole weeks after the last day, where purchases pulled forward show


@dataclass(frozen=True)
class Windows:
    first: date  # PRE_DAYS before the campaign
    valid_from: date
    valid_until: date
    last: date  # the last day with data: POST_DAYS after the campaign, or yesterday

    @property
    def post_complete(self) -> bool:
        return self.last >= self.valid_until + timedelta(days=POST_DAYS)

    def weeks(self) -> list[tuple[int, date, date]]:
        """(week number, first day, last day) of every week the panel has begun, as causal.py numbers them."""
        spans = [(w, self.valid_from + timedelta(days=7 * w), self.valid_from + timedelta(days=7 * w + 6))
                 for w in range(-PRE_DAYS // 7, 0)]
        start, k = self.valid_from, 0
        while start <= self.valid_until:
            spans.append((k, start, min(start + timedelta(days=6), self.valid_until)))
            start, k = start + timedelta(days=7), k + 1
        after = self.valid_until + timedelta(days=1)
        spans += [(causal.POST_WEEK + k, after + timedelta(days=7 * k), after + timedelta(days=7 * k + 6))
                  for k in range(POST_DAYS // 7)]
        return [(w, lo, min(hi, self.last)) for w, lo, hi in spans if lo <= self.last]


def windows(campaign: Campaign, today: date | None = None) -> Windows | None:
    yesterday = (today or local_today()) - timedelta(days=1)
    if yesterday < campaign.valid_from:
        return None
    return Windows(campaign.valid_from - timedelta(days=PRE_DAYS), campaign.valid_from, campaign.valid_until,
                   min(campaign.valid_until + timedelta(days=POST_DAYS), yesterday))


def build(today: date | None = None) -> int:
    """Rebuild every campaign's units and their weeks; returns how many units."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SET LOCAL work_mem = '256MB'"))  # hash the windows' rows in memory
    state = lock_state(NAME)
    db.session.execute(delete(CausalPanelWeek))
    db.session.execute(delete(CausalPanelUnit))
    campaigns = db.session.scalars(
        select(Campaign).where(Campaign.status != CampaignStatus.DRAFT.value,
                               Campaign.id.in_(select(Redemption.campaign_id).distinct()))
        .order_by(Campaign.id)
    ).all()
    units = 0
    for campaign in campaigns:
        span = windows(campaign, today)
        if span is not None:
            unit_rows, week_rows = _units(campaign, span)
            if unit_rows:
                db.session.execute(insert(CausalPanelUnit), unit_rows)
                db.session.execute(insert(CausalPanelWeek), week_rows)
            units += len(unit_rows)
    state.built_through, state.built_at = (today or local_today()) - timedelta(days=1), utcnow()
    db.session.flush()
    return units


def _units(campaign: Campaign, w: Windows) -> tuple[list[dict], list[dict]]:
    spans = w.weeks()
    day = MerchantDailySales.day
    week_of = case(*[(and_(day >= lo, day <= hi), number) for number, lo, hi in spans])
    sales = db.session.execute(
        select(MerchantDailySales.merchant_id, week_of, func.count(), func.sum(MerchantDailySales.sales_fen))
        .where(day >= w.first, day <= w.last)
        .group_by(MerchantDailySales.merchant_id, week_of)
    ).all()
    if not sales:
        return [], []
    begin, end = local_day_start_utc(w.first), local_day_start_utc(w.last + timedelta(days=1))
    standing = and_(Redemption.reversed_at.is_(None), Redemption.created_at >= begin, Redemption.created_at < end)
    paid_day = local_day(Redemption.created_at).label("day")
    daily = (select(Redemption.merchant_id, paid_day, func.sum(Redemption.subsidy_fen).label("subsidy"))
             .where(standing).group_by(Redemption.merchant_id, paid_day).subquery())
    paid_week = case(*[(and_(daily.c.day >= lo, daily.c.day <= hi), number) for number, lo, hi in spans])
    subsidy = {(m, int(k)): int(paid) for m, k, paid in db.session.execute(
        select(daily.c.merchant_id, paid_week, func.sum(daily.c.subsidy))
        .join(MerchantDailySales, and_(MerchantDailySales.merchant_id == daily.c.merchant_id,
                                       MerchantDailySales.day == daily.c.day))
        .group_by(daily.c.merchant_id, paid_week)
    )}
    in_campaign = and_(Redemption.campaign_id == campaign.id,
                       Redemption.created_at >= local_day_start_utc(w.valid_from),
                       Redemption.created_at < local_day_start_utc(w.valid_until + timedelta(days=1)))
    redeemed = db.session.execute(select(Redemption.merchant_id, func.max(case((in_campaign, 1), else_=0)))
                                  .where(standing).group_by(Redemption.merchant_id)).all()
    subsidised = {merchant_id for merchant_id, _ in redeemed}
    treated = {merchant_id for merchant_id, taking_part in redeemed if taking_part}
    with_sales = sorted({row[0] for row in sales})
    eligible = _eligible(campaign, [m for m in with_sales if m not in subsidised])
    members = treated.intersection(with_sales) | eligible
    district = _districts(sorted(members))
    units = [dict(campaign_id=campaign.id, merchant_id=m, treated=m in treated, district=district.get(m, ""))
             for m in sorted(members)]
    weeks = [dict(campaign_id=campaign.id, merchant_id=m, week=int(k), days=int(n), sales_fen=int(total),
                  subsidy_fen=subsidy.get((m, int(k)), 0))
             for m, k, n, total in sales if m in members and k is not None]
    return units, weeks


def _districts(merchant_ids: list[int]) -> dict[int, str]:
    """A merchant's district for the displacement check: its first store's."""
    found: dict[int, str] = {}
    for start in range(0, len(merchant_ids), 5000):
        chunk = merchant_ids[start:start + 5000]
        for merchant_id, district in db.session.execute(
                select(Store.merchant_id, Store.district).where(Store.merchant_id.in_(chunk)).order_by(Store.id)):
            found.setdefault(merchant_id, district)
    return found


def _eligible(campaign: Campaign, merchant_ids: list[int]) -> set[int]:
    """Of these merchants, those the campaign's categories and districts admit."""
    eligible: set[int] = set()
    for start in range(0, len(merchant_ids), 5000):
        chunk = merchant_ids[start:start + 5000]
        districts: dict[int, set[str]] = defaultdict(set)
        for merchant_id, district in db.session.execute(
                select(Store.merchant_id, Store.district).where(Store.merchant_id.in_(chunk))):
            districts[merchant_id].add(district)
        for merchant_id, category in db.session.execute(
                select(Merchant.id, Merchant.category).where(Merchant.id.in_(chunk))):
            if campaign.categories and category not in campaign.categories:
                continue
            if campaign.districts and not districts[merchant_id] & set(campaign.districts):
                continue
            eligible.add(merchant_id)
    return eligible


@dataclass(frozen=True)
class PanelEstimate:
    estimate: causal.CausalEstimate
    built_at: datetime | None
    campaign_ids: list[int]


def estimate(campaign_id: int | None = None, date_from: date | None = None,
             date_until: date | None = None) -> PanelEstimate:
    """The causal leverage over the selected campaigns' panels (a date range selects the campaigns
    whose days overlap it: the estimate always uses a campaign's whole windows)."""
    session = reads()  # the reports' standby inside report_reads()
    state = session.get(RollupState, NAME)
    units = select(CausalPanelUnit.campaign_id, CausalPanelUnit.merchant_id, CausalPanelUnit.treated,
                   CausalPanelUnit.district, Campaign.valid_until, Campaign.name).join(
        Campaign, Campaign.id == CausalPanelUnit.campaign_id)
    if campaign_id is not None:
        units = units.where(CausalPanelUnit.campaign_id == campaign_id)
    if date_from is not None:
        units = units.where(Campaign.valid_until >= date_from)
    if date_until is not None:
        units = units.where(Campaign.valid_until >= Campaign.valid_from, Campaign.valid_from <= date_until)
    unit_rows = session.execute(units.order_by(CausalPanelUnit.campaign_id, CausalPanelUnit.merchant_id)).all()
    built_at = state.built_at if state else None
    if not unit_rows:
        reason = ("尚未导入商户日销售基线，或基线未覆盖所选活动的活动前 8 周与活动期" if state else
                  "因果面板尚未生成（每日凌晨自动生成，或运行 flask leverage refresh）")
        return PanelEstimate(causal.CausalEstimate(None, None, None, None, 0, 0, 0, reason), built_at, [])
    chosen = sorted({row.campaign_id for row in unit_rows})
    week_rows = session.execute(
        select(CausalPanelWeek.campaign_id, CausalPanelWeek.merchant_id, CausalPanelWeek.week, CausalPanelWeek.days,
               CausalPanelWeek.sales_fen, CausalPanelWeek.subsidy_fen)
        .where(CausalPanelWeek.campaign_id.in_(chosen))).all()
    through = state.built_through if state and state.built_through else None
    names = {row.campaign_id: row.name for row in unit_rows}
    return PanelEstimate(causal.estimate(_as_panel(unit_rows, week_rows, through), names), built_at, chosen)


def _as_panel(unit_rows: Sequence[Any], week_rows: Sequence[Any], through: date | None) -> causal.Panel:
    index = {(row.campaign_id, row.merchant_id): i for i, row in enumerate(unit_rows)}
    weeks = tuple(sorted({row.week for row in week_rows}))
    column = {w: j for j, w in enumerate(weeks)}
    shape = (len(unit_rows), len(weeks))
    days, sales, subsidy = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    for c, m, w, n, fen_sales, fen_subsidy in week_rows:
        i = index.get((c, m))
        if i is not None:
            days[i, column[w]], sales[i, column[w]], subsidy[i, column[w]] = n, fen_sales, fen_subsidy
    post_done = {row.campaign_id: through is not None and through >= row.valid_until + timedelta(days=POST_DAYS)
                 for row in unit_rows}
    return causal.Panel(
        np.array([row.campaign_id for row in unit_rows]), np.array([row.merchant_id for row in unit_rows]),
        np.array([row.treated for row in unit_rows], dtype=bool), np.array([row.district or "" for row in unit_rows]),
        weeks, days, sales, subsidy, np.array([post_done[row.campaign_id] for row in unit_rows], dtype=bool))


def refresh_leverage(full: bool = False, progress: Progress = silent) -> dict:
    """The nightly step: the leverage facts up to yesterday, then the causal panel over them."""
    summary = rollup.refresh(full=full, progress=progress)
    progress("因果面板", rollup.STEPS, rollup.STEPS + 1)
    units = build()
    progress("完成", rollup.STEPS + 1, rollup.STEPS + 1)
    return {"built_through": summary.built_through.isoformat() if summary.built_through else None,
            "rebuilt_from": summary.rebuilt_from.isoformat() if summary.rebuilt_from else None,
            "facts": summary.facts, "merchant_days": summary.merchant_days, "panel_units": units}
