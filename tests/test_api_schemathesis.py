"""Schemathesis against the API's own OpenAPI description (issue 16, item 8): what the description allows
is accepted, what it forbids is refused, and every answer is a declared status in the declared shape.

The app is called in-process through WSGI (no server). Every case is sent as the real callers send it: a
store terminal's bearer token, or a channel partner's signed request (HMAC over the exact body bytes, a
fresh nonce each time), added by a `before_call` hook. The run is bounded and deterministic (a fixed number
of examples per operation, derandomised, no example database), and mixes real voucher codes and QR tokens
and the real release into the generated bodies so that the success paths (201, 200, 409) are exercised
as well as the refusals.

Schemathesis' own `positive_data_acceptance` counts any 422 on valid data as a refusal; here a 422 is a
domain verdict as long as its code is not `invalid_input` (a forged token, an order under the threshold),
so that one check is replaced by `schema_valid_input_is_not_refused`, which is stricter where it matters:
schema-valid input must never be answered 400, 413 or 422 invalid_input.
"""
from __future__ import annotations

import json
import time
import uuid
from collections import Counter

import pytest
import schemathesis  # a declared test dependency (pyproject.toml): imported plainly, so it never skips
from hypothesis import HealthCheck, settings
from jsonschema import Draft202012Validator
from schemathesis.core import NotSet

from tests.factories import claim_one, make_campaign, make_citizen, make_world
from voucher.api import auth
from voucher.api.models import Partner
from voucher.api.spec import MAX_ID
from voucher.api.views import openapi
from voucher.merchants import terminals
from voucher.vouchers import tokens

MAX_EXAMPLES = 40  # per operation and generation mode, in the fuzzing phase
PARTNER_KEY = "pk_schemathesis"

CONFIG = {
    "seed": 20270317,
    "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
    "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True}, "fuzzing": {"enabled": True},
               "stateful": {"enabled": False}},
    "checks": {"positive_data_acceptance": {"enabled": False}},
}

FIGURES: Counter = Counter()
#: the world of the running test, for the hooks
WORLD: dict = {}

# Built from the description as the code declares it (the same document /api/v1/openapi.json serves);
# each case is then sent to the test's own app, in-process.
DESCRIPTION = openapi()
schema = schemathesis.openapi.from_dict(DESCRIPTION, config=schemathesis.Config.from_dict(CONFIG))


def before_call(context, case, kwargs):
    """Send the case as a real caller would: the body as exact bytes, then the credentials over them."""
    body = case.body
    raw = b""
    if not isinstance(body, NotSet):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        kwargs["data"] = raw
    headers = dict(case.headers or {})
    # Schemathesis fills the declared credential (Authorization, X-Signature) with a made-up value, and
    # leaves it out in the cases that test its absence: those stay without, and are answered 401.
    if not any(name.lower() in ("authorization", "x-signature") for name in headers):
        FIGURES["without credentials"] += 1
        return
    if case.path.startswith("/channel/"):
        timestamp, nonce = str(int(time.time())), uuid.uuid4().hex
        signature = auth.signature(auth.partner_secret(PARTNER_KEY), case.method, "/api/v1" + case.formatted_path,
                                   timestamp, nonce, raw)
        headers.update({"X-Partner-Key": PARTNER_KEY, "X-Timestamp": timestamp, "X-Nonce": nonce,
                        "X-Signature": signature})
    else:
        headers["Authorization"] = f"Bearer {WORLD['token']}"
    case.headers = headers


@schema.hook
def map_body(context, body):
    """Some bodies carry a real code or token, or the real release: the success paths get their turn."""
    if not isinstance(body, dict) or not WORLD:
        return body
    # Only a value the schema allows is swapped for another it allows: a case meant to break the schema
    # (in this field or another) still breaks it.
    pick = len(json.dumps(body, default=str))  # deterministic: a function of the generated body
    if pick % 3:
        return body
    path = context.operation.path
    if path == "/redemptions" and _allowed(_property(path, "code"), body.get("code")):
        body = {**body, "code": WORLD["codes"][pick % len(WORLD["codes"])]}
    if path == "/channel/claims" and _allowed(_property(path, "release_id"), body.get("release_id")):
        body = {**body, "release_id": WORLD["release_id"]}
    return body


