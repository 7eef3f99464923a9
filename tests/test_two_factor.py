"""Issue 16: two-factor sign-in (TOTP from an authenticator app, one-time recovery codes), required of
approvers, finance officers and administrators in production and optional for everyone else.

Each test goes through the pages as a person would: the enrolment page's QR code and key, the code typed
(as an IME types it, in full-width digits), the second sign-in step, an administrator's reset. The app's
clock (core.clock) is the one the codes are computed at, so the tests know the code the phone shows."""
from __future__ import annotations

import re
from datetime import timedelta, timezone
from urllib.parse import urlsplit

import pyotp
import pytest
from sqlalchemy import func, select, text

from tests.factories import PASSWORD, make_world
from tests.test_concurrency import run_at_once
from tests.test_staff_sessions import Browser, open_browser
from voucher.accounts.models import RecoveryCode, User
from voucher.config import load
from voucher.core.audit import AuditEntry
from voucher.core.clock import travel_to, utcnow

FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


@pytest.fixture
def client(app, db) -> Browser:
    return open_browser(app)


def path_of(response) -> str:
    return urlsplit(response.headers.get("Location", "")).path


def user(db, username: str) -> User:
    db.session.expire_all()
    return db.session.scalar(select(User).where(User.username == username))


def code_now(secret: str, steps_from_now: int = 0) -> str:
    """What the phone shows now (by the app's clock), or that many 30-second steps away."""
    moment = utcnow().replace(tzinfo=timezone.utc) + timedelta(seconds=30 * steps_from_now)
    return pyotp.TOTP(secret).at(moment)


def sign_in_with_password(client, username: str = "approver"):
    return client.post("/login", data={"username": username, "password": PASSWORD})


def enrol(client, db, username: str = "approver") -> tuple[str, list[str]]:
    """Sign in and set up two-factor through the pages; the secret and the recovery codes shown."""
    assert path_of(sign_in_with_password(client, username)) != "/login"
    assert client.post("/account/two-factor/start").status_code == 303
    page = client.get("/account/two-factor").get_data(as_text=True)
    secret = user(db, username).totp_pending_secret
    assert "<svg" in page and " ".join(secret[i:i + 4] for i in range(0, len(secret), 4)) in page
    shown = client.post("/account/two-factor/confirm", data={"code": code_now(secret).translate(FULL_WIDTH)})
    assert shown.status_code == 200, shown.get_data(as_text=True)
    assert shown.headers["Cache-Control"] == "no-store"
    body = shown.get_data(as_text=True)
    codes = re.findall(r"<li><code>([^<]+)</code></li>", body)
    assert len(codes) == 10
    client.post("/logout")
    return secret, codes


def test_enrolment_then_sign_in_asks_for_the_code_and_only_then_signs_in(app, client, db):
    make_world()
    secret, codes = enrol(client, db)
    approver = user(db, "approver")
    assert approver.totp_enabled_at is not None and approver.totp_pending_secret is None
    # Only digests are kept: no recovery code is in the database as typed.
    digests = db.session.scalars(select(RecoveryCode.code_digest)).all()
    assert len(digests) == 10 and not {c.replace("-", "") for c in codes} & set(digests)

    with travel_to(utcnow() + timedelta(seconds=31)):  # the enrolment's code is spent: the next one
        answer = sign_in_with_password(client)
        assert path_of(answer) == "/login/two-factor"
        # The password alone does not sign in.
        assert path_of(client.get("/approvals")) == "/login"
        assert "两步验证" in client.get("/login/two-factor").get_data(as_text=True)
        done = client.post("/login/two-factor", data={"code": " " + code_now(secret)[:3] + " " + code_now(secret)[3:]})
        assert path_of(done) == "/"
        assert client.get("/approvals").status_code == 200
    login = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "user.login")
                              .order_by(AuditEntry.id.desc()).limit(1))
    assert login is not None and "totp" in str(login.after)


def test_a_code_is_good_once_even_within_its_window(app, client, db):
    make_world()
    secret, _ = enrol(client, db)
    with travel_to(utcnow() + timedelta(seconds=31)):
        code = code_now(secret)
        sign_in_with_password(client)
        assert path_of(client.post("/login/two-factor", data={"code": code})) == "/"
        client.post("/logout")
        # Seen over the shoulder and typed at once in another browser: refused.
        other = open_browser(app)
        sign_in_with_password(other)
        again = other.post("/login/two-factor", data={"code": code})
        assert again.status_code == 401 and "已使用过" in again.get_data(as_text=True)
        assert path_of(other.get("/approvals")) == "/login"


