"""Leverage figures on a small hand-computed data set, to the fen; the floor and its excess."""
from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from tests.factories import claim_one, make_campaign, make_citizen, make_world
from tests.test_instruments import merchant_with_cashier
from voucher.analytics.leverage import REPORT_KEYS, LeverageFilter, breakdown, headline
from voucher.core.clock import local_today
from voucher.counter.redemption import redeem, reverse


@pytest.fixture
def data(db):
    """满100减20: five claimed (100 yuan issued); orders of 100, 150 and 230 redeemed, one redeemed and
    reversed, one unused. A 10 % purchase subsidy (cap 500): one order of 3,000 (subsidy 300)."""
    world = make_world()
    campaign, release = make_campaign(world, quantity=10)
    vouchers = [claim_one(release, make_citizen(t)) for t in "abcde"]
    for voucher, order in zip(vouchers, (100_00, 150_00, 230_00)):
        redeem(voucher.code, order, world.cashier)
    undone = redeem(vouchers[3].code, 999_00, world.cashier).redemption
    reverse(undone.id, reason="退单", cashier=world.cashier)
    listed, listed_cashier = merchant_with_cashier(db, "苏宁易购连云港店", "家电家居", "海州区", 2, "cashier_listed")
    appliance, round2 = make_campaign(
        world, measure_number=6, instrument="purchase_subsidy", name="绿色节能家电补贴", percent_bp=1000,
        face_value_fen=500_00, threshold_fen=0, categories=["家电家居"], districts=[], merchant_ids=[listed.id],
        quantity=2, plan_override_reason="政策未定节能家电补贴总额，按财政批复安排",  # measure 6 plans no money
    )
    redeem(claim_one(round2, make_citizen("f")).code, 3_000_00, listed_cashier)
    db.session.commit()
    return world, campaign, appliance


def test_headline_figures_of_one_campaign_to_the_fen(db, data):
    _, campaign, _ = data
    f = headline(LeverageFilter(campaign_id=campaign.id))
    assert (f.vouchers_claimed, f.issued_fen, f.vouchers_redeemed) == (5, 100_00, 3)
    assert (f.subsidy_paid_fen, f.driven_fen, f.floor_driven_fen, f.merchants) == (60_00, 480_00, 300_00, 1)
    assert f.leverage_on_issued == pytest.approx(4.8) and f.leverage_on_paid == pytest.approx(8.0)
    assert f.co_payment_ratio == pytest.approx(7.0)
    assert f.redemption_rate == pytest.approx(0.6) and f.breakage == pytest.approx(0.4)
    assert f.floor == pytest.approx(3.0) and f.excess == pytest.approx(1.8)


def test_all_campaigns_add_up_and_a_percentage_floor_is_the_order_its_subsidy_needs(db, data):
    f = headline()
    assert (f.vouchers_claimed, f.issued_fen) == (6, 600_00)
    assert (f.subsidy_paid_fen, f.driven_fen, f.floor_driven_fen) == (360_00, 3480_00, 3300_00)
    (_, appliance_row), = [r for r in breakdown("campaign") if r[0] == "绿色节能家电补贴"]
    # 10 % gave 300 yuan: the least order for that is 3,000 yuan, so nothing exceeds the floor
    assert appliance_row.floor_driven_fen == 3_000_00
    assert appliance_row.leverage_on_issued == pytest.approx(6.0) and appliance_row.floor == pytest.approx(6.0)
    assert appliance_row.excess == pytest.approx(0.0, abs=1e-12)
    assert appliance_row.leverage_on_paid == pytest.approx(10.0)


def test_orders_exactly_at_their_thresholds_leave_no_excess(db):
    world = make_world()
    campaign, release = make_campaign(world, quantity=3)
    for tag in "xyz":
        redeem(claim_one(release, make_citizen(tag)).code, 100_00, world.cashier)
    db.session.commit()
    f = headline(LeverageFilter(campaign_id=campaign.id))
    assert f.leverage_on_issued == pytest.approx(5.0) and f.floor == pytest.approx(5.0)
    assert f.excess == pytest.approx(0.0, abs=1e-12)


