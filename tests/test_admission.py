"""The admission gate for first-come releases (voucher/vouchers/admission.py) against a real Redis that
the test starts and kills itself: exact under a flash crowd, refusals answered from Redis, places given
back, the database path without Redis, and no voucher beyond the release when Redis dies mid-drop."""
from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
import redis
from sqlalchemy import event, func, select

from tests.conftest import missing_component
from tests.factories import make_campaign, make_citizen, make_world
from tests.test_api import assert_error
from tests.test_claims_edge import claim_in_path, probe
from tests.test_concurrency import run_concurrently
from voucher.api import auth
from voucher.api.models import Partner, PartnerNonce
from voucher.campaigns.models import Release
from voucher.core import redis_store
from voucher.core.audit import AuditEntry
from voucher.core.clock import utcnow
from voucher.core.db import db as _db
from voucher.ops.limits import RateLimits
from voucher.reports.consistency import verify_ledger
from voucher.vouchers import admission, batches, releases
from voucher.vouchers.models import Citizen, Voucher
from voucher.vouchers.services import claim


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A redis-server of the test's own: nothing on disk, killed and started again at will."""

    def __init__(self, tmp_path) -> None:
        self.port, self.dir, self.process = _free_port(), tmp_path, None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.1).ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL: what a crash does; nothing is saved
        self.process.wait()


@pytest.fixture
def redis_server(tmp_path):
    if shutil.which("redis-server") is None:
        missing_component("redis-server is not installed (.ci/install-three-servers installs it)")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    if server.process and server.process.poll() is None:
        server.kill()


@pytest.fixture
def gated(app, monkeypatch, redis_server):
    monkeypatch.setitem(app.config, "ADMISSION_REDIS_URL", redis_server.url)
    monkeypatch.setitem(app.config, "ADMISSION_KEY_PREFIX", "test")
    admission.forget_client()
    yield redis_server
    admission.forget_client()
    auth.forget_partners()


def _counts() -> Counter:
    return Counter({sample.labels["result"]: sample.value for metric in admission.ADMISSIONS.collect()
                    for sample in metric.samples if sample.name.endswith("_total")})


def _left(server: RedisServer, release_id: int) -> int | None:
    value = redis.Redis(port=server.port).hget(f"test:gate:{release_id}", "left")
    return None if value is None else int(value)


def _issued(release_id: int) -> int:
    return _db.session.scalar(select(func.count(Voucher.id)).where(
        Voucher.release_id == release_id, Voucher.citizen_id.is_not(None)))


def _crowd(app, release_id: int, citizen_ids: list[int]) -> Counter:
    def work(i):
        return claim(release_id, _db.session.get(Citizen, citizen_ids[i])).id

    outcomes = run_concurrently(app, len(citizen_ids), work)
    return Counter("won" if isinstance(o, int) else o for o in outcomes)


def test_a_flash_crowd_is_exact_and_the_refusals_never_reach_the_database(app, db, gated):
    world = make_world()
    _, release = make_campaign(world, quantity=10)
    citizens = [make_citizen(f"{i:02d}").id for i in range(40)]
    db.session.commit()
    assert admission.reconcile()["built"] == 1 and _left(gated, release.id) == 10  # as the job does at opening
    before = _counts()
    assert _crowd(app, release.id, citizens) == {"won": 10, "sold_out": 30}
    seen = _counts() - before
    assert seen["admitted"] == 10 and seen["sold_out"] == 30  # answered by Redis, not by a transaction
    assert _issued(release.id) == 10 and _left(gated, release.id) == 0 and verify_ledger() == []


def test_the_second_click_is_refused_at_the_gate_with_the_limit(app, db, gated):
    world = make_world()
    _, release = make_campaign(world, quantity=5)
    citizen = make_citizen()
    db.session.commit()
    admission.reconcile()
    claim(release.id, citizen)
    db.session.commit()
    before = _counts()
    with pytest.raises(Exception) as refused:
        claim(release.id, citizen)
    db.session.rollback()
    assert refused.value.code == "claim_limit_reached" and "每人限领 1 张" in str(refused.value)
    assert (_counts() - before)["limit"] == 1 and _issued(release.id) == 1 and _left(gated, release.id) == 4


def test_a_claim_the_database_refuses_gives_its_place_back(app, db, gated):
    world = make_world()
    campaign, first = make_campaign(world, quantity=5)
    campaign.per_person_limit = 1  # one voucher per person over the whole campaign
    second = releases.create_release(campaign, name="第二轮", quantity=5, per_person_limit=1,
                                     opens_at=utcnow() - timedelta(minutes=1), actor=world.maker)
    releases.open_release(second.id, world.maker)
    citizen = make_citizen()
    db.session.commit()
    admission.reconcile()
    claim(first.id, citizen)
    db.session.commit()
    with pytest.raises(Exception) as refused:  # the gate admits (a new release), the campaign limit refuses
        claim(second.id, citizen)
    db.session.rollback()
    assert refused.value.code == "claim_limit_reached"
    assert _left(gated, second.id) == 5 and _issued(second.id) == 0
    assert redis.Redis(port=gated.port).hget(f"test:gate:{second.id}:held", citizen.identity_hash) is None


