from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, DateTime, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from voucher.core.db import Model, intpk
from voucher.core.enum_check import one_of


class JobStatus(str, enum.Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # may be tried again at next_attempt_at, until its attempts are used up
    #: a background job (jobs/background.py) started from a page, waiting for the clock to pick it up
    QUEUED = "queued"


JOB_STATUS_LABELS = {"running": "运行中", "succeeded": "成功", "failed": "失败", "queued": "排队中"}


class JobRun(Model):
    """One run of a scheduled job for one schedule slot.

    The unique (job, slot) is the lock: whichever process inserts the row runs the slot, and every
    other process's insert conflicts and skips it, however many web workers or servers tick.
    """

    __tablename__ = "job_runs"
    __table_args__ = (
        UniqueConstraint("job", "slot"),
        one_of("status", JobStatus, name="status_known"),
        CheckConstraint("attempts >= 1", name="attempts_positive"),
    )

    id: Mapped[intpk]
    job: Mapped[str] = mapped_column(String(60))
    #: the schedule slot ("2026-11-24", "2026-11-24T10:05") or "manual-<uuid>" for a hand run
    slot: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(12), default=JobStatus.RUNNING.value)
    attempts: Mapped[int] = mapped_column(default=1)
    #: when the current attempt started (naive UTC)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    #: when a failed run may be tried again; None once attempts are used up
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    #: a short error message (exception type and text), never personal data
    error: Mapped[str | None] = mapped_column(Text)
    #: what the job did, e.g. counts
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: host:pid of the process that ran the latest attempt
    holder: Mapped[str] = mapped_column(String(80))
    #: a background job's progress: units done (vouchers minted, entries drawn) out of total
    done: Mapped[int] = mapped_column(default=0, server_default="0")
    total: Mapped[int | None]
    #: who started a background job (its work is done in their name)
    started_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    @property
    def status_label(self) -> str:
        return JOB_STATUS_LABELS[self.status]


class SchedulerHeartbeat(Model):
    """The last tick of each process running the scheduler, so any process can tell /readyz
    whether the clock is still going."""

    __tablename__ = "scheduler_heartbeats"

    #: host:pid
    holder: Mapped[str] = mapped_column(String(80), primary_key=True)
    ticked_at: Mapped[datetime] = mapped_column(DateTime)