def test_breakdowns_split_the_headline_exactly(db, data):
    total = headline()
    for dimension in ("measure", "campaign", "release", "day", "category", "district", "size"):
        rows = breakdown(dimension)
        assert sum(r.driven_fen for _, r in rows) == total.driven_fen, dimension
        assert sum(r.subsidy_paid_fen for _, r in rows) == total.subsidy_paid_fen, dimension
        if dimension in ("measure", "campaign", "release", "day"):
            assert sum(r.issued_fen for _, r in rows) == total.issued_fen, dimension
        else:
            assert all(r.leverage_on_issued is None and r.redemption_rate is None for _, r in rows), dimension
    by_category = dict(breakdown("category"))
    assert by_category["餐饮"].driven_fen == 480_00 and by_category["家电家居"].driven_fen == 3000_00
    assert [label for label, _ in breakdown("day")] == [local_today().isoformat()]
    assert dict(breakdown("size"))["small"].driven_fen == 3480_00


def test_a_date_range_filters_claims_and_redemptions_by_their_own_dates(db, data):
    tomorrow = local_today() + timedelta(days=1)
    assert headline(LeverageFilter(date_from=tomorrow)).vouchers_claimed == 0
    assert headline(LeverageFilter(date_until=local_today())).driven_fen == 3480_00
    empty = headline(LeverageFilter(date_from=tomorrow))
    assert empty.leverage_on_issued is None and empty.floor is None and empty.excess is None


def test_cli_report_as_json_and_csv(app, db, data):
    _, campaign, _ = data
    runner = app.test_cli_runner()
    result = runner.invoke(args=["leverage", "report", "--format", "json", "--campaign", str(campaign.id)])
    assert result.exit_code == 0
    row = json.loads(result.output)
    assert list(row) == list(REPORT_KEYS)
    assert (row["issued_yuan"], row["subsidy_paid_yuan"], row["driven_yuan"]) == ("100.00", "60.00", "480.00")
    assert (row["vouchers_claimed"], row["vouchers_redeemed"], row["merchants"]) == (5, 3, 1)
    assert (row["leverage_on_issued"], row["leverage_on_paid"], row["floor"], row["excess"]) == (4.8, 8.0, 3.0, 1.8)
    assert row["causal_leverage"] is None
    lines = runner.invoke(args=["leverage", "report", "--format", "csv"]).output.splitlines()
    assert lines[0].split(",") == list(REPORT_KEYS) and lines[1].split(",")[2:5] == ["600.00", "360.00", "3480.00"]
    bad = runner.invoke(args=["leverage", "report", "--from", "yesterday"])
    assert bad.exit_code == 2 and "开始日期格式应为 YYYY-MM-DD" in bad.output


def test_the_leverage_page_labels_gross_and_causal_and_exports(client, db, data):
    import io

    import openpyxl

    from tests.factories import PASSWORD

    _, campaign, _ = data
    client.post("/login", data={"username": "finance", "password": PASSWORD})
    text = client.get(f"/analytics/leverage?campaign={campaign.id}&by=day").get_data(as_text=True)
    assert "毛口径（报告口径）" in text and "因果口径（增量杠杆率）" in text
    assert ">4.80<" in text and ">3.00 / 1.80<" in text and "60.0% / 40.0%" in text
    assert local_today().isoformat() in text  # the day breakdown
    size = client.get("/analytics/leverage?by=size").get_data(as_text=True)
    assert "小型" in size and "杠杆率与下限按实际支付计算" in size
    # 场次 is a release in the model, the URL and the page; a bookmark with the old word still opens it.
    for word in ("release", "round"):
        page = client.get(f"/analytics/leverage?by={word}").get_data(as_text=True)
        assert '<input type="hidden" name="by" value="release">' in page and "<th>场次</th>" in page, word
    bad = client.get("/analytics/leverage?from=2026-13-01&campaign=x")
    assert bad.status_code == 422 and "开始日期格式应为 YYYY-MM-DD" in bad.get_data(as_text=True)
    for query, message in (("until=9999-12-31", "结束日期超出范围（2000–2099 年）"),
                           ("from=0001-01-01", "开始日期超出范围（2000–2099 年）"),
                           ("from=2026-02-01&until=2026-01-01", "开始日期不能晚于结束日期"),
                           ("campaign=%C2%B2", "活动编号应为正整数")):
        refused = client.get(f"/analytics/leverage?{query}")
        assert refused.status_code == 422 and message in refused.get_data(as_text=True), query
    book = openpyxl.load_workbook(io.BytesIO(client.get(f"/analytics/leverage.xlsx?campaign={campaign.id}").data))
    assert book.sheetnames[:2] == ["总览", "按措施"]
    assert [c.value for c in book["总览"][3]][1:6] == [5, 100, 3, 60, 480]
    assert client.get("/analytics/leverage.xlsx?until=nope").status_code == 422


