"""Sign-in with lockout after repeated failures."""
from __future__ import annotations

from datetime import timedelta
from functools import lru_cache

from flask import current_app
from werkzeug.security import check_password_hash, generate_password_hash

from sqlalchemy import select

from voucher.accounts.models import User
from voucher.core import audit
from voucher.core.clock import utcnow
from voucher.core.db import db
from voucher.core.errors import DomainError, InvalidInput
from voucher.core.permissions import Role

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)


class LoginFailed(DomainError):
    code = "login_failed"
    status = 401
    default_message = "用户名或密码错误"


class AccountLocked(DomainError):
    code = "account_locked"
    status = 423
    default_message = "连续登录失败次数过多，账户已临时锁定，请 15 分钟后再试或联系管理员"


@lru_cache(maxsize=4)
def _dummy_hash_for(method: str) -> str:
    return generate_password_hash("not-a-password", method=method)


def _dummy_hash() -> str:
    return _dummy_hash_for(current_app.config["PASSWORD_HASH_METHOD"])


def authenticate(username: str, password: str) -> User:
    """Return the user, or raise. Failures count towards a temporary lock; the message never says which part was wrong."""
    user = db.session.scalar(select(User).where(User.username == username.strip()))
    now = utcnow()
    if user is None or not user.is_active_account:
        # Spend the same hashing time as a real check, so timing does not tell which names exist.
        check_password_hash(_dummy_hash(), password)
        raise LoginFailed()
    if user.locked_until and user.locked_until > now:
        raise AccountLocked()
    if not user.check_password(password):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until = now + LOCKOUT
            user.failed_logins = 0
            audit.record("user.locked", user, actor_label="system", after={"locked_until": user.locked_until})
            raise AccountLocked()
        raise LoginFailed()
    user.failed_logins = 0
    user.locked_until = None
    audit.record("user.login", user, actor=user)
    return user


def create_user(
    username: str,
    password: str,
    role: Role,
    *,
    display_name: str | None = None,
    merchant_id: int | None = None,
    store_id: int | None = None,
    actor: User | None = None,
) -> User:
    if len(password) < 8:
        raise InvalidInput("密码至少需要 8 位")
    if db.session.scalar(select(User.id).where(User.username == username)):
        raise InvalidInput(f"用户名 {username} 已存在")
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
