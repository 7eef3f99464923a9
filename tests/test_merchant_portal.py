"""The merchant portal: a manager's and a cashier's own redemptions (filters, totals, paging, export), the
manager's settlement statement (redeemed -> settled -> paid, with the payout file and the bank's reference),
the manager's reset of a cashier's password, and the copy button of a new terminal token."""
from __future__ import annotations

import io
import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from openpyxl import load_workbook
from sqlalchemy import insert, select

from tests.conftest import ORDINARY_NOW, pin_ordinary_time
from tests.factories import PASSWORD, claim_one, make_campaign, make_citizen, make_world, pay_through_bank
from tests.test_staff_sessions import open_browser
from voucher.accounts.models import User
from voucher.accounts.services import create_user
from voucher.campaigns import services as campaigns
from voucher.core import uscc
from voucher.core.audit import AuditEntry
from voucher.core.clock import local_day_start_utc
from voucher.core.permissions import Role
from voucher.counter.redemption import redeem, reverse
from voucher.merchants.models import Merchant, Redemption, Store
from voucher.reconciliation import payments
from voucher.settlement import batches as settlement
from voucher.settlement.models import PayoutFile, SettlementBatch
from voucher.vouchers.codes import display
from voucher.vouchers.models import Voucher

pytestmark = pin_ordinary_time
TODAY = ORDINARY_NOW.date()
YESTERDAY = TODAY - timedelta(days=1)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def login(client, username, password=PASSWORD):
    client.post("/logout")
    response = client.post("/login", data={"username": username, "password": password})
    assert response.status_code == 302, username
    return response


def text(response) -> str:
    return response.get_data(as_text=True)


class Shop:
    """make_world's 老味道 (merchant X) with a second store and its cashier, and another eligible merchant Y
    with its manager and cashier."""

    def __init__(self, db):
        self.world = world = make_world()
        self.x = world.merchant
        self.store_a = self.x.stores[0]
        self.store_b = Store(merchant_id=self.x.id, name="老味道（二店）", district="海州区")
        first17 = "91320703MA5RET001"
        self.y = Merchant(name="连云港百货", uscc=first17 + uscc.check_char(first17), category="零售",
                          status="approved")
        self.y.stores.append(Store(name="百货门店", district="连云区"))
        db.session.add_all([self.store_b, self.y])
        db.session.flush()
        self.store_y = self.y.stores[0]
        self.cashier_a = world.cashier
        self.cashier_b = create_user("cashier_b", PASSWORD, Role.CASHIER, merchant_id=self.x.id,
                                     store_id=self.store_b.id)
        self.cashier_y = create_user("cashier_y", PASSWORD, Role.CASHIER, merchant_id=self.y.id,
                                     store_id=self.store_y.id)
        self.manager_y = create_user("manager_y", PASSWORD, Role.MERCHANT_MANAGER, merchant_id=self.y.id)
        db.session.commit()


@pytest.fixture
def shop(db):
    return Shop(db)


def _redeem(db, release, cashier, amount_fen, tag, now=None) -> Voucher:
    voucher = claim_one(release, make_citizen(tag))
    redeem(voucher.code, amount_fen, cashier, now=now)
    db.session.commit()
    return voucher


# 1. Own redemptions: who sees what ---------------------------------------------------------------------