def test_charts_are_inline_svg_with_titles_and_their_numbers(client, db, data):
    from tests.factories import PASSWORD

    client.post("/login", data={"username": "auditor", "password": PASSWORD})
    text = client.get("/analytics/leverage").get_data(as_text=True)
    assert text.count('<svg class="chart" role="img"') == 4 and not re.search(r"<script(?![^>]*\bsrc=)", text)
    assert "<title>机制下限与超出部分（按类别）</title>" in text
    assert ">餐饮</text>" in text and ">8.00 倍</text>" in text  # 480 / 60 on paid, printed on its bar
    assert "3,000" not in text.split("<h2>图表</h2>")[1].split("</div>")[0]  # charts show ratios only


def _over_time(text: str) -> str:
    """The daily leverage chart of the leverage page."""
    return re.search(r"<svg[^>]*><title>按日杠杆率（按支付）</title>.*?</svg>", text, re.S).group(0)


def test_a_single_day_is_drawn_with_its_value_an_axis_and_a_note(client, db, data):
    from tests.factories import PASSWORD

    client.post("/login", data={"username": "finance", "password": PASSWORD})
    chart = _over_time(client.get("/analytics/leverage").get_data(as_text=True))  # every redemption is today's
    # 3,480 ÷ 360 on paid: the point's value, not a lone dot
    assert "仅 1 天数据" in chart and ">9.67 倍</text>" in chart
    assert "单位：倍" in chart
    ticks = re.findall(r'text-anchor="end" font-size="13">([\d.,]+)</text>', chart)
    assert ticks[0] == "0" and len(ticks) >= 3  # a y-axis from zero, with ticks up past the point
    assert float(ticks[-1]) >= 9.67 and "纵轴不从 0 开始" not in chart
    assert local_today().isoformat() in chart  # the day, under the point


def test_line_charts_have_a_y_axis_from_zero_and_say_when_one_does_not_start_there():
    from voucher.core import charts

    two_days = str(charts.line([("2026-11-01", 3.2), ("2026-11-02", 4.1)], "杠杆率"))
    assert "仅 1 天数据" not in two_days and "单位：倍" in two_days and ">最高 4.10</text>" in two_days
    assert re.findall(r'font-size="13">([\d.]+)</text>', two_days)[:1] == ["0"]
    near = str(charts.lines(["2021", "2022"], [("综合指数", [0.393, 0.412])], "指数", unit="指数（0–1）"))
    assert ">0.0</text>" in near and "纵轴不从 0 开始" not in near
    cut = str(charts.lines(["2021", "2022"], [("综合指数", [0.393, 0.412])], "指数", zero_based=False))
    assert "纵轴不从 0 开始" in cut


def test_every_chart_is_drawn_at_a_readable_size():
    """No text under 13 px where the chart is drawn at the size it is shown (the browser test measures it)."""
    from voucher.core import charts

    drawn = [
        charts.bars([("连云港经济技术开发区", 7.5), ("餐饮", None)], "t", unit="倍", width=charts.HALF),
        charts.floor_and_excess([("餐饮", 5.0, 2.5)], "t", unit="倍", width=charts.HALF),
        charts.line([("2026-11-01", 2.0)], "t", width=charts.HALF),
        charts.radar(["需求", "供给", "环境"], [("连云港", [0.4, 0.5, 0.6])], "t"),
        charts.lines(["2021", "2022"], [("连云港", [0.4, 0.5])], "t"),
        charts.distribution([("连云港", 40.0), ("苏州", 70.0)], "t", marks=[("中位数", 55.0)]),
        charts.rank_intervals([{"city": "连云港", "low": 3, "median": 5, "high": 8, "rank": 5}], "t"),
    ]
    for chart in map(str, drawn):
        sizes = [float(size) for size in re.findall(r'font-size="([\d.]+)"', chart)]
        assert sizes and min(sizes) >= 13, chart[:120]
    # a long name is shortened to its room (the whole name kept as its tooltip), not drawn over the bar
    assert "<title>连云港经济技术开发区</title>" in str(drawn[0]) or ">连云港经济技术开发区</text>" in str(drawn[0])


