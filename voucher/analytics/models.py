from __future__ import annotations

from datetime import date

from sqlalchemy import CheckConstraint, ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from voucher.core.db import created_at, db, fen, intpk


class DailyStat(db.Model):
    """One campaign's figures for one local calendar day, snapshotted nightly; a re-run replaces them."""

    __tablename__ = "daily_stats"
    __table_args__ = (
        UniqueConstraint("campaign_id", "day"),
        CheckConstraint("subsidy_fen >= 0", name="subsidy_not_negative"),
        CheckConstraint("driven_fen >= 0", name="driven_not_negative"),
    )

    id: Mapped[intpk]
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    #: the local (Asia/Shanghai) calendar day
    day: Mapped[date]
    vouchers_claimed: Mapped[int] = mapped_column(default=0)
    vouchers_redeemed: Mapped[int] = mapped_column(default=0)
    #: subsidy paid on the day's redemptions, net of reversals made that day
    subsidy_fen: Mapped[fen] = mapped_column(default=0)
    #: order amounts of the day's redemptions (consumption driven)
    driven_fen: Mapped[fen] = mapped_column(default=0)
    redemptions_reversed: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[created_at]
