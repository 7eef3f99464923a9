"""Access control: the 403 page, sign-in and lockout, password storage, CSRF, merchant isolation.

Which roles open which route is checked for every route by tests/test_access_matrix.py.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

from sqlalchemy import select

from tests.conftest import make_app
from tests.factories import PASSWORD, claim_one, make_campaign, make_citizen, make_world
from voucher.accounts.models import User
from voucher.accounts.services import create_user
from voucher.core import uscc
from voucher.core.permissions import Role
from voucher.counter.redemption import redeem
from voucher.merchants.models import Merchant, Store
from voucher.vouchers.codes import display


def login(client, username, password=PASSWORD):
    client.post("/logout")
    return client.post("/login", data={"username": username, "password": password})


def _is_login_redirect(response) -> bool:
    return response.status_code == 302 and urlsplit(response.headers["Location"]).path == "/login"


# (a) roles per staff page: every route, every role, in tests/test_access_matrix.py ------------------


def test_forbidden_page_is_chinese(client, db):
    make_world()
    login(client, "cashier")
    response = client.get("/dashboard")
    assert response.status_code == 403
    assert "您没有访问此页面的权限" in response.get_data(as_text=True)


def test_anonymous_redirect_keeps_the_target(client, db):
    response = client.get("/approvals")
    assert _is_login_redirect(response)
    assert "approvals" in response.headers["Location"]


# (b) sign-in and lockout --------------------------------------------------------------------------


def _user(db, username) -> User:
    db.session.expire_all()
    return db.session.scalar(select(User).where(User.username == username))


def test_wrong_password_is_refused_in_chinese(client, db):
    make_world()
    response = login(client, "finance", "wrong-password")
    assert response.status_code == 401
    assert "用户名或密码错误" in response.get_data(as_text=True)
    # not signed in
    assert _is_login_redirect(client.get("/dashboard"))
    assert _user(db, "finance").failed_logins == 1


def test_unknown_username_gets_the_same_message(client, db):
    make_world()
    unknown = login(client, "nobody", PASSWORD)
    wrong = login(client, "finance", "wrong-password")
    assert unknown.status_code == wrong.status_code == 401
    assert "用户名或密码错误" in unknown.get_data(as_text=True)
    flash = re.compile(r'<div class="flash[^"]*"[^>]*>(.*?)</div>', re.S)
    assert flash.findall(unknown.get_data(as_text=True)) == flash.findall(wrong.get_data(as_text=True))


def test_five_wrong_passwords_lock_the_account(client, db):
    make_world()
    for attempt in range(4):
        response = login(client, "finance", f"wrong-{attempt}")
        assert response.status_code == 401, attempt
    response = login(client, "finance", "wrong-5")
    assert response.status_code == 401
    assert "连续输错 5 次后账户将临时锁定 15 分钟" in response.get_data(as_text=True)
    assert _user(db, "finance").locked_until is not None

    # Even the right password is now refused, with the answer a wrong password gets: a guesser cannot
    # tell a locked account from a wrong password or an unknown name.
    locked = login(client, "finance", PASSWORD)
    unknown = login(client, "nobody-here", "whatever-1")
    assert locked.status_code == unknown.status_code == 401
    flash = re.compile(r'<div class="flash[^"]*"[^>]*>(.*?)</div>', re.S)
    assert flash.findall(locked.get_data(as_text=True)) == flash.findall(unknown.get_data(as_text=True))
    assert _is_login_redirect(client.get("/dashboard"))

    # Other accounts are not affected.
    assert login(client, "auditor").status_code == 302


def test_success_resets_the_failure_counter(client, db):
    make_world()
    for attempt in range(4):
        assert login(client, "finance", f"wrong-{attempt}").status_code == 401
    assert _user(db, "finance").failed_logins == 4
    assert login(client, "finance").status_code == 302
    assert _user(db, "finance").failed_logins == 0
    assert client.get("/dashboard").status_code == 200

    # Four more failures do not lock: the count started again from zero.
    for attempt in range(4):
        assert login(client, "finance", f"wrong-again-{attempt}").status_code == 401
    assert _user(db, "finance").locked_until is None
    assert login(client, "finance").status_code == 302


def test_empty_form_is_not_a_sign_in(client, db):
    make_world()
    response = client.post("/login", data={"username": "finance", "password": ""})
    assert response.status_code == 422
    assert _is_login_redirect(client.get("/dashboard"))


# (c) password storage -----------------------------------------------------------------------------


def test_passwords_are_stored_hashed(db):
    world = make_world()
    for user in (world.maker, world.finance, world.cashier):
        stored = _user(db, user.username)
        assert stored.password_hash != PASSWORD
        assert PASSWORD not in stored.password_hash
        assert stored.password_hash.startswith(("scrypt:", "pbkdf2:")), stored.password_hash[:20]
        assert stored.check_password(PASSWORD)
        assert not stored.check_password(PASSWORD + "x")
    # salted: the same password does not give the same hash
    assert _user(db, "maker").password_hash != _user(db, "finance").password_hash


# (d) CSRF -----------------------------------------------------------------------------------------


def test_login_without_csrf_token_is_refused(db, database_url):
    make_world()
    csrf_app = make_app(database_url, WTF_CSRF_ENABLED=True)
    try:
        client = csrf_app.test_client()
        response = client.post("/login", data={"username": "finance", "password": PASSWORD})
        assert response.status_code == 400
        assert "页面已过期" in response.get_data(as_text=True)
        assert _is_login_redirect(client.get("/dashboard"))  # not signed in

        # A forged token is refused the same way.
        response = client.post("/login", data={"username": "finance", "password": PASSWORD, "csrf_token": "forged"})
        assert response.status_code == 400
        assert _is_login_redirect(client.get("/dashboard"))

        # Control: with the token from the form the same sign-in succeeds.
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
            r'value="([^"]+)"[^>]*name="csrf_token"', page
        )
        assert token, page
        response = client.post(
            "/login", data={"username": "finance", "password": PASSWORD, "csrf_token": token.group(1)}
        )
        assert response.status_code == 302
        assert client.get("/dashboard").status_code == 200
    finally:
        from voucher.core.db import db as _db

        with csrf_app.app_context():
            _db.session.remove()
            _db.engine.dispose()


# (e) merchant isolation ---------------------------------------------------------------------------


def _eligible_merchant(name: str, first17: str, category: str, district: str) -> Merchant:
    merchant = Merchant(name=name, uscc=first17 + uscc.check_char(first17), category=category, status="approved")
    merchant.stores.append(Store(name=name + "门店", district=district))
    from voucher.core.db import db as _db

    _db.session.add(merchant)
    _db.session.flush()
    return merchant


def test_manager_sees_only_own_merchants_redemptions(client, db):
    world = make_world()
    shop = _eligible_merchant("连云港百货", "91320703MA5RET001", "零售", "连云区")
    other_cashier = create_user(
        "cashier_shop", PASSWORD, Role.CASHIER, merchant_id=shop.id, store_id=shop.stores[0].id
    )
    create_user("manager_shop", PASSWORD, Role.MERCHANT_MANAGER, merchant_id=shop.id)
    db.session.commit()

    _, release = make_campaign(world)
    mine = claim_one(release, make_citizen("a"))
    theirs = claim_one(release, make_citizen("b"))
    redeem(mine.code, 150_00, world.cashier)
    db.session.commit()
    redeem(theirs.code, 234_00, other_cashier)
    db.session.commit()

    assert login(client, "manager").status_code == 302
    page = client.get("/merchant/redemptions").get_data(as_text=True)
    assert display(mine.code) in page and "150.00" in page
    assert display(theirs.code) not in page
    assert "234.00" not in page
    assert "连云港百货" not in page

    assert login(client, "manager_shop").status_code == 302
    page = client.get("/merchant/redemptions").get_data(as_text=True)
    assert display(theirs.code) in page and "234.00" in page
    assert display(mine.code) not in page