def test_a_gate_that_lets_too_many_in_is_closed_by_the_database_not_refilled(app, db, gated):
    world = make_world()
    _, release = make_campaign(world, quantity=3)
    citizens = [make_citizen(f"{i:02d}").id for i in range(9)]
    db.session.commit()
    admission.reconcile()
    redis.Redis(port=gated.port).hset(f"test:gate:{release.id}", "left", 100)  # a stale count, too high
    assert _crowd(app, release.id, citizens[:6]) == {"won": 3, "sold_out": 3}
    # A claim that found every voucher locked by the others gave its place back (they might have rolled
    # back); the first one to find none at all closes the gate.
    with pytest.raises(Exception) as late:
        claim(release.id, _db.session.get(Citizen, citizens[6]))
    _db.session.rollback()
    assert late.value.code == "sold_out" and _left(gated, release.id) == 0
    before = _counts()
    assert _crowd(app, release.id, citizens[7:]) == {"sold_out": 2}
    assert (_counts() - before)["sold_out"] == 2 and _issued(release.id) == 3


def test_without_redis_claims_take_the_database_path_and_readyz_says_so(app, db, client, monkeypatch):
    monkeypatch.setitem(app.config, "ADMISSION_REDIS_URL", f"redis://127.0.0.1:{_free_port()}/0")
    admission.forget_client()
    try:
        world = make_world()
        _, release = make_campaign(world, quantity=2)
        citizens = [make_citizen(f"{i:02d}").id for i in range(4)]
        db.session.commit()
        before = _counts()
        assert _crowd(app, release.id, citizens) == {"won": 2, "sold_out": 2}
        assert (_counts() - before)["redis_unreachable"] >= 1
        ready = client.get("/readyz").get_json()
        assert ready["checks"]["admission"] == "degraded (database path)"
    finally:
        admission.forget_client()


def test_killing_redis_mid_drop_issues_no_voucher_beyond_the_release(app, db, gated):
    world = make_world()
    _, release = make_campaign(world, quantity=30)
    citizens = [make_citizen(f"{i:03d}").id for i in range(100)]
    db.session.commit()
    admission.reconcile()
    assert _crowd(app, release.id, citizens[:10]) == {"won": 10} and _left(gated, release.id) == 20

    # Redis is killed while the second crowd is on its way: claims admitted before the kill go on to
    # the database, the rest find Redis gone and take the database path; every answer is definite.
    killer = threading.Timer(0.05, gated.kill)
    killer.start()
    second = _crowd(app, release.id, citizens[10:25])
    killer.join()
    assert second == {"won": 15}
    admission.forget_client()  # the back-off would otherwise wait RETRY_AFTER seconds
    gated.start()  # empty: Redis keeps nothing on disk here
    assert _left(gated, release.id) is None
    assert admission.reconcile()["built"] == 1 and _left(gated, release.id) == 5

    third = _crowd(app, release.id, citizens[25:])
    assert third == {"won": 5, "sold_out": 70}
    assert _issued(release.id) == 30 and _left(gated, release.id) == 0 and verify_ledger() == []


def test_reconcile_drops_the_gate_of_a_release_no_longer_open(app, db, gated):
    world = make_world()
    _, release = make_campaign(world, quantity=3)
    db.session.commit()
    admission.reconcile()
    release.status = "closed"
    db.session.commit()
    assert admission.reconcile()["dropped"] == 1 and _left(gated, release.id) is None


def test_a_channel_claim_refused_at_the_gate_runs_no_sql_and_a_replay_is_still_refused(app, db, client, gated):
    from tests.test_api import signed_claim  # noqa: PLC0415 - the signed-request helper of the API tests

    db.session.add(Partner(name="我的连云港", key_id="pk_test"))
    world = make_world()
    _, release = make_campaign(world, quantity=1)
    db.session.commit()
    admission.reconcile()
    body = {"release_id": release.id, "citizen": {"phone": "13912345678"}}
    assert signed_claim(client, body, nonce="first").status_code == 201  # the partner row is read once here
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(_db.engine, "before_cursor_execute", count)
    try:
        late = signed_claim(client, {**body, "citizen": {"phone": "13900000001"}})
        replay = signed_claim(client, {**body, "citizen": {"phone": "13900000002"}}, nonce="first")
    finally:
        event.remove(_db.engine, "before_cursor_execute", count)
    assert late.status_code == 409 and late.get_json()["errors"][0]["code"] == "sold_out"
    assert replay.status_code == 401 and "随机数已使用" in replay.get_json()["errors"][0]["message"]
    assert statements == []  # neither touched the database
    assert db.session.scalar(select(func.count(PartnerNonce.id))) == 0  # the nonces live in Redis