@schema.hook
def map_path_parameters(context, path_parameters):
    """Some redemption ids are this store's real redemptions: GET answers 200, reversal 200 then 409; some
    release ids the real release, where a claim can win."""
    release = (path_parameters or {}).get("release_id")
    if WORLD and type(release) is int and 1 <= release <= MAX_ID and not release % 3:
        return {**path_parameters, "release_id": WORLD["release_id"]}
    value = (path_parameters or {}).get("redemption_id")
    if not WORLD or value is None or type(value) is not int or value % 2:
        return path_parameters
    parameter = next(p for p in DESCRIPTION["paths"][context.operation.path][context.operation.method.lower()]
                     ["parameters"] if p["name"] == "redemption_id")
    if not _allowed(parameter["schema"], value):
        return path_parameters
    return {**path_parameters, "redemption_id": WORLD["redemption_ids"][value % len(WORLD["redemption_ids"])]}


def _property(path: str, name: str) -> dict:
    body = DESCRIPTION["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return body["properties"][name]


def _allowed(property_schema: dict, value) -> bool:
    """Whether the description allows the value (JSON Schema 2020-12, as OpenAPI 3.1 uses)."""
    return Draft202012Validator(property_schema).is_valid(value)


def schema_valid_input_is_not_refused(ctx, response, case):
    """Valid input is never refused as malformed (400, 413, 422 invalid_input); a 422 with a domain code is a
    verdict on the data (a code that does not verify, an order under the threshold), not on its shape."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return None
    code = None
    if response.status_code == 422:
        try:
            code = json.loads(response.content)["errors"][0]["code"]
        except (ValueError, KeyError, IndexError, TypeError):
            code = "unreadable"
    if response.status_code in (400, 413) or code in ("invalid_input", "unreadable"):
        raise AssertionError(f"schema-valid input refused: {response.status_code} {response.content[:300]!r}")
    return None


@pytest.fixture
def contract_world(app, db):
    """A store with a terminal, a partner, an open release, and claimed vouchers whose codes and tokens
    map_body slips into some of the generated redemptions; before_call signs with them."""
    world = make_world()
    _, release = make_campaign(world, quantity=200, threshold_fen=0)
    _, token = terminals.issue_terminal_token(world.cashier.store_id, "契约测试终端", world.manager.id)
    db.session.add(Partner(name="契约测试渠道", key_id=PARTNER_KEY))
    db.session.commit()
    codes = []
    for n in range(12):
        voucher = claim_one(release, make_citizen(f"st{n}"))
        codes.append(voucher.code)
        codes.append(tokens.sign(voucher.code, app.config["QR_SIGNING_KEYS"], app.config["QR_ACTIVE_KEY_ID"]))
    redemption_ids = []
    for code in codes[-6::2]:  # three of them redeemed already, at this store
        response = app.test_client().post("/api/v1/redemptions", json={"code": code, "order_amount_fen": 150_00},
                                          headers={"Authorization": f"Bearer {token}", "Idempotency-Key": code})
        assert response.status_code == 201, response.get_json()
        redemption_ids.append(response.get_json()["data"]["id"])
    WORLD.update(token=token, release_id=release.id, codes=codes, redemption_ids=redemption_ids)
    schemathesis.hook(before_call)
    yield WORLD
    schemathesis.hooks.unregister(before_call)
    WORLD.clear()


@pytest.fixture(scope="module", autouse=True)
def figures():
    FIGURES.clear()
    started = time.monotonic()
    yield FIGURES
    print(f"\nschemathesis: {sum(v for k, v in FIGURES.items() if k.startswith('mode:'))} cases "
          f"({', '.join(f'{k} {v}' for k, v in sorted(FIGURES.items()))}) in {time.monotonic() - started:.1f} s")


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # one world per operation, on purpose
def test_api_matches_its_openapi_description(case, app, contract_world):
    mode = case.meta.generation.mode.value if case.meta else "explicit"
    FIGURES[f"mode:{mode}"] += 1
    # In-process, through WSGI: the case and the checks' own probes (ignored_auth) alike.
    case.operation.app = case.operation.schema.app = app
    response = case.call_and_validate(additional_checks=[schema_valid_input_is_not_refused])
    FIGURES[f"status:{response.status_code}"] += 1
    if mode == "positive" and response.status_code >= 400:
        FIGURES[f"positive {response.status_code} {json.loads(response.content)['errors'][0]['code']}"] += 1
