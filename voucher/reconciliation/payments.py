"""Confirming that the bank paid a batch: the step that moves money spent -> settled.

A confirmation rests on evidence, recorded with it:
- "bank_line": an imported statement line matched to the batch with the same amount. A line for
  333.30 against a batch of 333.33 (金额不符) is no evidence: the officer resolves it or overrides.
- "override": no such line (the statement is late, the bank merged payments), so one finance officer
  asks for an exception with a reason and a second, different officer confirms it. Neither can do
  both: one person alone never marks money paid that the bank does not show.
Only exported batches can be confirmed: a batch never sent to the bank cannot have been paid. Bulk
confirmation takes the batches with a matched line, in id order (the system's lock order), each once.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from voucher.accounts.models import User
from voucher.core import audit
from voucher.core.clock import utcnow
from voucher.core.db import db
from voucher.core.errors import InvalidTransition, NotFound
from voucher.core.forms import reason_text
from voucher.core.money import format_yuan
from voucher.reconciliation.models import BankStatementLine, MatchStatus
from voucher.settlement import batches as settlement
from voucher.settlement.models import BatchStatus, SettlementBatch


@dataclass
class Evidence:
    """What the bank shows for one batch."""
    line: BankStatementLine | None = None

    @property
    def matched(self) -> bool:
        return self.line is not None and self.line.status_enum is MatchStatus.MATCHED

    @property
    def label(self) -> str:
        if self.line is None:
            return "银行流水未到"
        return f"{self.line.status_enum.label}（流水 {self.line.serial}）"


def evidence_for(batch_ids: list[int]) -> dict[int, Evidence]:
    """Each batch's bank line, if an imported statement has one (a batch is matched by one line)."""
    found: dict[int, Evidence] = {i: Evidence() for i in batch_ids}
    for start in range(0, len(batch_ids), 500):
        for line in db.session.scalars(select(BankStatementLine).where(
                BankStatementLine.batch_id.in_(batch_ids[start:start + 500]))):
            assert line.batch_id is not None  # selected by its batch
            found[line.batch_id] = Evidence(line)
    return found


def bank_claimed(batch_ids: list[int]) -> set[int]:
    """The batches a statement line pays or claims: re-issuing any of them could pay it twice."""
    return {i for i, e in evidence_for(batch_ids).items() if e.line is not None}


def _line_of(batch: SettlementBatch) -> BankStatementLine | None:
    return db.session.scalar(select(BankStatementLine).where(BankStatementLine.batch_id == batch.id))


def confirm_paid(batch_id: int, actor: User, now: datetime | None = None) -> SettlementBatch:
    """Confirm one batch on its evidence: a matched bank line, or another officer's override request."""
    batch = settlement.lock_batch(batch_id)  # statement imports lock the batch too: no line arrives mid-way
    if batch.status_enum is BatchStatus.PAID:
        raise InvalidTransition(f"批次 {batch.reference} 已确认支付")
    if batch.status_enum is not BatchStatus.EXPORTED:
        raise InvalidTransition(f"批次 {batch.reference} 尚未导出付款文件，不能确认支付")
    line = _line_of(batch)
    if line is not None and line.status_enum is MatchStatus.MATCHED:
        return settlement.record_paid(batch, actor, "bank_line", now, {"serial": line.serial})
    if batch.override_requested_by_id is None:
        if line is not None:
            raise InvalidTransition(
                f"批次 {batch.reference} 银行流水 {line.serial} 金额 {format_yuan(line.amount_fen)} 元与批次金额 "
                f"{format_yuan(batch.amount_fen)} 元不符，不能确认支付：请与银行核实差额；如确已足额支付，"
                f"可填写原因申请例外确认，由另一位财务人员复核")
        raise InvalidTransition(f"批次 {batch.reference} 尚无匹配的银行流水，不能确认支付：请导入银行对账单核对，"
                                f"或填写原因申请例外确认，由另一位财务人员复核")
    if batch.override_requested_by_id == actor.id:
        raise InvalidTransition(f"批次 {batch.reference} 的例外确认由您本人申请，须由另一位财务人员复核确认")
    return settlement.record_paid(batch, actor, "override", now, {
        "override_reason": batch.override_reason, "override_requested_by_id": batch.override_requested_by_id})