def test_a_manager_sees_every_store_of_their_merchant_and_a_cashier_only_their_own(client, db, shop):
    campaign, release = make_campaign(shop.world, quantity=10)
    in_a = _redeem(db, release, shop.cashier_a, 150_00, "a")
    in_b = _redeem(db, release, shop.cashier_b, 200_00, "b")
    in_y = _redeem(db, release, shop.cashier_y, 234_00, "c")

    login(client, "manager")
    page = text(client.get("/merchant/redemptions"))
    assert display(in_a.code) in page and display(in_b.code) in page and display(in_y.code) not in page
    assert "234.00" not in page and "连云港百货" not in page
    assert campaign.name in page  # the campaign column
    # The totals: 2 redemptions, 350 ordered, 40 of subsidy, 310 paid by the citizens.
    assert "2 笔" in page and "350.00" in page and "40.00" in page and "310.00" in page
    one_store = text(client.get(f"/merchant/redemptions?store={shop.store_b.id}"))
    assert display(in_b.code) in one_store and display(in_a.code) not in one_store
    # Another merchant's store: refused, and nothing of it shown; the same for the export.
    refused = client.get(f"/merchant/redemptions?store={shop.store_y.id}")
    assert refused.status_code == 403 and display(in_y.code) not in text(refused)
    assert client.get(f"/merchant/redemptions.xlsx?store={shop.store_y.id}").status_code == 403
    assert client.get("/merchant/redemptions?store=999999").status_code == 403

    # A cashier of store A sees store A only, on the page and in the export.
    login(client, "cashier")
    page = text(client.get("/merchant/redemptions"))
    assert display(in_a.code) in page and display(in_b.code) not in page and display(in_y.code) not in page
    assert "200.00" not in page
    assert client.get(f"/merchant/redemptions?store={shop.store_b.id}").status_code == 403
    assert client.get(f"/merchant/redemptions.xlsx?store={shop.store_b.id}").status_code == 403
    sheet = load_workbook(io.BytesIO(client.get("/merchant/redemptions.xlsx").data))["核销记录"]
    ids = [row[0] for row in sheet.iter_rows(min_row=3, values_only=True) if isinstance(row[0], int)]
    assert ids == [db.session.scalar(select(Redemption.id).where(Redemption.voucher_id == in_a.id))]
    # Cashiers see no settlement statement.
    assert client.get("/merchant/statement").status_code == 403
    assert client.get("/merchant/statement.xlsx").status_code == 403

    # Merchant Y's manager sees Y's and nothing of X's.
    login(client, "manager_y")
    page = text(client.get("/merchant/redemptions"))
    assert display(in_y.code) in page and display(in_a.code) not in page and display(in_b.code) not in page
    assert client.get(f"/merchant/redemptions?store={shop.store_a.id}").status_code == 403

    # Bureau staff have the bureau's pages, not a merchant's portal.
    login(client, "finance")
    assert client.get("/merchant/redemptions").status_code == 403


def test_filters_by_date_campaign_and_status_and_totals_set_reversed_ones_apart(client, db, shop):
    first, release = make_campaign(shop.world, quantity=10, valid_from=TODAY - timedelta(days=5))
    second, other_release = make_campaign(shop.world, quantity=10, valid_from=TODAY - timedelta(days=5),
                                          name="第二期餐饮消费券")
    noon_yesterday = local_day_start_utc(YESTERDAY) + timedelta(hours=12)
    old = _redeem(db, release, shop.cashier_a, 120_00, "a", now=noon_yesterday)
    today = _redeem(db, release, shop.cashier_a, 150_00, "b")
    second_campaign = _redeem(db, other_release, shop.cashier_a, 300_00, "c")
    undone = _redeem(db, release, shop.cashier_a, 180_00, "d")
    undone_id = db.session.scalar(select(Redemption.id).where(Redemption.voucher_id == undone.id))
    reverse(undone_id, reason="收银误操作", cashier=shop.cashier_a)
    db.session.commit()

    login(client, "manager")
    everything = text(client.get("/merchant/redemptions"))
    assert "4 笔" in everything and "其中已撤销 1 笔" in everything and "已撤销" in everything
    assert first.name in everything and second.name in everything

    valid = text(client.get("/merchant/redemptions?status=valid"))
    assert display(undone.code) not in valid and "3 笔" in valid and "570.00" in valid  # 120 + 150 + 300
    reversed_only = text(client.get("/merchant/redemptions?status=reversed"))
    assert display(undone.code) in reversed_only and "1 笔" in reversed_only and "收银误操作" in reversed_only

    by_day = text(client.get(f"/merchant/redemptions?date_from={YESTERDAY}&date_until={YESTERDAY}"))
    assert display(old.code) in by_day and display(today.code) not in by_day and "1 笔" in by_day

    by_campaign = text(client.get(f"/merchant/redemptions?campaign={second.id}"))
    assert display(second_campaign.code) in by_campaign and display(today.code) not in by_campaign
    assert "300.00" in by_campaign and "1 笔" in by_campaign

    # Nothing settled yet: every live one is 待结算.
    assert display(today.code) in text(client.get("/merchant/redemptions?status=unsettled"))
    assert "没有符合条件的核销记录" in text(client.get("/merchant/redemptions?status=paid"))

    bad = client.get(f"/merchant/redemptions?date_from={TODAY}&date_until={YESTERDAY}")
    assert bad.status_code == 422 and "开始日期不能晚于结束日期" in text(bad)
    assert client.get("/merchant/redemptions?date_from=2027-02-30").status_code == 422
    assert client.get("/merchant/redemptions?status=bogus").status_code == 422
    assert client.get("/merchant/redemptions.xlsx?date_from=x").status_code == 422


