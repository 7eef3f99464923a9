"""The dashboard as a reader sees it: the city's totals first, with units and distinct labels, equal to the
sum of the campaigns' rows; the campaigns in a table sorted on the server by a whitelisted column, paged."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from html.parser import HTMLParser

import pytest

from tests.factories import claim_one, make_campaign, make_citizen, make_world
from tests.test_access import login
from tests.test_instruments import merchant_with_cashier
from voucher.analytics import services
from voucher.analytics.leverage import LeverageFilter, headline
from voucher.campaigns import services as campaigns
from voucher.campaigns.services import SourceInput
from voucher.core.clock import local_today
from voucher.counter.redemption import redeem, reverse
from voucher.reports.budget import budget_execution

UNITS = ("元", "张", "笔", "倍", "%")
#: the table's figure columns, in order, after the campaign's name
COLUMNS = ("funded", "claimed", "issued", "redemptions", "redeemed", "subsidy", "driven", "leverage", "rate",
           "rate_money")


class Page(HTMLParser):
    """What a reader sees of the dashboard: the totals (label -> text), the table's header and rows."""

    def __init__(self, html: str):
        super().__init__()
        self.totals: dict[str, str] = {}
        self.header: list[tuple[str, dict]] = []  # (text, attributes of the th)
        self.rows: list[list[str]] = []
        self.footer: list[str] = []
        self._section: str | None = None
        self._cell: list[str] | None = None
        self._cell_attrs: dict = {}
        self._row: list[str] = []
        self._dt: str | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag in ("thead", "tbody", "tfoot"):
            self._section = tag
        elif tag == "tr":
            self._row = []
        elif tag in ("th", "td", "dt", "dd"):
            self._cell, self._cell_attrs = [], dict(attrs)

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self._cell is not None:
            text = " ".join("".join(self._cell).split())
            if self._section == "thead":
                self.header.append((text, self._cell_attrs))
            else:
                self._row.append(text)
            self._cell = None
        elif tag == "dt" and self._cell is not None:
            self._dt, self._cell = "".join(self._cell).strip(), None
        elif tag == "dd" and self._cell is not None and self._dt is not None:
            self.totals[self._dt] = " ".join("".join(self._cell).split())
            self._dt = self._cell = None
        elif tag == "tr" and self._section == "tbody":
            self.rows.append(self._row)
        elif tag == "tr" and self._section == "tfoot":
            self.footer = self._row
        elif tag in ("thead", "tbody", "tfoot"):
            self._section = None

    def names(self) -> list[str]:
        return [row[0].rsplit(" ", 1)[0] for row in self.rows]  # the name, without the status badge

    def column(self, key: str) -> list[str]:
        return [row[1 + COLUMNS.index(key)] for row in self.rows]


def number(text: str) -> Decimal | None:
    return None if text == "—" else Decimal(text.replace(",", ""))


@pytest.fixture
def city(db):
    """Three campaigns and a draft.

    A, 满100减20, one funder (1,000,000): four claimed; orders of 100 and 150 redeemed, one of 230 redeemed and
    reversed. B, co-funded 2:1 by the city and a cinema (750,000), 30 yuan without threshold: three claimed and
    redeemed on orders of 50, 20 (subsidy 20, under the face value) and 40. C waits for approval (600,000 in
    hand, nothing funded). The draft is not on the dashboard."""
    world = make_world()
    a, release_a = make_campaign(world, name="市区餐饮零售消费券", quantity=10)
    vouchers = [claim_one(release_a, make_citizen(tag)) for tag in "abcd"]
    redeem(vouchers[0].code, 100_00, world.cashier)
    redeem(vouchers[1].code, 150_00, world.cashier)
    undone = redeem(vouchers[2].code, 230_00, world.cashier).redemption
    reverse(undone.id, reason="顾客退单", cashier=world.cashier)
    b, release_b = make_campaign(
        world, name="观影消费券（政企合作）", measure_number=12, categories=[], districts=[],
        sources=[SourceInput("municipal_finance", "市财政", 500_000_00, share=2),
                 SourceInput("enterprise", "合作影院", 250_000_00, share=1)],
        face_value_fen=30_00, threshold_fen=0, quantity=5, plan_override_reason="测试：政企合作观影券",
    )
    for tag, order in zip("efg", (50_00, 20_00, 40_00)):
        redeem(claim_one(release_b, make_citizen(tag)).code, order, world.cashier)
    for name, submit in (("待审批的活动", True), ("草稿活动", False)):
        data = campaigns.CampaignInput(
            measure_id=a.measure_id, name=name, face_value_fen=10_00, threshold_fen=50_00, categories=["餐饮"],
            districts=["海州区"], valid_from=local_today(), valid_until=local_today() + timedelta(days=30),
            sources=[SourceInput("municipal_finance", "市财政", 600_000_00)],
        )
        campaign = campaigns.create_campaign(data, world.maker)
        if submit:
            campaigns.submit_for_approval(campaign, world.maker)
    db.session.commit()
    return world