def request_override(batch_id: int, reason: str | None, actor: User, now: datetime | None = None) -> SettlementBatch:
    """Ask a second officer to confirm an exported batch that no matched bank line pays."""
    text = reason_text(reason, missing="请填写例外确认的原因（例如：银行回单编号、与银行核实的情况）")
    batch = settlement.lock_batch(batch_id)
    if batch.status_enum is not BatchStatus.EXPORTED:
        raise InvalidTransition(f"批次 {batch.reference} 状态为「{batch.status_enum.label}」，无需例外确认")
    line = _line_of(batch)
    if line is not None and line.status_enum is MatchStatus.MATCHED:
        raise InvalidTransition(f"批次 {batch.reference} 已有金额一致的银行流水，可直接确认支付")
    if batch.override_requested_by_id is not None:
        raise InvalidTransition(f"批次 {batch.reference} 已有例外确认申请，待另一位财务人员复核")
    batch.override_reason, batch.override_requested_by_id = text, actor.id
    batch.override_requested_at = now or utcnow()
    audit.record("settlement.paid_override_request", batch, actor=actor,
                 after={"reference": batch.reference, "amount_fen": batch.amount_fen, "reason": text,
                        "bank_line": line.serial if line is not None else None})
    return batch


def withdraw_override(batch_id: int, actor: User) -> SettlementBatch:
    """The requester takes back an override request nobody has confirmed yet (the bank's line arrived after
    all, or the reason was wrong): the batch waits for evidence again, and a new request may follow. Takes
    the batch's lock, as a confirmation does, so of the two at once one wins and the other is told why."""
    batch = settlement.lock_batch(batch_id)
    if batch.status_enum is BatchStatus.PAID:
        raise InvalidTransition(f"批次 {batch.reference} 已确认支付，例外确认申请不能再撤回")
    if batch.override_requested_by_id is None:
        raise InvalidTransition(f"批次 {batch.reference} 没有待复核的例外确认申请")
    if batch.override_requested_by_id != actor.id:
        raise InvalidTransition(f"批次 {batch.reference} 的例外确认申请只能由申请人撤回；如不同意，请不要复核确认")
    before = {"reason": batch.override_reason, "requested_at": batch.override_requested_at}
    batch.override_reason = batch.override_requested_by_id = batch.override_requested_at = None
    audit.record("settlement.paid_override_withdraw", batch, actor=actor, before=before,
                 after={"reference": batch.reference})
    return batch


@dataclass
class BulkResult:
    confirmed: list[SettlementBatch] = field(default_factory=list)

    @property
    def total_fen(self) -> int:
        return sum(b.amount_fen for b in self.confirmed)


def confirm_all_matched(actor: User, statement_id: int | None = None, now: datetime | None = None) -> BulkResult:
    """Confirm every exported batch that a matched line (of one statement, if given) pays."""
    query = (select(BankStatementLine.batch_id)
             .join(SettlementBatch, SettlementBatch.id == BankStatementLine.batch_id)
             .where(BankStatementLine.match_status == MatchStatus.MATCHED.value,
                    SettlementBatch.status == BatchStatus.EXPORTED.value)
             .order_by(BankStatementLine.batch_id))
    if statement_id is not None:
        query = query.where(BankStatementLine.statement_id == statement_id)
    result = BulkResult()
    for batch_id in db.session.scalars(query):
        assert batch_id is not None  # joined to its batch
        batch = settlement.lock_batch(batch_id)
        if batch.status_enum is BatchStatus.EXPORTED:  # another officer may have confirmed it meanwhile
            result.confirmed.append(confirm_paid(batch.id, actor, now))
    if not result.confirmed:
        raise InvalidTransition("没有可确认的批次：没有已导出待确认、且有金额一致银行流水的批次")
    return result


def confirm_line_paid(line_id: int, actor: User, now: datetime | None = None) -> SettlementBatch:
    """From a statement's matched line: confirm its batch."""
    line = db.session.get(BankStatementLine, line_id)
    if line is None:
        raise NotFound("找不到该银行流水")
    if line.status_enum is not MatchStatus.MATCHED:
        raise InvalidTransition("只有金额一致的已匹配流水可以据此确认支付")
    assert line.batch_id is not None  # a matched line names its batch
    return confirm_paid(line.batch_id, actor, now)
