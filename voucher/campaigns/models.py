from __future__ import annotations

import enum
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    String,
    Table,
    Text,
    Time,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from voucher.core.db import Model, created_at, db, fen, intpk
from voucher.core.enum_check import one_of, sql_list
from voucher.core.money import short_yuan

if TYPE_CHECKING:
    from voucher.accounts.models import User
    from voucher.merchants.models import Merchant


class Measure(Model):
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
    #: campaigns must run within the policy's term: from its issue date, and to the short-term end
    #: date where the seed marks the measure short-term (the policy leaves long-term ends open)
    term_from: Mapped[date | None] = mapped_column(Date)
    term_until: Mapped[date | None] = mapped_column(Date)

    money_lines: Mapped[list[MeasureMoneyLine]] = relationship(
        back_populates="measure", order_by="MeasureMoneyLine.position"
    )
    targets: Mapped[list[MeasureTarget]] = relationship(back_populates="measure", order_by="MeasureTarget.position")
    campaigns: Mapped[list[Campaign]] = relationship(back_populates="measure")

    # The policy's planned money, the one definition the policy overview and the approval check share.
    # A line of 0 is one whose total the policy leaves open (未定总额): it adds nothing to the plan.
    @property
    def planned_in_hand_fen(self) -> int:
        return sum(line.amount_fen for line in self.money_lines if line.status != "sought")

    @property
    def planned_sought_fen(self) -> int:
        return sum(line.amount_fen for line in self.money_lines if line.status == "sought")

    @property
    def planned_fen(self) -> int:
        return self.planned_in_hand_fen + self.planned_sought_fen

    @property
    def open_total_lines(self) -> list[MeasureMoneyLine]:
        """Lines the policy gives no total for (e.g. 每个主体1-10万元): the plan cannot speak for them."""
        return [line for line in self.money_lines if not line.amount_fen]


class FundingStatus(str, enum.Enum):
    """Of a sum of money: a measure's planned line, a campaign's funding source."""

    IN_HAND = "in_hand"  # can be funded
    SOUGHT = "sought"  # 争取: still being sought, planned only


