"""The leverage figures pre-aggregated by local day, so the page answers in well under a second over
the city's millions of redemptions (issue: leverage page under 1 s at city scale).

`refresh()` (nightly job, `flask leverage refresh`, and after a city-scale load) writes every complete
day up to yesterday into `leverage_facts`; the page adds the days after that live from the source rows
(indexed by time), so new activity shows at once. A redemption reversed after its day was aggregated
takes that day out of the facts in the reversal's own transaction (`redemption_reversed`, a hook the
counter calls, registered in create_app): the boundary moves back before the day, the reads take it
live, and the next refresh rebuilds from it. So the figures equal a full scan at every moment, not only
after the next run (`--full` rebuilds everything).

A fact carries the merchant's category and size class and the store's district as they were when it
was built; a merchant that changes category moves in the breakdowns only from a rebuild (`--full`).
"""
from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
from sqlalchemy import delete, func, insert, literal, null, select, text

from voucher.analytics.floor import FORCED_ORDER
from voucher.analytics.models import LeverageFact, LeverageMerchantDay, RollupState
from voucher.campaigns.models import VoucherProduct
from voucher.core.clock import local_day_start_utc, local_today, to_local, utcnow
from voucher.core.db import db, local_day, reads
from voucher.core.progress import Progress, silent
from voucher.core.upsert import insert_ignore
from voucher.merchants.models import Merchant, Redemption, Store
from voucher.vouchers.models import Voucher

NAME = "leverage"


@dataclass(frozen=True)
class RefreshSummary:
    rebuilt_from: date | None
    built_through: date | None
    facts: int
    #: (day, campaign) bitmaps of redeeming merchants
    merchant_days: int


#: a reversal stamped just before a refresh began may commit after the refresh read its day: the next
#: refresh looks this far back for reversals (see _rebuild_from). The reversal hook below already takes
#: such a day out under the state's lock; this stays for reversals written some other way (a repair).
REVERSAL_MARGIN = timedelta(minutes=5)


def lock_state(name: str) -> RollupState:
    """A pre-aggregation's state row, locked until the commit: one rebuild at a time (the nightly job,
    the command, a baseline import, a city-scale load), so two never delete and insert the same rows."""
    db.session.execute(insert_ignore(RollupState).values(name=name, built_through=None, built_at=utcnow()))
    return db.session.scalars(select(RollupState).where(RollupState.name == name).with_for_update()
                              .execution_options(populate_existing=True)).one()


def built_through() -> date | None:
    """The last local day in the facts; None before the first refresh (everything is read live)."""
    return reads().scalar(select(RollupState.built_through).where(RollupState.name == NAME))


#: the steps refresh() reports to its `progress`
STEPS = 3


def refresh(through: date | None = None, full: bool = False, progress: Progress = silent) -> RefreshSummary:
    """Bring the facts up to `through` (default: yesterday, the last complete local day)."""
    through = through or local_today() - timedelta(days=1)
    started = utcnow()
    state = lock_state(NAME)
    start = None if full or state.built_through is None else _rebuild_from(state)
    if start is not None and start > through:
        return RefreshSummary(None, state.built_through, 0, 0)

    begin = local_day_start_utc(start) if start else None
    end = local_day_start_utc(through + timedelta(days=1))
    if db.session.get_bind().dialect.name == "postgresql":
        # Millions of rows grouped at once: room to hash them in memory instead of spilling to disk.
        db.session.execute(text("SET LOCAL work_mem = '256MB'"))
    db.session.execute(delete(LeverageFact).where(LeverageFact.day >= start) if start else delete(LeverageFact))

    claims = (
        select(local_day(Voucher.claimed_at), Voucher.campaign_id, Voucher.release_id, null(), null(), null(),
               func.count(Voucher.id), func.sum(Voucher.face_value_fen), literal(0), literal(0), literal(0),
               literal(0))
        .where(Voucher.claimed_at.is_not(None), Voucher.claimed_at < end)
        .group_by(local_day(Voucher.claimed_at), Voucher.campaign_id, Voucher.release_id)
    )
    day = local_day(Redemption.created_at)
    redemptions = (
        select(day, Redemption.campaign_id, Voucher.release_id, Merchant.category, Store.district,
               Merchant.size_class, literal(0), literal(0), func.count(Redemption.id), func.sum(Redemption.subsidy_fen),
               func.sum(Redemption.order_amount_fen), func.sum(FORCED_ORDER))
        .join(VoucherProduct, VoucherProduct.campaign_id == Redemption.campaign_id)
        .join(Voucher, Voucher.id == Redemption.voucher_id)
        .join(Merchant, Merchant.id == Redemption.merchant_id)
        .join(Store, Store.id == Redemption.store_id)
        .where(Redemption.reversed_at.is_(None), Redemption.created_at < end)
        .group_by(day, Redemption.campaign_id, Voucher.release_id, Merchant.category, Store.district,
                  Merchant.size_class)
    )
    if begin is not None:
        claims = claims.where(Voucher.claimed_at >= begin)
        redemptions = redemptions.where(Redemption.created_at >= begin)
    columns = ["day", "campaign_id", "release_id", "category", "district", "size_class", "vouchers_claimed",
               "issued_fen", "vouchers_redeemed", "subsidy_fen", "driven_fen", "floor_fen"]
    for step, (label, query) in enumerate((("领取汇总", claims), ("核销汇总", redemptions))):
        progress(label, step, STEPS + 1)
        db.session.execute(insert(LeverageFact).from_select(columns, query))
    progress("商户集合", 2, STEPS + 1)

    # Distinct merchants do not add up over days: one bitmap of merchant ids per day and campaign.
    db.session.execute(delete(LeverageMerchantDay).where(LeverageMerchantDay.day >= start) if start
                       else delete(LeverageMerchantDay))
    pairs = select(day, Redemption.campaign_id, Redemption.merchant_id).where(
        Redemption.reversed_at.is_(None), Redemption.created_at < end).distinct()
    if begin is not None:
        pairs = pairs.where(Redemption.created_at >= begin)
    _write_bitmaps(db.session.execute(pairs).all())

    state.built_through, state.built_at = through, started - REVERSAL_MARGIN
    db.session.flush()
    written = select(func.count(LeverageFact.id))
    facts = db.session.execute(written.where(LeverageFact.day >= start) if start else written).scalar_one()
    merchant_days = db.session.execute(select(func.count(LeverageMerchantDay.id))).scalar_one()
    return RefreshSummary(start, through, facts, merchant_days)


