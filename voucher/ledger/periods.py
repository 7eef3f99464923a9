"""Month-end close: once finance closes a month, nothing more is posted with a date in it.

Postings are dated when they are written, so a closed month (always one that has ended) can only be
reached by a posting dated explicitly in the past; corrections go into the open month instead, as the
domain's own reversing entries (a reversed redemption, a budget change), never as edits.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import DateTime, ForeignKey, String, select
from sqlalchemy.orm import Mapped, mapped_column

from voucher.accounts.models import User
from voucher.core import audit
from voucher.core.clock import local_day_start_utc, local_today, to_local, utcnow
from voucher.core.db import consistent_reads, db, intpk, serialize
from voucher.core.errors import DomainError, InvalidInput, InvalidTransition
from voucher.ledger.verify import verify_ledger


class PeriodClosed(DomainError):
    code = "period_closed"
    status = 409
    default_message = "会计期间已结账，不能记入"


class ClosedPeriod(db.Model):
    __tablename__ = "closed_periods"

    id: Mapped[intpk]
    #: "YYYY-MM", the local calendar month
    period: Mapped[str] = mapped_column(String(7), unique=True)
    closed_at: Mapped[datetime] = mapped_column(DateTime)
    closed_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))


def period_of(moment: datetime) -> str:
    return f"{to_local(moment):%Y-%m}"


def require_open(moment: datetime) -> None:
    """Refuse a posting dated in a closed month. A posting dated in the current month never queries:
    the current month cannot be closed."""
    if moment >= local_day_start_utc(local_today().replace(day=1)):
        return
    period = period_of(moment)
    if db.session.scalar(select(ClosedPeriod.id).where(ClosedPeriod.period == period)):
        raise PeriodClosed(f"会计期间 {period} 已结账，不能记入；请在当前期间以冲正分录更正")


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
    with consistent_reads() as snapshot:  # redemptions go on while finance closes the month
        problems = verify_ledger(snapshot)
    if problems:
        raise InvalidTransition(f"账务核对未通过，不能结账：{problems[0]}")
    closed = ClosedPeriod(period=period, closed_at=now, closed_by_id=actor.id)
    db.session.add(closed)
    db.session.flush()
    audit.record("period.close", closed, actor=actor, after={"period": period})
    return closed


def closed_periods() -> list[ClosedPeriod]:
    return list(db.session.scalars(select(ClosedPeriod).order_by(ClosedPeriod.period.desc())))
