"""Loading the city's reference case (`flask seed city-scale`) at full scale, timed.

    .venv/bin/python benchmarks/city_scale_load.py                 # PostgreSQL, scale 1.0
    .venv/bin/python benchmarks/city_scale_load.py --scale 0.1     # a tenth
    .venv/bin/python benchmarks/city_scale_load.py --sqlite        # also SQLite, in a temporary file

On a fresh PostgreSQL database that it drops afterwards (and, with --sqlite, a temporary SQLite file):
migrates, loads the measures, then times load_city_scale(seed, scale) and its commit, which is what
the command runs; then runs verify_ledger() (timed apart) and prints counts, totals, leverage, the
seconds by step, and a simple difference-in-differences on the sales panel against the planted truth.
Target on this 2-core machine, PostgreSQL: under 120 s for the load.
"""
from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def psql(database: str, sql: str) -> None:
    base = PG_ADMIN.rsplit("/", 1)[0]
    subprocess.run(["psql", f"{base}/{database}", "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True)


def did_estimate() -> tuple[float, float, float]:
    """A plain difference in differences over the panel: per merchant, mean daily sales in the
    campaign weeks minus the weeks before; regressed on the merchant's mean daily subsidy paid
    (zero for comparables) with one intercept per campaign; heteroskedasticity-robust 95% interval."""
    import numpy as np
    import pandas as pd
    from sqlalchemy import select

    from voucher.analytics.city_scale import LEVERAGE_TRUTH
    from voucher.analytics.models import MerchantDailySales, SyntheticTruth
    from voucher.core.db import db
    from voucher.merchants.models import Redemption

    truth = db.session.scalar(select(SyntheticTruth).where(SyntheticTruth.name == LEVERAGE_TRUTH)).value
    sales = pd.DataFrame(db.session.execute(select(MerchantDailySales.merchant_id, MerchantDailySales.day,
                                                   MerchantDailySales.sales_fen)).all(),
                         columns=["merchant", "day", "sales"])
    paid = pd.DataFrame(db.session.execute(select(Redemption.merchant_id, Redemption.created_at,
                                                  Redemption.subsidy_fen)).all(), columns=["merchant", "at", "subsidy"])
    paid["day"] = (paid["at"] + pd.Timedelta(hours=8)).dt.date
    paid = paid.groupby(["merchant", "day"], as_index=False)["subsidy"].sum()
    sales = sales.merge(paid, on=["merchant", "day"], how="left").fillna({"subsidy": 0})
    rows = []
    for c, panel in enumerate(truth["panel"]):
        pre = (pd.Timestamp(panel["pre"][0]).date(), pd.Timestamp(panel["pre"][1]).date())
        during = (pd.Timestamp(panel["during"][0]).date(), pd.Timestamp(panel["during"][1]).date())
        for treated, ids in ((True, panel["treated_merchant_ids"]), (False, panel["comparable_merchant_ids"])):
            part = sales[sales["merchant"].isin(ids)]
            before = part[(part["day"] >= pre[0]) & (part["day"] <= pre[1])].groupby("merchant")["sales"].mean()
            inside = part[(part["day"] >= during[0]) & (part["day"] <= during[1])].groupby("merchant")
            frame = pd.DataFrame({"change": inside["sales"].mean() - before,
                                  "subsidy": inside["subsidy"].mean() if treated else 0.0, "campaign": c})
            rows.append(frame)
    panel = pd.concat(rows)
    X = np.column_stack([(panel["campaign"] == c).astype(float) for c in range(len(truth["panel"]))]
                        + [panel["subsidy"].to_numpy()])
    y = panel["change"].to_numpy()
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    residual = y - X @ beta
    bread = np.linalg.inv(X.T @ X)
    covariance = bread @ ((X * residual[:, None]).T @ (X * residual[:, None])) @ bread
    se = float(np.sqrt(covariance[-1, -1]))
    return float(beta[-1]), float(beta[-1] - 1.96 * se), float(beta[-1] + 1.96 * se)


def run(database_url: str, seed: int, scale: float, label: str) -> None:
    os.environ.update({
        "DATABASE_URL": database_url, "VOUCHER_ENV": "production",
        "SECRET_KEY": secrets.token_hex(24), "IDENTITY_HASH_KEY": secrets.token_hex(24),
        "QR_SIGNING_KEYS": f"b1:{secrets.token_hex(24)}", "PARTNER_MASTER_KEY": secrets.token_hex(24),
    })
    from voucher import create_app
    from voucher.analytics.city_scale import load_city_scale
    from voucher.analytics.models import SyntheticTruth  # noqa: F401 - the metadata is complete
    from voucher.campaigns.measures_seed import load_measures
    from voucher.cli import SEED_DIR
    from voucher.core.db import db
    from voucher.core.money import format_yuan
    from voucher.ledger.verify import verify_ledger

    app = create_app()
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
        load_measures(SEED_DIR / "measures.toml")
        db.session.commit()

        started = time.perf_counter()
        summary = load_city_scale(seed, scale)
        commit_started = time.perf_counter()
        db.session.commit()
        loaded = time.perf_counter() - started
        commit = time.perf_counter() - commit_started

        started = time.perf_counter()
        problems = verify_ledger()
        verified = time.perf_counter() - started
        db.session.rollback()

        started = time.perf_counter()
        estimate, low, high = did_estimate()
        estimated = time.perf_counter() - started
        db.session.rollback()
        db.session.remove()
        db.engine.dispose()

    print(f"== {label}: seed {seed}, scale {scale:g}")
    print(f"campaigns {summary.campaigns}, rounds {summary.rounds}, merchants {summary.merchants:,} taking part "
          f"+ {summary.comparables:,} comparables, citizens {summary.citizens:,}")
    print(f"vouchers {summary.vouchers:,}, issued {format_yuan(summary.issued_fen)} yuan; redemptions "
          f"{summary.redemptions:,}, subsidy {format_yuan(summary.subsidy_fen)} yuan, driven "
          f"{format_yuan(summary.driven_fen)} yuan; leverage on issued {summary.driven_fen / summary.issued_fen:.2f}")
    print(f"sales panel rows {summary.sales_rows:,}, journal entries {summary.journal_entries:,}")
    print("steps (s): " + ", ".join(f"{k} {v}" for k, v in summary.steps.items()) + f", commit {commit:.2f}")
    print(f"LOAD {loaded:.1f} s (load_city_scale + commit)")
    print(f"verify_ledger {verified:.1f} s: {'clean' if not problems else problems[:5]}")
    print(f"difference in differences: {estimate:.2f} (95% {low:.2f} .. {high:.2f}), planted 1.8 "
          f"({'inside' if low <= 1.8 <= high else 'OUTSIDE'} the interval) [{estimated:.1f} s]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=20221231)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--sqlite", action="store_true", help="also load into a temporary SQLite file")
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL (with --sqlite)")
    args = parser.parse_args()

    # Each run in a child process: the app and its engine are built from the environment once.
    if os.environ.get("CITY_SCALE_CHILD"):
        run(os.environ["CITY_SCALE_CHILD"], args.seed, args.scale, os.environ["CITY_SCALE_LABEL"])
        return
    child = [sys.executable, __file__, "--seed", str(args.seed), "--scale", str(args.scale)]
    if not args.no_postgres:
        database = f"voucher_city_{int(time.time())}"
        psql("postgres", f'CREATE DATABASE "{database}"')
        try:
            url = PG_ADMIN.rsplit("/", 1)[0] + "/" + database
            subprocess.run(child, check=True, env={**os.environ, "CITY_SCALE_CHILD": url,
                                                   "CITY_SCALE_LABEL": "PostgreSQL"})
        finally:
            psql("postgres", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    if args.sqlite:
        with tempfile.TemporaryDirectory() as directory:
            url = f"sqlite:///{directory}/city.db"
            subprocess.run(child, check=True, env={**os.environ, "CITY_SCALE_CHILD": url, "CITY_SCALE_LABEL": "SQLite"})


if __name__ == "__main__":
    main()