def dashboard(client, query: str = "") -> Page:
    response = client.get(f"/dashboard{query}")
    assert response.status_code == 200, query
    return Page(response.get_data(as_text=True))


def test_the_city_comes_first_with_units_and_distinct_labels(client, city):
    login(client, "finance")
    page = dashboard(client)
    assert page.totals == {
        "到位预算": "1,750,000.00 元",  # A's 1,000,000 and both of B's funders; C is not funded yet
        "领取": "7 张",
        "发放面值": "170.00 元",  # 4 × 20 + 3 × 30
        "核销笔数": "5 笔",  # the reversed redemption is not counted
        "核销金额": "130.00 元",  # face value of the vouchers redeemed: 2 × 20 + 3 × 30
        "补贴支付": "120.00 元",  # 20 + 20, and 30 + 20 + 30 (the 20-yuan order took 20 of its 30)
        "拉动消费": "360.00 元",  # 100 + 150, and 50 + 20 + 40
        "杠杆率（按发放）": "2.12 倍",  # 360 / 170
        "核销率（按张数）": "71.4%",  # 5 of 7 claimed (the claim cohort, as the leverage page)
        "核销率（按金额）": "70.6%",  # 120 of 170 yuan of face value paid out
    }
    # every figure carries its unit, in the totals and in the table's headers; no two labels alike
    assert all(text.endswith(UNITS) for text in page.totals.values())
    headers = [text for text, _ in page.header]
    assert headers[0] == "活动" and all(h.rstrip(" ▲▼").endswith(tuple(f"（{u}）" for u in UNITS)) for h in headers[1:])
    assert len(set(page.totals)) == len(page.totals) and "已核销" not in page.totals
    assert "核销笔数（笔）" in headers[4] and "核销金额（元）" in headers[5]
    assert page.names() == ["市区餐饮零售消费券", "观影消费券（政企合作）", "待审批的活动"]  # the draft is not here


def test_the_totals_are_the_sum_of_the_rows_and_agree_with_the_ledger_and_leverage(client, city):
    login(client, "auditor")
    page = dashboard(client)
    assert len(page.rows) == 3 and page.footer[0] == "全市合计"
    for key in ("funded", "claimed", "issued", "redemptions", "redeemed", "subsidy", "driven"):
        column = [number(text) for text in page.column(key)]
        assert sum(column) == number(page.footer[1 + COLUMNS.index(key)]), key
    by_name = dict(zip(page.names(), page.rows))
    assert by_name["观影消费券（政企合作）"][1:] == ["750,000.00", "3", "90.00", "3", "90.00", "80.00", "110.00",
                                                 "1.22", "100.0", "88.9"]
    assert by_name["市区餐饮零售消费券"][1:] == ["1,000,000.00", "4", "80.00", "2", "40.00", "40.00", "250.00",
                                                "3.13", "50.0", "50.0"]
    assert by_name["待审批的活动"][1:] == ["0.00", "0", "0.00", "0", "0.00", "0.00", "0.00", "—", "—", "—"]
    # the ratios of the totals are the totals' own, not an average of the rows'
    assert page.footer[-3:] == ["2.12", "71.4", "70.6"]
    # the same money as the budget report's 已到位 and the leverage page's headline
    assert number(page.footer[1]) * 100 == budget_execution(local_today()).total.funded
    lev = headline()
    assert [number(page.footer[1 + COLUMNS.index(k)]) * 100 for k in ("issued", "subsidy", "driven")] == [
        lev.issued_fen, lev.subsidy_paid_fen, lev.driven_fen]


