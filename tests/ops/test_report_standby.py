"""Reports on a streaming standby (issue 19): with REPORTS_DATABASE_URL set, the leverage page's figures are read on
the standby while the same request's write (the staff session's last-seen time) goes to the primary; with the
standby too far behind, or stopped, the page still answers, from the primary, and says so in the log.

A primary and a standby of the test's own (tests/ops/standby.py: initdb, pg_basebackup -R, free ports). Skipped
where PostgreSQL's server programs are missing, except with CI=true, where that is a failure. Bounded: fails past
REPORT_STANDBY_BUDGET seconds (90 by default).
"""
from __future__ import annotations

import logging
import os
import re
import time
from datetime import timedelta

import pytest
from sqlalchemy import Engine, event, update

from tests.conftest import make_app, missing_component
from tests.factories import PASSWORD, claim_one, make_campaign, make_citizen, make_world
from tests.ops.standby import Replication, missing_programs
from tests.ops.three_servers import free_port, psql
from voucher.core.clock import utcnow
from voucher.core.db import db

BUDGET_SECONDS = float(os.environ.get("REPORT_STANDBY_BUDGET", "90"))
REDEEMED = re.compile(r"所选期间核销 (\d+) 笔")


@pytest.fixture(scope="module")
def pair():
    missing = missing_programs()
    if missing:
        missing_component(f"the standby harness needs PostgreSQL's {', '.join(missing)} (postgresql-15 on Debian)")
    running = Replication()
    started = time.monotonic()
    try:
        running.start()
        print(f"\nprimary and standby started: {', '.join(f'{k} {v:.1f} s' for k, v in running.timings.items())}")
        yield running
    except Exception:
        for name in ("primary", "standby"):
            print(f"--- {name} ---\n{running.log_tail(name)}")
        raise
    finally:
        running.stop()
    elapsed = time.monotonic() - started
    print(f"standby harness: {elapsed:.1f} s in all")
    assert elapsed < BUDGET_SECONDS, f"the standby harness took {elapsed:.0f} s, over its {BUDGET_SECONDS:.0f} s"


class Statements:
    """Every statement any engine runs, with the port of the server it ran on (primary or standby)."""

    def __init__(self):
        self.seen: list[tuple[int, str]] = []

    def __call__(self, conn, cursor, statement, parameters, context, executemany):
        self.seen.append((conn.engine.url.port, statement))

    def ports(self, fragment: str) -> set[int]:
        return {port for port, statement in self.seen if fragment in statement}


class Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def statements():
    recorder = Statements()
    event.listen(Engine, "before_cursor_execute", recorder)
    yield recorder
    event.remove(Engine, "before_cursor_execute", recorder)


def _redeem_one(world, release, tag: str) -> None:
    from voucher.counter.redemption import redeem

    redeem(claim_one(release, make_citizen(tag)).code, 150_00, world.cashier)


