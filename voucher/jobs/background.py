"""Big rounds in the background: opening a large release, drawing a large lottery.

A page (or the scheduled opening) only starts the work: it inserts a queued job_runs row, (job, slot)
= ("open_release" | "draw_lottery", "release-<id>"), and returns. The row's unique (job, slot) is the
guard against starting twice: a second start, however close, finds the row and is told 已在进行.
The clock's tick (runner.tick) claims a queued row (an UPDATE guarded by its status, so one process
does) and does the work in steps, each its own commit fenced by the run's status and attempt, as
runner._execute fences a scheduled job:

- opening: reserve the money (one posting; the release is then OPENING, so neither a claim nor a
  second opening can touch it), then mint the vouchers still missing, a chunk per commit, then open.
  A crash anywhere leaves a state the next attempt resumes from: the posting is made only while the
  release is SCHEDULED, and a chunk mints quantity less what the release already has.
- a draw: close the entries (DRAWING, committed), then the draw itself, one transaction.

A failed run is retried after runner.BACKOFF, like a scheduled job, or at once when started again
from the page. Progress (done, total) is on the row, for the campaign page and its JSON status.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import or_, select, update

from voucher.accounts.models import User
from voucher.campaigns.models import ReleaseMode, ReleaseStatus
from voucher.campaigns.services import lock_release
from voucher.core import audit
from voucher.core.clock import utcnow
from voucher.core.db import db, rowcount
from voucher.core.errors import InvalidTransition
from voucher.core.upsert import insert_ignore
from voucher.jobs.models import JobRun, JobStatus
from voucher.jobs.runner import BACKOFF, MAX_ATTEMPTS, LeaseLost, Outcome, claim_retry, holder, short_error
from voucher.vouchers import lottery, releases

logger = logging.getLogger(__name__)

OPEN_RELEASE = "open_release"
DRAW_LOTTERY = "draw_lottery"
KINDS = (OPEN_RELEASE, DRAW_LOTTERY)
KIND_LABELS = {OPEN_RELEASE: "开放场次（生成消费券）", DRAW_LOTTERY: "摇号开奖"}
#: what the campaign page and the JSON status say of a run
STATE_LABELS = {"queued": "排队中", "running": "进行中", "succeeded": "已完成", "failed": "失败"}

#: called after each committed step with (run id, done): a test interrupts a job here
after_step: list[Callable[[int, int], None]] = []


class AlreadyRunning(InvalidTransition):
    code = "job_already_running"
    default_message = "该场次的后台任务已在进行，请稍候查看进度"


def slot_of(release_id: int) -> str:
    return f"release-{release_id}"


def threshold() -> int:
    return int(current_app.config["BACKGROUND_ROUND_THRESHOLD"])


def find(kind: str, release_id: int) -> JobRun | None:
    return db.session.scalar(
        select(JobRun).where(JobRun.job == kind, JobRun.slot == slot_of(release_id))
        .execution_options(populate_existing=True)
    )


# Starting ---------------------------------------------------------------------------------------------


def request_open(release_id: int, actor: User | None, now: datetime | None = None) -> JobRun | None:
    """Open a release: a small one at once (None), a big one by starting its job (the run). Refusals
    (not yet time, budget short, ...) come at once either way; a job already queued or running is
    AlreadyRunning; a failed one is started again and resumes where it stopped."""
    now = now or utcnow()
    _, release = lock_release(release_id)  # two starts at once queue here; the second sees the first's row
    run = find(OPEN_RELEASE, release_id)
    _refuse_if_running(run)
    if release.status_enum is ReleaseStatus.OPENING and run is not None:
        return _restart(run, actor, now)  # reserved, part minted: the job resumes
    releases.check_openable(release_id, now)
    if release.quantity < threshold():
        releases.open_release(release_id, actor, now)
        return None
    if run is not None:  # failed before it reserved (the budget was short then): try again
        return _restart(run, actor, now)
    return _start(OPEN_RELEASE, release_id, release.quantity, actor, now)


def request_draw(release_id: int, actor: User, now: datetime | None = None) -> JobRun | None:
    """Draw a lottery: at once (None) if its entries and vouchers are fewer than the threshold, else by
    starting its job (the run)."""
    now = now or utcnow()
    _, release = lock_release(release_id)
    run = find(DRAW_LOTTERY, release_id)
    _refuse_if_running(run)
    if release.status_enum is ReleaseStatus.DRAWING and run is not None:
        return _restart(run, actor, now)
    if release.mode_enum is not ReleaseMode.LOTTERY or release.status_enum is not ReleaseStatus.OPEN:
        raise InvalidTransition("只有报名中的摇号场次可以开奖")
    entries = lottery.entry_count(release_id)
    if max(entries, release.quantity) < threshold():
        lottery.draw(release_id, actor)
        return None
    if run is not None:
        return _restart(run, actor, now)
    return _start(DRAW_LOTTERY, release_id, entries, actor, now)


def _refuse_if_running(run: JobRun | None) -> None:
    if run is not None and run.status in (JobStatus.QUEUED.value, JobStatus.RUNNING.value):
        raise AlreadyRunning(f"该场次的后台任务已在进行（{STATE_LABELS[run.status]}，"
                             f"{run.done:,}/{run.total or 0:,}），请稍候查看进度")


def _start(kind: str, release_id: int, total: int, actor: User | None, now: datetime) -> JobRun:
    run_id = db.session.scalar(
        insert_ignore(JobRun)
        .values(job=kind, slot=slot_of(release_id), status=JobStatus.QUEUED.value, attempts=1, started_at=now,
                holder=holder(), done=0, total=total, started_by_id=getattr(actor, "id", None))
        .returning(JobRun.id)
    )
    if run_id is None:  # inserted meanwhile by another transaction (the release lock makes this rare)
        raise AlreadyRunning()
    audit.record("job.start", JobRun(id=run_id), actor=actor,
                 after={"job": kind, "release_id": release_id, "total": total})
    run = db.session.get(JobRun, run_id)
    assert run is not None
    return run


def _restart(run: JobRun, actor: User | None, now: datetime) -> JobRun:
    """A failed run, started again by hand: queued at once, its attempts counted on."""
    if run.status != JobStatus.FAILED.value:
        raise InvalidTransition("该场次的后台任务已完成")
    run.status = JobStatus.QUEUED.value
    run.attempts += 1
    run.next_attempt_at = None
    run.started_at = now
    run.started_by_id = getattr(actor, "id", None) or run.started_by_id
    audit.record("job.restart", run, actor=actor, after={"job": run.job, "slot": run.slot, "attempt": run.attempts})
    return run


# Running ----------------------------------------------------------------------------------------------


def run_pending(now: datetime | None = None) -> list[Outcome]:
    """Run the queued background jobs and the failed ones whose retry is due (the clock calls this
    every tick). Safe from any number of processes: each run is claimed by one."""
    now = now or utcnow()
    due = db.session.execute(
        select(JobRun.id, JobRun.job, JobRun.slot, JobRun.status)
        .where(JobRun.job.in_(KINDS),
               or_(JobRun.status == JobStatus.QUEUED.value,
                   (JobRun.status == JobStatus.FAILED.value) & (JobRun.next_attempt_at <= now)))
        .order_by(JobRun.id)
    ).all()
    db.session.rollback()  # end the read (on SQLite it holds the write lock)
    outcomes = []
    for run_id, kind, slot, status in due:
        attempt = _claim_queued(run_id, now) if status == JobStatus.QUEUED.value else claim_retry(run_id, now)
        if attempt is not None:
            outcomes.append(execute(run_id, kind, slot, attempt))
    return outcomes


def _claim_queued(run_id: int, now: datetime) -> int | None:
    attempt = db.session.scalar(
        update(JobRun).where(JobRun.id == run_id, JobRun.status == JobStatus.QUEUED.value)
        .values(status=JobStatus.RUNNING.value, started_at=now, finished_at=None, holder=holder(), error=None)
        .returning(JobRun.attempts).execution_options(synchronize_session=False)
    )
    db.session.commit()
    return attempt


def execute(run_id: int, kind: str, slot: str, attempt: int) -> Outcome:
    """One attempt of a claimed run: its steps, each committed with its progress."""
    release_id = int(slot.removeprefix("release-"))
    started_by = db.session.scalar(select(JobRun.started_by_id).where(JobRun.id == run_id))
    try:
        actor = db.session.get(User, started_by) if started_by else None
        if kind == OPEN_RELEASE:
            summary = _open(run_id, attempt, release_id, actor)
        else:
            summary = _draw(run_id, attempt, release_id, actor)
        _record(run_id, attempt, status=JobStatus.SUCCEEDED.value, finished_at=utcnow(), summary=summary,
                error=None, next_attempt_at=None)
        db.session.commit()  # the last step's work and the run's success, together
    except LeaseLost:
        db.session.rollback()
        logger.warning("background %s %s attempt %d: taken over by another process", kind, slot, attempt)
        return Outcome(kind, slot, run_id, "lost", attempt)
    except Exception as error:  # noqa: BLE001 - any failure is recorded; the step's work is rolled back
        db.session.rollback()
        message = short_error(error)
        logger.error("background %s %s attempt %d failed: %s", kind, slot, attempt, message)
        finished = utcnow()
        retry_at = finished + BACKOFF[attempt - 1] if attempt < MAX_ATTEMPTS else None
        db.session.execute(
            update(JobRun).where(JobRun.id == run_id, JobRun.status == JobStatus.RUNNING.value,
                                 JobRun.attempts == attempt)
            .values(status=JobStatus.FAILED.value, finished_at=finished, error=message, next_attempt_at=retry_at)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        return Outcome(kind, slot, run_id, "failed", attempt, error=message)
    logger.info("background %s %s attempt %d succeeded: %s", kind, slot, attempt, summary)
    return Outcome(kind, slot, run_id, "succeeded", attempt, summary=summary)


def _record(run_id: int, attempt: int, **values: Any) -> None:
    """Write the run's progress or result, fenced: if another process took the run over, LeaseLost."""
    done = db.session.execute(
        update(JobRun).where(JobRun.id == run_id, JobRun.status == JobStatus.RUNNING.value,
                             JobRun.attempts == attempt)
        .values(**values).execution_options(synchronize_session=False)
    )
    if rowcount(done) != 1:
        raise LeaseLost()