def test_a_bad_date_range_keeps_the_other_filters_and_says_why(client, db, shop):
    first, release = make_campaign(shop.world, quantity=10, valid_from=TODAY - timedelta(days=5))
    second, other_release = make_campaign(shop.world, quantity=10, valid_from=TODAY - timedelta(days=5),
                                          name="第二期餐饮消费券")
    mine = _redeem(db, other_release, shop.cashier_a, 300_00, "a")
    elsewhere = _redeem(db, other_release, shop.cashier_b, 110_00, "b")
    other_campaign = _redeem(db, release, shop.cashier_a, 150_00, "c")
    undone = _redeem(db, other_release, shop.cashier_a, 180_00, "d")
    reverse(db.session.scalar(select(Redemption.id).where(Redemption.voucher_id == undone.id)), reason="收银误操作",
            cashier=shop.cashier_a)
    db.session.commit()
    login(client, "manager")
    chosen = f"store={shop.store_a.id}&campaign={second.id}&status=valid"
    for dates, reason in ((f"date_from={TODAY}&date_until={YESTERDAY}", "开始日期不能晚于结束日期"),
                          (f"date_from=2027-02-30&date_until={TODAY}", "开始日期格式应为 YYYY-MM-DD")):
        bad = client.get(f"/merchant/redemptions?{dates}&{chosen}")
        html = text(bad)
        assert bad.status_code == 422, dates
        assert reason in html
        # the store, campaign and status chosen are still selected, and still applied
        assert f'<option value="{shop.store_a.id}" selected>' in html
        assert f'<option value="{second.id}" selected>' in html and '<option value="valid" selected>' in html
        assert display(mine.code) in html and "1 笔" in html and "300.00" in html
        for hidden in (elsewhere, other_campaign, undone):
            assert display(hidden.code) not in html
        # the dates typed are shown back to be corrected; the export and pager links carry the kept filters
        assert f'value="{YESTERDAY}"' in html or f'value="{TODAY}"' in html
        assert f"campaign={second.id}" in html and "status=valid" in html
    # a bad filter of another kind keeps the dates
    bad_status = text(client.get(f"/merchant/redemptions?date_from={YESTERDAY}&date_until={YESTERDAY}&status=bogus"))
    assert "状态不正确" in bad_status and f'value="{YESTERDAY}"' in bad_status and "0 笔" in bad_status


# 1. Paging and export over thousands of rows -----------------------------------------------------------

ROWS = 3_001
OTHER_ROWS = 40


def _bulk(db, shop, release, count: int, *, cashier, store, merchant, start_index: int = 0) -> list[dict]:
    """`count` redemptions written in one INSERT, one a minute back from yesterday noon, of the release's
    minted vouchers: the listing reads rows, not the ledger."""
    vouchers = db.session.scalars(select(Voucher.id).where(Voucher.release_id == release.id)
                                  .order_by(Voucher.id).offset(start_index).limit(count)).all()
    noon = local_day_start_utc(YESTERDAY) + timedelta(hours=12)
    rows = []
    for i, voucher_id in enumerate(vouchers):
        rows.append(dict(voucher_id=voucher_id, campaign_id=release.campaign_id, merchant_id=merchant.id,
                         store_id=store.id, cashier_id=cashier.id, order_amount_fen=100_00 + i,
                         subsidy_fen=20_00, created_at=noon - timedelta(minutes=i), idempotency_key=None))
    db.session.execute(insert(Redemption), rows)
    db.session.commit()
    return rows


