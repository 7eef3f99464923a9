"""Every database test runs on SQLite and on PostgreSQL, against a schema built by the migrations.

PostgreSQL: a fresh database is created for the run on TEST_POSTGRES_URL (default: the local server,
user postgres) and dropped at the end. Where no server answers, the PostgreSQL half is skipped, except
with CI=true, where that is a failure.
"""
from __future__ import annotations

import os
import re
import uuid
from datetime import datetime

import pytest
from sqlalchemy import create_engine, text

from seed.cli import register as register_seed_commands
from voucher import create_app
from voucher.core.clock import LOCAL_TZ, travel_to
from voucher.core.db import db as _db
from voucher.counter.redemption import forget_named_merchants
from voucher.ledger.services import forget_approved_sources
from voucher.vouchers import admission
from voucher.vouchers.services import forget_sold_out

# The moment every test starts at, unless it asks for another with @pytest.mark.clock(...): by default an
# ordinary Wednesday morning, China time, far from any day, month or year end. No test reads the machine's
# clock, so the suite gives the same answers at any time of day. VOUCHER_TEST_NOW (ISO 8601 with an offset)
# starts every test at another moment instead: .ci/run uses it to run the suite at day, month and year ends,
# with the machine's own clock moved elsewhere by libfaketime.
ORDINARY_NOW = datetime.fromisoformat("2027-03-17T10:00:00+08:00")
TEST_NOW = datetime.fromisoformat(os.environ["VOUCHER_TEST_NOW"]) if os.environ.get("VOUCHER_TEST_NOW") else ORDINARY_NOW
if TEST_NOW.tzinfo is None:
    raise ValueError("VOUCHER_TEST_NOW needs an offset, e.g. 2026-12-31T23:59:00+08:00")
#: For modules whose data need an ordinary moment whatever VOUCHER_TEST_NOW says (yesterday's
#: redemptions settleable, their reversal window long past): `pytestmark = pin_ordinary_time`.
pin_ordinary_time = pytest.mark.clock(ORDINARY_NOW)
#: The local (China) date of TEST_NOW, for modules that build their data around "today".
TEST_TODAY = TEST_NOW.astimezone(LOCAL_TZ).date()
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
KEEP_TABLES = {"measures", "measure_money_lines", "measure_targets", "alembic_version"}


def _postgres_admin_url() -> str:
    url = os.environ.get("TEST_POSTGRES_URL", DEFAULT_PG)
    return re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url)


@pytest.fixture(autouse=True)
def clock(request):
    """Move the app's clock to TEST_NOW (or the test's @pytest.mark.clock moment) for the test; it ticks on."""
    marker = request.node.get_closest_marker("clock")
    moment = marker.args[0] if marker else TEST_NOW
    with travel_to(moment):
        yield moment


@pytest.fixture(scope="session")
def postgres_url():
    admin_url = _postgres_admin_url()
    name = f"voucher_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:  # noqa: BLE001 - any failure to reach the server
        admin.dispose()
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI but not reachable at {admin_url}: {error}")
        pytest.skip(f"PostgreSQL not reachable at {admin_url}")
    yield admin_url.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request, tmp_path_factory):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    return request.getfixturevalue("postgres_url")


