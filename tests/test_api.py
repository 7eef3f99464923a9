"""The JSON API: terminals redeem and reverse, partners claim by signed request; one response shape."""
from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

import pytest
from openapi_spec_validator import validate
from sqlalchemy import func, select

from tests.factories import claim_one, make_campaign, make_citizen, make_world
from voucher.api import auth
from voucher.api.models import Partner
from voucher.core.audit import AuditEntry
from voucher.ledger import services as ledger
from voucher.merchants import terminals
from voucher.merchants.models import Redemption
from voucher.reports.consistency import verify_ledger
from voucher.vouchers import tokens
from voucher.vouchers.models import Citizen, Voucher


def test_openapi_is_valid_and_lists_every_endpoint(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    validate(spec)
    assert set(spec["paths"]) == {
        "/redemptions", "/redemptions/{redemption_id}", "/redemptions/{redemption_id}/reversal", "/channel/claims",
        "/channel/releases/{release_id}/claims",
    }  # not the nginx edge's probe (/edge/...): it is not part of the partners' API


@pytest.fixture
def terminal_world(db, app):
    world = make_world()
    campaign, release = make_campaign(world, quantity=10)
    terminal, token = terminals.issue_terminal_token(world.cashier.store_id, "一号收银机", world.manager.id)
    other, other_token = terminals.issue_terminal_token(world.cashier_car.store_id, "汽车店终端", world.admin.id)
    db.session.commit()
    voucher = claim_one(release, make_citizen())
    qr = tokens.sign(voucher.code, app.config["QR_SIGNING_KEYS"], app.config["QR_ACTIVE_KEY_ID"])
    return world, campaign, voucher, qr, token, other_token


def post_redeem(client, token, code, amount, key="k-1"):
    headers = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post("/api/v1/redemptions", json={"code": code, "order_amount_fen": amount}, headers=headers)


def assert_error(response, status, code):
    body = response.get_json()
    assert response.status_code == status, body
    assert body["success"] is False and body["errors"][0]["code"] == code
    assert body["errors"][0]["message"]  # a Chinese message for people


def test_terminal_redeems_once_and_retries_replay(client, db, terminal_world):
    _, campaign, voucher, qr, token, _ = terminal_world
    first = post_redeem(client, token, qr, 150_00)
    assert first.status_code == 201
    data = first.get_json()["data"]
    assert data["subsidy_fen"] == 20_00 and data["paid_by_citizen_fen"] == 130_00 and data["replayed"] is False
    again = post_redeem(client, token, qr, 150_00)
    assert again.status_code == 200 and again.get_json()["data"]["id"] == data["id"]
    assert again.get_json()["data"]["replayed"] is True
    assert_error(post_redeem(client, token, qr, 160_00), 409, "idempotency_conflict")
    assert_error(post_redeem(client, token, qr, 150_00, key="k-2"), 409, "voucher_already_redeemed")
    assert db.session.scalar(select(func.count(Redemption.id))) == 1
    assert verify_ledger() == []


@pytest.mark.parametrize(
    "body, headers, status, code",
    [
        ({"code": "x", "order_amount_fen": 100}, {"Authorization": "Bearer nope", "Idempotency-Key": "a"}, 401,
         "unauthenticated"),
        ({"code": "x", "order_amount_fen": 100}, {}, 401, "unauthenticated"),
        ({"code": "X", "order_amount_fen": 150.5}, None, 422, "invalid_input"),
        ({"code": "X", "order_amount_fen": "150"}, None, 422, "invalid_input"),
        ({"code": "X", "order_amount_fen": True}, None, 422, "invalid_input"),
        ({"order_amount_fen": 100}, None, 422, "invalid_input"),
        ({"code": "LYGV1.dev1.ABC.def", "order_amount_fen": 100}, None, 422, "invalid_token"),
    ],
)
def test_bad_requests_get_a_code_and_change_nothing(client, db, terminal_world, body, headers, status, code):
    _, _, _, _, token, _ = terminal_world
    if headers is None:
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "k"}
    before = db.session.scalar(select(func.count(Redemption.id)))
    assert_error(client.post("/api/v1/redemptions", json=body, headers=headers), status, code)
    assert db.session.scalar(select(func.count(Redemption.id))) == before


