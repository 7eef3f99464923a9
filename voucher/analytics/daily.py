"""The nightly snapshot of each campaign's figures for one local day (daily_stats)."""
from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

from sqlalchemy import delete, func, insert, select

from voucher.analytics.models import DailyStat
from voucher.core.clock import local_day_start_utc
from voucher.core.db import db
from voucher.merchants.models import Redemption
from voucher.vouchers.models import Voucher

_FIELDS = ("vouchers_claimed", "vouchers_redeemed", "subsidy_fen", "driven_fen", "redemptions_reversed")


def snapshot_day(day: date) -> int:
    """Replace the day's rows with one per campaign that had any activity; returns how many.

    claimed: vouchers claimed that day; redeemed, subsidy and driven: redemptions made that day and
    not reversed (as at the snapshot); reversed: redemptions reversed that day, whenever made.
    """
    start, end = local_day_start_utc(day), local_day_start_utc(day + timedelta(days=1))
    figures: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(_FIELDS, 0))
    for campaign_id, count in db.session.execute(
        select(Voucher.campaign_id, func.count(Voucher.id))
        .where(Voucher.claimed_at >= start, Voucher.claimed_at < end)
        .group_by(Voucher.campaign_id)
    ):
        figures[campaign_id]["vouchers_claimed"] = count
    for campaign_id, count, subsidy, driven in db.session.execute(
        select(Redemption.campaign_id, func.count(Redemption.id), func.sum(Redemption.subsidy_fen),
               func.sum(Redemption.order_amount_fen))
        .where(Redemption.created_at >= start, Redemption.created_at < end, Redemption.reversed_at.is_(None))
        .group_by(Redemption.campaign_id)
    ):
        figures[campaign_id].update(vouchers_redeemed=count, subsidy_fen=int(subsidy), driven_fen=int(driven))
    for campaign_id, count in db.session.execute(
        select(Redemption.campaign_id, func.count(Redemption.id))
        .where(Redemption.reversed_at >= start, Redemption.reversed_at < end)
        .group_by(Redemption.campaign_id)
    ):
        figures[campaign_id]["redemptions_reversed"] = count

    db.session.execute(delete(DailyStat).where(DailyStat.day == day))
    if figures:
        db.session.execute(
            insert(DailyStat),
            [{"campaign_id": campaign_id, "day": day, **values} for campaign_id, values in sorted(figures.items())],
        )
    return len(figures)