def test_thousands_of_redemptions_page_by_50_with_totals_of_all_and_export_whole(client, db, shop):
    _, release = make_campaign(shop.world, quantity=ROWS + OTHER_ROWS, valid_from=TODAY - timedelta(days=40))
    rows = _bulk(db, shop, release, ROWS, cashier=shop.cashier_a, store=shop.store_a, merchant=shop.x)
    _bulk(db, shop, release, OTHER_ROWS, cashier=shop.cashier_y, store=shop.store_y, merchant=shop.y,
          start_index=ROWS)
    # One row's typed text would be a formula in a spreadsheet; the export must make it inert.
    formula = db.session.scalar(select(Redemption).order_by(Redemption.id).limit(1))
    formula.reversed_at, formula.reversal_reason = formula.created_at + timedelta(minutes=5), "=HYPERLINK(\"x\")"
    db.session.commit()
    order_total = sum(r["order_amount_fen"] for r in rows)

    login(client, "manager")
    first = text(client.get("/merchant/redemptions"))
    pages = -(-ROWS // 50)
    assert "共 3,001 条" in first and "第 1–50 条" in first and f"第 1 / {pages} 页" in first
    assert first.count('data-label="时间"') == 50
    assert "3,001 笔" in first and f"{order_total // 100:,}.{order_total % 100:02d}" in first
    assert "60,020.00" in first  # 3,001 x 20 yuan of subsidy: the whole set, not the page
    assert "其中已撤销 1 笔" in first
    last = text(client.get(f"/merchant/redemptions?page={pages}"))
    assert f"第 {pages} / {pages} 页" in last and "第 3,001–3,001 条" in last
    assert last.count('data-label="时间"') == 1 and "3,001 笔" in last
    # Past the end: the last page, not an empty one nor an error.
    assert f"第 {pages} / {pages} 页" in text(client.get("/merchant/redemptions?page=9999"))
    assert client.get("/merchant/redemptions?page=abc").status_code == 422
    # The pager keeps the filter.
    filtered = text(client.get("/merchant/redemptions?status=valid"))
    assert "3,000 笔" in filtered and "page=2" in filtered and "status=valid" in filtered

    response = client.get("/merchant/redemptions.xlsx")
    assert response.status_code == 200 and response.mimetype == XLSX
    assert "attachment" in response.headers["Content-Disposition"]
    book = load_workbook(io.BytesIO(response.data))
    sheet = book["核销记录"]
    assert "老味道" in sheet["A1"].value
    header = [c.value for c in sheet[2]]
    assert header == ["核销编号", "核销时间", "门店", "活动", "券码（后四位）", "订单金额（元）", "优惠补贴（元）", "顾客实付（元）",
                      "操作员", "状态", "撤销原因"]
    data = [r for r in sheet.iter_rows(min_row=3, values_only=True) if isinstance(r[0], int)]
    assert len(data) == ROWS  # every row of the filtered set, not a page and not a silent cap
    order_col, subsidy_col = header.index("订单金额（元）"), header.index("优惠补贴（元）")
    assert sum(r[order_col] for r in data) * 100 == order_total
    total_row = next(r for r in sheet.iter_rows(min_row=3, values_only=True) if r[0] == "合计")
    assert total_row[order_col] * 100 == order_total and total_row[subsidy_col] == 60_020
    assert sheet.cell(3, order_col + 1).number_format == "#,##0.00"
    # No citizen data, and codes only by their last four characters.
    codes = {r[header.index("券码（后四位）")] for r in data}
    assert all(re.fullmatch(r"\*\*\*\*-\*\*\*[0-9A-Z]-[0-9A-Z]{3}", c) for c in codes)
    full_codes = set(db.session.scalars(select(Voucher.code)))
    flat = "".join(str(v) for r in sheet.iter_rows(values_only=True) for v in r if v is not None)
    assert not any(code in flat for code in full_codes)
    assert "'=HYPERLINK(\"x\")" in {r[header.index("撤销原因")] for r in data}
    # Y's rows are nowhere.
    assert "百货门店" not in flat

    # The export of a filtered set is that set.
    one_day = load_workbook(io.BytesIO(client.get(
        f"/merchant/redemptions.xlsx?date_from={YESTERDAY}&date_until={YESTERDAY}&status=reversed").data))["核销记录"]
    assert len([r for r in one_day.iter_rows(min_row=3, values_only=True) if isinstance(r[0], int)]) == 1


def test_an_export_beyond_the_limit_is_refused_not_cut_short(client, db, shop, monkeypatch):
    _, release = make_campaign(shop.world, quantity=30, valid_from=TODAY - timedelta(days=5))
    _bulk(db, shop, release, 30, cashier=shop.cashier_a, store=shop.store_a, merchant=shop.x)
    monkeypatch.setattr("voucher.reports.merchant_redemptions.EXPORT_LIMIT", 20)
    login(client, "manager")
    refused = client.get("/merchant/redemptions.xlsx")
    assert refused.status_code == 422 and "超过单次导出上限" in text(refused)
    assert client.get(f"/merchant/redemptions.xlsx?store={shop.store_a.id}&status=reversed").status_code == 200


# 2. The settlement statement -----------------------------------------------------------------------------


def test_the_statement_follows_redeemed_settled_and_paid_with_the_banks_reference(client, db, shop):
    world = shop.world
    finance2 = create_user("finance2", PASSWORD, Role.FINANCE)
    db.session.commit()
    campaign, release = make_campaign(
        world, quantity=10, valid_from=TODAY - timedelta(days=5),
        sources=[campaigns.SourceInput("municipal_finance", "市财政", 2_000_00, share=2),
                 campaigns.SourceInput("enterprise", "合作银行", 1_000_00, share=1)])
    noon = local_day_start_utc(YESTERDAY) + timedelta(hours=12)
    _redeem(db, release, shop.cashier_a, 150_00, "a", now=noon)  # 20 yuan: 13.33 + 6.67 (or as the ledger splits)
    _redeem(db, release, shop.cashier_b, 150_00, "b", now=noon + timedelta(minutes=5))
    _redeem(db, release, shop.cashier_y, 150_00, "c", now=noon)  # merchant Y
    _redeem(db, release, shop.cashier_a, 200_00, "d")  # today: not settleable yet
    settlement.build_batches(YESTERDAY, world.finance)
    db.session.commit()
    mine = {b.funding_source.name: b for b in db.session.scalars(
        select(SettlementBatch).where(SettlementBatch.merchant_id == shop.x.id))}
    assert set(mine) == {"市财政", "合作银行"} and sum(b.amount_fen for b in mine.values()) == 40_00

    login(client, "manager")
    before = text(client.get("/merchant/statement"))
    assert mine["市财政"].reference in before and "待支付" in before and "尚未结算" in before

    # The municipal batch is paid through the bank (a payout file, a statement line, confirmed); the
    # bank's batch by an override two officers agree.
    pay_through_bank([mine["市财政"]], world.finance)
    db.session.commit()
    payments.request_override(mine["合作银行"].id, "银行回单 HD-0001，已电话核实", world.finance)
    db.session.commit()
    payments.confirm_paid(mine["合作银行"].id, finance2)
    db.session.commit()
    number = db.session.scalar(select(PayoutFile.number))
    serial = f"T{mine['市财政'].id:08d}"  # factories.bank_statement's serial

    page = text(client.get("/merchant/statement"))
    assert number in page and serial in page and "例外确认" in page and "已支付" in page
    assert campaign.name in page and "市财政" in page and "合作银行" in page
    # 60 yuan redeemed (3 x 20), 40 settled and paid, 20 (today's) waiting.
    assert "60.00" in page and "40.00" in page and "20.00" in page
    assert "连云港百货" not in page and "百货门店" not in page
    y_batch = db.session.scalar(select(SettlementBatch.reference).where(SettlementBatch.merchant_id == shop.y.id))
    assert y_batch not in page

    response = client.get("/merchant/statement.xlsx")
    assert response.status_code == 200 and response.mimetype == XLSX
    book = load_workbook(io.BytesIO(response.data))
    assert book.sheetnames == ["按日按活动", "结算批次"]
    daily = book["按日按活动"]
    header = [c.value for c in daily[2]]
    rows = [dict(zip(header, r)) for r in daily.iter_rows(min_row=3, values_only=True)]
    total = next(r for r in rows if r["业务日期"] == "合计")
    assert total["核销笔数"] == 3 and total["核销补贴（元）"] == 60 and total["已支付（元）"] == 40
    assert total["待结算（元）"] == 20
    yesterday = {r["出资方"]: r for r in rows if r["业务日期"] == f"{YESTERDAY:%Y-%m-%d}"}
    assert yesterday["市财政"]["银行流水号"] == serial and yesterday["市财政"]["付款文件号"] == number
    assert yesterday["合作银行"]["银行流水号"] == "例外确认"
    assert yesterday["市财政"]["已支付（元）"] * 100 == mine["市财政"].amount_fen
    assert daily.cell(3, header.index("核销补贴（元）") + 1).number_format == "#,##0.00"
    batch_rows = list(book["结算批次"].iter_rows(min_row=2, values_only=True))
    assert {r[0] for r in batch_rows} == {b.reference for b in mine.values()}

    # The period filter: today alone has only the unsettled redemption.
    today_only = text(client.get(f"/merchant/statement?date_from={TODAY}&date_until={TODAY}"))
    assert "尚未结算" in today_only and serial not in today_only
    assert client.get("/merchant/statement?date_from=2026-01-01&date_until=2027-03-17").status_code == 422

    # Merchant Y's manager sees Y's batch, none of X's.
    login(client, "manager_y")
    theirs = text(client.get("/merchant/statement"))
    assert y_batch in theirs and mine["市财政"].reference not in theirs and serial not in theirs
    login(client, "finance")
    assert client.get("/merchant/statement").status_code == 403


def test_one_mistyped_statement_field_is_said_and_the_others_stay(client, db, shop):
    """A mistyped field used to throw the whole filter away (the default 30 days, all campaigns): now only that
    field falls back, the page says why (422), and what else the manager chose stays on the page."""
    campaign, release = make_campaign(shop.world, quantity=2, valid_from=TODAY - timedelta(days=10))
    _redeem(db, release, shop.cashier_a, 150_00, "a")
    login(client, "manager")
    week_ago = TODAY - timedelta(days=7)

    page = client.get(f"/merchant/statement?date_from={week_ago}&date_until={YESTERDAY}&campaign=abc")
    assert page.status_code == 422 and "活动不正确" in text(page)
    assert f"{week_ago} 至 {YESTERDAY}" in text(page)  # the period stays

    page = client.get(f"/merchant/statement?date_from=2026-02-30&date_until={YESTERDAY}&campaign={campaign.id}")
    assert page.status_code == 422 and "开始日期格式应为 YYYY-MM-DD" in text(page)
    assert f"{YESTERDAY - timedelta(days=29)} 至 {YESTERDAY}" in text(page)  # the end stays; the start its default
    assert f'value="{campaign.id}" selected' in text(page)  # and the campaign

    page = client.get(f"/merchant/statement?date_from=2025-01-01&date_until={TODAY}&campaign={campaign.id}")
    assert page.status_code == 422 and "最长 366 天" in text(page)
    assert f"{TODAY - timedelta(days=365)} 至 {TODAY}" in text(page) and f'value="{campaign.id}" selected' in text(page)

    page = client.get(f"/merchant/statement?date_from={TODAY}&date_until={YESTERDAY}&campaign={campaign.id}")
    assert page.status_code == 422 and "开始日期不能晚于结束日期" in text(page)
    assert f'value="{campaign.id}" selected' in text(page)


# 3. A manager resets a cashier's password --------------------------------------------------------------


def test_a_manager_resets_their_cashiers_password_shown_once_and_every_session_ends(app, db, shop):
    manager, cashier = open_browser(app), open_browser(app)
    login(cashier, "cashier")
    assert cashier.get("/counter").status_code == 200
    login(manager, "manager")
    staff = text(manager.get("/merchant/staff"))
    assert f"/merchant/cashiers/{shop.cashier_a.id}/reset-password" in staff and "data-confirm" in staff
    assert "confirm.js" in staff

    response = manager.post(f"/merchant/cashiers/{shop.cashier_a.id}/reset-password")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    temporary = re.search(r"<code>([a-z0-9-]{19})</code>", text(response)).group(1)
    assert "返回收银员与终端" in text(response)
    # The cashier's session ended; the old password is gone; the temporary one leads to 修改密码 first.
    assert urlsplit(cashier.get("/counter").headers["Location"]).path == "/login"
    assert cashier.post("/login", data={"username": "cashier", "password": PASSWORD}).status_code == 401
    signed_in = cashier.post("/login", data={"username": "cashier", "password": temporary})
    assert urlsplit(signed_in.headers["Location"]).path == "/account/password"
    db.session.expire_all()
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "user.password_reset"))
    assert entry.object_id == shop.cashier_a.id and entry.actor_label == "manager"
    assert temporary not in str(entry.after)
    # The temporary password is not shown again.
    assert temporary not in text(manager.get("/merchant/staff"))