def test_report_reads_on_the_standby_writes_on_the_primary_and_fallback(pair, monkeypatch, statements):
    monkeypatch.setenv("REPORTS_DATABASE_URL", pair.url("standby"))
    monkeypatch.setenv("REPORTS_MAX_LAG_SECONDS", "3600")
    app = make_app(pair.url("primary").replace("postgresql://", "postgresql+psycopg://"))
    assert app.config["REPORTS_DATABASE_URL"].endswith(f":{pair.standby_port}/voucher")
    lines = Lines()
    logging.getLogger("voucher.core.db").addHandler(lines)
    timings: dict[str, float] = {}
    mark = time.monotonic()
    with app.app_context():
        from flask_migrate import upgrade

        from voucher.accounts.models import UserSession
        from voucher.campaigns.measures_seed import load_measures
        from voucher.cli import SEED_DIR
        from voucher.core.db import reads, report_reads

        try:
            # -- data on the primary, through the product's services; the standby replays them ---------------
            upgrade()
            logging.getLogger("voucher.core.db").disabled = False  # alembic's logging setup turned it off
            load_measures(SEED_DIR / "measures.toml")
            world = make_world()
            _, release = make_campaign(world, quantity=10)
            for tag in "ab":
                _redeem_one(world, release, tag)
            db.session.commit()
            client = app.test_client()
            assert client.post("/login", data={"username": "finance", "password": PASSWORD}).status_code == 302
            timings["migrate and data"] = time.monotonic() - mark
            timings["standby replayed"] = pair.wait_replayed()

            # the helper itself: a read-only transaction on the standby, and reads() is its session inside
            with report_reads() as session:
                assert session is reads() and session is not db.session()
                assert session.connection().exec_driver_sql(
                    "SELECT pg_is_in_recovery(), inet_server_port(), current_setting('transaction_read_only')"
                ).one() == (True, pair.standby_port, "on")
            assert reads() is db.session()

            # -- the standby holds still; the primary moves on: one more redemption, and the staff session's
            # last-seen time old enough that the next request writes it ----------------------------------------
            psql(pair.url("standby"), "SELECT pg_wal_replay_pause()")
            _redeem_one(world, release, "c")
            backdated = utcnow() - timedelta(minutes=5)
            db.session.execute(update(UserSession).where(UserSession.ended_at.is_(None)).values(
                last_seen_at=backdated))
            db.session.commit()
            db.session.remove()

            statements.seen.clear()
            page = client.get("/analytics/leverage")
            assert page.status_code == 200
            # the figures are the standby's (2 redeemed), not the primary's (3) ...
            assert REDEEMED.findall(page.get_data(as_text=True)) == ["2"]
            assert statements.ports("FROM redemptions") == {pair.standby_port}
            assert statements.ports("FROM vouchers") == {pair.standby_port}
            # ... while the same request's write went to the primary
            assert statements.ports("UPDATE user_sessions") == {pair.primary_port}
            assert db.session.scalar(db.select(UserSession.last_seen_at).where(
                UserSession.ended_at.is_(None))) > backdated
            assert psql(pair.url("standby"), "SELECT count(*) FROM redemptions") == "2"
            assert not lines.messages

            # -- too far behind: the primary answers, and the log says why --------------------------------------
            # (once the standby has received the third redemption: until then it cannot know it lags)
            pair.wait_received()
            app.config["REPORTS_MAX_LAG_SECONDS"] = 0
            statements.seen.clear()
            page = client.get("/analytics/leverage")
            assert page.status_code == 200 and REDEEMED.findall(page.get_data(as_text=True)) == ["3"]
            assert statements.ports("FROM redemptions") == {pair.primary_port}
            assert any("behind" in message for message in lines.messages), lines.messages
            app.config["REPORTS_MAX_LAG_SECONDS"] = 3600
            psql(pair.url("standby"), "SELECT pg_wal_replay_resume()")
            pair.wait_replayed()
            lines.messages.clear()
            statements.seen.clear()
            assert REDEEMED.findall(client.get("/analytics/leverage").get_data(as_text=True)) == ["3"]
            # the other report pages that use the helper: the budget report and the audit log's listing
            assert client.get("/reports/budget").status_code == 200
            assert client.get("/reports/audit").status_code == 200
            for table in ("FROM redemptions", "FROM funding_sources", "JOIN postings", "FROM audit_entries"):
                assert statements.ports(table) == {pair.standby_port}, table
            assert not lines.messages
            # and each further report read: the voucher statistics, the audit export (its count and its records),
            # the causal estimate on the leverage page and in its workbook
            for url, fragment in (("/reports/vouchers", "FROM vouchers"), ("/reports/audit.csv", "FROM audit_entries"),
                                  ("/analytics/leverage", "FROM causal_panel_units"),
                                  ("/analytics/leverage.xlsx", "FROM causal_panel_units")):
                statements.seen.clear()
                assert client.get(url).status_code == 200, url
                assert statements.ports(fragment) == {pair.standby_port}, (url, statements.seen)
            assert not lines.messages

            # -- the standby stopped: the primary answers, logged; the budget report and audit log likewise ----
            mark = time.monotonic()
            pair.stop_server("standby")
            statements.seen.clear()
            page = client.get("/analytics/leverage")
            assert page.status_code == 200 and REDEEMED.findall(page.get_data(as_text=True)) == ["3"]
            assert statements.ports("FROM redemptions") == {pair.primary_port}
            assert any("unreachable" in message for message in lines.messages), lines.messages
            assert client.get("/reports/budget").status_code == 200
            timings["fallback with the standby stopped"] = time.monotonic() - mark
        finally:
            logging.getLogger("voucher.core.db").removeHandler(lines)
            db.session.remove()
            db.engine.dispose()
            engine = app.extensions.get("voucher.reports_engine")
            if engine is not None:
                engine.dispose()
    print(f"report standby: {', '.join(f'{k} {v:.1f} s' for k, v in timings.items())}")



def test_without_the_setting_or_with_the_standby_unreachable_reports_read_the_primary(make_ops_app):
    """No harness needed: unset, report_reads() is the request's session, silently; set to a port where nothing
    listens, the same, with a warning (on SQLite and PostgreSQL both, as the rest of the suite)."""
    from voucher.core.db import reads, report_reads

    lines = Lines()
    logger = logging.getLogger("voucher.core.db")
    logger.addHandler(lines)
    logger.disabled = False
    try:
        make_ops_app()
        with report_reads() as session:
            assert session is db.session() and reads() is session
        assert not lines.messages
        closed = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/voucher"
        app = make_ops_app(REPORTS_DATABASE_URL=closed, REPORTS_ENGINE_OPTIONS={"connect_args": {"connect_timeout": 1}})
        with report_reads() as session:
            assert session is db.session() and reads() is session
        assert any("unreachable" in message for message in lines.messages), lines.messages
        app.extensions["voucher.reports_engine"].dispose()
    finally:
        logger.removeHandler(lines)