def test_the_citizen_co_payment_is_a_multiple_labelled_as_one(client, db, data):
    from tests.factories import PASSWORD

    _, campaign, _ = data
    client.post("/login", data={"username": "finance", "password": PASSWORD})
    text = client.get(f"/analytics/leverage?campaign={campaign.id}").get_data(as_text=True)
    # (480 − 60) ÷ 60 = 7: citizens paid 7 yuan of their own per yuan of subsidy, 87.5 % of the 480
    assert "市民自付比" not in text
    assert re.search(r"市民自付倍数</div><div class=\"big\"><span>7.00</span><small class=\"unit\"> 倍</small>", text)
    assert "每 1 元补贴，市民自付 7.00 元" in text and "市民自付占带动消费的 87.5%" in text
    assert headline(LeverageFilter(campaign_id=campaign.id)).co_payment_share == pytest.approx(0.875)


def _everything(selection: LeverageFilter) -> list:
    from dataclasses import astuple

    return [astuple(headline(selection))] + [
        (d, [(k, astuple(r)) for k, r in breakdown(d, selection)]) for d in
        ("measure", "campaign", "release", "day", "category", "district", "size")]


def test_the_rollup_gives_the_same_figures_as_the_live_rows(db, data):
    from sqlalchemy import text

    from voucher.analytics import rollup

    _, campaign, _ = data
    today = local_today()
    # Two claims and a redemption three days ago: part of the selection comes from the facts, part live.
    db.session.execute(text("UPDATE vouchers SET claimed_at = claimed_at - INTERVAL '3 days' WHERE id IN "
                            "(SELECT voucher_id FROM redemptions WHERE reversed_at IS NULL ORDER BY id LIMIT 2)")
                       if db.engine.dialect.name == "postgresql" else
                       text("UPDATE vouchers SET claimed_at = datetime(claimed_at, '-3 days') WHERE id IN "
                            "(SELECT voucher_id FROM redemptions WHERE reversed_at IS NULL ORDER BY id LIMIT 2)"))
    db.session.execute(text("UPDATE redemptions SET created_at = created_at - INTERVAL '3 days' WHERE id = "
                            "(SELECT min(id) FROM redemptions)")
                       if db.engine.dialect.name == "postgresql" else
                       text("UPDATE redemptions SET created_at = datetime(created_at, '-3 days') WHERE id = "
                            "(SELECT min(id) FROM redemptions)"))
    db.session.commit()
    selections = [LeverageFilter(), LeverageFilter(campaign_id=campaign.id),
                  LeverageFilter(date_from=today - timedelta(days=3), date_until=today - timedelta(days=3)),
                  LeverageFilter(date_from=today - timedelta(days=1)), LeverageFilter(date_until=today - timedelta(days=2))]
    live = [_everything(s) for s in selections]
    assert len(live[0][4][1]) == 2  # two days in the day breakdown

    summary = rollup.refresh(through=today - timedelta(days=1))
    db.session.commit()
    assert summary.built_through == today - timedelta(days=1) and summary.facts == 2 and summary.merchant_days == 1
    assert [_everything(s) for s in selections] == live

    # Everything rolled up, then a reversal of a rolled-up redemption: the next refresh rebuilds its day.
    rollup.refresh(through=today)
    db.session.commit()
    assert [_everything(s) for s in selections] == live
    from voucher.counter.redemption import reverse as reverse_redemption
    from voucher.merchants.models import Redemption

    first = db.session.get(Redemption, db.session.scalar(text("SELECT min(id) FROM redemptions")))
    world = data[0]
    first.created_at = first.created_at + timedelta(days=3)  # back within the reversal window
    db.session.commit()
    rollup.refresh(through=today, full=True)
    db.session.commit()
    reverse_redemption(first.id, reason="退单", cashier=world.cashier)
    db.session.commit()
    assert rollup.refresh(through=today).rebuilt_from == today
    db.session.commit()
    assert headline().driven_fen == 3480_00 - 100_00 and headline().merchants == 2