class MeasureMoneyLine(Model):
    """A sum of money the policy plans for a measure (in hand or still sought, 争取)."""

    __tablename__ = "measure_money_lines"
    __table_args__ = (
        CheckConstraint("amount_fen >= 0", name="amount_non_negative"),
        one_of("status", FundingStatus, name="status_known"),
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


class MeasureTarget(Model):
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


class Instrument(str, enum.Enum):
    VOUCHER = "voucher"  # fixed-value voucher, 满X减Y or 无门槛 (also partner-funded vouchers)
    FREE_TICKET = "free_ticket"  # zero price to the citizen; the subsidy is the ticket's value
    PURCHASE_SUBSIDY = "purchase_subsidy"  # a percentage of the invoice, with a cap
    GRANT = "grant"  # 补贴申报: organisations apply, no vouchers

    @property
    def label(self) -> str:
        return INSTRUMENT_LABELS[self.value]


INSTRUMENT_LABELS = {
    "voucher": "消费券（满减/无门槛）",
    "free_ticket": "免费门票",
    "purchase_subsidy": "按比例购物补贴",
    "grant": "补贴申报",
}

campaign_merchants = Table(
    "campaign_merchants",
    db.metadata,
    Column("campaign_id", ForeignKey("campaigns.id"), primary_key=True),
    Column("merchant_id", ForeignKey("merchants.id"), primary_key=True),
)


class Campaign(Model):
    """A funded programme under a measure, with one instrument (its voucher product, or grants)."""

    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint("valid_until >= valid_from", name="validity_ordered"),
        one_of("status", CampaignStatus, name="status_known"),
        one_of("instrument", Instrument, name="instrument_known"),
        CheckConstraint("validity_days IS NULL OR validity_days > 0", name="validity_days_positive"),
        CheckConstraint("per_person_limit IS NULL OR per_person_limit > 0", name="limit_positive"),
        CheckConstraint(
            "award_min_fen IS NULL OR award_max_fen IS NULL OR award_min_fen <= award_max_fen", name="award_bounds"
        ),
        CheckConstraint("(info_tag_requested IS NULL) = (info_tag_requested_by_id IS NULL)",
                        name="info_tag_request_has_maker"),
    )

    id: Mapped[intpk]
    measure_id: Mapped[int] = mapped_column(ForeignKey("measures.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default=CampaignStatus.DRAFT.value)
    instrument: Mapped[str] = mapped_column(String(20), default=Instrument.VOUCHER.value)
    #: eligible merchant categories (行业类别); empty means all
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: eligible districts (区县/功能板块); empty means all
    districts: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: tagged as information consumption: its executed money feeds ICDI-EC indicator S11 (see
    #: voucher/info_consumption_index/feed.py; campaigns under measure 17, 信息消费, count without the tag)
    is_information_consumption: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: a pending request to change that tag (True: tag, False: untag) and who made it; another person
    #: approves or rejects it (maker-checker, voucher/info_consumption_index/feed.py)
    info_tag_requested: Mapped[bool | None]
    info_tag_requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: vouchers are usable from the first to the last local day, inclusive
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date)
    #: when set, a voucher is usable for this many days after its claim (never past valid_until)
    validity_days: Mapped[int | None]
    #: daily usable hours (local time); both null means all day
    usable_from: Mapped[time | None] = mapped_column(Time)
    usable_until: Mapped[time | None] = mapped_column(Time)
    #: vouchers one citizen may hold across all releases of the campaign; null means no campaign-wide limit
    per_person_limit: Mapped[int | None]
    #: planned number of vouchers (e.g. 110,000 community vouchers); the budget must cover them
    planned_quantity: Mapped[int | None]
    #: per-award bounds of a grant campaign (e.g. 10,000-100,000 yuan per event)
    award_min_fen: Mapped[int | None] = mapped_column(BigInteger)
    award_max_fen: Mapped[int | None] = mapped_column(BigInteger)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    submitted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    approved_at: Mapped[datetime | None] = mapped_column(DateTime)
    #: why an approver sent it back, shown to the maker
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    #: why the approver let it take its measure past the policy's planned money (or approved it under a
    #: measure with none); null when it fitted the plan. Who and when are approved_by and approved_at.
    plan_override_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[created_at]

    measure: Mapped[Measure] = relationship(back_populates="campaigns")
    funding_sources: Mapped[list[FundingSource]] = relationship(
        back_populates="campaign", order_by="FundingSource.id"
    )
    product: Mapped[VoucherProduct | None] = relationship(back_populates="campaign", uselist=False)
    releases: Mapped[list[Release]] = relationship(back_populates="campaign", order_by="Release.id")
    #: named merchants (e.g. the winning-bid appliance sellers); empty means any merchant that fits the rules
    merchants: Mapped[list[Merchant]] = relationship("Merchant", secondary=campaign_merchants, order_by="Merchant.id")
    created_by: Mapped[User] = relationship("User", foreign_keys=[created_by_id])
    approved_by: Mapped[User | None] = relationship("User", foreign_keys=[approved_by_id])

    @property
    def status_enum(self) -> CampaignStatus:
        return CampaignStatus(self.status)

    @property
    def instrument_enum(self) -> Instrument:
        return Instrument(self.instrument)

    @property
    def budget_fen(self) -> int:
        """Money in hand for the campaign (sought money is planned, not budget)."""
        return sum(s.amount_fen for s in self.funding_sources if s.status == "in_hand")

    @property
    def sought_fen(self) -> int:
        return sum(s.amount_fen for s in self.funding_sources if s.status == "sought")


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


class FundingSource(Model):
    """Who pays for a campaign, how much, and its share of each subsidy (e.g. 政府:企业 = 2:1)."""

    __tablename__ = "funding_sources"
    __table_args__ = (
        CheckConstraint("amount_fen >= 0", name="amount_non_negative"),
        CheckConstraint("share >= 0", name="share_non_negative"),
        one_of("status", FundingStatus, name="status_known"),
        CheckConstraint("status = 'in_hand' OR share = 0", name="sought_has_no_share"),
        CheckConstraint("returned_fen >= 0 AND returned_fen <= amount_fen", name="returned_within_amount"),
    )

    id: Mapped[intpk]
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(80))
    amount_fen: Mapped[fen]
    #: in_hand money can be funded; sought (争取) money is planned only
    status: Mapped[str] = mapped_column(String(16), default=FundingStatus.IN_HAND.value)
    #: co-funding weight; each subsidy is split across sources by these weights
    share: Mapped[int] = mapped_column(default=1)
    #: money given back to the funder when the campaign closed
    returned_fen: Mapped[fen] = mapped_column(default=0)

    campaign: Mapped[Campaign] = relationship(back_populates="funding_sources")

    @property
    def kind_label(self) -> str:
        return FUNDING_KIND_LABELS.get(self.kind, self.kind)


class ProductKind(str, enum.Enum):
    FIXED = "fixed"  # 满X减Y, or 无门槛 when the threshold is zero
    FREE_TICKET = "free_ticket"  # face value = the ticket's price, paid in full by the campaign
    PERCENTAGE = "percentage"  # percent_bp of the order, rounded down, at most face_value_fen (the cap)


def discount_fen(kind: str, face_value_fen: int, percent_bp: int | None, order_amount_fen: int) -> int:
    """What the campaign pays on an order: a percentage rounded down to the fen, or the face value;
    never more than the face value (what was reserved for the voucher) nor more than the order."""
    if kind == ProductKind.PERCENTAGE.value:
        assert percent_bp is not None  # a percentage product has one (CHECK percent_for_percentage)
        return min(order_amount_fen * percent_bp // 10000, face_value_fen)
    return min(face_value_fen, order_amount_fen)


class VoucherProduct(Model):
    """The rule of a campaign's vouchers (券种)."""

    __tablename__ = "voucher_products"
    __table_args__ = (
        CheckConstraint("face_value_fen > 0", name="face_value_positive"),
        CheckConstraint(
            "kind <> 'fixed' OR threshold_fen = 0 OR threshold_fen >= face_value_fen", name="threshold_covers_face"
        ),
        one_of("kind", ProductKind, name="kind_known"),
        CheckConstraint(
            "(kind = 'percentage') = (percent_bp IS NOT NULL) AND (percent_bp IS NULL OR percent_bp BETWEEN 1 AND 10000)",
            name="percent_for_percentage",
        ),
    )

    id: Mapped[intpk]
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), unique=True)
    kind: Mapped[str] = mapped_column(String(20), default=ProductKind.FIXED.value)
    face_value_fen: Mapped[fen]
    #: minimum order amount (满X); zero for 无门槛
    threshold_fen: Mapped[fen] = mapped_column(default=0)
    #: for a percentage subsidy: basis points of the order (1000 = 10%)
    percent_bp: Mapped[int | None]

    campaign: Mapped[Campaign] = relationship(back_populates="product")

    @property
    def label(self) -> str:
        face = short_yuan(self.face_value_fen)
        if self.kind == ProductKind.FREE_TICKET.value:
            return f"免费门票（票面{face}元）"
        if self.kind == ProductKind.PERCENTAGE.value:
            assert self.percent_bp is not None  # a percentage product has one (CHECK percent_for_percentage)
            whole, hundredths = divmod(self.percent_bp, 100)
            percent = f"{whole}.{hundredths:02d}".rstrip("0").rstrip(".")
            return f"按开票金额{percent}%补贴，单张最高{face}元"
        if self.threshold_fen:
            return f"满{short_yuan(self.threshold_fen)}减{face}"
        return f"无门槛{face}元"