def missing_component(message: str):
    """A program or server a test needs is not here: a failure under CI=true (where the project's own
    scripts install it), a skip on a developer's machine."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def make_app(database_url: str, **overrides):
    config = {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "TESTING": True,
        "WTF_CSRF_ENABLED": False,
        "SERVER_NAME": "localhost",
        # Hashing stays real (the tests check it), just cheap: thousands of users are made per run.
        "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
        # Every test client comes from 127.0.0.1 and signs in many times a minute; the rate limits
        # have tests of their own (tests/ops), which switch them on.
        "RATELIMIT_ENABLED": False,
    }
    config.update(overrides)
    application = create_app(config)
    if application.config["ENV_NAME"] != "production":
        register_seed_commands(application)  # `seed demo`, `seed city-scale`: as wsgi.py adds them
    return application


@pytest.fixture(scope="session")
def app(database_url):
    application = make_app(database_url)
    with application.app_context():
        from flask_migrate import upgrade

        from voucher.campaigns.measures_seed import load_measures
        from voucher.cli import SEED_DIR

        upgrade()  # the schema comes from the migrations, as in production
        load_measures(SEED_DIR / "measures.toml")
        _db.session.commit()
    yield application
    with application.app_context():
        _db.session.remove()
        _db.engine.dispose()


@pytest.fixture
def db(app):
    """An app context per test; every table but the seeded measures is emptied afterwards."""
    with app.app_context():
        yield _db
        _db.session.rollback()
        _db.session.remove()
        empty_tables(_db)


def empty_tables(db) -> None:
    """Empty every table but the seeded measures (after each test, or mid-test before a second load).

    Only the tables a test wrote are emptied: one query finds them (and on PostgreSQL the sequences
    it advanced, even by inserts it rolled back), so a test pays for what it wrote, not for every
    table of the schema."""
    db.session.rollback()
    # Ids start over once the tables are emptied: what the process remembers by id goes too. A cache
    # keyed by (campaign id, approval time) could otherwise hand a new campaign 1 the funding sources
    # of an earlier test's campaign 1 approved at the same instant (seen once in CI: a co-funded batch
    # missing its bank's half).
    forget_sold_out()
    admission.forget_sold_out()
    forget_approved_sources()
    forget_named_merchants()
    tables = [t.name for t in reversed(db.metadata.sorted_tables) if t.name not in KEEP_TABLES]
    if db.engine.dialect.name == "postgresql":
        _empty_postgresql(db, tables)
    else:
        _empty_sqlite(db, tables)


def _written_probe(tables: list[str]) -> str:
    """One query naming the tables that hold a row."""
    return " UNION ALL ".join(f"SELECT '{name}' WHERE EXISTS (SELECT 1 FROM {name})" for name in tables)


def _empty_postgresql(db, tables: list[str]) -> None:
    with db.engine.begin() as conn:
        written = conn.exec_driver_sql(_written_probe(tables)).scalars().all()
        superuser = conn.exec_driver_sql("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").scalar()
        if written and not superuser:  # a server where the tests may not switch triggers off
            conn.exec_driver_sql("TRUNCATE " + ", ".join(written) + " RESTART IDENTITY CASCADE")
        elif written:
            # DELETE, not TRUNCATE: a table's TRUNCATE makes new files (15 ms each, 20 tables a test), a
            # DELETE of a few rows takes well under a millisecond. As a replica would, the session fires no
            # triggers (neither the foreign keys' nor the audit tables' refusal), so the order is free.
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            for name in written:
                conn.exec_driver_sql(f"DELETE FROM {name}")
        # Sequences move on inserts that were rolled back, or rows deleted: ids start over anyway.
        advanced = conn.exec_driver_sql(
            "SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema() AND last_value IS NOT NULL"
        ).scalars().all()
        kept = tuple(f"{name}_" for name in KEEP_TABLES)
        for sequence in advanced:
            if not sequence.startswith(kept):
                conn.exec_driver_sql(f'ALTER SEQUENCE "{sequence}" RESTART')


def _empty_sqlite(db, tables: list[str]) -> None:
    # users and merchants refer to each other; empty the written tables with the checks off, outside
    # a transaction (where SQLite honours the pragma), then switch them back on.
    # The audit tables refuse DELETE by trigger (PostgreSQL's TRUNCATE goes around row triggers):
    # the triggers are set aside while the tables are emptied and put back as they were.
    raw = db.engine.raw_connection()
    try:
        driver = raw.driver_connection
        written = [row[0] for row in driver.execute(_written_probe(tables))]
        if not written:
            return
        triggers = driver.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall()
        for name, _ in triggers:
            driver.execute(f"DROP TRIGGER {name}")
        driver.execute("PRAGMA foreign_keys=OFF")
        for table in written:
            driver.execute(f"DELETE FROM {table}")
        driver.execute("PRAGMA foreign_keys=ON")
        for _, sql in triggers:
            driver.execute(sql)
    finally:
        raw.close()


@pytest.fixture
def only_jobs(monkeypatch):
    """Replace the scheduled jobs' registry with the given (name, label, schedule, run) jobs for one test."""
    from voucher.jobs import registry

    def install(*jobs: tuple) -> None:
        monkeypatch.setattr(registry, "_JOBS", {})
        monkeypatch.setattr(registry, "_loaded", True)
        for job in jobs:
            registry.register(*job)

    return install


@pytest.fixture
def client(app, db):
    return app.test_client()
