"""Declarative base with a constraint naming convention, so migrations name every constraint."""
from __future__ import annotations

import logging
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from flask import current_app
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import (
    BigInteger,
    Connection,
    CursorResult,
    Date,
    DateTime,
    Engine,
    MetaData,
    Result,
    Table,
    cast,
    create_engine,
    event,
    func,
    literal_column,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Session, mapped_column

from voucher.core.clock import utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)

    if TYPE_CHECKING:
        # Every model here is mapped to a Table (DeclarativeBase types it as any FromClause), and the
        # per-request paths build Core statements on it: Model.__table__.insert(), update(Model.__table__).
        __table__: ClassVar[Table]


db = SQLAlchemy(model_class=Base)

# The base every model subclasses. At run time it is db.Model, which Flask-SQLAlchemy builds from Base (same
# registry and metadata, plus its bind, repr and session glue); mypy cannot follow a class made at run time
# (`class User(db.Model)` reads as "Name db.Model is not defined" and every model as Any), so it checks the
# models against Base, the declarative base db.Model is made from.
if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model

# Reusable column types. Timestamps are naive UTC everywhere (SQLite keeps no zone).
intpk = Annotated[int, mapped_column(primary_key=True)]
fen = Annotated[int, mapped_column(BigInteger)]
created_at = Annotated[datetime, mapped_column(DateTime, default=utcnow)]


# PostgreSQL's answers when two transactions collide: a deadlock, a serialization failure, a lock
# not available, a unique key taken by the other one. Each means "someone else did it first".
_CONFLICT_SQLSTATES = {"40P01", "40001", "55P03", "23505"}
_SQLITE_CONFLICTS = ("database is locked", "UNIQUE constraint failed")


def is_conflict(error: BaseException) -> bool:
    """Whether a database error is two transactions colliding (worth one retry, then a 409), not a bug."""
    if not isinstance(error, DBAPIError):
        return False
    sqlstate = getattr(error.orig, "sqlstate", None)
    if sqlstate is not None:
        return sqlstate in _CONFLICT_SQLSTATES
    return any(text in str(error.orig) for text in _SQLITE_CONFLICTS)


def serialize(name: str) -> None:
    """Hold a named lock until the transaction ends, so that runs of one job (a settlement build, a
    month-end close) queue instead of colliding. PostgreSQL: a transaction-level advisory lock. SQLite
    needs none: BEGIN IMMEDIATE already lets one writer in at a time."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(select(func.pg_advisory_xact_lock(func.hashtext(name))))


@contextmanager
def consistent_reads() -> Iterator[Session]:
    """A session whose reads all see one moment, for a check of many statements (ledger verify before
    a month-end close): otherwise a redemption committing between two statements makes a clean ledger
    look broken. PostgreSQL: a read-only REPEATABLE READ transaction on a connection of its own.
    SQLite: the current session, whose BEGIN IMMEDIATE already keeps every other writer out."""
    if db.session.get_bind().dialect.name != "postgresql":
        yield db.session()  # the scoped session's current Session, the one db.session stands for
        return
    with db.engine.connect() as conn:
        snapshot = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with Session(bind=snapshot) as session:
            yield session


def rowcount(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE run by Session.execute matched. Session.execute is typed to return
    a Result whatever it runs; for such a statement the Result is a CursorResult, which counts them."""
    return typing.cast(CursorResult[Any], result).rowcount


def connection() -> Connection:
    """The session's connection, in its transaction, after flushing pending ORM changes as
    session.execute would. A constant Core statement run here with its parameters costs a third of
    the CPU of a statement built per call and run through the session: for the per-request paths
    (redemption, claim, ledger postings, audit rows)."""
    db.session.flush()
    return db.session.connection()

def on_rollback(callback: Callable[[], None]) -> None:
    """Run `callback` if the session's current transaction rolls back (not if it commits): for work
    outside the database that must be undone with it, such as a place taken at the admission gate.
    Runs after the rollback; an error in it is logged, never raised over the rollback."""
    db.session.info.setdefault(_ON_ROLLBACK, []).append(callback)


_ON_ROLLBACK = "on_rollback"


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    session.info.pop(_ON_ROLLBACK, None)


@event.listens_for(Session, "after_soft_rollback")
def _rolled_back(session: Session, previous_transaction: Any) -> None:
    if previous_transaction.nested:  # a savepoint: the outer transaction may still commit
        return
    for callback in session.info.pop(_ON_ROLLBACK, []):
        try:
            callback()
        except Exception:  # noqa: BLE001 - the rollback has happened; say so and go on
            logging.getLogger(__name__).exception("on_rollback callback failed")


_sqlite_configured = False


