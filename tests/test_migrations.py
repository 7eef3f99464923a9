"""The models and the migrations agree: after `upgrade` to head, autogenerate finds nothing to do."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from voucher.core.db import db as _db


def test_models_match_migrations(db):
    with _db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, _db.metadata)
    assert diff == []


def test_measures_are_loaded_from_seed_data(db):
    from sqlalchemy import select

    from voucher.campaigns.models import Measure

    measures = db.session.scalars(select(Measure).order_by(Measure.number)).all()
    assert [m.number for m in measures] == list(range(1, 21))
    first = measures[0]
    assert "惠购港城" in first.title and "市商务局" in first.responsible_units
    assert any(line.amount_fen == 10_000_000_00 and line.instrument == "voucher" for line in first.money_lines)
    assert any(t.target == 50 for t in first.targets)
    cinema = measures[11]
    assert any(line.amount_fen == 750_000_00 and "2:1" in line.details.get("co_funding", "") for line in cinema.money_lines)
    assert any(line.status == "sought" for line in measures[4].money_lines)  # 争取 charging subsidy


def test_sqlite_enforces_foreign_keys_after_migrating(db):
    """The migrations switch foreign keys off to rebuild tables; the app's connections must have them on."""
    import pytest
    from sqlalchemy import text

    if db.engine.dialect.name != "sqlite":
        pytest.skip("a SQLite pragma")
    assert db.session.execute(text("PRAGMA foreign_keys")).scalar() == 1
