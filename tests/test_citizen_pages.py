"""The citizen's phone pages under /c/ (连云港消费券): the header and sign-out, one voucher's QR code at a
time, what a used voucher was used for, the stores that take a voucher, resending the one-time code,
changing one's number, numbers typed with a Chinese IME, and the large-text mode (适老化)."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.conftest import make_app
from tests.factories import claim_one, make_campaign, make_world
from voucher.core.clock import to_local, utcnow
from voucher.core.db import db as _db
from voucher.counter.redemption import redeem, reverse
from voucher.merchants.models import Merchant, Store
from voucher.vouchers import citizens
from voucher.vouchers.models import OneTimeCode

PHONE = "13812345678"
OTHER_PHONE = "13987654321"


def request_code(client, typed: str, **extra) -> tuple[str, str]:
    """The phone step: the page's one-time code (shown outside production) and the number it went to."""
    response = client.post("/c/login", data={"p-phone": typed, **extra})
    page = response.get_data(as_text=True)
    assert response.status_code == 200, page
    code = re.search(r'class="dev-code">(\d{6})<', page).group(1)
    phone = re.search(r'name="c-phone" type="hidden" value="([^"]*)"', page).group(1)
    return code, phone


def sign_in(client, typed: str = PHONE) -> None:
    code, phone = request_code(client, typed)
    response = client.post("/c/login", data={"c-phone": phone, "c-code": code})
    assert response.status_code == 302, response.get_data(as_text=True)


