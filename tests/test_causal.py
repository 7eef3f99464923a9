"""Causal (difference-in-differences) leverage: the estimator, the panel from the database, the
merchants' sales baselines imported from a file, and the figure on the page and in the report."""
from __future__ import annotations

import io
import json
from datetime import timedelta

import numpy as np
import openpyxl
import pytest
from sqlalchemy import func, insert, select

from tests.factories import PASSWORD, claim_one, make_campaign, make_citizen, make_world
from tests.test_instruments import merchant_with_cashier
from voucher.analytics import causal, panel
from voucher.analytics.baselines import BadBaselineFile, import_baselines
from voucher.analytics.models import CausalPanelUnit, MerchantDailySales
from voucher.core.audit import AuditEntry
from voucher.core.clock import local_today
from voucher.counter.redemption import redeem
from voucher.merchants.models import Merchant, Redemption

# The estimator alone ------------------------------------------------------------------------------


def test_a_noise_free_panel_gives_the_planted_leverage_exactly():
    group = np.array([0, 0, 0, 0, 1, 1, 1, 1] * 5)
    dose = np.array([0, 0, 10, 20, 0, 0, 5, 40] * 5, dtype=float)
    shift = np.where(group == 0, 300.0, -50.0)  # each campaign's common change, absorbed by its intercept
    result = causal.estimate(group, shift + 2.5 * dose, dose, np.arange(len(dose)))
    assert result.value == pytest.approx(2.5) and result.std_error == pytest.approx(0, abs=1e-9)
    assert (result.treated, result.comparable, result.campaigns) == (20, 20, 2)


def test_too_few_units_give_no_estimate_and_say_why():
    result = causal.estimate(np.zeros(10), np.ones(10), np.r_[np.zeros(5), np.ones(5)], np.arange(10))
    assert result.value is None and result.as_tuple() is None
    assert "样本不足" in result.missing_reason and "现有 5 家和 5 家" in result.missing_reason


def test_the_interval_covers_the_truth_in_most_simulations():
    # The full 100-seed check is benchmarks/causal_coverage.py; 20 seeds keep the suite fast.
    covered = sum(r.low <= 1.8 <= r.high for r in (causal.estimate(*causal.simulate(s, 1.8)) for s in range(20)))
    assert covered >= 17


def test_the_interval_is_wider_when_one_merchant_appears_in_many_campaigns():
    # Cluster-robust by merchant: the same merchants repeated across campaigns are not independent units.
    group, change, dose, cluster = causal.simulate(3, 1.8, campaigns=1)
    repeated = causal.estimate(np.repeat(np.arange(4), len(group)), np.tile(change, 4), np.tile(dose, 4),
                               np.tile(cluster, 4))
    naive = causal.estimate(np.repeat(np.arange(4), len(group)), np.tile(change, 4), np.tile(dose, 4),
                            np.arange(4 * len(group)))
    assert repeated.value == pytest.approx(naive.value)
    assert repeated.std_error > 1.9 * naive.std_error
    # the counts are merchants, not merchant-campaign units
    assert (repeated.treated, repeated.comparable) == (200, 200) and (naive.treated, naive.comparable) == (800, 800)


# The panel from the database ------------------------------------------------------------------------

PLANTED = 2.0


