"""INSERT ... ON CONFLICT DO NOTHING for both databases: one round trip where a savepoint takes three."""
from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite

from voucher.core.db import db


def _module():
    return postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite


def insert_ignore(model):
    """An insert that skips rows violating a unique constraint; .returning() tells whether it inserted."""
    return _module().insert(model).on_conflict_do_nothing()


def insert_or_lock(model, key: str):
    """An insert that, finding the key taken, rewrites the existing row's key to itself instead: one
    round trip whose .returning() gives the row, new or old, locked until the commit."""
    statement = _module().insert(model)
    return statement.on_conflict_do_update(index_elements=[key], set_={key: statement.excluded[key]})


_CACHED: dict[tuple, object] = {}


def cached(name: str, build):
    """A statement built once per database dialect: the hot paths run the same upserts on every
    request, and building one (and its cache key) costs more than running it."""
    key = (name, db.session.get_bind().dialect.name)
    if key not in _CACHED:
        _CACHED[key] = build()
    return _CACHED[key]
