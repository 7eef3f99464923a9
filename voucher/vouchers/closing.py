"""Closing a campaign (结束活动): its unclaimed vouchers are withdrawn and its claimed ones expire, its
releases close, and its unused money goes back to the funders.

Here rather than in campaigns/budget.py (budget changes and funder statements) because closing changes
vouchers, which sit above campaigns (docs/architecture.md, Layers).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from voucher.accounts.models import User
from voucher.campaigns.budget import locked_source
from voucher.campaigns.models import Campaign, CampaignStatus, Release, ReleaseStatus
from voucher.campaigns.services import lock_campaign, move
from voucher.core import audit
from voucher.core.clock import utcnow
from voucher.core.db import db, rowcount
from voucher.core.errors import InvalidInput, InvalidTransition, MakerCheckerViolation
from voucher.ledger import services as ledger
from voucher.ledger.models import AccountKind, EntryKind
from voucher.vouchers.models import Voucher, VoucherStatus


def close_campaign(campaign_id: int, actor: User, reason: str, *, at: datetime | None = None) -> Campaign:
    """Close a campaign: unclaimed vouchers are withdrawn, unused claimed ones expire, and all money
    not spent goes back to its funders, by posting. Spent money stays for settlement.

    `at` is when the campaign closed (default now): closed_at, the postings and the audit entry are
    dated with it, for a loader replaying history (seed/city_scale.py)."""
    campaign = lock_campaign(campaign_id)
    if not reason.strip():
        raise InvalidInput("结束活动时请填写原因")
    if actor.id == campaign.created_by_id:
        raise MakerCheckerViolation("活动须由经办人以外的审批人结束")
    busy = db.session.scalar(select(Release.name).where(
        Release.campaign_id == campaign.id,
        Release.status.in_([ReleaseStatus.OPENING.value, ReleaseStatus.DRAWING.value])).limit(1))
    if busy is not None:
        # Its money is reserved but its vouchers are not all minted (or not yet handed out): closing now
        # would strand the difference. The background job finishes it first.
        raise InvalidTransition(f"场次「{busy}」正在后台生成消费券或开奖，完成后才能结束活动")
    before = campaign.status
    move(campaign, CampaignStatus.CLOSED)
    campaign.closed_at = at or utcnow()
    sources = ledger.source_accounts(campaign.id)
    # The campaign's own rows before its vouchers (docs/concurrency.md, steps 3 then 5): its funding
    # sources, whose returned money is written below, and its releases, closed here.
    for source in sources:
        locked_source(source.source_id)

    if campaign.product is not None:
        db.session.execute(
            update(Release)
            .where(Release.campaign_id == campaign.id, Release.status != ReleaseStatus.CLOSED.value)
            .values(status=ReleaseStatus.CLOSED.value)
        )
        for status, new_status in ((VoucherStatus.AVAILABLE, VoucherStatus.WITHDRAWN),
                                   (VoucherStatus.CLAIMED, VoucherStatus.EXPIRED)):
            # The money moved is counted from the rows this update changed, not from a count read
            # before it: a redemption that committed meanwhile took its voucher out of the update.
            count = rowcount(db.session.execute(
                update(Voucher)
                .where(Voucher.campaign_id == campaign.id, Voucher.status == status.value)
                .values(status=new_status.value)
                .execution_options(synchronize_session=False)
            ))
            if not count:
                continue
            ledger.post(
                (EntryKind.WITHDRAWAL if status is VoucherStatus.AVAILABLE else EntryKind.EXPIRY).value, campaign.id,
                ledger.voucher_lines(sources, AccountKind.RESERVED, AccountKind.AVAILABLE,
                                     campaign.product.face_value_fen, count),
                memo=f"活动结束：{count} 张券{new_status.label}", ref=("campaign", campaign.id), actor_id=actor.id,
                at=at,
            )

    balances = ledger.balances({s.ids[AccountKind.AVAILABLE] for s in sources})
    returned = {}
    for source in sources:
        amount = balances.get(source.ids[AccountKind.AVAILABLE], 0)
        if amount:
            ledger.post(
                EntryKind.CLOSE_RETURN.value, campaign.id,
                [(source.ids[AccountKind.AVAILABLE], -amount), (source.ids[AccountKind.FUNDING], amount)],
                memo="活动结束，未使用资金退回出资方", ref=("funding_source", source.source_id), actor_id=actor.id,
                at=at,
            )
            locked_source(source.source_id).returned_fen += amount
            returned[source.source_id] = amount
    audit.record(
        "campaign.close", campaign, actor=actor, before={"status": before},
        after={"status": campaign.status, "reason": reason.strip(), "returned_fen": returned}, at=at,
    )
    return campaign
