"""Settlement batches: what one funder owes one merchant for the redemptions up to a business day."""
from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, DateTime, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from voucher.core.db import created_at, db, fen, intpk


class BatchStatus(str, enum.Enum):
    PENDING = "pending"  # built, not yet in a payout file
    EXPORTED = "exported"  # sent to the bank in a payout file
    PAID = "paid"  # the bank paid it: spent -> settled in the ledger

    @property
    def label(self) -> str:
        return {"pending": "待支付", "exported": "已导出待确认", "paid": "已支付"}[self.value]


class SettlementBatch(db.Model):
    """One merchant's redemptions for one funding source (one funder of one campaign), up to the end
    of a business day. Co-funded campaigns give one batch per funder, so each funder pays its part."""

    __tablename__ = "settlement_batches"
    __table_args__ = (
        UniqueConstraint("business_date", "merchant_id", "funding_source_id"),
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        CheckConstraint("status IN ('pending', 'exported', 'paid')", name="status_known"),
        CheckConstraint("(status = 'paid') = (paid_at IS NOT NULL)", name="paid_has_time"),
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

    merchant = relationship("Merchant")
    campaign = relationship("Campaign")
    funding_source = relationship("FundingSource")

    @property
    def status_enum(self) -> BatchStatus:
        return BatchStatus(self.status)


class SettlementItem(db.Model):
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
