"""Campaign lifecycle with maker-checker approval, and release rounds."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import insert, select

from voucher.accounts.models import User
from voucher.campaigns.models import (
    CAMPAIGN_TRANSITIONS,
    Campaign,
    CampaignStatus,
    FundingKind,
    FundingSource,
    Measure,
    Release,
    ReleaseStatus,
    VoucherProduct,
)
from voucher.core import audit
from voucher.core.clock import local_day_end_utc, local_day_start_utc, utcnow
from voucher.core.db import db
from voucher.core.errors import (
    BudgetExhausted,
    AccountWouldGoNegative,
    InvalidInput,
    InvalidTransition,
    MakerCheckerViolation,
    NotFound,
)
from voucher.core.money import format_yuan
from voucher.ledger import services as ledger
from voucher.ledger.models import AccountKind, EntryKind
from voucher.merchants.models import CATEGORIES, DISTRICTS
from voucher.vouchers import codes
from voucher.vouchers.models import Voucher, VoucherStatus


@dataclass
class CampaignInput:
    measure_id: int
    name: str
    budget_fen: int
    face_value_fen: int
    threshold_fen: int
    valid_from: date
    valid_until: date
    funding_kind: str = FundingKind.MUNICIPAL_FINANCE.value
    funding_name: str = "市财政"
    description: str = ""
    categories: list[str] = field(default_factory=list)
    districts: list[str] = field(default_factory=list)


def _validate(data: CampaignInput) -> Measure:
    measure = db.session.get(Measure, data.measure_id)
    if measure is None:
        raise InvalidInput("请选择政策措施")
    if not data.name.strip():
        raise InvalidInput("请填写活动名称")
    if data.budget_fen <= 0:
        raise InvalidInput("活动预算必须大于 0")
    if data.face_value_fen <= 0:
        raise InvalidInput("券面额必须大于 0")
    if data.threshold_fen and data.threshold_fen < data.face_value_fen:
        raise InvalidInput(
            f"使用门槛（{format_yuan(data.threshold_fen)} 元）不能低于券面额（{format_yuan(data.face_value_fen)} 元）；"
            "无门槛券请把门槛填 0"
        )
    if data.face_value_fen > data.budget_fen:
        raise InvalidInput("券面额不能大于活动预算")
    if data.valid_until < data.valid_from:
        raise InvalidInput("有效期结束日期不能早于开始日期")
    if data.funding_kind not in {k.value for k in FundingKind}:
        raise InvalidInput("资金来源类型不正确")
    unknown = [c for c in data.categories if c not in CATEGORIES] + [d for d in data.districts if d not in DISTRICTS]
    if unknown:
        raise InvalidInput(f"未知的行业类别或区县：{'、'.join(unknown)}")
    return measure


def create_campaign(data: CampaignInput, actor: User) -> Campaign:
    _validate(data)
    campaign = Campaign(
        measure_id=data.measure_id,
        name=data.name.strip(),
        description=data.description.strip(),
        categories=list(data.categories),
        districts=list(data.districts),
        valid_from=data.valid_from,
        valid_until=data.valid_until,
        created_by_id=actor.id,
        status=CampaignStatus.DRAFT.value,
    )
    campaign.funding_sources.append(
        FundingSource(kind=data.funding_kind, name=data.funding_name, amount_fen=data.budget_fen, share=1)
    )
    campaign.product = VoucherProduct(face_value_fen=data.face_value_fen, threshold_fen=data.threshold_fen)
    db.session.add(campaign)
    db.session.flush()  # the audit entry needs the new id
    audit.record("campaign.create", campaign, actor=actor, after=_snapshot(campaign))
    return campaign


def _snapshot(campaign: Campaign) -> dict:
    return {
        "name": campaign.name,
        "status": campaign.status,
        "measure_id": campaign.measure_id,
        "budget_fen": campaign.budget_fen,
        "face_value_fen": campaign.product.face_value_fen if campaign.product else None,
        "threshold_fen": campaign.product.threshold_fen if campaign.product else None,
        "categories": campaign.categories,
        "districts": campaign.districts,
        "valid_from": campaign.valid_from.isoformat(),
        "valid_until": campaign.valid_until.isoformat(),
    }


def _move(campaign: Campaign, target: CampaignStatus) -> None:
    if target not in CAMPAIGN_TRANSITIONS[campaign.status_enum]:
        raise InvalidTransition(f"活动当前为「{campaign.status_enum.label}」，不能变为「{target.label}」")
    campaign.status = target.value


def lock_campaign(campaign_id: int) -> Campaign:
    """Load a campaign holding its row lock: budget moves on one campaign happen one at a time."""
    campaign = db.session.scalar(
        select(Campaign).where(Campaign.id == campaign_id).with_for_update().execution_options(populate_existing=True)
    )
    if campaign is None:
        raise NotFound("找不到该活动")
    return campaign


def submit_for_approval(campaign: Campaign, actor: User) -> None:
    before = campaign.status
    _move(campaign, CampaignStatus.PENDING_APPROVAL)
    campaign.submitted_by_id = actor.id
    campaign.rejection_reason = None
    audit.record("campaign.submit", campaign, actor=actor, before={"status": before}, after={"status": campaign.status})


def approve(campaign_id: int, actor: User) -> Campaign:
    """Approve a pending campaign: it becomes active and each in-hand source is funded by posting."""
    campaign = lock_campaign(campaign_id)
    if actor.id in (campaign.created_by_id, campaign.submitted_by_id):
        raise MakerCheckerViolation()
    _move(campaign, CampaignStatus.ACTIVE)
    campaign.approved_by_id = actor.id
    campaign.approved_at = utcnow()
    ledger.open_accounts(campaign)
    for source in ledger.source_accounts(campaign.id):
        funding = db.session.get(FundingSource, source.source_id)
        ledger.post(
            EntryKind.FUNDING.value,
            campaign.id,
            [(source.ids[AccountKind.FUNDING], -funding.amount_fen), (source.ids[AccountKind.AVAILABLE], funding.amount_fen)],
            memo=f"资金到位：{funding.name}",
            ref=("funding_source", funding.id),
            actor_id=actor.id,
        )
    audit.record(
        "campaign.approve", campaign, actor=actor, before={"status": "pending_approval"}, after={"status": campaign.status}
    )
    return campaign


def reject(campaign_id: int, actor: User, reason: str) -> Campaign:
    campaign = lock_campaign(campaign_id)
    if not reason.strip():
        raise InvalidInput("退回时请填写原因")
    if actor.id in (campaign.created_by_id, campaign.submitted_by_id):
        raise MakerCheckerViolation()
    _move(campaign, CampaignStatus.DRAFT)
    campaign.rejection_reason = reason.strip()
    audit.record(
        "campaign.reject", campaign, actor=actor, before={"status": "pending_approval"},
        after={"status": campaign.status, "reason": campaign.rejection_reason},
    )
    return campaign


def create_release(
    campaign: Campaign, *, name: str, quantity: int, per_person_limit: int, opens_at: datetime, actor: User
) -> Release:
    if campaign.status_enum not in (CampaignStatus.ACTIVE, CampaignStatus.PAUSED):
        raise InvalidTransition("活动审批通过后才能安排发放场次")
    if not name.strip():
        raise InvalidInput("请填写场次名称")
    if quantity <= 0:
        raise InvalidInput("发放数量必须大于 0")
    if per_person_limit <= 0:
        raise InvalidInput("每人限领数量必须大于 0")
    if any(r.name == name.strip() for r in campaign.releases):
        raise InvalidInput(f"场次名称「{name.strip()}」已存在")
    needed = quantity * campaign.product.face_value_fen
    if needed > campaign.budget_fen:
        raise BudgetExhausted(
            f"本场次需要 {format_yuan(needed)} 元（{quantity} 张 × {format_yuan(campaign.product.face_value_fen)} 元），"
            f"超过活动预算 {format_yuan(campaign.budget_fen)} 元"
        )
    release = Release(
        campaign_id=campaign.id,
        name=name.strip(),
        quantity=quantity,
        per_person_limit=per_person_limit,
        opens_at=opens_at,
        created_by_id=actor.id,
    )
    db.session.add(release)
    db.session.flush()  # the audit entry needs the new id
    audit.record(
        "release.create", release, actor=actor,
        after={"name": release.name, "quantity": quantity, "per_person_limit": per_person_limit, "opens_at": opens_at},
    )
    return release


def open_release(release_id: int, actor: User | None, now: datetime | None = None) -> Release:
    """Open a round: reserve quantity x face value in one posting, then mint its vouchers.

    Reserving the whole round up front keeps claims off the ledger entirely: a claim only takes one
    minted voucher row, so the hot path touches no shared balance.
    """
    now = now or utcnow()
    release = db.session.get(Release, release_id)
    if release is None:
        raise NotFound("找不到该场次")
    campaign = lock_campaign(release.campaign_id)
    release = db.session.scalar(
        select(Release).where(Release.id == release_id).with_for_update().execution_options(populate_existing=True)
    )
    if release.status_enum is not ReleaseStatus.SCHEDULED:
        raise InvalidTransition(f"场次当前为「{release.status_enum.label}」，不能再次开放")
    if campaign.status_enum is not CampaignStatus.ACTIVE:
        raise InvalidTransition("活动不在进行中，不能开放场次")
    if release.opens_at > now:
        raise InvalidTransition("尚未到场次的开放时间")
    face = campaign.product.face_value_fen
    needed = release.quantity * face
    sources = ledger.source_accounts(campaign.id)
    # Each voucher is split across sources the same way, so a round reserves exactly what its
    # vouchers will later move per source.
    lines = [
        (account_id, amount * release.quantity)
        for account_id, amount in ledger.transfer_lines(sources, AccountKind.AVAILABLE, AccountKind.RESERVED, face)
    ]
    try:
        ledger.require_balance(sources, AccountKind.AVAILABLE, lines)
    except AccountWouldGoNegative:
        available = ledger.campaign_balances([campaign.id])[campaign.id][AccountKind.AVAILABLE]
        raise BudgetExhausted(
            f"可用预算 {format_yuan(available)} 元，不足以开放本场次（需要 {format_yuan(needed)} 元）"
        ) from None
    ledger.post(
        EntryKind.RELEASE_RESERVE.value, campaign.id, lines,
        memo=f"场次开放预留：{release.name}", ref=("release", release.id), actor_id=getattr(actor, "id", None),
    )
    _mint(release, face)
    release.status = ReleaseStatus.OPEN.value
    release.opened_at = now
    audit.record(
        "release.open", release, actor=actor, before={"status": "scheduled"},
        after={"status": release.status, "reserved_fen": needed, "campaign_valid_from": campaign.valid_from,
               "campaign_valid_until": campaign.valid_until},
    )
    return release


def _mint(release: Release, face: int) -> None:
    issued: set[str] = set()
    while len(issued) < release.quantity:
        issued.add(codes.new_code())
    db.session.execute(
        insert(Voucher),
        [
            {"code": code, "release_id": release.id, "campaign_id": release.campaign_id, "face_value_fen": face,
             "status": VoucherStatus.AVAILABLE.value}
            for code in issued
        ],
    )


def voucher_validity(campaign: Campaign) -> tuple[datetime, datetime]:
    """A claimed voucher is usable from the campaign's first to its last local day."""
    return local_day_start_utc(campaign.valid_from), local_day_end_utc(campaign.valid_until)
