"""The models and the migrations agree: after `upgrade` to head, autogenerate finds nothing to do, and
every CHECK written from an enum lists the enum's values."""
from __future__ import annotations

import enum
import re

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import CheckConstraint, text

from voucher.core.db import db as _db
from voucher.core.enum_check import ONE_OF, one_of, sql_list


def test_models_match_migrations(db):
    with _db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, _db.metadata)
    assert diff == []


def _database_checks(connection) -> dict[str, str]:
    """Every CHECK constraint of the migrated database, by name: its condition as the database keeps it."""
    if connection.dialect.name == "postgresql":
        rows = connection.execute(text(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE contype = 'c' AND connamespace = current_schema()::regnamespace"
        ))
        return {name: definition for name, definition in rows}
    checks = {}
    for (sql,) in connection.execute(text("SELECT sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL")):
        for found in re.finditer(r'CONSTRAINT\s+"?(\w+)"?\s+CHECK\s*\(', sql):
            depth, end, quoted = 1, found.end(), False
            while depth:  # to the parenthesis that closes CHECK (, skipping those inside '...'
                char = sql[end]
                if char == "'":
                    quoted = not quoted
                elif not quoted:
                    depth += {"(": 1, ")": -1}.get(char, 0)
                end += 1
            checks[found.group(1)] = sql[found.end():end - 1]
    return checks


def test_enum_checks_match_their_enums(db):
    """Alembic does not compare CHECK constraints, so a member added to an enum would pass the test above
    and fail at the first INSERT of it. Every *_known CHECK in the migrated database must be written with
    core.enum_check.one_of, and list exactly the values its model's enum (or tuple) has today."""
    expected = {}
    for table in _db.metadata.tables.values():
        for constraint in table.constraints:
            if isinstance(constraint, CheckConstraint) and ONE_OF in constraint.info:
                # the name as created, "ck_<table>_<name>" (the naming convention applies it on attaching)
                expected[str(constraint.name)] = set(constraint.info[ONE_OF][1])
    with _db.engine.connect() as connection:
        in_database = {
            name: set(re.findall(r"'([^']*)'", sql))
            for name, sql in _database_checks(connection).items() if name.endswith("_known")
        }
    assert len(in_database) >= 27  # the parse found them: 27 when this test was written
    unwritten = sorted(set(in_database) - set(expected))
    assert unwritten == [], "a *_known CHECK the models do not write with one_of(...)"
    drift = {
        name: {"in the enum only (needs a migration)": sorted(expected[name] - values),
               "in the database only": sorted(values - expected[name])}
        for name, values in in_database.items() if values != expected[name]
    }
    assert drift == {}
    assert set(expected) <= set(in_database), "a one_of CHECK the migrations never created"


def test_one_of_writes_the_hand_written_text():
    """The text the migrations wrote by hand, byte for byte, so moving a model to one_of needs no migration."""

    class Status(str, enum.Enum):
        PENDING = "pending"
        EXPORTED = "exported"
        PAID = "paid"

    assert str(one_of("status", Status, name="status_known").sqltext) == "status IN ('pending', 'exported', 'paid')"
    assert str(one_of("evidence", ("bank_line", "override"), name="evidence_known", nullable=True).sqltext) == (
        "evidence IS NULL OR evidence IN ('bank_line', 'override')")
    assert sql_list(Status.PAID, "override") == "('paid', 'override')"
    for bad in ((), ("it's",)):
        with pytest.raises(ValueError):
            sql_list(*bad)


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
    if db.engine.dialect.name != "sqlite":
        pytest.skip("a SQLite pragma")
    assert db.session.execute(text("PRAGMA foreign_keys")).scalar() == 1
