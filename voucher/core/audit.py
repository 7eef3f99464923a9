"""The audit log: who did what, when, to which object, with its state before and after."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from voucher.core.db import connection, created_at, db, intpk


class AuditEntry(db.Model):
    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_object", "object_type", "object_id"),)

    id: Mapped[intpk]
    at: Mapped[created_at]
    #: the staff user who acted; null for a citizen or the system
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    #: how the actor is shown: a username, "市民#<id>" or "system" (never a phone number)
    actor_label: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(60), index=True)
    object_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[int | None]
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)


def record(action: str, obj: Any, **who_and_what: Any) -> None:
    """Write an audit entry in the current transaction (the caller commits); the keywords are row()'s.
    A plain INSERT, not an ORM object: every redemption and claim writes one, and nothing reads it
    back in the request."""
    write(row(action, obj, **who_and_what))


def write(values: dict[str, Any]) -> None:
    connection().execute(_INSERT, values)


def row(
    action: str,
    obj: Any,
    *,
    actor: Any = None,
    actor_label: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The column values of an audit entry (for a caller that writes it inside a statement of its own)."""
    return {
        "actor_id": getattr(actor, "id", None),
        "actor_label": actor_label or getattr(actor, "username", None) or "system",
        "action": action,
        "object_type": type(obj).__tablename__ if hasattr(type(obj), "__tablename__") else type(obj).__name__,
        "object_id": getattr(obj, "id", None),
        "before": _jsonable(before),
        "after": _jsonable(after),
    }


_INSERT = AuditEntry.__table__.insert()


def _jsonable(state: dict[str, Any] | None) -> dict[str, Any] | None:
    if state is None:
        return None
    out: dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(value, (date, datetime)):
            value = value.isoformat()
        elif hasattr(value, "value") and not isinstance(value, (int, str)):
            value = value.value
        out[key] = value
    return out