@pytest.fixture
def panel_world(db, monkeypatch):
    """Campaign A (餐饮/零售 in 海州区/连云区, 14 days running): three merchants redeem 1, 2 and 3
    vouchers today; three eligible merchants take no part; a car dealer (not eligible) and a merchant
    that redeems only in campaign B (subsidised, so no comparable for A) have baselines too.
    Sales: a flat level per merchant before, then level + the campaign's common shift + PLANTED x the
    subsidy paid that day: the estimate must be PLANTED exactly."""
    monkeypatch.setattr(causal, "MIN_TREATED", 2)
    monkeypatch.setattr(causal, "MIN_COMPARABLE", 2)
    world = make_world()
    today = local_today()
    start = today - timedelta(days=14)
    campaign_a, round_a = make_campaign(world, quantity=20, valid_from=start)
    campaign_b, round_b = make_campaign(world, name="第二期", quantity=5, valid_from=start)
    treated = [merchant_with_cashier(db, f"参与餐厅{i}", "餐饮", "海州区", 20 + i, f"cashier_t{i}") for i in range(3)]
    comparables = [merchant_with_cashier(db, f"可比商户{i}", "零售", "连云区", 30 + i, f"cashier_c{i}")[0]
                   for i in range(3)]
    in_b, in_b_cashier = merchant_with_cashier(db, "另一期餐厅", "餐饮", "海州区", 40, "cashier_b")
    tag = iter(range(100))
    for count, (merchant, cashier) in zip((1, 2, 3), treated):
        for _ in range(count):
            redeem(claim_one(round_a, make_citizen(f"t{next(tag)}")).code, 150_00, cashier)
    redeem(claim_one(round_b, make_citizen("b0")).code, 150_00, in_b_cashier)
    db.session.commit()

    paid_today = {m: int(s) for m, s in db.session.execute(select(Redemption.merchant_id, func.sum(Redemption.subsidy_fen))
                                         .group_by(Redemption.merchant_id))}
    rows = []
    for level, merchant in enumerate([m for m, _ in treated] + comparables + [world.other_merchant, in_b], start=1):
        for offset in range(-panel.PRE_DAYS, 15):
            day = start + timedelta(days=offset)
            sales = level * 1000_00
            if day >= start:
                sales += 50_00 + PLANTED * (paid_today.get(merchant.id, 0) if day == today else 0)
            rows.append({"merchant_id": merchant.id, "day": day, "sales_fen": int(sales), "source": "imported"})
    db.session.execute(insert(MerchantDailySales), rows)
    db.session.commit()
    return world, campaign_a, campaign_b, treated, comparables, in_b


def test_the_panel_holds_the_right_merchants_and_recovers_the_planted_leverage(db, panel_world):
    world, campaign_a, campaign_b, treated, comparables, in_b = panel_world
    panel.build(today=local_today() + timedelta(days=1))
    db.session.commit()
    units = {(u.campaign_id, u.merchant_id): u for u in db.session.scalars(select(CausalPanelUnit))}
    in_a = {m for c, m in units if c == campaign_a.id}
    assert in_a == {m.id for m, _ in treated} | {m.id for m in comparables}  # not the car dealer, not in_b
    assert {m for c, m in units if c == campaign_b.id} == {in_b.id} | {m.id for m in comparables}
    first = units[campaign_a.id, treated[0][0].id]
    assert (first.treated, first.pre_days, first.during_days) == (True, panel.PRE_DAYS, 15)
    assert (first.pre_subsidy_fen, first.during_subsidy_fen) == (0, 20_00)

    result = panel.estimate(campaign_a.id).estimate
    assert result.value == pytest.approx(PLANTED) and result.high - result.low == pytest.approx(0, abs=1e-9)
    assert (result.treated, result.comparable, result.campaigns) == (3, 3, 1)
    both = panel.estimate().estimate
    assert both.value == pytest.approx(PLANTED) and both.campaigns == 2
    assert (both.treated, both.comparable) == (4, 3)  # the comparables stand in both panels: counted once


def test_report_and_page_show_the_causal_figure_beside_the_gross_one(app, client, db, panel_world):
    _, campaign_a, *_ = panel_world
    panel.build(today=local_today() + timedelta(days=1))
    db.session.commit()
    row = json.loads(app.test_cli_runner().invoke(
        args=["leverage", "report", "--format", "json", "--campaign", str(campaign_a.id)]).output)
    assert (row["causal_leverage"], row["causal_ci_low"], row["causal_ci_high"]) == (2.0, 2.0, 2.0)
    assert row["leverage_on_paid"] == 7.5  # 6 orders of 150 for 6 x 20 of subsidy: gross, per yuan paid

    client.post("/login", data={"username": "auditor", "password": PASSWORD})
    text = client.get(f"/analytics/leverage?campaign={campaign_a.id}").get_data(as_text=True)
    causal_part = text.split("因果口径（增量杠杆率）")[1].split("<h2>")[0]
    assert "增量杠杆率（因果）" in causal_part and ">2.00<" in causal_part and "95% 置信区间 2.00 – 2.00" in causal_part
    assert ">7.50<" in causal_part and "核销商户 3 家，可比商户 3 家" in causal_part
    book = openpyxl.load_workbook(io.BytesIO(client.get(f"/analytics/leverage.xlsx?campaign={campaign_a.id}").data))
    assert [c.value for c in book["总览"][6]][1:7] == [2.0, 2.0, 2.0, 3, 3, 1]


