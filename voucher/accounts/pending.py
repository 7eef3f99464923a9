"""A sign-in waiting for its second factor: the password held, the code not yet given.

Kept in the signed session cookie (it cannot be forged, and it is nobody's session yet): the user's id,
when the password was checked and where to go afterwards. It lasts PENDING_TTL; the code must come from
the same browser within it. A copy of the cookie gains nothing without a fresh code, and every code
tried counts towards the account's lock (accounts/services.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import session

from voucher.core.clock import utcnow

KEY = "two_factor_pending"
PENDING_TTL = timedelta(minutes=5)


@dataclass(frozen=True)
class Pending:
    user_id: int
    target: str


def start(user_id: int, target: str) -> None:
    session[KEY] = {"user_id": user_id, "at": utcnow().isoformat(), "target": target}


def current() -> Pending | None:
    """The sign-in waiting in this browser, if any and not too old."""
    value = session.get(KEY)
    if not isinstance(value, dict):
        return None
    try:
        started = datetime.fromisoformat(value["at"])
        user_id = int(value["user_id"])
        target = str(value["target"])
    except (KeyError, TypeError, ValueError):
        return None
    if not timedelta(0) <= utcnow() - started <= PENDING_TTL:
        forget()
        return None
    return Pending(user_id, target)


def forget() -> None:
    session.pop(KEY, None)
