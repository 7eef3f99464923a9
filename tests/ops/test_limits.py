"""Rate limits on sign-in, claims and redemption: per address, per partner, per terminal; a 429 in
Chinese on pages and with a stable code on the API; Redis shared between processes, or local."""
from __future__ import annotations

import socket
import uuid

import pytest

from tests.factories import PASSWORD, claim_one, make_campaign, make_citizen, make_world
from tests.ops.conftest import redeem_request, signed_claim
from voucher.api.models import Partner
from voucher.config import ConfigError
from voucher.merchants import terminals


def assert_api_refusal(response):
    body = response.get_json()
    assert response.status_code == 429, body
    assert body["success"] is False and body["errors"][0]["code"] == "rate_limited"
    assert "过于频繁" in body["errors"][0]["message"]
    assert int(response.headers["Retry-After"]) >= 1


def test_the_sixth_login_within_a_minute_is_refused_in_chinese(make_ops_app, db):
    client = make_ops_app(RATELIMIT_LOGIN="5 per minute").test_client()
    make_world()
    answers = [client.post("/login", data={"username": "nobody", "password": "x"}).status_code for _ in range(5)]
    assert 429 not in answers
    refused = client.post("/login", data={"username": "cashier", "password": PASSWORD})
    assert refused.status_code == 429
    assert "登录尝试过于频繁" in refused.get_data(as_text=True)
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    assert client.get("/login").status_code == 200  # showing the form is not counted
    other = client.post("/login", data={"username": "cashier", "password": PASSWORD},
                        environ_base={"REMOTE_ADDR": "198.51.100.4"})
    assert other.status_code == 302  # another address has its own allowance


def test_successful_sign_ins_from_one_office_address_are_not_counted(make_ops_app, db):
    client = make_ops_app(RATELIMIT_LOGIN="3 per minute").test_client()
    make_world()
    for _ in range(6):  # six colleagues behind the bureau's one address
        assert client.post("/login", data={"username": "finance", "password": PASSWORD}).status_code == 302
        client.post("/logout")
    wrong = [client.post("/login", data={"username": "finance", "password": "x"}).status_code for _ in range(4)]
    assert wrong[:3] != [429] * 3 and wrong[3] == 429  # three wrong passwords spend the allowance


def test_partner_claims_are_limited_per_partner_and_per_address(make_ops_app, db):
    client = make_ops_app(RATELIMIT_CHANNEL_CLAIM_PARTNER="2 per minute",
                          RATELIMIT_CHANNEL_CLAIM_IP="3 per minute").test_client()
    world = make_world()
    _, release = make_campaign(world, quantity=10)
    db.session.add_all([Partner(name="甲渠道", key_id="pk_a"), Partner(name="乙渠道", key_id="pk_b")])
    db.session.commit()

    def claim(key_id, n, remote):
        return signed_claim(client, {"release_id": release.id, "citizen": {"phone": f"1390000000{n}"}},
                            key_id=key_id, remote=remote)

    assert claim("pk_a", 1, "192.0.2.1").status_code == 201
    assert claim("pk_a", 2, "192.0.2.2").status_code == 201
    assert_api_refusal(claim("pk_a", 3, "192.0.2.3"))  # the partner's third, from a new address
    assert claim("pk_b", 4, "192.0.2.1").status_code == 201  # another partner is not held back
    assert claim("pk_b", 5, "192.0.2.1").status_code == 201
    assert_api_refusal(claim("pk_b", 6, "192.0.2.1"))  # the address's fourth (third of pk_b's is fine)


def test_both_claim_routes_count_in_one_allowance_per_address(make_ops_app, db):
    """The release in the body or in the path: one action, one allowance, or an address would get two."""
    client = make_ops_app(RATELIMIT_CHANNEL_CLAIM_IP="3 per minute").test_client()
    world = make_world()
    _, release = make_campaign(world, quantity=10)
    db.session.add(Partner(name="甲渠道", key_id="pk_a"))
    db.session.commit()
    in_path = f"/api/v1/channel/releases/{release.id}/claims"
    answers = [signed_claim(client, {"citizen": {"phone": "13900000001"}}, key_id="pk_a", path=in_path),
               signed_claim(client, {"release_id": release.id, "citizen": {"phone": "13900000002"}}, key_id="pk_a"),
               signed_claim(client, {"citizen": {"phone": "13900000003"}}, key_id="pk_a", path=in_path)]
    assert [answer.status_code for answer in answers] == [201, 201, 201]
    assert_api_refusal(signed_claim(client, {"release_id": release.id, "citizen": {"phone": "13900000004"}},
                                    key_id="pk_a"))
    assert_api_refusal(signed_claim(client, {"citizen": {"phone": "13900000005"}}, key_id="pk_a", path=in_path))


def test_unsigned_requests_cannot_spend_a_partners_allowance(make_ops_app, db):
    client = make_ops_app(RATELIMIT_CHANNEL_CLAIM_PARTNER="2 per minute").test_client()
    world = make_world()
    _, release = make_campaign(world, quantity=10)
    db.session.add(Partner(name="甲渠道", key_id="pk_a"))
    db.session.commit()
    for n in range(5):  # the key id is no secret: anyone can send it, unsigned
        forged = client.post("/api/v1/channel/claims", json={"release_id": release.id},
                             headers={"X-Partner-Key": "pk_a"}, environ_base={"REMOTE_ADDR": f"203.0.113.{n}"})
        assert forged.status_code == 401
    signed = signed_claim(client, {"release_id": release.id, "citizen": {"phone": "13900000001"}}, key_id="pk_a",
                          remote="192.0.2.1")
    assert signed.status_code == 201


