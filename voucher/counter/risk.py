"""Risk flags for review: patterns worth a look, never silent blocks. Computed off the hot path.

Rules for one local day (each merchant at most one flag per rule and day, so a re-scan changes nothing):
- velocity: the day's redemptions are far above the merchant's own norm (its daily mean over the
  previous 14 days): at least VELOCITY_FACTOR times it and at least VELOCITY_MIN;
- repeat_citizen: one citizen redeemed at the merchant REPEAT_MIN or more times that day;
- threshold_cluster: most threshold orders sit just above the threshold (within 5%), a sign of
  orders shaped to the voucher rather than real baskets;
- off_hours: redemptions between 00:00 and 06:00 local time.

Settlement holds a merchant with open flags until a reviewer clears every one
(settlement/batches.py, open_flags_by_merchant).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, timedelta

from sqlalchemy import func, select

from voucher.accounts.models import User
from voucher.campaigns.models import VoucherProduct
from voucher.core import audit
from voucher.core.clock import local_day_start_utc, to_local, utcnow
from voucher.core.db import db
from voucher.core.errors import InvalidInput, InvalidTransition, NotFound
from voucher.merchants.models import Redemption, RiskFlag, RiskKind
from voucher.vouchers.models import Voucher

VELOCITY_FACTOR = 3
VELOCITY_MIN = 20
REPEAT_MIN = 3
CLUSTER_MIN_ORDERS = 10
CLUSTER_SHARE_PERCENT = 60
OFF_HOURS = (0, 6)


def scan(day: date) -> list[RiskFlag]:
    """Flag the day's patterns; returns the new flags (existing ones are left as they are)."""
    start, end = local_day_start_utc(day), local_day_start_utc(day + timedelta(days=1))
    rows = db.session.execute(
        select(Redemption.merchant_id, Redemption.created_at, Redemption.order_amount_fen, Voucher.citizen_id,
               VoucherProduct.threshold_fen)
        .join(Voucher, Voucher.id == Redemption.voucher_id)
        .join(VoucherProduct, VoucherProduct.campaign_id == Redemption.campaign_id)
        .where(Redemption.created_at >= start, Redemption.created_at < end, Redemption.reversed_at.is_(None))
    ).all()
    history_start = local_day_start_utc(day - timedelta(days=14))
    history = Counter(dict(db.session.execute(
        select(Redemption.merchant_id, func.count(Redemption.id))
        .where(Redemption.created_at >= history_start, Redemption.created_at < start, Redemption.reversed_at.is_(None))
        .group_by(Redemption.merchant_id)
    ).all()))

    by_merchant: dict[int, list] = defaultdict(list)
    for row in rows:
        by_merchant[row.merchant_id].append(row)
    found: list[tuple[int, RiskKind, dict]] = []
    for merchant_id, items in by_merchant.items():
        count = len(items)
        norm = history[merchant_id] / 14
        if count >= VELOCITY_MIN and count >= VELOCITY_FACTOR * norm:
            found.append((merchant_id, RiskKind.VELOCITY,
                          {"redemptions": count, "daily_mean_14d": round(norm, 2)}))
        repeats = Counter(item.citizen_id for item in items)
        heavy = {str(citizen): n for citizen, n in repeats.items() if n >= REPEAT_MIN}
        if heavy:
            found.append((merchant_id, RiskKind.REPEAT_CITIZEN, {"citizen_redemptions": heavy}))
        thresholded = [item for item in items if item.threshold_fen]
        near = [i for i in thresholded if i.order_amount_fen * 100 <= i.threshold_fen * 105]
        if len(thresholded) >= CLUSTER_MIN_ORDERS and len(near) * 100 >= CLUSTER_SHARE_PERCENT * len(thresholded):
            found.append((merchant_id, RiskKind.THRESHOLD_CLUSTER,
                          {"orders_with_threshold": len(thresholded), "within_5_percent": len(near)}))
        late = [item for item in items if OFF_HOURS[0] <= to_local(item.created_at).hour < OFF_HOURS[1]]
        if late:
            found.append((merchant_id, RiskKind.OFF_HOURS, {"redemptions": len(late), "hours": "00:00-06:00"}))

    existing = {
        (f.merchant_id, f.kind) for f in db.session.scalars(select(RiskFlag).where(RiskFlag.day == day))
    }
    new_flags = []
    for merchant_id, kind, detail in found:
        if (merchant_id, kind.value) in existing:
            continue
        flag = RiskFlag(merchant_id=merchant_id, kind=kind.value, day=day, detail=detail)
        db.session.add(flag)
        new_flags.append(flag)
    db.session.flush()  # the audit entries need the ids
    for flag in new_flags:
        audit.record("risk.flag", flag, actor_label="system", after={"kind": flag.kind, "day": day, **flag.detail})
    return new_flags


def review(flag_id: int, actor: User, *, note: str) -> RiskFlag:
    """A reviewer clears a flag with a note (e.g. a genuine promotion day)."""
    flag = db.session.get(RiskFlag, flag_id)
    if flag is None:
        raise NotFound("找不到该风险提示")
    if flag.status != "open":
        raise InvalidTransition("该风险提示已处理")
    if not note.strip():
        raise InvalidInput("请填写核查结论")
    flag.status = "cleared"
    flag.reviewed_by_id = actor.id
    flag.reviewed_at = utcnow()
    flag.review_note = note.strip()
    audit.record("risk.clear", flag, actor=actor, before={"status": "open"}, after={"status": "cleared", "note": flag.review_note})
    return flag
