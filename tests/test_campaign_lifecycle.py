"""A campaign's lifecycle: only the moves of the transitions table are allowed; pausing stops claims
and redemptions; closing withdraws and expires the unused vouchers and gives the unused money back."""
from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.conftest import pin_ordinary_time
from tests.factories import PASSWORD, claim_one, make_campaign, make_citizen, make_world
from voucher.campaigns import budget, services
from voucher.campaigns.models import Campaign, CampaignStatus, FundingSource, Measure, Release
from voucher.campaigns.services import SourceInput
from voucher.core.audit import AuditEntry
from voucher.core.clock import local_moment, local_today
from voucher.core.db import db as _db
from voucher.core.errors import (
    CampaignNotActive,
    InvalidInput,
    InvalidTransition,
    MakerCheckerViolation,
    ReleaseNotOpen,
    VoucherExpired,
)
from voucher.counter.redemption import redeem
from voucher.ledger.closing import close_period
from voucher.ledger.models import AccountKind, JournalEntry
from voucher.ledger.periods import PeriodClosed
from voucher.ledger.services import campaign_balances
from voucher.reports.consistency import verify_ledger
from voucher.vouchers import closing, releases
from voucher.vouchers.models import Voucher
from voucher.vouchers.services import claim

S = CampaignStatus
# The allowed moves, written out independently of the product's table.
ALLOWED = {
    (S.DRAFT, S.PENDING_APPROVAL),
    (S.PENDING_APPROVAL, S.ACTIVE),
    (S.PENDING_APPROVAL, S.DRAFT),
    (S.ACTIVE, S.PAUSED),
    (S.ACTIVE, S.CLOSED),
    (S.PAUSED, S.ACTIVE),
    (S.PAUSED, S.CLOSED),
}


