"""受益结构 (who benefits): the subsidy and the driven consumption across merchants, sizes and districts, on a
hand-computed data set; the districts' populations; who may see and edit them."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from tests.factories import PASSWORD, claim_one, make_campaign, make_citizen, make_world
from tests.test_instruments import merchant_with_cashier
from voucher.analytics import benefit
from voucher.analytics.leverage import LeverageFilter, headline
from voucher.analytics.models import DistrictPopulation
from voucher.core.audit import AuditEntry
from voucher.counter.redemption import redeem, reverse


def login(client, username, password=PASSWORD):
    client.post("/logout")
    return client.post("/login", data={"username": username, "password": password})


def text_of(response) -> str:
    return re.sub(r"\s+", " ", response.get_data(as_text=True))


@pytest.fixture
def ten(db):
    """Ten appliance shops under a 10 % purchase subsidy: shop i sells an order of i × 100 yuan, so it gets
    i × 10 yuan (550 yuan in all). Shops 1-5 are in 海州区, 6-10 in 东海县; 1-4 micro, 5-8 small, 9-10 large.
    Shop 10 also redeemed an order of 5,000 yuan that was reversed: it counts nowhere."""
    world = make_world()
    shops = []
    for i in range(1, 11):
        merchant, cashier = merchant_with_cashier(db, f"家电门店{i:02d}", "家电家居", "海州区" if i <= 5 else "东海县",
                                                  100 + i, f"cashier_shop{i}")
        merchant.size_class = "micro" if i <= 4 else "small" if i <= 8 else "large"
        shops.append((merchant, cashier))
    db.session.commit()
    campaign, release = make_campaign(
        world, measure_number=6, instrument="purchase_subsidy", name="节能家电补贴", percent_bp=1000,
        face_value_fen=500_00, threshold_fen=0, categories=["家电家居"], districts=[],
        merchant_ids=[m.id for m, _ in shops], quantity=20,
        plan_override_reason="政策未定节能家电补贴总额，按财政批复安排",
    )
    for i, (_, cashier) in enumerate(shops, start=1):
        redeem(claim_one(release, make_citizen(f"{i:x}")).code, i * 100_00, cashier)
    undone = redeem(claim_one(release, make_citizen("r")).code, 5_000_00, shops[-1][1]).redemption
    reverse(undone.id, reason="退货", cashier=shops[-1][1])
    db.session.commit()
    return world, campaign, shops


def test_pure_figures_by_hand():
    assert benefit.gini(range(1, 11)) == pytest.approx(0.3, abs=1e-15)  # 2·385 / (10·55) − 11/10
    assert benefit.gini([5, 5, 5]) == 0.0
    assert benefit.gini([0, 0, 0, 12]) == pytest.approx(0.75)  # one of four takes all: (n − 1) / n
    assert benefit.gini([]) is None and benefit.gini([0, 0]) is None
    assert [benefit.top_count(n, 0.01) for n in (0, 1, 10, 100, 101, 250)] == [0, 1, 1, 1, 2, 3]
    assert [benefit.top_count(n, 0.10) for n in (1, 10, 11, 250)] == [1, 1, 2, 25]
    assert benefit.lorenz([3, 1, 2]) == [(0.0, 0.0), (1 / 3, 1 / 6), (2 / 3, 0.5), (1.0, 1.0)]
    curve = benefit.lorenz(list(range(1, 10_001)))
    assert len(curve) == benefit.CURVE_POINTS + 1 and curve[0] == (0.0, 0.0) and curve[-1] == (1.0, 1.0)


def test_shares_gini_sizes_and_districts_to_the_fen(db, ten):
    _, campaign, _ = ten
    b = benefit.benefit(LeverageFilter(campaign_id=campaign.id))
    assert (b.subsidy.total_fen, b.subsidy.merchants) == (550_00, 10)
    assert b.subsidy.top == [(0.01, 1, 100_00), (0.10, 1, 100_00)]
    assert b.subsidy.share(100_00) == pytest.approx(10 / 55)
    assert b.subsidy.gini == pytest.approx(0.3) and b.driven.gini == pytest.approx(0.3)
    assert b.driven.total_fen == 5_500_00 and b.driven.top[1] == (0.10, 1, 1_000_00)
    # the same definition as the leverage page: the totals are its subsidy paid and driven consumption
    f = headline(LeverageFilter(campaign_id=campaign.id))
    assert (b.subsidy.total_fen, b.driven.total_fen) == (f.subsidy_paid_fen, f.driven_fen)

    sizes = {g.label: (g.merchants, g.subsidy_fen, g.driven_fen) for g in b.by_size}
    assert sizes == {"微型": (4, 100_00, 1_000_00), "小型": (4, 260_00, 2_600_00), "中型": (0, 0, 0),
                     "大型": (2, 190_00, 1_900_00)}
    districts = {g.label: g for g in b.by_district}
    assert (districts["海州区"].merchants, districts["海州区"].subsidy_fen) == (5, 150_00)
    assert (districts["东海县"].merchants, districts["东海县"].subsidy_fen) == (5, 400_00)
    assert districts["东海县"].driven_fen == 4_000_00 and districts["灌南县"].subsidy_fen == 0
    assert b.subsidy_share(districts["东海县"]) == pytest.approx(40 / 55)


def test_a_reversed_redemption_counts_nowhere(db, ten):
    _, campaign, shops = ten
    b = benefit.benefit(LeverageFilter(campaign_id=campaign.id))
    # shop 10's reversed 5,000-yuan order (500 yuan of subsidy) would have been the top 10 % alone
    assert b.subsidy.top[1][2] == 100_00 and b.subsidy.total_fen == 550_00
    assert {g.label: g.subsidy_fen for g in b.by_size}["大型"] == 190_00


def test_an_empty_selection_has_no_figures(db, ten):
    b = benefit.benefit(LeverageFilter(campaign_id=999_999))
    assert b.subsidy.total_fen == 0 and b.subsidy.gini is None and b.subsidy.curve == []
    assert b.subsidy.top == [(0.01, 0, 0), (0.10, 0, 0)]


def test_the_page_per_resident_and_a_district_without_population(client, db, ten):
    world, campaign, _ = ten
    benefit.set_population(benefit.PopulationInput("海州区", 2025, 1_000, "测试来源"), world.admin)
    db.session.commit()
    login(client, "auditor")
    response = client.get(f"/analytics/benefit?campaign={campaign.id}")
    assert response.status_code == 200
    page = text_of(response)
    assert "受益结构" in page and "18.2%" in page and "0.300" in page  # top 10 %: 100 of 550 yuan
    assert "<svg" in page and "完全平均" in page
    # 海州区: 150 yuan over 1,000 residents, 1,500 yuan per 10,000; 东海县 has no population: — and the note
    assert re.search(r"海州区</td>.*?<td class=\"num\">1,500\.00</td>", page)
    assert re.search(r"东海县</td>(?:(?!</tr>).)*未录入", page)
    assert "尚未录入常住人口，无法按人口折算" in page
    assert "不是券“带来”的增量" in page and "累退" in page


def test_linked_from_the_leverage_page_and_the_nav(client, db, ten):
    login(client, "finance")
    page = client.get("/analytics/leverage").get_data(as_text=True)
    assert page.count('href="/analytics/benefit') >= 2


@pytest.mark.parametrize("username", ["manager", "cashier"])
def test_merchant_side_users_may_not_see_it(client, db, ten, username):
    login(client, username)
    assert client.get("/analytics/benefit").status_code == 403
    assert client.post("/analytics/benefit/populations", data={"district": "海州区", "year": "2025",
                                                               "residents": "100", "source": "x"}).status_code == 403


def test_anonymous_is_sent_to_sign_in(client, db):
    response = client.get("/analytics/benefit")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("query, message", [
    ("from=2026-13-01", "开始日期格式应为 YYYY-MM-DD"),
    ("campaign=abc", "活动编号应为正整数"),
    ("from=2026-12-09&until=2026-12-01", "开始日期不能晚于结束日期"),
    ("until=99999-01-01", "结束日期格式应为 YYYY-MM-DD"),
])
def test_bad_filters_answer_a_message_not_a_500(client, db, ten, query, message):
    login(client, "auditor")
    response = client.get(f"/analytics/benefit?{query}")
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)


def population_rows(db) -> list[tuple]:
    return list(db.session.execute(select(DistrictPopulation.district, DistrictPopulation.year,
                                          DistrictPopulation.residents, DistrictPopulation.source)))


def test_a_bureau_maker_records_and_corrects_a_population(client, db, ten):
    login(client, "maker")
    form = {"district": "东海县", "year": "2025", "residents": "960,000", "source": "2025 年统计年鉴"}
    response = client.post("/analytics/benefit/populations", data=form)
    assert response.status_code == 303
    response = client.post("/analytics/benefit/populations", data={**form, "residents": "961000"})
    assert response.status_code == 303
    assert population_rows(db) == [("东海县", 2025, 961_000, "2025 年统计年鉴")]
    actions = db.session.scalars(select(AuditEntry.action).where(AuditEntry.action == "district_population.set")).all()
    assert len(actions) == 2
    login(client, "admin")
    assert client.post("/analytics/benefit/populations", data={**form, "year": "2024"}).status_code == 303
    assert len(population_rows(db)) == 2


@pytest.mark.parametrize("field, value, message", [
    ("district", "火星区", "请选择区县"),
    ("year", "二〇二五", "年份应为"),
    ("year", "1800", "年份应为"),
    ("residents", "-5", "常住人口应为正整数"),
    ("residents", "0", "常住人口应为正整数"),
    ("residents", "12.5万", "常住人口应为正整数"),
    ("residents", "9" * 30, "常住人口应为正整数"),
    ("source", "   ", "请填写数据来源"),
    ("source", "长" * 201, "数据来源不能超过 200 个字"),
])
def test_bad_population_input_is_refused_and_changes_nothing(client, db, ten, field, value, message):
    login(client, "admin")
    form = {"district": "东海县", "year": "2025", "residents": "960000", "source": "统计年鉴", field: value}
    before = db.session.scalar(select(func.count()).select_from(AuditEntry))
    response = client.post("/analytics/benefit/populations", data=form)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    db.session.rollback()
    assert population_rows(db) == []
    assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == before


def test_auditors_and_finance_read_but_do_not_edit(client, db, ten):
    for username in ("auditor", "finance"):
        login(client, username)
        page = client.get("/analytics/benefit").get_data(as_text=True)
        assert "受益结构" in page and "populations" not in page
        response = client.post("/analytics/benefit/populations", data={"district": "海州区", "year": "2025",
                                                                        "residents": "1", "source": "x"})
        assert response.status_code == 403
    assert population_rows(db) == []


def test_the_page_renders_with_the_demo_seed_and_labels_its_populations(client, db):
    from seed.demo import load_demo
    from voucher.cli import SEED_DIR

    load_demo(SEED_DIR / "demo.toml")
    db.session.commit()
    sources = {source for _, _, _, source in population_rows(db)}
    assert sources and all("示例数据" in source for source in sources)
    login(client, "auditor", "demo1234")
    response = client.get("/analytics/benefit")
    assert response.status_code == 200
    page = text_of(response)
    assert "示例数据" in page and "基尼系数" in page
    assert re.search(r"云台山景区</td>(?:(?!</tr>).)*未录入", page)  # left out of the demo on purpose


def test_at_city_scale_it_agrees_with_the_rolled_up_headline_and_a_hand_written_query(db):
    """The reference case (scale 0.001): the page's totals equal the leverage headline read from the rollup,
    and the Gini equals one computed from a plain GROUP BY merchant over the raw rows."""
    from tests.test_city_scale import load
    from voucher.analytics import rollup
    from voucher.merchants.models import Redemption

    load(db)
    assert rollup.built_through() is not None
    b = benefit.benefit()
    f = headline()
    assert (b.subsidy.total_fen, b.driven.total_fen) == (f.subsidy_paid_fen, f.driven_fen)
    per_merchant = db.session.execute(
        select(func.sum(Redemption.subsidy_fen)).where(Redemption.reversed_at.is_(None))
        .group_by(Redemption.merchant_id)).scalars().all()
    values = sorted(int(v) for v in per_merchant)
    n = len(values)
    expected = sum((2 * i - n - 1) * x for i, x in enumerate(values, start=1)) / (n * sum(values))
    assert b.subsidy.merchants == n == f.merchants
    assert b.subsidy.gini == pytest.approx(expected, rel=1e-12)
    assert b.subsidy.top[1][2] == sum(values[-benefit.top_count(n, 0.10):])
