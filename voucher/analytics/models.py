from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, String, UniqueConstraint
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


class MerchantDailySales(db.Model):
    """A merchant's whole sales on one local day (with or without vouchers): the baseline the causal
    (difference-in-differences) leverage estimate compares redeeming merchants against."""

    __tablename__ = "merchant_daily_sales"
    __table_args__ = (
        UniqueConstraint("merchant_id", "day"),
        CheckConstraint("sales_fen >= 0", name="sales_not_negative"),
        CheckConstraint("source IN ('imported', 'synthetic')", name="source_known"),
    )

    id: Mapped[intpk]
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    #: the local (Asia/Shanghai) calendar day
    day: Mapped[date]
    #: all the merchant's sales that day, in fen
    sales_fen: Mapped[int] = mapped_column(BigInteger)
    #: imported (from the merchant's or the tax bureau's figures) | synthetic (a generated data set)
    source: Mapped[str] = mapped_column(String(16), default="imported")


class SyntheticTruth(db.Model):
    """A value planted in a generated data set (such as the true causal leverage), so an estimator
    run on that data can be checked against what was put in."""

    __tablename__ = "synthetic_truths"

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(60), unique=True)
    value: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[created_at]