def text(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def world(db):
    return make_world()


@pytest.fixture
def round_of_three(world):
    """A round of 满100减20 (餐饮/零售 in 海州区 and 连云区) from which one citizen may claim three."""
    _, release = make_campaign(world, quantity=10, per_person_limit=3)
    return release


def local(moment) -> str:
    return to_local(moment).strftime("%Y-%m-%d %H:%M")


# -- the header and signing out ---------------------------------------------------------------------------


def test_citizen_pages_carry_the_service_name_and_a_sign_out_on_every_page(app, db, world, round_of_three):
    client = app.test_client()
    offers = text(client.get("/c/"))
    assert '<a class="brand" href="/c/">连云港消费券</a>' in offers
    assert "消费券与补贴活动管理系统" not in offers  # the back office's name stays in the back office
    assert "<title>领取消费券 · 连云港消费券</title>" in offers
    assert 'action="/c/logout"' not in offers  # nobody to sign out yet

    voucher = claim_one(round_of_three, citizens.citizen_for(PHONE))
    sign_in(client)
    for path in ("/c/", "/c/vouchers", "/c/history", f"/c/vouchers/{voucher.id}", f"/c/vouchers/{voucher.id}/stores",
                 "/c/login"):
        page = text(client.get(path))
        assert "连云港消费券" in page and "消费券与补贴活动管理系统" not in page, path
        assert 'action="/c/logout"' in page and ">退出</button>" in page, path
        assert 'action="/c/text-size"' in page, path
    not_found = client.get("/c/vouchers/999999")
    assert not_found.status_code == 404
    assert "连云港消费券" in text(not_found) and "返回我的消费券" in text(not_found)
    assert "消费券与补贴活动管理系统" in text(client.get("/login"))  # the staff pages keep theirs

    done = client.post("/c/logout")
    assert done.status_code == 303 and done.location.endswith("/c/")
    assert "已退出" in text(client.get("/c/"))
    assert client.get("/c/vouchers").location.endswith("/c/login")  # signed out indeed
    assert client.get("/c/logout").status_code == 405  # a state change is a POST


def test_signing_out_needs_the_forms_csrf_token(db, world, database_url):
    csrf_app = make_app(database_url, WTF_CSRF_ENABLED=True)
    try:
        with csrf_app.app_context():
            client = csrf_app.test_client()
            page = text(client.post("/c/login", data={
                "p-phone": PHONE, "csrf_token": _csrf(text(client.get("/c/login")))}))
            code = re.search(r'class="dev-code">(\d{6})<', page).group(1)
            assert client.post("/c/login", data={"c-phone": PHONE, "c-code": code, "csrf_token": _csrf(page)}) \
                .status_code == 302
            forged = client.post("/c/logout")
            assert forged.status_code == 400 and "页面已过期" in text(forged)
            assert client.get("/c/vouchers").status_code == 200  # still signed in
            assert client.post("/c/text-size", data={"size": "large"}).status_code == 400
            mine = text(client.get("/c/vouchers"))
            assert client.post("/c/logout", data={"csrf_token": _csrf(mine)}).status_code == 303
            assert client.get("/c/vouchers").status_code == 302
    finally:
        from voucher.core.db import db as _db

        with csrf_app.app_context():
            _db.session.remove()
            _db.engine.dispose()


def _csrf(page: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)


# -- one voucher at a time --------------------------------------------------------------------------------


def test_the_list_shows_cards_and_each_voucher_its_own_qr_code(app, db, world, round_of_three):
    citizen = citizens.citizen_for(PHONE)
    vouchers = [claim_one(round_of_three, citizen) for _ in range(3)]
    client = app.test_client()
    sign_in(client)
    mine = text(client.get("/c/vouchers"))
    assert "qr.png" not in mine and "<img" not in mine  # no QR code on the list at all
    assert "可以使用（3 张）" in mine
    for voucher in vouchers:
        assert f'href="/c/vouchers/{voucher.id}"' in mine

    first = vouchers[0]
    response = client.get(f"/c/vouchers/{first.id}")
    page = text(response)
    assert response.headers["Cache-Control"] == "private, no-store"
    assert page.count("qr.png") == 1 and f'src="/c/vouchers/{first.id}/qr.png"' in page
    code = "-".join(first.code[i:i + 4] for i in range(0, 11, 4))
    assert f'<strong class="code-big">{code}</strong>' in page
    assert 'class="citizen voucher-page"' in page  # white, for the scanner
    assert "结账时向收银员出示二维码" in page
    assert client.get(f"/c/vouchers/{first.id}/qr.png").mimetype == "image/png"

    # An expired voucher shows neither a QR code nor the words about showing it, and its image is gone.
    expired = vouchers[1]
    expired.valid_until = utcnow() - timedelta(minutes=1)  # past its validity, the nightly job not run yet
    db.session.commit()
    page = text(client.get(f"/c/vouchers/{expired.id}"))
    assert "qr.png" not in page and "本券已过期" in page and "出示二维码" not in page
    assert client.get(f"/c/vouchers/{expired.id}/qr.png").status_code == 404
    assert "已过期（1 张）" in text(client.get("/c/vouchers"))


def test_another_citizens_voucher_is_not_found(app, db, world, round_of_three):
    theirs = claim_one(round_of_three, citizens.citizen_for(PHONE))
    mine = claim_one(round_of_three, citizens.citizen_for(OTHER_PHONE))
    client = app.test_client()
    sign_in(client, OTHER_PHONE)
    for path in (f"/c/vouchers/{theirs.id}", f"/c/vouchers/{theirs.id}/qr.png", f"/c/vouchers/{theirs.id}/stores"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert theirs.code not in text(response)
    assert client.get(f"/c/vouchers/{mine.id}").status_code == 200
    assert client.get("/c/vouchers/99999999999999999999").status_code == 404
    listing = text(client.get("/c/vouchers"))
    assert f"/c/vouchers/{mine.id}" in listing and f"/c/vouchers/{theirs.id}" not in listing


# -- what a used voucher was used for ---------------------------------------------------------------------


def test_a_used_voucher_says_when_where_and_how_much_and_shows_no_qr(app, db, world, round_of_three):
    citizen = citizens.citizen_for(PHONE)
    used, unused = claim_one(round_of_three, citizen), claim_one(round_of_three, citizen)
    redemption = redeem(used.code, 150_00, world.cashier).redemption
    db.session.commit()
    when = local(redemption.created_at)
    client = app.test_client()
    sign_in(client)

    mine = text(client.get("/c/vouchers"))
    assert "已使用（1 张）" in mine and "可以使用（1 张）" in mine
    assert f"{when} 在 港城老味道餐厅门店 使用 · 订单 150.00 元，优惠 20.00 元" in mine
    assert "结账时向收银员出示二维码" not in mine

    page = text(client.get(f"/c/vouchers/{used.id}"))
    assert "qr.png" not in page and "本券已使用，二维码不再显示" in page and "出示二维码" not in page
    assert f"{when}（北京时间）" in page and "港城老味道餐厅门店（海州区）" in page
    for amount in ("150.00 元", "20.00 元", "130.00 元"):
        assert amount in page
    assert client.get(f"/c/vouchers/{used.id}/qr.png").status_code == 404
    assert "尚未使用" in text(client.get(f"/c/vouchers/{unused.id}"))

    history = text(client.get("/c/history"))
    assert "港城老味道餐厅门店" in history and when in history and "150.00 元" in history and "130.00 元" in history
    assert "市区餐饮零售消费券" in history and "13812345678" not in history


def test_the_history_keeps_an_undone_use_and_the_voucher_is_usable_again(app, db, world, round_of_three):
    voucher = claim_one(round_of_three, citizens.citizen_for(PHONE))
    redemption = redeem(voucher.code, 120_00, world.cashier).redemption
    db.session.commit()
    reverse(redemption.id, reason="顾客退单", cashier=world.cashier)
    db.session.commit()
    client = app.test_client()
    sign_in(client)
    history = text(client.get("/c/history"))
    assert "120.00 元" in history and "已撤销" in history
    page = text(client.get(f"/c/vouchers/{voucher.id}"))
    assert "已撤销" in page and "本券恢复可用" in page and f"/c/vouchers/{voucher.id}/qr.png" in page


def test_the_history_pages(app, db, world):
    _, release = make_campaign(world, quantity=30, per_person_limit=25)
    citizen = citizens.citizen_for(PHONE)
    for _ in range(23):
        redeem(claim_one(release, citizen).code, 100_00, world.cashier)
    db.session.commit()
    client = app.test_client()
    sign_in(client)
    first = text(client.get("/c/history"))
    assert "第 1–20 条，共 23 条" in first and 'href="/c/history?page=2"' in first
    assert "第 21–23 条，共 23 条" in text(client.get("/c/history?page=2"))
    assert client.get("/c/history?page=abc").status_code == 200


# -- where a voucher can be used --------------------------------------------------------------------------


def _store(name: str, category: str, district: str, status: str = "approved", n: int = 0) -> Merchant:
    """A merchant with one store of the same name (the USCC is only unique, not checked here)."""
    merchant = Merchant(name=name, uscc=f"91320700STORE{n:05d}", category=category, status=status)
    merchant.stores.append(Store(name=name, district=district, address=f"{district}某路{n}号"))
    _db.session.add(merchant)
    return merchant


def test_the_stores_that_take_a_voucher_by_district_category_and_name(app, db, world, round_of_three):
    _store("苏果便民超市（墟沟店）", "零售", "连云区", n=1)
    _store("停业整顿的饭店", "餐饮", "海州区", status="suspended", n=2)
    _store("赣榆海鲜大排档", "餐饮", "赣榆区", n=3)  # outside the campaign's districts
    for n in range(45):
        _store(f"社区便民店{n:02d}", "零售" if n % 3 else "餐饮", "海州区", n=100 + n)
    db.session.commit()
    voucher = claim_one(round_of_three, citizens.citizen_for(PHONE))
    client = app.test_client()
    sign_in(client)
    path = f"/c/vouchers/{voucher.id}/stores"

    everything = text(client.get(path))
    assert "共 47 家门店" in everything and "第 1–20 条，共 47 条" in everything  # 45 + 老味道 + 苏果
    for absent in ("港城汽车", "晶都百货", "停业整顿", "赣榆海鲜"):  # wrong category, district, standing
        assert absent not in everything
    assert '<option value="连云区">' in everything and '<option value="东海县">' not in everything
    assert f'href="{path}?page=3"' in everything

    by_district = text(client.get(path, query_string={"district": "连云区"}))
    assert "共 1 家门店" in by_district and "苏果便民超市（墟沟店）" in by_district
    assert '<option value="连云区" selected>' in by_district
    by_category = text(client.get(path, query_string={"category": "餐饮"}))
    assert "共 16 家门店" in by_category and "港城老味道餐厅门店" in by_category  # 15 of the 45, and 老味道
    # Words of the name, typed with a Chinese IME's full-width digits; the links keep the filters.
    found = text(client.get(path, query_string={"q": "便民店 ０７"}))
    assert "共 1 家门店" in found and "社区便民店07" in found
    second = text(client.get(path, query_string={"category": "零售", "page": "2"}))
    assert "第 21–31 条，共 31 条" in second and "category=%E9%9B%B6%E5%94%AE" in second
    assert "没有符合条件的门店" in text(client.get(path, query_string={"q": "100%"}))

    refused = client.get(path, query_string={"district": "东海县"})
    assert refused.status_code == 422 and "本券不能在「东海县」使用" in text(refused)
    refused = client.get(path, query_string={"category": "汽车"})
    assert refused.status_code == 422 and "本券不适用于「汽车」行业" in text(refused)
    refused = client.get(path, query_string={"q": "店" * 41})
    assert refused.status_code == 422 and "搜索内容不能超过 40 个字" in text(refused)


def test_a_campaign_of_named_merchants_lists_only_their_stores(app, db, world):
    _store("另一家饭店", "餐饮", "海州区", n=9)
    _, release = make_campaign(world, name="指定商户消费券", merchant_ids=[world.merchant.id])
    voucher = claim_one(release, citizens.citizen_for(PHONE))
    client = app.test_client()
    sign_in(client)
    page = text(client.get(f"/c/vouchers/{voucher.id}/stores"))
    assert "共 1 家门店" in page and "港城老味道餐厅门店" in page and "另一家饭店" not in page


# -- signing in: resend, change of number, numbers as typed ---------------------------------------------


def test_the_code_can_be_sent_again_and_replaces_the_first(app, db, world):
    client = app.test_client()
    first, phone = request_code(client, PHONE)
    step = text(client.post("/c/login", data={"p-phone": PHONE}))
    assert "验证码已发送至 <strong>138****5678</strong>" in step
    assert '<input id="p-resend" name="p-resend" type="hidden" value="1">' in step
    assert "重新获取验证码" in step and '号码填错了？换一个号码' in step

    again = client.post("/c/login", data={"p-phone": phone, "p-resend": "1"})
    assert again.status_code == 200 and "新的验证码已发送，之前的验证码已作废" in text(again)
    newest = re.search(r'class="dev-code">(\d{6})<', text(again)).group(1)
    db.session.expire_all()
    codes = db.session.scalars(select(OneTimeCode).order_by(OneTimeCode.id)).all()
    assert len(codes) == 3 and all(c.expires_at <= codes[-1].created_at for c in codes[:-1])  # replaced
    if first != newest:
        stale = client.post("/c/login", data={"c-phone": phone, "c-code": first})
        assert stale.status_code == 422 and "验证码错误" in text(stale)
        assert "重新获取验证码" in text(stale)  # a wrong code keeps the step, with its resend
    assert client.post("/c/login", data={"c-phone": phone, "c-code": newest}).status_code == 302


def test_resending_counts_against_the_numbers_limit(app, db, world):
    client = app.test_client()
    _, phone = request_code(client, PHONE)
    for _ in range(citizens.MAX_CODES_PER_WINDOW - 1):
        assert client.post("/c/login", data={"p-phone": phone, "p-resend": "1"}).status_code == 200
    refused = client.post("/c/login", data={"p-phone": phone, "p-resend": "1"})
    assert refused.status_code == 429 and "验证码发送过于频繁" in text(refused)
    assert 'name="c-code"' in text(refused)  # still on the code step: the last code still works
    assert client.post("/c/login", data={"p-phone": "１３８ １２３４ ５６７８"}).status_code == 429  # typed otherwise


def test_a_resend_gives_no_more_guesses_than_the_limits_allow(app, db, world):
    """Each code takes MAX_ATTEMPTS guesses and at most MAX_CODES_PER_WINDOW codes are sent: a resend
    starts a new code's count, never the same code's again."""
    client = app.test_client()
    code, phone = request_code(client, PHONE)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(citizens.MAX_ATTEMPTS):
        client.post("/c/login", data={"c-phone": phone, "c-code": wrong})
    assert client.post("/c/login", data={"c-phone": phone, "c-code": code}).status_code == 422  # spent
    guesses = citizens.MAX_ATTEMPTS
    for _ in range(citizens.MAX_CODES_PER_WINDOW - 1):
        code, _ = request_code(client, phone, **{"p-resend": "1"})
        wrong = "000000" if code != "000000" else "111111"
        for _ in range(citizens.MAX_ATTEMPTS):
            assert client.post("/c/login", data={"c-phone": phone, "c-code": wrong}).status_code == 422
            guesses += 1
        assert client.post("/c/login", data={"c-phone": phone, "c-code": code}).status_code == 422  # spent
    assert client.post("/c/login", data={"p-phone": phone, "p-resend": "1"}).status_code == 429
    assert guesses == citizens.MAX_ATTEMPTS * citizens.MAX_CODES_PER_WINDOW


def test_changing_number_is_signing_out_and_in_with_another(app, db, world, round_of_three):
    claim_one(round_of_three, citizens.citizen_for(PHONE))
    client = app.test_client()
    assert "更换手机号：用新号码获取验证码并验证即可" in text(client.get("/c/login"))
    sign_in(client)
    page = text(client.get("/c/login"))
    assert "更换手机号" in page and "退出并更换手机号" in page and 'name="next" value="/c/login"' in page
    assert 'name="p-phone"' not in page  # signed in: sign out first
    out = client.post("/c/logout", data={"next": "/c/login"})
    assert out.status_code == 303 and out.location.endswith("/c/login")
    assert 'name="p-phone"' in text(client.get("/c/login"))
    sign_in(client, OTHER_PHONE)
    assert "您还没有领取消费券" in text(client.get("/c/vouchers"))  # the other number's vouchers
    assert client.post("/c/logout", data={"next": "//evil.example/c/"}).location.endswith("/c/")  # never off-site


@pytest.mark.parametrize("typed", ["１３８１２３４５６７８", "138-1234-5678", "138 1234 5678", "+86 138—1234—5678",
                                   "１３８\u30001234\u200b5678"])
def test_a_number_typed_with_an_ime_or_spaces_is_the_same_person(app, db, world, round_of_three, typed):
    voucher = claim_one(round_of_three, citizens.citizen_for(PHONE))
    client = app.test_client()
    code, phone = request_code(client, typed)
    assert phone == PHONE
    full_width_code = code.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    assert client.post("/c/login", data={"c-phone": phone, "c-code": full_width_code}).status_code == 302
    assert f"/c/vouchers/{voucher.id}" in text(client.get("/c/vouchers"))


@pytest.mark.parametrize("typed", ["13٨12345678", "1381234567", "23812345678", "138123456789", "phone"])
def test_a_number_that_is_not_one_is_refused_in_chinese(app, db, world, typed):
    response = app.test_client().post("/c/login", data={"p-phone": typed})
    assert response.status_code == 422 and "请输入正确的 11 位手机号码" in text(response)
    assert db.session.scalar(select(OneTimeCode.id)) is None


def test_a_code_that_is_not_six_digits_is_refused_without_spending_a_guess(app, db, world):
    client = app.test_client()
    _, phone = request_code(client, PHONE)
    response = client.post("/c/login", data={"c-phone": phone, "c-code": "12a456"})
    assert response.status_code == 422 and "请输入短信中的 6 位数字验证码" in text(response)
    assert db.session.scalar(select(OneTimeCode.attempts)) == 0
    altered = client.post("/c/login", data={"c-phone": "1234", "c-code": "123456"})
    assert altered.status_code == 422 and 'name="p-phone"' in text(altered)


# -- large text (适老化) -----------------------------------------------------------------------------------


def test_large_text_is_switched_on_and_off_from_any_citizen_page(app, db, world, round_of_three):
    voucher = claim_one(round_of_three, citizens.citizen_for(PHONE))
    client = app.test_client()
    assert '<html lang="zh-CN">' in text(client.get("/c/"))
    on = client.post("/c/text-size", data={"size": "large", "next": "/c/login?"})  # the header sends request.full_path
    assert on.status_code == 303 and on.location.endswith("/c/login")
    cookie = on.headers["Set-Cookie"]
    assert "c_text=large" in cookie and "Path=/c" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    login_page = text(client.get("/c/login"))
    assert '<html lang="zh-CN" class="large-text">' in login_page and "已切换为大字模式" in login_page
    assert 'aria-pressed="true"' in login_page and 'name="size" value="normal"' in login_page
    sign_in(client)
    for path in ("/c/", "/c/vouchers", f"/c/vouchers/{voucher.id}", f"/c/vouchers/{voucher.id}/stores", "/c/history"):
        assert 'class="large-text"' in text(client.get(path)), path
    assert 'class="large-text"' not in text(client.get("/login"))  # the back office is not switched

    off = client.post("/c/text-size", data={"size": "normal"}, headers={"X-Requested-With": "fetch"})
    assert off.status_code == 204  # text_size.js switched the page itself
    assert '<html lang="zh-CN">' in text(client.get("/c/vouchers"))
    assert 'aria-pressed="false"' in text(client.get("/c/vouchers"))

    refused = client.post("/c/text-size", data={"size": "huge"})
    assert refused.status_code == 422 and "请选择“大字模式”或“标准字号”" in text(refused)
    assert client.get("/c/text-size").status_code == 405


def test_the_stylesheet_and_script_of_the_large_text_mode_are_served(app, db):
    client = app.test_client()
    css = text(client.get("/static/app.css"))
    assert "html.large-text body { font-size: 20px" in css
    assert client.get("/static/text_size.js").status_code == 200
    assert 'src="/static/text_size.js"' in text(client.get("/c/"))
    assert 'src="/static/text_size.js"' not in text(client.get("/login"))


def test_no_phone_number_reaches_the_pages_of_a_signed_in_citizen(app, db, world, round_of_three):
    voucher = claim_one(round_of_three, citizens.citizen_for(PHONE))
    redeem(voucher.code, 150_00, world.cashier)
    db.session.commit()
    client = app.test_client()
    sign_in(client)
    for path in ("/c/", "/c/vouchers", f"/c/vouchers/{voucher.id}", f"/c/vouchers/{voucher.id}/stores", "/c/history",
                 "/c/login"):
        assert PHONE not in text(client.get(path)), path


# -- the offers page ------------------------------------------------------------------------------------


def test_the_offers_page_offers_only_what_can_still_be_claimed(client, world):
    """A walk-through tapped 立即领取 on a sold-out release (0/40) and on one whose per-person limit it
    held, and got an error each time: the page says 已领完 or 已领取 instead."""
    _, one_each = make_campaign(world, quantity=2, per_person_limit=1)
    sign_in(client)
    assert client.post(f"/c/releases/{one_each.id}/claim").status_code in (302, 303)
    page = text(client.get("/c/"))
    offer = page.split(one_each.name)[1].split("</section>")[0]
    assert "已领取 1 张（每人限 1 张）" in offer and "立即领取" not in offer
    client.post("/c/logout")
    sign_in(client, OTHER_PHONE)
    client.post(f"/c/releases/{one_each.id}/claim")
    client.post("/c/logout")
    sign_in(client, "13700001111")
    offer = text(client.get("/c/")).split(one_each.name)[1].split("</section>")[0]
    assert "已领完" in offer and "立即领取" not in offer
