"""Closed months: once finance closes a month (ledger/closing.py), nothing more is posted with a date in it.

Postings are dated when they are written, so a closed month (always one that has ended) can only be
reached by a posting dated explicitly in the past; corrections go into the open month instead, as the
domain's own reversing entries (a reversed redemption, a budget change), never as edits.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, String, Text, select, text
from sqlalchemy.orm import Mapped, mapped_column

from voucher.core.clock import local_day_start_utc, local_today, to_local
from voucher.core.db import Model, db, intpk
from voucher.core.errors import DomainError


class PeriodClosed(DomainError):
    code = "period_closed"
    status = 409
    default_message = "会计期间已结账，不能记入"


class ClosedPeriod(Model):
    """A month-end close. A close an administrator reopened stays, with who, when and why; the month can
    then be closed again (a new row), so at most one close of a month is in force."""

    __tablename__ = "closed_periods"
    __table_args__ = (
        Index("uq_closed_periods_period_in_force", "period", unique=True,
              sqlite_where=text("reopened_at IS NULL"), postgresql_where=text("reopened_at IS NULL")),
    )

    id: Mapped[intpk]
    #: "YYYY-MM", the local calendar month
    period: Mapped[str] = mapped_column(String(7))
    closed_at: Mapped[datetime] = mapped_column(DateTime)
    closed_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    #: what the close verified: the checks that ran and the ledger's figures they saw (closing.py)
    verified: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reopened_at: Mapped[datetime | None] = mapped_column(DateTime)
    reopened_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reopen_reason: Mapped[str | None] = mapped_column(Text)

    @property
    def in_force(self) -> bool:
        return self.reopened_at is None

    @classmethod
    def in_force_sql(cls):
        return cls.reopened_at.is_(None)


def period_of(moment: datetime) -> str:
    return f"{to_local(moment):%Y-%m}"


def require_open(moment: datetime) -> None:
    """Refuse a posting dated in a closed month. A posting dated in the current month never queries:
    the current month cannot be closed."""
    if moment >= local_day_start_utc(local_today().replace(day=1)):
        return
    period = period_of(moment)
    if db.session.scalar(select(ClosedPeriod.id).where(ClosedPeriod.period == period, ClosedPeriod.in_force_sql())):
        raise PeriodClosed(f"会计期间 {period} 已结账，不能记入；请在当前期间以冲正分录更正")


def closed_periods() -> list[ClosedPeriod]:
    """Every close, newest month first, and within a month the latest close first."""
    return list(db.session.scalars(select(ClosedPeriod).order_by(ClosedPeriod.period.desc(), ClosedPeriod.id.desc())))
