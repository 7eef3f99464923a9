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

from benchmarks import causal_scenarios as cs
from tests.factories import PASSWORD, claim_one, make_campaign, make_citizen, make_world
from tests.test_instruments import merchant_with_cashier
from voucher.analytics import causal, panel
from voucher.analytics.baselines import BadBaselineFile, import_baselines
from voucher.analytics.models import CausalPanelUnit, CausalPanelWeek, MerchantDailySales
from voucher.core.audit import AuditEntry
from voucher.core.clock import local_today
from voucher.counter.redemption import redeem
from voucher.merchants.models import Merchant, Redemption

# The estimator alone ------------------------------------------------------------------------------

WEEKS = tuple(range(-8, 0)) + tuple(range(6)) + causal.POST_WEEKS


def flat_panel(campaigns: int = 2, treated: int = 20, comparable: int = 20, effect=lambda level: 2.5,
               shock=lambda week, level: 0.0, wobble: float = 0.0, post_complete: bool = True) -> causal.Panel:
    """Noise-free merchants (7 days a week) of unequal size: participants get subsidy of 2 % of their level
    in the campaign weeks (more in odd-numbered ones) and sell effect(level) x that much more; `shock`
    moves everyone's sales by week; `wobble` adds a fixed zig-zag by merchant and week (no trend)."""
    rows = []
    for c in range(campaigns):
        for i in range(treated + comparable):
            level = 1000_00 * (1 + (i * 37 % 11))
            is_treated = i < treated
            week_sales, week_subsidy = [], []
            for w in WEEKS:
                during = 0 <= w < causal.POST_WEEK
                paid = 7 * 0.02 * level * (1 + (w + i) % 2) if is_treated and during else 0.0
                zig = wobble * level * (1 if (w + i + c) % 2 else -1)
                week_sales.append(7 * (level + shock(w, level)) + zig + effect(level) * paid)
                week_subsidy.append(paid)
            rows.append((c, c * 1000 + i, is_treated, f"区{i % 3}", week_sales, week_subsidy))
    n = len(rows)
    return causal.Panel(np.array([r[0] for r in rows]), np.array([r[1] for r in rows]),
                        np.array([r[2] for r in rows]), np.array([r[3] for r in rows]), WEEKS,
                        np.full((n, len(WEEKS)), 7.0), np.array([r[4] for r in rows]), np.array([r[5] for r in rows]),
                        np.full(n, post_complete))


def test_proportional_and_additive_shocks_leave_the_noise_free_figure_exact():
    # The levels estimate moved by +-3.4 per 1 % proportional city-wide change; a ratio against the
    # comparables' change fitted as a + g / level absorbs both kinds of shock.
    shocked = flat_panel(shock=lambda week, level: (0.01 * level + 300_00) if week >= 0 else 0.0)
    result = causal.estimate(shocked)
    assert result.value == pytest.approx(2.5) and result.std_error == pytest.approx(0, abs=1e-9)
    assert (result.treated, result.comparable, result.campaigns, result.basis) == (40, 40, 2, "net")


def test_effects_that_differ_by_size_add_up_to_total_extra_over_total_subsidy():
    sized = flat_panel(campaigns=4, effect=lambda level: 3.0 if level < 5000_00 else 1.0)
    result = causal.estimate(sized)
    during = [j for j, w in enumerate(WEEKS) if 0 <= w < causal.POST_WEEK]
    subsidy = sized.subsidy[:, during].sum(axis=1)
    level = sized.sales[:, 0] / 7
    truth = float((np.where(level < 5000_00, 3.0, 1.0) * subsidy).sum() / subsidy.sum())
    assert result.value == pytest.approx(truth) and 1.0 < truth < 3.0
    small, _, large = result.sizes
    assert small.value == pytest.approx(3.0) and large.value == pytest.approx(1.0)


