"""Channel claims with the release in the path, and the probe the nginx edge asks before each
(deploy/nginx-claims-edge.conf): it says "sold out" only once every voucher of an open first-come release
has been taken by a committed claim, which is final. nginx itself is in tests/ops/test_three_servers.py."""
from __future__ import annotations

import pytest
import redis
from sqlalchemy import event, text

from tests.factories import claim_one, make_campaign, make_citizen, make_world
from tests.test_admission import _first_voucher_won, access_lines, gated, redis_server  # noqa: F401 - fixtures
from tests.test_api import assert_error, partner, signed_claim  # noqa: F401 - a fixture
from voucher.vouchers import admission
from voucher.vouchers import services as vouchers


def claim_in_path(client, release_id: int, phone: str, **kwargs):
    path = f"/api/v1/channel/releases/{release_id}/claims"
    return signed_claim(client, {"citizen": {"phone": phone}}, path=path, **kwargs)


def probe(client, db, release_id: int):
    answer = client.get(f"/api/v1/edge/releases/{release_id}/claims")
    db.session.rollback()  # the test's own app context keeps the session: end its read
    return answer


@pytest.fixture(autouse=True)
def _fresh_memo():
    vouchers.forget_sold_out()
    yield
    vouchers.forget_sold_out()


@pytest.mark.usefixtures("partner")
def test_the_release_in_the_path_claims_as_the_body_does(client, db):
    _, release = make_campaign(make_world(), quantity=2)
    won = claim_in_path(client, release.id, "13912345678")
    assert won.status_code == 201, won.get_json()
    assert won.get_json()["data"]["result"] == "won"
    assert_error(claim_in_path(client, release.id, "13912345678"), 409, "claim_limit_reached")
    assert_error(claim_in_path(client, release.id, "１３９１２３４５６７９"), 422, "invalid_input")  # full width
    assert_error(claim_in_path(client, 999_999, "13912345679"), 404, "not_found")
    # the path is signed: a request signed for another release's path does not verify
    other = signed_claim(client, {"citizen": {"phone": "13912345679"}},
                         path=f"/api/v1/channel/releases/{release.id}/claims",
                         signed_path=f"/api/v1/channel/releases/{release.id + 1}/claims")
    assert_error(other, 401, "unauthenticated")
    assert claim_in_path(client, release.id, "13912345679").status_code == 201
    assert_error(claim_in_path(client, release.id, "13912345670"), 409, "sold_out")


@pytest.mark.usefixtures("partner")
def test_the_probe_says_sold_out_only_when_no_claim_can_ever_win(client, db):
    world = make_world()
    _, release = make_campaign(world, quantity=2)
    _, closed = make_campaign(world, quantity=1)
    db.session.commit()
    assert probe(client, db, release.id).status_code == 200
    assert claim_in_path(client, release.id, "13900000001").status_code == 201
    assert probe(client, db, release.id).status_code == 200  # one left
    assert claim_in_path(client, release.id, "13900000002").status_code == 201
    answer = probe(client, db, release.id)
    assert_error(answer, 403, "sold_out")
    # not a release, or not an open one: the app answers those claims (404, 409 release_not_open)
    assert probe(client, db, 999_999).status_code == 200
    claim_one(closed, make_citizen("c"))
    db.session.execute(text("UPDATE releases SET status = 'closed' WHERE id = :r"), {"r": closed.id})
    db.session.commit()
    assert probe(client, db, closed.id).status_code == 200
    assert_error(claim_in_path(client, closed.id, "13900000003"), 409, "release_not_open")


@pytest.mark.usefixtures("partner")
@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_a_claim_in_flight_keeps_the_probe_open_until_it_commits(client, db, outcome):
    """The last voucher taken by a transaction not yet committed: it may still roll back, so the edge
    must go on sending claims to the app; once committed, the release is sold out for good. PostgreSQL
    only: SQLite serialises every transaction (BEGIN IMMEDIATE), so nothing reads while a claim is in flight."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises transactions: no read happens beside a claim in flight")
    _, release = make_campaign(make_world(), quantity=1)
    citizen_id = make_citizen("f").id
    in_flight = db.engine.connect()
    try:
        in_flight.execute(text("UPDATE vouchers SET status = 'claimed', citizen_id = :c, claim_slot = 1, "
                               "claimed_at = CURRENT_TIMESTAMP WHERE release_id = :r"),
                          {"c": citizen_id, "r": release.id})
        assert probe(client, db, release.id).status_code == 200
        getattr(in_flight, outcome)()
    finally:
        in_flight.close()
    if outcome == "commit":
        assert_error(probe(client, db, release.id), 403, "sold_out")
    else:
        assert probe(client, db, release.id).status_code == 200
        assert claim_in_path(client, release.id, "13900000004").status_code == 201


def test_with_a_gate_the_probe_asks_the_database_only_when_the_gate_is_empty(app, client, db, gated):  # noqa: F811
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


def test_a_late_claim_on_the_path_route_takes_the_fast_lane_too(app, client, db, gated, monkeypatch):  # noqa: F811
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
