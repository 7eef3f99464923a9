from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Date, DateTime, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from voucher.core.db import created_at, db, fen, intpk


class Measure(db.Model):
    """One of the twenty measures of 连政办发〔2022〕61号, loaded from seed/measures.toml."""

    __tablename__ = "measures"
    __table_args__ = (CheckConstraint("number BETWEEN 1 AND 99", name="number_range"),)

    id: Mapped[intpk]
    number: Mapped[int] = mapped_column(unique=True)
    title: Mapped[str] = mapped_column(String(200))
    short_title: Mapped[str] = mapped_column(String(40))
    #: 责任单位, in the policy's order
    responsible_units: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: the measure's paragraph, verbatim
    text: Mapped[str] = mapped_column(Text, default="")

    money_lines: Mapped[list[MeasureMoneyLine]] = relationship(
        back_populates="measure", order_by="MeasureMoneyLine.position"
    )
    targets: Mapped[list[MeasureTarget]] = relationship(back_populates="measure", order_by="MeasureTarget.position")
    campaigns: Mapped[list[Campaign]] = relationship(back_populates="measure")


class MeasureMoneyLine(db.Model):
    """A sum of money the policy plans for a measure (in hand or still sought, 争取)."""

    __tablename__ = "measure_money_lines"
    __table_args__ = (
        CheckConstraint("amount_fen >= 0", name="amount_non_negative"),
        CheckConstraint("status IN ('in_hand', 'sought')", name="status_known"),
    )

    id: Mapped[intpk]
    measure_id: Mapped[int] = mapped_column(ForeignKey("measures.id"), index=True)
    position: Mapped[int]
    label: Mapped[str] = mapped_column(String(120))
    amount_fen: Mapped[fen]
    instrument: Mapped[str] = mapped_column(String(40))
    funding_kind: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16))
    #: the rest of the seed line (award bounds, partner, co-funding, note), kept as stated
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    measure: Mapped[Measure] = relationship(back_populates="money_lines")


class MeasureTarget(db.Model):
    """A non-monetary target of a measure (events, sites, stations...)."""

    __tablename__ = "measure_targets"

    id: Mapped[intpk]
    measure_id: Mapped[int] = mapped_column(ForeignKey("measures.id"), index=True)
    position: Mapped[int]
    label: Mapped[str] = mapped_column(String(120))
    target: Mapped[int]
    unit: Mapped[str] = mapped_column(String(20))
    comparison: Mapped[str] = mapped_column(String(4), default=">=")

    measure: Mapped[Measure] = relationship(back_populates="targets")


class CampaignStatus(str, enum.Enum):
    DRAFT = "draft"
    PENDING_APPROVAL = "pending_approval"
    ACTIVE = "active"
    PAUSED = "paused"
    CLOSED = "closed"

    @property
    def label(self) -> str:
        return {
            "draft": "草稿",
            "pending_approval": "待审批",
            "active": "进行中",
            "paused": "已暂停",
            "closed": "已结束",
        }[self.value]


# The only moves a campaign may make; anything else is refused by the service.
CAMPAIGN_TRANSITIONS: dict[CampaignStatus, set[CampaignStatus]] = {
    CampaignStatus.DRAFT: {CampaignStatus.PENDING_APPROVAL},
    CampaignStatus.PENDING_APPROVAL: {CampaignStatus.ACTIVE, CampaignStatus.DRAFT},
    CampaignStatus.ACTIVE: {CampaignStatus.PAUSED, CampaignStatus.CLOSED},
    CampaignStatus.PAUSED: {CampaignStatus.ACTIVE, CampaignStatus.CLOSED},
    CampaignStatus.CLOSED: set(),
}


