"""The live claim-cohort query (核销率 / 沉淀率, docs/leverage.md) at city scale on PostgreSQL, timed.

    .venv/bin/python benchmarks/cohort_query.py                # scale 0.1 (a tenth of the reference case)
    .venv/bin/python benchmarks/cohort_query.py --scale 1.0    # the whole reference case

On a fresh PostgreSQL database that it drops afterwards: migrates, loads the measures and the city's reference
case (`load_city_scale`, as benchmarks/city_scale_load.py does), then times, in the same run, a yardstick
(`SELECT count(*) FROM vouchers`) and the cohort figures the pages read: the leverage page's headline with no
filter, for the campaign with the most claims, and for one week of claims; every campaign's cohort at once
(`cohorts_by_campaign`, the dashboard's), and the whole dashboard service. Without a date range the cohort is
read as two aggregates with no join (`leverage._whole_cohorts`); a date range joins (`leverage._cohort_query`). Prints median / worst of `--repeat`
runs each (seconds), EXPLAIN ANALYZE of the no-filter and one-week queries, and how many campaigns the
dashboard's old 核销率 (live redemptions over vouchers with a claimed status, rounded half up) put differently
from the cohort's. Target on this 2-core machine: under 1 s each.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.city_scale_load import PG_ADMIN, psql  # noqa: E402
from benchmarks.production_env import migrate_with_measures, production_env  # noqa: E402


def timed(work, repeat: int) -> tuple[float, float]:
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - started)
    seconds.sort()
    return seconds[len(seconds) // 2], seconds[-1]


def run(database_url: str, seed: int, scale: float, repeat: int) -> None:
    os.environ.update(production_env(database_url))
    from sqlalchemy import func, select, text

    from seed.city_scale import load_city_scale
    from voucher import create_app
    from voucher.analytics import leverage, services
    from voucher.analytics.models import SyntheticTruth  # noqa: F401 - the metadata is complete
    from voucher.core.clock import to_local
    from voucher.core.db import db
    from voucher.merchants.models import Redemption
    from voucher.vouchers.models import Voucher, VoucherStatus

    app = create_app()
    with app.app_context():
        migrate_with_measures()
        started = time.perf_counter()
        summary = load_city_scale(seed, scale)
        db.session.commit()
        loaded = time.perf_counter() - started
        db.session.execute(text("ANALYZE"))
        db.session.commit()

        claimed = db.session.scalar(select(func.count()).where(Voucher.claimed_at.is_not(None)))
        biggest, biggest_claims = db.session.execute(
            select(Voucher.campaign_id, func.count()).where(Voucher.claimed_at.is_not(None))
            .group_by(Voucher.campaign_id).order_by(func.count().desc()).limit(1)).one()
        first_claim = db.session.scalar(select(func.min(Voucher.claimed_at)))
        week_from = to_local(first_claim).date()  # the first week of claims
        week = leverage.LeverageFilter(date_from=week_from, date_until=week_from + timedelta(days=6))
        week_claims = leverage._cohorts(week, None)[""].claimed
        campaign_ids = list(db.session.scalars(text("SELECT id FROM campaigns")))

        cases = [
            ("yardstick: SELECT count(*) FROM vouchers", lambda: db.session.execute(
                text("SELECT count(*) FROM vouchers")).scalar_one()),
            (f"cohort, no filter ({claimed:,} claimed)", lambda: leverage._cohorts(leverage.LeverageFilter(), None)),
            (f"cohort, one campaign (#{biggest}, {biggest_claims:,} claimed)",
             lambda: leverage._cohorts(leverage.LeverageFilter(campaign_id=biggest), None)),
            (f"cohort, one week {week.date_from}..{week.date_until} ({week_claims:,} claimed)",
             lambda: leverage._cohorts(week, None)),
            (f"cohort by campaign ({len(campaign_ids)} campaigns, the dashboard's)",
             lambda: leverage.cohorts_by_campaign(campaign_ids)),
            ("dashboard service (every figure, first page)", lambda: services.dashboard()),
            ("leverage headline, no filter (gross + cohort)", lambda: leverage.headline()),
        ]
        results = []
        for label, work in cases:
            work()  # warm: the first run reads the pages from disk
            results.append((label, *timed(work, repeat)))
            db.session.rollback()

        plans = {}
        for name, f in (("no filter (the join, which it no longer uses without dates)", leverage.LeverageFilter()),
                        ("one week", week)):
            statement = leverage._cohort_query(f).compile(db.engine, compile_kwargs={"literal_binds": True})
            plans[name] = [row[0] for row in db.session.execute(text(f"EXPLAIN (ANALYZE, COSTS OFF) {statement}"))]

        # The old dashboard figure beside the cohort's, per campaign: live redemptions over claimed statuses.
        statuses = [VoucherStatus.CLAIMED.value, VoucherStatus.REDEEMED.value, VoucherStatus.EXPIRED.value]
        old_claimed = dict(db.session.execute(select(Voucher.campaign_id, func.count()).where(
            Voucher.status.in_(statuses)).group_by(Voucher.campaign_id)).all())
        old_live = dict(db.session.execute(select(Redemption.campaign_id, func.count()).where(
            Redemption.reversed_at.is_(None)).group_by(Redemption.campaign_id)).all())
        cohorts = leverage.cohorts_by_campaign(campaign_ids)
        differ = []
        for campaign_id, cohort in sorted(cohorts.items()):
            old = (Decimal(old_live.get(campaign_id, 0) * 100) / Decimal(old_claimed[campaign_id])).quantize(
                Decimal("0.1"), rounding=ROUND_HALF_UP)
            new = "%.1f" % (cohort.redemption_rate * 100)
            money = "%.1f" % (cohort.redemption_rate_money * 100)
            if str(old) != new:
                differ.append(f"#{campaign_id}: old {old} % vs cohort {new} % (in money {money} %)")
            else:
                differ.append(f"#{campaign_id}: {new} % by count (same), {money} % in money")
        db.session.rollback()
        db.session.remove()
        db.engine.dispose()

    print(f"== PostgreSQL: seed {seed}, scale {scale:g}; loaded in {loaded:.1f} s")
    print(f"vouchers {summary.vouchers:,} minted, {claimed:,} claimed; redemptions {summary.redemptions:,}")
    print(f"{repeat} runs each after one warm-up; median / worst, seconds:")
    for label, median, worst in results:
        print(f"  {label:66s} {median:7.3f} / {worst:.3f} {'OK' if worst < 1 else 'OVER 1 s'}")
    for name, lines in plans.items():
        print(f"EXPLAIN ANALYZE, cohort {name}:")
        for line in lines:
            print("   " + line)
    print("核销率 per campaign, the old dashboard figure against the claim cohort's:")
    for line in differ:
        print("  " + line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=20221231)
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if os.environ.get("COHORT_CHILD"):
        run(os.environ["COHORT_CHILD"], args.seed, args.scale, args.repeat)
        return
    database = f"voucher_cohort_{int(time.time())}"
    psql("postgres", f'CREATE DATABASE "{database}"')
    try:
        url = PG_ADMIN.rsplit("/", 1)[0] + "/" + database
        subprocess.run([sys.executable, __file__, *sys.argv[1:]], check=True,
                       env={**os.environ, "COHORT_CHILD": url})
    finally:
        psql("postgres", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    main()
