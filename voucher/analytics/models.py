from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    LargeBinary,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from voucher.core.db import Model, created_at, fen, intpk
from voucher.core.enum_check import one_of


class DailyStat(Model):
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


class SalesSource(str, enum.Enum):
    IMPORTED = "imported"  # from the merchant's or the tax bureau's figures
    SYNTHETIC = "synthetic"  # a generated data set


class MerchantDailySales(Model):
    """A merchant's whole sales on one local day (with or without vouchers): the baseline the causal
    (difference-in-differences) leverage estimate compares redeeming merchants against."""

    __tablename__ = "merchant_daily_sales"
    __table_args__ = (
        UniqueConstraint("merchant_id", "day"),
        CheckConstraint("sales_fen >= 0", name="sales_not_negative"),
        one_of("source", SalesSource, name="source_known"),
    )

    id: Mapped[intpk]
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    #: the local (Asia/Shanghai) calendar day
    day: Mapped[date]
    #: all the merchant's sales that day, in fen
    sales_fen: Mapped[int] = mapped_column(BigInteger)
    #: imported (from the merchant's or the tax bureau's figures) | synthetic (a generated data set)
    source: Mapped[str] = mapped_column(String(16), default=SalesSource.IMPORTED.value)


#: The SyntheticTruth row holding the causal leverage planted in the reference case's synthetic data set
#: (docs/design.md §6 Leverage; `flask seed city-scale`, seed/city_scale.py, writes it): the leverage page
#: shows whether its causal estimate covers that value. The name is the contract between the two.
LEVERAGE_TRUTH = "city_scale.true_incremental_leverage"


class SyntheticTruth(Model):
    """A value planted in a generated data set (such as the true causal leverage), so an estimator
    run on that data can be checked against what was put in."""

    __tablename__ = "synthetic_truths"

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(60), unique=True)
    value: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[created_at]


class LeverageFact(Model):
    """The leverage figures pre-aggregated per local day, campaign, release and merchant class, so the
    page answers over millions of redemptions at once (voucher/analytics/rollup.py builds it).

    A claim row has no merchant (category, district and size are empty); a redemption row counts the
    redemptions still standing (not reversed) by the day they were made."""

    __tablename__ = "leverage_facts"
    __table_args__ = (
        Index("ix_leverage_facts_day", "day"),
        Index("ix_leverage_facts_campaign_day", "campaign_id", "day"),
    )

    id: Mapped[intpk]
    day: Mapped[date]
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"))
    category: Mapped[str | None] = mapped_column(String(20))
    district: Mapped[str | None] = mapped_column(String(20))
    size_class: Mapped[str | None] = mapped_column(String(12))
    vouchers_claimed: Mapped[int] = mapped_column(default=0)
    issued_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    vouchers_redeemed: Mapped[int] = mapped_column(default=0)
    subsidy_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    driven_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    floor_fen: Mapped[int] = mapped_column(BigInteger, default=0)


class LeverageMerchantDay(Model):
    """Which merchants redeemed for a campaign on a local day, as a bitmap over merchant ids (bit i set:
    merchant i), zlib-compressed: the distinct count of merchants over any range of days, which does not
    add up from daily counts, is the OR of a few hundred small bitmaps instead of a scan of every redemption."""

    __tablename__ = "leverage_merchant_days"
    __table_args__ = (UniqueConstraint("day", "campaign_id"),)

    id: Mapped[intpk]
    day: Mapped[date]
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    merchants: Mapped[bytes] = mapped_column(LargeBinary)


class RollupState(Model):
    """How far a pre-aggregation reaches: every local day up to `built_through` is in its tables;
    later days are read live from the source rows."""

    __tablename__ = "rollup_states"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    built_through: Mapped[date | None]
    built_at: Mapped[datetime]


class CausalPanelUnit(Model):
    """One merchant in one campaign's difference-in-differences panel: whether it took part, and its
    district for the displacement check; its weeks are in CausalPanelWeek (voucher/analytics/panel.py
    builds both; causal.py estimates from them)."""

    __tablename__ = "causal_panel_units"
    __table_args__ = (UniqueConstraint("campaign_id", "merchant_id"),)

    id: Mapped[intpk]
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    #: redeemed in this campaign (else: eligible, no subsidy at all in any of the panel's weeks)
    treated: Mapped[bool]
    district: Mapped[str] = mapped_column(String(20), default="", server_default="")


class CausalPanelWeek(Model):
    """A panel unit's week: the days with a sales baseline, their sales and the subsidy paid to the
    merchant on them. Weeks are numbered from the campaign's first day (-8 .. -1 before it, 0 .. during
    it, the last one possibly short) and from the day after its last (100 .. 103)."""

    __tablename__ = "causal_panel_weeks"
    __table_args__ = (UniqueConstraint("campaign_id", "merchant_id", "week"),)

    id: Mapped[intpk]
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    week: Mapped[int] = mapped_column(SmallInteger)
    days: Mapped[int] = mapped_column(SmallInteger)
    sales_fen: Mapped[int] = mapped_column(BigInteger)
    subsidy_fen: Mapped[int] = mapped_column(BigInteger)


class DistrictPopulation(Model):
    """A district's resident population in one year and where the figure comes from: the denominator of
    the subsidy and driven consumption per resident on the 受益结构 page (voucher/analytics/benefit.py).
    Entered by bureau makers or admins; the demo's values are labelled 示例数据 in `source`."""

    __tablename__ = "district_populations"
    __table_args__ = (
        UniqueConstraint("district", "year"),
        CheckConstraint("residents > 0", name="residents_positive"),
    )

    id: Mapped[intpk]
    #: one of voucher/core/reference.py DISTRICTS
    district: Mapped[str] = mapped_column(String(20))
    #: the year the count refers to (the page uses each district's latest)
    year: Mapped[int]
    #: resident (常住) population, persons
    residents: Mapped[int] = mapped_column(BigInteger)
    #: where the figure comes from (a statistical yearbook, a census...), shown beside it
    source: Mapped[str] = mapped_column(String(200))
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime]