def login(client, username):
    client.post("/logout")
    response = client.post("/login", data={"username": username, "password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)


@pytest.mark.parametrize("current", list(S), ids=lambda s: s.value)
@pytest.mark.parametrize("target", list(S), ids=lambda s: s.value)
def test_transitions_table(current, target):
    campaign = Campaign(status=current.value)
    if (current, target) in ALLOWED:
        services.move(campaign, target)
        assert campaign.status == target.value
    else:
        with pytest.raises(InvalidTransition):
            services.move(campaign, target)
        assert campaign.status == current.value


def draft(world) -> Campaign:
    measure_id = _db.session.scalar(select(Measure.id).where(Measure.number == 1))
    campaign = services.create_campaign(services.CampaignInput(
        measure_id=measure_id, name="草稿活动", face_value_fen=20_00, threshold_fen=100_00,
        valid_from=local_today(), valid_until=local_today() + timedelta(days=30),
        sources=[SourceInput("municipal_finance", "市财政", 100_000_00)],
    ), world.maker)
    _db.session.commit()
    return campaign


def test_a_draft_cannot_be_approved_directly(db):
    world = make_world()
    campaign = draft(world)
    with pytest.raises(InvalidTransition):
        services.approve(campaign.id, world.approver)
    db.session.rollback()
    with pytest.raises(InvalidTransition):
        services.pause(campaign.id, world.approver)
    db.session.rollback()
    db.session.expire_all()
    campaign = db.session.get(Campaign, campaign.id)
    assert campaign.status == "draft" and campaign.approved_by_id is None
    assert campaign_balances([campaign.id]).get(campaign.id) is None  # nothing funded

    # Submitted, it can be approved by someone else.
    services.submit_for_approval(campaign, world.maker)
    db.session.commit()
    services.approve(campaign.id, world.approver)
    db.session.commit()
    assert db.session.get(Campaign, campaign.id).status == "active"
    assert campaign_balances([campaign.id])[campaign.id][AccountKind.AVAILABLE] == 100_000_00


def test_a_closed_campaign_cannot_be_resumed_or_paused(db):
    world = make_world()
    campaign, _ = make_campaign(world, quantity=3)
    closing.close_campaign(campaign.id, world.approver, "活动提前结束")
    db.session.commit()
    for action in (services.resume, services.pause):
        with pytest.raises(InvalidTransition):
            action(campaign.id, world.approver)
        db.session.rollback()
    with pytest.raises(InvalidTransition):
        closing.close_campaign(campaign.id, world.approver, "再次结束")
    db.session.rollback()
    db.session.expire_all()
    assert db.session.get(Campaign, campaign.id).status == "closed"
    assert verify_ledger() == []


def test_pause_blocks_claims_and_redemptions_and_resume_restores_them(client, db):
    world = make_world()
    campaign, release = make_campaign(world, quantity=5)
    held = claim_one(release, make_citizen("a"))
    newcomer = make_citizen("b")

    services.pause(campaign.id, world.maker)
    db.session.commit()
    with pytest.raises(ReleaseNotOpen) as refused:
        claim(release.id, newcomer)
    assert "未开放" in refused.value.message
    db.session.rollback()
    with pytest.raises(CampaignNotActive) as refused:
        redeem(held.code, 150_00, world.cashier)
    assert "未在进行中" in refused.value.message
    db.session.rollback()

    # The counter says so too, and nothing is redeemed.
    login(client, "cashier")
    response = client.post("/counter", data={"code": held.code, "order_amount": "150", "idempotency_key": "p1"})
    assert response.status_code == 409
    assert "未在进行中" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Voucher, held.id).status == "claimed"

    services.resume(campaign.id, world.maker)
    db.session.commit()
    assert claim_one(release, newcomer).citizen_id == newcomer.id
    assert redeem(held.code, 150_00, world.cashier).redemption.subsidy_fen == 20_00
    db.session.commit()
    assert verify_ledger() == []


A = 100_000_00  # the enterprise's part; the city puts in twice as much


def test_close_returns_unused_money_and_retires_unused_vouchers(client, db):
    world = make_world()
    campaign, release = make_campaign(
        world, quantity=10, per_person_limit=10, face_value_fen=30_00, threshold_fen=0,
        sources=[SourceInput("municipal_finance", "市财政", 2 * A, share=2),
                 SourceInput("enterprise", "合作商户", A, share=1)],
    )
    campaign_id = campaign.id
    citizen = make_citizen()
    claimed = [claim_one(release, citizen) for _ in range(5)]
    subsidies = []
    for voucher, order in zip(claimed[:2], (100_00, 12_34)):
        subsidies.append(redeem(voucher.code, order, world.cashier).redemption.subsidy_fen)
        db.session.commit()
    assert subsidies == [30_00, 12_34]

    # Only an approver other than the maker closes, and only with a reason.
    with pytest.raises(MakerCheckerViolation):
        closing.close_campaign(campaign_id, world.maker, "经办人想结束")
    db.session.rollback()
    with pytest.raises(InvalidInput) as refused:
        closing.close_campaign(campaign_id, world.approver, "  ")
    assert "结束活动时请填写原因" in refused.value.message
    db.session.rollback()

    login(client, "maker")
    assert client.post(f"/campaigns/{campaign_id}/close", data={"close-reason": "经办人想结束"}).status_code == 403
    login(client, "approver")
    assert client.post(f"/campaigns/{campaign_id}/close", data={"close-reason": ""}).status_code == 422
    db.session.expire_all()
    assert db.session.get(Campaign, campaign_id).status == "active"

    response = client.post(f"/campaigns/{campaign_id}/close", data={"close-reason": "活动期满，提前结束"})
    assert response.status_code == 302, response.get_data(as_text=True)
    db.session.expire_all()
    campaign = db.session.get(Campaign, campaign_id)
    assert campaign.status == "closed" and campaign.closed_at is not None

    statuses = Counter(db.session.scalars(select(Voucher.status).where(Voucher.campaign_id == campaign_id)))
    assert statuses == {"withdrawn": 5, "expired": 3, "redeemed": 2}
    assert {r.status for r in db.session.scalars(select(Release).where(Release.campaign_id == campaign_id))} == {"closed"}

    totals = campaign_balances([campaign_id])[campaign_id]
    assert totals[AccountKind.RESERVED] == 0
    assert totals[AccountKind.AVAILABLE] == 0
    assert totals[AccountKind.SPENT] == sum(subsidies)

    sources = db.session.scalars(
        select(FundingSource).where(FundingSource.campaign_id == campaign_id).order_by(FundingSource.id)
    ).all()
    spent_by_source = []
    for source in sources:
        statement = budget.funder_statement(source.id)
        spent = statement.balances[AccountKind.SPENT]
        spent_by_source.append(spent)
        assert source.returned_fen == source.amount_fen - spent
        assert statement.balances[AccountKind.FUNDING] == -(source.amount_fen - source.returned_fen)
        assert statement.balances[AccountKind.AVAILABLE] == 0
        assert statement.balances[AccountKind.RESERVED] == 0
    assert sum(spent_by_source) == sum(subsidies)
    assert sum(s.returned_fen for s in sources) == 3 * A - sum(subsidies)
    assert verify_ledger() == []

    page = client.get(f"/campaigns/{campaign_id}").get_data(as_text=True)
    heading = re.search(r"<h1>(.*?)</h1>", page, re.S).group(1)  # the campaign's badge, not a round's
    assert "已结束" in heading and "进行中" not in heading

    # After closing, a claimed-unused voucher can no longer be redeemed.
    with pytest.raises(VoucherExpired):
        redeem(claimed[3].code, 100_00, world.cashier)
    db.session.rollback()


@pin_ordinary_time  # a day in the middle of a month, whose previous month can be closed
def test_the_services_date_a_change_when_they_are_told_it_happened(db):
    """`at` (default now), for a loader replaying history (seed/city_scale.py): the change, its postings
    and its audit entry are dated then; a moment in a closed month is refused as any dated posting is."""
    world = make_world()
    today = local_today()
    close_period(f"{today.replace(day=1) - timedelta(days=1):%Y-%m}", world.finance)
    campaign = draft(world)
    submitted, approved = local_moment(today - timedelta(days=2), 9), local_moment(today - timedelta(days=1), 15)
    scheduled, opened, closed = (local_moment(today - timedelta(days=1), 16), local_moment(today, 9),
                                 local_moment(today, 9, 30))
    services.submit_for_approval(campaign, world.maker, at=submitted)
    db.session.commit()
    with pytest.raises(PeriodClosed):
        services.approve(campaign.id, world.approver, at=local_moment(today.replace(day=1) - timedelta(days=3), 10))
    db.session.rollback()

    services.approve(campaign.id, world.approver, at=approved)
    release = releases.create_release(campaign, name="第一轮", quantity=3, per_person_limit=1, opens_at=opened,
                                      actor=world.maker, at=scheduled)
    releases.open_release(release.id, world.maker, at=opened)
    closing.close_campaign(campaign.id, world.approver, "活动到期", at=closed)
    db.session.commit()
    db.session.expire_all()
    campaign, release = db.session.get(Campaign, campaign.id), db.session.get(Release, release.id)
    assert (campaign.approved_at, campaign.closed_at, release.created_at, release.opened_at) == \
        (approved, closed, scheduled, opened)
    entries = Counter(db.session.execute(
        select(JournalEntry.kind, JournalEntry.created_at).where(JournalEntry.campaign_id == campaign.id)).all())
    assert entries == {("funding", approved): 1, ("release_reserve", opened): 1, ("withdrawal", closed): 1,
                       ("close_return", closed): 1}
    trail = db.session.execute(select(AuditEntry.action, AuditEntry.at).where(
        AuditEntry.action.in_(("campaign.submit", "campaign.approve", "release.create", "release.open",
                               "campaign.close"))).order_by(AuditEntry.id)).all()
    assert trail == [("campaign.submit", submitted), ("campaign.approve", approved), ("release.create", scheduled),
                     ("release.open", opened), ("campaign.close", closed)]
    assert db.session.scalar(select(func.count(Voucher.id)).where(Voucher.release_id == release.id)) == 3
    assert verify_ledger() == []
