"""Importing a bank statement, matching its lines to settlement batches, and resolving the rest.

Rules:
- A file is imported whole or not at all: it is parsed and checked completely before the first insert.
- The same file twice (same SHA-256) is refused. A line is keyed by the bank's serial number across
  all statements: a later statement that overlaps an earlier one skips the lines already stored (same
  serial, date, amount and remark) and refuses the file if a known serial comes back different. A file
  holding nothing new is refused too, so re-importing a statement (even re-saved, with other bytes)
  changes nothing.
- Rows of the file that are not statement lines (合计, 笔数, page footers, blank rows) are skipped and
  listed with the reason. Lines that are not payouts (credits, interest, fees) are stored as unmatched
  lines with a note saying why: the account pays merchants by debits, so a credit line is never matched
  to a batch, whatever its remark says (a credit naming a batch is likely a returned payment).
- A payout line matches the exported or paid batch whose reference its remark carries: equal amounts give
  "matched", different ones "amount_mismatch". A batch is matched by one line only; a second line for
  it (a double payment?) stays unmatched with a note, as does a line for an unknown or not yet
  exported batch.
- Matching never touches the ledger. Confirming that a batch was paid stays a person's step
  (reconciliation.payments), offered next to each matched line whose batch is still exported:
  a statement line is evidence for the officer, not an instruction to post.
- Exported or paid batches that no line pays are "unmatched batches"; they are computed, not stored.
- Every amount mismatch, unmatched line and unmatched batch is resolved by a finance officer with a
  reason, recorded with who and when, and in the audit log.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from voucher.accounts.models import User
from voucher.core import audit
from voucher.core.clock import local_day_end_utc, utcnow
from voucher.core.db import db
from voucher.core.errors import InvalidTransition, NotFound
from voucher.core.forms import reason_text
from voucher.reconciliation import mapping as mappings
from voucher.reconciliation.errors import MalformedStatement, StatementAlreadyImported
from voucher.reconciliation.models import BankStatement, BankStatementLine, BatchResolution, MatchStatus
from voucher.reconciliation.parsing import ParsedLine, parse
from voucher.settlement.models import BatchStatus, SettlementBatch

SENT = (BatchStatus.EXPORTED.value, BatchStatus.PAID.value)


@dataclass
class ImportResult:
    statement: BankStatement
    counts: dict[str, int]
    #: lines already stored by an earlier statement
    skipped: int
    #: rows of the file that are no statement lines, with the reason ("第 12 行：汇总或页脚行（合计…）")
    skipped_rows: list[str] = field(default_factory=list)
    skipped_row_count: int = 0
    #: stored lines that are no payouts (credits, unknown directions), each with its note
    non_payout: int = 0
    #: the mapping asked for, and the one used (a bank preset the file fits, for the default)
    asked_mapping: str | None = None

    @property
    def mapping_name(self) -> str:
        return self.statement.mapping_name


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _chunks(items: list, size: int = 500):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def import_statement(content: bytes, file_name: str, mapping_name: str | None, actor: User | None,
                     now: datetime | None = None) -> ImportResult:
    now = now or utcnow()
    file_name = (file_name or "statement").strip()[-200:] or "statement"
    digest = _sha256(content)
    earlier = db.session.scalar(select(BankStatement).where(BankStatement.sha256 == digest))
    if earlier is not None:
        raise StatementAlreadyImported(
            f"该文件已于 {earlier.imported_at:%Y-%m-%d %H:%M}（UTC）导入为对账单 #{earlier.id}，未做任何更改"
        )
    mapping = mappings.load(mapping_name)
    # The default is the system's template; a bank's own export that does not fit it is read by the
    # bank's preset if one fits (the import says which).
    alternatives = mappings.presets() if mapping.kind == "builtin" else []
    parsed = parse(content, file_name, mapping, alternatives)
    name = parsed.mapping_name or mapping.name
    if parsed.problems:
        raise MalformedStatement(parsed.problems)

    new_lines, skipped, problems = _split_known(parsed.lines)
    if problems:
        raise MalformedStatement(problems)
    if not new_lines:
        raise StatementAlreadyImported(
            f"文件中的 {skipped} 条流水均已在此前的对账单中导入，未做任何更改"
        )

    non_payout = [p for p in new_lines if not p.payout]
    statement = BankStatement(
        file_name=file_name, sha256=digest, imported_at=now, imported_by_id=getattr(actor, "id", None),
        line_count=len(new_lines), skipped_count=skipped,
        # money that left the account: the debits (every line, for the one-amount template)
        total_fen=sum(p.amount_fen for p in new_lines if p.direction == "debit"),
        first_value_date=min(p.value_date for p in new_lines), last_value_date=max(p.value_date for p in new_lines),
        mapping_name=name, mapping={
            "headers": parsed.headers, "file_type": parsed.file_type, "encoding": parsed.encoding,
            "layout": parsed.layout, "header_row": parsed.header_row,
            "skipped_rows": parsed.skipped_rows, "skipped_row_count": parsed.skipped_row_count,
            "non_payout_count": len(non_payout),
            "credit_total_fen": sum(p.amount_fen for p in new_lines if p.direction == "credit"),
        },
    )
    db.session.add(statement)
    for line in _match(new_lines):
        statement.lines.append(line)
    try:
        db.session.flush()  # a concurrent import of the same file or serials loses here, not at commit
    except IntegrityError:
        raise StatementAlreadyImported("该对账单或其中的流水刚刚已被导入，未做任何更改") from None
    counts = Counter(line.match_status for line in statement.lines)
    result = ImportResult(statement, {s.value: counts.get(s.value, 0) for s in MatchStatus}, skipped,
                          parsed.skipped_rows, parsed.skipped_row_count, len(non_payout), mapping.name)
    audit.record(
        "reconciliation.import", statement, actor=actor, actor_label=None if actor else "system",
        after={"file_name": file_name, "sha256": digest, "lines": len(new_lines), "skipped": skipped,
               "total_fen": statement.total_fen, "mapping": name, **result.counts,
               "skipped_rows": parsed.skipped_row_count, "non_payout": len(non_payout)},
    )
    return result


def _split_known(lines: list[ParsedLine]) -> tuple[list[ParsedLine], int, list[str]]:
    """(new lines, how many are already stored identically, problems for serials stored differently)."""
    known: dict[str, BankStatementLine] = {}
    for chunk in _chunks([p.serial for p in lines]):
        known.update({row.serial: row for row in db.session.scalars(
            select(BankStatementLine).where(BankStatementLine.serial.in_(chunk)))})
    new, skipped, problems = [], 0, []
    for p in lines:
        stored = known.get(p.serial)
        if stored is None:
            new.append(p)
        elif (stored.value_date, stored.amount_fen, stored.reference_text) == (p.value_date, p.amount_fen,
                                                                              p.reference_text):
            skipped += 1
        else:
            problems.append(
                f"第 {p.row_number} 行：流水号「{p.serial}」已在对账单 #{stored.statement_id} 第 {stored.row_number} 行"
                f"导入，但日期、金额或附言不同，请与银行核实"
            )
    return new, skipped, problems


def _match(lines: list[ParsedLine]) -> list[BankStatementLine]:
    references = sorted({r for p in lines if p.payout for r in p.batch_references})
    batches: dict[str, SettlementBatch] = {}
    for chunk in _chunks(references):
        # Locked: two imports at once cannot both match one batch.
        batches.update({b.reference: b for b in db.session.scalars(
            select(SettlementBatch).where(SettlementBatch.reference.in_(chunk)).order_by(SettlementBatch.id)
            .with_for_update())})
    claimed: dict[int | None, str] = {}  # batch id -> the serial of the line that matched it
    for chunk in _chunks([b.id for b in batches.values()]):
        claimed.update({batch_id: serial for batch_id, serial in db.session.execute(
            select(BankStatementLine.batch_id, BankStatementLine.serial)
            .where(BankStatementLine.batch_id.in_(chunk)))})

    out = []
    for p in lines:
        status, batch, note = MatchStatus.UNMATCHED_LINE, None, None
        if not p.payout:
            note = p.note  # a credit, or a direction the mapping does not know: never a payout
        elif not p.batch_references and p.unclear_references:
            note = f"附言中的批次号 {'、'.join(p.unclear_references)} 后紧接其他数字，无法确定批次号"
        elif not p.batch_references:
            note = p.note or "附言中没有结算批次号"
        elif len(p.batch_references) > 1:
            note = f"附言中有多个批次号：{'、'.join(p.batch_references)}"
        else:
            reference = p.batch_references[0]
            candidate = batches.get(reference)
            if candidate is None:
                note = f"没有批次号为 {reference} 的结算批次"
            elif candidate.status not in SENT:
                note = f"批次 {reference} 尚未导出付款文件"
            elif candidate.id in claimed:
                note = f"批次 {reference} 已由流水 {claimed[candidate.id]} 匹配，可能重复付款"
            else:
                batch = candidate
                claimed[batch.id] = p.serial
                status = (MatchStatus.MATCHED if p.amount_fen == batch.amount_fen else MatchStatus.AMOUNT_MISMATCH)
        out.append(BankStatementLine(
            row_number=p.row_number, serial=p.serial, value_date=p.value_date, reference_text=p.reference_text,
            batch_reference=p.batch_references[0] if len(p.batch_references) == 1 else None,
            payee_name=p.payee_name, payee_account=p.payee_account, amount_fen=p.amount_fen,
            match_status=status.value, batch_id=batch.id if batch else None, batch=batch,
            note=note if note is None or len(note) <= 200 else note[:199] + "…",
        ))
    return out


# Reading ------------------------------------------------------------------------------------------------


@dataclass
class StatementSummary:
    statement: BankStatement
    counts: dict[str, int] = field(default_factory=dict)
    #: unresolved amount mismatches and unmatched lines
    open_count: int = 0


def statements() -> list[StatementSummary]:
    rows = list(db.session.scalars(select(BankStatement).order_by(BankStatement.id.desc())))
    summaries = {s.id: StatementSummary(s, {m.value: 0 for m in MatchStatus}) for s in rows}
    grouped = db.session.execute(
        select(BankStatementLine.statement_id, BankStatementLine.match_status,
               func.count(BankStatementLine.id), func.count(BankStatementLine.resolved_at))
        .group_by(BankStatementLine.statement_id, BankStatementLine.match_status)
    )
    for statement_id, status, count, resolved in grouped:
        summary = summaries[statement_id]
        summary.counts[status] = count
        if status != MatchStatus.MATCHED.value:
            summary.open_count += count - resolved
    return list(summaries.values())


def get_statement(statement_id: int) -> BankStatement:
    statement = db.session.get(BankStatement, statement_id)
    if statement is None:
        raise NotFound("找不到该对账单")
    return statement


def unmatched_batches(until: date | None = None) -> list[tuple[SettlementBatch, BatchResolution | None]]:
    """Exported or paid batches that no statement line pays (exported by the end of `until`, a local
    day), each with its resolution if an officer gave one."""
    paid_by_line = select(BankStatementLine.id).where(BankStatementLine.batch_id == SettlementBatch.id).exists()
    query = (
        select(SettlementBatch, BatchResolution)
        .outerjoin(BatchResolution, BatchResolution.batch_id == SettlementBatch.id)
        .where(SettlementBatch.status.in_(SENT), ~paid_by_line)
        .order_by(SettlementBatch.business_date, SettlementBatch.id)
    )
    if until is not None:
        query = query.where(SettlementBatch.exported_at <= local_day_end_utc(until))
    return [(batch, resolution) for batch, resolution in db.session.execute(query)]


@dataclass
class StatementSections:
    statement: BankStatement
    matched: list[BankStatementLine]
    amount_mismatch: list[BankStatementLine]
    unmatched_lines: list[BankStatementLine]
    unmatched_batches: list[tuple[SettlementBatch, BatchResolution | None]]

    @property
    def open_count(self) -> int:
        return (sum(1 for line in self.amount_mismatch + self.unmatched_lines if line.resolved_at is None)
                + sum(1 for _, resolution in self.unmatched_batches if resolution is None))


def sections(statement_id: int) -> StatementSections:
    """The statement's four sections. Unmatched batches are those exported by the statement's last
    value date that no line of any statement pays: a batch exported after the period cannot be on it."""
    statement = get_statement(statement_id)
    by_status: dict[str, list[BankStatementLine]] = {s.value: [] for s in MatchStatus}
    for line in statement.lines:
        by_status[line.match_status].append(line)
    return StatementSections(
        statement, by_status[MatchStatus.MATCHED.value], by_status[MatchStatus.AMOUNT_MISMATCH.value],
        by_status[MatchStatus.UNMATCHED_LINE.value], unmatched_batches(statement.last_value_date),
    )


# Resolving ----------------------------------------------------------------------------------------------


def resolve_line(line_id: int, reason: str | None, actor: User, now: datetime | None = None) -> BankStatementLine:
    """Close an amount mismatch or an unmatched bank line with the officer's reason."""
    reason = reason_text(reason, missing="请填写处理原因", label="处理原因")
    line = db.session.scalar(
        select(BankStatementLine).where(BankStatementLine.id == line_id).with_for_update()
        .execution_options(populate_existing=True)
    )
    if line is None:
        raise NotFound("找不到该银行流水")
    if line.status_enum is MatchStatus.MATCHED:
        raise InvalidTransition("已匹配的流水无需处理")
    if line.resolved_at is not None:
        raise InvalidTransition(f"流水 {line.serial} 已处理（{line.resolved_at:%Y-%m-%d %H:%M} UTC）")
    line.resolution, line.resolved_at, line.resolved_by_id = reason, now or utcnow(), actor.id
    audit.record("reconciliation.resolve_line", line, actor=actor, before={"match_status": line.match_status},
                 after={"serial": line.serial, "amount_fen": line.amount_fen, "batch_id": line.batch_id,
                        "resolution": reason})
    return line


