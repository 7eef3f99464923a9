"""What emptying the tables after a test costs on PostgreSQL: the suite's way (tests/conftest.py, only the
tables a test wrote, by DELETE with triggers off) against the old way (TRUNCATE of every table), issue 15.

    .venv/bin/python benchmarks/teardown_cost.py              # 30 rounds each
    .venv/bin/python benchmarks/teardown_cost.py --rounds 100

On a fresh PostgreSQL database (dropped afterwards), migrated as the suite does: each round builds the
suite's usual world (tests/factories.make_world and one campaign with an open round, about 20 tables
written), commits, and empties the tables one way; the two ways alternate, so a slower or busier moment
of the machine falls on both. Printed: median and p90 per way, and their ratio (the yardstick is the old
way, measured in the same run).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import DEFAULT_PG, KEEP_TABLES, empty_tables, make_app  # noqa: E402
from tests.factories import make_campaign, make_world  # noqa: E402
from voucher.core.db import db  # noqa: E402


def truncate_everything(database) -> None:
    """The suite's teardown before issue 15: every table, whatever the test wrote."""
    database.session.rollback()
    tables = [t.name for t in reversed(database.metadata.sorted_tables) if t.name not in KEEP_TABLES]
    with database.engine.begin() as conn:
        conn.execute(text("TRUNCATE " + ", ".join(tables) + " RESTART IDENTITY CASCADE"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    name = f"voucher_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(DEFAULT_PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        app = make_app(DEFAULT_PG.rsplit("/", 1)[0] + "/" + name)
        with app.app_context():
            from flask_migrate import upgrade

            from voucher.campaigns.measures_seed import load_measures
            from voucher.cli import SEED_DIR

            upgrade()
            load_measures(SEED_DIR / "measures.toml")
            db.session.commit()
            timings: dict[str, list[float]] = {"written tables, DELETE": [], "every table, TRUNCATE": []}
            ways = {"written tables, DELETE": empty_tables, "every table, TRUNCATE": truncate_everything}
            for _ in range(args.rounds):
                for label, way in ways.items():
                    world = make_world()
                    make_campaign(world)
                    db.session.commit()
                    started = time.perf_counter()
                    way(db)
                    timings[label].append(time.perf_counter() - started)
            db.session.remove()
            db.engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    medians = {}
    for label, values in timings.items():
        values.sort()
        medians[label] = statistics.median(values)
        print(f"{label:24} median {medians[label] * 1000:7.1f} ms   p90 {values[int(len(values) * 0.9)] * 1000:7.1f} ms"
              f"   ({len(values)} rounds)")
    ratio = medians["written tables, DELETE"] / medians["every table, TRUNCATE"]
    print(f"ratio (new / old, same run): {ratio:.3f}")


if __name__ == "__main__":
    main()