def test_codes_outside_the_window_are_refused(app, client, db):
    make_world()
    secret, _ = enrol(client, db)
    with travel_to(utcnow() + timedelta(minutes=5)):
        sign_in_with_password(client)
        for stale in (code_now(secret, -3), code_now(secret, 3)):
            assert client.post("/login/two-factor", data={"code": stale}).status_code == 401
        assert path_of(client.post("/login/two-factor", data={"code": code_now(secret, 1)})) == "/"


def test_two_browsers_with_the_same_code_at_once_sign_in_once(app, db):
    """The same code sent twice at the same moment (a double click in two tabs, a code copied): the
    forward-only UPDATE of the last step lets exactly one of them in."""
    make_world()
    secret, _ = enrol(open_browser(app), db)
    with travel_to(utcnow() + timedelta(seconds=31)):
        browsers = [open_browser(app) for _ in range(4)]
        for browser in browsers:
            assert path_of(sign_in_with_password(browser)) == "/login/two-factor"
        code = code_now(secret)
        outcomes = run_at_once(app, [lambda b=b: b.post("/login/two-factor", data={"code": code}).status_code
                                     for b in browsers], lambda work: work())
    assert sorted(outcomes) == [302, 401, 401, 401], outcomes


def test_a_recovery_code_signs_in_once(app, client, db):
    make_world()
    _, codes = enrol(client, db)
    sign_in_with_password(client)
    # Typed in upper case with full-width letters from an IME, the dash left out: still the same code.
    typed = codes[0].replace("-", "").upper().translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})
    assert path_of(client.post("/login/two-factor", data={"code": typed})) == "/"
    client.post("/logout")
    sign_in_with_password(client)
    assert client.post("/login/two-factor", data={"code": codes[0]}).status_code == 401
    assert "未用过的恢复码：<strong>8</strong>" in _page_after(client, codes[1])


def _page_after(client, recovery_code: str) -> str:
    assert path_of(client.post("/login/two-factor", data={"code": recovery_code})) == "/"
    return client.get("/account/two-factor").get_data(as_text=True)


def test_wrong_codes_count_towards_the_lock_like_wrong_passwords(app, client, db):
    make_world()
    secret, _ = enrol(client, db)
    allowed = app.config["LOGIN_MAX_FAILURES"]
    sign_in_with_password(client)
    for _ in range(allowed - 1):
        assert client.post("/login/two-factor", data={"code": "000000"}).status_code == 401
    last = client.post("/login/two-factor", data={"code": "000000"})
    assert path_of(last) == "/login"  # locked: back to the start, with the lock's message
    assert "已临时锁定" in client.get("/login").get_data(as_text=True)
    assert user(db, "approver").locked_until is not None
    # The right password and the right code are refused while the lock lasts.
    with travel_to(utcnow() + timedelta(seconds=31)):
        assert sign_in_with_password(client).status_code == 401
        assert path_of(client.post("/login/two-factor", data={"code": code_now(secret)})) == "/login"


def test_the_second_step_waits_five_minutes_at_most(app, client, db):
    make_world()
    secret, _ = enrol(client, db)
    sign_in_with_password(client)
    with travel_to(utcnow() + timedelta(minutes=6)):
        late = client.post("/login/two-factor", data={"code": code_now(secret)})
        assert path_of(late) == "/login"
        assert "5 分钟内" in client.get("/login").get_data(as_text=True)
    assert path_of(client.get("/login/two-factor")) == "/login"


def test_the_second_step_without_a_password_goes_back_to_sign_in(app, client, db):
    make_world()
    assert path_of(client.post("/login/two-factor", data={"code": "123456"})) == "/login"
    assert path_of(client.get("/approvals")) == "/login"


def test_a_wrong_first_code_does_not_switch_it_on(app, client, db):
    make_world()
    sign_in_with_password(client, "maker")
    client.post("/account/two-factor/start")
    refused = client.post("/account/two-factor/confirm", data={"code": "12345"}, follow_redirects=True)
    assert "验证码不正确" in refused.get_data(as_text=True)
    assert user(db, "maker").totp_enabled_at is None
    # And a GET never starts one: the page only shows the button.
    client.get("/account/two-factor")
    assert db.session.scalar(select(func.count(User.id)).where(User.totp_secret.is_not(None))) == 0


@pytest.fixture
def required(app, monkeypatch):
    """Production's rule: approvers, finance and administrators must use two-factor sign-in."""
    monkeypatch.setitem(app.config, "TWO_FACTOR_REQUIRED_ROLES", frozenset({"bureau_approver", "finance", "admin"}))