def test_the_waiting_room_lets_claims_through_at_the_rate_in_order_and_keeps_each_place(app, db, client, gated,
                                                                                           monkeypatch):
    monkeypatch.setitem(app.config, "ADMISSION_RATE", 10)
    monkeypatch.setitem(app.config, "ADMISSION_BURST", 1)
    world = make_world()
    _, release = make_campaign(world, quantity=10)
    citizens = [make_citizen(f"{i:02d}") for i in range(4)]
    db.session.commit()
    admission.reconcile()
    claim(release.id, citizens[0])  # the burst: one at once
    db.session.commit()
    waits = []
    for citizen in citizens[1:]:
        with pytest.raises(Exception) as queued:
            claim(release.id, citizen)
        db.session.rollback()
        assert queued.value.code == "queued" and queued.value.retry_after == 1
        waits.append(queued.value.position)
    assert waits == sorted(waits) and waits[-1] >= 3  # in order of arrival, at 10 a second
    with pytest.raises(Exception) as again:  # asking again keeps the place, it does not go to the back
        claim(release.id, citizens[1])
    db.session.rollback()
    assert again.value.position <= waits[0]
    time.sleep(0.45)
    for citizen in citizens[1:]:
        claim(release.id, citizen)
        db.session.commit()
    assert _issued(release.id) == 4 and _left(gated, release.id) == 6


def test_a_queued_citizen_is_told_the_wait_and_the_page_comes_back_by_itself(app, db, client, gated, monkeypatch):
    from tests.test_citizen_pages import sign_in  # noqa: PLC0415

    monkeypatch.setitem(app.config, "ADMISSION_RATE", 1)
    monkeypatch.setitem(app.config, "ADMISSION_BURST", 1)
    world = make_world()
    _, release = make_campaign(world, quantity=10)
    claim(release.id, make_citizen("z"))  # takes the one place of the first second
    db.session.commit()
    admission.reconcile()
    claim(release.id, make_citizen("y"))
    db.session.commit()
    sign_in(client)
    answer = client.post(f"/c/releases/{release.id}/claim")
    assert answer.status_code == 303 and "wait=" in answer.headers["Location"]
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "排队中：您前面约有" in page and '<meta http-equiv="refresh" content="' in page
    assert "您的排队位置会保留" in page


@pytest.mark.parametrize("with_gate", [False, True])
def test_a_batched_release_opens_to_each_group_at_its_own_time(app, db, client, request, with_gate):
    if with_gate:
        request.getfixturevalue("gated")
    world = make_world()
    campaign, _ = make_campaign(world, quantity=5)
    release = releases.create_release(campaign, name="分批场", quantity=10, per_person_limit=1,
                                      opens_at=utcnow() - timedelta(minutes=1), actor=world.maker,
                                      batches=2, batch_minutes=30)
    releases.open_release(release.id, world.maker)
    early, late = make_citizen("0"), make_citizen("f")  # last hex digit 0: the first group; f: the second
    db.session.commit()
    if with_gate:
        admission.reconcile()
    assert batches.batch_of(early.identity_hash, 2) == 0 and batches.batch_of(late.identity_hash, 2) == 1
    claim(release.id, early)
    db.session.commit()
    with pytest.raises(Exception) as not_yet:
        claim(release.id, late)
    db.session.rollback()
    assert not_yet.value.code == "release_not_open" and "批次" in not_yet.value.message
    assert _issued(release.id) == 1


@pytest.mark.parametrize("with_gate", [False, True])
def test_an_open_release_without_batches_is_open_to_a_server_whose_clock_is_behind(app, db, request, with_gate):
    """Opened a moment ago by one app server, claimed through another whose clock is two seconds behind:
    an unbatched release is open once its status says so, on both paths. (The gate compared the opening
    time, rounded to the second, and refused with a message about batches the release did not have.)"""
    if with_gate:
        request.getfixturevalue("gated")
    world = make_world()
    _, release = make_campaign(world, quantity=5)
    release.opens_at = utcnow() + timedelta(seconds=2)
    db.session.commit()
    if with_gate:
        admission.reconcile()
    claim(release.id, make_citizen("0"))
    db.session.commit()
    assert _issued(release.id) == 1


@pytest.mark.parametrize("batches_, minutes, message", [
    (11, 10, "1 到 10 批"), (2, 0, "每批间隔"), (0, 5, "1 到 10 批")])
def test_a_bad_batch_setting_is_refused(app, db, batches_, minutes, message):
    world = make_world()
    campaign, _ = make_campaign(world, quantity=5)
    with pytest.raises(Exception) as refused:
        releases.create_release(campaign, name="坏设置", quantity=10, per_person_limit=1, opens_at=utcnow(),
                                actor=world.maker, batches=batches_, batch_minutes=minutes)
    assert refused.value.code == "invalid_input" and message in refused.value.message


