"""Month-end close (月末结账): finance closes a month that has ended, once the ledger and the domains agree.

The ledger checks its own invariants (ledger/verify.py); the whole-system consistency reads every
domain, which the ledger may not import, so it is plugged in from above with register_check()
(voucher/__init__.py). With nothing registered, no month closes: a close that compared the ledger
with nothing would be no close.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from voucher.core import audit
from voucher.core.clock import to_local, utcnow
from voucher.core.db import consistent_reads, db, serialize
from voucher.core.errors import InvalidInput, InvalidTransition
from voucher.ledger.periods import ClosedPeriod
from voucher.ledger.verify import LedgerReads, read_ledger, verify_postings

if TYPE_CHECKING:  # the actor's type only; the ledger keys users by id
    from voucher.accounts.models import User

#: checks a close runs besides the ledger's own, by name (registering twice replaces)
_CHECKS: dict[str, Callable[[Session, LedgerReads], list[str]]] = {}


def register_check(name: str, check: Callable[[Session, LedgerReads], list[str]]) -> None:
    """Run `check(session, ledger)` (one Chinese line per problem) before every month-end close; `ledger`
    is what the ledger's own checks read in the same snapshot."""
    _CHECKS[name] = check


def close_period(period: str, actor: User, now: datetime | None = None) -> ClosedPeriod:
    now = now or utcnow()
    try:
        first = date.fromisoformat(period + "-01")
    except ValueError:
        raise InvalidInput("会计期间格式应为 YYYY-MM") from None
    if first >= to_local(now).date().replace(day=1):
        raise InvalidTransition(f"{period} 尚未结束，不能结账")
    serialize("ledger.close_period")  # two officers closing at once: the second finds it closed
    if db.session.scalar(select(ClosedPeriod.id).where(ClosedPeriod.period == period)):
        raise InvalidTransition(f"{period} 已结账")
    if not _CHECKS:  # fail closed: a close that compared the ledger with nothing is no close
        raise InvalidTransition("整体账务核对未登记，不能结账")
    with consistent_reads() as snapshot:  # redemptions go on while finance closes the month
        ledger = read_ledger(snapshot)
        problems = verify_postings(snapshot, ledger)
        for check in _CHECKS.values():
            problems += check(snapshot, ledger)
    if problems:
        raise InvalidTransition(f"账务核对未通过，不能结账：{problems[0]}")
    closed = ClosedPeriod(period=period, closed_at=now, closed_by_id=actor.id)
    db.session.add(closed)
    db.session.flush()
    audit.record("period.close", closed, actor=actor, after={"period": period})
    return closed


