"""Building settlement batches and recording their payout.

A batch for business day D holds every redemption of a merchant, created before the end of D, that
is not reversed and not settled yet, split by funder as the ledger split it. Redemptions of a merchant
held for risk review wait; once a reviewer clears the merchant they join the next batch. A batch moves
money spent -> settled only when finance confirms the bank paid it.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from flask import current_app
from sqlalchemy import Select, exists, func, select

from voucher.accounts.models import User
from voucher.core import audit
from voucher.core.clock import local_day_end_utc, to_local, utcnow
from voucher.core.db import db, serialize
from voucher.core.errors import InvalidInput, InvalidTransition, NotFound
from voucher.core.upsert import insert_ignore
from voucher.ledger import services as ledger
from voucher.ledger.models import AccountKind, EntryKind
from voucher.merchants.models import Merchant, Redemption, RiskFlag
from voucher.settlement.models import BatchStatus, SettlementBatch, SettlementItem


@dataclass
class BuildResult:
    business_date: date
    batches: list[SettlementBatch] = field(default_factory=list)
    #: merchant id -> fen waiting for a risk review
    held: dict[int, int] = field(default_factory=dict)

    @property
    def total_fen(self) -> int:
        return sum(b.amount_fen for b in self.batches)


def latest_buildable_day(now: datetime | None = None) -> date:
    """The last business day whose redemptions can no longer be reversed."""
    now = now or utcnow()
    window = timedelta(minutes=current_app.config["REVERSAL_WINDOW_MINUTES"])
    day = to_local(now - window).date()
    return day if local_day_end_utc(day) <= now - window else day - timedelta(days=1)


def unsettled_parts(cutoff: datetime, merchant_ids: set[int] | None = None):
    """(redemption, merchant, campaign, source, fen) for every live redemption before `cutoff` that
    no batch holds yet: the spent-side postings of its redemption entry, one per funder."""
    spent = ledger.lines_by_ref("redemption", EntryKind.REDEMPTION, AccountKind.SPENT)
    query = (
        select(Redemption.id, Redemption.merchant_id, Redemption.campaign_id, spent.c.funding_source_id,
               spent.c.amount_fen)
        .join(spent, spent.c.ref_id == Redemption.id)
        .where(
            Redemption.reversed_at.is_(None),
            Redemption.created_at < cutoff,
            ~exists().where(SettlementItem.redemption_id == Redemption.id,
                            SettlementItem.funding_source_id == spent.c.funding_source_id),
        )
        .order_by(Redemption.merchant_id, spent.c.funding_source_id, Redemption.id)
    )
    if merchant_ids is not None:
        query = query.where(Redemption.merchant_id.in_(merchant_ids))
    return db.session.execute(query).all()


def build_batches(business_date: date, actor: User | None = None, now: datetime | None = None) -> BuildResult:
    """Build the day's batches (idempotent: a second build of the same day adds only what is new)."""
    now = now or utcnow()
    if business_date > latest_buildable_day(now):
        raise InvalidInput(
            f"{business_date:%Y-%m-%d} 的核销尚在撤销时限内或当日未结束，最早可结算到 {latest_buildable_day(now):%Y-%m-%d}"
        )
    # Every build takes every unsettled redemption up to its day's end, so two builds at once (two
    # officers, or one and the nightly job) would insert the same items: they queue instead.
    serialize("settlement.build")
    cutoff = local_day_end_utc(business_date)
    held_merchants = set(open_flags_by_merchant())
    result = BuildResult(business_date)
    groups: dict[tuple[int, int, int], list[tuple[int, int]]] = defaultdict(list)
    for redemption_id, merchant_id, campaign_id, source_id, amount in unsettled_parts(cutoff):
        if merchant_id in held_merchants:
            result.held[merchant_id] = result.held.get(merchant_id, 0) + amount
            continue
        groups[(merchant_id, campaign_id, source_id)].append((redemption_id, amount))

    for (merchant_id, campaign_id, source_id), parts in groups.items():
        amount = sum(a for _, a in parts)
        # ON CONFLICT: a concurrent build of the same day (the scheduler and a finance officer) gets
        # the batch once; the loser skips this merchant and source.
        batch_id = db.session.scalar(
            insert_ignore(SettlementBatch).values(
                reference=f"TMP-{business_date:%Y%m%d}-{merchant_id}-{source_id}", business_date=business_date,
                merchant_id=merchant_id, campaign_id=campaign_id, funding_source_id=source_id, amount_fen=amount,
                redemption_count=len(parts), status=BatchStatus.PENDING.value, created_at=now,
            ).returning(SettlementBatch.id)
        )
        if batch_id is None:
            continue
        batch = db.session.get_one(SettlementBatch, batch_id)  # inserted just above
        batch.reference = reference_for(batch)
        db.session.execute(
            SettlementItem.__table__.insert(),
            [{"batch_id": batch_id, "redemption_id": r, "funding_source_id": source_id, "amount_fen": a}
             for r, a in parts],
        )
        result.batches.append(batch)
    db.session.flush()
    audit.record(
        "settlement.build", SettlementBatch(), actor=actor, actor_label=None if actor else "system",
        after={"business_date": business_date, "batches": len(result.batches), "total_fen": result.total_fen,
               "held_merchants": sorted(result.held)},
    )
    return result


