"""Big rounds through the background job (voucher/jobs/background.py), timed.

    .venv/bin/python benchmarks/big_rounds.py              # PostgreSQL, 1,000,000 vouchers and entries
    .venv/bin/python benchmarks/big_rounds.py --n 100000   # a tenth

On a fresh PostgreSQL database that it drops afterwards: migrates, makes an approved campaign, then
1. starts the opening of a first-come release of N vouchers as the page does (request_open: a queued
   job), and times the job (background.run_pending(): reserve, mint in chunks, open);
2. opens a lottery release of N vouchers the same way, enters N citizens (written in bulk with
   INSERT ... SELECT, not timed), starts its draw (request_draw) and times the job;
and after each, runs verify_ledger(). A yardstick is timed in the same run, on the same database: a
plain `INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, N) g` of N rows, so figures from a
busy machine can be read as a ratio. Target on this 2-core machine: under 60 s for each job at N = 1,000,000.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.production_env import migrate_with_measures, production_env  # noqa: E402

PG_ADMIN = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def psql(database: str, sql: str) -> None:
    base = PG_ADMIN.rsplit("/", 1)[0]
    subprocess.run(["psql", f"{base}/{database}", "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True)


def run(database_url: str, n: int) -> None:
    os.environ.update(production_env(database_url))
    from sqlalchemy import text

    from tests.factories import make_campaign, make_world
    from voucher import create_app
    from voucher.core.clock import utcnow
    from voucher.core.db import db
    from voucher.jobs import background
    from voucher.reports.consistency import verify_ledger
    from voucher.vouchers import releases

    app = create_app()
    with app.app_context():
        migrate_with_measures()

        started = time.perf_counter()
        db.session.execute(text("CREATE TABLE yardstick (id integer PRIMARY KEY, label text)"))
        db.session.execute(text("INSERT INTO yardstick SELECT g, md5(g::text) FROM generate_series(1, :n) g"),
                           {"n": n})
        db.session.commit()
        yardstick = time.perf_counter() - started

        world = make_world()
        face = 20_00
        campaign, _ = make_campaign(world, budget_fen=2 * n * face + face, face_value_fen=face, quantity=1,
                                    plan_override_reason="基准测试：大场次")

        def new_release(name: str, mode: str) -> int:
            release = releases.create_release(
                campaign, name=name, quantity=n, per_person_limit=1, opens_at=utcnow() - timedelta(minutes=1),
                actor=world.maker, mode=mode,
            )
            db.session.commit()
            return release.id

        # The slowest statements of each job, to see where its time goes.
        from sqlalchemy import event

        statements: list[tuple[float, str]] = []

        @event.listens_for(db.engine, "before_cursor_execute")
        def before(conn, cursor, statement, parameters, context, executemany):
            conn.info["bench_started"] = time.perf_counter()

        @event.listens_for(db.engine, "after_cursor_execute")
        def after(conn, cursor, statement, parameters, context, executemany):
            statements.append((time.perf_counter() - conn.info.pop("bench_started"), " ".join(statement.split())[:70]))

        steps: list[tuple[float, int]] = []
        background.after_step.append(lambda run_id, done: steps.append((time.perf_counter(), done)))

        def job(start) -> tuple[float, str]:
            run = start()
            assert run is not None, "below the threshold: opened in the request"
            db.session.commit()
            steps.clear()
            statements.clear()
            started = time.perf_counter()
            [outcome] = background.run_pending()
            seconds = time.perf_counter() - started
            assert outcome.ok, outcome.error
            marks = ", ".join(f"{done:,} at {at - started:.1f} s" for at, done in steps)
            in_sql = sum(s for s, _ in statements)
            slowest = "; ".join(f"{s:.1f} s {text}" for s, text in sorted(statements, reverse=True)[:4])
            return seconds, (f"{outcome.summary}\n  progress committed: {marks}\n  in SQL {in_sql:.1f} s "
                             f"({len(statements)} statements), slowest: {slowest}")

        def verified() -> tuple[float, str]:
            started = time.perf_counter()
            problems = verify_ledger()
            db.session.rollback()
            return time.perf_counter() - started, "clean" if not problems else "; ".join(problems[:3])

        first_come = new_release("百万张先到先得", "first_come")
        open_seconds, open_summary = job(lambda: background.request_open(first_come, world.maker))
        open_verify = verified()

        draw_release = new_release("百万张摇号", "lottery")
        lottery_open_seconds, _ = job(lambda: background.request_open(draw_release, world.maker))
        started = time.perf_counter()
        db.session.execute(text(
            "INSERT INTO citizens (identity_hash, created_at) SELECT md5('bench-' || g), now() "
            "FROM generate_series(1, :n) g"), {"n": n})
        db.session.execute(text(
            "INSERT INTO lottery_entries (release_id, citizen_id, won, created_at) "
            "SELECT :release, id, false, now() FROM citizens ORDER BY id"), {"release": draw_release})
        db.session.commit()
        entered = time.perf_counter() - started
        draw_seconds, draw_summary = job(lambda: background.request_draw(draw_release, world.maker))
        draw_verify = verified()
        db.session.remove()
        db.engine.dispose()

    print(f"== PostgreSQL, N = {n:,}")
    print(f"yardstick: INSERT ... SELECT generate_series of {n:,} rows: {yardstick:.2f} s")
    print(f"OPEN  {n:,} vouchers through the job: {open_seconds:.1f} s "
          f"({open_seconds / yardstick:.1f} x yardstick) {'OK' if open_seconds < 60 else 'OVER 60 s'}; {open_summary}")
    print(f"  verify_ledger {open_verify[0]:.1f} s: {open_verify[1]}")
    print(f"open of the lottery release ({n:,} vouchers): {lottery_open_seconds:.1f} s; "
          f"{n:,} citizens and entries written in bulk: {entered:.1f} s (not timed below)")
    print(f"DRAW  {n:,} entries through the job: {draw_seconds:.1f} s "
          f"({draw_seconds / yardstick:.1f} x yardstick) {'OK' if draw_seconds < 60 else 'OVER 60 s'}; {draw_summary}")
    print(f"  verify_ledger {draw_verify[0]:.1f} s: {draw_verify[1]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="vouchers per release, and lottery entries")
    args = parser.parse_args()
    if os.environ.get("BIG_ROUNDS_CHILD"):
        run(os.environ["BIG_ROUNDS_CHILD"], args.n)
        return
    database = f"voucher_big_rounds_{int(time.time())}"
    psql("postgres", f'CREATE DATABASE "{database}"')
    try:
        url = PG_ADMIN.rsplit("/", 1)[0] + "/" + database
        subprocess.run([sys.executable, __file__, "--n", str(args.n)], check=True,
                       env={**os.environ, "BIG_ROUNDS_CHILD": url})
    finally:
        psql("postgres", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    main()
