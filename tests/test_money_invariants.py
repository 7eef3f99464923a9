"""The money's invariants under many concurrent actors doing random things on every money flow (issue 14).

A short seeded run of tests/invariants_harness.py: threads of actors (citizens, cashiers and terminals,
bureau makers and approvers, finance officers, each signed in as themselves) perform operations drawn
from the harness's weighted table through the real HTTP entry points, all at once, with rushes (every
thread at once on one campaign) and days passing; then SQL written in the harness checks the ledger,
the vouchers, the limits and settlement, finds every acknowledged action in the database, and counts
the 5xx (there must be none). MONEY_SOAK_SEED, MONEY_SOAK_THREADS and MONEY_SOAK_OPS change the run; a
failure prints them, with the answers by operation and status. benchmarks/money_soak.py runs the same
harness for longer; docs/testing.md describes it.

PostgreSQL only (skipped on SQLite, which lets one writer in at a time); with CI=true a PostgreSQL that
does not answer is a failure, as for every database test (tests/conftest.py).
"""
from __future__ import annotations

import dataclasses
from datetime import datetime

import pytest
from sqlalchemy import text

from tests.factories import PASSWORD
from tests.invariants_harness import (
    OPERATIONS,
    Outcome,
    SoakSettings,
    build_world,
    check,
    fingerprint,
    interleavings,
    invariant_problems,
    run_soak,
    summary,
)

# A Tuesday morning near the end of a month, whatever VOUCHER_TEST_NOW says: the run's days pass into
# April, so March can be closed while people work, and each day's redemptions are settled the next.
pytestmark = pytest.mark.clock(datetime.fromisoformat("2027-03-30T10:00:00+08:00"))


def postgresql_only(db) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers: nothing interleaves")


def test_every_money_flow_at_once_keeps_the_invariants(app, db):
    postgresql_only(db)
    settings = SoakSettings.from_env()
    world = build_world(app, settings)

    run = run_soak(app, world, settings)
    problems = check(app, world, run)

    report = summary(run, problems)
    print(report)
    assert not problems, report
    # The run did what it is for: every operation in the table was planned, a good share was answered
    # yes (not a run of refusals), and operations on one campaign overlapped.
    driven = {name for name, op in OPERATIONS.items() if op.run is not None and op.weight > 0}
    if settings.threads * settings.ops >= 4 * len(driven):  # long enough to plan each at least once
        assert {name for plan in run.plans for name in plan} == driven
    assert sum(o.kind == "ok" for o in run.outcomes) > len(run.outcomes) / 4, report
    assert interleavings(run.outcomes)[0] > len(run.outcomes) / 2, report


def test_the_plan_is_the_seeds(app, db):
    """The same seed draws the same operations for each thread; another seed, others."""
    postgresql_only(db)
    settings = SoakSettings(seed=7, threads=2, ops=12, observe_every=0)
    world = build_world(app, settings)
    first = run_soak(app, world, settings)
    again = run_soak(app, world, settings)
    other = run_soak(app, world, dataclasses.replace(settings, seed=8))
    assert fingerprint(first) == fingerprint(again) != fingerprint(other)


