"""Channel claims with the release in the path, and the probe the nginx edge asks before each
(deploy/nginx-claims-edge.conf): it says "sold out" only once every voucher of an open first-come release
has been taken by a committed claim, which is final. nginx itself is in tests/ops/test_three_servers.py;
the probe and the lane beside the admission gate are in tests/test_admission.py (the tests that start a
redis-server of their own live there: the clock-boundary runs leave them out)."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.factories import claim_one, make_campaign, make_citizen, make_world
from tests.test_api import assert_error, partner, signed_claim  # noqa: F401 - a fixture


def claim_in_path(client, release_id: int, phone: str, **kwargs):
    path = f"/api/v1/channel/releases/{release_id}/claims"
    return signed_claim(client, {"citizen": {"phone": phone}}, path=path, **kwargs)


def probe(client, db, release_id: int):
    answer = client.get(f"/api/v1/edge/releases/{release_id}/claims")
    db.session.rollback()  # the test's own app context keeps the session: end its read
    return answer


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
