"""Campaign definition and lifecycle, with maker-checker approval."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Protocol

from sqlalchemy import Select, func, literal, select

from voucher.accounts.models import User
from voucher.campaigns import plan_check
from voucher.campaigns.models import (
    CAMPAIGN_TRANSITIONS,
    BudgetChange,
    BudgetChangeStatus,
    Campaign,
    CampaignStatus,
    FundingKind,
    FundingSource,
    GrantApplication,
    GrantStatus,
    Instrument,
    Measure,
    ProductKind,
    Release,
    VoucherProduct,
)
from voucher.core import audit
from voucher.core.clock import local_day_end_utc, local_day_start_utc, utcnow
from voucher.core.db import db, serialize
from voucher.core.errors import InvalidInput, InvalidTransition, MakerCheckerViolation, NotFound
from voucher.core.forms import parse_id
from voucher.core.money import format_yuan
from voucher.core.reference import CATEGORIES, DISTRICTS
from voucher.ledger import services as ledger
from voucher.ledger.models import AccountKind, EntryKind
from voucher.merchants.models import Merchant, MerchantStatus

# The product rule each instrument uses.
PRODUCT_KIND = {
    Instrument.VOUCHER: ProductKind.FIXED,
    Instrument.FREE_TICKET: ProductKind.FREE_TICKET,
    Instrument.PURCHASE_SUBSIDY: ProductKind.PERCENTAGE,
}


@dataclass
class SourceInput:
    kind: str
    name: str
    amount_fen: int
    status: str = "in_hand"
    share: int = 1


@dataclass
class CampaignInput:
    measure_id: int
    name: str
    valid_from: date
    valid_until: date
    sources: list[SourceInput]
    instrument: str = Instrument.VOUCHER.value
    #: fixed voucher: face value; free ticket: the ticket's price; percentage subsidy: the cap per voucher
    face_value_fen: int = 0
    threshold_fen: int = 0
    #: percentage subsidy: basis points of the invoice (1000 = 10%)
    percent_bp: int | None = None
    description: str = ""
    categories: list[str] = field(default_factory=list)
    districts: list[str] = field(default_factory=list)
    merchant_ids: list[int] = field(default_factory=list)
    validity_days: int | None = None
    usable_from: time | None = None
    usable_until: time | None = None
    per_person_limit: int | None = None
    planned_quantity: int | None = None
    award_min_fen: int | None = None
    award_max_fen: int | None = None


def _validate(data: CampaignInput) -> tuple[Measure, list[Merchant]]:
    """Refuse an inconsistent campaign with a reason a bureau clerk can act on."""
    measure = db.session.get(Measure, data.measure_id)
    if measure is None:
        raise InvalidInput("请选择政策措施")
    if not data.name.strip():
        raise InvalidInput("请填写活动名称")
    try:
        instrument = Instrument(data.instrument)
    except ValueError:
        raise InvalidInput("请选择活动工具类型") from None

    _validate_sources(data.sources)
    budget = sum(s.amount_fen for s in data.sources if s.status == "in_hand")

    if instrument is Instrument.GRANT:
        if not data.award_min_fen or not data.award_max_fen:
            raise InvalidInput("补贴申报类活动请填写单笔补贴的下限和上限")
        if data.award_min_fen > data.award_max_fen:
            raise InvalidInput("单笔补贴下限不能高于上限")
        if data.award_max_fen > budget:
            raise InvalidInput(f"单笔补贴上限（{format_yuan(data.award_max_fen)} 元）不能高于活动预算（{format_yuan(budget)} 元）")
    else:
        _validate_product(instrument, data, budget)

    if data.valid_until < data.valid_from:
        raise InvalidInput("有效期结束日期不能早于开始日期")
    if measure.term_from and data.valid_from < measure.term_from:
        raise InvalidInput(f"有效期不能早于政策施行日期 {measure.term_from.isoformat()}")
    if measure.term_until and data.valid_until > measure.term_until:
        raise InvalidInput(f"本措施为短期政策，有效期不能晚于 {measure.term_until.isoformat()}")
    if data.validity_days is not None and data.validity_days <= 0:
        raise InvalidInput("领取后有效天数必须大于 0")
    if (data.usable_from is None) != (data.usable_until is None):
        raise InvalidInput("每日可用时段请同时填写开始和结束时间")
    if data.usable_from is not None and data.usable_until is not None and data.usable_from >= data.usable_until:
        raise InvalidInput("每日可用时段的开始时间应早于结束时间")
    if data.per_person_limit is not None and data.per_person_limit <= 0:
        raise InvalidInput("每人限领数量必须大于 0")
    unknown = [c for c in data.categories if c not in CATEGORIES] + [d for d in data.districts if d not in DISTRICTS]
    if unknown:
        raise InvalidInput(f"未知的行业类别或区县：{'、'.join(unknown)}")
    merchants = []
    if data.merchant_ids:
        merchants = list(db.session.scalars(select(Merchant).where(Merchant.id.in_(data.merchant_ids))))
        if len(merchants) != len(set(data.merchant_ids)):
            raise InvalidInput("指定商户中有不存在的商户")
    return measure, merchants


def _validate_sources(sources: list[SourceInput]) -> None:
    if not any(s.status == "in_hand" and s.amount_fen > 0 for s in sources):
        raise InvalidInput("请至少填写一项已到位的资金来源")
    for source in sources:
        if source.kind not in {k.value for k in FundingKind}:
            raise InvalidInput("资金来源类型不正确")
        if not source.name.strip():
            raise InvalidInput("请填写每个资金来源的出资单位")
        if source.amount_fen <= 0:
            raise InvalidInput(f"资金来源「{source.name}」的金额必须大于 0")
        if source.status not in ("in_hand", "sought"):
            raise InvalidInput("资金状态应为“已到位”或“争取中”")
        if source.status == "sought" and source.share:
            raise InvalidInput(f"争取中的资金「{source.name}」尚未到位，不能参与补贴分摊（出资比例请填 0）")
        if source.status == "in_hand" and source.share <= 0:
            raise InvalidInput(f"已到位的资金「{source.name}」的出资比例必须大于 0")
    in_hand = [s for s in sources if s.status == "in_hand"]
    total, shares = sum(s.amount_fen for s in in_hand), sum(s.share for s in in_hand)
    # Co-funders pay every subsidy in proportion to their shares, so their budgets must be in that
    # proportion too; otherwise one funder runs dry while the others still hold money.
    if len(in_hand) > 1 and any(s.amount_fen * shares != total * s.share for s in in_hand):
        ratio = ":".join(str(s.share) for s in in_hand)
        expected = " / ".join(f"{s.name} {format_yuan(total * s.share // shares)}" for s in in_hand)
        raise InvalidInput(
            f"各出资方金额与出资比例 {ratio} 不一致：按合计 {format_yuan(total)} 元，应为 {expected} 元"
        )


def _validate_product(instrument: Instrument, data: CampaignInput, budget: int) -> None:
    if data.face_value_fen <= 0:
        raise InvalidInput({
            Instrument.VOUCHER: "券面额必须大于 0",
            Instrument.FREE_TICKET: "门票票面价格必须大于 0",
            Instrument.PURCHASE_SUBSIDY: "单张补贴上限必须大于 0",
        }[instrument])
    if instrument is Instrument.VOUCHER and data.threshold_fen and data.threshold_fen < data.face_value_fen:
        raise InvalidInput(
            f"使用门槛（{format_yuan(data.threshold_fen)} 元）不能低于券面额（{format_yuan(data.face_value_fen)} 元）；"
            "无门槛券请把门槛填 0"
        )
    if instrument is Instrument.PURCHASE_SUBSIDY and not (data.percent_bp and 1 <= data.percent_bp <= 10000):
        raise InvalidInput("补贴比例应在 0.01% 到 100% 之间")
    if data.face_value_fen > budget:
        raise InvalidInput("单张券的金额不能大于活动预算")
    if data.planned_quantity is not None:
        if data.planned_quantity <= 0:
            raise InvalidInput("计划发放数量必须大于 0")
        needed = data.planned_quantity * data.face_value_fen
        if needed > budget:
            raise InvalidInput(
                f"预算不足：计划发放 {data.planned_quantity:,} 张 × {format_yuan(data.face_value_fen)} 元 = "
                f"{format_yuan(needed)} 元，超过已到位预算 {format_yuan(budget)} 元"
            )


def _apply(campaign: Campaign, data: CampaignInput, merchants: list[Merchant]) -> None:
    campaign.measure_id = data.measure_id
    campaign.name = data.name.strip()
    campaign.description = data.description.strip()
    campaign.instrument = data.instrument
    campaign.categories = list(data.categories)
    campaign.districts = list(data.districts)
    campaign.valid_from = data.valid_from
    campaign.valid_until = data.valid_until
    campaign.validity_days = data.validity_days
    campaign.usable_from = data.usable_from
    campaign.usable_until = data.usable_until
    campaign.per_person_limit = data.per_person_limit
    campaign.planned_quantity = data.planned_quantity
    campaign.award_min_fen = data.award_min_fen if data.instrument == Instrument.GRANT.value else None
    campaign.award_max_fen = data.award_max_fen if data.instrument == Instrument.GRANT.value else None
    campaign.merchants = merchants
    for old in list(campaign.funding_sources):
        db.session.delete(old)
    campaign.funding_sources = [
        FundingSource(kind=s.kind, name=s.name.strip(), amount_fen=s.amount_fen, status=s.status, share=s.share)
        for s in data.sources
    ]
    if data.instrument == Instrument.GRANT.value:
        if campaign.product is not None:
            db.session.delete(campaign.product)
            campaign.product = None
        return
    kind = PRODUCT_KIND[Instrument(data.instrument)].value
    product = campaign.product or VoucherProduct()
    product.kind = kind
    product.face_value_fen = data.face_value_fen
    product.threshold_fen = data.threshold_fen if kind == ProductKind.FIXED.value else 0
    product.percent_bp = data.percent_bp if kind == ProductKind.PERCENTAGE.value else None
    campaign.product = product


def create_campaign(data: CampaignInput, actor: User, *, at: datetime | None = None) -> Campaign:
    """A new draft. `at` (default now) dates it and its audit entry, as in approve()."""
    _, merchants = _validate(data)
    campaign = Campaign(created_by_id=actor.id, status=CampaignStatus.DRAFT.value, created_at=at or utcnow())
    _apply(campaign, data, merchants)
    db.session.add(campaign)
    db.session.flush()  # the audit entry needs the new id
    audit.record("campaign.create", campaign, actor=actor, after=snapshot(campaign), at=at)
    return campaign


def delete_draft(campaign_id: int, actor: User) -> str:
    """删除草稿: a draft that was never approved goes, with its funding rows and voucher product (it has
    no ledger accounts, releases or vouchers: those come with approval). What it held stays in the
    audit log. Returns its name, for the page's message."""
    campaign = lock_campaign(campaign_id)
    if campaign.status_enum is not CampaignStatus.DRAFT:
        raise InvalidTransition("只有草稿可以删除；已提交或已审批的活动不能删除")
    if campaign.approved_at is not None or campaign.releases:
        raise InvalidTransition("该活动曾经批准，不能删除")  # returned drafts are never approved; a guard
    before = snapshot(campaign)
    name = campaign.name
    audit.record("campaign.delete", campaign, actor=actor, before=before)
    campaign.merchants = []
    if campaign.product is not None:
        db.session.delete(campaign.product)
    for source in campaign.funding_sources:
        db.session.delete(source)
    db.session.flush()  # the campaign's rows go before the campaign they point at
    db.session.delete(campaign)
    db.session.flush()
    return name


