"""Several app servers, proven (issue 19): three gunicorns behind nginx, one PostgreSQL through PgBouncer in
transaction mode, one Redis (tests/ops/three_servers.py starts them all, each on a free port).

Skipped where nginx, pgbouncer or redis-server is missing, except with CI=true, where that is a failure
(.ci/install-three-servers installs them). The whole module is bounded: it fails past THREE_SERVERS_BUDGET
seconds (180 by default); on this 2-core machine it takes about a minute.
"""
from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter

import psycopg
import pytest
import redis

from tests.conftest import missing_component
from tests.ops.three_servers import PARTNER_KEY, ROOT, STAFF_PASSWORD, STAFF_USER, Cluster, missing_programs, psql

pytestmark = pytest.mark.three_servers

VOUCHERS = 150
ATTEMPTS = 900
CLIENTS = 24
LOGIN_LIMIT = 4
BUDGET_SECONDS = float(os.environ.get("THREE_SERVERS_BUDGET", "180"))


@pytest.fixture(scope="module")
def cluster():
    missing = missing_programs()
    if missing:
        missing_component(f"the three-server harness needs {', '.join(missing)} (.ci/install-three-servers installs them)")
    admin_url = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        psql(admin_url, "SELECT 1")
    except RuntimeError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI: {error}")
        pytest.skip(f"PostgreSQL not reachable at {admin_url}")
    running = Cluster(admin_url)
    running.started_at = time.monotonic()
    try:
        running.start({"THREE_SERVERS_VOUCHERS": str(VOUCHERS),
                       # a low limit, set as an operator would: failed staff sign-ins per address
                       "RATELIMIT_LOGIN": f"{LOGIN_LIMIT} per hour"})
        print(f"\nthree servers started, kept apart by {running.isolation}: "
              f"{', '.join(f'{k} {v:.1f} s' for k, v in running.timings.items())}")
        yield running
    except Exception:
        for name in ("app1", "app2", "app3", "pgbouncer", "nginx"):
            print(f"--- {name} ---\n{running.log_tail(name)}")
        raise
    finally:
        running.stop()
    elapsed = time.monotonic() - running.started_at
    print(f"three-server harness: {elapsed:.1f} s in all")
    assert elapsed < BUDGET_SECONDS, f"the three-server harness took {elapsed:.0f} s, over its {BUDGET_SECONDS:.0f} s"


# -- a small HTTP client: one keep-alive connection, cookies by hand (the production cookies are Secure) ----


class Client:
    def __init__(self, address: tuple[str, int], forwarded_for: str | None = None):
        self.forwarded_for = forwarded_for
        self.cookies: dict[str, str] = {}
        self.conn = http.client.HTTPConnection(*address, timeout=30)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if self.forwarded_for:
            headers["X-Forwarded-For"] = self.forwarded_for
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                payload = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()  # a keep-alive connection the other side closed while idle
                if attempt == 2:
                    raise
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                cookie_name, _, rest = value.partition("=")
                cookie_value = rest.split(";", 1)[0]
                if cookie_value and "expires=thu, 01 jan 1970" not in value.lower():
                    self.cookies[cookie_name] = cookie_value
                else:
                    self.cookies.pop(cookie_name, None)
        return response.status, {k.lower(): v for k, v in response.getheaders()}, payload

    def form(self, path: str, fields: dict[str, str]):
        from urllib.parse import urlencode

        return self.request("POST", path, urlencode(fields).encode(),
                            {"Content-Type": "application/x-www-form-urlencoded"})

    def csrf_token(self, path: str = "/login") -> str:
        status, _, page = self.request("GET", path)
        assert status == 200, status
        return re.search(rb'name="csrf_token"[^>]*value="([^"]+)"', page).group(1).decode()


def claim_path(release_id: int | None = None) -> str:
    """The claim's route: the release in the body, or (given) in the path, where the nginx edge reads it."""
    return "/api/v1/channel/claims" if release_id is None else f"/api/v1/channel/releases/{release_id}/claims"