@contextmanager
def access_lines(monkeypatch) -> Iterator[list[logging.LogRecord]]:
    """The app's access lines written inside the block, whatever the logging configuration says."""
    lines: list[logging.LogRecord] = []
    catch = logging.Handler()
    catch.emit = lines.append  # type: ignore[method-assign]
    access = logging.getLogger("voucher.access")
    monkeypatch.setattr(access, "level", logging.INFO)
    monkeypatch.setattr(access, "disabled", False)
    access.addHandler(catch)
    try:
        yield lines
    finally:
        access.removeHandler(catch)


def _redis_calls(server: RedisServer) -> Counter:
    stats = redis.Redis(port=server.port).info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): value["calls"] for name, value in stats.items()
                    if name != "cmdstat_info"})  # the INFO that asks


def _first_voucher_won(client, quantity: int, *, gate_built: bool = True):
    """A partner, and a release of `quantity` vouchers (its gate built, unless not asked) whose first
    voucher a channel claim has just won: (world, release id)."""
    from tests.test_api import signed_claim  # noqa: PLC0415 - the signed-request helper of the API tests

    _db.session.add(Partner(name="我的连云港", key_id="pk_test"))
    world = make_world()
    _, release = make_campaign(world, quantity=quantity)
    _db.session.commit()
    release_id = release.id
    if gate_built:
        admission.reconcile()
    assert signed_claim(client, {"release_id": release_id, "citizen": {"phone": "13912345678"}}).status_code == 201
    return world, release_id


@pytest.fixture
def sold_out_gate(app, db, client, gated):
    """A gated release of one voucher already won: the next claim finds the gate sold out."""
    from tests.test_api import signed_claim  # noqa: PLC0415

    world, release_id = _first_voucher_won(client, 1)
    release = _db.session.get(Release, release_id)
    full_path = signed_claim(client, {"release_id": release_id, "citizen": {"phone": "13912345679"}})
    assert full_path.status_code == 409  # the gate's own script said so: this process now knows
    return world, release, full_path


def test_late_arrivals_after_a_sell_out_are_answered_before_flask_with_only_their_nonce(app, client, gated,
                                                                                       sold_out_gate, monkeypatch):
    from tests.test_api import signed_claim  # noqa: PLC0415

    _, release, full_path = sold_out_gate
    before = _redis_calls(gated)
    with access_lines(monkeypatch) as lines:
        late = [signed_claim(client, {"release_id": release.id, "citizen": {"phone": f"139000000{i:02d}"}})
                for i in range(5)]
    calls = _redis_calls(gated) - before
    # One SET NX per request (its nonce), and not the gate's script: the answer came from what the
    # process saw a moment ago, without Flask, without a rate-limit counter, without the database.
    assert calls == Counter({"set": 5}), calls
    for answer in late:
        assert answer.status_code == 409 and answer.data == full_path.data  # the same bytes
        same = {k: v for k, v in answer.headers.items() if k != "X-Request-ID"}
        assert same == {k: v for k, v in full_path.headers.items() if k != "X-Request-ID"}
        assert len(answer.headers["X-Request-ID"]) == 32
    assert [(r.fields["route"], r.fields["status"]) for r in lines] == [("/api/v1/channel/claims", 409)] * 5
    assert _issued(release.id) == 1


def test_a_claim_refused_in_the_fast_lane_cannot_be_replayed_to_take_a_place_given_back(app, db, client, gated):
    from tests.test_api import signed_claim  # noqa: PLC0415

    _, release_id = _first_voucher_won(client, 2)
    release = _db.session.get(Release, release_id)
    gate = redis.Redis(port=gated.port)
    gate.hset(f"test:gate:{release.id}", "left", 0)  # the last place is held by a claim still on its way
    body = {"release_id": release.id, "citizen": {"phone": "13900000077"}}
    assert signed_claim(client, body, nonce="late-0").status_code == 409  # the gate's script: sold out
    assert signed_claim(client, body, nonce="late-1").status_code == 409  # the fast lane
    # The claim on its way fails and gives its place back, and this process's memory of the sell-out
    # runs out: the next claim asks the gate again and takes the place...
    gate.hset(f"test:gate:{release.id}", "left", 1)
    admission.forget_sold_out()
    # ...but not by replaying the request the lane refused: its nonce was spent there.
    replay = signed_claim(client, body, nonce="late-1")
    assert replay.status_code == 401 and "随机数已使用" in replay.get_json()["errors"][0]["message"]
    assert signed_claim(client, {**body, "citizen": {"phone": "13900000078"}}).status_code == 201
    assert _issued(release.id) == 2 and verify_ledger() == []


