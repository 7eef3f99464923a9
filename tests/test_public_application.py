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
        "manager_display_name": "王店长", "manager_password": "shop-pass-99",
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
def limited_client(app, db):
    """A client of an app with rate limits on, sharing the test's session (as tests/ops does)."""
    limited = make_app(app.config["SQLALCHEMY_DATABASE_URI"], RATELIMIT_ENABLED=True,
                       RATELIMIT_MERCHANT_APPLY="3 per minute")
    context = limited.app_context()
    context.push()
    yield limited.test_client()
    _db.session.rollback()
    _db.session.remove()
    _db.engine.dispose()
    context.pop()


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