@dataclass(frozen=True)
class CampaignFilter:
    """The campaign list's search: words in the name, a status, a measure."""

    text: str = ""
    status: str | None = None
    measure_number: int | None = None

    @classmethod
    def parse(cls, args: Mapping[str, str]) -> CampaignFilter:
        status = args.get("status") or None
        measure = parse_id(args.get("measure"))
        return cls(text=(args.get("q") or "").strip()[:60],
                   status=status if status in {s.value for s in CampaignStatus} else None,
                   measure_number=measure if measure is not None and 1 <= measure <= 99 else None)

    def args(self) -> dict[str, str | int]:
        """The filter as the list's query arguments, for its page links."""
        found: dict[str, str | int] = {}
        if self.text:
            found["q"] = self.text
        if self.status:
            found["status"] = self.status
        if self.measure_number:
            found["measure"] = self.measure_number
        return found


def campaign_query(f: CampaignFilter) -> Select[Campaign]:
    """Campaigns matching the filter, newest first (the list pages through it)."""
    query = select(Campaign).order_by(Campaign.id.desc())
    if f.text:
        query = query.where(Campaign.name.contains(f.text, autoescape=True))
    if f.status:
        query = query.where(Campaign.status == f.status)
    if f.measure_number:
        query = query.join(Measure).where(Measure.number == f.measure_number)
    return query


