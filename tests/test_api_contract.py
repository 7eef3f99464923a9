"""The API keeps its contract at the edges (issue 16, items 6 and 8): hostile bodies are refused with a
4xx in the one error shape before any JSON parsing, the OpenAPI description declares exactly the statuses
each operation answers and the inputs it accepts, 405 names the allowed methods, and another store's
redemption is "not found" whatever the terminal asks of it."""
from __future__ import annotations

import json
import time
import uuid

import pytest
from sqlalchemy import func, select

from tests.factories import claim_one, make_campaign, make_citizen, make_world
from voucher.api import auth
from voucher.api.models import Partner
from voucher.merchants import terminals
from voucher.merchants.models import Redemption
from voucher.vouchers import tokens
from voucher.vouchers.models import Voucher

DEEP = b"[" * 5000  # issue 16, item 6: answered 500 (RecursionError)


@pytest.fixture
def api_world(db, app):
    world = make_world()
    _, release = make_campaign(world, quantity=10)
    _, token = terminals.issue_terminal_token(world.cashier.store_id, "一号收银机", world.manager.id)
    _, other_token = terminals.issue_terminal_token(world.cashier_car.store_id, "汽车店终端", world.admin.id)
    db.session.add(Partner(name="我的连云港", key_id="pk_contract"))
    db.session.commit()
    voucher = claim_one(release, make_citizen())
    qr = tokens.sign(voucher.code, app.config["QR_SIGNING_KEYS"], app.config["QR_ACTIVE_KEY_ID"])
    return {"release": release, "voucher": voucher, "qr": qr, "token": token, "other_token": other_token}


def terminal(token: str, key: str | None = "k-1") -> dict:
    headers = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


def signed_headers(raw: bytes, path: str = "/api/v1/channel/claims", key_id: str = "pk_contract") -> dict:
    timestamp, nonce = str(int(time.time())), uuid.uuid4().hex
    return {"X-Partner-Key": key_id, "X-Timestamp": timestamp, "X-Nonce": nonce,
            "X-Signature": auth.signature(auth.partner_secret(key_id), "POST", path, timestamp, nonce, raw)}


def assert_error(response, status: int, code: str) -> dict:
    body = response.get_json()
    assert response.status_code == status, (response.status_code, response.get_data()[:300])
    assert body["success"] is False and body["errors"][0]["code"] == code, body
    assert body["errors"][0]["message"]
    return body


def redeem(client, world, body: bytes) -> object:
    return client.post("/api/v1/redemptions", data=body, content_type="application/json",
                       headers=terminal(world["token"]))


def redeemed_id(client, world) -> int:
    response = client.post("/api/v1/redemptions", json={"code": world["qr"], "order_amount_fen": 150_00},
                           headers=terminal(world["token"]))
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"]["id"]


# Item 6: hostile bodies --------------------------------------------------------------------------


@pytest.mark.parametrize("body", [DEEP, b'{"code": ' + b'{"a": ' * 2000 + b"1" + b"}" * 2000 + b"}",
                                  b'{"code": "x", "order_amount_fen": 100, "n": ' + b"[" * 40 + b"]" * 40 + b"}"])
def test_deeply_nested_json_is_refused_on_redemption(client, api_world, body):
    assert_error(redeem(client, api_world, body), 422, "invalid_input")
    assert client.application.extensions  # the app still answers
    assert redeem(client, api_world, json.dumps({"code": api_world["qr"], "order_amount_fen": 150_00}).encode()
                  ).status_code == 201


def test_deeply_nested_json_is_refused_on_reversal(client, db, api_world):
    redemption_id = redeemed_id(client, api_world)
    response = client.post(f"/api/v1/redemptions/{redemption_id}/reversal", data=DEEP,
                           content_type="application/json", headers=terminal(api_world["token"], key=None))
    assert_error(response, 422, "invalid_input")
    assert db.session.get(Redemption, redemption_id).reversed_at is None


def test_deeply_nested_json_is_refused_on_claims(client, db, api_world):
    response = client.post("/api/v1/channel/claims", data=DEEP, content_type="application/json",
                           headers=signed_headers(DEEP))
    assert_error(response, 422, "invalid_input")
    claimed = db.session.scalar(select(func.count(Voucher.id)).where(Voucher.citizen_id.is_not(None)))
    assert claimed == 1  # the fixture's one


def test_brackets_inside_strings_do_not_count_as_nesting(client, api_world):
    # A reason full of brackets is text, not structure.
    redemption_id = redeemed_id(client, api_world)
    reason = json.dumps({"reason": "[" * 150 + "顾客取消"}).encode()
    response = client.post(f"/api/v1/redemptions/{redemption_id}/reversal", data=reason,
                           content_type="application/json", headers=terminal(api_world["token"], key=None))
    assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize("path", ["/api/v1/redemptions", "/api/v1/redemptions/1/reversal", "/api/v1/channel/claims"])
def test_oversized_bodies_are_refused_before_parsing(client, api_world, path):
    body = json.dumps({"code": "x" * 100_000, "order_amount_fen": 100, "reason": "r"}).encode()
    headers = signed_headers(body, path) if "channel" in path else terminal(api_world["token"])
    response = client.post(path, data=body, content_type="application/json", headers=headers)
    assert_error(response, 413, "payload_too_large")
    assert "不能超过 16 KB" in response.get_json()["errors"][0]["message"]