@pytest.mark.parametrize("case, status, code", [
    ("bad signature", 401, "unauthenticated"),
    ("unknown partner", 401, "unauthenticated"),
    ("phone not a mobile number", 422, "invalid_input"),
    ("another release, not sold out", 201, None),
])
def test_the_fast_lane_leaves_every_doubt_to_the_full_path(app, client, gated, sold_out_gate, case, status, code):
    from tests.test_api import signed_claim  # noqa: PLC0415

    world, release, _ = sold_out_gate
    body = {"release_id": release.id, "citizen": {"phone": "13900000088"}}
    if case == "bad signature":
        answer = signed_claim(client, body, tamper=True)
    elif case == "unknown partner":
        answer = signed_claim(client, body, key_id="pk_nobody")
    elif case == "phone not a mobile number":
        answer = signed_claim(client, {**body, "citizen": {"phone": "1390000008"}})
    else:
        _, other = make_campaign(world, quantity=1)
        _db.session.commit()
        admission.reconcile()
        answer = signed_claim(client, {**body, "release_id": other.id})
    assert answer.status_code == status, answer.get_json()
    if code:
        assert answer.get_json()["errors"][0]["code"] == code


def test_with_no_memo_every_late_arrival_asks_the_gate_again(app, client, gated, sold_out_gate, monkeypatch):
    from tests.test_api import signed_claim  # noqa: PLC0415

    _, release, full_path = sold_out_gate
    monkeypatch.setitem(app.config, "ADMISSION_SOLD_OUT_MEMO_SECONDS", 0)
    admission.forget_sold_out()
    before = _redis_calls(gated)
    late = [signed_claim(client, {"release_id": release.id, "citizen": {"phone": f"139000001{i:02d}"}})
            for i in range(3)]
    calls = _redis_calls(gated) - before
    assert [answer.data for answer in late] == [full_path.data] * 3
    assert calls["evalsha"] == 3 and not admission.any_known_sold_out()


def test_an_admitted_channel_claim_finds_and_locks_its_citizen_in_one_statement(app, db, client, gated):
    """The busiest statement list in a drop: the citizen's upsert already holds the row's lock until the
    commit, so the claim does not take it a second time; the round comes with what the citizen holds,
    and on PostgreSQL the voucher is taken with its audit entry (a round trip fewer each)."""
    from tests.test_api import signed_claim  # noqa: PLC0415

    _, release_id = _first_voucher_won(client, 3)
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        if not statement.lower().startswith("begin"):  # SQLite's own BEGIN IMMEDIATE
            statements.append(" ".join(statement.lower().split()))

    event.listen(_db.engine, "before_cursor_execute", count)
    try:
        won = signed_claim(client, {"release_id": release_id, "citizen": {"phone": "13912345679"}})
    finally:
        event.remove(_db.engine, "before_cursor_execute", count)
    assert won.status_code == 201
    assert sum(" citizens" in statement for statement in statements) == 1, statements
    expected = ["insert into citizens", "select releases.", "update vouchers", "insert into audit_entries"]
    if _db.engine.dialect.name == "postgresql":
        expected = ["insert into citizens", "select releases.", "with taken as (update vouchers"]
        assert "insert into audit_entries" in statements[2]
    assert [next((e for e in expected if s.startswith(e)), s[:60]) for s in statements] == expected
    assert _issued(release_id) == 2 and verify_ledger() == []
    # the entry names the voucher taken, whichever way it was written
    voucher_id = _db.session.scalar(select(Voucher.id).where(Voucher.code == won.get_json()["data"]["voucher"]["code"]))
    entry = _db.session.scalars(select(AuditEntry).where(AuditEntry.action == "voucher.claim")
                                .order_by(AuditEntry.id.desc()).limit(1)).one()
    assert (entry.object_type, entry.object_id, entry.after["release_id"]) == ("vouchers", voucher_id, release_id)


def test_a_voucher_claimed_on_the_page_comes_back_as_the_session_already_knows_it(app, db):
    """The claim writes in Core statements and hands the voucher back through the session: a page
    (or a test) that had the row loaded before sees it claimed, and can go on to use it."""
    world = make_world()
    _, release = make_campaign(world, quantity=2)
    citizen = make_citizen()
    db.session.commit()
    loaded = db.session.scalars(select(Voucher).where(Voucher.release_id == release.id).order_by(Voucher.id)).all()
    assert [v.status for v in loaded] == ["available", "available"]
    voucher = claim(release.id, citizen)
    assert voucher is loaded[0]  # the one identity, not a second copy
    assert (voucher.status, voucher.citizen_id, voucher.claim_slot) == ("claimed", citizen.id, 1)
    assert voucher.campaign.id == release.campaign_id  # attached: its relations load
    db.session.commit()
    db.session.expire_all()
    assert (voucher.status, voucher.citizen_id) == ("claimed", citizen.id) and _issued(release.id) == 1


