"""`flask seed demo`: the demo accounts, merchants and a campaign for most measures, loaded through the
services (so the ledger verifies), with a week of history to settle, reconcile and chart; loading twice
changes nothing."""
from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select, text

from seed.demo import load_demo
from tests.conftest import empty_tables
from voucher.accounts.models import User
from voucher.campaigns.models import (
    Campaign,
    FundingSource,
    GrantApplication,
    Measure,
    MeasureTarget,
    Release,
    TargetProgress,
)
from voucher.campaigns.overview import policy_overview
from voucher.cli import SEED_DIR
from voucher.core.clock import local_today, to_local
from voucher.ledger.models import EntryKind, JournalEntry
from voucher.merchants.models import Merchant, Redemption, Store
from voucher.reports.consistency import verify_ledger
from voucher.vouchers.models import Citizen, Voucher

ROOT = Path(__file__).resolve().parent.parent
DEMO_ACCOUNTS = ("maker", "approver", "finance", "finance2", "auditor", "admin", "manager", "cashier", "cashier_market",
                 "cashier_cinema", "cashier_appliance", "cashier_scenic", "cashier_car", "cashier_donghai")


def campaigns_of(db, number: int) -> list[Campaign]:
    return db.session.scalars(
        select(Campaign).join(Measure).where(Measure.number == number).order_by(Campaign.id)
    ).all()


def counts(db) -> dict[str, int]:
    db.session.rollback()
    return {
        model.__name__: db.session.scalar(select(func.count()).select_from(model))
        for model in (Campaign, User, Merchant, FundingSource, Release, Voucher, GrantApplication, TargetProgress,
                      JournalEntry, Citizen, Redemption)
    }


