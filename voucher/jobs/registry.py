"""What runs when: each job's name, label, schedule and function.

A job function takes `now` (naive UTC) and returns a small JSON-able summary of what it did. It does
all its work in the caller's transaction and never commits: the runner commits the work together
with the run's success, or rolls all of it back.

`now` is the instant the run stands for. A daily job gets its slot's scheduled time (so a run that is
late or retried still works on its own day); an interval job and a hand run get the present.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Callable

from voucher.core.clock import LOCAL_TZ, to_local

JobFunction = Callable[[datetime], dict[str, Any]]


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


@dataclass(frozen=True)
class Job:
    name: str
    #: shown on the admin page
    label: str
    schedule: Schedule
    run: JobFunction


_JOBS: dict[str, Job] = {}


def register(name: str, label: str, schedule: Schedule, run: JobFunction) -> Job:
    """Add a job (or replace one of the same name). Names are stored in job_runs: keep them stable."""
    if not name or len(name) > 60:
        raise ValueError("a job name is 1 to 60 characters")
    job = Job(name, label, schedule, run)
    _JOBS[name] = job
    return job


def unregister(name: str) -> None:
    _JOBS.pop(name, None)


def jobs() -> list[Job]:
    _load_builtin()
    return list(_JOBS.values())


def get(name: str) -> Job | None:
    _load_builtin()
    return _JOBS.get(name)


_loaded = False


def _load_builtin() -> None:
    """Register the product's jobs on first use (they import services, which import models)."""
    global _loaded
    if not _loaded:
        _loaded = True
        from voucher.jobs import tasks

        for args in tasks.JOBS:
            if args[0] not in _JOBS:
                register(*args)
