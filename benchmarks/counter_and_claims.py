"""Claims under a flash crowd and redemptions at the counter, over HTTP, against PostgreSQL.

    .venv/bin/python benchmarks/counter_and_claims.py            # defaults below
    .venv/bin/python benchmarks/counter_and_claims.py --vouchers 10000 --attempts 50000 --clients 32

What it does, on a fresh PostgreSQL database that it drops afterwards:
1. migrates, and sets up a merchant with one store terminal per client, a channel partner, and an
   approved campaign whose round of N vouchers is opened (money reserved, vouchers minted);
2. serves the app with gunicorn (the production WSGI server) as deployed: one instance per core, each with
   one worker on a port of its own on 127.0.0.1 (nginx balances them with least_conn; the clients that talk
   to the app directly spread their connections evenly over the ports);
3. flash crowd: `attempts` signed claim requests from distinct citizens through the channel API,
   `clients` at a time; every answer must be won / sold_out, and exactly N must be won; once per path
   (--paths), each on a round of its own: `database` (no Redis), `gate` (the Redis admission gate), and
   `edge` / `database-edge`, the same behind nginx with deploy/nginx-claims-edge.conf, claiming on the
   release-in-path route (nginx answers the late arrivals once the round is finally sold out);
4. counter: redeems every won voucher through the terminal API, `clients` at a time;
5. ceiling: pgbench runs the redemption transaction straight against PostgreSQL, with as many clients,
   twice: (a) the app's own statements, recorded from one steady-state redemption made in process
   (find the terminal, lock the voucher, insert the redemption with its audit row and mark the
   voucher, write the journal entry with its postings), on the app's own tables with their foreign
   keys, indexes and data, each transaction redeeming the next voucher of a claimed round of its own:
   the equivalent transaction, the figure the share is read against; (b) the same statements on
   simplified tables without foreign keys and with fewer indexes (the lighter yardstick used before);
6. prints throughput and p50/p99 latency, the redemption share of each ceiling, and checks the ledger.

The load generator runs on the same 2-core machine as the server, so every figure includes its cost.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.production_env import migrate_with_measures, production_env  # noqa: E402

PG_ADMIN = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PORT = int(os.environ.get("BENCH_PORT", "8765"))
EDGE_PORT = int(os.environ.get("BENCH_EDGE_PORT", "8766"))
PATHS = ("database", "gate", "edge", "database-edge")
WARM_UP_PER_CLIENT = 10


def psql(database: str, sql: str) -> None:
    base = PG_ADMIN.rsplit("/", 1)[0]
    subprocess.run(["psql", f"{base}/{database}", "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class _Answers(asyncio.Protocol):
    """One socket's side of a Connection: collects the bytes of the answer it waits for."""

    _LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None or self.waiter.done():
            return
        head = bytes(self.buffer[:end])
        length = self._LENGTH.search(head)
        total = end + 4 + (int(length.group(1)) if length else 0)
        if len(self.buffer) >= total:
            payload = bytes(self.buffer[end + 4:total])
            del self.buffer[:total]
            self.waiter.set_result((head, payload))

    def connection_lost(self, error: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(error or ConnectionResetError("connection closed before the answer"))


class Connection:
    """One keep-alive HTTP/1.1 connection: a lean client, so the load generator (on the same two
    cores as the server) takes as little CPU from the server as it can. Requests come as ready-made
    bytes, and the answer is taken straight off the socket (no stream reader, no header parsing line
    by line): its status, its Content-Length, and whether the server closes the connection."""

    _CLOSE = re.compile(rb"\r\nconnection:[ \t]*close", re.IGNORECASE)

    def __init__(self, port: int = PORT) -> None:
        self.port = port
        self.answers: _Answers | None = None

    async def request(self, data: bytes) -> tuple[int, dict]:
        loop = asyncio.get_running_loop()
        if self.answers is None or self.answers.transport.is_closing():  # new, or closed while idle
            _, self.answers = await loop.create_connection(_Answers, "127.0.0.1", self.port)
        waiter = self.answers.waiter = loop.create_future()
        self.answers.transport.write(data)
        head, payload = await waiter
        if self._CLOSE.search(head):  # a sync worker answers one request per connection
            self.close()
        return int(head[9:12]), json.loads(payload)

    def close(self) -> None:
        if self.answers is not None:
            self.answers.transport.close()
        self.answers = None


def http_request(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode() + body


def _cpu_seconds(pid: int) -> float:
    """utime + stime of one process, from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def app_cpu(server: subprocess.Popen) -> float:
    """CPU seconds of a server so far: its master process and its workers (gunicorn's or nginx's)."""
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children")
    pids = [server.pid] + [int(p) for p in children.read_text().split()] if children.exists() else [server.pid]
    return sum(_cpu_seconds(pid) for pid in pids)


def database_cpu(database: str) -> float:
    """CPU seconds of the PostgreSQL backends serving the benchmark's database (the app's pooled
    connections stay open through a phase, so before and after cover the same processes)."""
    base = PG_ADMIN.rsplit("/", 1)[0]
    done = subprocess.run(["psql", f"{base}/postgres", "-Atc",
                           f"SELECT pid FROM pg_stat_activity WHERE datname = '{database}'"],
                          capture_output=True, text=True, check=True)
    return sum(_cpu_seconds(int(pid)) for pid in done.stdout.split())


def run_clients(clients: int, jobs: list, send, ports: int | list[int] = PORT) -> tuple[list, list[float], float]:
    """Send every job from `clients` concurrent connections (to several app servers' ports in turn:
    the same number of connections to each); answers and latencies in job order."""
    results: list = [None] * len(jobs)
    latencies: list[float] = [0.0] * len(jobs)
    cursor = iter(range(len(jobs)))
    ports = [ports] if isinstance(ports, int) else ports

    async def worker(number: int) -> None:
        conn = Connection(ports[number % len(ports)])
        for index in cursor:
            started = time.perf_counter()
            try:
                results[index] = await send(conn, jobs[index])
            except (OSError, asyncio.IncompleteReadError, ValueError) as error:
                conn.close()
                results[index] = ("transport_error", repr(error))
            latencies[index] = time.perf_counter() - started
        conn.close()

    async def main() -> None:
        await asyncio.gather(*(worker(number) for number in range(clients)))

    started = time.perf_counter()
    asyncio.run(main())
    return results, latencies, time.perf_counter() - started


def setup(env: dict, vouchers: int, clients: int, ceiling_vouchers: int) -> dict:
    """Build the data through the product's own services, as an operator would."""
    os.environ.update(env)
    from datetime import timedelta

    from sqlalchemy import select

    from voucher import create_app
    from voucher.accounts.services import create_user
    from voucher.api.auth import partner_secret
    from voucher.api.models import Partner
    from voucher.campaigns import services as campaigns
    from voucher.campaigns.models import Measure
    from voucher.core.clock import local_today, utcnow
    from voucher.core.db import db
    from voucher.core.permissions import Role
    from voucher.core.uscc import check_char
    from voucher.merchants.models import Merchant, Store
    from voucher.merchants.terminals import issue_terminal_token
    from voucher.vouchers import releases

    app = create_app()
    with app.app_context():
        migrate_with_measures()
        merchant = Merchant(name="基准测试餐厅", uscc="91320706MA2BEN001" + check_char("91320706MA2BEN001"),
                            category="餐饮", status="approved")
        merchant.stores.append(Store(name="基准测试门店", district="海州区"))
        db.session.add(merchant)
        db.session.flush()
        maker = create_user("bench_maker", "bench-pass-1", Role.BUREAU_MAKER)
        approver = create_user("bench_approver", "bench-pass-1", Role.BUREAU_APPROVER)
        terminals = [issue_terminal_token(merchant.stores[0].id, f"终端{i}", approver.id)[1] for i in range(clients)]
        db.session.add(Partner(name="基准测试渠道", key_id="pk_bench"))
        measure = db.session.scalar(select(Measure).where(Measure.number == 1))
        campaign = campaigns.create_campaign(campaigns.CampaignInput(
            measure_id=measure.id, name="基准测试消费券", valid_from=local_today(),
            valid_until=local_today() + timedelta(days=30),
            sources=[campaigns.SourceInput("municipal_finance", "市财政",
                                            (len(PATHS) * (vouchers + WARM_UP_PER_CLIENT * clients)
                                             + ceiling_vouchers) * 20_00)],
            face_value_fen=20_00, threshold_fen=100_00, categories=["餐饮"]), maker)
        campaigns.submit_for_approval(campaign, maker)
        campaigns.approve(campaign.id, approver)
        # A round of its own for each path of the flash crowd, and a warm-up round beside it.
        rounds = {}
        for path in PATHS:
            release = releases.create_release(campaign, name=f"抢券（{path}）", quantity=vouchers, per_person_limit=1,
                                              opens_at=utcnow(), actor=maker)
            releases.open_release(release.id, maker)
            warm_up = releases.create_release(campaign, name=f"预热（{path}）", quantity=WARM_UP_PER_CLIENT * clients,
                                              per_person_limit=1, opens_at=utcnow(), actor=maker)
            releases.open_release(warm_up.id, maker)
            rounds[path] = (release.id, warm_up.id)
        # Vouchers for pgbench to redeem with the app's own statements on the app's own tables.
        ceiling = releases.create_release(campaign, name="上限测量", quantity=ceiling_vouchers, per_person_limit=1,
                                          opens_at=utcnow(), actor=maker)
        releases.open_release(ceiling.id, maker)
        db.session.commit()
        info = {"rounds": rounds, "terminals": terminals, "secret": partner_secret("pk_bench"),
                "campaign_id": campaign.id, "ceiling_release_id": ceiling.id}
        db.session.remove()
        db.engine.dispose()
    return info


def claim_sender(secret: str, release_id: int, in_path: bool = False):
    """Signed claims: the release in the body (/channel/claims) or in the path, where nginx can read it."""
    path = f"/api/v1/channel/releases/{release_id}/claims" if in_path else "/api/v1/channel/claims"

    async def send(conn: Connection, phone: str):
        body = json.dumps({"citizen": {"phone": phone}} if in_path else
                          {"release_id": release_id, "citizen": {"phone": phone}}).encode()
        timestamp, nonce = str(int(time.time())), uuid.uuid4().hex
        digest = hashlib.sha256(body).hexdigest()
        message = "\n".join(["POST", path, timestamp, nonce, digest])
        signature = hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
        status, payload = await conn.request(http_request(path, body, {
            "Content-Type": "application/json", "X-Partner-Key": "pk_bench", "X-Timestamp": timestamp,
            "X-Nonce": nonce, "X-Signature": signature}))
        if status == 201:
            return ("won", payload["data"]["voucher"]["qr_token"])
        return (payload["errors"][0]["code"] if payload.get("errors") else f"http_{status}", None)

    return send


def redemption_requests(terminals: list[str], jobs: list[tuple[int, str]]) -> list[bytes]:
    """Every redemption request as bytes, built before the clock starts: nothing in it depends on
    the moment it is sent (a claim's timestamp and nonce do, so claims are signed as they go)."""
    return [http_request("/api/v1/redemptions", json.dumps({"code": qr, "order_amount_fen": 128_00}).encode(), {
        "Content-Type": "application/json", "Authorization": f"Bearer {terminals[index % len(terminals)]}",
        "Idempotency-Key": f"bench-{index}"}) for index, qr in jobs]


async def send_redemption(conn: Connection, request: bytes):
    status, payload = await conn.request(request)
    return ("redeemed", None) if status == 201 else (
        payload["errors"][0]["code"] if payload.get("errors") else f"http_{status}", None)


PGBENCH_SETUP = """
CREATE TABLE bench_terminals (id int PRIMARY KEY, token_hash text UNIQUE NOT NULL, store_id int NOT NULL);
INSERT INTO bench_terminals SELECT g, md5(g::text), 1 FROM generate_series(1, 32) g;
CREATE TABLE bench_vouchers (id bigint PRIMARY KEY, code text UNIQUE NOT NULL, status text NOT NULL,
  redeemed_at timestamp);
INSERT INTO bench_vouchers SELECT g, 'V' || g, 'claimed', NULL FROM generate_series(1, 1000000) g;
CREATE TABLE bench_redemptions (id bigserial PRIMARY KEY, voucher_id bigint NOT NULL, store_id int NOT NULL,
  order_fen bigint NOT NULL, subsidy_fen bigint NOT NULL, idempotency_key text, created_at timestamp NOT NULL,
  UNIQUE (store_id, idempotency_key));
CREATE TABLE bench_entries (id bigserial PRIMARY KEY, kind text, campaign_id int, memo text, ref_id bigint,
  created_at timestamp NOT NULL);
CREATE TABLE bench_postings (id bigserial PRIMARY KEY, entry_id bigint NOT NULL, account_id int NOT NULL,
  amount_fen bigint NOT NULL);
CREATE INDEX ON bench_postings (account_id);
CREATE INDEX ON bench_postings (entry_id);
CREATE TABLE bench_audit (id bigserial PRIMARY KEY, at timestamp NOT NULL, action text, object_id bigint,
  after jsonb);
"""

# The app's redemption transaction on PostgreSQL, statement for statement (counter/redemption.py
# and ledger/services.py): the terminal by its token; the voucher locked by its code; one statement
# that inserts the redemption (ON CONFLICT: idempotency), marks the voucher and writes the audit row;
# one that writes the journal entry with its postings; the commit.
PGBENCH_SCRIPT = """\\set v random(1, 1000000)
\\set t random(1, 32)
BEGIN;
SELECT id, store_id FROM bench_terminals WHERE token_hash = md5(:t::text);
SELECT id, status FROM bench_vouchers WHERE code = 'V' || :v FOR UPDATE;
WITH r AS (INSERT INTO bench_redemptions (voucher_id, store_id, order_fen, subsidy_fen, idempotency_key, created_at)
    VALUES (:v, 1, 12800, 2000, 'k' || :v || '-' || random(), now()) ON CONFLICT DO NOTHING RETURNING id),
  m AS (UPDATE bench_vouchers SET status = 'redeemed', redeemed_at = now() WHERE id = :v AND EXISTS (SELECT 1 FROM r)),
  a AS (INSERT INTO bench_audit (at, action, object_id, after)
    SELECT now(), 'voucher.redeem', r.id, '{"subsidy_fen": 2000}' FROM r)
SELECT id FROM r;
WITH e AS (INSERT INTO bench_entries (kind, campaign_id, memo, ref_id, created_at)
  VALUES ('redemption', 1, 'r', :v, now()) RETURNING id)
INSERT INTO bench_postings (entry_id, account_id, amount_fen) VALUES ((SELECT id FROM e), 1, -2000),
  ((SELECT id FROM e), 2, 2000) RETURNING entry_id;
COMMIT;
"""


def pg_ceiling(database: str, clients: int, seconds: int) -> float:
    psql(database, PGBENCH_SETUP)
    return run_pgbench(database, PGBENCH_SCRIPT, clients, seconds)


def run_pgbench(database: str, script: str, clients: int, seconds: int) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as handle:
        handle.write(script)
    base = PG_ADMIN.rsplit("/", 1)[0]
    done = subprocess.run(
        ["pgbench", "-n", "-c", str(clients), "-j", "2", "-T", str(seconds), "-f", handle.name, f"{base}/{database}"],
        check=True, capture_output=True, text=True,
    )
    output = done.stdout
    failed = next((line for line in output.splitlines() if line.startswith("number of failed")), "")
    if failed and not failed.split(":")[1].strip().startswith("0"):
        raise RuntimeError(f"pgbench: {failed}\n{done.stderr[-2000:]}\nscript: {handle.name}")
    tps_line = next(line for line in output.splitlines() if line.startswith("tps"))
    return float(tps_line.split("=")[1].split()[0])


def app_schema_script(info: dict) -> tuple[str, int]:
    """The redemption transaction exactly as the app sends it, on the app's own tables: one redemption
    of a voucher of the ceiling round is made in process through the API while every statement is
    recorded; the voucher, its code, the idempotency key and the new redemption's id then become
    per-transaction values (the n-th voucher of the round, from a sequence), every other parameter
    stays as sent. The other vouchers of the round are claimed for one citizen first (a claim is not
    part of a redemption). Returns (pgbench script, vouchers available)."""
    import psycopg
    from sqlalchemy import event, select, text

    from voucher import create_app
    from voucher.core.db import db
    from voucher.vouchers.citizens import citizen_for
    from voucher.vouchers.models import Voucher
    from voucher.vouchers.services import qr_token

    app = create_app({"RATELIMIT_ENABLED": False})
    with app.app_context():
        citizen = citizen_for("13999999999")
        db.session.execute(text(
            "UPDATE vouchers SET status = 'claimed', citizen_id = :c, claim_slot = id, claimed_at = now() at time zone 'utc' "
            "WHERE release_id = :r"), {"c": citizen.id, "r": info["ceiling_release_id"]})
        db.session.execute(text(
            "CREATE TABLE pgb_vouchers AS SELECT row_number() OVER (ORDER BY id) AS n, id AS voucher_id, code "
            "FROM vouchers WHERE release_id = :r"), {"r": info["ceiling_release_id"]})
        db.session.execute(text("CREATE UNIQUE INDEX ON pgb_vouchers (n); CREATE SEQUENCE pgb_next"))
        db.session.commit()
        warm, second = db.session.scalars(select(Voucher).where(Voucher.release_id == info["ceiling_release_id"])
                                          .order_by(Voucher.id).limit(2)).all()
        voucher_id, code, token = second.id, second.code, qr_token(second)
        warm_token = qr_token(warm)
        available = db.session.scalar(text("SELECT count(*) FROM pgb_vouchers"))
        db.session.execute(text("SELECT setval('pgb_next', 2)"))  # the first two are redeemed below
        db.session.commit()

        recorded: list[tuple[str, dict]] = []
        engine = db.engine

        def record(conn, cursor, statement, parameters, context, executemany):
            recorded.append((statement, dict(parameters or {})))

        client = app.test_client()
        headers = {"Authorization": f"Bearer {info['terminals'][0]}"}
        # A first redemption fills the process's caches; the second is the steady state, recorded.
        assert client.post("/api/v1/redemptions", json={"code": warm_token, "order_amount_fen": 128_00},
                           headers={**headers, "Idempotency-Key": "pgb-1"}).status_code == 201
        event.listen(engine, "before_cursor_execute", record)
        answer = client.post("/api/v1/redemptions", json={"code": token, "order_amount_fen": 128_00},
                             headers={**headers, "Idempotency-Key": "pgb-2"})
        event.remove(engine, "before_cursor_execute", record)
        assert answer.status_code == 201, answer.get_json()
        redemption_id = answer.get_json()["data"]["id"]
        db.session.remove()
        engine.dispose()

    # The transaction's voucher number: the first statement that needs it takes the next one, the
    # others read it back (no extra round trip for it).
    numbers = iter(["(SELECT nextval('pgb_next'))"])
    per_transaction = {
        code: "(SELECT code FROM pgb_vouchers WHERE n = {n})",
        voucher_id: "(SELECT voucher_id FROM pgb_vouchers WHERE n = {n})",
        "pgb-2": "('pgb-' || {n})",
    }
    new_redemption = "currval(pg_get_serial_sequence('redemptions', 'id'))"
    lines = ["BEGIN;"]
    with psycopg.connect(env_url()) as conn:
        for statement, parameters in recorded:
            def value(match):
                name, raw = match.group(1), parameters[match.group(1)]
                if name.endswith("ref_id") and raw == redemption_id:  # the journal entry's redemption
                    return new_redemption
                if isinstance(raw, (int, str)) and not isinstance(raw, bool) and raw in per_transaction:
                    return per_transaction[raw].format(n=next(numbers, "(SELECT currval('pgb_next'))"))
                return psycopg.sql.Literal(raw).as_string(conn)
            sql_text = re.sub(r"%\(([^)]+)\)s", value, statement).replace("%%", "%")
            lines.append(" ".join(sql_text.split()) + ";")
    lines.append("COMMIT;")
    return "\n".join(lines) + "\n", available - 1


class AppServers:
    """gunicorn, as deployed (docs/operations.md): one instance per port, `workers` processes each."""

    def __init__(self, processes: list[subprocess.Popen], ports: list[int]) -> None:
        self.processes, self.ports = processes, ports

    def cpu(self) -> float:
        return sum(app_cpu(process) for process in self.processes)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=30)