def update_draft(campaign_id: int, data: CampaignInput, actor: User) -> Campaign:
    campaign = lock_campaign(campaign_id)
    if campaign.status_enum is not CampaignStatus.DRAFT:
        raise InvalidTransition("只有草稿状态的活动可以修改；已提交的活动请先由审批人退回")
    _, merchants = _validate(data)
    before = snapshot(campaign)
    _apply(campaign, data, merchants)
    db.session.flush()  # the snapshot below reads the new sources and product
    audit.record("campaign.update", campaign, actor=actor, before=before, after=snapshot(campaign))
    return campaign


def snapshot(campaign: Campaign) -> dict:
    product = campaign.product
    return {
        "name": campaign.name,
        "status": campaign.status,
        "instrument": campaign.instrument,
        "measure_id": campaign.measure_id,
        "sources": [
            {"kind": s.kind, "name": s.name, "amount_fen": s.amount_fen, "status": s.status, "share": s.share}
            for s in campaign.funding_sources
        ],
        "product": {
            "kind": product.kind, "face_value_fen": product.face_value_fen,
            "threshold_fen": product.threshold_fen, "percent_bp": product.percent_bp,
        } if product else None,
        "categories": campaign.categories,
        "districts": campaign.districts,
        "merchant_ids": [m.id for m in campaign.merchants],
        "valid_from": campaign.valid_from.isoformat(),
        "valid_until": campaign.valid_until.isoformat(),
        "validity_days": campaign.validity_days,
        "per_person_limit": campaign.per_person_limit,
    }


