"""Backup and restore: build some activity, back it up, restore into a fresh database, and find the
ledger clean and every figure the same. SQLite through `flask backup sqlite`; PostgreSQL through
pg_dump -Fc / pg_restore, as docs/operations.md says."""
from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, select, text

from tests.conftest import _postgres_admin_url, make_app, pin_ordinary_time
from tests.factories import claim_one, make_campaign, make_citizen, make_world, pay_through_bank
from voucher.campaigns import services as campaigns
from voucher.campaigns.models import Release
from voucher.core.clock import local_day_start_utc, local_today
from voucher.core.db import db as _db
from voucher.counter.redemption import redeem, reverse
from voucher.ops.backup import summary
from voucher.reports.consistency import verify_ledger
from voucher.settlement import batches as settlement

# Yesterday's redemptions must be settleable (their reversal window long past), so these tests
# run at an ordinary moment whatever VOUCHER_TEST_NOW says; tests/test_clock_boundaries.py covers the edges.
pytestmark = pin_ordinary_time


def build_activity() -> None:
    """A co-funded campaign, claims, redemptions (one reversed) yesterday, and a paid settlement."""
    world = make_world()
    world.merchant.bank_account_name, world.merchant.bank_name = "港城老味道餐饮有限公司", "港城银行"
    world.merchant.bank_account_no = "6222020000001234"
    _, release = make_campaign(
        world, valid_from=local_today() - timedelta(days=5), quantity=10,
        sources=[campaigns.SourceInput("municipal_finance", "市财政", 600_00, share=3),
                 campaigns.SourceInput("bank", "港城银行", 400_00, share=2)],
    )
    noon = local_day_start_utc(local_today() - timedelta(days=1)) + timedelta(hours=12)
    vouchers = [claim_one(release, make_citizen(tag)) for tag in "abcde"]
    for i, voucher in enumerate(vouchers[:3]):
        redeem(voucher.code, 150_00, world.cashier, now=noon + timedelta(minutes=i))
    undone = redeem(vouchers[3].code, 120_00, world.cashier, now=noon + timedelta(minutes=5)).redemption
    reverse(undone.id, reason="顾客退单", cashier=world.cashier, now=noon + timedelta(minutes=10))
    _db.session.commit()
    result = settlement.build_batches(local_today() - timedelta(days=1), world.finance)
    _db.session.commit()
    pay_through_bank(result.batches[:1], world.finance)
    _db.session.commit()


def check_restored(url: str, expected: dict) -> None:
    restored = make_app(url)
    try:
        runner = restored.test_cli_runner()
        verified = runner.invoke(args=["ledger", "verify"])
        assert verified.exit_code == 0, verified.output
        assert "账本核对通过" in verified.output
        with restored.app_context():
            assert summary() == expected
        # The restored database takes new work (its id sequences came along): one more claim.
        with restored.app_context():
            release = _db.session.scalar(select(Release))
            claim_one(release, make_citizen("f"))
            assert verify_ledger() == []
            assert summary()["tables"]["vouchers"] == expected["tables"]["vouchers"]  # minted at opening
    finally:
        with restored.app_context():
            _db.session.remove()
            _db.engine.dispose()


def test_backup_and_restore_keep_the_ledger_and_every_figure(app, db, tmp_path):
    build_activity()
    expected = summary()
    assert expected["tables"]["redemptions"] == 4 and expected["tables"]["vouchers"] >= 5
    assert expected["tables"]["settlement_batches"] >= 1 and any(expected["balances"].values())
    url = app.config["SQLALCHEMY_DATABASE_URI"]

    if url.startswith("sqlite"):
        backup_file = tmp_path / "backup.db"
        result = app.test_cli_runner().invoke(args=["backup", "sqlite", "--to", str(backup_file)])
        assert result.exit_code == 0, result.output
        again = app.test_cli_runner().invoke(args=["backup", "sqlite", "--to", str(backup_file)])
        assert again.exit_code == 1 and "不会覆盖" in again.output
        fresh = tmp_path / "restored.db"  # restore = the backup file put in place, app stopped
        shutil.copyfile(backup_file, fresh)
        check_restored(f"sqlite:///{fresh}", expected)
        return

    for tool in ("pg_dump", "pg_restore"):
        if shutil.which(tool) is None:
            if os.environ.get("CI") == "true":
                pytest.fail(f"{tool} is required in CI")
            pytest.skip(f"{tool} not on PATH: PostgreSQL backup not tested")
    libpq_url = url.replace("postgresql+psycopg://", "postgresql://")
    dump = tmp_path / "voucher.dump"
    subprocess.run(["pg_dump", "-Fc", "--no-owner", "-f", str(dump), libpq_url], check=True, capture_output=True)

    name = f"voucher_restore_{uuid.uuid4().hex[:8]}"
    admin = create_engine(_postgres_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    restored_url = url.rsplit("/", 1)[0] + "/" + name
    try:
        subprocess.run(["pg_restore", "--no-owner", "--exit-on-error", "-d",
                        restored_url.replace("postgresql+psycopg://", "postgresql://"), str(dump)],
                       check=True, capture_output=True)
        check_restored(restored_url, expected)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
