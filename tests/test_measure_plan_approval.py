"""Issue 14, point 9: an approver sees a campaign against its measure's planned money before approving,
and a campaign that would take the measure past its plan is approved only with a recorded reason.

Measure 1 (惠购港城) plans 10,000,000 yuan (seed/measures.toml); measure 17 (信息消费) plans none.
"""
from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.factories import PASSWORD, make_campaign, make_world
from tests.test_concurrency import run_at_once
from voucher.campaigns import services as campaigns
from voucher.campaigns.models import Campaign, Measure
from voucher.campaigns.overview import policy_overview
from voucher.campaigns.plan_check import assess
from voucher.core.audit import AuditEntry
from voucher.core.clock import local_today
from voucher.core.errors import PlanOverrideRequired
from voucher.ledger.models import JournalEntry
from voucher.reports.budget import budget_execution
from voucher.reports.consistency import verify_ledger
from voucher.vouchers.closing import close_campaign

YI = 100_000_000_00  # 1亿 yuan in fen
WAN = 10_000_00  # 1万 yuan in fen


def login(client, username: str) -> None:
    client.post("/logout")
    assert client.post("/login", data={"username": username, "password": PASSWORD}).status_code == 302


def pending(db, world, budget_fen: int, *, measure_number: int = 1, name: str = "十亿消费券") -> Campaign:
    """A campaign the maker filed and submitted, waiting for the approver."""
    measure_id = db.session.scalar(select(Measure.id).where(Measure.number == measure_number))
    campaign = campaigns.create_campaign(campaigns.CampaignInput(
        measure_id=measure_id, name=name, face_value_fen=20_00, threshold_fen=100_00, categories=["餐饮"],
        districts=["海州区"], valid_from=local_today(), valid_until=local_today() + timedelta(days=30),
        sources=[campaigns.SourceInput("municipal_finance", "市财政", budget_fen)],
    ), world.maker)
    campaigns.submit_for_approval(campaign, world.maker)
    db.session.commit()
    return campaign