@pytest.mark.parametrize("body", [b"\xff\xfe\x00", b"1" * 5000, b'{"code": "x", "order_amount_fen": NaN}', b"[]", b""])
def test_other_malformed_bodies_are_422(client, api_world, body):
    assert_error(redeem(client, api_world, body), 422, "invalid_input")


# Item 8: the description and the behaviour agree -------------------------------------------------


def spec(client) -> dict:
    return client.get("/api/v1/openapi.json").get_json()


def operation(document: dict, method: str, path: str) -> dict:
    return document["paths"][path][method]


@pytest.mark.parametrize("method, path, statuses", [
    ("post", "/redemptions", {"200", "201", "401", "403", "404", "409", "413", "422", "429"}),
    ("get", "/redemptions/{redemption_id}", {"200", "401", "404"}),
    ("post", "/redemptions/{redemption_id}/reversal", {"200", "401", "404", "409", "413", "422", "429"}),
    ("post", "/channel/claims", {"201", "401", "404", "409", "413", "422", "429"}),
])
def test_every_status_an_operation_answers_is_declared(client, method, path, statuses):
    assert set(operation(spec(client), method, path)["responses"]) == statuses


def test_declared_inputs_are_the_accepted_inputs(client):
    document = spec(client)
    redemption = operation(document, "post", "/redemptions")["requestBody"]["content"]["application/json"]["schema"]
    assert redemption["properties"]["code"]["minLength"] == 1
    assert redemption["properties"]["order_amount_fen"]["minimum"] == 1
    claim = operation(document, "post", "/channel/claims")["requestBody"]["content"]["application/json"]["schema"]
    assert claim["properties"]["release_id"]["minimum"] == 1
    assert "pattern" in claim["properties"]["citizen"]["properties"]["phone"]
    reversal = operation(document, "post", "/redemptions/{redemption_id}/reversal")
    assert reversal["requestBody"]["content"]["application/json"]["schema"]["properties"]["reason"]["minLength"] == 1
    assert reversal["parameters"][0]["schema"]["minimum"] == 1


@pytest.mark.parametrize("body", [{"code": "", "order_amount_fen": 100}, {"code": "x" * 201, "order_amount_fen": 100},
                                  {"code": "X", "order_amount_fen": 0}, {"code": "X", "order_amount_fen": 10**11}])
def test_inputs_outside_the_schema_are_invalid_input(client, api_world, body):
    response = client.post("/api/v1/redemptions", json=body, headers=terminal(api_world["token"]))
    assert_error(response, 422, "invalid_input")


@pytest.mark.parametrize("key", ["", " ", "a b", "x" * 65])
def test_idempotency_keys_outside_the_schema_are_invalid_input(client, api_world, key):
    response = client.post("/api/v1/redemptions", json={"code": api_world["qr"], "order_amount_fen": 150_00},
                           headers=terminal(api_world["token"], key=key))
    assert_error(response, 422, "invalid_input")


@pytest.mark.parametrize("body", [
    {"release_id": 0, "citizen": {"phone": "13912345678"}},
    {"release_id": 2**31, "citizen": {"phone": "13912345678"}},
    {"release_id": 1, "citizen": {"phone": "139 1234 5678"}},
    {"release_id": 1, "citizen": {"phone": "１３９１２３４５６７８"}},
    {"release_id": 1, "citizen": {"phone": "13912345678\n"}},
])
def test_claim_inputs_outside_the_schema_are_invalid_input(client, api_world, body):
    raw = json.dumps(body).encode()
    response = client.post("/api/v1/channel/claims", data=raw, content_type="application/json",
                           headers=signed_headers(raw))
    assert_error(response, 422, "invalid_input")


def test_reversal_reason_is_checked_against_the_schema(client, db, api_world):
    redemption_id = redeemed_id(client, api_world)
    for reason in [5, "   ", "x" * 201]:
        response = client.post(f"/api/v1/redemptions/{redemption_id}/reversal", json={"reason": reason},
                               headers=terminal(api_world["token"], key=None))
        assert_error(response, 422, "invalid_input")
    assert db.session.get(Redemption, redemption_id).reversed_at is None


def test_another_stores_redemption_is_not_found_everywhere(client, db, api_world):
    redemption_id = redeemed_id(client, api_world)
    other = terminal(api_world["other_token"], key=None)
    missing = assert_error(client.get("/api/v1/redemptions/999999", headers=other), 404, "not_found")
    got = assert_error(client.get(f"/api/v1/redemptions/{redemption_id}", headers=other), 404, "not_found")
    reversal = client.post(f"/api/v1/redemptions/{redemption_id}/reversal", json={"reason": "误操作"}, headers=other)
    refused = assert_error(reversal, 404, "not_found")
    absent = assert_error(client.post("/api/v1/redemptions/999999/reversal", json={"reason": "误操作"}, headers=other),
                          404, "not_found")
    # The same answer, word for word, as for a redemption that does not exist.
    assert got == missing and refused == absent
    assert db.session.get(Redemption, redemption_id).reversed_at is None


@pytest.mark.parametrize("method, path, allowed", [
    ("GET", "/api/v1/redemptions", {"POST"}),
    ("DELETE", "/api/v1/redemptions/1", {"GET", "HEAD"}),
    ("PUT", "/api/v1/redemptions/1/reversal", {"POST"}),
    ("GET", "/api/v1/channel/claims", {"POST"}),
])
def test_405_names_the_allowed_methods(client, method, path, allowed):
    response = client.open(path, method=method)
    assert_error(response, 405, "method_not_allowed")
    assert {m.strip() for m in response.headers["Allow"].split(",")} - {"OPTIONS"} == allowed
