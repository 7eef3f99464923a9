"""INSERT ... ON CONFLICT DO NOTHING for both databases: one round trip where a savepoint takes three."""
from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite

from voucher.core.db import db


def insert_ignore(model):
    """An insert that skips rows violating a unique constraint; .returning() tells whether it inserted."""
    dialect = db.session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(model).on_conflict_do_nothing()


def insert_or_lock(model, key: str):
    """An insert that, finding the key taken, rewrites the existing row's key to itself instead: one
    round trip whose .returning() gives the row, new or old, locked until the commit."""
    dialect = db.session.get_bind().dialect.name
    statement = (postgresql if dialect == "postgresql" else sqlite).insert(model)
    return statement.on_conflict_do_update(index_elements=[key], set_={key: statement.excluded[key]})