def start_server(env: dict, extra: dict, args, log) -> AppServers:
    ports = [PORT + 2 * number for number in range(args.app_servers)]  # (PORT + 1 is nginx's)
    for port in ports:  # a server left over from another run would answer in this one's place
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                raise SystemExit(f"port {port} is taken (a server of another run?)")
    processes = [subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "-c", "gunicorn.conf.py", "-b", f"127.0.0.1:{port}", "wsgi:app"],
        cwd=ROOT, env={**os.environ, **env, **extra, "WEB_CONCURRENCY": str(args.workers),
                       "GUNICORN_THREADS": str(args.threads), "GUNICORN_WORKER_CLASS": args.worker_class},
        stderr=log,
    ) for port in ports]
    for port in ports:
        for _ in range(50):
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/api/v1/openapi.json")
                break
            except OSError:
                time.sleep(0.2)
    return AppServers(processes, ports)


EDGE_NGINX = """\
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    proxy_cache_path {dir}/claims_edge keys_zone=voucher_claims_edge:1m max_size=16m inactive=10m;
    # the edge's per-address limit: every claim here comes from one address, so far above it
    limit_req_zone $binary_remote_addr zone=voucher_edge:1m rate=1000000r/s;
    upstream voucher_app {{
        least_conn;  # as deploy/nginx.conf: to the app server with the fewest requests in flight
{servers}
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        # deploy/nginx.conf's proxying (its TLS and per-address limit aside: one address sends everything here)
        include {proxy};
        include {edge};
        location / {{
            proxy_pass http://voucher_app;
        }}
    }}
}}
"""


