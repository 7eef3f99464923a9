"""Staff accounts: sign-in with lockout, the password rule, password changes and resets.

Sign-in is two steps with a commit between them (accounts/views.py): start_sign_in() counts the attempt
against the account in one UPDATE ... RETURNING, before any password is checked, and refuses once the
account has had its allowance; finish_sign_in() checks the password and clears the count on success.
So parallel guesses cannot all be checked before any is counted: the database hands each its own number,
and at most LOGIN_MAX_FAILURES of them ever reach the password check.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import NoReturn

from flask import current_app
from sqlalchemy import or_, select, update
from werkzeug.security import check_password_hash, generate_password_hash

from voucher.accounts import passwords, sessions, two_factor
from voucher.accounts.locking import lock_user
from voucher.accounts.models import User
from voucher.core import audit
from voucher.core.clock import utcnow
from voucher.core.db import db, rowcount
from voucher.core.errors import DomainError, InvalidInput, NotFound
from voucher.core.permissions import Role


class LoginFailed(DomainError):
    code = "login_failed"
    status = 401
    default_message = "用户名或密码错误"


class TemporaryPasswordExpired(DomainError):
    code = "temporary_password_expired"
    status = 401

    def __init__(self, message: str | None = None):
        hours = current_app.config["TEMPORARY_PASSWORD_HOURS"]
        super().__init__(message or f"临时密码设置后 {hours} 小时内未使用，已失效。请联系管理员（或店长）重新重置密码")


class AccountLocked(DomainError):
    code = "account_locked"
    status = 423

    def __init__(self, message: str | None = None):
        minutes = current_app.config["LOGIN_LOCKOUT_MINUTES"]
        super().__init__(message or f"连续登录失败次数过多，账户已临时锁定，请 {minutes} 分钟后再试或联系管理员")


class WrongPassword(InvalidInput):
    code = "wrong_password"
    default_message = "当前密码不正确"


class UsernameTaken(InvalidInput):
    """The message names neither the account nor its role: the public merchant application shows it."""

    code = "username_taken"
    default_message = "该用户名不可用，请换一个"


@dataclass(frozen=True)
class SignInAttempt:
    """An attempt already counted against its account; `number` is its place among the failures since
    the last success. An unknown or switched-off username gets user_id None and a dummy hash, so that
    checking it takes as long as a real check and timing does not tell which names exist."""

    user_id: int | None
    number: int
    password_hash: str


@lru_cache(maxsize=4)
def _dummy_hash_for(method: str) -> str:
    return generate_password_hash("not-a-password", method=method)


def _dummy_hash() -> str:
    return _dummy_hash_for(current_app.config["PASSWORD_HASH_METHOD"])


def _unlocked(now):
    return or_(User.locked_until.is_(None), User.locked_until <= now)


def start_sign_in(username: str) -> SignInAttempt:
    """Count a sign-in attempt, before its password is checked; the caller commits it before calling
    finish_sign_in(). Raise AccountLocked while the account is locked, and lock it (then raise) once
    more attempts have started than LOGIN_MAX_FAILURES allows since the last success."""
    attempt = _count_attempt(User.username == username.strip())
    return attempt or SignInAttempt(None, 0, _dummy_hash())


def start_second_factor(user_id: int) -> SignInAttempt:
    """Count an attempt at the second step of a sign-in (a TOTP or recovery code), like start_sign_in:
    wrong codes and wrong passwords share one allowance, and the caller commits before the check."""
    attempt = _count_attempt(User.id == user_id)
    if attempt is None:
        raise LoginFailed()
    return attempt


def _count_attempt(which) -> SignInAttempt | None:
    now = utcnow()
    # The increment and the read of its result are one statement under the row's lock: every parallel
    # attempt gets a different number, and none can read a count that another has not yet written.
    counted = db.session.execute(
        update(User)
        .where(which, User.is_active_account.is_(True), _unlocked(now))
        .values(failed_logins=User.failed_logins + 1)
        .returning(User.id, User.failed_logins, User.password_hash)
        .execution_options(synchronize_session=False)
    ).one_or_none()
    if counted is None:
        locked = db.session.scalar(select(User.id).where(
            which, User.is_active_account.is_(True), User.locked_until > now))
        if locked is not None:
            raise AccountLocked()
        return None
    user_id, number, password_hash = counted
    if number > current_app.config["LOGIN_MAX_FAILURES"]:
        # More attempts are under way than the allowance: this one is refused unchecked.
        _lock(user_id, now)
        raise AccountLocked()
    return SignInAttempt(user_id, number, password_hash)


def finish_sign_in(attempt: SignInAttempt, password: str) -> User:
    """Check the password of a counted attempt (outside any transaction: the hash takes a while and
    holds no lock); on success clear the count and return the user, else raise (the caller commits)."""
    matches = check_password_hash(attempt.password_hash, password)
    if attempt.user_id is None:
        raise LoginFailed()
    if not matches:
        _refuse(attempt)
    user = db.session.get(User, attempt.user_id)
    if user is None or not user.is_active_account:  # switched off while the password was checked
        raise LoginFailed()
    # The right password within the allowance signs in, even if attempts beyond the allowance, started
    # meanwhile, have locked the account: the lock is lifted with the count. With two-factor sign-in
    # the user is not in yet: the codes start a count of their own (finish_second_factor).
    user.failed_logins = 0
    user.locked_until = None
    if user.is_password_temporary and _temporary_expired(user):
        # the right password, so no failure counted; but a reset nobody used in time is no way in
        audit.record("user.temporary_password_expired", user, actor=user)
        raise TemporaryPasswordExpired()
    if not two_factor.enabled(user):
        audit.record("user.login", user, actor=user)
    return user


def _temporary_expired(user: User) -> bool:
    set_at = user.password_changed_at
    hours = current_app.config["TEMPORARY_PASSWORD_HOURS"]
    return set_at is None or utcnow() - set_at > timedelta(hours=hours)


def finish_second_factor(attempt: SignInAttempt, code: str) -> User:
    """Check the code of a counted second-step attempt; on success clear the count and return the user,
    else raise WrongCode (or AccountLocked once the allowance is spent); the caller commits either way."""
    user = db.session.get(User, attempt.user_id)
    if user is None or not user.is_active_account:
        raise LoginFailed()
    try:
        factor = two_factor.check_sign_in_code(user, code)
    except two_factor.WrongCode as error:
        _refuse(attempt, error)
    user.failed_logins = 0
    user.locked_until = None
    audit.record("user.login", user, actor=user, after={"second_factor": factor})
    return user


def _refuse(attempt: SignInAttempt, error: DomainError | None = None) -> NoReturn:
    if attempt.user_id is not None and attempt.number >= current_app.config["LOGIN_MAX_FAILURES"]:
        _lock(attempt.user_id, utcnow())
        raise AccountLocked()
    raise error or LoginFailed()


def _lock(user_id: int, now) -> None:
    until = now + timedelta(minutes=current_app.config["LOGIN_LOCKOUT_MINUTES"])
    # Only the attempt that finds the account unlocked locks it (and writes the audit entry); the count
    # starts again from zero for when the lock ends.
    locked = rowcount(db.session.execute(
        update(User).where(User.id == user_id, _unlocked(now)).values(locked_until=until, failed_logins=0)
        .execution_options(synchronize_session=False)
    ))
    if locked:
        user = db.session.get(User, user_id)
        audit.record("user.locked", user, actor_label="system", after={"locked_until": until})


def create_user(
    username: str,
    password: str,
    role: Role,
    *,
    display_name: str | None = None,
    merchant_id: int | None = None,
    store_id: int | None = None,
    actor: User | None = None,
    enforce_password_rule: bool = True,
) -> User:
    """A new account. `enforce_password_rule=False` is for the development-only demo data alone."""
    if db.session.scalar(select(User.id).where(User.username == username)):
        raise UsernameTaken()
    if enforce_password_rule:
        passwords.check(password, username, display_name or "")
    user = User(
        username=username,
        display_name=display_name or username,
        role=role.value,
        merchant_id=merchant_id,
        store_id=store_id,
    )
    user.set_password(password)
    db.session.add(user)
    db.session.flush()  # the audit entry needs the new id
    audit.record("user.create", user, actor=actor, after={"username": username, "role": role.value})
    return user


def change_password(attempt: SignInAttempt, current: str, new: str, *, keep_session_id: int | None) -> User:
    """The signed-in user's own change (修改密码). `attempt` is start_sign_in() for their username, already
    committed: a wrong current password counts towards the lock like a wrong sign-in. Every other session
    of the user ends; the one making the change (keep_session_id) goes on."""
    # an unknown name carries a dummy hash, which a current password could match
    if not check_password_hash(attempt.password_hash, current) or attempt.user_id is None:
        _refuse(attempt, WrongPassword())
    user = db.session.get_one(User, attempt.user_id)  # its row was just counted by start_sign_in
    user.failed_logins = 0
    if check_password_hash(user.password_hash, new):
        raise passwords.WeakPassword("新密码不能与当前密码相同")
    passwords.check(new, user.username, user.display_name)
    user.set_password(new)
    user.is_password_temporary = False
    ended = sessions.end_all(user.id, "password_changed", keep=keep_session_id)
    audit.record("user.password_change", user, actor=user, after={"sessions_ended": ended})
    return user


def reset_password(user_id: int, actor: User | None) -> tuple[User, str]:
    """An administrator's 重置密码 (or `flask users reset-password` with actor None): a random temporary
    password, which the user must replace at the next sign-in; every session of the user ends and a lock
    is lifted. Returns the user and the temporary password, to be shown once."""
    user = lock_user(user_id)
    if actor is not None and actor.id == user.id:
        raise InvalidInput("不能重置自己的密码，请使用“修改密码”")
    temporary = passwords.temporary()
    user.set_password(temporary)
    user.is_password_temporary = True
    user.failed_logins = 0
    user.locked_until = None
    ended = sessions.end_all(user.id, "password_reset")
    audit.record("user.password_reset", user, actor=actor, actor_label=None if actor else "命令行",
                 after={"temporary": True, "sessions_ended": ended})
    return user, temporary


def set_password(user_id: int, password: str) -> User:
    """`flask users set-password`: a password of the operator's choosing, under the rule; every session
    of the user ends and a lock is lifted."""
    user = lock_user(user_id)
    passwords.check(password, user.username, user.display_name)
    user.set_password(password)
    user.is_password_temporary = False
    user.failed_logins = 0
    user.locked_until = None
    ended = sessions.end_all(user.id, "password_reset")
    audit.record("user.password_set", user, actor_label="命令行", after={"sessions_ended": ended})
    return user


def reset_two_factor(user_id: int, actor: User | None) -> User:
    """An administrator's 重置两步验证 (or `flask users reset-two-factor`), for a lost phone: the secret
    and recovery codes are forgotten and every session ends; a role that requires two-factor sets it
    up again at the next sign-in."""
    user = lock_user(user_id)
    if actor is not None and actor.id == user.id:
        raise InvalidInput("不能重置自己的两步验证")
    two_factor.clear(user)
    ended = sessions.end_all(user.id, "two_factor_reset")
    audit.record("user.two_factor_reset", user, actor=actor, actor_label=None if actor else "命令行",
                 after={"sessions_ended": ended})
    return user


def sign_out_everywhere(user_id: int, actor: User) -> int:
    """An administrator's 全部下线: every open session of the user ends at once. Returns how many."""
    user = lock_user(user_id)
    ended = sessions.end_all(user.id, "signed_out_everywhere")
    audit.record("user.sign_out_everywhere", user, actor=actor, after={"sessions_ended": ended})
    return ended


def list_users(search: str = "", limit: int = 200) -> list[User]:
    """The administrator's list: accounts whose username or display name contains `search`, bureau
    roles first, at most `limit` (+1, so the page can say there are more)."""
    statement = select(User).order_by(User.role, User.username).limit(limit + 1)
    if search:
        statement = statement.where(or_(User.username.contains(search, autoescape=True),
                                        User.display_name.contains(search, autoescape=True)))
    return list(db.session.scalars(statement))


def find_user(username: str) -> User:
    user = db.session.scalar(select(User).where(User.username == username.strip()))
    if user is None:
        raise NotFound(f"找不到用户 {username}")
    return user


def display_names(user_ids: set[int]) -> dict[int, str]:
    """User id -> the name pages show for it (a record that keeps only the id: a close, a decision)."""
    if not user_ids:
        return {}
    rows = db.session.execute(select(User.id, User.display_name).where(User.id.in_(user_ids)))
    return {user_id: name for user_id, name in rows}
