"""Budget changes after approval: top-up, cut and move are requested by the maker and take effect only
when another person (an approver) approves them; nothing moves before, and a refused change moves nothing."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.factories import PASSWORD, make_campaign, make_world
from voucher.campaigns.budget import decide_change, funder_statement, request_change
from voucher.campaigns.models import BudgetChange, Campaign, FundingSource
from voucher.core.errors import BudgetExhausted, InvalidInput, InvalidTransition, MakerCheckerViolation
from voucher.ledger.models import AccountKind
from voucher.ledger.services import campaign_balances
from voucher.reports.consistency import verify_ledger


def login(client, username):
    client.post("/logout")
    response = client.post("/login", data={"username": username, "password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)


def fresh(db):
    db.session.expire_all()


def available(campaign_id: int) -> int:
    return campaign_balances([campaign_id])[campaign_id][AccountKind.AVAILABLE]


def only_source(db, campaign_id: int) -> FundingSource:
    return db.session.scalar(select(FundingSource).where(FundingSource.campaign_id == campaign_id))


def request_via_page(client, campaign_id: int, source_id: int, kind: str, amount: str, reason: str = "年度预算调整",
                     target: int = 0):
    return client.post(f"/campaigns/{campaign_id}/budget-changes", data={
        "kind": kind, "funding_source_id": str(source_id), "amount": amount, "reason": reason,
        "target_funding_source_id": str(target),
    })


def last_change(db) -> BudgetChange:
    fresh(db)
    return db.session.scalar(select(BudgetChange).order_by(BudgetChange.id.desc()).limit(1))


def test_top_up_moves_nothing_until_another_person_approves(client, db):
    world = make_world()
    campaign, _ = make_campaign(world, budget_fen=1_000_000_00, quantity=100)
    campaign_id, source_id = campaign.id, campaign.funding_sources[0].id
    before = available(campaign_id)
    assert before == 1_000_000_00 - 100 * 20_00

    login(client, "maker")
    response = request_via_page(client, campaign_id, source_id, "top_up", "50,000", "市财政追加第二批资金")
    assert response.status_code == 302, response.get_data(as_text=True)
    change = last_change(db)
    assert (change.kind, change.amount_fen, change.status, change.requested_by_id) == (
        "top_up", 50_000_00, "pending", world.maker.id)
    assert change.target_funding_source_id is None
    assert available(campaign_id) == before
    assert only_source(db, campaign_id).amount_fen == 1_000_000_00

    # The maker cannot approve: the page refuses the role, the service refuses the requester.
    assert client.post(f"/budget-changes/{change.id}/approve").status_code == 403
    with pytest.raises(MakerCheckerViolation):
        decide_change(change.id, world.maker, approve=True)
    db.session.rollback()
    assert last_change(db).status == "pending"
    assert available(campaign_id) == before

    login(client, "approver")
    assert "市财政追加第二批资金" in client.get("/approvals").get_data(as_text=True)
    assert client.post(f"/budget-changes/{change.id}/approve").status_code == 302
    change = last_change(db)
    assert change.status == "approved" and change.decided_by_id == world.approver.id and change.decided_at
    assert available(campaign_id) == before + 50_000_00
    assert only_source(db, campaign_id).amount_fen == 1_050_000_00
    assert funder_statement(source_id).funded_fen == 1_050_000_00
    assert verify_ledger() == []

    # An approved change cannot be decided again.
    with pytest.raises(InvalidTransition):
        decide_change(change.id, world.approver, approve=True)
    db.session.rollback()
    assert available(campaign_id) == before + 50_000_00


def test_cut_beyond_available_is_refused_and_a_cut_within_it_works(client, db):
    world = make_world()
    # 1,000 yuan; a round of 45 x 20 reserves 900, leaving 100 available.
    campaign, _ = make_campaign(world, budget_fen=1_000_00, quantity=45)
    campaign_id, source_id = campaign.id, campaign.funding_sources[0].id
    assert available(campaign_id) == 100_00

    login(client, "maker")
    assert request_via_page(client, campaign_id, source_id, "cut", "200", "压减预算").status_code == 302
    too_big = last_change(db)
    assert too_big.status == "pending"
    balances_before = dict(campaign_balances([campaign_id])[campaign_id])

    login(client, "approver")
    response = client.post(f"/budget-changes/{too_big.id}/approve")
    page = response.get_data(as_text=True)
    assert response.status_code == 409, page
    assert "核减后预算将低于已预留和已核销的金额" in page
    fresh(db)
    assert db.session.get(BudgetChange, too_big.id).status == "pending"
    assert db.session.get(BudgetChange, too_big.id).decided_by_id is None
    assert dict(campaign_balances([campaign_id])[campaign_id]) == balances_before
    assert only_source(db, campaign_id).amount_fen == 1_000_00
    assert verify_ledger() == []

    # The same refusal from the service.
    with pytest.raises(BudgetExhausted) as refused:
        decide_change(too_big.id, world.approver, approve=True)
    assert "核减后预算将低于已预留和已核销的金额" in str(refused.value)
    db.session.rollback()

    # A cut within what is available goes through, and so does one that takes exactly the rest.
    login(client, "maker")
    assert request_via_page(client, campaign_id, source_id, "cut", "60", "压减预算").status_code == 302
    within = last_change(db)
    login(client, "approver")
    assert client.post(f"/budget-changes/{within.id}/approve").status_code == 302
    assert last_change(db).status == "approved"
    assert available(campaign_id) == 40_00
    assert campaign_balances([campaign_id])[campaign_id][AccountKind.RESERVED] == 900_00
    assert only_source(db, campaign_id).amount_fen == 940_00
    assert verify_ledger() == []

    login(client, "maker")
    assert request_via_page(client, campaign_id, source_id, "cut", "40", "压减预算").status_code == 302
    rest = last_change(db)
    login(client, "approver")
    assert client.post(f"/budget-changes/{rest.id}/approve").status_code == 302
    assert available(campaign_id) == 0
    assert only_source(db, campaign_id).amount_fen == 900_00
    assert verify_ledger() == []


def test_move_to_another_active_campaign(client, db):
    world = make_world()
    source_campaign, _ = make_campaign(world, budget_fen=1_000_000_00, quantity=100)
    target_campaign, _ = make_campaign(world, budget_fen=500_000_00, quantity=10, name="连云区餐饮消费券")
    from_id, to_id = source_campaign.id, target_campaign.id
    from_source, to_source = source_campaign.funding_sources[0].id, target_campaign.funding_sources[0].id
    from_before, to_before = available(from_id), available(to_id)

    login(client, "maker")
    # A move needs another campaign's source to receive the money.
    response = request_via_page(client, from_id, from_source, "move", "100,000", "调剂至连云区")
    assert response.status_code == 422
    assert "请选择接收调剂资金的其他活动的已到位资金来源" in response.get_data(as_text=True)
    assert last_change(db) is None

    response = request_via_page(client, from_id, from_source, "move", "100,000", "调剂至连云区", target=to_source)
    assert response.status_code == 302, response.get_data(as_text=True)
    change = last_change(db)
    assert (change.kind, change.target_funding_source_id, change.status) == ("move", to_source, "pending")
    assert (available(from_id), available(to_id)) == (from_before, to_before)

    login(client, "approver")
    assert client.post(f"/budget-changes/{change.id}/approve").status_code == 302
    fresh(db)
    assert last_change(db).status == "approved"
    assert available(from_id) == from_before - 100_000_00
    assert available(to_id) == to_before + 100_000_00
    assert db.session.get(FundingSource, from_source).amount_fen == 900_000_00
    assert db.session.get(FundingSource, to_source).amount_fen == 600_000_00
    assert db.session.get(Campaign, from_id).budget_fen == 900_000_00
    assert db.session.get(Campaign, to_id).budget_fen == 600_000_00
    assert funder_statement(from_source).funded_fen == 900_000_00
    assert funder_statement(to_source).funded_fen == 600_000_00
    assert verify_ledger() == []


def test_rejection_needs_a_reason_and_keeps_it(client, db):
    world = make_world()
    campaign, _ = make_campaign(world, quantity=10)
    campaign_id, source_id = campaign.id, campaign.funding_sources[0].id
    before = dict(campaign_balances([campaign_id])[campaign_id])

    login(client, "maker")
    assert request_via_page(client, campaign_id, source_id, "top_up", "10,000", "追加").status_code == 302
    change = last_change(db)

    # The service refuses a rejection without a reason.
    with pytest.raises(InvalidInput) as refused:
        decide_change(change.id, world.approver, approve=False, note="   ")
    assert "驳回时请填写原因" in refused.value.message
    db.session.rollback()

    login(client, "approver")
    response = client.post(f"/budget-changes/{change.id}/reject", data={f"bc{change.id}-reason": ""})
    assert response.status_code == 422
    assert last_change(db).status == "pending"

    response = client.post(f"/budget-changes/{change.id}/reject", data={f"bc{change.id}-reason": "资金尚未到账"})
    assert response.status_code == 302, response.get_data(as_text=True)
    change = last_change(db)
    assert change.status == "rejected"
    assert change.decision_note == "资金尚未到账"
    assert change.decided_by_id == world.approver.id
    assert dict(campaign_balances([campaign_id])[campaign_id]) == before
    assert only_source(db, campaign_id).amount_fen == 1_000_000_00
    assert "已驳回：资金尚未到账" in client.get(f"/campaigns/{campaign_id}").get_data(as_text=True)
    assert verify_ledger() == []


def test_request_service_checks_its_input(db):
    world = make_world()
    campaign, _ = make_campaign(world, quantity=1)
    source_id = campaign.funding_sources[0].id
    for kwargs, message in [
        ({"kind": "top_up", "amount_fen": 0, "reason": "x"}, "调整金额必须大于 0"),
        ({"kind": "top_up", "amount_fen": 100, "reason": "  "}, "请填写调整原因"),
        ({"kind": "grow", "amount_fen": 100, "reason": "x"}, "请选择调整类型"),
    ]:
        with pytest.raises(InvalidInput) as refused:
            request_change(campaign.id, funding_source_id=source_id, actor=world.maker, **kwargs)
        assert message in refused.value.message
        db.session.rollback()
    assert db.session.scalar(select(BudgetChange.id)) is None