def redemption_reversed(redemption: Redemption) -> None:
    """The counter's reversal hook: a reversed redemption of a day the facts hold would stay counted
    until the next refresh, so the boundary moves back before that day (the facts after it are left for
    the refresh to replace; the reads ignore them). Under the state's lock, taken last in the reversal
    (docs/concurrency.md): a refresh running meanwhile finishes first and its boundary is then moved, or
    waits and reads the reversal committed. Reversals are rare and short; they queue behind each other here."""
    state = lock_state(NAME)
    day = to_local(redemption.created_at).date()
    if state.built_through is not None and day <= state.built_through:
        state.built_through = day - timedelta(days=1)


def _rebuild_from(state: RollupState) -> date:
    """The day after the last one built, or the earliest day with a redemption reversed since."""
    assert state.built_through is not None  # refresh() rebuilds everything when nothing was built yet
    start = state.built_through + timedelta(days=1)
    earliest = db.session.scalar(
        select(func.min(Redemption.created_at))
        .where(Redemption.reversed_at >= state.built_at, Redemption.created_at < local_day_start_utc(start))
    )
    if earliest is not None:
        start = min(start, to_local(earliest).date())
    return start


def _write_bitmaps(rows: Sequence) -> None:
    by_key: dict[tuple, list[int]] = defaultdict(list)
    for day, campaign_id, merchant_id in rows:
        by_key[day, campaign_id].append(merchant_id)
    values = []
    for (day, campaign_id), ids in sorted(by_key.items(), key=lambda item: (str(item[0][0]), item[0][1])):
        bits = np.zeros(max(ids) + 1, dtype=bool)
        bits[ids] = True
        values.append({"day": date.fromisoformat(day) if isinstance(day, str) else day, "campaign_id": campaign_id,
                       "merchants": zlib.compress(np.packbits(bits, bitorder="little").tobytes())})
    for chunk in range(0, len(values), 500):
        db.session.execute(insert(LeverageMerchantDay), values[chunk:chunk + 500])


def merchant_ids(campaign_id: int | None, date_from: date | None, date_until: date | None) -> np.ndarray:
    """The merchants with standing redemptions on the rolled-up days of a selection (sorted ids)."""
    query = select(LeverageMerchantDay.merchants)
    if campaign_id is not None:
        query = query.where(LeverageMerchantDay.campaign_id == campaign_id)
    if date_from is not None:
        query = query.where(LeverageMerchantDay.day >= date_from)
    if date_until is not None:
        query = query.where(LeverageMerchantDay.day <= date_until)
    union = np.zeros(0, dtype=np.uint8)
    for (blob,) in reads().execute(query):
        bits = np.frombuffer(zlib.decompress(blob), dtype=np.uint8)
        if len(bits) > len(union):
            union = np.concatenate([union, np.zeros(len(bits) - len(union), dtype=np.uint8)])
        union[:len(bits)] |= bits
    return np.flatnonzero(np.unpackbits(union, bitorder="little"))