@pytest.mark.parametrize("key", ["name", *COLUMNS])
def test_each_whitelisted_column_sorts_both_ways_on_the_server(client, city, key):
    assert key in getattr(services, "SORT_KEYS", {})  # the whitelist is every column of the table
    login(client, "finance")
    for descending in (False, True):
        page = dashboard(client, f"?sort={'-' if descending else ''}{key}")
        (sorted_header,) = [(i, attrs) for i, (_, attrs) in enumerate(page.header) if "aria-sort" in attrs]
        assert sorted_header[0] == (["name", *COLUMNS].index(key))
        assert sorted_header[1]["aria-sort"] == ("descending" if descending else "ascending")
        values = page.names() if key == "name" else [number(v) for v in page.column(key)]
        known = [v for v in values if v is not None]
        assert known == sorted(known, reverse=descending), (key, descending, values)
        assert values[len(known):] == [None] * (len(values) - len(known))  # no figure: last either way
        assert len(set(values)) > 1  # the data can tell a sorted table from an unsorted one
    # the header links: a second click on the sorted column reverses it
    page_html = client.get(f"/dashboard?sort={key}").get_data(as_text=True)
    assert f'href="/dashboard?sort=-{key}"' in page_html


def test_orders_a_reader_can_check_by_hand(client, city):
    login(client, "finance")
    a, b, c = "市区餐饮零售消费券", "观影消费券（政企合作）", "待审批的活动"
    assert dashboard(client).names() == [a, b, c]  # the default: most money first
    assert dashboard(client, "?sort=driven").names() == [c, b, a]
    assert dashboard(client, "?sort=-leverage").names() == [a, b, c]
    assert dashboard(client, "?sort=leverage").names() == [b, a, c]  # C has no leverage: last
    assert dashboard(client, "?sort=-rate").names() == [b, a, c]
    assert dashboard(client, "?sort=rate_money").names() == [a, b, c]
    assert dashboard(client, "?sort=-redemptions").names() == [b, a, c]


@pytest.mark.parametrize("query", ["?sort=bogus", "?sort=-", "?sort=campaign.id", "?sort=--funded",
                                   "?sort=funded%3Bdrop", "?sort=", "?page=abc", "?page=0", "?page=999"])
def test_an_unknown_sort_or_page_is_ignored(client, city, query):
    login(client, "finance")
    page = dashboard(client, query)
    assert page.names() == dashboard(client).names()
    (attrs,) = [attrs for _, attrs in page.header if "aria-sort" in attrs]
    assert attrs["aria-sort"] == "descending"  # the default order, by 到位预算


def test_a_long_list_is_paged_and_the_totals_stay_the_citys(client, city, monkeypatch):
    monkeypatch.setattr(services, "PER_PAGE", 2)
    login(client, "finance")
    first = dashboard(client, "?sort=driven")
    html = client.get("/dashboard?sort=driven&page=2").get_data(as_text=True)
    second = Page(html)
    assert len(first.names()) == 2 and len(second.names()) == 1
    assert first.names() + second.names() == ["待审批的活动", "观影消费券（政企合作）", "市区餐饮零售消费券"]
    assert first.footer == second.footer and first.footer[0] == "全市合计（全部 3 个活动）"
    assert first.totals == second.totals and first.totals["到位预算"] == "1,750,000.00 元"
    assert "第 2 / 2 页" in html and 'href="/dashboard?sort=driven&amp;page=1"' in html
    assert dashboard(client, "?sort=driven&page=7").names() == second.names()  # past the end: the last page


