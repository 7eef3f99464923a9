"""Loading the city's reference case (`flask seed city-scale`) at full scale, timed.

    .venv/bin/python benchmarks/city_scale_load.py                 # PostgreSQL, scale 1.0
    .venv/bin/python benchmarks/city_scale_load.py --scale 0.1     # a tenth
    .venv/bin/python benchmarks/city_scale_load.py --sqlite        # also SQLite, in a temporary file

On a fresh PostgreSQL database that it drops afterwards (and, with --sqlite, a temporary SQLite file):
migrates, loads the measures, then times load_city_scale(seed, scale) and its commit, which is what
the command runs (including the leverage rollup and the causal panel it builds at the end); then runs
verify_ledger() (timed apart) and prints counts, totals, leverage, the seconds by step, the causal
estimate against the planted truth, and the time of the leverage page and each breakdown, requested
through the app as a finance officer would. Targets on this 2-core machine, PostgreSQL: under 120 s for
the load, under 1 s for each page.
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

from benchmarks.production_env import migrate_with_measures, production_env  # noqa: E402

PG_ADMIN = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def psql(database: str, sql: str) -> None:
    base = PG_ADMIN.rsplit("/", 1)[0]
    subprocess.run(["psql", f"{base}/{database}", "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True)


PAGES = [("/analytics/leverage", "page, by campaign (headline, 4 charts, the table, causal)")] + [
    (f"/analytics/leverage?by={d}", f"page, by {d}") for d in ("measure", "release", "day", "category", "district", "size")
] + [
    ("/analytics/leverage?campaign=1", "page, one campaign"),
    ("/analytics/leverage?from=2021-01-01&until=2021-12-31", "page, one year"),
    ("/analytics/leverage.xlsx", "xlsx, every breakdown"),
]


def time_pages(app, repeat: int) -> list[tuple[str, float, float]]:
    """Each page through the app (as a signed-in finance officer): (label, median s, worst s)."""
    from voucher.accounts import sessions
    from voucher.accounts.services import create_user
    from voucher.core.db import db
    from voucher.core.permissions import Role

    user = create_user("bench_finance", secrets.token_hex(8), Role.FINANCE)
    token = sessions.start(user)  # a staff session kept on the server, as a sign-in opens one
    db.session.commit()
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"], session["_fresh"], session[sessions.TOKEN_KEY] = str(user.id), True, token
    results = []
    for path, label in PAGES:
        seconds = []
        for _ in range(repeat):
            started = time.perf_counter()
            response = client.get(path)
            seconds.append(time.perf_counter() - started)
            assert response.status_code == 200, (path, response.status_code)
        seconds.sort()
        results.append((label, seconds[len(seconds) // 2], seconds[-1]))
    return results


def run(database_url: str, seed: int, scale: float, label: str, repeat: int = 3) -> None:
    # The pages are timed, not the sign-in: the finance officer's second factor is not asked for.
    os.environ.update(production_env(database_url, TWO_FACTOR_REQUIRED_ROLES=""))
    from seed.city_scale import load_city_scale
    from voucher import create_app
    from voucher.analytics.models import SyntheticTruth  # noqa: F401 - the metadata is complete
    from voucher.core.db import db
    from voucher.core.money import format_yuan
    from voucher.reports.consistency import verify_ledger

    app = create_app()
    with app.app_context():
        migrate_with_measures()

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

        from voucher.analytics import panel
        from voucher.analytics.leverage import planted_truth

        started = time.perf_counter()
        causal = panel.estimate().estimate
        estimated = time.perf_counter() - started
        truth = planted_truth()
        pages = time_pages(app, repeat)
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
    if causal.value is None or causal.low is None or causal.high is None:
        print(f"causal leverage: no figure ({causal.missing_reason}) [{estimated:.2f} s]")
    else:
        print(f"causal leverage (net, from the panel): {causal.value:.2f} "
              f"(95% {causal.low:.2f} .. {causal.high:.2f}), planted {truth} "
              f"({'inside' if truth is not None and causal.low <= truth <= causal.high else 'OUTSIDE'} the interval) "
              f"[{estimated:.2f} s]; {causal.campaigns} campaigns, {causal.treated:,} redeeming and "
              f"{causal.comparable:,} comparable merchants" + (f"; left out: {'; '.join(causal.left_out)}"
                                                               if causal.left_out else ""))
    print(f"pages over the loaded data ({repeat} requests each; median / worst, seconds):")
    for label, median, worst in pages:
        print(f"  {label:58s} {median:6.2f} / {worst:.2f} {'OK' if worst < 1 else 'OVER 1 s'}")


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