def test_without_baselines_the_page_says_why_there_is_no_causal_figure(client, db):
    world = make_world()
    make_campaign(world)
    client.post("/login", data={"username": "finance", "password": PASSWORD})
    text = client.get("/analytics/leverage").get_data(as_text=True)
    assert "暂无因果估计：因果面板尚未生成" in text
    panel.build()
    db.session.commit()
    assert "暂无因果估计：尚未导入商户日销售基线" in client.get("/analytics/leverage").get_data(as_text=True)


# Importing baselines ---------------------------------------------------------------------------------


def _csv(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode("utf-8")


def _counts(db) -> tuple[int, int]:
    return (db.session.scalar(select(func.count(MerchantDailySales.id))),
            db.session.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.action == "baselines.import")))


def test_a_good_file_imports_by_credit_code_or_number_and_replaces_a_day_held(db):
    world = make_world()
    food, car = world.merchant, world.other_merchant
    db.session.add(MerchantDailySales(merchant_id=food.id, day=local_today(), sales_fen=1, source="synthetic"))
    db.session.commit()
    day = local_today().isoformat()
    result = import_baselines(_csv("统一社会信用代码,日期,销售额（元）",
                                   f"{food.uscc},{day},\"12,345.67\"",
                                   f"{food.uscc.lower()},2026/01/02,0",
                                   f"{car.id},{day},88"), "sales.csv", world.finance)
    db.session.commit()
    assert (result.rows, result.replaced, result.merchants) == (3, 1, 2)
    held = {(r.merchant_id, r.day.isoformat()): (r.sales_fen, r.source) for r in db.session.scalars(select(MerchantDailySales))}
    assert held[food.id, day] == (1_234_567, "imported") and held[food.id, "2026-01-02"] == (0, "imported")
    assert held[car.id, day] == (88_00, "imported") and _counts(db) == (3, 1)


def test_an_xlsx_file_imports_too(db):
    world = make_world()
    book = openpyxl.Workbook()
    book.active.append(["统一社会信用代码", "日期", "销售额（元）"])
    book.active.append([world.merchant.uscc, "2026-10-01", "99.5"])
    buffer = io.BytesIO()
    book.save(buffer)
    assert import_baselines(buffer.getvalue(), "sales.xlsx", None).rows == 1


@pytest.mark.parametrize("line, message", [
    ("91320706MA2ABC0099,2026-10-01,10", "第 2 行：商户「91320706MA2ABC0099」不存在"),
    ("{uscc},2026-13-01,10", "第 2 行：日期「2026-13-01」无效，应为 YYYY-MM-DD"),
    ("{uscc},2026-10-01,-5", "第 2 行：销售额「-5」为负数"),
    ("{uscc},2026-10-01,1.234", "第 2 行：销售额「1.234」不是有效金额（元，最多两位小数）"),
    ("{uscc},2026-10-01,很多", "第 2 行：销售额「很多」不是有效金额（元，最多两位小数）"),
    ("{uscc},2026-10-01,", "第 2 行：缺少销售额"),
    (",2026-10-01,10", "第 2 行：缺少商户（统一社会信用代码）"),
])
def test_each_kind_of_bad_row_is_refused_with_its_row_and_nothing_is_written(db, line, message):
    world = make_world()
    before = _counts(db)
    content = _csv("统一社会信用代码,日期,销售额（元）", line.format(uscc=world.merchant.uscc),
                   f"{world.merchant.uscc},2026-10-02,10")
    with pytest.raises(BadBaselineFile) as refused:
        import_baselines(content, "sales.csv", None)
    db.session.rollback()
    assert refused.value.problems == [message]
    assert _counts(db) == before