# The checks must be able to fail. Each injection breaks one invariant inside a transaction that is
# rolled back, and the named check must report it. The unique indexes and constraints that also guard
# some of these are dropped inside the same transaction: the SQL must not lean on them.
INJECTIONS = {
    "paid without a bank line": [
        "UPDATE settlement_batches SET status = 'paid', paid_at = now(), paid_evidence = 'bank_line' "
        "WHERE id = (SELECT MIN(id) FROM settlement_batches)"],
    "postings do not sum to zero": [
        "INSERT INTO postings (entry_id, account_id, amount_fen) SELECT entry_id, account_id, 1 FROM postings "
        "ORDER BY id LIMIT 1"],
    "balance has the wrong sign": [
        """WITH e AS (INSERT INTO journal_entries (kind, campaign_id, memo, created_at)
                      VALUES ('expiry', :cofunded, 'injected', now()) RETURNING id)
           INSERT INTO postings (entry_id, account_id, amount_fen)
           SELECT e.id, a.id, CASE a.kind WHEN 'reserved' THEN -999999999 ELSE 999999999 END
           FROM e JOIN ledger_accounts a ON a.campaign_id = :cofunded AND a.kind IN ('reserved', 'available')
           WHERE a.funding_source_id = (SELECT MIN(funding_source_id) FROM ledger_accounts
                                        WHERE campaign_id = :cofunded)"""],
    "more than one live (unreversed) redemption": [
        "DROP INDEX uq_redemptions_voucher_live",
        "INSERT INTO redemptions (voucher_id, campaign_id, merchant_id, store_id, cashier_id, order_amount_fen, "
        "subsidy_fen, created_at) SELECT voucher_id, campaign_id, merchant_id, store_id, cashier_id, order_amount_fen, "
        "subsidy_fen, created_at FROM redemptions WHERE reversed_at IS NULL ORDER BY id LIMIT 1"],
    "settled more than once": [
        "ALTER TABLE settlement_items DROP CONSTRAINT uq_settlement_items_redemption_id_funding_source_id",
        "INSERT INTO settlement_items (batch_id, redemption_id, funding_source_id, amount_fen) "
        "SELECT batch_id, redemption_id, funding_source_id, amount_fen FROM settlement_items ORDER BY id LIMIT 1"],
    "more vouchers of a campaign than its per-person limit": [
        "ALTER TABLE vouchers DROP CONSTRAINT uq_vouchers_release_id_citizen_id_claim_slot",
        """UPDATE vouchers SET citizen_id = (SELECT citizen_id FROM vouchers WHERE campaign_id = :cofunded
                                             AND citizen_id IS NOT NULL ORDER BY id LIMIT 1)
           WHERE id IN (SELECT id FROM vouchers WHERE campaign_id = :cofunded AND citizen_id IS NOT NULL
                        ORDER BY id OFFSET 1 LIMIT 3)"""],
    "its approval plus approved changes": [
        "UPDATE funding_sources SET amount_fen = amount_fen + 100 WHERE id = (SELECT MIN(id) FROM funding_sources)"],
}


def test_the_checks_catch_each_broken_invariant(app, db):
    postgresql_only(db)
    settings = SoakSettings(seed=3, threads=2, ops=10, observe_every=0)
    world = build_world(app, settings)
    finance = app.test_client()  # batches for the double settlement to copy
    assert finance.post("/login", data={"username": "soak_finance0", "password": PASSWORD}).status_code == 302
    assert finance.post("/finance/settlement/build", data={"business_date": ""}).status_code == 302
    run = run_soak(app, world, settings)
    assert check(app, world, run) == [], summary(run)

    missed = {}
    for invariant, statements in INJECTIONS.items():
        with db.engine.connect() as conn:
            transaction = conn.begin()
            try:
                for statement in statements:
                    conn.execute(text(statement), world.campaigns if ":cofunded" in statement else {})
                found = invariant_problems(conn, world)
            finally:
                transaction.rollback()
        if not any(invariant in problem for problem in found):
            missed[invariant] = found
    assert not missed, missed

    # A 5xx, and an answer that said yes to something the database does not hold.
    run.outcomes.append(Outcome(op="redeem (terminal API)", actor="injected", status=500, kind="error", message="boom"))
    run.outcomes.append(Outcome(op="redeem (terminal API)", actor="injected", status=201, kind="ok",
                                ids={"id": 10**9, "code": "X", "store": 1, "amount": 1, "key": "k"}))
    problems = check(app, world, run)
    assert any(p.startswith("500 on redeem") for p in problems), problems
    assert any("acknowledged but not found" in p for p in problems), problems
