"""Progress towards the measures' non-monetary targets, and the policy overview of the twenty measures."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from tests.factories import PASSWORD, claim_one, make_campaign, make_citizen, make_world
from voucher.campaigns import targets
from voucher.campaigns.models import Measure, TargetProgress
from voucher.campaigns.overview import policy_overview
from voucher.core.errors import InvalidInput
from voucher.counter.redemption import redeem
from voucher.reports.consistency import verify_ledger

CHINESE = re.compile(r"[\u4e00-\u9fff]")
LINE_FIELDS = ("planned_in_hand_fen", "planned_sought_fen", "campaigns", "funded_fen", "reserved_fen", "spent_fen",
               "remaining_fen")


def login(client, username):
    client.post("/logout")
    response = client.post("/login", data={"username": username, "password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)


def measure(db, number: int) -> Measure:
    return db.session.scalar(select(Measure).where(Measure.number == number))


def line_of(overview, number: int):
    return next(line for line in overview.lines if line.measure.number == number)


def record(target_id, actor, quantity, *, description="第一批认定集聚区", evidence="连商发〔2026〕1号", district=None):
    return targets.record_progress(target_id, quantity=quantity, description=description, evidence=evidence,
                                   district=district, actor=actor)


def test_progress_adds_up_and_bad_records_are_refused(db):
    world = make_world()
    target = measure(db, 3).targets[0]
    assert targets.achieved_by_target([target.id]) == {}

    record(target.id, world.maker, 5, district="海州区")
    record(target.id, world.maker, 3)
    db.session.commit()
    assert targets.achieved_by_target([target.id]) == {target.id: 8}
    assert targets.achieved_by_target([target.id], district="海州区") == {target.id: 5}
    record(target.id, world.maker, -2, description="更正：重复认定 2 个")
    db.session.commit()
    assert targets.achieved_by_target([target.id]) == {target.id: 6}

    refusals = [
        ({"quantity": 0}, "数量不能为 0"),
        ({"quantity": 1, "evidence": "   "}, "佐证材料"),
        ({"quantity": 1, "evidence": ""}, "佐证材料"),
        ({"quantity": 1, "description": ""}, "进展说明"),
        ({"quantity": -7}, "不能为负"),
        ({"quantity": 1, "district": "火星区"}, "区县不正确"),
    ]
    for kwargs, expected in refusals:
        quantity = kwargs.pop("quantity")
        with pytest.raises(InvalidInput) as refused:
            record(target.id, world.maker, quantity, **kwargs)
        assert expected in refused.value.message, refused.value.message
        assert CHINESE.search(refused.value.message)
        db.session.rollback()
    assert targets.achieved_by_target([target.id]) == {target.id: 6}
    # A correction down to exactly zero is allowed.
    record(target.id, world.maker, -6, description="更正：全部撤销")
    db.session.commit()
    assert targets.achieved_by_target([target.id]) == {target.id: 0}
    assert db.session.scalar(select(func.count(TargetProgress.id))) == 4


def test_maker_records_progress_on_the_measure_page(client, db):
    make_world()
    target = measure(db, 3).targets[0]
    target_id, goal, unit = target.id, target.target, target.unit
    prefix = "≥" if target.comparison == ">=" else ""

    login(client, "maker")
    page = client.get("/measures/3").get_data(as_text=True)
    assert f"完成 0 / 目标 {prefix}{goal} {unit}" in page

    data = {"quantity": "4", "description": "第一批认定市级夜间经济集聚区 4 个", "evidence": "连商发〔2026〕演示 1 号",
            "district": "海州区"}
    response = client.post(f"/targets/{target_id}/progress", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"].endswith("/measures/3")
    page = client.get("/measures/3").get_data(as_text=True)
    assert f"完成 4 / 目标 {prefix}{goal} {unit}" in page
    assert "第一批认定市级夜间经济集聚区 4 个" in page and "连商发〔2026〕演示 1 号" in page

    # Empty evidence is refused on the page too, and nothing is recorded.
    response = client.post(f"/targets/{target_id}/progress", data=dict(data, evidence=""))
    assert response.status_code == 422
    assert "佐证材料" in response.get_data(as_text=True)
    # A correction below zero is refused by the service.
    response = client.post(f"/targets/{target_id}/progress", data=dict(data, quantity="-5", description="更正"))
    assert response.status_code == 422
    assert "不能为负" in response.get_data(as_text=True)

    # Finance oversees but does not record.
    login(client, "finance")
    assert client.post(f"/targets/{target_id}/progress", data=data).status_code == 403
    db.session.rollback()
    assert db.session.scalar(select(func.count(TargetProgress.id))) == 1
    assert f"完成 4 / 目标 {prefix}{goal} {unit}" in client.get("/measures/3").get_data(as_text=True)


def test_overview_money_follows_the_ledger(db):
    world = make_world()
    budget, quantity, face = 1_000_000_00, 10, 20_00
    campaign, release = make_campaign(world, budget_fen=budget, quantity=quantity, face_value_fen=face)

    overview = policy_overview()
    assert [line.measure.number for line in overview.lines] == list(range(1, 21))
    line = line_of(overview, 1)
    assert line.campaigns == 1
    assert line.funded_fen == budget
    assert line.reserved_fen == quantity * face
    assert line.remaining_fen == budget - quantity * face
    assert line.spent_fen == 0
    assert line.planned_in_hand_fen == sum(m.amount_fen for m in line.measure.money_lines if m.status != "sought")

    voucher = claim_one(release, make_citizen())
    result = redeem(voucher.code, 150_00, world.cashier)
    db.session.commit()
    subsidy = result.redemption.subsidy_fen
    assert subsidy == face

    overview = policy_overview()
    line = line_of(overview, 1)
    assert line.spent_fen == subsidy
    assert line.reserved_fen == quantity * face - subsidy
    assert line.remaining_fen == budget - quantity * face
    assert line.funded_fen == budget
    assert all(other.campaigns == 0 and other.funded_fen == 0 for other in overview.lines if other.measure.number != 1)

    totals = overview.totals
    for name in LINE_FIELDS:
        assert getattr(totals, name) == sum(getattr(l, name) for l in overview.lines), name
    assert totals.funded_fen == budget and totals.spent_fen == subsidy
    assert verify_ledger() == []


def test_overview_filters_by_district_and_responsible_unit(db):
    world = make_world()
    make_campaign(world, name="市区餐饮零售消费券", budget_fen=100_000_00, quantity=5)  # 海州区, 连云区
    make_campaign(world, measure_number=9, name="全市农产品消费券", categories=["农产品"], districts=[],
                  budget_fen=200_000_00, quantity=5)
    make_campaign(world, measure_number=5, name="东海县汽车消费券", categories=["汽车"], districts=["东海县"],
                  face_value_fen=3_000_00, threshold_fen=100_000_00, budget_fen=300_000_00, quantity=5)

    everywhere = policy_overview()
    assert [line_of(everywhere, n).campaigns for n in (1, 9, 5)] == [1, 1, 1]

    haizhou = policy_overview(district="海州区")
    assert line_of(haizhou, 1).campaigns == 1 and line_of(haizhou, 1).funded_fen == 100_000_00
    assert line_of(haizhou, 9).campaigns == 1 and line_of(haizhou, 9).funded_fen == 200_000_00
    assert line_of(haizhou, 5).campaigns == 0 and line_of(haizhou, 5).funded_fen == 0
    assert haizhou.totals.funded_fen == 300_000_00

    donghai = policy_overview(district="东海县")
    assert line_of(donghai, 1).campaigns == 0 and line_of(donghai, 1).funded_fen == 0
    assert line_of(donghai, 9).campaigns == 1
    assert line_of(donghai, 5).campaigns == 1 and line_of(donghai, 5).funded_fen == 300_000_00
    assert donghai.totals.funded_fen == 500_000_00

    sport = policy_overview(unit="市体育局")
    assert [line.measure.number for line in sport.lines] == [3, 11]
    assert all("市体育局" in line.measure.responsible_units for line in sport.lines)
    assert "市体育局" in sport.units and len(sport.units) > 10


@pytest.mark.parametrize("username", ["approver", "finance", "auditor"])
def test_measures_page_lists_all_twenty_for_oversight(client, db, username):
    make_world()
    login(client, username)
    response = client.get("/measures")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    linked = {int(n) for n in re.findall(r'href="(?:http://localhost)?/measures/(\d+)"', page)}
    assert linked == set(range(1, 21))
    for m in db.session.scalars(select(Measure)):
        assert m.short_title in page
    filtered = client.get("/measures?unit=市体育局").get_data(as_text=True)
    assert {int(n) for n in re.findall(r'href="(?:http://localhost)?/measures/(\d+)"', filtered)} == {3, 11}
