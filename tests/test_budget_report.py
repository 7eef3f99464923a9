"""Budget execution report: every figure ties out to the ledger, as of any date, on the page and in xlsx."""
from __future__ import annotations

import io
from datetime import timedelta
from decimal import Decimal

import pandas as pd
from sqlalchemy import select

from tests.conftest import pin_ordinary_time
from tests.factories import PASSWORD, claim_one, make_campaign, make_citizen, make_world, pay_through_bank
from voucher.campaigns import services as campaigns
from voucher.campaigns.overview import policy_overview
from voucher.core.clock import local_day_start_utc, local_today
from voucher.counter.redemption import redeem, reverse
from voucher.ledger.models import AccountKind
from voucher.ledger.services import campaign_balances
from voucher.reports.budget import budget_execution
from voucher.settlement import batches as settlement
from voucher.vouchers.closing import close_campaign

# Yesterday's redemptions must be settleable (their reversal window long past), so these tests
# run at an ordinary moment whatever VOUCHER_TEST_NOW says; tests/test_clock_boundaries.py covers the edges.
pytestmark = pin_ordinary_time


def _scenario(db):
    """Co-funded (3:2) round of 10 x 20 yuan out of 1,000 yuan; 3 redeemed yesterday, 1 reversed,
    2 settled and paid; then the campaign is closed, returning what is unused. A second campaign is
    100 yuan in hand and 500 yuan sought from the province."""
    world = make_world()
    campaign, release = make_campaign(
        world, valid_from=local_today() - timedelta(days=5), quantity=10,
        sources=[campaigns.SourceInput("municipal_finance", "市财政", 600_00, share=3),
                 campaigns.SourceInput("bank", "港城银行", 400_00, share=2)],
    )
    noon = local_day_start_utc(local_today() - timedelta(days=1)) + timedelta(hours=12)
    vouchers = [claim_one(release, make_citizen(tag)) for tag in "abcd"]
    done = [redeem(v.code, 150_00, world.cashier, now=noon).redemption for v in vouchers[:3]]
    reverse(done[2].id, reason="退单", cashier=world.cashier, now=noon + timedelta(minutes=5))
    db.session.commit()
    pay_through_bank(settlement.build_batches(local_today() - timedelta(days=1), world.finance).batches,
                     world.finance)
    close_campaign(campaign.id, world.approver, "活动到期")
    make_campaign(world, quantity=1, sources=[
        campaigns.SourceInput("municipal_finance", "市财政", 100_00),
        campaigns.SourceInput("provincial_fund", "省级专项", 500_00, status="sought", share=0)])
    db.session.commit()
    return world, campaign


def test_every_view_ties_out_to_the_ledger_to_the_fen(db):
    world, campaign = _scenario(db)
    report = budget_execution(local_today())
    total = report.total
    ledger_total = {kind: 0 for kind in AccountKind}
    for by_kind in campaign_balances().values():
        for kind, amount in by_kind.items():
            ledger_total[kind] += amount
    assert (total.reserved, total.spent, total.settled, total.available) == (
        ledger_total[AccountKind.RESERVED], ledger_total[AccountKind.SPENT], ledger_total[AccountKind.SETTLED],
        ledger_total[AccountKind.AVAILABLE])
    assert total.funded - total.returned == total.reserved + total.spent + total.settled + total.available

    row = next(r for r in report.by_campaign if r.label == campaign.name and r.figures.funded == 1000_00)
    f = row.figures
    # 2 vouchers of 20 yuan redeemed and paid; closing withdrew 6 unclaimed and expired 2 claimed unused
    # (the reversed one among them); everything unused went back to the funders.
    assert (f.planned_in_hand, f.funded, f.settled, f.spent, f.reserved, f.available) == (
        1000_00, 1000_00, 40_00, 0, 0, 0)
    assert f.expired == 160_00 and f.returned == 960_00
    funders = {r.label: r.figures for r in report.by_funder}
    assert (funders["市财政"].settled, funders["港城银行"].settled) == (24_00, 16_00)
    assert {r.label: (r.figures.spent, r.figures.settled) for r in report.by_district} == {"海州区": (0, 40_00)}
    assert funders["省级专项"].planned_sought == 500_00 and funders["省级专项"].funded == 0
    assert total.planned_in_hand == 1100_00 and total.planned_sought == 500_00
    for view in (report.by_measure, report.by_source, report.by_funder):
        assert sum(r.figures.settled for r in view) == total.settled
        assert sum(r.figures.funded for r in view) == total.funded


def test_as_of_a_past_date_ignores_later_postings(db):
    _scenario(db)
    before = budget_execution(local_today() - timedelta(days=10))
    assert before.total.funded == 0 and before.total.settled == 0
    assert before.by_district == []


def test_finance_downloads_the_report_with_one_sheet_per_view(client, db):
    _scenario(db)
    client.post("/login", data={"username": "finance", "password": PASSWORD})
    page = client.get("/reports/budget")
    assert page.status_code == 200 and "按出资方" in page.get_data(as_text=True)
    response = client.get(f"/reports/budget.xlsx?date={local_today().isoformat()}")
    assert response.status_code == 200
    sheets = pd.read_excel(io.BytesIO(response.data), sheet_name=None, header=1)
    assert list(sheets) == ["按措施", "按活动", "按资金来源", "按出资方", "按区县"]
    funders = sheets["按出资方"].set_index("出资方")
    assert Decimal(str(funders.loc["合计", "已结算"])) == Decimal("40.00")
    assert Decimal(str(funders.loc["港城银行", "已结算"])) == Decimal("16.00")
    assert client.get("/reports/budget.xlsx?date=not-a-date").status_code == 422
    assert "日期格式应为" in client.get("/reports/budget?date=2026-99-01").get_data(as_text=True)
    client.post("/logout")
    client.post("/login", data={"username": "cashier", "password": PASSWORD})
    assert client.get("/reports/budget.xlsx").status_code == 403


def test_planned_money_counts_only_approved_campaigns(db):
    """Issue 14, defect 9: drafts, rejected and pending campaigns inflated 活动预算（资金已落实）(measure 1 showed
    1,015,500,000.00 on 预算执行)."""
    world, _ = _scenario(db)
    approved_plan = budget_execution(local_today()).total.planned_in_hand
    for status_after in ("draft", "pending", "rejected"):
        data = campaigns.CampaignInput(
            measure_id=_measure_one(db).id, name=f"十亿草案（{status_after}）", face_value_fen=20_00, threshold_fen=100_00,
            categories=["餐饮"], districts=["海州区"], valid_from=local_today(), valid_until=local_today() + timedelta(days=30),
            sources=[campaigns.SourceInput("municipal_finance", "市财政", 1_000_000_000_00)],
        )
        proposal = campaigns.create_campaign(data, world.maker)
        if status_after != "draft":
            campaigns.submit_for_approval(proposal, world.maker)
        if status_after == "rejected":
            campaigns.reject(proposal.id, world.approver, "超出措施计划")
    db.session.commit()

    report = budget_execution(local_today())
    assert report.total.planned_in_hand == approved_plan
    assert all("十亿草案" not in row.label for row in report.by_campaign)
    measure_one = next(line for line in policy_overview().lines if line.measure.number == 1)
    assert measure_one.campaigns == 2  # the two approved ones of the scenario


def _measure_one(db):
    from voucher.campaigns.models import Measure

    return db.session.scalar(select(Measure).where(Measure.number == 1))
