"""One place for "now": naive UTC in the database, Asia/Shanghai on screen."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Asia/Shanghai")


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def to_local(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc).astimezone(LOCAL_TZ)


def local_day_end_utc(day: date) -> datetime:
    """The last instant of a local calendar day, as naive UTC (validity runs to 23:59:59 Beijing time)."""
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=LOCAL_TZ) - timedelta(microseconds=1)
    return end.astimezone(timezone.utc).replace(tzinfo=None)


def local_day_start_utc(day: date) -> datetime:
    start = datetime.combine(day, time.min, tzinfo=LOCAL_TZ)
    return start.astimezone(timezone.utc).replace(tzinfo=None)


def local_today() -> date:
    return datetime.now(LOCAL_TZ).date()