def test_pull_forward_is_netted_once_the_four_weeks_after_have_passed():
    def dip(week: int, level: float) -> float:  # 40 % of the lift bought in the campaign instead of after
        return -0.4 * 2.5 * (0.02 * level * 1.5 * 6) / 4 if week >= causal.POST_WEEK else 0.0

    pulled = flat_panel(shock=lambda w, level: 0.0)
    pulled = flat_panel(shock=dip)  # the comparables get the dip too, then: undo it for them below
    comparable = ~pulled.treated
    post = [j for j, w in enumerate(WEEKS) if w >= causal.POST_WEEK]
    pulled.sales[np.ix_(comparable, post)] = flat_panel().sales[np.ix_(comparable, post)]
    net = causal.estimate(pulled)
    assert net.basis == "net" and net.value == pytest.approx(2.5 * 0.6, rel=0.02)
    assert net.gross is not None and net.gross.value == pytest.approx(2.5)
    post_check = next(c for c in net.checks if c.name == "活动后差距")
    assert post_check.passed and "已从净值中扣除" in post_check.explanation
    running = causal.estimate(flat_panel(shock=dip, post_complete=False))
    assert running.basis == "gross" and running.value == pytest.approx(2.5)
    assert next(c for c in running.checks if c.name == "活动后差距").passed is None


@pytest.mark.parametrize("scenario, check", [("trend_select", "活动后差距"), ("displacement", "就近分流")])
def test_data_the_design_cannot_identify_are_refused_with_the_failing_check(scenario, check):
    rng = np.random.default_rng([18, 7, 0])
    result = causal.estimate(cs.panel_of([cs.simulate_campaign(rng, scenario) for _ in range(4)]))
    assert result.value is None and result.refused and result.as_tuple() is None
    assert result.missing_reason.startswith("不能可靠估计") and check in result.missing_reason
    assert [c.name for c in result.checks if c.passed is False] == [check]


def test_participants_already_pulling_away_before_the_campaign_fail_the_placebo():
    growing = flat_panel(wobble=0.01)
    weeks = np.array(WEEKS)
    trend = np.where(weeks < 0, weeks + 8, 8) * 0.01  # +1 % a week until the campaign, then flat
    growing.sales[growing.treated] *= (1 + trend)[None, :]
    result = causal.estimate(growing)
    placebo = result.checks[0]
    assert placebo.name == "活动前趋势（安慰剂）" and placebo.passed is False and result.value is None
    assert "走势不同" in placebo.explanation


def test_each_campaign_needs_its_own_comparables_and_a_short_one_is_left_out_by_name():
    two = flat_panel()
    few = two.take((two.campaign == 0) | two.treated | (two.merchant % 1000 < 25))  # campaign 1: 5 comparables
    result = causal.estimate(few, names={0: "春季券", 1: "夏季券"})
    assert result.campaigns == 1 and result.left_out == ["夏季券（参与 20 家、可比 5 家）"]
    assert [r.label for r in result.by_campaign] == ["春季券"]
    none = causal.estimate(few.take(few.campaign == 1), names={1: "夏季券"})
    assert none.value is None and not none.refused and "夏季券（参与 20 家、可比 5 家）" in none.missing_reason


def test_the_interval_is_wider_when_one_merchant_appears_in_many_campaigns():
    rng = np.random.default_rng([18, 0, 0])
    one = cs.panel_of([cs.simulate_campaign(rng, "baseline")])
    repeated = causal.Panel(np.repeat(np.arange(4), len(one.campaign)), np.tile(one.merchant, 4),
                            np.tile(one.treated, 4), np.tile(one.district, 4), one.weeks, np.tile(one.days, (4, 1)),
                            np.tile(one.sales, (4, 1)), np.tile(one.subsidy, (4, 1)), np.tile(one.post_complete, 4))
    naive = causal.Panel(*[getattr(repeated, f) for f in ("campaign",)], np.arange(len(repeated.merchant)),
                         repeated.treated, repeated.district, repeated.weeks, repeated.days, repeated.sales,
                         repeated.subsidy, repeated.post_complete)
    a, b = causal.estimate(repeated), causal.estimate(naive)
    assert a.value == pytest.approx(b.value) and a.std_error > 1.9 * b.std_error
    assert (a.treated, a.comparable) == (200, 200) and (b.treated, b.comparable) == (800, 800)