@pytest.mark.parametrize("target", ["cashier_y", "manager_y", "manager", "finance", "missing"])
def test_a_manager_cannot_reset_anyone_but_their_own_cashiers(app, db, shop, target):
    ids = {"cashier_y": shop.cashier_y.id, "manager_y": shop.manager_y.id, "manager": shop.world.manager.id,
           "finance": shop.world.finance.id, "missing": 999_999}
    manager = open_browser(app)
    login(manager, "manager")
    response = manager.post(f"/merchant/cashiers/{ids[target]}/reset-password")
    assert response.status_code == 403 and "只能管理本商户的收银员" in text(response)
    db.session.expire_all()
    if target != "missing":
        user = db.session.get(User, ids[target])
        assert user.check_password(PASSWORD) and not user.is_password_temporary
    assert db.session.scalar(select(AuditEntry.id).where(AuditEntry.action == "user.password_reset")) is None


@pytest.mark.parametrize("username", ["cashier", "finance", "admin"])
def test_only_a_merchant_manager_resets_there(app, db, shop, username):
    browser = open_browser(app)
    login(browser, username)
    assert browser.post(f"/merchant/cashiers/{shop.cashier_b.id}/reset-password").status_code == 403
    db.session.expire_all()
    assert db.session.get(User, shop.cashier_b.id).check_password(PASSWORD)


# 4. The new terminal token's copy button ---------------------------------------------------------------


def test_a_new_terminal_token_is_shown_once_with_a_copy_button(client, db, shop):
    login(client, "manager")
    response = client.post("/merchant/terminals", data={"store_id": shop.store_a.id, "label": "一号机"})
    page = text(response)
    token = re.search(r'<code class="wrap" id="new-token">(st_[A-Za-z0-9_-]{20,})</code>', page).group(1)
    assert response.headers["Cache-Control"] == "no-store"
    assert 'data-copy-from="new-token"' in page and "复制令牌" in page
    assert 'role="status" aria-live="polite"' in page and "copy.js" in page
    assert "<script>" not in page and " onclick=" not in page  # the CSP allows no inline script
    script = client.get("/static/copy.js")
    assert script.status_code == 200 and "已复制" in text(script)
    # Once: the next visit shows the terminal by its prefix only.
    again = text(client.get("/merchant/staff"))
    assert token not in again and "复制令牌" not in again