def text_of(html: str) -> str:
    """The page as a reader sees it: tags dropped, whitespace collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def state_of(db, campaign_id: int) -> tuple[str, object, int]:
    db.session.expire_all()
    campaign = db.session.get(Campaign, campaign_id)
    entries = db.session.scalar(select(func.count(JournalEntry.id)).where(JournalEntry.campaign_id == campaign_id))
    return campaign.status, campaign.approved_at, entries


def approvals_of(db, campaign_id: int) -> list[AuditEntry]:
    return db.session.scalars(select(AuditEntry).where(
        AuditEntry.action == "campaign.approve", AuditEntry.object_id == campaign_id)).all()


def test_a_ten_yi_campaign_is_not_approved_with_one_click(client, db):
    """The defect as reported: 10亿 under measure 1, planned at 1,000万, went through on 审批通过 alone."""
    world = make_world()
    campaign = pending(db, world, 10 * YI)
    report_before = budget_execution(local_today()).total.planned_in_hand

    login(client, "approver")
    response = client.post(f"/campaigns/{campaign.id}/approve")

    assert response.status_code == 409
    page = text_of(response.get_data(as_text=True))
    assert ("批准后措施1「惠购港城」的活动资金合计 1,000,000,000.00 元（已落实 0.00 元 + 本活动 1,000,000,000.00 元），"
            "超出计划资金 10,000,000.00 元 990,000,000.00 元：请填写超计划批准理由后再批准") in page
    assert state_of(db, campaign.id) == ("pending_approval", None, 0)  # nothing funded in the ledger
    assert approvals_of(db, campaign.id) == []
    assert budget_execution(local_today()).total.planned_in_hand == report_before


def test_the_approver_sees_the_measure_plan_before_approving(client, db):
    world = make_world()
    make_campaign(world, budget_fen=100 * WAN, quantity=1, name="已批准的第一期")
    campaign = pending(db, world, 950 * WAN, name="第二期消费券")

    login(client, "approver")
    listing = text_of(client.get("/approvals").get_data(as_text=True))
    for heading in ("措施计划资金（元）", "已落实（其他已批准活动）（元）", "本活动预算（元）", "批准后合计（元）", "剩余/超出（元）"):
        assert heading in listing
    assert ("第二期消费券 1. 惠购港城 满100减20 10,000,000.00 1,000,000.00 9,500,000.00 10,500,000.00 超出 500,000.00"
            in listing)
    assert "超出计划：填写理由后审批" in listing

    html = client.get(f"/campaigns/{campaign.id}").get_data(as_text=True)
    page = text_of(html)
    assert "措施计划资金核对" in page
    assert "措施计划资金 10,000,000.00 元" in page
    assert "已落实（其他已批准活动） 1,000,000.00 元（1 个活动）" in page
    assert "本活动预算 9,500,000.00 元" in page
    assert "批准后合计 10,500,000.00 元" in page
    assert "超出 500,000.00 元" in page
    assert "批准后措施 1 的活动资金将超出计划 500,000.00 元" in page
    assert "政策未定总额、未计入计划资金的项目：活动组织市场主体补贴" in page
    assert 'name="plan_override_reason"' in html and "超计划批准理由" in page and "超计划批准" in page
    assert ">批准<" not in html  # no one-click button while the plan is exceeded


def test_with_a_reason_the_approval_goes_through_and_the_reason_is_kept(client, db):
    world = make_world()
    campaign = pending(db, world, 10 * YI)
    login(client, "approver")

    refused = client.post(f"/campaigns/{campaign.id}/approve", data={"plan_override_reason": " \n\t "})
    assert refused.status_code == 409 and "请填写超计划批准理由" in refused.get_data(as_text=True)
    too_long = client.post(f"/campaigns/{campaign.id}/approve", data={"plan_override_reason": "理" * 201})
    assert too_long.status_code == 422
    assert "超计划批准理由不能超过 200 个字（现为 201 个字）" in too_long.get_data(as_text=True)
    assert state_of(db, campaign.id) == ("pending_approval", None, 0)

    reason = "  市政府常务会议 2027 年第 5 次\n  决定追加预算  "
    response = client.post(f"/campaigns/{campaign.id}/approve", data={"plan_override_reason": reason})
    assert response.status_code == 302
    status, approved_at, entries = state_of(db, campaign.id)
    assert status == "active" and approved_at is not None and entries == 1  # funded: 资金到位
    kept = "市政府常务会议 2027 年第 5 次 决定追加预算"
    assert db.session.get(Campaign, campaign.id).plan_override_reason == kept

    page = text_of(client.get(f"/campaigns/{campaign.id}").get_data(as_text=True))
    assert f"超计划批准理由 {kept}（approver，" in page
    assert "措施计划资金核对" not in page  # approved: the check is history, kept with its reason

    (entry,) = approvals_of(db, campaign.id)
    assert entry.actor_id == world.approver.id
    assert entry.after["plan_override_reason"] == kept
    assert entry.after["plan"] == {
        "measure_number": 1, "planned_fen": 10_000_000_00, "committed_fen": 0, "budget_fen": 10 * YI,
        "total_fen": 10 * YI, "has_plan": True, "exceeds": True,
    }
    login(client, "auditor")
    assert kept in client.get("/reports/audit").get_data(as_text=True)


def test_a_reason_of_exactly_200_characters_is_kept(db):
    world = make_world()
    campaign = pending(db, world, 10 * YI)
    campaigns.approve(campaign.id, world.approver, plan_override_reason="据" * 200)
    db.session.commit()
    assert db.session.get(Campaign, campaign.id).plan_override_reason == "据" * 200


def test_a_campaign_within_the_plan_is_approved_with_one_click(client, db):
    world = make_world()
    make_campaign(world, budget_fen=600 * WAN, quantity=1, name="已批准的第一期")
    campaign = pending(db, world, 400 * WAN, name="第二期消费券")  # 600万 + 400万 = exactly the plan

    login(client, "approver")
    listing = text_of(client.get("/approvals").get_data(as_text=True))
    assert "10,000,000.00 6,000,000.00 4,000,000.00 10,000,000.00 剩余 0.00" in listing
    html = client.get(f"/campaigns/{campaign.id}").get_data(as_text=True)
    assert "剩余 0.00 元" in text_of(html) and 'name="plan_override_reason"' not in html

    # A reason typed anyway is not kept: nothing was overridden.
    response = client.post(f"/campaigns/{campaign.id}/approve", data={"plan_override_reason": "以防万一"})
    assert response.status_code == 302
    assert state_of(db, campaign.id)[0] == "active"
    assert db.session.get(Campaign, campaign.id).plan_override_reason is None
    (entry,) = approvals_of(db, campaign.id)
    assert entry.after["plan_override_reason"] is None and entry.after["plan"]["exceeds"] is False


def test_a_measure_without_planned_money_needs_a_reason(client, db):
    """Measure 17 plans no money: nothing can show the campaign is within a plan, so the approver says why."""
    world = make_world()
    campaign = pending(db, world, 50 * WAN, measure_number=17, name="宽带提速补贴券")

    login(client, "approver")
    assert "该措施未列计划资金" in text_of(client.get("/approvals").get_data(as_text=True))
    page = text_of(client.get(f"/campaigns/{campaign.id}").get_data(as_text=True))
    assert "措施计划资金 该措施未列计划资金" in page and "剩余/超出 无计划可比" in page
    assert "措施 17 未列计划资金，无法核对本活动是否在计划之内" in page

    refused = client.post(f"/campaigns/{campaign.id}/approve")
    assert refused.status_code == 409
    assert "措施17「信息消费」未列计划资金，无法核对本活动预算 500,000.00 元是否在计划之内" in text_of(
        refused.get_data(as_text=True))
    assert state_of(db, campaign.id) == ("pending_approval", None, 0)

    assert client.post(f"/campaigns/{campaign.id}/approve",
                       data={"plan_override_reason": "市财政局专项批复"}).status_code == 302
    assert db.session.get(Campaign, campaign.id).plan_override_reason == "市财政局专项批复"


def test_committed_money_and_the_reports_count_only_approved_campaigns(db):
    """What the approver sees as committed is the reports' 活动预算（资金已落实）: drafts, pending and rejected
    campaigns commit nothing; an approval over the plan, once recorded, counts like any other."""
    world = make_world()
    make_campaign(world, budget_fen=300 * WAN, quantity=1, name="进行中")
    closed, _ = make_campaign(world, budget_fen=200 * WAN, quantity=1, name="已结束")
    close_campaign(closed.id, world.approver, "到期")
    db.session.commit()
    pending(db, world, 5 * YI, name="另一个待审批")
    rejected = pending(db, world, 5 * YI, name="已退回")
    campaigns.reject(rejected.id, world.approver, "超出计划")
    db.session.commit()
    campaign = pending(db, world, 10 * YI)

    check = assess(campaign)
    measure_row = next(r for r in budget_execution(local_today()).by_measure if r.label.startswith("措施1："))
    assert check.committed_fen == 500 * WAN == measure_row.figures.planned_in_hand
    assert check.committed_campaigns == 2
    assert check.planned_fen == 10_000_000_00 == next(
        line for line in policy_overview().lines if line.measure.number == 1).planned_in_hand_fen

    with pytest.raises(PlanOverrideRequired):
        campaigns.approve(campaign.id, world.approver)
    db.session.rollback()
    assert budget_execution(local_today()).total.planned_in_hand == 500 * WAN

    campaigns.approve(campaign.id, world.approver, plan_override_reason="追加预算已批复")
    db.session.commit()
    assert budget_execution(local_today()).total.planned_in_hand == 500 * WAN + 10 * YI
    overview = next(line for line in policy_overview().lines if line.measure.number == 1)
    assert overview.campaigns == 3 and overview.planned_in_hand_fen == 10_000_000_00  # the plan itself unchanged


def test_two_campaigns_of_one_measure_approved_at_once_cannot_both_fit(app, db):
    """PostgreSQL: each campaign fits the plan alone, not together. Approved at the same moment, each
    would count the other as not yet committed; the measure's plan lock makes the second one count the
    first, so it is refused with its figures (no 500), and one succeeds without any override."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers: nothing to race")
    world = make_world()
    approvers = [app.test_client(), app.test_client()]
    for client in approvers:
        login(client, "approver")

    # Three rounds on measure 1's 1,000万: 600万 + 600万, then 300万 + 300万 of the 400万 left, then 60万 + 60万.
    for round_, each in enumerate((600 * WAN, 300 * WAN, 60 * WAN)):
        pair = [pending(db, world, each, name=f"第{round_ + 1}轮活动{i + 1}") for i in range(2)]

        ids = [c.id for c in pair]

        def work(i, ids=ids):
            response = approvers[i].post(f"/campaigns/{ids[i]}/approve")
            return response.status_code, text_of(response.get_data(as_text=True))

        outcomes = run_at_once(app, [lambda i=i: work(i) for i in range(2)], transaction=lambda w: w())
        assert Counter(status for status, _ in outcomes) == {302: 1, 409: 1}, outcomes
        (refusal,) = [page for status, page in outcomes if status == 409]
        assert "超出计划资金 10,000,000.00 元" in refusal and "请填写超计划批准理由后再批准" in refusal
        db.session.expire_all()
        states = sorted(db.session.get(Campaign, c.id).status for c in pair)
        assert states == ["active", "pending_approval"], (round_, states)
        approved = next(c for c in pair if db.session.get(Campaign, c.id).status == "active")
        assert db.session.get(Campaign, approved.id).plan_override_reason is None

    committed = budget_execution(local_today()).total.planned_in_hand
    assert committed == 960 * WAN <= 10_000_000_00
    assert verify_ledger() == []