def _step(run_id: int, attempt: int, done: int) -> None:
    _record(run_id, attempt, done=done)
    db.session.commit()
    for listener in after_step:
        listener(run_id, done)


def _open(run_id: int, attempt: int, release_id: int, actor: User | None) -> dict[str, Any]:
    release = releases.reserve(release_id, actor)  # a no-op when resuming: the release is OPENING
    quantity = release.quantity
    _step(run_id, attempt, releases.minted(release_id))
    chunk = int(current_app.config["BACKGROUND_MINT_CHUNK"])
    while releases.mint_chunk(release_id, chunk):
        _step(run_id, attempt, releases.minted(release_id))
    releases.finish_opening(release_id, actor)
    _record(run_id, attempt, done=quantity)
    return {"opened": [release_id], "vouchers": quantity}


def _draw(run_id: int, attempt: int, release_id: int, actor: User | None) -> dict[str, Any]:
    lottery.close_entries(release_id)
    total = lottery.entry_count(release_id)
    _record(run_id, attempt, total=total)
    _step(run_id, attempt, 0)
    winners = lottery.draw(release_id, actor)
    _record(run_id, attempt, done=total)
    return {"entries": total, "winners": len(winners)}


# Reading ----------------------------------------------------------------------------------------------


def runs_by_release(release_ids: list[int]) -> dict[int, JobRun]:
    """Each release's latest background run (an opening, then its draw)."""
    if not release_ids:
        return {}
    runs = db.session.scalars(
        select(JobRun).where(JobRun.job.in_(KINDS), JobRun.slot.in_([slot_of(i) for i in release_ids]))
        .order_by(JobRun.id)
    )
    return {int(run.slot.removeprefix("release-")): run for run in runs}


def percent(run: JobRun) -> int:
    if run.status == JobStatus.SUCCEEDED.value:
        return 100
    return min(100, run.done * 100 // run.total) if run.total else 0


def status(run: JobRun) -> dict[str, Any]:
    """What the API's poll answers."""
    return {"job": run.job, "job_label": KIND_LABELS.get(run.job, run.job), "state": run.status,
            "state_label": STATE_LABELS.get(run.status, run.status), "done": run.done, "total": run.total,
            "percent": percent(run), "attempts": run.attempts, "error": run.error,
            "retry_at": run.next_attempt_at.isoformat() + "Z" if run.next_attempt_at else None}


def is_active(run: JobRun) -> bool:
    return run.status in (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
