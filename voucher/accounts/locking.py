"""Locking one account's row, for the services that change it (accounts/services.py, two_factor.py)."""
from __future__ import annotations

from sqlalchemy import select

from voucher.accounts.models import User
from voucher.core.db import db
from voucher.core.errors import NotFound


def lock_user(user_id: int) -> User:
    """The account's row, locked until the transaction ends (FOR UPDATE; SQLite's BEGIN IMMEDIATE
    already lets one writer in): two changes to one account, such as a reset and a sign-in, or two tabs
    confirming two-factor at once, queue instead of both acting on what each read before the other."""
    # populate_existing: the caller usually holds this user already (the signed-in one, or the row an
    # administrator's page loaded), read before the lock; its fields are read again under the lock.
    user = db.session.scalar(
        select(User).where(User.id == user_id).with_for_update().execution_options(populate_existing=True))
    if user is None:
        raise NotFound("找不到该用户")
    return user
