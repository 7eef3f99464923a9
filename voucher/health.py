"""Liveness and readiness for a load balancer or an orchestrator. No login, no personal data."""
from __future__ import annotations

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Blueprint, current_app, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from voucher.core.db import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process is up and serving."""
    return jsonify(status="ok")


def migration_heads() -> set[str]:
    config = current_app.extensions["migrate"].migrate.get_config()
    return set(ScriptDirectory.from_config(config).get_heads())


@bp.get("/readyz")
def readyz():
    """Ready for traffic: the database answers and its schema is at the migrations' head."""
    checks: dict[str, str] = {}
    try:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            current = set(MigrationContext.configure(connection).get_current_heads())
        checks["database"] = "ok"
        checks["migrations"] = "ok" if current == migration_heads() else "behind: run flask db upgrade"
    except SQLAlchemyError:
        checks["database"] = "unreachable"
    ready = all(value == "ok" for value in checks.values())
    return jsonify(status="ready" if ready else "not_ready", checks=checks), 200 if ready else 503
