"""The public merchant application (issue 16, item 7): its answer says nothing about which staff accounts
exist (it told anyone "用户名 finance 已存在"), a username already taken is settled by the bureau at
approval, and the form's POSTs are rate-limited per address."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from tests.conftest import make_app
from tests.factories import PASSWORD, make_world
from voucher.accounts.models import User
from voucher.core.audit import AuditEntry
from voucher.core.db import db as _db
from voucher.core.uscc import check_char
from voucher.merchants.models import Merchant


def uscc(n: int) -> str:
    body = f"91320706MA2PUB{n:03d}"
    return body + check_char(body)


def application(n: int, username: str, **overrides) -> dict:
    data = {
        "name": f"港城公开申请商户{n}", "uscc": uscc(n), "category": "餐饮",
        "stores-0-name": f"公开申请{n}号店", "stores-0-district": "海州区", "stores-0-address": "解放路 9 号",
        "bank_account_name": f"港城公开申请商户{n}", "bank_name": "中国银行连云港分行",
        "bank_account_no": "6216610000012345678", "manager_username": username,
        "manager_display_name": "王店长", "manager_password": "shop-pass-99", "contact_phone": "13800138000",
    }
    data.update(overrides)
    return data


def login(client, username: str, password: str = PASSWORD):
    client.post("/logout")
    return client.post("/login", data={"username": username, "password": password})


def answer_text(response, n: int) -> str:
    """The page as the applicant reads it, without what differs by design (their own name and code)."""
    text = response.get_data(as_text=True)
    text = re.sub(r'name="csrf_token"[^>]*>', "", text)
    return text.replace(f"港城公开申请商户{n}", "商户").replace(uscc(n), "代码")


def merchant(n: int) -> Merchant:
    return _db.session.scalar(select(Merchant).where(Merchant.uscc == uscc(n)))


def test_the_answer_does_not_tell_whether_a_staff_username_exists(client, db):
    make_world()  # staff accounts: finance, approver, maker, ...
    taken = client.post("/merchants/apply", data=application(1, "finance"))
    free = client.post("/merchants/apply", data=application(2, "nobody-has-this"))
    assert taken.status_code == free.status_code == 200
    assert answer_text(taken, 1) == answer_text(free, 2)
    page = taken.get_data(as_text=True)
    assert "已存在" not in page and "占用" not in page and "finance" not in page
    assert "申请已提交" in page
    # The staff account is untouched, and no second account answers to its name.
    assert db.session.scalar(select(func.count(User.id)).where(User.username == "finance")) == 1
    assert db.session.scalar(select(User.role).where(User.username == "finance")) == "finance"
    assert login(client, "finance").status_code == 302
    # Nor does the applicant's pending account hold a name before the bureau approves it.
    assert db.session.scalar(select(User.id).where(User.username == "nobody-has-this")) is None
    assert login(client, "nobody-has-this", "shop-pass-99").status_code == 401


def test_the_bureau_settles_a_taken_username_at_approval(client, db):
    make_world()
    client.post("/merchants/apply", data=application(3, "finance"))
    applied = merchant(3)
    login(client, "approver")
    listing = client.get("/merchants?status=pending").get_data(as_text=True)
    assert "finance" in listing  # the bureau sees the username asked for
    refused = client.post(f"/merchants/{applied.id}/approve", follow_redirects=True)
    assert "用户名 finance 已被占用" in refused.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Merchant, applied.id).status == "pending"
    assert client.post(f"/merchants/{applied.id}/approve", data={"manager_username": "gangcheng_pub3"}).status_code == 302
    db.session.expire_all()
    assert db.session.get(Merchant, applied.id).status == "approved"
    assert login(client, "gangcheng_pub3", "shop-pass-99").status_code == 302
    assert login(client, "finance").status_code == 302  # the staff member still signs in as before


def test_the_first_approval_gets_a_shared_username(client, db):
    make_world()
    client.post("/merchants/apply", data=application(4, "samename"))
    client.post("/merchants/apply", data=application(5, "samename"))
    login(client, "approver")
    assert client.post(f"/merchants/{merchant(5).id}/approve").status_code == 302
    refused = client.post(f"/merchants/{merchant(4).id}/approve", follow_redirects=True)
    assert "用户名 samename 已被占用" in refused.get_data(as_text=True)
    assert login(client, "samename", "shop-pass-99").status_code == 302
    assert db.session.scalar(select(User.merchant_id).where(User.username == "samename")) == merchant(5).id


def test_a_badly_formed_username_is_still_refused_on_the_form(client, db):
    response = client.post("/merchants/apply", data=application(6, "有空格 的名字"))
    assert response.status_code == 422 and "管理员用户名应为 3 到 32 位" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count(Merchant.id))) == 0


@pytest.fixture
def rate_limited(app, db):
    """make(**settings): a client of an app with rate limits on and these limits, sharing the test's
    session (as tests/ops does)."""
    contexts = []

    def make(**settings):
        limited = make_app(app.config["SQLALCHEMY_DATABASE_URI"], RATELIMIT_ENABLED=True, **settings)
        contexts.append(limited.app_context())
        contexts[-1].push()
        return limited.test_client()

    yield make
    _db.session.rollback()
    _db.session.remove()
    _db.engine.dispose()
    for context in reversed(contexts):
        context.pop()


@pytest.fixture
def limited_client(rate_limited):
    return rate_limited(RATELIMIT_MERCHANT_APPLY="3 per minute")


def test_applications_are_rate_limited_per_address(limited_client, db):
    make_world()
    answers = [limited_client.post("/merchants/apply", data=application(10 + n, f"probe{n}")).status_code
               for n in range(3)]
    assert 429 not in answers
    refused = limited_client.post("/merchants/apply", data=application(20, "probe-more"))
    assert refused.status_code == 429
    assert "过于频繁" in refused.get_data(as_text=True)
    assert int(refused.headers["Retry-After"]) >= 1
    assert merchant(20) is None  # refused before any work
    assert limited_client.get("/merchants/apply").status_code == 200  # showing the form is not counted
    other = limited_client.post("/merchants/apply", data=application(21, "elsewhere"),
                                environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert other.status_code == 200


# The applicant's status page (issue 17) ----------------------------------------------------------------


def status_page(client, n: int, phone: str):
    return client.post("/merchants/apply/status", data={"uscc": uscc(n), "contact_phone": phone})


def test_an_applicant_follows_the_application_and_applies_again_after_a_refusal(client, db):
    make_world()
    # A Chinese IME's full-width digits and a space are the same phone number.
    applied = client.post("/merchants/apply", data=application(30, "gangcheng30", contact_phone="１３８ ００１３ ８０００"))
    assert "申请进度查询" in applied.get_data(as_text=True)
    # Signing in before the bureau decides says nothing about the account, but shows where to look.
    refused = login(client, "gangcheng30", "shop-pass-99")
    assert refused.status_code == 401 and "/merchants/apply/status" in refused.get_data(as_text=True)

    for written in ("138-0013-8000", "+86 138 0013 8000", "13800138000"):  # however the number is written
        waiting = status_page(client, 30, written)
        assert waiting.status_code == 200 and "待审核" in waiting.get_data(as_text=True), written
    # A wrong phone gets the answer an unknown USCC gets: the page tells nothing to one who knows only the USCC.
    wrong, unknown = status_page(client, 30, "13900139000"), status_page(client, 31, "13900139000")
    assert wrong.status_code == unknown.status_code == 404
    assert "未找到与该统一社会信用代码和联系电话相符的入驻申请" in wrong.get_data(as_text=True)
    assert answer_text(wrong, 30) == answer_text(unknown, 31)

    login(client, "approver")
    assert "港城公开申请商户30" in client.get("/approvals").get_data(as_text=True)
    client.post(f"/merchants/{merchant(30).id}/reject", data={"reason": "营业执照照片不清晰"})
    client.post("/logout")
    rejected = status_page(client, 30, "13800138000").get_data(as_text=True)
    assert "已驳回" in rejected and "营业执照照片不清晰" in rejected and "重新提交申请" in rejected

    # The same USCC applies again, with another store and manager name: the same merchant waits once more.
    first_id = merchant(30).id
    again = client.post("/merchants/apply", data=application(
        30, "gangcheng30b", contact_phone="13800138000", previous_password="shop-pass-99", **{"stores-0-name": "新址店"}))
    assert again.status_code == 200 and "申请已提交" in again.get_data(as_text=True)
    db.session.expire_all()
    reopened = merchant(30)
    assert (reopened.id, reopened.status, reopened.decision_note) == (first_id, "pending", None)
    assert [s.name for s in reopened.stores] == ["新址店"]
    assert "待审核" in status_page(client, 30, "13800138000").get_data(as_text=True)
    # Once pending again, a third application is refused, pointing to the status page.
    third = client.post("/merchants/apply", data=application(30, "gangcheng30c", contact_phone="13800138000",
                                                             previous_password="shop-pass-99"))
    assert third.status_code == 422 and "申请进度查询" in third.get_data(as_text=True)

    login(client, "approver")
    assert client.post(f"/merchants/{first_id}/approve").status_code == 302
    client.post("/logout")
    approved = status_page(client, 30, "13800138000").get_data(as_text=True)
    assert "已入驻" in approved and "gangcheng30b" in approved
    assert login(client, "gangcheng30b", "shop-pass-99").status_code == 302
    actions = list(db.session.scalars(select(AuditEntry.action).where(
        AuditEntry.object_type == "merchants", AuditEntry.object_id == first_id).order_by(AuditEntry.id)))
    assert actions == ["merchant.apply", "merchant.reject", "merchant.reapply", "merchant.approve"]


def text_sql(sql: str):
    from sqlalchemy import text

    return text(sql)


def test_the_contact_phone_is_encrypted_at_rest_and_checked(client, db):
    bad = client.post("/merchants/apply", data=application(32, "gangcheng32", contact_phone="12345"))
    assert bad.status_code == 422 and "联系电话不正确" in bad.get_data(as_text=True)
    assert merchant(32) is None
    client.post("/merchants/apply", data=application(33, "gangcheng33", contact_phone="0518-85821234"))
    stored = db.session.execute(text_sql("SELECT contact_phone FROM merchants WHERE uscc = :u"), {"u": uscc(33)}).scalar()
    assert stored and "85821234" not in stored
    assert merchant(33).contact_phone == "0518-85821234"
    for written in ("051885821234", "(0518) 8582 1234", "０５１８－８５８２１２３４"):  # a walk-through's misses
        assert "待审核" in status_page(client, 33, written).get_data(as_text=True), written


def test_guessing_the_phone_on_the_status_page_is_cut_off(rate_limited, db):
    client = rate_limited(RATELIMIT_MERCHANT_STATUS="3 per minute")
    client.post("/merchants/apply", data=application(34, "gangcheng34", contact_phone="13800138000"))
    # Looking up one's own application as often as one likes is not counted.
    assert {status_page(client, 34, "13800138000").status_code for _ in range(5)} == {200}
    guesses = [status_page(client, 34, f"1390013900{n}").status_code for n in range(4)]
    assert guesses[:3] == [404, 404, 404] and guesses[3] == 429


def test_only_the_refused_applicant_can_apply_again(client, db):
    """An attacker's review: a USCC is public, so anyone could re-apply for a refused company, put in their
    own bank account, phone and manager, and be approved as an ordinary re-application. Applying again
    now needs the manager password the refused application set."""
    make_world()
    client.post("/merchants/apply", data=application(35, "victim35", contact_phone="13800138000"))
    login(client, "approver")
    client.post(f"/merchants/{merchant(35).id}/reject", data={"reason": "材料不全"})
    client.post("/logout")
    for guess in ("", "wrong-pass-99"):
        taken = client.post("/merchants/apply", data=application(
            35, "evil35", contact_phone="13900000001", previous_password=guess,
            bank_account_no="6222000000009999999", bank_account_name="攻击者"))
        assert taken.status_code == 422 and "原管理员密码" in taken.get_data(as_text=True), guess
    db.session.expire_all()
    kept = merchant(35)
    assert (kept.status, kept.bank_account_no, kept.contact_phone) == ("rejected", "6216610000012345678", "13800138000")
    assert "已驳回" in status_page(client, 35, "13800138000").get_data(as_text=True)
    # The applicant themself, with their password, applies again; the audit log keeps what changed, masked.
    assert client.post("/merchants/apply", data=application(
        35, "victim35", contact_phone="13800138000", previous_password="shop-pass-99")).status_code == 200
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "merchant.reapply"))
    assert entry.before["bank_account_no"] == "6216 **** **** 5678" and entry.after["manager_username"] == "victim35"