def reference_for(batch: SettlementBatch) -> str:
    """JS + business day + batch id: short, unique, and typeable into a bank's remittance note."""
    return f"JS{batch.business_date:%Y%m%d}{batch.id:06d}"


def lock_batch(batch_id: int) -> SettlementBatch:
    batch = db.session.scalar(
        select(SettlementBatch).where(SettlementBatch.id == batch_id).with_for_update()
        .execution_options(populate_existing=True)
    )
    if batch is None:
        raise NotFound("找不到该结算批次")
    return batch


def record_paid(batch: SettlementBatch, actor: User, evidence: str, now: datetime | None = None,
                audit_extra: dict | None = None) -> SettlementBatch:
    """Move a locked, exported batch's amount spent -> settled for its funder, once. Whether the bank
    paid it is for the caller to establish (reconciliation.payments: a matched bank line, or an override
    agreed by two officers); `evidence` records which."""
    now = now or utcnow()
    if batch.status_enum is BatchStatus.PAID:
        raise InvalidTransition(f"批次 {batch.reference} 已确认支付")
    if batch.status_enum is not BatchStatus.EXPORTED:
        raise InvalidTransition(f"批次 {batch.reference} 尚未导出付款文件，不能确认支付")
    sources = [s for s in ledger.source_accounts(batch.campaign_id) if s.source_id == batch.funding_source_id]
    lines = ledger.transfer_lines(sources, AccountKind.SPENT, AccountKind.SETTLED, batch.amount_fen,
                                  parts=[batch.amount_fen])
    ledger.require_balance(sources, AccountKind.SPENT, lines)
    ledger.post(
        EntryKind.SETTLEMENT.value, batch.campaign_id, lines, memo=f"结算支付 {batch.reference}",
        ref=("settlement_batch", batch.id), actor_id=actor.id,
    )
    before = batch.status
    batch.status = BatchStatus.PAID.value
    batch.paid_at = now
    batch.confirmed_by_id = actor.id
    batch.paid_evidence = evidence
    audit.record("settlement.paid", batch, actor=actor, before={"status": before},
                 after={"status": batch.status, "amount_fen": batch.amount_fen, "reference": batch.reference,
                        "evidence": evidence, **(audit_extra or {})})
    return batch


def _batch_conditions(business_date: date | None, status: str | None) -> list:
    found = []
    if business_date is not None:
        found.append(SettlementBatch.business_date == business_date)
    if status:
        found.append(SettlementBatch.status == status)
    return found


def batch_query(business_date: date | None = None, status: str | None = None) -> Select[SettlementBatch]:
    """The finance list's batches under its filters, newest business day first (it pages through them)."""
    return (select(SettlementBatch).where(*_batch_conditions(business_date, status))
            .order_by(SettlementBatch.business_date.desc(), SettlementBatch.id))


def batch_total(business_date: date | None = None, status: str | None = None) -> int:
    """The fen of every batch under the filters, not only of the page shown."""
    return int(db.session.scalar(select(func.coalesce(func.sum(SettlementBatch.amount_fen), 0))
                                 .where(*_batch_conditions(business_date, status))) or 0)


def exported_ids() -> list[int]:
    """Every batch in a payout file and not yet confirmed paid: what 批量确认 acts on, whatever is filtered."""
    return list(db.session.scalars(select(SettlementBatch.id).where(
        SettlementBatch.status == BatchStatus.EXPORTED.value).order_by(SettlementBatch.id)))


def open_flags_by_merchant() -> dict[int, int]:
    """Merchants with open flags (settlement holds them until a reviewer clears every one)."""
    rows = db.session.execute(
        select(RiskFlag.merchant_id, func.count(RiskFlag.id)).where(RiskFlag.status == "open")
        .group_by(RiskFlag.merchant_id)
    )
    return dict(rows.all())


def held_amounts(now: datetime | None = None) -> list[tuple[Merchant, int, int]]:
    """Merchants held for review: (merchant, open flags, fen waiting) for everything buildable now."""
    flags = open_flags_by_merchant()
    if not flags:
        return []
    cutoff = local_day_end_utc(latest_buildable_day(now))
    waiting: dict[int, int] = defaultdict(int)
    for _, merchant_id, _, _, amount in unsettled_parts(cutoff, set(flags)):
        waiting[merchant_id] += amount
    merchants = {m.id: m for m in db.session.scalars(select(Merchant).where(Merchant.id.in_(flags)))}
    return [(merchants[m], flags[m], waiting.get(m, 0)) for m in sorted(flags)]


def settled_redemption(redemption_id: int) -> bool:
    return db.session.execute(
        select(func.count(SettlementItem.id)).where(SettlementItem.redemption_id == redemption_id)
    ).scalar_one() > 0