def test_once_the_database_finds_a_release_empty_the_late_arrivals_take_the_fast_lane(app, db, client, gated,
                                                                                      monkeypatch):
    """The gate built by the first claim, while that claim was still in flight, let one claim too many
    through; the database refused it and had the last word (none left at all, which is final). The late
    arrivals are then answered before Flask as when the gate itself says sold out."""
    from tests.test_api import signed_claim  # noqa: PLC0415

    _, release_id = _first_voucher_won(client, 1, gate_built=False)  # the gate built by this claim
    body = {"release_id": release_id, "citizen": {"phone": "13912345678"}}
    gate = redis.Redis(port=gated.port)
    gate.hset(f"test:gate:{release_id}", "left", 1)  # as if built before that claim committed
    assert signed_claim(client, {**body, "citizen": {"phone": "13912345679"}}).status_code == 409
    assert not admission.known_sold_out(release_id)  # the gate admitted it: only the database said no
    reached_flask: list[str] = []
    dispatch = app.full_dispatch_request
    monkeypatch.setattr(app, "full_dispatch_request", lambda: reached_flask.append("x") or dispatch())
    late = [signed_claim(client, {**body, "citizen": {"phone": f"139000002{i:02d}"}}) for i in range(3)]
    assert [answer.get_json()["errors"][0]["code"] for answer in late] == ["sold_out"] * 3
    assert reached_flask == []
    assert _issued(release_id) == 1 and verify_ledger() == []


# -- the release in the path (tests/test_claims_edge.py): the nginx edge's probe and the lane, with a gate


def test_with_a_gate_the_probe_asks_the_database_only_when_the_gate_is_empty(app, client, db, gated):
    _, release_id = _first_voucher_won(client, 3)  # two left, and the gate says so
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        assert probe(client, db, release_id).status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert statements == []
    gate = redis.Redis(port=gated.port)
    gate.hset(f"test:gate:{release_id}", "left", 0)  # empty, while the database still has two: a place
    assert probe(client, db, release_id).status_code == 200  # whose give-back was lost waits for reconcile
    for phone in ("13900000005", "13900000006"):
        gate.hset(f"test:gate:{release_id}", "left", 1)
        assert claim_in_path(client, release_id, phone).status_code == 201
    assert_error(probe(client, db, release_id), 403, "sold_out")


def test_a_late_claim_on_the_path_route_takes_the_fast_lane_too(app, client, db, gated, monkeypatch):
    """Without nginx in front, the app's own lane answers the release-in-path route as it does the other."""
    _, release_id = _first_voucher_won(client, 1)
    assert_error(claim_in_path(client, release_id, "13900000007"), 409, "sold_out")  # the gate's script
    assert admission.known_sold_out(release_id)
    reached_flask: list[str] = []
    dispatch = app.full_dispatch_request
    monkeypatch.setattr(app, "full_dispatch_request", lambda: reached_flask.append("x") or dispatch())
    with access_lines(monkeypatch) as lines:
        late = claim_in_path(client, release_id, "13900000008")
    assert_error(late, 409, "sold_out")
    assert reached_flask == []
    assert [(r.fields["route"], r.fields["status"]) for r in lines] == [
        ("/api/v1/channel/releases/<int:release_id>/claims", 409)]


@pytest.fixture
def shared_limits(app, monkeypatch, gated):
    """The recommended deployment: the rate limits counted in the gate's own Redis. Generous limits,
    which a test lowers with set_limits."""
    def set_limits(**settings: str) -> None:
        for name, value in {"RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI": gated.url,
                            "RATELIMIT_KEY_PREFIX": "test", "RATELIMIT_CHANNEL_CLAIM_IP": "1000 per minute",
                            "RATELIMIT_CHANNEL_CLAIM_PARTNER": "1000 per minute", **settings}.items():
            monkeypatch.setitem(app.config, name, value)
        monkeypatch.setitem(app.extensions, "rate_limits", RateLimits(app.config))

    set_limits()
    return set_limits


def _nonce_spent(server: RedisServer, nonce: str) -> bool:
    return bool(redis.Redis(port=server.port).keys(f"test:nonce:*:{nonce}"))


def _windows(server: RedisServer, allowance: str) -> dict[str, tuple[int, int]]:
    """The rate limiter's windows of an allowance (RATELIMIT_CHANNEL_CLAIM_IP...): key -> (count, TTL)."""
    r = redis.Redis(port=server.port)
    return {key.decode(): (int(r.get(key)), r.ttl(key)) for key in r.keys(f"LIMITS:*{allowance}*")}