def test_missing_idempotency_key_and_non_json_body(client, terminal_world):
    _, _, _, qr, token, _ = terminal_world
    assert_error(post_redeem(client, token, qr, 100_00, key=None), 422, "invalid_input")
    response = client.post("/api/v1/redemptions", data="not json",
                           headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "z"})
    assert_error(response, 422, "invalid_input")


def test_reversal_returns_money_and_voucher_exactly(client, db, terminal_world):
    _, campaign, voucher, qr, token, other_token = terminal_world
    before = ledger.campaign_balances([campaign.id])[campaign.id]
    redemption_id = post_redeem(client, token, qr, 150_00).get_json()["data"]["id"]
    headers = {"Authorization": f"Bearer {other_token}"}
    assert_error(client.get(f"/api/v1/redemptions/{redemption_id}", headers=headers), 404, "not_found")
    # Issue 16: another store's redemption is "not found" on reversal too (it was 403, telling that it exists).
    assert_error(client.post(f"/api/v1/redemptions/{redemption_id}/reversal", json={"reason": "误操作"},
                             headers=headers), 404, "not_found")
    headers = {"Authorization": f"Bearer {token}"}
    assert_error(client.post(f"/api/v1/redemptions/{redemption_id}/reversal", json={"reason": ""}, headers=headers),
                 422, "invalid_input")
    response = client.post(f"/api/v1/redemptions/{redemption_id}/reversal", json={"reason": "顾客取消订单"},
                           headers=headers)
    assert response.status_code == 200 and response.get_json()["data"]["reversed_at"]
    db.session.expire_all()
    assert ledger.campaign_balances([campaign.id])[campaign.id] == before
    assert db.session.get(Voucher, voucher.id).status == "claimed"
    assert_error(client.post(f"/api/v1/redemptions/{redemption_id}/reversal", json={"reason": "再来"}, headers=headers),
                 409, "invalid_transition")
    # The voucher can be used again, and the ledger is clean.
    assert post_redeem(client, token, qr, 120_00, key="k-again").status_code == 201
    assert verify_ledger() == []


def test_reversal_window_closes(client, db, terminal_world, app):
    _, _, _, qr, token, _ = terminal_world
    redemption_id = post_redeem(client, token, qr, 150_00).get_json()["data"]["id"]
    redemption = db.session.get(Redemption, redemption_id)
    redemption.created_at -= timedelta(minutes=app.config["REVERSAL_WINDOW_MINUTES"] + 1)
    db.session.commit()
    response = client.post(f"/api/v1/redemptions/{redemption_id}/reversal", json={"reason": "晚了"},
                           headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 409, "reversal_window_closed")
    assert "30 分钟" in response.get_json()["errors"][0]["message"]


# Channel partners --------------------------------------------------------------------------------


@pytest.fixture
def partner(db):
    row = Partner(name="我的连云港", key_id="pk_test")
    db.session.add(row)
    db.session.commit()
    return row


def signed_claim(client, body: dict, *, key_id="pk_test", secret=None, timestamp=None, nonce=None, tamper=False,
                 path="/api/v1/channel/claims", signed_path=None):
    """A partner's claim, signed over `signed_path` (by default the path it is sent to)."""
    raw = json.dumps(body).encode()
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or uuid.uuid4().hex
    secret = secret or auth.partner_secret(key_id)
    sig = auth.signature(secret, "POST", signed_path or path, timestamp, nonce, raw)
    if tamper:
        raw = raw.replace(b'"release_id": ', b'"release_id": 1')
    return client.post(path, data=raw, content_type="application/json", headers={
        "X-Partner-Key": key_id, "X-Timestamp": timestamp, "X-Nonce": nonce, "X-Signature": sig})


