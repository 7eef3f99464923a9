"""Running jobs once per schedule slot, across any number of processes and servers.

A run is claimed by inserting its job_runs row (job, slot): the unique constraint lets one process
win and the others skip, whatever the clock skew between them. The claim is committed at once; the
job's work then runs in its own transaction and commits together with the run's success, guarded by
the run's status and attempt number (a lease fence: a run taken over by another process cannot also
commit). A failure rolls the work back, is recorded with its error, and is retried after a backoff by
whichever process claims the retry first (an UPDATE guarded by the status, so only one does).
"""
from __future__ import annotations

import logging
import os
import socket
import time
import traceback
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, delete, func, not_, select, update
from sqlalchemy.exc import SQLAlchemyError

from voucher.core import audit
from voucher.core.clock import utcnow
from voucher.core.db import db, rowcount
from voucher.core.errors import DomainError, NotFound
from voucher.core.upsert import insert_ignore
from voucher.jobs import registry
from voucher.jobs.models import JobRun, SchedulerHeartbeat
from voucher.jobs.registry import Job

logger = logging.getLogger(__name__)

#: wait before attempt 2, 3, 4; after the last one fails the run stays failed
BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30))
MAX_ATTEMPTS = len(BACKOFF) + 1
#: a run still "running" after this long lost its process: it is marked failed (and retried)
RUNNING_TIMEOUT = timedelta(minutes=30)
MANUAL_PREFIX = "manual-"
STALE_ERROR = "超时未完成：运行它的进程可能已中断"
#: no tick for this long: no process runs the clock (the jobs page says so, /readyz answers 503)
CLOCK_STALE_AFTER = timedelta(minutes=5)


class LeaseLost(Exception):
    """The run was taken over by another process (it ran past RUNNING_TIMEOUT)."""


@dataclass(frozen=True)
class Outcome:
    job: str
    slot: str
    run_id: int
    #: succeeded, failed, or lost (taken over by another process; this attempt's work was rolled back)
    status: str
    attempts: int
    summary: dict[str, Any] | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


def holder() -> str:
    """host:pid, computed per call: a forked worker has its own pid."""
    return f"{socket.gethostname()}:{os.getpid()}"[:80]


def tick(now: datetime | None = None) -> list[Outcome]:
    """One beat of the clock: run every job whose current slot nobody has claimed yet, then the
    retries that are due. Safe to call from any number of processes at once."""
    now = now or utcnow()
    _beat(now)
    _fail_stale_runs(now)
    outcomes = []
    for job in registry.jobs():
        slot = job.schedule.due_slot(now)
        run_id = _claim(job.name, slot, now)
        db.session.commit()  # the claim stands on its own: the work below may roll back
        if run_id is not None:
            outcomes.append(_execute(job, run_id, slot, 1, now))
    outcomes.extend(_retry_due(now))
    from voucher.jobs import background  # it builds on this module

    outcomes.extend(background.run_pending(now))
    return outcomes


def run_now(name: str, actor: Any = None, now: datetime | None = None) -> Outcome:
    """Run a job by hand, outside its schedule (slot "manual-<uuid>"); not retried if it fails."""
    job = registry.get(name)
    if job is None:
        raise NotFound("没有这个定时任务")
    now = now or utcnow()
    slot = MANUAL_PREFIX + uuid.uuid4().hex
    run_id = _claim(job.name, slot, now)
    assert run_id is not None  # a manual slot is new (a fresh uuid): nobody else can hold it
    audit.record("job.run_now", JobRun(id=run_id), actor=actor, after={"job": job.name, "slot": slot})
    db.session.commit()
    return _execute(job, run_id, slot, 1, now)


def _claim(name: str, slot: str, now: datetime) -> int | None:
    """Insert the run's row; its id if this process won the slot, None if another one has it."""
    return db.session.scalar(
        insert_ignore(JobRun)
        .values(job=name, slot=slot, status="running", attempts=1, started_at=now, holder=holder())
        .returning(JobRun.id)
    )