def start_edge(directory: Path, app_ports: list[int]) -> subprocess.Popen:
    """nginx in front of the app server, with the project's claims edge, as deploy/nginx.conf has it."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)  # mkdtemp's 0700 would keep nginx's worker (nobody) out
    for name in ("body", "proxy", "claims_edge"):
        (directory / name).mkdir(mode=0o777, exist_ok=True)
        (directory / name).chmod(0o777)  # nginx's worker runs as nobody when started as root
    conf = directory / "nginx.conf"
    conf.write_text(EDGE_NGINX.format(dir=directory, port=EDGE_PORT,
                                      servers="\n".join(f"        server 127.0.0.1:{port};" for port in app_ports),
                                      edge=ROOT / "deploy" / "nginx-claims-edge.conf",
                                      proxy=ROOT / "deploy" / "nginx-proxy.conf"))
    edge = subprocess.Popen([nginx, "-p", str(directory), "-c", str(conf), "-e", str(directory / "error.log"),
                             "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    for _ in range(50):
        try:
            http.client.HTTPConnection("127.0.0.1", EDGE_PORT, timeout=1).request("GET", "/api/v1/openapi.json")
            return edge
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nginx did not start: {(directory / 'error.log').read_text()[-1000:]}")


def build_gates(env: dict, gate_env: dict) -> None:
    """What the reconcile job does every minute: a gate for every open first-come release."""
    os.environ.update({**env, **gate_env})
    from voucher import create_app
    from voucher.vouchers import admission

    app = create_app()
    with app.app_context():
        summary = admission.reconcile()
        if summary["unreachable"]:
            raise SystemExit(f"Redis unreachable at {gate_env['ADMISSION_REDIS_URL']}")
    for name in gate_env:
        os.environ.pop(name, None)


def env_url() -> str:
    return re.sub(r"^postgresql\+psycopg://", "postgresql://", os.environ["DATABASE_URL"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vouchers", type=int, default=10_000)
    parser.add_argument("--attempts", type=int, default=50_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--app-servers", type=int, default=os.cpu_count() or 2,
                        help="gunicorn instances, each on its own port (nginx balances them: least_conn)")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn worker processes per instance (WEB_CONCURRENCY)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (GUNICORN_THREADS)")
    parser.add_argument("--worker-class", default="gthread", help="gunicorn worker class (GUNICORN_WORKER_CLASS)")
    parser.add_argument("--pgbench-seconds", type=int, default=20)
    parser.add_argument("--paths", default="database,gate,edge",
                        help="comma-separated, in this order: " + ", ".join(PATHS) + " (each on a release of its "
                             "own, in the same run; the gate's Redis is BENCH_REDIS_URL, default "
                             "redis://127.0.0.1:6379/0; the edge paths need nginx)")
    parser.add_argument("--ceiling-vouchers", type=int, default=120_000,
                        help="vouchers for pgbench to redeem on the app's tables (enough for its seconds)")
    args = parser.parse_args()
    unknown = set(args.paths.split(",")) - set(PATHS)
    if unknown:
        parser.error(f"unknown paths: {', '.join(sorted(unknown))}")

    database = f"voucher_bench_{int(time.time())}"
    psql("postgres", f'CREATE DATABASE "{database}"')
    env = production_env(
        PG_ADMIN.rsplit("/", 1)[0] + "/" + database,
        # One partner and one address send every claim, 32 terminals redeem as fast as they can: far
        # above the production limits, which stay switched on (their cost is part of the figures).
        **{name: "10000000 per minute" for name in (
            "RATELIMIT_CHANNEL_CLAIM_IP", "RATELIMIT_CHANNEL_CLAIM_PARTNER",
            "RATELIMIT_REDEMPTION_IP", "RATELIMIT_REDEMPTION_TERMINAL")},
    )
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    # Both paths count their rate limits in the same Redis, as several app servers must: the gate is the
    # only difference between them.
    env["RATELIMIT_STORAGE_URI"] = redis_url
    env["RATELIMIT_KEY_PREFIX"] = f"bench{int(time.time())}"
    gate_env = {"ADMISSION_REDIS_URL": redis_url, "ADMISSION_KEY_PREFIX": f"bench{int(time.time())}"}
    server = None
    try:
        info = setup(env, args.vouchers, args.clients, args.ceiling_vouchers)
        # The server's JSON log (an access line per request) goes to a file, as in production.
        server_log = open(Path(tempfile.gettempdir()) / f"{database}.log", "w")
        crowds: dict = {}
        cpu: dict = {}
        paths = [path for path in PATHS if path in args.paths.split(",")]
        for number, path in enumerate(paths):
            gated = path in ("gate", "edge")
            behind_edge = path.endswith("edge")
            release_id, warm_id = info["rounds"][path]
            prefix = f"13{number}"  # each path's citizens of its own
            if gated:
                build_gates(env, gate_env)
            server = start_server(env, gate_env if gated else {}, args, server_log)
            edge = start_edge(Path(tempfile.mkdtemp(prefix="bench-edge-")), server.ports) if behind_edge else None
            port = EDGE_PORT if behind_edge else server.ports
            # Warm-up, left out of the figures: every worker thread compiles its statements and opens its
            # database connections on a round of its own, as a server that has been up a while has done.
            warm, _, _ = run_clients(args.clients, [f"{prefix}9{i:07d}" for i in range(WARM_UP_PER_CLIENT * args.clients)],
                                     claim_sender(info["secret"], warm_id, behind_edge), port)
            warm_tokens = [token for kind, token in warm if kind == "won"]
            warm_redeemed, _, _ = run_clients(
                args.clients, redemption_requests(info["terminals"], [(-1 - i - 10**6 * number, t)
                                                                      for i, t in enumerate(warm_tokens)]),
                send_redemption, server.ports)
            warm_ok = len(warm_tokens) == len(warm) and all(kind == "redeemed" for kind, _ in warm_redeemed)
            phones = [f"{prefix}{i:08d}" for i in range(args.attempts)]
            cpu_before = (server.cpu(), database_cpu(database), app_cpu(edge) if edge else 0.0)
            results, claim_lat, claim_time = run_clients(
                args.clients, phones, claim_sender(info["secret"], release_id, behind_edge), port)
            cpu[path] = (server.cpu() - cpu_before[0], database_cpu(database) - cpu_before[1],
                         app_cpu(edge) - cpu_before[2] if edge else 0.0)
            crowds[path] = (results, claim_lat, claim_time, warm_ok)
            if edge is not None:
                edge.terminate()
                edge.wait(timeout=30)
            if number < len(paths) - 1:
                server.stop()
                server = None
        results = crowds[paths[-1]][0]  # the counter redeems the last path's vouchers, on its server
        tokens = [token for kind, token in results if kind == "won"]

        jobs = redemption_requests(info["terminals"], list(enumerate(tokens)))
        cpu_before = (server.cpu(), database_cpu(database))
        redeemed, redeem_lat, redeem_time = run_clients(args.clients, jobs, send_redemption, server.ports)
        redeem_cpu = (server.cpu() - cpu_before[0], database_cpu(database) - cpu_before[1])
        redeem_answers = Counter(kind for kind, _ in redeemed)
        server.stop()
        server = None

        ceiling = pg_ceiling(database, args.clients, args.pgbench_seconds)
        os.environ.update(env)
        script, available = app_schema_script(info)
        app_ceiling = run_pgbench(database, script, args.clients, args.pgbench_seconds)
        from voucher import create_app
        from voucher.reports.consistency import verify_ledger

        app = create_app()
        with app.app_context():
            problems = verify_ledger()

        redeem_rate = len(jobs) / redeem_time if jobs else 0.0
        print(f"\nmachine: {os.cpu_count()} cores; {args.app_servers} gunicorn instances x {args.workers} workers x "
              f"{args.threads} threads; "
              f"{args.clients} concurrent clients on the same machine")
        print(f"warm-up (not in the figures): a round of its own per path: "
              f"{'all answered' if all(c[3] for c in crowds.values()) else 'PROBLEM'}")
        rates = {}
        for name, (res, lat, seconds, _) in crowds.items():
            kinds = Counter(kind for kind, _ in res)
            rates[name] = len(res) / seconds
            print(f"flash crowd, {name + ' path':13s}: {len(res):,} claim attempts for {args.vouchers:,} vouchers in "
                  f"{seconds:.1f} s = {rates[name]:,.0f} req/s; p50 {percentile(lat, 50) * 1000:.1f} ms, "
                  f"p99 {percentile(lat, 99) * 1000:.1f} ms; answers {dict(kinds)}")
            # where the tail lives: a won claim goes to the database, a late arrival does not
            print("  by answer: " + "; ".join(
                f"{kind} p10 {percentile(of_kind, 10) * 1000:.1f} ms, p50 {percentile(of_kind, 50) * 1000:.1f} ms, "
                f"p90 {percentile(of_kind, 90) * 1000:.1f} ms, "
                f"p99 {percentile(of_kind, 99) * 1000:.1f} ms" for kind in sorted(kinds)
                for of_kind in [[latency for (answer, _), latency in zip(res, lat) if answer == kind]]))
            failed = next((detail for kind, detail in res if kind == "transport_error"), None)
            if failed:
                print(f"  first transport error: {failed}")
            app_s, db_s, edge_s = cpu[name]
            print(f"  CPU per attempt: app {1000 * app_s / len(res):.2f} ms, PostgreSQL {1000 * db_s / len(res):.2f} ms"
                  + (f", nginx {1000 * edge_s / len(res):.3f} ms" if name.endswith("edge") else "")
                  + f" (app {app_s:.1f} s, PostgreSQL backends {db_s:.1f} s"
                  + (f", nginx {edge_s:.1f} s" if name.endswith("edge") else "") + " over the crowd)")
        if "database" in rates:
            for name in rates:
                if name != "database":
                    print(f"  {name} / database throughput: {rates[name] / rates['database']:.2f}x (same run, same machine)")
        print(f"counter: {len(jobs):,} redemptions in {redeem_time:.1f} s = {redeem_rate:,.0f} req/s; "
              f"p50 {percentile(redeem_lat, 50) * 1000:.1f} ms, p99 {percentile(redeem_lat, 99) * 1000:.1f} ms")
        print(f"  answers: {dict(redeem_answers)}; CPU per redemption: app {1000 * redeem_cpu[0] / max(len(jobs), 1):.2f} ms, "
              f"PostgreSQL {1000 * redeem_cpu[1] / max(len(jobs), 1):.2f} ms")
        print(f"PostgreSQL ceiling (pgbench, {args.clients} clients), the app's redemption statements as recorded, "
              f"on the app's tables: {app_ceiling:,.0f} tps; redemption throughput = {100 * redeem_rate / app_ceiling:.1f}% of it")
        print(f"  the same statements on simplified tables (no foreign keys, fewer indexes): {ceiling:,.0f} tps; "
              f"{100 * redeem_rate / ceiling:.1f}% of it")
        print(f"ledger verify: {'clean' if not problems else problems[:3]}")
        print(f"server log: {server_log.name}")
        exact = all(Counter(kind for kind, _ in res).get("won") == args.vouchers
                    and {kind for kind, _ in res} <= {"won", "sold_out"} and ok_warm
                    for res, _, _, ok_warm in crowds.values())
        ok = exact and set(redeem_answers) == {"redeemed"} and not problems
        print("RESULT:", "OK" if ok else "PROBLEM")
        sys.exit(0 if ok else 1)
    finally:
        if server is not None:
            server.stop()
        psql("postgres", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    main()
