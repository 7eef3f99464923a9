"""Settlement batches (what one funder owes one merchant for the redemptions up to a business day) and
the numbered payout files that carry them to the bank.

A batch's life: pending (built) -> exported (in exactly one current payout file) -> paid (a finance
officer confirmed it against a matching bank line, or two officers agreed an override). A payout file is
stored as the bytes handed out, so downloading it again gives the same file.
"""
from __future__ import annotations

import enum
from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import JSON, CheckConstraint, Date, DateTime, ForeignKey, Index, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from voucher.core.db import Model, created_at, fen, intpk
from voucher.core.enum_check import one_of

if TYPE_CHECKING:
    from voucher.accounts.models import User
    from voucher.campaigns.models import Campaign, FundingSource
    from voucher.merchants.models import Merchant


class BatchStatus(str, enum.Enum):
    PENDING = "pending"  # built, not yet in a payout file
    EXPORTED = "exported"  # sent to the bank in a payout file
    PAID = "paid"  # the bank paid it: spent -> settled in the ledger

    @property
    def label(self) -> str:
        return {"pending": "待支付", "exported": "已导出待确认", "paid": "已支付"}[self.value]


class PaidEvidence(str, enum.Enum):
    """What a paid batch's confirmation rested on."""

    BANK_LINE = "bank_line"  # a matched statement line of the same amount
    OVERRIDE = "override"  # one officer's reason, agreed by a second


class SettlementBatch(Model):
    """One merchant's redemptions for one funding source (one funder of one campaign), up to the end
    of a business day. Co-funded campaigns give one batch per funder, so each funder pays its part."""

    __tablename__ = "settlement_batches"
    __table_args__ = (
        UniqueConstraint("business_date", "merchant_id", "funding_source_id"),
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        one_of("status", BatchStatus, name="status_known"),
        CheckConstraint("(status = 'paid') = (paid_at IS NOT NULL)", name="paid_has_time"),
        # a pending batch is in no payout file; batches exported before payout files existed have none
        CheckConstraint("status <> 'pending' OR payout_file_id IS NULL", name="pending_not_in_file"),
        one_of("paid_evidence", PaidEvidence, name="paid_evidence_known", nullable=True),
        CheckConstraint("(override_reason IS NULL) = (override_requested_by_id IS NULL)",
                        name="override_has_requester"),
    )

    id: Mapped[intpk]
    #: the bank reference printed on the payout file and matched against the bank statement
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    business_date: Mapped[date] = mapped_column(Date, index=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    funding_source_id: Mapped[int] = mapped_column(ForeignKey("funding_sources.id"))
    amount_fen: Mapped[fen]
    redemption_count: Mapped[int]
    status: Mapped[str] = mapped_column(String(16), default=BatchStatus.PENDING.value)
    created_at: Mapped[created_at]
    exported_at: Mapped[datetime | None] = mapped_column(DateTime)
    paid_at: Mapped[datetime | None] = mapped_column(DateTime)
    confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: the payout file that currently carries the batch to the bank (a re-issue moves it to a new one)
    payout_file_id: Mapped[int | None] = mapped_column(ForeignKey("payout_files.id"), index=True)
    #: what the paid confirmation rested on: "bank_line" (a matched statement line of the same amount)
    #: or "override" (one officer's reason, agreed by a second)
    paid_evidence: Mapped[str | None] = mapped_column(String(16))
    #: a request to confirm without a matching bank line; another finance officer decides it
    override_reason: Mapped[str | None] = mapped_column(String(200))
    override_requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    override_requested_at: Mapped[datetime | None] = mapped_column(DateTime)

    merchant: Mapped[Merchant] = relationship("Merchant")
    campaign: Mapped[Campaign] = relationship("Campaign")
    funding_source: Mapped[FundingSource] = relationship("FundingSource")
    payout_file: Mapped[PayoutFile | None] = relationship("PayoutFile", foreign_keys=[payout_file_id])
    confirmed_by: Mapped[User | None] = relationship("User", foreign_keys=[confirmed_by_id])
    override_requested_by: Mapped[User | None] = relationship("User", foreign_keys=[override_requested_by_id])

    @property
    def status_enum(self) -> BatchStatus:
        return BatchStatus(self.status)


class SettlementItem(Model):
    """A redemption's part for one funder, in one batch. Unique per redemption and source: a
    redemption is settled exactly once, whatever runs the build and however often."""

    __tablename__ = "settlement_items"
    __table_args__ = (
        UniqueConstraint("redemption_id", "funding_source_id"),
        Index("ix_settlement_items_batch", "batch_id"),
    )

    id: Mapped[intpk]
    batch_id: Mapped[int] = mapped_column(ForeignKey("settlement_batches.id"))
    redemption_id: Mapped[int] = mapped_column(ForeignKey("redemptions.id"))
    funding_source_id: Mapped[int] = mapped_column(ForeignKey("funding_sources.id"))
    amount_fen: Mapped[fen]


class PayoutFile(Model):
    """A numbered payout file, as handed to the bank. Its bytes are kept: a second download is the same
    file, never a new one that would pay the same batches again."""

    __tablename__ = "payout_files"
    __table_args__ = (
        CheckConstraint("batch_count > 0", name="batch_count_positive"),
        CheckConstraint("total_fen > 0", name="total_positive"),
    )

    id: Mapped[intpk]
    #: FK + local date + id, printed in the file and its name
    number: Mapped[str] = mapped_column(String(32), unique=True)
    created_at: Mapped[created_at]
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: the business day the officer filtered on, if any
    business_date: Mapped[date | None] = mapped_column(Date)
    batch_count: Mapped[int]
    total_fen: Mapped[fen]
    #: set when the file re-issues batches of earlier files: why (the bank refused the file, …)
    reissue_reason: Mapped[str | None] = mapped_column(String(200))
    #: merchants left out for missing bank details: [{"merchant": name, "reference": …, "reason": …}]
    held_out: Mapped[list | None] = mapped_column(JSON)
    csv_bytes: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    xlsx_bytes: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)

    created_by: Mapped[User | None] = relationship("User")
    items: Mapped[list[PayoutFileItem]] = relationship(
        back_populates="payout_file", order_by="PayoutFileItem.id", foreign_keys="PayoutFileItem.payout_file_id")


class PayoutFileItem(Model):
    """A batch as written in a payout file. A batch is in one current file; a re-issue marks its item in
    the earlier file superseded, so the history of every file stays as it was sent."""

    __tablename__ = "payout_file_items"
    __table_args__ = (UniqueConstraint("payout_file_id", "batch_id"),)

    id: Mapped[intpk]
    payout_file_id: Mapped[int] = mapped_column(ForeignKey("payout_files.id"))
    batch_id: Mapped[int] = mapped_column(ForeignKey("settlement_batches.id"), index=True)
    amount_fen: Mapped[fen]
    superseded_by_id: Mapped[int | None] = mapped_column(ForeignKey("payout_files.id"))

    payout_file: Mapped[PayoutFile] = relationship(back_populates="items", foreign_keys=[payout_file_id])
    batch: Mapped[SettlementBatch] = relationship("SettlementBatch")
    superseded_by: Mapped[PayoutFile | None] = relationship("PayoutFile", foreign_keys=[superseded_by_id])