def test_seed_demo_loads_accounts_and_a_campaign_per_measure(app, db):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["seed", "demo"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "演示账号" in result.output
    for username in DEMO_ACCOUNTS:
        assert f"  {username} " in result.output, username
    assert "demo1234" in result.output

    db.session.rollback()
    assert {u.username for u in db.session.scalars(select(User))} == set(DEMO_ACCOUNTS)
    # The settlement account numbers are encrypted at rest and read back as written in seed/demo.toml.
    stored = db.session.scalars(text("SELECT bank_account_no FROM merchants WHERE bank_account_no IS NOT NULL")).all()
    assert stored and all(value.startswith("v1.") for value in stored)
    assert "1107020109000123456" in db.session.scalars(select(Merchant.bank_account_no)).all()

    # A live (non-draft) campaign for each of these measures.
    for number in (1, 2, 3, 5, 6, 7, 9, 10, 11, 12, 13, 15, 18):
        live = [c for c in campaigns_of(db, number) if c.status != "draft"]
        assert live, f"measure {number} has no non-draft campaign"

    # Measure 12: government and enterprise at 2:1, 500,000 and 250,000 yuan, both in hand.
    (cinema,) = campaigns_of(db, 12)
    sources = sorted(cinema.funding_sources, key=lambda s: -s.share)
    assert [(s.share, s.amount_fen, s.status) for s in sources] == [(2, 500_000_00, "in_hand"), (1, 250_000_00, "in_hand")]
    assert cinema.budget_fen == 750_000_00
    assert cinema.status == "active"

    # Measure 13: 110,000 vouchers and 1,000,000 yuan from 交通银行.
    bocom = [c for c in campaigns_of(db, 13) if any("交通银行" in s.name for s in c.funding_sources)]
    assert len(bocom) == 2
    assert sum(c.planned_quantity for c in bocom) == 110_000
    assert sum(s.amount_fen for c in bocom for s in c.funding_sources if "交通银行" in s.name) == 1_000_000_00
    assert all(s.kind == "bank" for c in bocom for s in c.funding_sources)

    # Measure 6: a 10% purchase subsidy.
    (appliances,) = campaigns_of(db, 6)
    assert appliances.instrument == "purchase_subsidy"
    assert appliances.product.kind == "percentage" and appliances.product.percent_bp == 1000

    # One campaign waits for approval.
    pending = db.session.scalars(select(Campaign).where(Campaign.status == "pending_approval")).all()
    assert len(pending) >= 1

    assert verify_ledger() == []
    verified = runner.invoke(args=["ledger", "verify"])
    assert verified.exit_code == 0, (verified.output, verified.exception)
    assert "账本核对通过" in verified.output

    # The demo progress is counted against the measures' targets.
    first_target = campaigns_of(db, 1)[0].measure.targets[0]
    line = next(l for l in policy_overview().lines if l.measure.number == 1)
    assert next(t.achieved for t in line.targets if t.target.id == first_target.id) == 12


def history(db) -> list[tuple[int, str, str, int, int]]:
    """The demo's redemptions before today: (days ago, local time, store, order, subsidy), in order."""
    db.session.rollback()
    today = local_today()
    rows = db.session.execute(
        select(Redemption.created_at, Store.name, Redemption.order_amount_fen, Redemption.subsidy_fen)
        .join(Store, Store.id == Redemption.store_id).order_by(Redemption.created_at, Redemption.id)
    ).all()
    return [((today - to_local(at).date()).days, f"{to_local(at):%H:%M}", store, order, subsidy)
            for at, store, order, subsidy in rows if to_local(at).date() < today]


def test_seed_demo_loads_a_week_of_history_to_settle_reconcile_and_chart(app, db, tmp_path):
    """The first campaign's last week, replayed through the services: settlement of yesterday's batches, a
    payout file, the bank's statement of it (`seed demo-statement`) and the leverage by day can be tried at
    once; the same history every run."""
    from voucher.accounts.models import User as Staff
    from voucher.analytics import leverage
    from voucher.reconciliation import services as reconciliation
    from voucher.settlement import batches as settlement
    from voucher.settlement import payout_files

    runner = app.test_cli_runner()
    assert runner.invoke(args=["seed", "demo"]).exit_code == 0
    loaded = history(db)
    (first,) = [c for c in campaigns_of(db, 1) if "演示第一期" in c.name]
    threshold = first.product.threshold_fen

    # Redemptions on at least 5 earlier local days, each one at a store the campaign's rules allow, each
    # order at or above the threshold, between 06:00 and 24:00 (no off-hours risk flag), 满100减20.
    assert len({days_ago for days_ago, *_ in loaded}) >= 5
    assert max(days_ago for days_ago, *_ in loaded) >= 6
    assert first.valid_from < local_today() - timedelta(days=6)
    assert {store for _, _, store, _, _ in loaded} == {"港城老味道（解放路店）", "苏果便民超市（墟沟店）"}
    assert all(order >= threshold and subsidy == 20_00 and "06:00" <= hhmm for _, hhmm, _, order, subsidy in loaded)
    assert len({order for *_, order, _ in loaded}) > len(loaded) // 2  # varied orders
    # Claimed by a few dozen demo citizens, on different days, through the release 上周体验场 (all claimed).
    past = db.session.scalar(select(Release).where(Release.campaign_id == first.id, Release.name == "上周体验场"))
    claimed = db.session.scalars(select(Voucher.claimed_at).where(Voucher.release_id == past.id)).all()
    assert len(claimed) == past.quantity >= 30 and all(claimed)
    assert len({to_local(at).date() for at in claimed}) >= 5
    assert to_local(past.opened_at).date() < local_today() - timedelta(days=5)
    # The ledger dates each redemption's entry with the redemption (the services' `now`), and balances.
    entry_days = db.session.scalars(select(JournalEntry.created_at).where(JournalEntry.kind == EntryKind.REDEMPTION.value)).all()
    assert sorted(to_local(at).date() for at in entry_days) == sorted(local_today() - timedelta(days=d) for d, *_ in loaded)
    assert verify_ledger() == []
    assert runner.invoke(args=["ledger", "verify"]).exit_code == 0

    # The leverage by day has a row for every day of the week.
    by_day = leverage.breakdown("day")
    assert len(by_day) >= 5 and all(figures.vouchers_claimed or figures.vouchers_redeemed for _, figures in by_day)

    # Settlement: yesterday's batches (or the day before, just after midnight), one per merchant, hold the
    # whole history; a payout file; the bank's statement of it, which the import matches batch for batch.
    finance = db.session.scalar(select(Staff).where(Staff.username == "finance"))
    built = settlement.build_batches(settlement.latest_buildable_day(), finance)
    assert len(built.batches) == 2 and not built.held
    settled_days = {d for d, *_ in loaded if local_today() - timedelta(days=d) <= built.business_date}
    assert built.total_fen == sum(s for d, _, _, _, s in loaded if d in settled_days)
    payout_files.create(finance)
    db.session.commit()
    statement = tmp_path / "bank.csv"
    written = runner.invoke(args=["seed", "demo-statement", "--out", str(statement)])
    assert written.exit_code == 0, (written.output, written.exception)
    assert "2 笔付款" in written.output
    result = reconciliation.import_statement(statement.read_bytes(), statement.name, None, finance)
    assert result.counts["matched"] == 2 and result.counts["unmatched_line"] == 0

    # The same history on every run (a fixed random seed).
    db.session.rollback()
    empty_tables(db)
    load_demo(SEED_DIR / "demo.toml")
    db.session.commit()
    assert history(db) == loaded


def test_demo_statement_needs_a_payout_file_first(app, db, tmp_path):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["seed", "demo"]).exit_code == 0
    refused = runner.invoke(args=["seed", "demo-statement", "--out", str(tmp_path / "bank.csv")])
    assert refused.exit_code == 1 and "付款文件" in refused.output
    assert not (tmp_path / "bank.csv").exists()


