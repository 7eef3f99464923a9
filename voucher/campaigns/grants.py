"""补贴申报: applications to grant campaigns, reviewed, approved within bounds and budget, then paid."""
from __future__ import annotations

from sqlalchemy import select

from voucher.accounts.models import User
from voucher.campaigns.models import (
    GRANT_TRANSITIONS,
    Campaign,
    CampaignStatus,
    GrantApplication,
    GrantStatus,
    Instrument,
)
from voucher.campaigns.services import lock_campaign
from voucher.core import audit, uscc
from voucher.core.clock import utcnow
from voucher.core.db import db
from voucher.core.errors import (
    AccountWouldGoNegative,
    BudgetExhausted,
    InvalidInput,
    InvalidTransition,
    MakerCheckerViolation,
    NotFound,
)
from voucher.core.money import format_yuan
from voucher.core.reference import DISTRICTS
from voucher.ledger import services as ledger
from voucher.ledger.models import AccountKind, EntryKind


def submit(
    campaign_id: int, *, applicant_name: str, applicant_uscc: str, project: str, evidence: str, requested_fen: int,
    district: str | None, actor: User,
) -> GrantApplication:
    """Record an application received from an organiser (bureau staff enter what was filed)."""
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None or campaign.instrument_enum is not Instrument.GRANT:
        raise NotFound("找不到该补贴申报活动")
    if campaign.status_enum is not CampaignStatus.ACTIVE:
        raise InvalidTransition("该补贴活动当前不受理申报")
    code = (applicant_uscc or "").strip().upper()
    if not uscc.is_valid(code):
        raise InvalidInput("统一社会信用代码不正确：应为 18 位，且校验位正确")
    if not applicant_name.strip() or not project.strip():
        raise InvalidInput("请填写申报单位和申报项目")
    if not evidence.strip():
        raise InvalidInput("请填写申报材料（活动时间、规模、票据等）")
    if requested_fen <= 0:
        raise InvalidInput("申请金额必须大于 0")
    if district and district not in DISTRICTS:
        raise InvalidInput("区县不正确")
    application = GrantApplication(
        campaign_id=campaign.id, applicant_name=applicant_name.strip(), applicant_uscc=code, project=project.strip(),
        evidence=evidence.strip(), requested_fen=requested_fen, district=district or None, submitted_by_id=actor.id,
    )
    db.session.add(application)
    db.session.flush()  # the audit entry needs the new id
    audit.record("grant.submit", application, actor=actor,
                 after={"applicant": application.applicant_name, "requested_fen": requested_fen})
    return application


def _load(application_id: int) -> GrantApplication:
    application = db.session.scalar(
        select(GrantApplication).where(GrantApplication.id == application_id).with_for_update()
        .execution_options(populate_existing=True)
    )
    if application is None:
        raise NotFound("找不到该申报")
    return application


def _move(application: GrantApplication, target: GrantStatus) -> str:
    before = application.status
    if target not in GRANT_TRANSITIONS[application.status_enum]:
        raise InvalidTransition(f"申报当前为「{application.status_enum.label}」，不能变为「{target.label}」")
    application.status = target.value
    return before


def _check_bounds(campaign: Campaign, amount: int) -> None:
    # a grant scheme has both bounds (campaigns.services sets them with the instrument)
    assert campaign.award_min_fen is not None and campaign.award_max_fen is not None
    if not campaign.award_min_fen <= amount <= campaign.award_max_fen:
        raise InvalidInput(
            f"补贴金额应在 {format_yuan(campaign.award_min_fen)} 至 {format_yuan(campaign.award_max_fen)} 元之间"
        )


def review(application_id: int, actor: User, *, recommended_fen: int, note: str) -> GrantApplication:
    """Bureau staff check the evidence and recommend an amount within the measure's per-award bounds."""
    application = _load(application_id)
    if not note.strip():
        raise InvalidInput("请填写初审意见")
    _check_bounds(application.campaign, recommended_fen)
    before = _move(application, GrantStatus.REVIEWED)
    application.review_note = note.strip()
    application.recommended_fen = recommended_fen
    application.reviewed_by_id = actor.id
    audit.record("grant.review", application, actor=actor, before={"status": before},
                 after={"status": application.status, "recommended_fen": recommended_fen, "note": application.review_note})
    return application


def approve(application_id: int, actor: User, *, amount_fen: int) -> GrantApplication:
    """Fix the amount (within the bounds and the remaining budget) and reserve it in the ledger."""
    application = _load(application_id)
    campaign = lock_campaign(application.campaign_id)
    if actor.id in (application.reviewed_by_id, application.submitted_by_id):
        raise MakerCheckerViolation("不能审批自己录入或初审的申报，请由其他审批人处理")
    if campaign.status_enum is not CampaignStatus.ACTIVE:
        raise InvalidTransition("该补贴活动当前不在进行中")
    _check_bounds(campaign, amount_fen)
    sources = ledger.source_accounts(campaign.id)
    lines = ledger.transfer_lines(sources, AccountKind.AVAILABLE, AccountKind.RESERVED, amount_fen)
    try:
        ledger.require_balance(sources, AccountKind.AVAILABLE, lines)
    except AccountWouldGoNegative:
        available = ledger.campaign_balances([campaign.id])[campaign.id][AccountKind.AVAILABLE]
        raise BudgetExhausted(f"剩余可用预算 {format_yuan(available)} 元，不足以批准 {format_yuan(amount_fen)} 元") from None
    # The amount is set with the status: an approved application always carries its amount.
    application.approved_fen = amount_fen
    application.decided_by_id = actor.id
    before = _move(application, GrantStatus.APPROVED)
    ledger.post(EntryKind.GRANT_APPROVAL.value, campaign.id, lines, memo=f"批准补贴：{application.applicant_name}",
                ref=("grant_application", application.id), actor_id=actor.id)
    audit.record("grant.approve", application, actor=actor, before={"status": before},
                 after={"status": application.status, "approved_fen": amount_fen})
    return application


def reject(application_id: int, actor: User, *, reason: str) -> GrantApplication:
    application = _load(application_id)
    if not reason.strip():
        raise InvalidInput("驳回时请填写原因")
    before = _move(application, GrantStatus.REJECTED)
    application.rejection_reason = reason.strip()
    application.decided_by_id = actor.id
    audit.record("grant.reject", application, actor=actor, before={"status": before},
                 after={"status": application.status, "reason": application.rejection_reason})
    return application


def pay(application_id: int, actor: User) -> GrantApplication:
    """Record the payout: the reserved amount is settled to the applicant."""
    application = _load(application_id)
    before = _move(application, GrantStatus.PAID)
    sources = ledger.source_accounts(application.campaign_id)
    assert application.approved_fen is not None  # CHECK approved_has_amount
    ledger.post(
        EntryKind.GRANT_PAYOUT.value, application.campaign_id,
        ledger.transfer_lines(sources, AccountKind.RESERVED, AccountKind.SETTLED, application.approved_fen),
        memo=f"拨付补贴：{application.applicant_name}", ref=("grant_application", application.id), actor_id=actor.id,
    )
    application.paid_by_id = actor.id
    application.paid_at = utcnow()
    audit.record("grant.pay", application, actor=actor, before={"status": before},
                 after={"status": application.status, "paid_fen": application.approved_fen})
    return application