def test_partner_claims_for_a_verified_citizen(client, db, app, partner):
    world = make_world()
    _, release = make_campaign(world, quantity=2)
    response = signed_claim(client, {"release_id": release.id, "citizen": {"phone": "13912345678"}})
    assert response.status_code == 201, response.get_json()
    voucher = response.get_json()["data"]["voucher"]
    assert tokens.verify(voucher["qr_token"], app.config["QR_SIGNING_KEYS"]) == voucher["code"]
    assert_error(signed_claim(client, {"release_id": release.id, "citizen": {"phone": "13912345678"}}), 409,
                 "claim_limit_reached")
    assert signed_claim(client, {"release_id": release.id, "citizen": {"phone": "13900000001"}}).status_code == 201
    assert_error(signed_claim(client, {"release_id": release.id, "citizen": {"phone": "13900000002"}}), 409, "sold_out")
    # The phone number is kept nowhere: not in citizens, not in the audit log.
    hashes = db.session.scalars(select(Citizen.identity_hash)).all()
    assert len(hashes) == 2 and all("139" not in h for h in hashes)
    audit_text = json.dumps([e.after for e in db.session.scalars(select(AuditEntry))], ensure_ascii=False)
    assert "13912345678" not in audit_text


@pytest.mark.parametrize("problem", ["stale", "replay", "bad_signature", "unknown_partner", "tampered_body"])
def test_bad_signed_requests_are_refused(client, db, partner, problem):
    world = make_world()
    _, release = make_campaign(world, quantity=5)
    body = {"release_id": release.id, "citizen": {"phone": "13912345678"}}
    if problem == "stale":
        response = signed_claim(client, body, timestamp=int(time.time()) - 301)
    elif problem == "replay":
        assert signed_claim(client, body, nonce="once").status_code == 201
        response = signed_claim(client, {**body, "citizen": {"phone": "13800000000"}}, nonce="once")
    elif problem == "bad_signature":
        response = signed_claim(client, body, secret="not-the-secret")
    elif problem == "unknown_partner":
        response = signed_claim(client, body, key_id="pk_unknown")
    else:
        response = signed_claim(client, body, tamper=True)
    assert_error(response, 401, "unauthenticated")
    claimed = db.session.scalar(select(func.count(Voucher.id)).where(Voucher.citizen_id.is_not(None)))
    assert claimed == (1 if problem == "replay" else 0)


def test_counter_page_reversal_only_at_the_same_store(client, db, terminal_world):
    from tests.factories import PASSWORD

    world, _, voucher, qr, _, _ = terminal_world
    client.post("/login", data={"username": "cashier", "password": PASSWORD})
    client.post("/counter", data={"code": qr, "order_amount": "150", "idempotency_key": "page-1"})
    redemption = db.session.scalar(select(Redemption))
    page = client.get("/counter").get_data(as_text=True)
    assert f"/counter/redemptions/{redemption.id}/reverse" in page
    client.post("/logout")
    client.post("/login", data={"username": "cashier_car", "password": PASSWORD})
    response = client.post(f"/counter/redemptions/{redemption.id}/reverse", data={"reason": "试试"},
                           follow_redirects=True)
    assert "只能由原核销门店撤销" in response.get_data(as_text=True)
    client.post("/logout")
    client.post("/login", data={"username": "cashier", "password": PASSWORD})
    response = client.post(f"/counter/redemptions/{redemption.id}/reverse", data={"reason": "收银误操作"},
                           follow_redirects=True)
    assert "已撤销核销" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Voucher, voucher.id).status == "claimed"
    assert verify_ledger() == []


def test_late_arrivals_after_sell_out_touch_no_citizen_rows(client, db, partner):
    world = make_world()
    _, release = make_campaign(world, quantity=1)
    assert signed_claim(client, {"release_id": release.id, "citizen": {"phone": "13700000001"}}).status_code == 201
    assert_error(signed_claim(client, {"release_id": release.id, "citizen": {"phone": "13700000002"}}), 409, "sold_out")
    citizens_before = db.session.scalar(select(func.count(Citizen.id)))
    for i in range(3, 6):
        assert_error(signed_claim(client, {"release_id": release.id, "citizen": {"phone": f"1370000000{i}"}}), 409,
                     "sold_out")
    assert db.session.scalar(select(func.count(Citizen.id))) == citizens_before