class ReleaseStatus(str, enum.Enum):
    SCHEDULED = "scheduled"
    OPEN = "open"
    CLOSED = "closed"
    #: reserved, its vouchers being minted by a background job (jobs/background.py); nobody can claim yet
    OPENING = "opening"
    #: entries closed, the draw running as a background job
    DRAWING = "drawing"

    @property
    def label(self) -> str:
        return {"scheduled": "待开放", "open": "领取中", "closed": "已结束", "opening": "正在生成消费券",
                "drawing": "正在开奖"}[self.value]


class ReleaseMode(str, enum.Enum):
    FIRST_COME = "first_come"
    LOTTERY = "lottery"

    @property
    def label(self) -> str:
        return {"first_come": "先到先得", "lottery": "摇号"}[self.value]


class Release(Model):
    """A release (发放场次). Opening it reserves its whole budget and mints its vouchers.

    A lottery release takes entries while open; the draw then gives its vouchers to the winners. Before
    the release, the product publishes seed_commitment = SHA-256(seed); after the draw it publishes the
    seed, so anyone can recompute the winners from the published entries (see vouchers/lottery.py).
    """

    __tablename__ = "releases"
    __table_args__ = (
        one_of("mode", ReleaseMode, name="mode_known"),
        CheckConstraint("mode = 'first_come' OR seed_commitment IS NOT NULL", name="lottery_has_commitment"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("per_person_limit > 0", name="limit_positive"),
        CheckConstraint("batches BETWEEN 1 AND 10 AND batch_minutes >= 0", name="batches_in_range"),
        one_of("status", ReleaseStatus, name="status_known"),
        UniqueConstraint("campaign_id", "name"),
    )

    id: Mapped[intpk]
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    quantity: Mapped[int]
    per_person_limit: Mapped[int] = mapped_column(default=1)
    opens_at: Mapped[datetime] = mapped_column(DateTime)
    #: batched opening (vouchers/batches.py): citizens in `batches` groups, group k from opens_at + k x batch_minutes
    batches: Mapped[int] = mapped_column(default=1, server_default="1")
    batch_minutes: Mapped[int] = mapped_column(default=0, server_default="0")
    status: Mapped[str] = mapped_column(String(16), default=ReleaseStatus.SCHEDULED.value)
    opened_at: Mapped[datetime | None] = mapped_column(DateTime)
    mode: Mapped[str] = mapped_column(String(16), default=ReleaseMode.FIRST_COME.value)
    #: lottery: SHA-256 of the seed, published before entries open
    seed_commitment: Mapped[str | None] = mapped_column(String(64))
    #: lottery: the secret seed, shown only once the draw is done
    seed: Mapped[str | None] = mapped_column(String(64))
    drawn_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[created_at]

    campaign: Mapped[Campaign] = relationship(back_populates="releases")

    @property
    def mode_enum(self) -> ReleaseMode:
        return ReleaseMode(self.mode)

    @property
    def status_enum(self) -> ReleaseStatus:
        return ReleaseStatus(self.status)


class BudgetChangeKind(str, enum.Enum):
    TOP_UP = "top_up"  # the funder adds money
    CUT = "cut"  # money goes back to the funder
    MOVE = "move"  # money moves to another campaign's source

    @property
    def label(self) -> str:
        return {"top_up": "追加", "cut": "核减", "move": "调剂至其他活动"}[self.value]


class BudgetChangeStatus(str, enum.Enum):
    PENDING = "pending"  # requested; someone other than the requester decides it
    APPROVED = "approved"  # posted to the ledger
    REJECTED = "rejected"


class BudgetChange(Model):
    """A requested change to a campaign's budget. It is posted only when someone else approves it."""

    __tablename__ = "budget_changes"
    __table_args__ = (
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        one_of("kind", BudgetChangeKind, name="kind_known"),
        one_of("status", BudgetChangeStatus, name="status_known"),
        CheckConstraint("(kind = 'move') = (target_funding_source_id IS NOT NULL)", name="move_has_target"),
    )

    id: Mapped[intpk]
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    funding_source_id: Mapped[int] = mapped_column(ForeignKey("funding_sources.id"))
    kind: Mapped[str] = mapped_column(String(16))
    amount_fen: Mapped[fen]
    #: for a move: the receiving campaign's funding source
    target_funding_source_id: Mapped[int | None] = mapped_column(ForeignKey("funding_sources.id"))
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=BudgetChangeStatus.PENDING.value)
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime)
    decision_note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[created_at]

    campaign: Mapped[Campaign] = relationship(foreign_keys=[campaign_id])
    funding_source: Mapped[FundingSource] = relationship(foreign_keys=[funding_source_id])
    target_funding_source: Mapped[FundingSource | None] = relationship(foreign_keys=[target_funding_source_id])
    requested_by: Mapped[User] = relationship("User", foreign_keys=[requested_by_id])

    @property
    def kind_enum(self) -> BudgetChangeKind:
        return BudgetChangeKind(self.kind)


