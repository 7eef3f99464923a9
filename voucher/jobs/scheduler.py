"""The in-process clock: an APScheduler 3 background thread that calls tick() every 30 seconds.

Every web process may run one; job_runs' unique (job, slot) makes each slot run once whatever their
number. Without it (SCHEDULER_ENABLED off), `flask jobs tick` from cron does the same.
"""
from __future__ import annotations

import atexit
import logging
import os
from datetime import datetime

import click
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask

from voucher.core.clock import LOCAL_TZ
from voucher.core.db import db

logger = logging.getLogger(__name__)

TICK_SECONDS = 30


def start_scheduler(app: Flask) -> BackgroundScheduler:
    def beat() -> None:
        from voucher.jobs.runner import tick

        with app.app_context():
            try:
                tick()
            except Exception:  # noqa: BLE001 - a failed tick (database away) must not stop the clock
                db.session.rollback()
                logger.exception("scheduler tick failed")

    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # not a line per tick
    scheduler = BackgroundScheduler(timezone=LOCAL_TZ, daemon=True)
    # One tick at a time per process; ticks missed while one ran long are merged into one.
    scheduler.add_job(beat, "interval", seconds=TICK_SECONDS, id="tick", name="voucher jobs tick", max_instances=1, coalesce=True,
                      misfire_grace_time=TICK_SECONDS, next_run_time=datetime.now(LOCAL_TZ))
    scheduler.start()
    atexit.register(lambda: scheduler.shutdown(wait=False) if scheduler.running else None)
    app.extensions["scheduler"] = scheduler
    logger.info("scheduler started: a tick every %d s", TICK_SECONDS)
    return scheduler


def wake_scheduler(app: Flask) -> None:
    """Tick now rather than at the next beat (a page just queued a background job). Without a clock in
    this process (SCHEDULER_ENABLED off), the next tick of any process, or `flask jobs tick`, runs it."""
    scheduler = app.extensions.get("scheduler")
    if scheduler is not None and scheduler.running:
        try:
            scheduler.modify_job("tick", next_run_time=datetime.now(LOCAL_TZ))
        except Exception:  # noqa: BLE001 - the beat in 30 s picks the job up anyway
            logger.warning("could not wake the scheduler", exc_info=True)


def should_start(app: Flask) -> bool:
    """SCHEDULER_ENABLED, and not inside a `flask` command other than `flask run`: a migration or a
    hand-run job must not start a clock of its own."""
    if not app.config["SCHEDULER_ENABLED"]:
        return False
    if os.environ.get("FLASK_RUN_FROM_CLI") != "true":
        return True
    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.info_name == "run"
