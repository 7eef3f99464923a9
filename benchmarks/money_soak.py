"""The money soak, long: many concurrent actors on every money flow, several seeds, PostgreSQL (issue 14).

    .venv/bin/python benchmarks/money_soak.py                                  # seeds 1 2 3, 16 threads x 150 ops
    .venv/bin/python benchmarks/money_soak.py --seeds 1 2 3 4 5 --threads 24 --ops 200
    MONEY_SOAK_STRICT=1 .venv/bin/python benchmarks/money_soak.py              # known defects fail too

The harness is tests/invariants_harness.py, the one the suite's short run uses
(tests/test_money_invariants.py). For each seed, on a fresh PostgreSQL database that it drops afterwards:
migrates, builds the harness's world (campaigns of every kind, merchants, cashiers and terminals, staff
for every thread, signed-in citizens, three days of history), then `threads` actors, released together,
each perform `ops` operations drawn by the seed from the harness's weighted table through the app's HTTP
entry points (Flask test clients, in this process): every third operation a rush (all threads at once on
one campaign, see RUSHES in the harness), and a day passing every five rushes (the app's clock, with every
thread waiting), so each day's redemptions are settled the next and the month ends and is closed. An
observer checks the invariants on consistent snapshots meanwhile; afterwards they are checked on the final
state by the harness's SQL, with `verify_ledger()`, every acknowledged answer looked up in the database,
and the 5xx counted.

Figures per seed: operations, seconds, operations per second, p50/p99 latency, the answers (ok, refused,
409 conflict, error), interleavings (operations that overlapped in time another thread's operation on a
campaign they share, and the overlapping pairs), the snapshots checked, and the invariants' result.

Yardstick: the same workload run by a single thread (seed 1, the same operation table, `--yardstick-ops`
operations, a fresh database): the throughput with nobody to collide with. The soak's throughput is
printed as a ratio of it: below 1 means the actors spend more time waiting on each other (row locks,
retries of collisions) than the second core gives back. Everything runs on the same 2-core machine as
PostgreSQL; the actors are threads of one Python process (the GIL is part of the figure).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import secrets
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
#: The moment each run starts at (the app's clock; it ticks on, and days pass during the run): near the
#: end of a month, as in tests/test_money_invariants.py, so the month ends and is closed while people
#: work; the same for every run, so the figures compare from run to run.
MOMENT = datetime.fromisoformat("2027-03-30T10:00:00+08:00")


def psql(database: str, sql: str) -> None:
    base = PG_ADMIN.rsplit("/", 1)[0]
    subprocess.run(["psql", f"{base}/{database}", "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else 0.0


def soak_once(settings):
    """One run on a fresh database: (SoakRun, problems)."""
    from tests.invariants_harness import build_world, check, run_soak
    from voucher import create_app
    from voucher.campaigns.measures_seed import load_measures
    from voucher.cli import SEED_DIR
    from voucher.core.clock import travel_to
    from voucher.core.db import db

    database = f"voucher_soak_{int(time.time())}_{secrets.token_hex(3)}"
    psql("postgres", f'CREATE DATABASE "{database}"')
    url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + "/" + database
    app = create_app({
        "SQLALCHEMY_DATABASE_URI": url, "TESTING": True, "WTF_CSRF_ENABLED": False, "SERVER_NAME": "localhost",
        "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000", "RATELIMIT_ENABLED": False,
        # a connection for every actor at once, the observer and the set-up
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": settings.threads + 4, "max_overflow": 4, "pool_pre_ping": False},
    })
    try:
        with travel_to(MOMENT):
            with app.app_context():
                from flask_migrate import upgrade

                with contextlib.redirect_stderr(io.StringIO()):
                    upgrade()  # its log lines (one per migration) kept off the figures
                load_measures(SEED_DIR / "measures.toml")
                db.session.commit()
                world = build_world(app, settings)
                db.session.remove()
            run = run_soak(app, world, settings)
            problems = check(app, world, run)
        return run, problems
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        psql("postgres", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--ops", type=int, default=150, help="operations per thread")
    parser.add_argument("--citizens", type=int, default=40)
    parser.add_argument("--yardstick-ops", type=int, default=400, help="operations of the single-thread run")
    args = parser.parse_args()

    from tests.invariants_harness import OPERATIONS, SoakSettings, interleavings, summary

    def settings_for(seed: int, threads: int, ops: int) -> SoakSettings:
        # The one-day vouchers run out over the first half of the run (about 20 ms an operation here);
        # a day passes every 15 operations of a thread (every 5 rushes).
        # Budgets and rounds grow with the run, as if the suite's world were several times larger.
        return SoakSettings(seed=seed, threads=threads, ops=ops, citizens=args.citizens, observe_every=0.5,
                            expiry_spread=max(5.0, threads * ops * 0.02 / 2), days=max(3, ops // 15),
                            scale=max(1, round(threads * ops / 400)))

    print(f"machine: {os.cpu_count()} cores, PostgreSQL at {PG_ADMIN.rsplit('@', 1)[-1]}; "
          f"operation table: {len([o for o in OPERATIONS.values() if o.run])} driven, "
          f"{len([o for o in OPERATIONS.values() if o.placeholder])} placeholders "
          f"({', '.join(n for n, o in OPERATIONS.items() if o.placeholder)})")
    single, _ = soak_once(settings_for(1, 1, args.yardstick_ops))
    single_rate = len(single.outcomes) / single.seconds
    single_p50 = percentile([o.ended - o.started for o in single.outcomes], 50)
    print(f"yardstick: 1 thread, seed 1, {len(single.outcomes):,} operations in {single.seconds:.1f} s = "
          f"{single_rate:.0f} ops/s; p50 {single_p50 * 1000:.0f} ms")

    rows, ok = [], True
    for seed in args.seeds:
        settings = settings_for(seed, args.threads, args.ops)
        run, problems = soak_once(settings)
        latencies = [o.ended - o.started for o in run.outcomes]
        kinds = Counter(o.kind for o in run.outcomes)
        overlapped, pairs = interleavings(run.outcomes)
        rate = len(run.outcomes) / run.seconds
        print()
        print(summary(run, problems))
        p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
        print(f"  latency p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms; "
              f"throughput {rate:.0f} ops/s = {rate / single_rate:.2f} x the single-thread yardstick")
        rows.append((seed, len(run.outcomes), run.seconds, rate, overlapped, pairs, kinds, run.snapshots,
                     len(problems), sum(o.kind == "defect" for o in run.outcomes) + sum(run.known.values())))
        ok = ok and not problems

    print(f"\n{'seed':>4} {'operations':>10} {'seconds':>8} {'ops/s':>6} {'x yardstick':>11} {'interleaved':>11} "
          f"{'pairs':>7} {'ok':>6} {'refused':>7} {'409 conflict':>12} {'errors':>6} {'snapshots':>9} "
          f"{'problems':>8} {'known':>5}")
    for seed, count, seconds, rate, overlapped, pairs, kinds, snapshots, problems, defects in rows:
        print(f"{seed:>4} {count:>10,} {seconds:>8.1f} {rate:>6.0f} {rate / single_rate:>11.2f} {overlapped:>11,} "
              f"{pairs:>7,} {kinds['ok']:>6,} {kinds['refused']:>7,} {kinds['conflict']:>12} {kinds['error']:>6} "
              f"{snapshots:>9} {problems:>8} {defects:>5}")
    print("RESULT:", "OK" if ok else "PROBLEM")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