class GrantStatus(str, enum.Enum):
    SUBMITTED = "submitted"
    REVIEWED = "reviewed"  # bureau staff checked the evidence and recommend an amount
    APPROVED = "approved"  # an approver fixed the amount; it is reserved in the ledger
    REJECTED = "rejected"
    PAID = "paid"

    @property
    def label(self) -> str:
        return {"submitted": "已提交", "reviewed": "已初审", "approved": "已批准待拨付", "rejected": "已驳回",
                "paid": "已拨付"}[self.value]


GRANT_TRANSITIONS: dict[GrantStatus, set[GrantStatus]] = {
    GrantStatus.SUBMITTED: {GrantStatus.REVIEWED, GrantStatus.REJECTED},
    GrantStatus.REVIEWED: {GrantStatus.APPROVED, GrantStatus.REJECTED},
    GrantStatus.APPROVED: {GrantStatus.PAID},
    GrantStatus.REJECTED: set(),
    GrantStatus.PAID: set(),
}


class GrantApplication(Model):
    """补贴申报: an organiser or enterprise asks a grant campaign for money for an event or a result."""

    __tablename__ = "grant_applications"
    __table_args__ = (
        CheckConstraint("requested_fen > 0", name="requested_positive"),
        CheckConstraint("approved_fen IS NULL OR approved_fen > 0", name="approved_positive"),
        one_of("status", GrantStatus, name="status_known"),
        CheckConstraint(
            f"status NOT IN {sql_list(GrantStatus.APPROVED, GrantStatus.PAID)} OR approved_fen IS NOT NULL",
            name="approved_has_amount",
        ),
    )

    id: Mapped[intpk]
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    applicant_name: Mapped[str] = mapped_column(String(120))
    #: 统一社会信用代码 of the applicant organisation
    applicant_uscc: Mapped[str] = mapped_column(String(18))
    project: Mapped[str] = mapped_column(String(200))
    #: what the applicant submitted as proof (event dates, attendance, invoices, file references)
    evidence: Mapped[str] = mapped_column(Text)
    requested_fen: Mapped[fen]
    district: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(16), default=GrantStatus.SUBMITTED.value)
    review_note: Mapped[str | None] = mapped_column(Text)
    recommended_fen: Mapped[int | None] = mapped_column(BigInteger)
    approved_fen: Mapped[int | None] = mapped_column(BigInteger)
    #: kept for every rejection, shown to staff and in the audit log
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    submitted_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    paid_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    paid_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[created_at]

    campaign: Mapped[Campaign] = relationship()

    @property
    def status_enum(self) -> GrantStatus:
        return GrantStatus(self.status)


class TargetProgress(Model):
    """Progress towards a measure's non-monetary target (e.g. one more night-economy zone), with evidence."""

    __tablename__ = "target_progress"
    __table_args__ = (CheckConstraint("quantity <> 0", name="quantity_nonzero"),)

    id: Mapped[intpk]
    target_id: Mapped[int] = mapped_column(ForeignKey("measure_targets.id"), index=True)
    #: how much this record adds (a correction may subtract)
    quantity: Mapped[int]
    description: Mapped[str] = mapped_column(String(200))
    evidence: Mapped[str] = mapped_column(Text)
    district: Mapped[str | None] = mapped_column(String(20))
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[created_at]

    target: Mapped[MeasureTarget] = relationship()
    recorded_by: Mapped[User] = relationship("User")


class LotteryEntry(Model):
    """One citizen's entry in a lottery release; its id is the public entry number."""

    __tablename__ = "lottery_entries"
    __table_args__ = (UniqueConstraint("release_id", "citizen_id"),)

    id: Mapped[intpk]
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"), index=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"))
    won: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[created_at]
