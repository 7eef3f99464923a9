"""`flask seed demo`: the demo accounts, merchants and a campaign for most measures, loaded through the
services (so the ledger verifies), and loading twice changes nothing."""
from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select, text

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
from voucher.ledger.models import JournalEntry
from voucher.merchants.models import Merchant
from voucher.reports.consistency import verify_ledger
from voucher.vouchers.models import Voucher

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
                      JournalEntry)
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

    assert commands({"VOUCHER_ENV": "development"}) == "city-scale demo measures True"
    assert commands(production) == "measures False"