def configure_sqlite_durability() -> None:
    """SQLite as the embedded default must not lose a committed redemption, nor interleave writers.

    WAL with synchronous=FULL survives a power cut; BEGIN IMMEDIATE takes the write lock at the start
    of every transaction, so a read-then-write (a claim, a redemption) can never race another writer;
    the busy timeout makes the second writer wait instead of failing.
    """
    global _sqlite_configured
    if _sqlite_configured:
        return
    _sqlite_configured = True
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _on_connect(dbapi_connection, _record):  # pragma: no cover - trivial
        if type(dbapi_connection).__module__.startswith("sqlite3"):
            dbapi_connection.isolation_level = None  # let SQLAlchemy's BEGIN below be the only one
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

    @event.listens_for(Engine, "begin")
    def _on_begin(connection):  # pragma: no cover - trivial
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def local_day(column):
    """SQL for the local (Asia/Shanghai, UTC+8, no daylight saving) calendar day of a naive UTC
    timestamp column: a date on PostgreSQL, 'YYYY-MM-DD' text on SQLite (how SQLite keeps a Date)."""
    if db.session.get_bind().dialect.name == "postgresql":
        # a literal, not a bound parameter: PostgreSQL matches a GROUP BY to the select list by its text
        return cast(column + literal_column("interval '8 hours'"), Date)
    return func.date(column, "+8 hours")


def local_day_text(column):
    """The same day as 'YYYY-MM-DD' text on both databases (a label, a key that sorts by date)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return func.to_char(local_day(column), "YYYY-MM-DD")
    return local_day(column)


# -- report reads on a streaming standby (REPORTS_DATABASE_URL) ---------------------------------------------------
#
# The heavy report reads (the leverage page's figures, the budget report, the audit log's listing) may run on a
# PostgreSQL standby. Not a bind per model: the same tables are written on the primary in the same request (the
# staff session's last-seen time, audit entries), so a model cannot live on one database. A report opens
# report_reads() around its reads, and the read functions it calls take their session from reads(): the standby's
# inside the block, the request's own (the primary) everywhere else. The standby is used only when it answers and
# has replayed the primary's changes to within REPORTS_MAX_LAG_SECONDS; otherwise the report reads the primary,
# as it did before the setting existed, and a warning is logged.

_report_session: ContextVar[Session | None] = ContextVar("report_session", default=None)
_REPORTS_ENGINE = "voucher.reports_engine"
_log = logging.getLogger(__name__)

# How far the standby is behind, in seconds: 0 when it has replayed all it received (an idle primary sends
# nothing, and the last replayed transaction's time then says nothing about lag), or when the URL names a
# server not in recovery; NULL when it is behind and has replayed nothing since it started (unknown: too far).
_STANDBY_LAG = text(
    "SELECT CASE WHEN NOT pg_is_in_recovery() THEN 0"
    " WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0"
    " ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END")


def reads() -> Session:
    """The session a report's read functions run their queries on: inside report_reads(), the standby's (or the
    primary's, when it fell back); anywhere else, the request's own session."""
    return _report_session.get() or db.session()


def _reports_engine() -> Engine | None:
    app = current_app
    url = app.config.get("REPORTS_DATABASE_URL")
    if not url:
        return None
    engine = app.extensions.get(_REPORTS_ENGINE)
    if engine is None:
        # pre-ping: a standby restarted or stopped is found on checkout (and the report falls back) instead of
        # failing the page half way; a small pool, as only report pages use it
        options = dict(app.config.get("REPORTS_ENGINE_OPTIONS") or {})
        engine = create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=3, **options)
        engine = app.extensions.setdefault(_REPORTS_ENGINE, engine)
    return engine


def _standby_connection(engine: Engine, max_lag: float) -> Connection | None:
    """A connection to the standby in a read-only REPEATABLE READ transaction (every statement of the report sees
    one moment), or None, logged, when the standby is unreachable or lags more than `max_lag` seconds."""
    try:
        conn = engine.connect()
    except DBAPIError as error:
        _log.warning("report reads on the primary: standby unreachable (%s)", type(error.orig).__name__,
                     extra={"fields": {"event": "reports.standby_fallback", "reason": "unreachable"}})
        return None
    try:
        conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        lag = conn.execute(_STANDBY_LAG).scalar_one()
    except DBAPIError as error:
        conn.close()
        _log.warning("report reads on the primary: standby failed (%s)", type(error.orig).__name__,
                     extra={"fields": {"event": "reports.standby_fallback", "reason": "error"}})
        return None
    if lag is None or float(lag) > max_lag:
        conn.close()
        _log.warning("report reads on the primary: standby %s s behind (limit %s s)",
                     "?" if lag is None else f"{float(lag):.1f}", max_lag,
                     extra={"fields": {"event": "reports.standby_fallback", "reason": "lagging"}})
        return None
    return conn


@contextmanager
def report_reads() -> Iterator[Session]:
    """Run a report's reads on the standby of REPORTS_DATABASE_URL: yields a Session in a read-only transaction
    there, and makes reads() return it until the block ends. Without the setting, or with the standby
    unreachable or too far behind, yields the request's own session (the primary) instead. Writes inside the
    block (an audit entry) still go through db.session, to the primary.

    A standby failing during the block is an error of the page, not a fallback: the figures read so far would
    mix two databases."""
    engine = _reports_engine()
    conn = None if engine is None else _standby_connection(
        engine, float(current_app.config.get("REPORTS_MAX_LAG_SECONDS", 30)))
    if conn is None:
        yield db.session()
        return
    with conn, Session(bind=conn) as session:
        token = _report_session.set(session)
        try:
            yield session
        finally:
            _report_session.reset(token)
