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
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
from sqlalchemy import and_, case, delete, func, insert, select, text

from voucher.analytics import causal, rollup
from voucher.analytics.models import CausalPanelUnit, MerchantDailySales, RollupState
from voucher.analytics.rollup import lock_state
from voucher.campaigns.models import Campaign, CampaignStatus
from voucher.core.clock import local_day_start_utc, local_today, utcnow
from voucher.core.db import db, local_day
from voucher.merchants.models import Merchant, Redemption, Store

NAME = "causal_panel"
PRE_DAYS = 56  # eight whole weeks, so weekdays weigh alike before and during
#: a unit needs at least this many baseline days in each window to count
MIN_PRE_DAYS = 14
MIN_DURING_DAYS = 7


@dataclass(frozen=True)
class Windows:
    pre_from: date
    pre_until: date
    during_from: date
    during_until: date


def windows(campaign: Campaign, today: date | None = None) -> Windows | None:
    last = min(campaign.valid_until, (today or local_today()) - timedelta(days=1))
    if last < campaign.valid_from:
        return None
    return Windows(campaign.valid_from - timedelta(days=PRE_DAYS), campaign.valid_from - timedelta(days=1),
                   campaign.valid_from, last)


def build(today: date | None = None) -> int:
    """Rebuild every campaign's units; returns how many."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SET LOCAL work_mem = '256MB'"))  # hash the windows' rows in memory
    state = lock_state(NAME)
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
            rows = _units(campaign, span)
            if rows:
                db.session.execute(insert(CausalPanelUnit), rows)
            units += len(rows)
    state.built_through, state.built_at = (today or local_today()) - timedelta(days=1), utcnow()
    db.session.flush()
    return units


def _units(campaign: Campaign, w: Windows) -> list[dict]:
    day = MerchantDailySales.day
    before = day <= w.pre_until
    sales = db.session.execute(
        select(MerchantDailySales.merchant_id,
               func.sum(case((before, 1), else_=0)), func.sum(case((before, MerchantDailySales.sales_fen), else_=0)),
               func.sum(case((before, 0), else_=1)), func.sum(case((before, 0), else_=MerchantDailySales.sales_fen)))
        .where(day >= w.pre_from, day <= w.during_until)
        .group_by(MerchantDailySales.merchant_id)
    ).all()
    if not sales:
        return []
    begin, end = local_day_start_utc(w.pre_from), local_day_start_utc(w.during_until + timedelta(days=1))
    standing = and_(Redemption.reversed_at.is_(None), Redemption.created_at >= begin, Redemption.created_at < end)
    paid_day = local_day(Redemption.created_at).label("day")
    daily = (select(Redemption.merchant_id, paid_day, func.sum(Redemption.subsidy_fen).label("subsidy"))
             .where(standing).group_by(Redemption.merchant_id, paid_day).subquery())
    subsidy = {m: (int(p), int(d)) for m, p, d in db.session.execute(
        select(daily.c.merchant_id,
               func.sum(case((daily.c.day <= w.pre_until, daily.c.subsidy), else_=0)),
               func.sum(case((daily.c.day <= w.pre_until, 0), else_=daily.c.subsidy)))
        .join(MerchantDailySales, and_(MerchantDailySales.merchant_id == daily.c.merchant_id,
                                       MerchantDailySales.day == daily.c.day))
        .group_by(daily.c.merchant_id)
    )}
    in_campaign = and_(Redemption.campaign_id == campaign.id,
                       Redemption.created_at >= local_day_start_utc(w.during_from))
    redeemed = db.session.execute(select(Redemption.merchant_id, func.max(case((in_campaign, 1), else_=0)))
                                  .where(standing).group_by(Redemption.merchant_id)).all()
    subsidised = {merchant_id for merchant_id, _ in redeemed}
    treated = {merchant_id for merchant_id, taking_part in redeemed if taking_part}
    eligible = _eligible(campaign, [row[0] for row in sales if row[0] not in subsidised])
    rows = []
    for merchant_id, pre_days, pre_sales, during_days, during_sales in sales:
        if merchant_id not in treated and merchant_id not in eligible:
            continue
        if not pre_days or not during_days:
            continue
        pre_paid, during_paid = subsidy.get(merchant_id, (0, 0))
        rows.append(dict(campaign_id=campaign.id, merchant_id=merchant_id, treated=merchant_id in treated,
                         pre_days=int(pre_days), pre_sales_fen=int(pre_sales), pre_subsidy_fen=pre_paid,
                         during_days=int(during_days), during_sales_fen=int(during_sales),
                         during_subsidy_fen=during_paid))
    return rows


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
    state = db.session.get(RollupState, NAME)
    query = (select(CausalPanelUnit.campaign_id, CausalPanelUnit.merchant_id, CausalPanelUnit.pre_days,
                    CausalPanelUnit.pre_sales_fen, CausalPanelUnit.pre_subsidy_fen, CausalPanelUnit.during_days,
                    CausalPanelUnit.during_sales_fen, CausalPanelUnit.during_subsidy_fen, CausalPanelUnit.treated)
             .join(Campaign, Campaign.id == CausalPanelUnit.campaign_id)
             .where(CausalPanelUnit.pre_days >= MIN_PRE_DAYS, CausalPanelUnit.during_days >= MIN_DURING_DAYS))
    if campaign_id is not None:
        query = query.where(CausalPanelUnit.campaign_id == campaign_id)
    if date_from is not None:
        query = query.where(Campaign.valid_until >= date_from)
    if date_until is not None:
        query = query.where(Campaign.valid_from <= date_until)
    rows = np.asarray(db.session.execute(query).all(), dtype=float).reshape(-1, 9)
    built_at = state.built_at if state else None
    if len(rows) == 0:
        reason = ("尚未导入商户日销售基线，或基线未覆盖所选活动的活动前 8 周与活动期" if state else
                  "因果面板尚未生成（每日凌晨自动生成，或运行 flask leverage refresh）")
        return PanelEstimate(causal.CausalEstimate(None, None, None, None, 0, 0, 0, reason), built_at, [])
    campaign, merchant, treated = rows[:, 0], rows[:, 1], rows[:, 8].astype(bool)
    change = rows[:, 6] / rows[:, 5] - rows[:, 3] / rows[:, 2]
    dose = rows[:, 7] / rows[:, 5] - rows[:, 4] / rows[:, 2]
    return PanelEstimate(causal.estimate(campaign, change, dose, merchant, treated), built_at,
                         sorted({int(c) for c in campaign}))


def refresh_leverage(full: bool = False) -> dict:
    """The nightly step: the leverage facts up to yesterday, then the causal panel over them."""
    summary = rollup.refresh(full=full)
    units = build()
    return {"built_through": summary.built_through.isoformat() if summary.built_through else None,
            "rebuilt_from": summary.rebuilt_from.isoformat() if summary.rebuilt_from else None,
            "facts": summary.facts, "merchant_days": summary.merchant_days, "panel_units": units}
