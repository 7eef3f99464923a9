"""What runs when: each job's name, label, schedule and function.

A job function takes `now` (naive UTC) and returns a small JSON-able summary of what it did. It does
all its work in the caller's transaction and never commits: the runner commits the work together
with the run's success, or rolls all of it back.

`now` is the instant the run stands for. A daily job gets its slot's scheduled time (so a run that is
late or retried still works on its own day); an interval job and a hand run get the present.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from voucher.jobs import tasks
from voucher.jobs.schedules import Schedule, daily, every  # noqa: F401 - the names jobs are declared with

JobFunction = Callable[[datetime], dict[str, Any]]


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
    """Register the product's jobs (jobs/tasks.py) on first use, so a test that registers its own first
    (tests' only_jobs) keeps them."""
    global _loaded
    if not _loaded:
        _loaded = True
        for args in tasks.JOBS:
            if args[0] not in _JOBS:
                register(*args)