def resolve_batch(batch_id: int, reason: str | None, actor: User, now: datetime | None = None) -> BatchResolution:
    """Explain an exported or paid batch that no statement line pays."""
    reason = reason_text(reason, missing="请填写处理原因", label="处理原因")
    batch = db.session.scalar(select(SettlementBatch).where(SettlementBatch.id == batch_id).with_for_update())
    if batch is None:
        raise NotFound("找不到该结算批次")
    if batch.status not in SENT:
        raise InvalidTransition(f"批次 {batch.reference} 尚未导出，无需对账")
    if db.session.scalar(select(BankStatementLine.serial).where(BankStatementLine.batch_id == batch.id)):
        raise InvalidTransition(f"批次 {batch.reference} 已有银行流水匹配，无需处理")
    if db.session.scalar(select(BatchResolution).where(BatchResolution.batch_id == batch.id)) is not None:
        raise InvalidTransition(f"批次 {batch.reference} 已处理")
    resolution = BatchResolution(batch_id=batch.id, resolution=reason, resolved_at=now or utcnow(),
                                 resolved_by_id=actor.id)
    db.session.add(resolution)
    db.session.flush()  # the id, for the audit entry
    audit.record("reconciliation.resolve_batch", resolution, actor=actor,
                 after={"batch_id": batch.id, "reference": batch.reference, "amount_fen": batch.amount_fen,
                        "resolution": reason})
    return resolution