class Campaign(db.Model):
    """A funded programme under a measure, with one instrument (its voucher product)."""

    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint("valid_until >= valid_from", name="validity_ordered"),
        CheckConstraint(
            "status IN ('draft', 'pending_approval', 'active', 'paused', 'closed')", name="status_known"
        ),
    )

    id: Mapped[intpk]
    measure_id: Mapped[int] = mapped_column(ForeignKey("measures.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default=CampaignStatus.DRAFT.value)
    #: eligible merchant categories (行业类别); empty means all
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: eligible districts (区县/功能板块); empty means all
    districts: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: vouchers are usable from the first to the last local day, inclusive
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    submitted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    approved_at: Mapped[datetime | None] = mapped_column(DateTime)
    #: why an approver sent it back, shown to the maker
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[created_at]

    measure: Mapped[Measure] = relationship(back_populates="campaigns")
    funding_sources: Mapped[list[FundingSource]] = relationship(
        back_populates="campaign", order_by="FundingSource.id"
    )
    product: Mapped[VoucherProduct | None] = relationship(back_populates="campaign", uselist=False)
    releases: Mapped[list[Release]] = relationship(back_populates="campaign", order_by="Release.id")
    created_by = relationship("User", foreign_keys=[created_by_id])
    approved_by = relationship("User", foreign_keys=[approved_by_id])

    @property
    def status_enum(self) -> CampaignStatus:
        return CampaignStatus(self.status)

    @property
    def budget_fen(self) -> int:
        return sum(s.amount_fen for s in self.funding_sources if s.status == "in_hand")


class FundingKind(str, enum.Enum):
    MUNICIPAL_FINANCE = "municipal_finance"
    DISTRICT_FINANCE = "district_finance"
    PROVINCIAL_FUND = "provincial_fund"
    CENTRAL_FUND = "central_fund"
    ENTERPRISE = "enterprise"
    BANK = "bank"

    @property
    def label(self) -> str:
        return FUNDING_KIND_LABELS[self.value]


FUNDING_KIND_LABELS = {
    "municipal_finance": "市级财政",
    "district_finance": "区县财政",
    "provincial_fund": "省级资金",
    "central_fund": "中央资金",
    "enterprise": "企业",
    "bank": "银行",
}


class FundingSource(db.Model):
    """Who pays for a campaign, how much, and its share of each subsidy (e.g. 政府:企业 = 2:1)."""

    __tablename__ = "funding_sources"
    __table_args__ = (
        CheckConstraint("amount_fen >= 0", name="amount_non_negative"),
        CheckConstraint("share >= 0", name="share_non_negative"),
        CheckConstraint("status IN ('in_hand', 'sought')", name="status_known"),
    )

    id: Mapped[intpk]
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(80))
    amount_fen: Mapped[fen]
    #: in_hand money can be funded; sought (争取) money is planned only
    status: Mapped[str] = mapped_column(String(16), default="in_hand")
    #: co-funding weight; each subsidy is split across sources by these weights
    share: Mapped[int] = mapped_column(default=1)

    campaign: Mapped[Campaign] = relationship(back_populates="funding_sources")

    @property
    def kind_label(self) -> str:
        return FUNDING_KIND_LABELS.get(self.kind, self.kind)


class ProductKind(str, enum.Enum):
    FIXED = "fixed"  # 满X减Y, or 无门槛 when the threshold is zero


class VoucherProduct(db.Model):
    """The rule of a campaign's vouchers (券种)."""

    __tablename__ = "voucher_products"
    __table_args__ = (
        CheckConstraint("face_value_fen > 0", name="face_value_positive"),
        CheckConstraint("threshold_fen = 0 OR threshold_fen >= face_value_fen", name="threshold_covers_face"),
        CheckConstraint("kind IN ('fixed')", name="kind_known"),
    )

    id: Mapped[intpk]
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), unique=True)
    kind: Mapped[str] = mapped_column(String(20), default=ProductKind.FIXED.value)
    face_value_fen: Mapped[fen]
    #: minimum order amount (满X); zero for 无门槛
    threshold_fen: Mapped[fen] = mapped_column(default=0)

    campaign: Mapped[Campaign] = relationship(back_populates="product")

    @property
    def label(self) -> str:
        from voucher.core.money import format_yuan

        face = format_yuan(self.face_value_fen, grouping=False).removesuffix(".00")
        if self.threshold_fen:
            return f"满{format_yuan(self.threshold_fen, grouping=False).removesuffix('.00')}减{face}"
        return f"无门槛{face}元"


class ReleaseStatus(str, enum.Enum):
    SCHEDULED = "scheduled"
    OPEN = "open"
    CLOSED = "closed"

    @property
    def label(self) -> str:
        return {"scheduled": "待开放", "open": "领取中", "closed": "已结束"}[self.value]


class Release(db.Model):
    """A release round (发放场次). Opening it reserves its whole budget and mints its vouchers."""

    __tablename__ = "releases"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("per_person_limit > 0", name="limit_positive"),
        CheckConstraint("status IN ('scheduled', 'open', 'closed')", name="status_known"),
        UniqueConstraint("campaign_id", "name"),
    )

    id: Mapped[intpk]
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    quantity: Mapped[int]
    per_person_limit: Mapped[int] = mapped_column(default=1)
    opens_at: Mapped[datetime] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(16), default=ReleaseStatus.SCHEDULED.value)
    opened_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[created_at]

    campaign: Mapped[Campaign] = relationship(back_populates="releases")

    @property
    def status_enum(self) -> ReleaseStatus:
        return ReleaseStatus(self.status)