def test_a_reversal_in_a_rolled_up_day_shows_at_once(app, db, data):
    """The review's case: the nightly rollup has aggregated yesterday, then one of yesterday's redemptions
    is reversed (within the window, just after midnight). The page and the CLI used to keep the old
    figures until the next refresh; they must equal a full scan at once."""
    from sqlalchemy import delete, select

    from voucher.analytics import rollup
    from voucher.analytics.leverage import report
    from voucher.analytics.models import RollupState
    from voucher.core.clock import utcnow
    from voucher.merchants.models import Redemption

    world, campaign, _ = data
    yesterday = local_today() - timedelta(days=1)
    late = db.session.scalar(select(Redemption).where(Redemption.reversed_at.is_(None)).order_by(Redemption.id))
    late.created_at -= timedelta(days=1)
    db.session.commit()
    rollup.refresh()  # through yesterday, as the nightly job does
    db.session.commit()
    assert rollup.built_through() == yesterday
    selections = [LeverageFilter(), LeverageFilter(campaign_id=campaign.id),
                  LeverageFilter(date_from=yesterday, date_until=yesterday), LeverageFilter(date_until=yesterday)]
    before = [_everything(s) for s in selections]
    runner = app.test_cli_runner()
    assert json.loads(runner.invoke(args=["leverage", "report"]).output)["vouchers_redeemed"] == 4

    app.config["REVERSAL_WINDOW_MINUTES"], window = 2 * 24 * 60, app.config["REVERSAL_WINDOW_MINUTES"]
    try:
        reverse(late.id, reason="退单", cashier=world.cashier, now=utcnow())
    finally:
        app.config["REVERSAL_WINDOW_MINUTES"] = window
    db.session.commit()
    served = [_everything(s) for s in selections]
    report_after = json.loads(runner.invoke(args=["leverage", "report"]).output)

    # the full scan: without a rollup state every figure is read from the source rows
    db.session.execute(delete(RollupState).where(RollupState.name == rollup.NAME))
    db.session.flush()
    assert rollup.built_through() is None
    full_scan = [_everything(s) for s in selections]
    full_report = report(headline())
    db.session.rollback()

    assert served == full_scan and served != before
    assert headline().vouchers_redeemed == 3 and headline().driven_fen == 3480_00 - 100_00
    report_after.pop("causal_note")  # the test compares the gross figures; the causal one needs a panel
    assert report_after == {k: v for k, v in full_report.items() if k != "causal_note"}
    assert report_after["vouchers_redeemed"] == 3
    assert report_after["driven_yuan"] == "3380.00" and report_after["merchants"] == 2


def _claim_on_day_one_redeem_on_day_three(world, release):
    """Day 1: a and b claim. Day 3: c claims, and a's and c's vouchers are redeemed (b's stays open)."""
    from voucher.core.clock import travel_to, utcnow

    day_one = local_today()
    first = claim_one(release, make_citizen("a"))
    claim_one(release, make_citizen("b"))
    with travel_to(utcnow() + timedelta(days=2)):
        third = claim_one(release, make_citizen("c"))
        redeem(first.code, 100_00, world.cashier)
        redeem(third.code, 100_00, world.cashier)
        db_commit()
    return day_one, day_one + timedelta(days=2)


def db_commit():
    from voucher.core.db import db

    db.session.commit()


