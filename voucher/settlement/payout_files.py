"""Numbered payout files: the only way a batch goes to the bank.

- Creating a file (a POST, never a download) takes every pending batch (of one business day, if asked),
  leaves out those whose merchant lacks complete bank details (listed with the reason, in the file's
  summary and on the page), writes the file once, keeps its bytes, and marks the batches exported in it.
  Two officers creating at once queue on one lock; the second finds nothing pending.
- Downloading a file returns the kept bytes: the same file however often, and no state changes.
- A batch stays in its file. Re-issuing it in a new file (the bank refused the file, lost it) takes a
  reason, is refused once a bank line has paid or claimed the batch, marks the old item superseded and
  is audited: the one deliberate path by which a batch can reach the bank twice.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select

from voucher.accounts.models import User
from voucher.core import audit
from voucher.core.clock import to_local, utcnow
from voucher.core.db import db, serialize
from voucher.core.errors import InvalidInput, InvalidTransition, NotFound
from voucher.core.forms import reason_text
from voucher.merchants.models import Merchant
from voucher.settlement import payout_file
from voucher.settlement.models import BatchStatus, PayoutFile, PayoutFileItem, SettlementBatch

#: mainland bank account numbers: digits only, 8 to 30 of them once spaces are taken out
_ACCOUNT = re.compile(r"^[0-9]{8,30}$")


@dataclass
class HeldOut:
    batch: SettlementBatch
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"reference": self.batch.reference, "merchant": self.batch.merchant.name, "reason": self.reason}


@dataclass
class Preview:
    """What creating a file would do now: the batches it would carry and those it would leave out."""
    ready: list[SettlementBatch] = field(default_factory=list)
    held_out: list[HeldOut] = field(default_factory=list)

    @property
    def total_fen(self) -> int:
        return sum(b.amount_fen for b in self.ready)


def missing_bank_details(merchant: Merchant) -> str | None:
    """Why the bank could not pay this merchant, or None when its details are complete."""
    missing = [label for label, value in (("开户名", merchant.bank_account_name), ("开户银行", merchant.bank_name),
                                          ("银行账号", merchant.bank_account_no)) if not (value or "").strip()]
    if missing:
        return f"商户结算信息缺少{'、'.join(missing)}"
    if not _ACCOUNT.match("".join((merchant.bank_account_no or "").split())):
        return "银行账号应为 8–30 位数字"
    return None


def _pending(business_date: date | None, lock: bool) -> list[SettlementBatch]:
    query = (select(SettlementBatch).where(SettlementBatch.status == BatchStatus.PENDING.value)
             .order_by(SettlementBatch.id))
    if business_date is not None:
        query = query.where(SettlementBatch.business_date == business_date)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return list(db.session.scalars(query))


def _split(batches: list[SettlementBatch]) -> Preview:
    preview = Preview()
    for batch in batches:
        reason = missing_bank_details(batch.merchant)
        if reason:
            preview.held_out.append(HeldOut(batch, reason))
        else:
            preview.ready.append(batch)
    return preview


def preview(business_date: date | None = None) -> Preview:
    return _split(_pending(business_date, lock=False))


def _write(batches: list[SettlementBatch], actor: User | None, now: datetime, business_date: date | None,
           held_out: list[HeldOut], reissue_reason: str | None = None) -> PayoutFile:
    total = sum(b.amount_fen for b in batches)
    file = PayoutFile(number=f"TMP-{now.timestamp()}", created_at=now, created_by_id=getattr(actor, "id", None),
                      business_date=business_date, batch_count=len(batches), total_fen=total,
                      reissue_reason=reissue_reason, held_out=[h.as_dict() for h in held_out],
                      csv_bytes=b"", xlsx_bytes=b"")
    db.session.add(file)
    db.session.flush()  # the id makes the number
    file.number = f"FK{to_local(now):%Y%m%d}-{file.id:05d}"
    file.csv_bytes = payout_file.as_csv(batches, file.number)
    file.xlsx_bytes = payout_file.as_xlsx(batches, file.number, now, [h.as_dict() for h in held_out])
    for batch in batches:
        db.session.add(PayoutFileItem(payout_file_id=file.id, batch_id=batch.id, amount_fen=batch.amount_fen))
        batch.status = BatchStatus.EXPORTED.value
        batch.exported_at = now
        batch.payout_file_id = file.id
    db.session.flush()
    return file


def create(actor: User | None, business_date: date | None = None, now: datetime | None = None) -> PayoutFile:
    """A new payout file of the pending batches (of `business_date`, if given)."""
    now = now or utcnow()
    serialize("settlement.payout_file")  # two officers at once: the second waits, then finds nothing new
    split = _split(_pending(business_date, lock=True))
    if not split.ready:
        if split.held_out:
            raise InvalidInput(f"没有可导出的批次：{len(split.held_out)} 个待支付批次的商户结算信息不完整，"
                               f"请先补全（{split.held_out[0].batch.merchant.name}：{split.held_out[0].reason}）")
        raise InvalidInput("没有待支付的结算批次，无需生成付款文件（已导出的批次请在原付款文件中下载）")
    file = _write(split.ready, actor, now, business_date, split.held_out)
    audit.record("settlement.payout_file", file, actor=actor, actor_label=None if actor else "system",
                 after={"number": file.number, "batches": file.batch_count, "total_fen": file.total_fen,
                        "business_date": business_date, "held_out": [h.as_dict() for h in split.held_out]})
    return file


def reissue(batch_ids: list[int], reason: str | None, actor: User, bank_claimed: set[int],
            now: datetime | None = None) -> PayoutFile:
    """Put exported batches into a new file, with a reason. `bank_claimed` are the ids, among these,
    that a bank statement line already pays or claims (the caller, reconciliation, knows the bank)."""
    reason = reason_text(reason, missing="重新导出须填写原因（例如：银行退回付款文件）")
    now = now or utcnow()
    if not batch_ids:
        raise InvalidInput("请选择要重新导出的批次")
    serialize("settlement.payout_file")
    batches = list(db.session.scalars(
        select(SettlementBatch).where(SettlementBatch.id.in_(sorted(set(batch_ids)))).order_by(SettlementBatch.id)
        .with_for_update().execution_options(populate_existing=True)))
    if len(batches) != len(set(batch_ids)):
        raise NotFound("找不到所选的部分结算批次")
    for batch in batches:
        if batch.status_enum is not BatchStatus.EXPORTED:
            raise InvalidTransition(f"批次 {batch.reference} 状态为「{batch.status_enum.label}」，只有已导出待确认的批次可以重新导出")
        if batch.id in bank_claimed:
            raise InvalidTransition(f"批次 {batch.reference} 已有银行流水，重新导出会重复付款")
        why = missing_bank_details(batch.merchant)
        if why:
            raise InvalidInput(f"批次 {batch.reference}：{why}，请先补全")
    previous = {b.id: b.payout_file_id for b in batches}
    file = _write(batches, actor, now, None, [], reissue_reason=reason)
    for item in db.session.scalars(select(PayoutFileItem).where(
            PayoutFileItem.batch_id.in_(list(previous)), PayoutFileItem.payout_file_id != file.id,
            PayoutFileItem.superseded_by_id.is_(None))):
        item.superseded_by_id = file.id
    audit.record("settlement.payout_reissue", file, actor=actor,
                 after={"number": file.number, "reason": reason, "total_fen": file.total_fen,
                        "batches": {b.reference: previous[b.id] for b in batches}})
    return file


def get(file_id: int) -> PayoutFile:
    file = db.session.get(PayoutFile, file_id)
    if file is None:
        raise NotFound("找不到该付款文件")
    return file


def recent(limit: int = 20) -> list[PayoutFile]:
    return list(db.session.scalars(select(PayoutFile).order_by(PayoutFile.id.desc()).limit(limit)))
