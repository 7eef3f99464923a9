"""When a job runs: daily at a local time, or every N minutes, and the slot a moment falls in."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from voucher.core.clock import LOCAL_TZ, to_local


@dataclass(frozen=True)
class Schedule:
    """Daily at a local (Asia/Shanghai) time, or every N minutes."""

    daily_at: time | None = None
    every_minutes: int | None = None

    def __post_init__(self) -> None:
        if (self.daily_at is None) == (self.every_minutes is None):
            raise ValueError("a schedule is either daily_at or every_minutes")
        if self.every_minutes is not None and not (0 < self.every_minutes <= 24 * 60 and (24 * 60) % self.every_minutes == 0):
            raise ValueError("every_minutes must divide a day")

    @property
    def label(self) -> str:
        if self.daily_at is not None:
            return f"每天 {self.daily_at:%H:%M}"
        every = self.every_minutes
        assert every is not None  # __post_init__: a schedule is either daily_at or every_minutes
        if every == 1:
            return "每分钟"
        if every % 60 == 0:
            hours = every // 60
            return "每小时" if hours == 1 else f"每 {hours} 小时"
        return f"每 {self.every_minutes} 分钟"

    def due_slot(self, now: datetime) -> str:
        """The latest slot whose time has come: "2026-11-24" (daily) or "2026-11-24T10:05" (local time).

        A daily slot whose time passed while no process was running is still due until the next one:
        the first tick after a restart runs it.
        """
        local = to_local(now)
        if self.daily_at is not None:
            day = local.date() if local.time() >= self.daily_at else local.date() - timedelta(days=1)
            return day.isoformat()
        every = self.every_minutes
        assert every is not None  # __post_init__: a schedule is either daily_at or every_minutes
        minutes = (local.hour * 60 + local.minute) // every * every
        return f"{local.date().isoformat()}T{minutes // 60:02d}:{minutes % 60:02d}"

    def run_time(self, slot: str, now: datetime) -> datetime:
        """The `now` a job function gets for a slot (see the module's doc)."""
        if self.daily_at is None or slot.startswith("manual-"):
            return now
        scheduled = datetime.combine(date.fromisoformat(slot), self.daily_at, tzinfo=LOCAL_TZ)
        return scheduled.astimezone(timezone.utc).replace(tzinfo=None)


def daily(hour: int, minute: int = 0) -> Schedule:
    return Schedule(daily_at=time(hour, minute))


def every(minutes: int) -> Schedule:
    return Schedule(every_minutes=minutes)
