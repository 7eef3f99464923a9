"""Bank statements, their lines, saved column mappings, and the resolutions of unmatched batches."""
from __future__ import annotations

import enum
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, CheckConstraint, Date, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from voucher.core.db import Model, created_at, fen, intpk
from voucher.core.enum_check import one_of

if TYPE_CHECKING:
    from voucher.accounts.models import User
    from voucher.settlement.models import SettlementBatch


class MatchStatus(str, enum.Enum):
    MATCHED = "matched"  # reference found, amount equal
    AMOUNT_MISMATCH = "amount_mismatch"  # reference found, amount differs
    UNMATCHED_LINE = "unmatched_line"  # no exported/paid batch claims this line

    @property
    def label(self) -> str:
        return {"matched": "已匹配", "amount_mismatch": "金额不符", "unmatched_line": "银行流水未匹配"}[self.value]


class StatementMapping(Model):
    """A saved column mapping: for each statement field, the header names the bank uses for it
    (and "amount_sign" when negative amounts are the payouts). The built-in default and the bank presets
    live in code (reconciliation.mapping.DEFAULT_MAPPING, reconciliation.presets), not in this table."""

    __tablename__ = "statement_mappings"

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(40), unique=True)
    #: {field: [header, alternative header, ...]}; the first header present in the file is used
    columns: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[created_at]
    updated_at: Mapped[datetime | None] = mapped_column(DateTime)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class BankStatement(Model):
    """One imported statement file. The file's SHA-256 is unique: importing the same file again is
    refused and changes nothing."""

    __tablename__ = "bank_statements"
    __table_args__ = (
        CheckConstraint("line_count >= 0", name="line_count_not_negative"),
        CheckConstraint("skipped_count >= 0", name="skipped_count_not_negative"),
        CheckConstraint("total_fen >= 0", name="total_not_negative"),
    )

    id: Mapped[intpk]
    file_name: Mapped[str] = mapped_column(String(200))
    #: hex SHA-256 of the uploaded bytes
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    imported_at: Mapped[created_at]
    #: null when imported from the command line
    imported_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: the lines stored from this file (new bank serial numbers)
    line_count: Mapped[int] = mapped_column(Integer)
    #: lines skipped because an earlier statement already holds the same serial with the same content
    skipped_count: Mapped[int] = mapped_column(Integer, default=0)
    #: sum of the stored debit lines, the money that left the account (every line, for the one-amount
    #: template); credits are kept apart in mapping["credit_total_fen"]
    total_fen: Mapped[fen]
    first_value_date: Mapped[date | None] = mapped_column(Date)
    last_value_date: Mapped[date | None] = mapped_column(Date)
    mapping_name: Mapped[str] = mapped_column(String(40))
    #: the import as read, kept so it can be explained later: {"headers": {field: header found},
    #: "file_type", "encoding", "layout" (debit_credit | amount_flag | signed_amount | amount), "header_row",
    #: "skipped_rows": ["第 12 行：汇总或页脚行（合计…），未导入", ...], "skipped_row_count",
    #: "non_payout_count", "credit_total_fen"} (statements imported before the presets hold the first three)
    mapping: Mapped[dict[str, Any]] = mapped_column(JSON)

    imported_by: Mapped[User | None] = relationship("User")
    lines: Mapped[list[BankStatementLine]] = relationship(
        back_populates="statement", order_by="BankStatementLine.row_number"
    )


class BankStatementLine(Model):
    """One payment on a bank statement. The bank serial number is unique across all statements, so a
    payment in two overlapping statements is stored (and matched) once."""

    __tablename__ = "bank_statement_lines"
    __table_args__ = (
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        one_of("match_status", MatchStatus, name="match_status_known"),
        # matched and amount_mismatch lines point at their batch; an unmatched line points at none
        CheckConstraint("(match_status = 'unmatched_line') = (batch_id IS NULL)", name="batch_iff_matched"),
        CheckConstraint("(resolved_at IS NULL) = (resolution IS NULL)", name="resolution_has_time"),
        Index("ix_bank_statement_lines_statement", "statement_id", "row_number"),
    )

    id: Mapped[intpk]
    statement_id: Mapped[int] = mapped_column(ForeignKey("bank_statements.id"))
    #: the row number as the user sees it in a spreadsheet (header is row 1)
    row_number: Mapped[int]
    #: the bank's serial number (流水号)
    serial: Mapped[str] = mapped_column(String(64), unique=True)
    value_date: Mapped[date] = mapped_column(Date)
    #: the remark as written in the file (附言/摘要)
    reference_text: Mapped[str] = mapped_column(String(200))
    #: the batch reference found in the remark, if any
    batch_reference: Mapped[str | None] = mapped_column(String(32), index=True)
    payee_name: Mapped[str | None] = mapped_column(String(120))
    payee_account: Mapped[str | None] = mapped_column(String(64))
    amount_fen: Mapped[fen]
    match_status: Mapped[str] = mapped_column(String(16))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("settlement_batches.id"), index=True)
    #: why an unmatched line did not match (e.g. the batch was already matched by another line)
    note: Mapped[str | None] = mapped_column(String(200))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: the finance officer's reason
    resolution: Mapped[str | None] = mapped_column(String(200))

    statement: Mapped[BankStatement] = relationship(back_populates="lines")
    batch: Mapped[SettlementBatch | None] = relationship("SettlementBatch")
    resolved_by: Mapped[User | None] = relationship("User")

    @property
    def status_enum(self) -> MatchStatus:
        return MatchStatus(self.match_status)


class BatchResolution(Model):
    """A finance officer's explanation for an exported or paid batch that no statement line pays
    (e.g. "银行退票，已重新提交"). One per batch; a line arriving later still matches the batch."""

    __tablename__ = "batch_resolutions"

    id: Mapped[intpk]
    batch_id: Mapped[int] = mapped_column(ForeignKey("settlement_batches.id"), unique=True)
    resolution: Mapped[str] = mapped_column(String(200))
    resolved_at: Mapped[datetime] = mapped_column(DateTime)
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    batch: Mapped[SettlementBatch] = relationship("SettlementBatch")
    resolved_by: Mapped[User | None] = relationship("User")
