"""Liveness and readiness for a load balancer or an orchestrator. No login, no personal data."""
from __future__ import annotations

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Blueprint, current_app, jsonify
from sqlalchemy import Connection, func, select, text
from sqlalchemy.exc import SQLAlchemyError

from voucher.core.db import db
from voucher.core.permissions import public
from voucher.jobs.models import SchedulerHeartbeat
from voucher.jobs.runner import clock_running
from voucher.vouchers import admission

#: with the scheduler on, some process must have ticked this recently (it ticks every 30 s)

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@public
def healthz():
    """The process is up and serving."""
    return jsonify(status="ok")


def migration_heads() -> set[str]:
    config = current_app.extensions["migrate"].migrate.get_config()
    return set(ScriptDirectory.from_config(config).get_heads())


@bp.get("/readyz")
@public
def readyz():
    """Ready for traffic: the database answers and its schema is at the migrations' head; with
    SCHEDULER_ENABLED, some process (any) ticked the scheduler in the last few minutes."""
    checks: dict[str, str] = {}
    # A request with a staff cookie has read its session already; on SQLite that transaction holds the
    # write lock (BEGIN IMMEDIATE), and the probe's own connection below would wait it out and fail.
    db.session.rollback()
    try:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            current = set(MigrationContext.configure(connection).get_current_heads())
            checks["database"] = "ok"
            checks["migrations"] = "ok" if current == migration_heads() else "behind: run flask db upgrade"
            if current_app.config["SCHEDULER_ENABLED"] and checks["migrations"] == "ok":
                checks["scheduler"] = _scheduler_check(connection)
    except SQLAlchemyError:
        checks["database"] = "unreachable"
    # Not a reason to take the server out of rotation: without Redis, claims take the database path.
    admission_state = admission.state()
    ready = all(value == "ok" for value in checks.values())
    if admission_state != "off":
        checks["admission"] = admission_state
    return jsonify(status="ready" if ready else "not_ready", checks=checks), 200 if ready else 503


def _scheduler_check(connection: Connection) -> str:
    ticked = connection.execute(select(func.max(SchedulerHeartbeat.ticked_at))).scalar()
    if ticked is None:
        return "stale: no tick recorded"
    if not clock_running(ticked):
        return f"stale: last tick {ticked.isoformat(timespec='seconds')}Z"
    return "ok"