def move(campaign: Campaign, target: CampaignStatus) -> None:
    """Change status along the allowed-transitions table, or refuse."""
    check_move(campaign, target)
    campaign.status = target.value


def check_move(campaign: Campaign, target: CampaignStatus) -> None:
    if target not in CAMPAIGN_TRANSITIONS[campaign.status_enum]:
        raise InvalidTransition(f"活动当前为「{campaign.status_enum.label}」，不能变为「{target.label}」")


def lock_campaign(campaign_id: int) -> Campaign:
    """Load a campaign holding its row lock: budget moves on one campaign happen one at a time.

    The first lock of the system's order (docs/concurrency.md). FOR NO KEY UPDATE, not FOR UPDATE:
    a redemption or claim in flight inserts rows that refer to the campaign, and PostgreSQL's foreign
    key check takes a KEY SHARE lock on it, which FOR UPDATE would block (a deadlock, since that
    redemption already holds its voucher's lock, which closing the campaign needs).
    """
    return lock_campaigns([campaign_id])[campaign_id]


def lock_campaigns(campaign_ids: list[int]) -> dict[int, Campaign]:
    """Lock several campaigns, always in ascending id order, whatever order the caller names them in:
    two budget moves in opposite directions then queue instead of deadlocking."""
    locked = {}
    for campaign_id in sorted(set(campaign_ids)):
        campaign = db.session.scalar(
            select(Campaign).where(Campaign.id == campaign_id).with_for_update(key_share=True)
            .execution_options(populate_existing=True)
        )
        if campaign is None:
            raise NotFound("找不到该活动")
        locked[campaign_id] = campaign
    return locked


def lock_release(release_id: int) -> tuple[Campaign, Release]:
    """Lock a release and its campaign (campaign first, the order every budget move takes)."""
    release = db.session.get(Release, release_id)
    if release is None:
        raise NotFound("找不到该场次")
    campaign = lock_campaign(release.campaign_id)
    release = db.session.scalar(
        select(Release).where(Release.id == release_id).with_for_update().execution_options(populate_existing=True)
    )
    assert release is not None  # found above, and a release is never deleted
    return campaign, release


def submit_for_approval(campaign: Campaign, actor: User, *, at: datetime | None = None) -> None:
    """Send a draft to the approvers. `at` (default now) dates the audit entry, as in approve()."""
    before = campaign.status
    move(campaign, CampaignStatus.PENDING_APPROVAL)
    campaign.submitted_by_id = actor.id
    campaign.rejection_reason = None
    audit.record("campaign.submit", campaign, actor=actor, before={"status": before}, after={"status": campaign.status},
                 at=at)


def _check_not_own_work(campaign: Campaign, actor: User) -> None:
    if actor.id in (campaign.created_by_id, campaign.submitted_by_id):
        raise MakerCheckerViolation()