def signed_claim(secret: str, release_id: int, phone: str, *, in_path: bool = False) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"citizen": {"phone": phone}} if in_path else
                      {"release_id": release_id, "citizen": {"phone": phone}}).encode()
    timestamp, nonce = str(int(time.time())), uuid.uuid4().hex
    path = claim_path(release_id if in_path else None)
    message = "\n".join(["POST", path, timestamp, nonce, hashlib.sha256(body).hexdigest()])
    return body, {"Content-Type": "application/json", "X-Partner-Key": PARTNER_KEY, "X-Timestamp": timestamp,
                  "X-Nonce": nonce, "X-Signature": hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()}


def crowd(cluster, release_id: int, phones: list[str], *, in_path: bool = False) -> tuple[Counter, Counter, set[bytes]]:
    """Signed claims through nginx, CLIENTS at a time, the release in the body or (in_path) in the path:
    the answers, the app server of each ("nginx" when nginx answered itself), the bodies of the 409s."""
    todo = iter(phones)
    lock = threading.Lock()
    answers: Counter = Counter()
    upstreams: Counter = Counter()
    bodies: set[bytes] = set()

    def one_client() -> None:
        client = Client(("127.0.0.1", cluster.nginx_port))
        while True:
            with lock:
                phone = next(todo, None)
            if phone is None:
                return
            body, headers = signed_claim(cluster.data["secret"], release_id, phone, in_path=in_path)
            status, head, payload = client.request("POST", claim_path(release_id if in_path else None), body, headers)
            answer = json.loads(payload) if payload.startswith(b"{") else {}
            kind = "won" if status == 201 else (answer.get("errors") or [{}])[0].get("code", f"http_{status}")
            with lock:
                answers[kind] += 1
                upstreams[head.get("x-upstream") or "nginx"] += 1
                if status == 409:
                    bodies.add(payload)

    threads = [threading.Thread(target=one_client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers, upstreams, bodies


# -- (a) a flash drop across the three servers is exact ------------------------------------------------------


def test_a_flash_drop_through_nginx_issues_exactly_the_round(cluster):
    started = time.monotonic()
    answers, upstreams, _ = crowd(cluster, cluster.data["release_id"], [f"137{i:08d}" for i in range(ATTEMPTS)])
    seconds = time.monotonic() - started
    print(f"\nflash drop: {ATTEMPTS} signed claims for {VOUCHERS} vouchers in {seconds:.1f} s "
          f"({ATTEMPTS / seconds:.0f}/s) through nginx; answers {dict(answers)}; by app server {dict(upstreams)}")

    assert answers == {"won": VOUCHERS, "sold_out": ATTEMPTS - VOUCHERS}
    expected = {f"{host}:{port}" for host, port in cluster.servers}
    assert set(upstreams) == expected and all(upstreams[u] >= ATTEMPTS // 10 for u in expected)
    # the database agrees: the round is exactly claimed, each voucher by a different citizen
    claimed, citizens = psql(cluster.direct_url, (
        f"SELECT count(*), count(DISTINCT citizen_id) FROM vouchers WHERE release_id = {cluster.data['release_id']} "
        "AND status = 'claimed'")).split("|")
    assert int(claimed) == int(citizens) == VOUCHERS
    verify = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "ledger", "verify"], cwd=ROOT,
                            env=cluster.process_env(SCHEDULER_ENABLED="0"), capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stderr[-2000:]
    if cluster.namespaces:
        # three network stacks: the servers share one port, and Redis sees each at its own address
        assert {port for _, port in cluster.servers} == {8000}
        seen = {client["addr"].rsplit(":", 1)[0] for client in redis.Redis(port=cluster.redis_port).client_list()}
        assert {host for host, _ in cluster.servers} <= seen, seen


# -- (e) once a release is finally sold out, nginx answers its late arrivals itself ---------------------------


def _app_lines(cluster, route: str) -> int:
    """Access lines of the three app servers for a route."""
    return sum(cluster.log_tail(f"app{n}", chars=10**9).count(f'"route": "{route}"') for n in (1, 2, 3))


def test_e_a_finally_sold_out_release_is_answered_by_nginx_without_the_app(cluster):
    release_id = cluster.data["edge_release_id"]
    vouchers = int(psql(cluster.direct_url, f"SELECT count(*) FROM vouchers WHERE release_id = {release_id}"))
    drop, _, _ = crowd(cluster, release_id, [f"136{i:08d}" for i in range(vouchers * 4)], in_path=True)
    assert drop == {"won": vouchers, "sold_out": 3 * vouchers}, drop
    time.sleep(2.1)  # the edge's cached answer ("may still win") expires (nginx counts whole seconds: 1-2 s)...
    claims_before = _app_lines(cluster, "/api/v1/channel/releases/<int:release_id>/claims")
    probes_before = _app_lines(cluster, "/api/v1/edge/releases/<int:release_id>/claims")
    started = time.monotonic()
    # ...and the first claim after that asks again (claims meanwhile would take the last answer, and go on)
    body, headers = signed_claim(cluster.data["secret"], release_id, "13500099999", in_path=True)
    status, head, _ = Client(("127.0.0.1", cluster.nginx_port)).request("POST", claim_path(release_id), body, headers)
    assert status == 409 and not head.get("x-upstream")
    late, upstreams, bodies = crowd(cluster, release_id, [f"135{i:08d}" for i in range(600)], in_path=True)
    seconds = time.monotonic() - started
    time.sleep(0.5)  # the app servers' log lines are written after their answers
    claims = _app_lines(cluster, "/api/v1/channel/releases/<int:release_id>/claims") - claims_before
    probes = _app_lines(cluster, "/api/v1/edge/releases/<int:release_id>/claims") - probes_before
    print(f"\nafter the sell-out: 600 late claims in {seconds:.2f} s, answers {dict(late)}, answered by "
          f"{dict(upstreams)}; the app servers saw {claims} of them and {probes} probes from nginx")
    assert late == {"sold_out": 600}
    assert upstreams == {"nginx": 600} and claims == 0
    assert 1 <= probes <= seconds + 2  # about one a second, not one a claim
    # the same bytes as the app's own answer: a claim the app refuses on the body's route
    body, headers = signed_claim(cluster.data["secret"], release_id, "13400000000")
    status, head, app_body = Client(("127.0.0.1", cluster.nginx_port)).request("POST", claim_path(), body, headers)
    assert status == 409 and head.get("x-upstream") and bodies == {app_body}
    # the probe is nginx's own: from outside it is not found
    front = Client(("127.0.0.1", cluster.nginx_port))
    status, _, _ = front.request("GET", f"/api/v1/edge/releases/{release_id}/claims")
    assert status == 404
    # only a POST is a claim: anything else is 405, as from the app, even on a sold-out release
    status, head, _ = front.request("GET", claim_path(release_id))
    assert status == 405 and "POST" in head["allow"]
    # a release id past what the app accepts, and one the probe cannot answer: the app's own answer
    body, headers = signed_claim(cluster.data["secret"], 9_999_999_999, "13400000001", in_path=True)
    status, head, payload = front.request("POST", claim_path(9_999_999_999), body, headers)
    assert status == 404 and head.get("x-upstream") and json.loads(payload)["errors"][0]["code"] == "not_found"
    # the database agrees: exactly the round, and nothing written for the late arrivals
    claimed = psql(cluster.direct_url, f"SELECT count(*) FROM vouchers WHERE release_id = {release_id} "
                                       "AND status = 'claimed'")
    assert int(claimed) == vouchers


# -- (b) one rate limit, counted across the three --------------------------------------------------------------


def test_b_a_rate_limit_is_reached_after_the_same_requests_whichever_server_answers(cluster):
    """Failed staff sign-ins from one address (X-Forwarded-For, which each server trusts from 127.0.0.1 as
    it would from nginx), sent to the three servers in turn: the (LIMIT+1)-th is refused, whichever server it
    reaches; with each server counting alone it would take 3 x LIMIT."""
    clients = [Client(address, forwarded_for="198.51.100.7") for address in cluster.servers]
    token = clients[0].csrf_token()
    for other in clients[1:]:  # the same signed session cookie carries the token to each server
        other.cookies = dict(clients[0].cookies)
    statuses = []
    for attempt in range(LOGIN_LIMIT + 3):
        client = clients[attempt % 3]
        status, _, _ = client.form("/login", {"csrf_token": token, "username": "nobody-here",
                                              "password": f"wrong-{attempt}"})
        statuses.append(status)
    print(f"\nfailed sign-ins from one address, servers 1,2,3,1,...: {statuses}")
    assert 429 not in statuses[:LOGIN_LIMIT], statuses
    assert statuses[LOGIN_LIMIT:] == [429] * 3  # refused by every server once the shared count is reached


# -- (d) a session made on one server is valid on each ----------------------------------------------------------


def test_d_a_staff_session_signed_in_through_nginx_works_on_every_server(cluster):
    front = Client(("127.0.0.1", cluster.nginx_port))
    token = front.csrf_token()
    status, head, _ = front.form("/login", {"csrf_token": token, "username": STAFF_USER, "password": STAFF_PASSWORD})
    assert status == 302, status
    signed_in_by = head.get("x-upstream")
    for address in cluster.servers:
        direct = Client(address)
        direct.cookies = dict(front.cookies)
        status, _, page = direct.request("GET", "/campaigns")
        assert status == 200, (address, status)
        assert "三台服务器消费券".encode() in page
    # sign out on one server: the session ends on the server side, so every server refuses the cookie
    server1 = Client(cluster.servers[0])
    server1.cookies = dict(front.cookies)
    logout_token = server1.csrf_token("/campaigns")
    server1.form("/logout", {"csrf_token": logout_token})
    for address in cluster.servers:
        stale = Client(address)
        stale.cookies = dict(front.cookies)
        status, head, _ = stale.request("GET", "/campaigns")
        assert status == 302 and "/login" in head["location"], (address, status)
    print(f"\nsigned in through nginx (answered by {signed_in_by}), valid on servers "
          f"{cluster.servers}; signed out on one, refused on all three")


# -- (c) every scheduled slot run once, with the clock on all three --------------------------------------------


def test_c_each_job_slot_runs_once_with_the_scheduler_on_every_server(cluster):
    pids = cluster.server_pids()
    deadline = time.monotonic() + 45
    while True:
        heartbeats = psql(cluster.direct_url, "SELECT holder FROM scheduler_heartbeats").split()
        servers = {pids.get(int(h.rsplit(":", 1)[1])) for h in heartbeats} - {None}
        runs = psql(cluster.direct_url, "SELECT count(*) FROM job_runs WHERE slot NOT LIKE 'manual-%'")
        if servers == {1, 2, 3} and int(runs) > 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert servers == {1, 2, 3}, f"not every server's clock ticked: {heartbeats}, workers {pids}"
    duplicates = psql(cluster.direct_url,
                      "SELECT job, slot, count(*) FROM job_runs GROUP BY job, slot HAVING count(*) > 1")
    assert duplicates == ""
    rows = [line.split("|") for line in psql(
        cluster.direct_url, "SELECT job, slot, status, holder, coalesce(error, '') FROM job_runs ORDER BY job").splitlines()]
    by_server = Counter(pids.get(int(holder.rsplit(":", 1)[1]), "gone") for _, _, _, holder, _ in rows)
    print(f"\n{len(rows)} job runs, one per (job, slot), run by server {dict(by_server)}: "
          + ", ".join(f"{job}@{slot}" for job, slot, *_ in rows))
    assert {job for job, *_ in rows} >= {"open_releases", "reconcile_admission"}
    assert not [row for row in rows if row[2] == "failed"], rows


# -- why DATABASE_POOLER=pgbouncer: psycopg's server-side prepared statements break in transaction mode --------


def test_prepared_statements_break_behind_transaction_pooling_and_the_switch_avoids_them(cluster):
    """Two clients of the harness's PgBouncer: the first runs one statement until psycopg prepares it on the
    server connection it happens to hold; the second then holds that server connection in a transaction, so
    the first's next run lands on another server connection, which has never seen the statement."""

    def run(prepare_threshold):
        first = psycopg.connect(cluster.bouncer_url, prepare_threshold=prepare_threshold, autocommit=True)
        second = psycopg.connect(cluster.bouncer_url, autocommit=True)
        try:
            for _ in range(8):
                first.execute("SELECT count(*) FROM job_runs WHERE job = %s", ["open_releases"])
            with second.transaction():
                second.execute("SELECT 1")
                first.execute("SELECT count(*) FROM job_runs WHERE job = %s", ["open_releases"])
            return None
        except psycopg.Error as error:
            return str(error)
        finally:
            first.close()
            second.close()

    assert "prepared statement" in (run(5) or "")  # psycopg's default
    assert run(None) is None  # what DATABASE_POOLER=pgbouncer sets