def test_the_redemption_rate_is_the_leverage_pages_claim_cohort_in_vouchers_and_money(client, db):
    """A 10 % purchase subsidy capped at 500 yuan (its face value is the cap): 16 claimed, one redeemed on an order
    of 3,000 (300 yuan paid), one redeemed and reversed. The old figure, live redemptions over vouchers claimed
    rounded half up, said 6.3 % and nothing in money; the leverage page says 6.2 % by count, 3.8 % in money (300 of
    8,000 yuan), and so must the dashboard, for the campaign and for the city."""
    world = make_world()
    shop, cashier = merchant_with_cashier(db, "苏宁易购连云港店", "家电家居", "海州区", 2, "cashier_listed")
    appliance, release = make_campaign(
        world, measure_number=6, instrument="purchase_subsidy", name="绿色节能家电补贴", percent_bp=1000,
        face_value_fen=500_00, threshold_fen=0, categories=["家电家居"], districts=[], merchant_ids=[shop.id],
        quantity=16, plan_override_reason="政策未定节能家电补贴总额，按财政批复安排",
    )
    vouchers = [claim_one(release, make_citizen(f"{i:02d}")) for i in range(16)]
    redeem(vouchers[0].code, 3_000_00, cashier)
    undone = redeem(vouchers[1].code, 2_000_00, cashier).redemption
    reverse(undone.id, reason="顾客退货", cashier=cashier)
    db.session.commit()

    login(client, "finance")
    page = dashboard(client)
    (row,) = page.rows
    by_count, in_money = row[1 + COLUMNS.index("rate")], row[1 + COLUMNS.index("rate_money")]
    assert (by_count, in_money) == ("6.2", "3.8")
    assert page.totals["核销率（按张数）"] == "6.2%" and page.totals["核销率（按金额）"] == "3.8%"
    assert page.footer[-2:] == ["6.2", "3.8"]
    # the leverage page for the same campaign shows the same two figures, by the same definition
    lev = headline(LeverageFilter(campaign_id=appliance.id))
    assert (lev.cohort.claimed, lev.cohort.redeemed, lev.cohort.face_fen, lev.cohort.subsidy_fen) == (
        16, 1, 8_000_00, 300_00)
    assert by_count == "%.1f" % (lev.redemption_rate * 100) and in_money == "%.1f" % (lev.redemption_rate_money * 100)
    leverage_html = client.get(f"/analytics/leverage?campaign={appliance.id}").get_data(as_text=True)
    assert f"{by_count}% / " in leverage_html and f"{in_money}% / " in leverage_html


def test_a_rate_never_exceeds_a_hundred_percent(client, city):
    login(client, "finance")
    page = dashboard(client)
    for key in ("rate", "rate_money"):
        values = [number(v) for v in page.column(key) + [page.footer[1 + COLUMNS.index(key)]]]
        assert all(v is None or 0 <= v <= 100 for v in values), key


def test_the_whole_cohort_without_a_join_equals_the_cohort_query(db, city):
    """With no date range the cohort is read from two aggregates instead of the join (leverage._whole_cohorts):
    the same figures per campaign, a reversed redemption, expired vouchers and open ones included."""
    from sqlalchemy import func, select

    from voucher.analytics import leverage
    from voucher.campaigns.models import Campaign
    from voucher.core.clock import utcnow
    from voucher.vouchers.expiry import expire_vouchers
    from voucher.vouchers.models import Voucher

    for expired in (False, True):
        if expired:
            expire_vouchers(utcnow() + timedelta(days=400))  # A's open vouchers, the reversed one's too
            db.session.commit()
        query = (leverage._cohort_query(leverage.LeverageFilter()).add_columns(Voucher.campaign_id)
                 .group_by(Voucher.campaign_id))
        joined = {campaign_id: leverage.Cohort(*(int(v) for v in values))
                  for *values, campaign_id in db.session.execute(query)}
        ids = list(db.session.scalars(select(Campaign.id)))
        assert leverage.cohorts_by_campaign(ids) == joined and len(joined) == 2
        assert sum(c.expired for c in joined.values()) == (2 if expired else 0)
        for campaign_id in ids:
            one = leverage.LeverageFilter(campaign_id=campaign_id)
            (values,) = db.session.execute(leverage._cohort_query(one)).all()
            assert leverage._cohorts(one, None)[""] == leverage.Cohort(*(int(v) for v in values)), campaign_id
        assert db.session.scalar(select(func.count()).select_from(Voucher).where(Voucher.claimed_at.is_not(None))) \
            == headline().cohort.claimed == 7