def test_terminal_redemptions_are_limited_per_terminal(make_ops_app, app, db):
    client = make_ops_app(RATELIMIT_REDEMPTION_TERMINAL="1 per minute").test_client()
    world = make_world()
    _, release = make_campaign(world, quantity=5)
    first, second, third = (claim_one(release, make_citizen(tag)) for tag in "abc")
    _, token = terminals.issue_terminal_token(world.cashier.store_id, "一号机", world.manager.id)
    _, other_token = terminals.issue_terminal_token(world.cashier.store_id, "二号机", world.manager.id)
    db.session.commit()

    assert redeem_request(client, token, first.code, "k-1").status_code == 201
    assert_api_refusal(redeem_request(client, token, second.code, "k-2"))
    assert redeem_request(client, other_token, third.code, "k-3").status_code == 201


def test_counter_and_claim_pages_answer_429_in_chinese(make_ops_app, db):
    client = make_ops_app(RATELIMIT_COUNTER="1 per minute", RATELIMIT_CLAIM="1 per minute").test_client()
    world = make_world()
    _, release = make_campaign(world, quantity=5)
    voucher = claim_one(release, make_citizen("z"))
    citizen = make_citizen("y")
    with client.session_transaction() as session:
        session["citizen_id"] = citizen.id
    client.post(f"/c/releases/{release.id}/claim")
    refused = client.post(f"/c/releases/{release.id}/claim")
    assert refused.status_code == 429 and "领取请求过于频繁" in refused.get_data(as_text=True)

    client.post("/login", data={"username": "cashier", "password": PASSWORD})
    client.post("/counter", data={"code": voucher.code, "order_amount": "150", "idempotency_key": "a" * 32})
    refused = client.post("/counter", data={"code": voucher.code, "order_amount": "150", "idempotency_key": "b" * 32})
    assert refused.status_code == 429 and "核销请求过于频繁" in refused.get_data(as_text=True)


def test_resending_the_citizens_code_shares_the_sign_in_allowance_of_the_address(make_ops_app, db):
    """重新获取验证码 posts to the sign-in view itself: a resend is one more sign-in request from the
    address, never an allowance of its own (a separate view would get a separate counter)."""
    client = make_ops_app(RATELIMIT_CITIZEN_LOGIN="3 per minute").test_client()
    page = client.post("/c/login", data={"p-phone": "13812345678"}).get_data(as_text=True)
    assert 'name="p-resend"' in page and 'action="/c/login"' in page
    again = client.post("/c/login", data={"p-phone": "13812345678", "p-resend": "1"})
    assert again.status_code == 200
    wrong = "000000" if 'class="dev-code">000000<' not in again.get_data(as_text=True) else "111111"
    assert client.post("/c/login", data={"c-phone": "13812345678", "c-code": wrong}).status_code == 422
    refused = client.post("/c/login", data={"p-phone": "13812345678", "p-resend": "1"})
    assert refused.status_code == 429 and "验证请求过于频繁" in refused.get_data(as_text=True)
    refused = client.post("/c/login", data={"p-phone": "13900001111"})  # another number, the same address
    assert refused.status_code == 429
    assert client.get("/c/login").status_code == 200  # showing the form is not counted


def test_limits_can_be_switched_off(make_ops_app, db):
    client = make_ops_app(RATELIMIT_ENABLED=False, RATELIMIT_LOGIN="1 per minute").test_client()
    answers = {client.post("/login", data={"username": "nobody", "password": "x"}).status_code for _ in range(5)}
    assert 429 not in answers


def test_a_malformed_limit_is_refused_at_start(monkeypatch, tmp_path):
    from voucher.config import load

    monkeypatch.setenv("RATELIMIT_LOGIN", "five a minute")
    with pytest.raises(ConfigError, match="RATELIMIT_LOGIN"):
        load(str(tmp_path))


def _redis_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _redis_up(), reason="no Redis on 127.0.0.1:6379: shared counting not tested here")
def test_with_redis_two_processes_share_one_allowance(make_ops_app, db):
    settings = {"RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/15", "RATELIMIT_LOGIN": "2 per minute",
                "RATELIMIT_KEY_PREFIX": f"test-{uuid.uuid4().hex}"}
    one = make_ops_app(**settings).test_client()
    two = make_ops_app(**settings).test_client()
    assert one.post("/login", data={"username": "nobody", "password": "x"}).status_code != 429
    assert two.post("/login", data={"username": "nobody", "password": "x"}).status_code != 429
    assert one.post("/login", data={"username": "nobody", "password": "x"}).status_code == 429


def test_an_unreachable_redis_falls_back_to_counting_locally(make_ops_app, db):
    client = make_ops_app(RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0", RATELIMIT_LOGIN="2 per minute").test_client()
    answers = [client.post("/login", data={"username": "nobody", "password": "x"}).status_code for _ in range(3)]
    # Served (a wrong password, not a 500), and still limited, by this process alone.
    assert answers[0] == answers[1] != 500 and answers[2] == 429, answers


def test_local_counters_start_afresh_when_the_window_ends_and_old_ones_are_swept(monkeypatch):
    from limits import parse
    from limits.strategies import FixedWindowRateLimiter

    from voucher.ops import limits

    now = [1_000_000.0]
    monkeypatch.setattr(limits.time, "time", lambda: now[0])
    storage = limits.LocalStorage()
    counter, once = FixedWindowRateLimiter(storage), parse("1 per minute")
    assert counter.hit(once, "a") and not counter.hit(once, "a") and counter.hit(once, "b")
    now[0] += 61
    assert counter.hit(once, "a")  # a new window
    now[0] += storage.SWEEP_EVERY + 61
    counter.hit(once, "c")  # the sweep runs on this count: a's and b's windows are gone
    assert len(storage._windows) == 1