def achieved(db) -> dict[tuple[int, int], int]:
    """Progress per (measure number, target position), as the overview counts it."""
    db.session.rollback()
    return {
        (line.measure.number, position): t.achieved
        for line in policy_overview().lines for position, t in enumerate(line.targets) if t.achieved
    }


def test_seed_demo_twice_changes_nothing(app, db):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["seed", "demo"]).exit_code == 0
    before, progress_before = counts(db), achieved(db)
    assert before["Campaign"] >= 16
    assert progress_before == {(1, 0): 12, (3, 0): 8, (20, 1): 31}

    again = runner.invoke(args=["seed", "demo"])
    assert again.exit_code == 0, (again.output, again.exception)
    assert "演示账号" in again.output
    assert counts(db) == before
    # Every progress record still belongs to an existing target, and the figures are unchanged.
    target_ids = set(db.session.scalars(select(MeasureTarget.id)))
    assert set(db.session.scalars(select(TargetProgress.target_id))) <= target_ids
    assert achieved(db) == progress_before
    verified = runner.invoke(args=["ledger", "verify"])
    assert verified.exit_code == 0, (verified.output, verified.exception)


def test_wsgi_adds_the_development_commands_and_production_never_imports_seed(tmp_path):
    """`flask --app wsgi seed demo` and `seed city-scale` come from seed/, which wsgi.py adds outside
    production only: a production process keeps `seed measures` and never imports seed/ at all."""
    script = ("import sys, wsgi; print(' '.join(sorted(wsgi.app.cli.commands['seed'].commands)), "
              "any(name == 'seed' or name.startswith('seed.') for name in sys.modules))")
    base = {"PATH": os.environ.get("PATH", ""), "DATABASE_URL": f"sqlite:///{tmp_path / 'wsgi.db'}"}
    production = {
        "VOUCHER_ENV": "production", "SECRET_KEY": secrets.token_hex(24), "IDENTITY_HASH_KEY": secrets.token_hex(24),
        "QR_SIGNING_KEYS": f"p1:{secrets.token_hex(24)}", "PARTNER_MASTER_KEY": secrets.token_hex(24),
        "AUDIT_MAC_KEYS": f"a1:{secrets.token_hex(24)}",
        "FIELD_ENCRYPTION_KEYS": f"f1:aes-256-gcm:{base64.b64encode(secrets.token_bytes(32)).decode()}",
    }

    def commands(env: dict) -> str:
        done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=base | env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert commands({"VOUCHER_ENV": "development"}) == "city-scale demo demo-statement measures True"
    assert commands(production) == "measures False"
