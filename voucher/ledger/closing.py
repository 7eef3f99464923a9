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
from voucher.ledger.models import AccountKind
from voucher.ledger.periods import ClosedPeriod
from voucher.ledger.verify import LedgerReads, read_ledger, verify_postings

if TYPE_CHECKING:  # the actor's type only; the ledger keys users by id
    from voucher.accounts.models import User

#: checks a close runs besides the ledger's own, by name (registering twice replaces): (label, check)
_CHECKS: dict[str, tuple[str, Callable[[Session, LedgerReads], list[str]]]] = {}
#: what the ledger's own verification covers, as the periods page lists it
LEDGER_CHECK = "账簿自身：每笔分录借贷平衡，资金来源账户不为正、其他账户不为负，各活动账户合计为零"


def register_check(name: str, check: Callable[[Session, LedgerReads], list[str]], label: str) -> None:
    """Run `check(session, ledger)` (one Chinese line per problem) before every month-end close; `ledger`
    is what the ledger's own checks read in the same snapshot. `label` says in Chinese what it checks: the
    close records it, so the periods page shows what each close verified."""
    _CHECKS[name] = (label, check)


def close_period(period: str, actor: User, now: datetime | None = None) -> ClosedPeriod:
    now = now or utcnow()
    try:
        first = date.fromisoformat(period + "-01")
    except ValueError:
        raise InvalidInput("会计期间格式应为 YYYY-MM") from None
    if first >= to_local(now).date().replace(day=1):
        raise InvalidTransition(f"{period} 尚未结束，不能结账")
    serialize("ledger.close_period")  # two officers closing at once: the second finds it closed
    if db.session.scalar(select(ClosedPeriod.id).where(ClosedPeriod.period == period, ClosedPeriod.in_force_sql())):
        raise InvalidTransition(f"{period} 已结账")
    if not _CHECKS:  # fail closed: a close that compared the ledger with nothing is no close
        raise InvalidTransition("整体账务核对未登记，不能结账")
    with consistent_reads() as snapshot:  # redemptions go on while finance closes the month
        ledger = read_ledger(snapshot)
        problems = verify_postings(snapshot, ledger)
        for _, check in _CHECKS.values():
            problems += check(snapshot, ledger)
    if problems:
        raise InvalidTransition(f"账务核对未通过，不能结账：{problems[0]}")
    verified = {
        "checks": [LEDGER_CHECK] + [label for label, _ in _CHECKS.values()],
        "accounts": len(ledger.accounts),
        "campaigns": len(ledger.campaign_balances),
        # every fen ever funded, as the close saw it: the sum of the funding accounts (negative by sign)
        "funded_fen": -sum(b for a, b in ledger.balances.items()
                           if a in ledger.accounts and ledger.accounts[a].kind == AccountKind.FUNDING.value),
    }
    closed = ClosedPeriod(period=period, closed_at=now, closed_by_id=actor.id, verified=verified)
    db.session.add(closed)
    db.session.flush()
    audit.record("period.close", closed, actor=actor, after={"period": period, **verified})
    return closed


def reopen_period(period: str, actor: User, reason: str | None, now: datetime | None = None) -> ClosedPeriod:
    """An administrator's 重新开放: the month's close stops being in force, so postings dated in it are
    accepted again (a correction that cannot wait for the open month). The close stays on record with who
    reopened it, when and why; finance closes the month again after the correction, verified afresh."""
    now = now or utcnow()
    why = (reason or "").strip()
    if not why:
        raise InvalidInput("重新开放已结账期间须填写原因")
    serialize("ledger.close_period")  # not while the same month is being closed
    closed = db.session.scalar(select(ClosedPeriod).where(
        ClosedPeriod.period == period, ClosedPeriod.in_force_sql()).with_for_update())
    if closed is None:
        raise InvalidTransition(f"{period} 未结账或已重新开放")
    closed.reopened_at, closed.reopened_by_id, closed.reopen_reason = now, actor.id, why
    audit.record("period.reopen", closed, actor=actor, before={"period": period, "closed_at": f"{to_local(closed.closed_at):%Y-%m-%d %H:%M}"},
                 after={"reason": why})
    return closed


