"""What a voucher won costs the app when its Redis checks go in one script, against one request each.

    .venv/bin/python benchmarks/claim_round_trips.py                  # 5 rounds of 400 claims each way
    .venv/bin/python benchmarks/claim_round_trips.py --claims 1000 --rounds 7

A channel claim makes four checks in Redis: its address's rate limit, its nonce, its partner's rate limit
and the admission gate. With RATELIMIT_STORAGE_URI the very URL of ADMISSION_REDIS_URL they go in the
gate's script, one round trip ("together"); with the limits counted anywhere else, each is a request of
its own ("apart"). Here both run in one process against the same Redis and PostgreSQL, on one release:
"apart" names the same Redis by another URL (a client name added), so only the round trips differ.

On a fresh PostgreSQL database that it drops afterwards: migrates, makes an approved campaign with an
open first-come release and its gate, and a channel partner; then claims through the WSGI app in
process (the fast lane, Flask, the views and services; no gunicorn, no network to the app), one claim at
a time, every claim a voucher won, in rounds that alternate the two ways. Prints per claim: the requests
sent to Redis, the app's CPU (this process), Redis's CPU (its INFO), as medians over the rounds, and the
ratio of the two ways measured in the same run (this machine's speed varies from day to day).
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.production_env import migrate_with_measures, production_env  # noqa: E402

PG_ADMIN = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
WAYS = ("apart", "together")


def psql(database: str, sql: str) -> None:
    base = PG_ADMIN.rsplit("/", 1)[0]
    subprocess.run(["psql", f"{base}/{database}", "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True)


def redis_cpu(client) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--claims", type=int, default=400, help="claims per round and way")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    database = f"voucher_bench_rt_{int(time.time())}"
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    tag = f"benchrt{int(time.time())}"
    psql("postgres", f'CREATE DATABASE "{database}"')
    try:
        run(PG_ADMIN.rsplit("/", 1)[0] + "/" + database, redis_url, tag, args.claims, args.rounds)
    finally:
        psql("postgres", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def run(database_url: str, redis_url: str, tag: str, claims: int, rounds: int) -> None:
    os.environ.update(production_env(database_url))
    import redis
    from sqlalchemy import text

    from tests.factories import make_campaign, make_world
    from voucher import create_app
    from voucher.api.auth import partner_secret
    from voucher.api.models import Partner
    from voucher.core.db import db
    from voucher.reports.consistency import verify_ledger
    from voucher.vouchers import admission

    limits = {name: "10000000 per minute" for name in ("RATELIMIT_CHANNEL_CLAIM_IP", "RATELIMIT_CHANNEL_CLAIM_PARTNER")}
    common = {"ADMISSION_REDIS_URL": redis_url, "ADMISSION_KEY_PREFIX": tag, "RATELIMIT_ENABLED": True,
              "RATELIMIT_KEY_PREFIX": tag, **limits}
    apart_url = redis_url + ("&" if "?" in redis_url else "?") + "client_name=apart"
    apps = {"together": create_app({**common, "RATELIMIT_STORAGE_URI": redis_url}),
            "apart": create_app({**common, "RATELIMIT_STORAGE_URI": apart_url})}
    total = 2 * claims * (rounds + 1)  # a warm-up round each way
    with apps["together"].app_context():
        migrate_with_measures()
        world = make_world()
        _, release = make_campaign(world, quantity=total, budget_fen=total * 20_00)
        db.session.add(Partner(name="基准测试渠道", key_id="pk_bench"))
        db.session.commit()
        release_id, secret = release.id, partner_secret("pk_bench")
        admission.reconcile()

    sent = [0]
    send = redis.connection.Connection.send_packed_command

    def counted(connection, command, *rest, **kwargs):
        sent[0] += 1
        return send(connection, command, *rest, **kwargs)

    redis.connection.Connection.send_packed_command = counted  # type: ignore[method-assign]
    server = redis.Redis.from_url(redis_url)
    path = f"/api/v1/channel/releases/{release_id}/claims"
    phones = iter(f"139{n:08d}" for n in range(total))

    def claim(client) -> None:
        body = json.dumps({"citizen": {"phone": next(phones)}}).encode()
        timestamp, nonce = str(int(time.time())), uuid.uuid4().hex
        message = "\n".join(["POST", path, timestamp, nonce, hashlib.sha256(body).hexdigest()])
        answer = client.post(path, data=body, content_type="application/json", headers={
            "X-Partner-Key": "pk_bench", "X-Timestamp": timestamp, "X-Nonce": nonce,
            "X-Signature": hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()})
        if answer.status_code != 201:
            raise SystemExit(f"a claim was not won: {answer.status_code} {answer.get_data(as_text=True)}")

    figures: dict[str, list[tuple[float, float, float]]] = {way: [] for way in WAYS}
    for number in range(rounds + 1):
        for way in (WAYS if number % 2 else WAYS[::-1]):
            client = apps[way].test_client()
            redis_before = redis_cpu(server)
            requests_before, cpu_before = sent[0], time.process_time()
            for _ in range(claims):
                claim(client)
            cpu, requests = time.process_time() - cpu_before, sent[0] - requests_before
            redis_seconds = redis_cpu(server) - redis_before
            if number:  # the first round warms both ways up (statements, scripts, caches)
                figures[way].append((requests / claims, 1000 * cpu / claims,
                                     1000 * redis_seconds / claims))

    with apps["together"].app_context():
        problems = verify_ledger()
        issued = db.session.execute(text(
            "SELECT count(*) FROM vouchers WHERE release_id = :r AND citizen_id IS NOT NULL"), {"r": release_id}).scalar()
    medians = {way: [statistics.median(column) for column in zip(*rows)] for way, rows in figures.items()}
    print(f"\n{rounds} rounds of {claims} claims each way, every one a voucher won (a warm-up round left out)")
    for way in WAYS:
        requests, app_ms, redis_ms = medians[way]
        print(f"  {way:8s}: {requests:.2f} requests to Redis per claim; CPU per claim: app {app_ms:.3f} ms, "
              f"Redis {redis_ms:.3f} ms")
    print(f"  together / apart, same run: app CPU {medians['together'][1] / medians['apart'][1]:.3f}, "
          f"Redis CPU {medians['together'][2] / medians['apart'][2]:.3f}")
    print(f"vouchers issued: {issued:,} of {total:,}; ledger verify: {'clean' if not problems else problems[:3]}")
    ok = issued == total and not problems
    print("RESULT:", "OK" if ok else "PROBLEM")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