def test_duplicates_missing_columns_and_empty_files_are_refused(db):
    world = make_world()
    uscc = world.merchant.uscc
    with pytest.raises(BadBaselineFile) as duplicate:
        import_baselines(_csv("统一社会信用代码,日期,销售额（元）", f"{uscc},2026-10-01,1", f"{uscc},2026/10/01,2"), "a.csv", None)
    assert duplicate.value.problems == [f"第 3 行：商户「{uscc}」2026-10-01 与第 2 行重复"]
    with pytest.raises(BadBaselineFile) as columns:
        import_baselines(_csv("商户,日期,金额", f"{uscc},2026-10-01,1"), "a.csv", None)
    assert columns.value.problems[0].startswith("缺少「统一社会信用代码」列") and len(columns.value.problems) == 2
    for content, expected in ((b"", "文件为空"), (_csv("统一社会信用代码,日期,销售额（元）"), "文件只有表头，没有数据行")):
        with pytest.raises(BadBaselineFile) as empty:
            import_baselines(content, "a.csv", None)
        assert empty.value.problems == [expected]
    db.session.rollback()
    assert _counts(db) == (0, 0)


def test_the_page_imports_for_finance_refuses_auditors_and_lists_problems(client, db):
    world = make_world()
    client.post("/login", data={"username": "auditor", "password": PASSWORD})
    page = client.get("/analytics/baselines").get_data(as_text=True)
    assert "商户日销售基线" in page and "尚未导入任何销售基线" in page and 'name="baselines"' not in page
    good = _csv("统一社会信用代码,日期,销售额（元）", f"{world.merchant.uscc},2026-10-01,10")
    assert client.post("/analytics/baselines", data={"baselines": (io.BytesIO(good), "s.csv")}).status_code == 403
    assert client.get("/analytics/baselines/template.csv").data.decode("utf-8-sig").startswith("统一社会信用代码,日期")

    client.post("/logout")
    client.post("/login", data={"username": "finance", "password": PASSWORD})
    bad = client.post("/analytics/baselines", data={"baselines": (io.BytesIO(good + b"x,2026-10-02,1\n"), "s.csv")})
    assert bad.status_code == 422
    assert "「s.csv」未导入：发现 1 处问题" in bad.get_data(as_text=True) and "第 3 行：商户「x」不存在" in bad.get_data(as_text=True)
    assert _counts(db) == (0, 0)
    done = client.post("/analytics/baselines", data={"baselines": (io.BytesIO(good), "s.csv")}, follow_redirects=True)
    text = done.get_data(as_text=True)
    assert done.status_code == 200 and "已导入 1 行销售基线（1 家商户，2026-10-01 至 2026-10-01）" in text
    assert "<td>导入</td>" in text and _counts(db) == (1, 1)
    assert client.post("/analytics/baselines", data={}).status_code == 422


def test_the_command_imports_or_lists_the_problems(app, db, tmp_path):
    world = make_world()
    runner = app.test_cli_runner()
    bad = tmp_path / "bad.csv"
    bad.write_bytes(_csv("统一社会信用代码,日期,销售额（元）", f"{world.merchant.uscc},someday,1"))
    result = runner.invoke(args=["leverage", "import-baselines", str(bad)])
    assert result.exit_code == 2 and "第 2 行：日期「someday」无效" in result.output
    good = tmp_path / "good.csv"
    good.write_bytes(_csv("统一社会信用代码,日期,销售额（元）", f"{world.merchant.uscc},2026-10-01,1"))
    result = runner.invoke(args=["leverage", "import-baselines", str(good)])
    assert result.exit_code == 0 and "已导入 1 行" in result.output
    assert db.session.scalar(select(func.count(MerchantDailySales.id))) == 1
    assert db.session.get(Merchant, world.merchant.id) is not None