def _execute(job: Job, run_id: int, slot: str, attempt: int, now: datetime) -> Outcome:
    started = time.monotonic()

    def finished_at() -> datetime:
        return now + timedelta(seconds=time.monotonic() - started)

    try:
        summary = job.run(job.schedule.run_time(slot, now)) or {}
        done = db.session.execute(
            update(JobRun)
            .where(JobRun.id == run_id, JobRun.status == "running", JobRun.attempts == attempt)
            .values(status="succeeded", finished_at=finished_at(), summary=summary, error=None, next_attempt_at=None)
            .execution_options(synchronize_session=False)
        )
        if rowcount(done) != 1:
            raise LeaseLost()
        db.session.commit()  # the job's work and its success, together
    except LeaseLost:
        db.session.rollback()
        logger.warning("job %s slot %s attempt %d: taken over by another process, work rolled back",
                       job.name, slot, attempt)
        return Outcome(job.name, slot, run_id, "lost", attempt)
    except Exception as error:  # noqa: BLE001 - any failure is recorded; the work is rolled back
        db.session.rollback()
        message = short_error(error)
        _log_failure(job.name, slot, attempt, message, error)
        retry_at = None
        if not slot.startswith(MANUAL_PREFIX) and attempt < MAX_ATTEMPTS:
            retry_at = finished_at() + BACKOFF[attempt - 1]
        db.session.execute(
            update(JobRun)
            .where(JobRun.id == run_id, JobRun.status == "running", JobRun.attempts == attempt)
            .values(status="failed", finished_at=finished_at(), error=message, next_attempt_at=retry_at)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        return Outcome(job.name, slot, run_id, "failed", attempt, error=message)
    logger.info("job %s slot %s attempt %d succeeded: %s", job.name, slot, attempt, summary)
    return Outcome(job.name, slot, run_id, "succeeded", attempt, summary=summary)


def _retry_due(now: datetime) -> list[Outcome]:
    due = db.session.execute(
        select(JobRun.id, JobRun.job, JobRun.slot)
        .where(JobRun.status == "failed", JobRun.next_attempt_at <= now)
        .order_by(JobRun.next_attempt_at, JobRun.id)
    ).all()
    db.session.rollback()  # end the read (on SQLite it holds the write lock)
    outcomes = []
    for run_id, name, slot in due:
        job = registry.get(name)
        if job is None:  # a job since removed from the registry
            continue
        attempt = claim_retry(run_id, now)
        if attempt is not None:  # None: another process claimed this retry first
            outcomes.append(_execute(job, run_id, slot, attempt, now))
    return outcomes


def claim_retry(run_id: int, now: datetime) -> int | None:
    """Take a failed run whose retry is due: its new attempt number, or None if another process took
    it first (the guarded UPDATE changes the row for one of them only). Committed at once."""
    attempt = db.session.scalar(
        update(JobRun)
        .where(JobRun.id == run_id, JobRun.status == "failed", JobRun.next_attempt_at <= now)
        .values(status="running", attempts=JobRun.attempts + 1, started_at=now, finished_at=None,
                next_attempt_at=None, holder=holder())
        .returning(JobRun.attempts)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return attempt


def _fail_stale_runs(now: datetime) -> None:
    """A run left "running" past the timeout lost its process (its work was never committed):
    mark it failed, due for a retry at once if it has attempts left."""
    retry = and_(JobRun.attempts < MAX_ATTEMPTS, not_(JobRun.slot.startswith(MANUAL_PREFIX)))
    db.session.execute(
        update(JobRun)
        .where(JobRun.status == "running", JobRun.started_at < now - RUNNING_TIMEOUT)
        .values(status="failed", finished_at=now, error=STALE_ERROR, next_attempt_at=case((retry, now), else_=None))
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def _beat(now: datetime) -> None:
    """Record this process's tick, for /readyz; forget processes silent for a day."""
    me = holder()
    touched = rowcount(db.session.execute(
        update(SchedulerHeartbeat).where(SchedulerHeartbeat.holder == me).values(ticked_at=now)
        .execution_options(synchronize_session=False)
    ))
    if not touched:
        db.session.execute(insert_ignore(SchedulerHeartbeat).values(holder=me, ticked_at=now))
    db.session.execute(delete(SchedulerHeartbeat).where(SchedulerHeartbeat.ticked_at < now - timedelta(days=1)))
    db.session.commit()


def last_tick() -> datetime | None:
    """The latest tick of any process."""
    return db.session.scalar(select(func.max(SchedulerHeartbeat.ticked_at)))


def clock_running(ticked: datetime | None, now: datetime | None = None) -> bool:
    """Whether some process ticked recently enough for the schedule to be kept (a tick every 30 s)."""
    return ticked is not None and (now or utcnow()) - ticked <= CLOCK_STALE_AFTER


def latest_runs() -> dict[str, JobRun]:
    """Each job's most recent run (scheduled or by hand)."""
    latest = select(func.max(JobRun.id)).group_by(JobRun.job)
    return {run.job: run for run in db.session.scalars(select(JobRun).where(JobRun.id.in_(latest)))}


def recent_failures(limit: int = 20) -> list[JobRun]:
    return list(db.session.scalars(
        select(JobRun).where(JobRun.status == "failed").order_by(JobRun.id.desc()).limit(limit)
    ))


def short_error(error: BaseException) -> str:
    """What is stored and shown: the error's type and message, never a statement's parameters."""
    if isinstance(error, DomainError):
        return error.message[:300]
    if isinstance(error, SQLAlchemyError):  # its text carries the SQL and its bound values
        orig = getattr(error, "orig", None)
        return type(error).__name__ + (f"（{type(orig).__name__}）" if orig is not None else "")
    return f"{type(error).__name__}: {error}"[:300]


def _log_failure(name: str, slot: str, attempt: int, message: str, error: BaseException) -> None:
    # The traceback's frames, without the exception's text (a database error's text holds values).
    frames = "".join(traceback.format_tb(error.__traceback__))
    logger.error("job %s slot %s attempt %d failed: %s\n%s", name, slot, attempt, message, frames)