def test_a_cohort_counts_its_vouchers_redeemed_on_a_later_day(db):
    world = make_world()
    campaign, release = make_campaign(world, quantity=10)
    day_one, day_three = _claim_on_day_one_redeem_on_day_three(world, release)
    f = headline(LeverageFilter(date_from=day_one, date_until=day_one))
    # the gross figures keep their own dates: no redemption happened on day 1
    assert (f.vouchers_claimed, f.vouchers_redeemed, f.subsidy_paid_fen) == (2, 0, 0)
    # the cohort of day 1: two claimed, one of them redeemed on day 3, one still open
    assert (f.cohort.claimed, f.cohort.redeemed, f.cohort.open, f.cohort.expired) == (2, 1, 1, 0)
    assert f.redemption_rate == pytest.approx(0.5) and f.breakage == pytest.approx(0.5)
    assert f.redemption_rate_money == pytest.approx(0.5) and f.cohort.subsidy_fen == 20_00
    later = headline(LeverageFilter(date_from=day_three, date_until=day_three))
    assert (later.vouchers_claimed, later.vouchers_redeemed) == (1, 2)
    assert later.redemption_rate == pytest.approx(1.0)  # its own claim only, not day 1's redeemed that day


def test_the_day_breakdown_never_shows_a_rate_above_100_percent(db):
    world = make_world()
    campaign, release = make_campaign(world, quantity=10)
    day_one, day_three = _claim_on_day_one_redeem_on_day_three(world, release)
    rows = dict(breakdown("day", LeverageFilter(campaign_id=campaign.id)))
    assert rows[day_three.isoformat()].vouchers_redeemed == 2  # two redemptions that day, one claim
    assert rows[day_three.isoformat()].redemption_rate == pytest.approx(1.0)
    assert rows[day_one.isoformat()].redemption_rate == pytest.approx(0.5)
    for _, r in rows.items():
        for rate in (r.redemption_rate, r.redemption_rate_money):
            assert rate is None or 0 <= rate <= 1
    total = headline(LeverageFilter(campaign_id=campaign.id))
    assert sum(r.cohort.claimed for r in rows.values()) == total.cohort.claimed == 3
    assert sum(r.cohort.redeemed for r in rows.values()) == total.cohort.redeemed == 2


def test_breakage_in_money_counts_a_percentage_vouchers_unused_cap(db, data):
    _, campaign, appliance = data
    f = headline(LeverageFilter(campaign_id=appliance.id))
    # one 10 % voucher capped at 500 yuan, redeemed on an order of 3,000: 300 yuan paid
    assert (f.cohort.claimed, f.cohort.redeemed, f.cohort.face_fen, f.cohort.subsidy_fen) == (1, 1, 500_00, 300_00)
    assert f.redemption_rate == pytest.approx(1.0) and f.breakage == pytest.approx(0.0)
    assert f.redemption_rate_money == pytest.approx(0.6) and f.breakage_money == pytest.approx(0.4)
    city = headline()
    assert city.breakage == pytest.approx(2 / 6)  # vouchers: 4 of 6 redeemed
    assert city.breakage_money == pytest.approx(1 - 360_00 / 600_00)  # money: 360 of 600 yuan paid
    (_, row), = [r for r in breakdown("campaign") if r[0] == "绿色节能家电补贴"]
    assert row.redemption_rate == pytest.approx(1.0) and row.redemption_rate_money == pytest.approx(0.6)


def test_expired_vouchers_are_breakage_and_the_page_labels_both_units(client, db, data):
    from tests.factories import PASSWORD
    from voucher.core.clock import utcnow
    from voucher.core.db import db as database
    from voucher.vouchers.expiry import expire_vouchers

    _, campaign, _ = data
    expire_vouchers(utcnow() + timedelta(days=400))
    database.session.commit()
    f = headline(LeverageFilter(campaign_id=campaign.id))
    assert (f.cohort.claimed, f.cohort.redeemed, f.cohort.expired, f.cohort.open) == (5, 3, 2, 0)
    assert f.expired_share == pytest.approx(0.4)
    client.post("/login", data={"username": "finance", "password": PASSWORD})
    text = client.get("/analytics/leverage?by=day").get_data(as_text=True)
    assert "核销率 / 沉淀率（按张数）" in text and "核销率 / 沉淀率（按金额）" in text
    assert "66.7% / 33.3%" in text and "60.0% / 40.0%" in text  # vouchers 4 of 6; money 360 of 600 yuan
    assert "核销率（按金额，领取批次）" in text and "按领取日" in text