def test_a_role_that_requires_it_is_sent_to_enrolment_until_it_is_set_up(app, client, db, required):
    make_world()
    sign_in_with_password(client, "finance")
    for page in ("/finance/settlement", "/dashboard", "/"):
        answer = client.get(page)
        assert answer.status_code == 302 and path_of(answer) == "/account/two-factor", page
    assert "要求两步验证" in client.get("/account/two-factor").get_data(as_text=True)
    client.post("/logout")
    secret, _ = enrol(client, db, "finance")
    with travel_to(utcnow() + timedelta(seconds=31)):
        sign_in_with_password(client, "finance")
        client.post("/login/two-factor", data={"code": code_now(secret)})
        assert client.get("/finance/settlement").status_code == 200
        # …and cannot switch it off.
        refused = client.post("/account/two-factor/disable", data={"code": code_now(secret, 1)},
                              follow_redirects=True)
    assert "不能关闭" in refused.get_data(as_text=True)
    assert user(db, "finance").totp_enabled_at is not None


def test_a_role_that_does_not_require_it_may_switch_it_off(app, client, db, required):
    make_world()
    maker = open_browser(app)
    sign_in_with_password(maker, "maker")
    assert maker.get("/campaigns").status_code == 200  # not sent to enrolment
    maker.post("/logout")
    secret, _ = enrol(client, db, "maker")
    with travel_to(utcnow() + timedelta(seconds=31)):
        sign_in_with_password(client, "maker")
        client.post("/login/two-factor", data={"code": code_now(secret)})
        off = client.post("/account/two-factor/disable", data={"code": code_now(secret, 1)}, follow_redirects=True)
    assert "两步验证已关闭" in off.get_data(as_text=True)
    assert db.session.scalar(select(func.count(RecoveryCode.id))) == 0
    assert path_of(sign_in_with_password(open_browser(app), "maker")) == "/"


def test_an_administrators_reset_ends_every_session_and_enrolment_starts_again(app, client, db, required):
    make_world()
    secret, _ = enrol(client, db, "finance")
    with travel_to(utcnow() + timedelta(seconds=31)):
        sign_in_with_password(client, "finance")
        client.post("/login/two-factor", data={"code": code_now(secret)})
        assert client.get("/finance/settlement").status_code == 200
        admin = open_browser(app)
        admin_secret, _ = enrol(admin, db, "admin")
    with travel_to(utcnow() + timedelta(seconds=62)):
        sign_in_with_password(admin, "admin")
        admin.post("/login/two-factor", data={"code": code_now(admin_secret)})
        users_page = admin.get("/admin/users").get_data(as_text=True)
        assert "重置两步验证" in users_page
        finance_id = user(db, "finance").id
        done = admin.post(f"/admin/users/{finance_id}/reset-two-factor", follow_redirects=True)
        assert "已重置 finance 的两步验证" in done.get_data(as_text=True)
        # The finance officer's open session has ended, and the old phone no longer signs in.
        assert path_of(client.get("/finance/settlement")) == "/login"
        assert path_of(sign_in_with_password(client, "finance")) == "/"
        assert path_of(client.get("/finance/settlement")) == "/account/two-factor"
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "user.two_factor_reset")) is not None


def test_the_command_line_resets_two_factor(app, client, db):
    make_world()
    enrol(client, db, "maker")
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["users", "reset-two-factor", "maker"])
    assert result.exit_code == 0, result.output
    assert "已重置用户 maker 的两步验证" in result.output
    assert user(db, "maker").totp_enabled_at is None


def test_production_requires_it_of_approvers_finance_and_administrators(monkeypatch, tmp_path):
    for name in ("SECRET_KEY", "QR_SIGNING_KEYS", "IDENTITY_HASH_KEY", "AUDIT_MAC_KEYS", "PARTNER_MASTER_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("TWO_FACTOR_REQUIRED_ROLES", raising=False)
    monkeypatch.setenv("VOUCHER_ENV", "development")
    assert load(str(tmp_path))["TWO_FACTOR_REQUIRED_ROLES"] == frozenset()  # the demo signs in without it
    monkeypatch.setenv("TWO_FACTOR_REQUIRED_ROLES", "finance, cashier")
    assert load(str(tmp_path))["TWO_FACTOR_REQUIRED_ROLES"] == {"finance", "cashier"}
    monkeypatch.setenv("TWO_FACTOR_REQUIRED_ROLES", "finance,boss")
    with pytest.raises(Exception, match="boss"):
        load(str(tmp_path))


def test_the_secret_is_not_readable_from_the_users_table_as_typed(app, client, db):
    """The TOTP secret is a key: whoever reads the table (a backup, a replica) must not get it."""
    make_world()
    secret, _ = enrol(client, db, "maker")
    stored = db.session.execute(text("SELECT totp_secret FROM users WHERE username = 'maker'")).scalar()
    assert stored and secret not in stored
