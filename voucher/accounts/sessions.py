"""Staff sessions kept on the server.

Flask's session is a signed cookie with no server state: on its own, a copy taken before 退出 would still
open every page afterwards. So each staff sign-in is a row in user_sessions, the cookie carries a random
token for it (the row keeps only the token's SHA-256), and every request with a signed-in user looks the
row up before any view runs (check_request). A session ends, for every copy of the cookie at once, on:

- 退出 (that session), a password change (the user's other sessions), a password reset, an administrator's
  全部下线 (all of the user's sessions), the account being switched off (found on its next request);
- no request for STAFF_SESSION_IDLE_MINUTES (default 30), or STAFF_SESSION_LIFETIME_HOURS (default 12)
  after the sign-in, however busy.

last_seen_at is written at most once a TOUCH_EVERY, in a commit of its own before the view runs, so
the idle timeout holds to the minute and a read-only page costs one write a minute, not one per request.

Citizens are not staff: their phone-verified session is `citizen_id` in the same cookie
(voucher/vouchers/views.py), untouched here; signing a staff user out leaves it alone.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from flask import Flask, current_app, flash, g, redirect, request, session, url_for
from flask_login import login_user, logout_user
from sqlalchemy import delete, select, update

from voucher.accounts import two_factor
from voucher.accounts.models import User, UserSession
from voucher.core.clock import utcnow
from voucher.core.db import db, rowcount
from voucher.extensions import login_manager

#: the cookie session's key for the token (Flask-Login keeps the user id under `_user_id`)
TOKEN_KEY = "staff_session"
TOUCH_EVERY = timedelta(seconds=60)
#: ended and expired rows are kept this long past their absolute lifetime (who was signed in when)
KEEP_ENDED = timedelta(days=30)
#: the pages a user with a temporary password may still open
WHILE_TEMPORARY = frozenset({"accounts.change_password", "accounts.logout", "accounts.login", "static"})
#: the pages a user who must set up two-factor sign-in may still open
WHILE_ENROLLING = WHILE_TEMPORARY | {"accounts.two_factor_page", "accounts.two_factor_start",
                                     "accounts.two_factor_confirm"}

ENDED_MESSAGES = {
    "sign_out": "您已退出登录，请重新登录",
    "idle": "长时间未操作，已自动退出，请重新登录",
    "expired": "登录时间已到上限，请重新登录",
    "password_changed": "密码已修改，请用新密码重新登录",
    "password_reset": "密码已被重置，请重新登录",
    "signed_out_everywhere": "管理员已结束您的全部登录，请重新登录",
    "deactivated": "账户已停用",
    "two_factor_reset": "您的两步验证已被管理员重置，请重新登录并重新设置",
}
UNKNOWN_MESSAGE = "登录已失效，请重新登录"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# -- services: no request, no commit ------------------------------------------------------------------


def start(user: User, *, replacing: int | None = None) -> str:
    """Open a session for `user` (ending `replacing`, the browser's previous one); return its token."""
    now = utcnow()
    if replacing is not None:
        end(replacing, "sign_out")
    lifetime = timedelta(hours=current_app.config["STAFF_SESSION_LIFETIME_HOURS"])
    db.session.execute(delete(UserSession).where(UserSession.user_id == user.id,
                                                 UserSession.created_at < now - lifetime - KEEP_ENDED))
    token = secrets.token_urlsafe(32)
    db.session.add(UserSession(user_id=user.id, token_digest=_digest(token), created_at=now, last_seen_at=now))
    db.session.flush()  # the row is looked up by the next request, in another transaction: written with this one
    return token


def end(session_id: int, reason: str) -> None:
    db.session.execute(
        update(UserSession).where(UserSession.id == session_id, UserSession.ended_at.is_(None))
        .values(ended_at=utcnow(), end_reason=reason).execution_options(synchronize_session=False)
    )


def end_all(user_id: int, reason: str, *, keep: int | None = None) -> int:
    """End every open session of the user (but `keep`); return how many ended."""
    statement = update(UserSession).where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
    if keep is not None:
        statement = statement.where(UserSession.id != keep)
    return rowcount(db.session.execute(
        statement.values(ended_at=utcnow(), end_reason=reason).execution_options(synchronize_session=False)
    ))


def open_counts(user_ids: list[int]) -> dict[int, int]:
    """How many sessions each user has open and within their time limits (the administrator's list)."""
    if not user_ids:
        return {}
    now = utcnow()
    config = current_app.config
    rows = db.session.execute(
        select(UserSession.user_id, UserSession.id).where(
            UserSession.user_id.in_(user_ids), UserSession.ended_at.is_(None),
            UserSession.last_seen_at >= now - timedelta(minutes=config["STAFF_SESSION_IDLE_MINUTES"]),
            UserSession.created_at >= now - timedelta(hours=config["STAFF_SESSION_LIFETIME_HOURS"]),
        )
    ).all()
    counts: dict[int, int] = {}
    for user_id, _ in rows:
        counts[user_id] = counts.get(user_id, 0) + 1
    return counts


# -- the request side ----------------------------------------------------------------------------------


def current_id() -> int | None:
    """The id of this request's staff session (after check_request), if any."""
    return g.get("_staff_session_id")


def remember(user: User, token: str) -> None:
    """Sign the browser in: Flask-Login's user id and the session's token, in the signed cookie."""
    login_user(user)
    session[TOKEN_KEY] = token


def forget() -> None:
    """Take the staff sign-in out of the cookie (a citizen's `citizen_id` stays)."""
    logout_user()
    session.pop(TOKEN_KEY, None)
    g.pop("_staff_session_id", None)
    g.pop("_staff_user_id", None)


def check_request():
    """before_request: a cookie that claims a signed-in user must name an open session of that user,
    inside its time limits, of an active account; otherwise the browser is signed out (and any later
    view sees an anonymous user). A user with a temporary password is sent to 修改密码."""
    # Nothing from an earlier request: `g` belongs to the app context, which a test (or a CLI command)
    # may hold open across several requests.
    for key in ("_login_user", "_staff_session_id", "_staff_user_id", "_staff_user"):
        g.pop(key, None)
    if "_user_id" not in session or request.endpoint == "static":
        return None
    now = utcnow()
    token = session.get(TOKEN_KEY)
    found = None
    if isinstance(token, str) and token:
        found = db.session.execute(
            select(UserSession, User).join(User, UserSession.user_id == User.id)
            .where(UserSession.token_digest == _digest(token))
        ).one_or_none()
    reason = _invalid(found, now)
    if reason is not None:
        message = ENDED_MESSAGES.get(reason, UNKNOWN_MESSAGE) if found is not None else UNKNOWN_MESSAGE
        if found is not None and found[0].ended_at is None:
            end(found[0].id, reason)
            db.session.commit()
        forget()
        flash(message, "warning")
        return None
    user_session, user = found
    g._staff_session_id = user_session.id
    g._staff_user_id = user.id
    g._staff_user = user
    if now - user_session.last_seen_at >= TOUCH_EVERY:
        db.session.execute(update(UserSession).where(UserSession.id == user_session.id).values(last_seen_at=now)
                           .execution_options(synchronize_session=False))
        db.session.commit()  # its own unit of work, before the view's: a read-only page commits nothing else
    if user.is_password_temporary and request.endpoint not in WHILE_TEMPORARY:
        return redirect(url_for("accounts.change_password"))
    if two_factor.must_enrol(user) and request.endpoint not in WHILE_ENROLLING:
        return redirect(url_for("accounts.two_factor_page"))
    return None


def _invalid(found, now) -> str | None:
    """Why the request's session does not hold (an end reason), or None."""
    if found is None:
        return "sign_out"
    user_session, user = found
    if user_session.ended_at is not None:
        return user_session.end_reason
    if str(user.id) != str(session.get("_user_id")):
        return "sign_out"
    if not user.is_active_account:
        return "deactivated"
    config = current_app.config
    if now - user_session.created_at > timedelta(hours=config["STAFF_SESSION_LIFETIME_HOURS"]):
        return "expired"
    if now - user_session.last_seen_at > timedelta(minutes=config["STAFF_SESSION_IDLE_MINUTES"]):
        return "idle"
    return None


def load_user(user_id: str) -> User | None:
    """Flask-Login's user loader: only the user check_request() found for this request's session."""
    if g.get("_staff_user_id") is not None and str(g._staff_user_id) == user_id:
        return g._staff_user
    return None


def init_app(app: Flask) -> None:
    login_manager.user_loader(load_user)
    app.before_request(check_request)