def approve(campaign_id: int, actor: User, *, plan_override_reason: str | None = None,
            at: datetime | None = None) -> Campaign:
    """Approve a pending campaign: it becomes active and each in-hand source is funded by posting.

    A campaign that would take its measure past the policy's planned money (plan_check) is refused
    unless the approver gives `plan_override_reason`, kept on the campaign and in the audit log.

    `at` is when the approval happened (default now): approved_at, the funding postings and the audit
    entry are dated with it. Only a loader replaying history passes it (seed/city_scale.py); a posting
    so dated is still refused in a closed month."""
    campaign = lock_campaign(campaign_id)
    _check_not_own_work(campaign, actor)
    check_move(campaign, CampaignStatus.ACTIVE)
    # Two campaigns of one measure approved at once would each count the other as not yet committed,
    # and both pass though together they exceed the plan: approvals of one measure queue here, holding
    # their campaign (docs/concurrency.md), and count what is committed only once they hold it.
    serialize(f"measure.plan.{campaign.measure_id}")
    check = plan_check.assess(campaign)
    reason = plan_check.override_reason(check, plan_override_reason)
    move(campaign, CampaignStatus.ACTIVE)
    campaign.approved_by_id = actor.id
    campaign.approved_at = at or utcnow()
    campaign.plan_override_reason = reason
    ledger.open_accounts(campaign.id, [(s.id, s.share) for s in campaign.funding_sources if s.status == "in_hand"])
    amounts = {s.id: s.amount_fen for s in campaign.funding_sources}
    for source in ledger.source_accounts(campaign.id):
        amount = amounts[source.source_id]
        ledger.post(
            EntryKind.FUNDING.value, campaign.id,
            [(source.ids[AccountKind.FUNDING], -amount), (source.ids[AccountKind.AVAILABLE], amount)],
            memo="资金到位", ref=("funding_source", source.source_id), actor_id=actor.id, at=at,
        )
    audit.record(
        "campaign.approve", campaign, actor=actor, before={"status": "pending_approval"},
        after={"status": campaign.status, "plan": check.as_audit(), "plan_override_reason": reason}, at=at,
    )
    return campaign


def reject(campaign_id: int, actor: User, reason: str) -> Campaign:
    campaign = lock_campaign(campaign_id)
    if not reason.strip():
        raise InvalidInput("退回时请填写原因")
    _check_not_own_work(campaign, actor)
    move(campaign, CampaignStatus.DRAFT)
    campaign.rejection_reason = reason.strip()
    audit.record(
        "campaign.reject", campaign, actor=actor, before={"status": "pending_approval"},
        after={"status": campaign.status, "reason": campaign.rejection_reason},
    )
    return campaign


def pause(campaign_id: int, actor: User) -> Campaign:
    """Stop claims and redemptions for a while (e.g. a suspected abuse); nothing moves in the ledger."""
    campaign = lock_campaign(campaign_id)
    move(campaign, CampaignStatus.PAUSED)
    audit.record("campaign.pause", campaign, actor=actor, before={"status": "active"}, after={"status": "paused"})
    return campaign


def resume(campaign_id: int, actor: User) -> Campaign:
    campaign = lock_campaign(campaign_id)
    move(campaign, CampaignStatus.ACTIVE)
    audit.record("campaign.resume", campaign, actor=actor, before={"status": "paused"}, after={"status": "active"})
    return campaign


class HasValidity(Protocol):
    """What voucher_validity reads: a Campaign, or a row of these columns of it."""

    @property
    def valid_from(self) -> date: ...
    @property
    def valid_until(self) -> date: ...
    @property
    def validity_days(self) -> int | None: ...


def voucher_validity(campaign: HasValidity, claimed_at: datetime) -> tuple[datetime, datetime]:
    """A claimed voucher is usable from the campaign's first local day to its last, or for
    validity_days after the claim where the campaign says so (never past the campaign's end)."""
    start = local_day_start_utc(campaign.valid_from)
    end = local_day_end_utc(campaign.valid_until)
    if campaign.validity_days:
        end = min(end, claimed_at + timedelta(days=campaign.validity_days))
    return start, end


def approvals_waiting() -> int:
    """What waits for an approver on 待审批: campaigns submitted, budget changes requested, grant
    applications reviewed and merchant applications (the count beside the link in the navigation)."""
    from_each = [
        select(func.count(Campaign.id)).where(Campaign.status == CampaignStatus.PENDING_APPROVAL.value),
        select(func.count(BudgetChange.id)).where(BudgetChange.status == BudgetChangeStatus.PENDING.value),
        select(func.count(GrantApplication.id)).where(GrantApplication.status == GrantStatus.REVIEWED.value),
        select(func.count(Merchant.id)).where(Merchant.status == MerchantStatus.PENDING.value),
    ]
    return int(db.session.scalar(select(sum((q.scalar_subquery() for q in from_each), start=literal(0)))) or 0)