def test_the_interval_across_campaigns_needs_four_and_is_wider_than_the_one_for_these_campaigns():
    rng = np.random.default_rng([18, 0, 1])
    four = causal.estimate(cs.panel_of([cs.simulate_campaign(rng, "baseline") for _ in range(4)]))
    assert four.across is not None and four.across.low < four.value < four.across.high
    assert four.across.high - four.across.low > four.high - four.low  # three degrees of freedom, not 800
    three = causal.estimate(flat_panel(campaigns=3, wobble=0.01))
    assert three.across.value is None and "少于 4 个" in three.across.note


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
    assert (first.treated, first.district) == (True, "海州区")
    weeks = {w.week: w for w in db.session.scalars(select(CausalPanelWeek).where(
        CausalPanelWeek.campaign_id == campaign_a.id, CausalPanelWeek.merchant_id == treated[0][0].id))}
    # eight whole weeks before, then the campaign's weeks up to today (the third has one day so far)
    assert sorted(weeks) == list(range(-8, 3)) and [weeks[w].days for w in (-8, -1, 0, 1, 2)] == [7, 7, 7, 7, 1]
    assert sum(w.subsidy_fen for w in weeks.values()) == weeks[2].subsidy_fen == 20_00

    result = panel.estimate(campaign_a.id).estimate
    assert result.value == pytest.approx(PLANTED) and result.high - result.low == pytest.approx(0, abs=1e-9)
    assert (result.treated, result.comparable, result.campaigns) == (3, 3, 1)
    assert result.basis == "gross"  # the four weeks after the campaign have not come yet
    # campaign B has one participant of its own: it is left out by name, not pooled with A's
    both = panel.estimate().estimate
    assert both.value == pytest.approx(PLANTED) and both.campaigns == 1
    assert both.left_out == ["第二期（参与 1 家、可比 3 家）"]


def test_participants_that_were_already_growing_get_no_figure_and_the_page_says_why(client, db, panel_world):
    world, campaign_a, campaign_b, treated, comparables, in_b = panel_world
    start = local_today() - timedelta(days=14)
    for step, (merchant, _) in enumerate(treated):  # 1 % a week faster than the comparables, for months
        for row in db.session.scalars(select(MerchantDailySales).where(MerchantDailySales.merchant_id == merchant.id)):
            row.sales_fen = int(row.sales_fen * (1 + 0.01 * (row.day - start).days / 7) + 37 * step)
    db.session.commit()
    panel.build(today=local_today() + timedelta(days=1))
    db.session.commit()
    result = panel.estimate(campaign_a.id).estimate
    assert result.value is None and result.refused
    assert result.missing_reason == "不能可靠估计：活动前趋势（安慰剂）未通过"
    client.post("/login", data={"username": "auditor", "password": PASSWORD})
    text = client.get(f"/analytics/leverage?campaign={campaign_a.id}").get_data(as_text=True)
    causal_part = text.split("因果口径（增量杠杆率）")[1].split("<h2>")[0]
    assert "不能可靠估计。" in causal_part and "<strong>未通过</strong>" in causal_part
    assert "两组本来就走势不同" in causal_part and "增量杠杆率（因果" not in causal_part


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
    assert "增量杠杆率（因果，未扣除提前消费）" in causal_part and ">2.00<" in causal_part
    assert "95% 置信区间 2.00 – 2.00" in causal_part
    assert ">7.50<" in causal_part and "参与商户 3 家，可比商户 3 家" in causal_part
    assert "活动前趋势（安慰剂）" in causal_part and "事件研究" in causal_part and "未扣除提前消费" in causal_part
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


def test_a_week_no_qualifying_campaign_has_is_not_shown_as_no_effect():
    # The page listed weeks 9-15 at +0.00 when only longer campaigns (left out for too few comparables)
    # had them: nothing measured is not "no effect". Campaign 1 here lasts 4 weeks, campaign 0 six.
    panel_ = flat_panel()
    short = [j for j, w in enumerate(WEEKS) if w in (4, 5)]
    for table in (panel_.days, panel_.sales, panel_.subsidy):
        table[np.ix_(panel_.campaign == 1, short)] = 0
    rows = {r.label: r for r in causal.estimate(panel_).weeks}
    alone = {r.label: r for r in causal.estimate(panel_.take(panel_.campaign == 0)).weeks}
    assert rows["第6周"].value == pytest.approx(alone["第6周"].value) and rows["第6周"].value > 0.3
    only_four = flat_panel()
    for table in (only_four.days, only_four.sales, only_four.subsidy):
        table[:, short] = 0
    result = causal.estimate(only_four)
    assert result.value == pytest.approx(2.5)
    assert [r.label for r in result.weeks if r.label.startswith("第")] == ["第1周", "第2周", "第3周", "第4周"]
