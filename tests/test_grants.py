"""补贴申报 end to end: recorded by the maker, reviewed within the award bounds, approved by someone else
within the remaining budget (reserved in the ledger), paid by finance, or rejected with a reason."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.factories import PASSWORD, make_campaign, make_world
from voucher.accounts.services import create_user
from voucher.campaigns import grants
from voucher.campaigns.models import GrantApplication
from voucher.core.errors import MakerCheckerViolation
from voucher.core.permissions import Role
from voucher.core.uscc import ALPHABET, check_char, is_valid
from voucher.ledger.models import AccountKind, JournalEntry
from voucher.ledger.services import campaign_balances
from voucher.reports.consistency import verify_ledger

BUDGET = 150_000_00


def login(client, username):
    client.post("/logout")
    response = client.post("/login", data={"username": username, "password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)


def uscc(serial: int) -> str:
    first17 = f"91320700MA0GR{serial:04d}"
    code = first17 + check_char(first17)
    assert is_valid(code)
    return code


def bad_uscc(serial: int) -> str:
    good = uscc(serial)
    wrong = next(c for c in ALPHABET if c != good[-1])
    code = good[:-1] + wrong
    assert not is_valid(code)
    return code


def balances(campaign_id: int) -> dict[AccountKind, int]:
    return dict(campaign_balances([campaign_id])[campaign_id])


def grant_campaign(world):
    campaign, release = make_campaign(
        world, instrument="grant", name="促消费活动组织补贴", award_min_fen=10_000_00, award_max_fen=100_000_00,
        measure_number=1, budget_fen=BUDGET, categories=[], districts=[],
    )
    assert release is None and campaign.product is None
    return campaign


def application_form(serial: int, **overrides) -> dict[str, str]:
    data = {
        "applicant_name": f"连云港商业管理有限公司{serial}", "applicant_uscc": uscc(serial),
        "project": "港城美食节（3 天）", "evidence": "活动方案、场地合同、参与商户 86 家",
        "requested": "100,000", "district": "海州区",
    }
    data.update(overrides)
    return data


def fresh(application_id: int) -> GrantApplication:
    from voucher.core.db import db

    db.session.rollback()  # end the test's transaction: the pages wrote in their own
    return db.session.get(GrantApplication, application_id)


def count_applications(db) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count(GrantApplication.id)))


def test_grant_is_recorded_reviewed_approved_and_paid_through_the_pages(client, db):
    world = make_world()
    campaign = grant_campaign(world)
    assert balances(campaign.id)[AccountKind.AVAILABLE] == BUDGET

    # The maker records what the organiser filed. A USCC with a wrong check character is refused.
    login(client, "maker")
    assert client.get(f"/campaigns/{campaign.id}/grants/new").status_code == 200
    response = client.post(f"/campaigns/{campaign.id}/grants/new",
                           data=application_form(1, applicant_uscc=bad_uscc(1)))
    assert response.status_code == 422
    assert "统一社会信用代码不正确" in response.get_data(as_text=True)
    assert count_applications(db) == 0

    response = client.post(f"/campaigns/{campaign.id}/grants/new", data=application_form(1))
    assert response.status_code == 302, response.get_data(as_text=True)
    assert count_applications(db) == 1
    application_id = db.session.scalar(select(GrantApplication.id))
    application = fresh(application_id)
    assert application.status == "submitted"
    assert application.applicant_uscc == uscc(1)
    assert application.requested_fen == 100_000_00
    assert application.district == "海州区"
    assert application.submitted_by_id == world.maker.id
    assert response.headers["Location"].endswith(f"/grants/{application_id}")

    # Not yet reviewed: nothing waits for the approver.
    login(client, "approver")
    assert "连云港商业管理有限公司1" not in client.get("/approvals").get_data(as_text=True)
    login(client, "maker")

    # The review must recommend an amount within the campaign's per-award bounds.
    for outside in ("9,999.99", "100,000.01", "150000"):
        response = client.post(f"/grants/{application_id}/review", data={"recommended": outside, "note": "材料齐全"})
        assert response.status_code == 422, outside
        assert "补贴金额应在" in response.get_data(as_text=True), outside
        application = fresh(application_id)
        assert application.status == "submitted" and application.recommended_fen is None
    response = client.post(f"/grants/{application_id}/review", data={"recommended": "80,000", "note": "材料齐全，符合条件"})
    assert response.status_code == 302, response.get_data(as_text=True)
    application = fresh(application_id)
    assert application.status == "reviewed"
    assert application.recommended_fen == 80_000_00
    assert application.reviewed_by_id == world.maker.id

    # The maker cannot approve: refused by role, and nothing moves.
    assert client.post(f"/grants/{application_id}/approve", data={"amount": "80,000"}).status_code == 403
    assert fresh(application_id).status == "reviewed"
    assert balances(campaign.id)[AccountKind.RESERVED] == 0

    # The approver sees it waiting and approves: the amount moves from available to reserved.
    login(client, "approver")
    approvals = client.get("/approvals").get_data(as_text=True)
    assert "连云港商业管理有限公司1" in approvals and f"/grants/{application_id}" in approvals
    before = balances(campaign.id)
    response = client.post(f"/grants/{application_id}/approve", data={"amount": "80,000"})
    assert response.status_code == 302, response.get_data(as_text=True)
    application = fresh(application_id)
    assert application.status == "approved"
    assert application.approved_fen == 80_000_00
    assert application.decided_by_id == world.approver.id
    after = balances(campaign.id)
    assert after[AccountKind.AVAILABLE] == before[AccountKind.AVAILABLE] - 80_000_00
    assert after[AccountKind.RESERVED] == before[AccountKind.RESERVED] + 80_000_00
    assert after[AccountKind.SETTLED] == 0
    assert verify_ledger() == []
    # Once approved it is no longer waiting.
    assert f"/grants/{application_id}\"" not in client.get("/approvals").get_data(as_text=True)

    # A second application for more than what is left (70,000) is refused and changes nothing.
    second = grants.submit(
        campaign.id, applicant_name="连云港第二商业公司", applicant_uscc=uscc(2), project="啤酒节",
        evidence="活动方案、票据", requested_fen=90_000_00, district="连云区", actor=world.maker,
    )
    grants.review(second.id, world.maker, recommended_fen=90_000_00, note="符合条件")
    db.session.commit()
    second_id = second.id
    entries_before = db.session.scalar(select(func.count(JournalEntry.id)))
    response = client.post(f"/grants/{second_id}/approve", data={"amount": "90,000"})
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "不足以批准" in page and "70,000.00" in page
    refused = fresh(second_id)
    assert refused.status == "reviewed" and refused.approved_fen is None and refused.decided_by_id is None
    assert balances(campaign.id) == after
    assert db.session.scalar(select(func.count(JournalEntry.id))) == entries_before

    # Finance records the payout: reserved goes down and settled goes up by the amount.
    login(client, "finance")
    page = client.get(f"/grants/{application_id}").get_data(as_text=True)
    assert "确认已拨付 80,000.00 元" in page
    response = client.post(f"/grants/{application_id}/pay")
    assert response.status_code == 302, response.get_data(as_text=True)
    application = fresh(application_id)
    assert application.status == "paid"
    assert application.paid_by_id == world.finance.id and application.paid_at is not None
    paid = balances(campaign.id)
    assert paid[AccountKind.RESERVED] == after[AccountKind.RESERVED] - 80_000_00
    assert paid[AccountKind.SETTLED] == after[AccountKind.SETTLED] + 80_000_00
    assert paid[AccountKind.AVAILABLE] == after[AccountKind.AVAILABLE]
    page = client.get(f"/grants/{application_id}").get_data(as_text=True)
    assert "已拨付" in page and "badge-paid" in page
    assert "确认已拨付" not in page
    # Paying twice is refused and posts nothing.
    assert client.post(f"/grants/{application_id}/pay").status_code == 409
    assert balances(campaign.id) == paid
    assert verify_ledger() == []


def test_the_reviewer_cannot_also_approve(db):
    world = make_world()
    campaign = grant_campaign(world)
    application = grants.submit(
        campaign.id, applicant_name="连云港体育文化公司", applicant_uscc=uscc(3), project="城市马拉松",
        evidence="赛事方案、报名人数 5000", requested_fen=50_000_00, district=None, actor=world.maker,
    )
    # An approver did the review (the service does not limit who reviews), so must not approve it too.
    grants.review(application.id, world.approver, recommended_fen=50_000_00, note="材料齐全")
    db.session.commit()
    application_id = application.id

    with pytest.raises(MakerCheckerViolation):
        grants.approve(application_id, world.approver, amount_fen=50_000_00)
    db.session.rollback()
    application = db.session.get(GrantApplication, application_id)
    assert application.status == "reviewed" and application.approved_fen is None
    assert balances(campaign.id)[AccountKind.RESERVED] == 0
    assert balances(campaign.id)[AccountKind.AVAILABLE] == BUDGET

    # Someone else may.
    other = create_user("approver2", PASSWORD, Role.BUREAU_APPROVER)
    grants.approve(application_id, other, amount_fen=50_000_00)
    db.session.commit()
    assert balances(campaign.id)[AccountKind.RESERVED] == 50_000_00
    assert verify_ledger() == []


def test_a_rejection_needs_and_keeps_its_reason(client, db):
    world = make_world()
    campaign = grant_campaign(world)
    login(client, "maker")
    response = client.post(f"/campaigns/{campaign.id}/grants/new", data=application_form(4, requested="30,000"))
    assert response.status_code == 302, response.get_data(as_text=True)
    application_id = db.session.scalar(select(GrantApplication.id))

    login(client, "approver")
    response = client.post(f"/grants/{application_id}/reject", data={"reason": ""})
    assert response.status_code == 422
    assert "请填写原因" in response.get_data(as_text=True)
    application = fresh(application_id)
    assert application.status == "submitted" and application.rejection_reason is None

    response = client.post(f"/grants/{application_id}/reject", data={"reason": "缺少活动票据，参与人数无佐证"})
    assert response.status_code == 302, response.get_data(as_text=True)
    application = fresh(application_id)
    assert application.status == "rejected"
    assert application.rejection_reason == "缺少活动票据，参与人数无佐证"
    assert application.decided_by_id == world.approver.id
    page = client.get(f"/grants/{application_id}").get_data(as_text=True)
    assert "缺少活动票据，参与人数无佐证" in page and "已驳回" in page

    # A rejected application cannot be approved afterwards; the budget is untouched.
    assert client.post(f"/grants/{application_id}/approve", data={"amount": "30,000"}).status_code == 409
    assert fresh(application_id).status == "rejected"
    assert balances(campaign.id)[AccountKind.AVAILABLE] == BUDGET
    assert balances(campaign.id)[AccountKind.RESERVED] == 0
    assert verify_ledger() == []


def test_an_application_without_an_amount_is_refused_with_a_message(client, db):
    """The amount field has no required validator of its own: the service's rule answers an empty one, in
    Chinese, and nothing is kept (the view passes 0 for it, not None, since the types were checked)."""
    world = make_world()
    campaign = grant_campaign(world)
    login(client, "maker")
    response = client.post(f"/campaigns/{campaign.id}/grants/new", data=application_form(1, requested=""))
    assert response.status_code == 422, response.status_code
    assert "金额" in response.get_data(as_text=True)
    assert count_applications(db) == 0
