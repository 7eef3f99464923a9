"""Issue 16, item 2: staff sessions are kept on the server, so that signing out (and a password change,
a reset, an administrator's 全部下线, switching an account off, the idle and absolute timeouts) ends every
copy of the cookie at once. Citizens' phone-verified sessions live beside them and are not disturbed."""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.factories import PASSWORD, make_world
from voucher.accounts.models import User, UserSession
from voucher.config import ConfigError
from voucher.core.clock import travel_to, utcnow
from voucher.core.db import db as _db

COOKIE = "session"


class Browser(FlaskClient):
    """A test client whose every request runs in an app context of its own, as in production. The plain
    client's requests share the test's app context, and with it `g`, where Flask-Login keeps the user it
    loaded: a later request, from another client, would find that user there instead of loading its own."""

    def open(self, *args, **kwargs):
        _db.session.commit()  # end the test's own transaction: on SQLite it would hold the write lock
        with self.application.app_context():
            return super().open(*args, **kwargs)


def open_browser(app) -> Browser:
    """A new browser: its own cookies."""
    return Browser(app, app.response_class, use_cookies=True)


@pytest.fixture
def client(app, db):
    return open_browser(app)


def sign_in(client, username: str, password: str = PASSWORD):
    response = client.post("/login", data={"username": username, "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)
    return response


def copy_of_cookie(app, client):
    """Another browser holding a copy of `client`'s session cookie."""
    other = open_browser(app)
    other.set_cookie(COOKIE, client.get_cookie(COOKIE).value)
    return other


def is_login_redirect(response) -> bool:
    return response.status_code == 302 and urlsplit(response.headers["Location"]).path == "/login"


def flashed(client) -> str:
    return client.get("/login").get_data(as_text=True)


def test_a_cookie_copied_before_sign_out_no_longer_opens_approvals(app, client, db):
    make_world()
    sign_in(client, "approver")
    assert client.get("/approvals").status_code == 200
    stolen = copy_of_cookie(app, client)
    assert stolen.get("/approvals").status_code == 200  # the copy works while the session is open

    assert is_login_redirect(client.post("/logout"))

    replayed = stolen.get("/approvals")
    assert is_login_redirect(replayed)
    assert "待审批" not in replayed.get_data(as_text=True)
    assert "您已退出登录" in flashed(stolen)
    assert is_login_redirect(client.get("/approvals"))
    ended = db.session.scalar(select(UserSession))
    assert ended.end_reason == "sign_out" and ended.ended_at is not None


def test_a_cookie_without_a_server_session_is_not_signed_in(app, client, db):
    """A cookie made before sessions were kept (or forged with the signing key) names a user and no session."""
    world = make_world()
    with client.session_transaction() as cookie:
        cookie["_user_id"] = str(world.approver.id)
        cookie["_fresh"] = True
    assert is_login_redirect(client.get("/approvals"))
    assert "登录已失效" in flashed(client)


def test_idle_sessions_end_after_the_idle_timeout(app, client, db):
    make_world()
    sign_in(client, "approver")
    idle = app.config.get("STAFF_SESSION_IDLE_MINUTES", 30)
    assert idle == 30  # the default for a back office
    with travel_to(utcnow() + timedelta(minutes=idle - 2)):
        assert client.get("/approvals").status_code == 200  # activity keeps it open
    with travel_to(utcnow() + timedelta(minutes=2 * idle - 3)):
        assert client.get("/approvals").status_code == 200
    with travel_to(utcnow() + timedelta(minutes=3 * idle)):
        assert is_login_redirect(client.get("/approvals"))
        assert "长时间未操作" in flashed(client)
    assert db.session.scalar(select(UserSession.end_reason)) == "idle"


def test_busy_sessions_end_at_the_absolute_lifetime(app, client, db):
    make_world()
    sign_in(client, "approver")
    hours = app.config.get("STAFF_SESSION_LIFETIME_HOURS", 12)
    assert hours == 12
    start = utcnow()
    for minutes in range(20, hours * 60, 20):  # a request every 20 minutes, all day
        with travel_to(start + timedelta(minutes=minutes)):
            assert client.get("/approvals").status_code == 200, minutes
    with travel_to(start + timedelta(hours=hours, minutes=1)):
        assert is_login_redirect(client.get("/approvals"))
        assert "登录时间已到上限" in flashed(client)


def test_timeouts_come_from_the_configuration(monkeypatch, tmp_path):
    from voucher.config import load

    monkeypatch.setenv("STAFF_SESSION_IDLE_MINUTES", "10")
    monkeypatch.setenv("STAFF_SESSION_LIFETIME_HOURS", "8")
    config = load(str(tmp_path))
    assert (config["STAFF_SESSION_IDLE_MINUTES"], config["STAFF_SESSION_LIFETIME_HOURS"]) == (10, 8)
    monkeypatch.setenv("STAFF_SESSION_IDLE_MINUTES", "0")
    with pytest.raises(ConfigError, match="STAFF_SESSION_IDLE_MINUTES"):
        load(str(tmp_path))


def test_last_seen_is_written_at_most_once_a_minute(app, client, db):
    make_world()
    sign_in(client, "approver")
    first = db.session.scalar(select(UserSession.last_seen_at))
    for _ in range(3):
        assert client.get("/approvals").status_code == 200
    db.session.expire_all()
    assert db.session.scalar(select(UserSession.last_seen_at)) == first
    with travel_to(utcnow() + timedelta(minutes=2)):
        client.get("/approvals")
    db.session.expire_all()
    assert db.session.scalar(select(UserSession.last_seen_at)) > first


def test_a_password_change_ends_the_users_other_sessions_only(app, client, db):
    make_world()
    sign_in(client, "approver")
    laptop = open_browser(app)
    sign_in(laptop, "approver")
    colleague = open_browser(app)
    sign_in(colleague, "maker")

    response = client.post("/account/password", data={
        "current_password": PASSWORD, "new_password": "harbour-lantern-42", "confirm_password": "harbour-lantern-42"})
    assert response.status_code == 302

    assert client.get("/approvals").status_code == 200  # the session that made the change goes on
    assert is_login_redirect(laptop.get("/approvals"))
    assert "密码已修改" in flashed(laptop)
    assert colleague.get("/campaigns").status_code == 200  # another user's session is not touched


def test_an_administrators_sign_out_everywhere_ends_every_session_of_the_user(app, client, db):
    world = make_world()
    sign_in(client, "approver")
    phone = open_browser(app)
    sign_in(phone, "approver")
    admin = open_browser(app)
    sign_in(admin, "admin")
    page = admin.get("/admin/users").get_data(as_text=True)
    assert "全部下线" in page

    response = admin.post(f"/admin/users/{world.approver.id}/sign-out")
    assert response.status_code == 303

    for browser in (client, phone):
        assert is_login_redirect(browser.get("/approvals"))
    assert "管理员已结束您的全部登录" in flashed(phone)
    assert admin.get("/admin/users").status_code == 200
    sign_in(client, "approver")  # the account itself still works
    assert client.get("/approvals").status_code == 200


def test_a_switched_off_cashier_is_signed_out_at_the_next_request(app, client, db):
    world = make_world()
    sign_in(client, "cashier")
    assert client.get("/counter").status_code == 200
    manager = open_browser(app)
    sign_in(manager, "manager")
    assert manager.post(f"/merchant/cashiers/{world.cashier.id}/deactivate").status_code in (302, 303)

    assert is_login_redirect(client.get("/counter"))
    assert "账户已停用" in flashed(client)
    ended = db.session.scalar(select(UserSession).where(UserSession.user_id == world.cashier.id))
    assert ended.end_reason == "deactivated"


def test_a_citizen_session_in_the_same_browser_survives_a_staff_sign_out(app, client, db):
    from tests.factories import make_citizen

    make_world()
    citizen = make_citizen()
    with client.session_transaction() as cookie:
        cookie["citizen_id"] = citizen.id
    assert client.get("/c/vouchers").status_code == 200
    sign_in(client, "approver")
    client.post("/logout")
    assert client.get("/c/vouchers").status_code == 200  # still the citizen
    assert is_login_redirect(client.get("/approvals"))


def test_citizens_sign_in_with_a_one_time_code_as_before(app, client, db):
    page = client.post("/c/login", data={"p-phone": "13900001111"}).get_data(as_text=True)
    import re

    code = re.search(r"\b(\d{6})\b", page).group(1)
    response = client.post("/c/login", data={"c-phone": "13900001111", "c-code": code})
    assert response.status_code == 302
    assert client.get("/c/vouchers").status_code == 200
    assert db.session.scalar(select(UserSession.id)) is None  # no staff session for a citizen


def test_signing_in_again_in_the_same_browser_ends_the_previous_session(app, client, db):
    make_world()
    sign_in(client, "approver")
    old_copy = copy_of_cookie(app, client)
    sign_in(client, "maker")
    assert is_login_redirect(old_copy.get("/approvals"))
    assert client.get("/campaigns").status_code == 200
    open_sessions = db.session.scalars(select(UserSession).where(UserSession.ended_at.is_(None))).all()
    assert [db.session.get(User, s.user_id).username for s in open_sessions] == ["maker"]
