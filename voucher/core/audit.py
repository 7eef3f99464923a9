"""The audit log: who did what, when, to which object, with its state before and after.

Append-only and tamper-evident (voucher/core/audit_chain.py): each record carries an HMAC of its content
written with it, database triggers refuse UPDATE and DELETE, and a sealing job chains the records in id
order so that an edited, deleted, inserted or reordered record shows in `flask audit verify`."""
from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from flask import current_app
from sqlalchemy import JSON, ForeignKey, Index, String, bindparam, select
from sqlalchemy.orm import Mapped, mapped_column

from voucher.core import keyed_mac
from voucher.core.clock import utcnow
from voucher.core.db import Model, connection, created_at, intpk


class AuditEntry(Model):
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
    #: HMAC of the content (audit_chain.content_mac) under the key `mac_key` (HMAC-SHA256, or HMAC-SM3
    #: where the ring names it for that key id); null on records
    #: written before the chain existed (their content is bound by the first seal instead)
    mac: Mapped[str | None] = mapped_column(String(64))
    mac_key: Mapped[str | None] = mapped_column(String(16))


def record(action: str, obj: Any, **who_and_what: Any) -> None:
    """Write an audit entry in the current transaction (the caller commits); the keywords are row()'s.
    A plain INSERT, not an ORM object: every redemption and claim writes one, and nothing reads it
    back in the request."""
    write(row(action, obj, **who_and_what))


def write(values: dict[str, Any]) -> None:
    connection().execute(_INSERT, signed(values))


#: the columns a record's MAC covers, in this order. Not object_id: the redemption hot path learns it
#: from the same statement that writes the record; the seal (audit_chain) binds it, with the id.
MAC_FIELDS = ("at", "actor_id", "actor_label", "action", "object_type", "before", "after")


def _canonical(values: dict[str, Any]) -> bytes:
    content = [values[name].isoformat() if name == "at" else values[name] for name in MAC_FIELDS]
    return json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def content_mac(values: dict[str, Any], key: bytes) -> str:
    """HMAC of a record's content, as written and as read back, under the key's algorithm."""
    return keyed_mac.hexdigest(key, _canonical(values))


def signed(values: dict[str, Any]) -> dict[str, Any]:
    """The values with their MAC under the active key. The states go through JSON first, so the MAC is
    of what the database keeps (an int key becomes a string, a tuple a list) and verifies when read back."""
    values = dict(values)
    for name in ("before", "after"):
        if values.get(name) is not None:
            values[name] = json.loads(json.dumps(values[name], ensure_ascii=False))
    key_id = current_app.config["AUDIT_MAC_ACTIVE_KEY_ID"]
    values["mac"] = content_mac(values, current_app.config["AUDIT_MAC_KEYS"][key_id])
    values["mac_key"] = key_id
    return values


def row(
    action: str,
    obj: Any,
    *,
    actor: Any = None,
    actor_label: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """The column values of an audit entry (for a caller that writes it inside a statement of its own).
    `at` dates it (default now): a service told when its change happened passes that on."""
    return {
        # set here, not by the column default: the record's MAC covers it
        "at": at or utcnow(),
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


_IN_ONE_STATEMENT: dict[object, tuple[str, dict[str, Any]]] = {}


def in_one_statement(conn: Any, key: object, build: Callable[[], tuple[Any, ...]]) -> tuple[str, dict[str, Any]]:
    """PostgreSQL: a data-changing statement and its audit entry in one statement, one round trip where
    they took two. build() gives (rows, answer, *others): the change as a CTE returning the changed
    row's `id` (the entry's object), the SELECT the statement answers with, and further CTEs to run
    with it. The entry's values are the parameters of entry_parameters(); no row changed, no entry.
    Built and compiled once per `key` (SQLAlchemy does not cache statements with DML in a CTE); run it
    with conn.exec_driver_sql(sql, constants | parameters)."""
    if key not in _IN_ONE_STATEMENT:
        rows, answer, *others = build()
        entries = AuditEntry.__table__
        names = [*MAC_FIELDS, "mac", "mac_key"]
        logged = entries.insert().from_select(
            [*names, "object_id"],
            select(*[bindparam(f"a_{name}", type_=entries.c[name].type) for name in names], rows.c.id),
        ).cte("logged")
        compiled = answer.add_cte(*others, logged).compile(dialect=conn.dialect)
        # the statement's own constants (a new status, say) travel as parameters too
        constants = {name: value for name, value in compiled.params.items() if value is not None}
        _IN_ONE_STATEMENT[key] = (str(compiled), constants)
    return _IN_ONE_STATEMENT[key]


def entry_parameters(values: dict[str, Any]) -> dict[str, Any]:
    """An entry's values (row()'s, object_id aside), signed, as in_one_statement's parameters."""
    params = {f"a_{name}": value for name, value in signed(values).items() if name != "object_id"}
    for name in ("a_before", "a_after"):
        params[name] = None if params[name] is None else json.dumps(params[name])
    return params
