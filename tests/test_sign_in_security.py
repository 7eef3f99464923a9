"""Issue 16, item 1: parallel wrong passwords are counted before any is checked, per account and per
address, so neither the account lock nor the address limit can be outrun.

Each guess is a real request through /login in a thread of its own, all released together (see
tests/test_concurrency.py). Every password check is counted (werkzeug's check_password_hash, real and
dummy alike) and slowed down as scrypt is in production, so that on the code before the fix all twenty
guesses were checked before any had been counted. PostgreSQL is where this happened; SQLite lets one
writer in at a time (BEGIN IMMEDIATE) and so always serialised the guesses.
"""
from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from tests.factories import PASSWORD, make_world
from tests.test_concurrency import run_at_once
from voucher.accounts.models import User
from voucher.core.audit import AuditEntry
from voucher.ops.limits import RateLimits

GUESSES = 20
CHECK_SECONDS = 0.1  # about what scrypt costs in production: long enough for every guess to be in flight


@pytest.fixture
def password_checks(monkeypatch):
    """Each call of check_password_hash, counted (and slowed) wherever accounts code makes it."""
    from werkzeug.security import check_password_hash

    import voucher.accounts.models
    import voucher.accounts.services

    calls: list[str] = []
    lock = threading.Lock()

    def counted(pwhash: str, password: str) -> bool:
        with lock:
            calls.append(password)
        time.sleep(CHECK_SECONDS)
        return check_password_hash(pwhash, password)

    for module in (voucher.accounts.models, voucher.accounts.services):
        monkeypatch.setattr(module, "check_password_hash", counted)
    return calls


def limit_sign_ins(app, monkeypatch, limit: str) -> None:
    """Switch the sign-in address limit on for this test (the suite runs with rate limits off)."""
    settings = {**app.config, "RATELIMIT_ENABLED": True, "RATELIMIT_LOGIN": limit}
    monkeypatch.setitem(app.extensions, "rate_limits", RateLimits(settings))


def guess_at_once(app, usernames: list[str]) -> list:
    """One wrong password per username, all sent at the same moment from one address; the statuses."""

    def guess(i: int, username: str):
        response = app.test_client().post("/login", data={"username": username, "password": f"guess-{i}"})
        return response.status_code

    return run_at_once(app, [lambda i=i, u=u: guess(i, u) for i, u in enumerate(usernames)], lambda work: work())


def _user(db, username: str) -> User:
    db.session.expire_all()
    return db.session.scalar(select(User).where(User.username == username))


def test_parallel_wrong_passwords_lock_the_account_after_the_allowed_number_of_checks(app, db, monkeypatch,
                                                                                        password_checks):
    make_world()
    limit_sign_ins(app, monkeypatch, "1000 per minute")  # only the account's own count stops them here
    allowed = app.config.get("LOGIN_MAX_FAILURES", 5)

    outcomes = guess_at_once(app, ["finance"] * GUESSES)

    assert not [o for o in outcomes if not isinstance(o, int)], outcomes
    assert set(outcomes) == {401}, outcomes  # locked or wrong: one answer, so the name is not confirmed
    assert len(password_checks) <= allowed, (len(password_checks), Counter(outcomes))
    finance = _user(db, "finance")
    assert finance.locked_until is not None
    # The lock was recorded once, however many guesses found the allowance spent.
    locks = db.session.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.action == "user.locked"))
    assert locks == 1
    # Even the right password is refused now, without being checked.
    checks_before = len(password_checks)
    refused = app.test_client().post("/login", data={"username": "finance", "password": PASSWORD})
    assert refused.status_code == 401 and "如已锁定请稍后再试" in refused.get_data(as_text=True)
    assert len(password_checks) == checks_before


def test_parallel_guesses_from_one_address_stop_at_the_address_limit(app, db, monkeypatch, password_checks):
    make_world()
    limit_sign_ins(app, monkeypatch, "3 per minute")
    # Four guesses at each of five accounts: under every account's own allowance, so only the
    # address limit can stop them.
    usernames = ["maker", "approver", "finance", "auditor", "admin"] * 4

    outcomes = guess_at_once(app, usernames)

    assert not [o for o in outcomes if not isinstance(o, int)], outcomes
    kinds = Counter(outcomes)
    assert kinds[429] >= GUESSES - 3, kinds
    assert len(password_checks) <= 3, (len(password_checks), kinds)
    assert all(_user(db, name).locked_until is None for name in set(usernames))


def test_sign_in_counts_before_the_check_and_clears_on_success(app, db, monkeypatch, password_checks):
    """The count is committed before the password is checked: a check that never finishes (a crash, a
    timeout) still counted. A success clears it."""
    make_world()
    import voucher.accounts.services as services

    seen: list[int] = []

    def crash(pwhash, password):
        # What another connection sees while the password is being checked.
        with app.app_context():
            from voucher.core.db import db as _db

            seen.append(_db.session.scalar(select(User.failed_logins).where(User.username == "finance")))
            _db.session.remove()
        raise RuntimeError("the process died while checking")

    monkeypatch.setattr(services, "check_password_hash", crash)
    client = app.test_client()
    with pytest.raises(RuntimeError):
        client.post("/login", data={"username": "finance", "password": "wrong-password"})
    assert seen == [1]
    db.session.rollback()
    assert _user(db, "finance").failed_logins == 1

    monkeypatch.undo()
    assert client.post("/login", data={"username": "finance", "password": PASSWORD}).status_code == 302
    assert _user(db, "finance").failed_logins == 0


def test_a_successful_sign_in_gives_the_address_its_count_back(app, db, monkeypatch):
    make_world()
    limit_sign_ins(app, monkeypatch, "2 per minute")
    client = app.test_client()
    for _ in range(5):  # colleagues behind one office address
        assert client.post("/login", data={"username": "finance", "password": PASSWORD}).status_code == 302
        client.post("/logout")
    answers = [client.post("/login", data={"username": "finance", "password": "wrong"}).status_code for _ in range(3)]
    assert answers == [401, 401, 429]