@contextmanager
def redis_requests(monkeypatch) -> Iterator[list[bytes]]:
    """Every request any Redis client of the app sends inside the block (a pipeline's is one)."""
    sent: list[bytes] = []
    send = redis.connection.Connection.send_packed_command

    def counted(connection, command, *args, **kwargs):
        sent.append(command if isinstance(command, bytes) else b"".join(command))
        return send(connection, command, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(redis.connection.Connection, "send_packed_command", counted)
        yield sent


def _in_one_script(sent: list[bytes]) -> bool:
    """One EVALSHA, and nothing else that writes (a refusal's Retry-After reads its window back)."""
    return (len(sent) >= 1 and b"EVALSHA" in sent[0]
            and not any(command in request for request in sent[1:] for command in (b"INCRBY", b"\r\nSET\r\n", b"EVAL")))


def test_with_the_limits_in_the_gates_redis_an_admitted_claim_costs_one_round_trip(app, client, gated,
                                                                                   shared_limits, monkeypatch):
    _, release_id = _first_voucher_won(client, 3)  # (its scripts loaded, its partner cached)
    with redis_requests(monkeypatch) as sent:
        won = claim_in_path(client, release_id, "13900000001")
    assert won.status_code == 201, won.get_json()
    # the address's window, the nonce, the partner's window and the gate: one script, one round trip
    assert len(sent) == 1 and _in_one_script(sent), sent
    assert _left(gated, release_id) == 1 and _issued(release_id) == 2
    # the windows end as the rate limiter's own do: a minute after their first count
    for allowance in ("RATELIMIT_CHANNEL_CLAIM_IP", "RATELIMIT_CHANNEL_CLAIM_PARTNER"):
        [(count, ttl)] = _windows(gated, allowance).values()
        assert count == 2 and 0 < ttl <= 60


def test_the_windows_counted_in_the_gates_script_are_the_rate_limiters_own(app, client, gated, shared_limits):
    """Counted with the gate while Redis is well, the usual way while the gate's client backs off: one
    allowance all the same (the same keys, the same windows)."""
    shared_limits(RATELIMIT_CHANNEL_CLAIM_IP="3 per minute")
    _, release_id = _first_voucher_won(client, 5)  # 1: the usual way (the partner not yet in the cache)
    assert claim_in_path(client, release_id, "13900000001").status_code == 201  # 2: in the gate's script
    redis_store.CLIENT.failed(redis.ConnectionError("a blip"))  # the gate's client backs off...
    assert claim_in_path(client, release_id, "13900000002").status_code == 201  # 3: counted by limits itself
    refused = claim_in_path(client, release_id, "13900000003")
    assert_error(refused, 429, "rate_limited")
    assert "该地址" in refused.get_json()["errors"][0]["message"] and int(refused.headers["Retry-After"]) >= 1


def test_an_allowance_of_several_windows_stops_at_the_first_one_full(app, client, gated, shared_limits,
                                                                     monkeypatch):
    shared_limits(RATELIMIT_CHANNEL_CLAIM_IP="2 per minute;5 per hour")
    _, release_id = _first_voucher_won(client, 5)
    assert claim_in_path(client, release_id, "13900000001").status_code == 201
    with redis_requests(monkeypatch) as sent:
        assert_error(claim_in_path(client, release_id, "13900000002"), 429, "rate_limited")
    assert _in_one_script(sent), sent
    counts = {("minute" if "/minute" in key else "hour"): count
              for key, (count, _) in _windows(gated, "RATELIMIT_CHANNEL_CLAIM_IP").items()}
    assert counts == {"minute": 3, "hour": 2}  # the hour's window not counted past the full minute's


@pytest.mark.parametrize(("setting", "whose", "nonce_spent"), [
    ("RATELIMIT_CHANNEL_CLAIM_IP", "该地址", False),  # refused before its nonce, as ever
    ("RATELIMIT_CHANNEL_CLAIM_PARTNER", "该渠道", True),  # after it
])
def test_a_claim_over_a_limit_takes_no_place_and_spends_its_nonce_past_the_address(
        app, client, gated, shared_limits, monkeypatch, setting, whose, nonce_spent):
    shared_limits(**{setting: "1 per minute"})
    _, release_id = _first_voucher_won(client, 3)
    with redis_requests(monkeypatch) as sent:
        refused = claim_in_path(client, release_id, "13900000001", nonce="over-the-limit")
    assert_error(refused, 429, "rate_limited")
    assert _in_one_script(sent), sent
    assert whose in refused.get_json()["errors"][0]["message"] and int(refused.headers["Retry-After"]) >= 1
    assert _nonce_spent(gated, "over-the-limit") is nonce_spent
    assert _left(gated, release_id) == 2 and _issued(release_id) == 1


def test_an_address_over_its_limit_is_refused_before_an_unknown_key_reaches_the_database(app, client, gated,
                                                                                        shared_limits):
    shared_limits(RATELIMIT_CHANNEL_CLAIM_IP="1 per minute")
    _, release_id = _first_voucher_won(client, 3)
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(_db.engine, "before_cursor_execute", count)
    try:
        refused = [claim_in_path(client, release_id, "13900000001", key_id=f"pk_made_up_{i}") for i in range(3)]
    finally:
        event.remove(_db.engine, "before_cursor_execute", count)
    for answer in refused:
        assert_error(answer, 429, "rate_limited")
    assert statements == []  # no partner looked up for a key id nobody knows


def test_a_replayed_claim_is_refused_in_the_gates_script_and_counts_against_its_address(app, client, gated,
                                                                                      shared_limits, monkeypatch):
    shared_limits(RATELIMIT_CHANNEL_CLAIM_IP="3 per minute")
    _, release_id = _first_voucher_won(client, 5)
    assert claim_in_path(client, release_id, "13900000001", nonce="once").status_code == 201
    with redis_requests(monkeypatch) as sent:
        replay = claim_in_path(client, release_id, "13900000002", nonce="once")
    assert_error(replay, 401, "unauthenticated")
    assert len(sent) == 1 and _in_one_script(sent), sent
    assert "随机数已使用" in replay.get_json()["errors"][0]["message"]
    assert _left(gated, release_id) == 3 and _issued(release_id) == 2
    assert_error(claim_in_path(client, release_id, "13900000003"), 429, "rate_limited")  # the 4th from here


def test_with_the_limits_off_the_nonce_alone_goes_with_the_gate(app, client, gated, shared_limits, monkeypatch):
    shared_limits(RATELIMIT_ENABLED=False)
    _, release_id = _first_voucher_won(client, 3)
    with redis_requests(monkeypatch) as sent:
        assert claim_in_path(client, release_id, "13900000001", nonce="alone").status_code == 201
    assert len(sent) == 1 and _in_one_script(sent), sent
    assert_error(claim_in_path(client, release_id, "13900000002", nonce="alone"), 401, "unauthenticated")
    assert _windows(gated, "RATELIMIT_CHANNEL_CLAIM") == {} and _left(gated, release_id) == 1


@pytest.mark.parametrize("problem", ["bad_signature", "malformed_body"])
def test_a_refused_claim_still_counts_against_its_address(app, client, gated, shared_limits, problem):
    from tests.test_api import signed_claim  # noqa: PLC0415

    shared_limits(RATELIMIT_CHANNEL_CLAIM_IP="2 per minute")
    _, release_id = _first_voucher_won(client, 3)  # the 1st
    path = f"/api/v1/channel/releases/{release_id}/claims"
    if problem == "bad_signature":
        assert_error(signed_claim(client, {"citizen": {"phone": "13900000001"}}, path=path, secret="wrong"),
                     401, "unauthenticated")
    else:
        assert_error(signed_claim(client, {"citizen": {"phone": "139"}}, path=path, nonce="malformed"),
                     422, "invalid_input")
        assert _nonce_spent(gated, "malformed")  # spent, as any signed request's
    assert_error(claim_in_path(client, release_id, "13900000002"), 429, "rate_limited")
    assert _left(gated, release_id) == 2


def test_redis_gone_before_the_script_the_checks_are_made_the_usual_way(app, db, client, gated, shared_limits):
    """The checks that were to go with the gate are made without it: the limits counted in this process,
    the nonce in the database (a replay still refused), the claim on the database path."""
    shared_limits(RATELIMIT_CHANNEL_CLAIM_IP="2 per minute")
    _, release_id = _first_voucher_won(client, 5)
    gated.kill()
    won = claim_in_path(client, release_id, "13900000001", nonce="with-redis-gone")
    assert won.status_code == 201, won.get_json()
    assert db.session.scalar(select(func.count(PartnerNonce.id))) == 1
    assert_error(claim_in_path(client, release_id, "13900000002", nonce="with-redis-gone"), 401, "unauthenticated")
    # counted in this process since Redis went: the 1st claim above, the replay; the 3rd is one too many
    assert_error(claim_in_path(client, release_id, "13900000003"), 429, "rate_limited")
    assert _issued(release_id) == 2


def test_a_script_whose_answer_is_lost_counts_nothing_twice(app, client, gated, shared_limits, monkeypatch):
    """The script ran, its answer timed out: the claim goes on by the database, its counts not made again
    (counting twice in a crowd would spend a partner's allowance early), its nonce spent again."""
    shared_limits(RATELIMIT_CHANNEL_CLAIM_PARTNER="3 per minute")
    _, release_id = _first_voucher_won(client, 5)  # the partner's 1st
    call = redis.commands.core.Script.__call__

    def answer_lost(script, *args, **kwargs):
        call(script, *args, **kwargs)
        raise redis.TimeoutError("Timeout reading from socket")

    with monkeypatch.context() as patch:
        patch.setattr(redis.commands.core.Script, "__call__", answer_lost)
        won = claim_in_path(client, release_id, "13900000001", nonce="answer-lost")  # the 2nd, in the script
    assert won.status_code == 201, won.get_json()
    redis_store.CLIENT.failed_at = 0.0  # Redis answers again
    assert claim_in_path(client, release_id, "13900000002").status_code == 201  # the 3rd: not yet over
    assert_error(claim_in_path(client, release_id, "13900000003"), 429, "rate_limited")
    assert_error(claim_in_path(client, release_id, "13900000004", nonce="answer-lost"), 401, "unauthenticated")
