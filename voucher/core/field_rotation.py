"""Re-encrypting every encrypted column under the active key (`flask crypto rotate-fields`).

After a new key is added to FIELD_ENCRYPTION_KEYS and made active, values written before stay under
their old key. This rewrites them, in the caller's transaction (the command commits once); when it
reports nothing left under another key, the old keys can leave the ring. The columns are found from
the models' metadata, so a column declared EncryptedString anywhere is covered without being listed.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import Column, String, Table, and_, bindparam, select, type_coerce

from voucher.core.db import db
from voucher.core.field_crypto import EncryptedString, active_ring, key_id_of


@dataclass
class ColumnRotation:
    column: str
    values: int = 0
    #: how many were rewritten, by the key they were under before
    rewritten: Counter[str | None] = field(default_factory=Counter)  # None: in no key's format


def encrypted_columns() -> list[tuple[Table, Column]]:
    return [(table, column) for table in db.metadata.sorted_tables for column in table.columns
            if isinstance(column.type, EncryptedString)]


def rotate_fields() -> list[ColumnRotation]:
    """Rewrite every encrypted value not under the active key; returns what was done per column."""
    _, active = active_ring()
    return [_rotate(table, column, active) for table, column in encrypted_columns()]


def _rotate(table: Table, column: Column, active: str) -> ColumnRotation:
    result = ColumnRotation(f"{table.name}.{column.name}")
    keys = list(table.primary_key.columns)
    # The stored text (to see its key id) next to the plain value (decrypted by the column's type).
    stored = type_coerce(column, String).label("stored")
    # Locked: a value changed meanwhile must not be overwritten with the one read here.
    rows = db.session.execute(select(*keys, column.label("plain"), stored).where(column.is_not(None))
                              .with_for_update()).all()
    updates = []
    for row in rows:
        result.values += 1
        key_id = key_id_of(row.stored)
        if key_id != active:
            result.rewritten[key_id] += 1
            # Written back through the column's type, which encrypts under the active key.
            updates.append({**{f"pk_{k.name}": row._mapping[k] for k in keys}, "plain": row.plain})
    if updates:
        statement = (table.update().where(and_(*(k == bindparam(f"pk_{k.name}") for k in keys)))
                     .values({column.name: bindparam("plain")}))
        db.session.execute(statement, updates)
    return result
