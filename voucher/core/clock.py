"""One place for "now": naive UTC in the database, Asia/Shanghai on screen.

Every "now", "today" and "yesterday" in the product comes from here, so that a test (or a demo) can
move the whole process's clock with `travel_to` and every daily slot, business day, month end,
reversal window and voucher validity follows it. The moved clock keeps ticking: only its origin moves.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Asia/Shanghai")

# How far this process's clock stands from the machine's: zero except under `travel_to`.
_shift = timedelta(0)


def _machine_utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def utcnow() -> datetime:
    return _machine_utcnow() + _shift


def as_naive_utc(moment: datetime) -> datetime:
    """An aware moment as naive UTC; a naive one is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def to_local(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc).astimezone(LOCAL_TZ)


def local_moment(day: date, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    """A Beijing wall-clock time as naive UTC."""
    return as_naive_utc(datetime.combine(day, time(hour, minute, second), tzinfo=LOCAL_TZ))


def local_day_end_utc(day: date) -> datetime:
    """The last instant of a local calendar day, as naive UTC (validity runs to 23:59:59 Beijing time)."""
    return local_day_start_utc(day + timedelta(days=1)) - timedelta(microseconds=1)


def local_day_start_utc(day: date) -> datetime:
    return local_moment(day)


def local_today() -> date:
    return to_local(utcnow()).date()


def set_clock(moment: datetime | None) -> None:
    """Move this process's clock so that it reads `moment` now (aware, or naive UTC); None puts it back."""
    global _shift
    _shift = timedelta(0) if moment is None else as_naive_utc(moment) - _machine_utcnow()


@contextmanager
def travel_to(moment: datetime) -> Iterator[None]:
    """`set_clock(moment)` for the duration of a block, then back to where the clock was."""
    global _shift
    before = _shift
    set_clock(moment)
    try:
        yield
    finally:
        _shift = before
