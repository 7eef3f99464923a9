"""The access matrix: every route of the app, with every method, requested by every kind of caller.

The routes come from app.url_map, so a new route is covered the day it is added. What each one should
answer comes from the view itself: the decorator that checks the caller records an Access on it
(voucher/core/permissions.py). A view without one fails here; there is no list of routes to keep up.

Callers: anonymous, a signed-in user of each Role, a phone-verified citizen, a store terminal (bearer
token), a channel partner (signed request) and a monitoring system (the metrics token). Expected:

  public     anyone gets an ordinary answer
  staff      a user with one of the roles gets an ordinary answer, another user 403, anyone else the
             staff sign-in page (a redirect to /login)
  citizen    the citizen gets an ordinary answer, anyone else the citizen sign-in page (/c/login)
  terminal   the terminal gets an ordinary answer, anyone else 401 (cookies do not open the API)
  partner    the partner gets an ordinary answer, anyone else 401
  metrics    the token's holder gets the metrics, anyone else 404 (the test app allows no network)

An ordinary answer is one of ORDINARY and not a sign-in page: the matrix is about access, not content,
so 404 for an id that does not exist or 422 for an empty form count. A 5xx (or an exception) is never one.

GETs fill URL ids with rows made here where there are some. POSTs send empty forms (CSRF off: tests/test_access.py
tests it) or `{}` to the API, with ids that do not exist, so that a POST which passes the checks finds nothing
to change, or of spare rows made to be changed. The GETs run first; a caller whose sign-in ended (退出)
signs in again.
"""
from __future__ import annotations

import dataclasses
import time
import uuid
import warnings
from typing import Callable
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient
from werkzeug.routing import AnyConverter, IntegerConverter, Rule

from tests.conftest import empty_tables
from tests.factories import PASSWORD, claim_one, make_campaign, make_citizen, make_world
from voucher.accounts.models import User
from voucher.accounts.services import create_user
from voucher.api import auth
from voucher.api.models import Partner
from voucher.core.db import db as _db
from voucher.core.permissions import PUBLIC, Access, Role
from voucher.counter.redemption import redeem
from voucher.merchants import terminals
from voucher.vouchers import citizens

ROLES = tuple(role.value for role in Role)
CALLERS = ("anonymous", *ROLES, "citizen", "terminal", "partner", "metrics")
KINDS = {"public", "staff", "citizen", "terminal", "partner", "metrics"}
#: answers that say the caller got in (whatever the request's content made of it)
ORDINARY = frozenset({200, 201, 302, 303, 400, 404, 405, 409, 422})
#: Flask's own view of voucher/static: it carries no attribute of ours, and is public by nature
FRAMEWORK_ACCESS = {"static": PUBLIC}
MISSING_ID = 999_999
METRICS_TOKEN = "matrix-metrics-token-0123456789"
PHONE = "13900001111"


@dataclasses.dataclass(frozen=True)
class Defect:
    callers: frozenset[str]
    reason: str
    #: the database it shows on (None: both)
    dialect: str | None = None


#: Wrong answers the matrix found that are not about access, reported and left for their own fix. Each is
#: still asked, of the first caller it concerns (each ask of the first one costs ten seconds), and shows
#: as a warning; one that answers as it should fails the test, so that its entry is deleted.
#: Wrong answers found and not fixed yet: asked once each, and the test fails when one answers as it should,
#: so its entry gets deleted. (GET /readyz with a staff cookie on SQLite, and POST /merchant/terminals
#: without a store, were fixed when the matrix found them.)
KNOWN_DEFECTS: dict[tuple[str, str], Defect] = {}


def access_of(app, endpoint: str) -> Access | None:
    return FRAMEWORK_ACCESS.get(endpoint) or getattr(app.view_functions[endpoint], "access", None)


def methods_of(rule: Rule) -> list[str]:
    return sorted(rule.methods - {"HEAD", "OPTIONS"})


def test_every_endpoint_records_whom_it_lets_in(app):
    wrong = []
    for rule in app.url_map.iter_rules():
        access = access_of(app, rule.endpoint)
        if not isinstance(access, Access) or access.caller not in KINDS:
            wrong.append(f"{rule.endpoint} ({rule.rule}): {access!r}")
        elif access.caller == "staff" and not (access.roles and access.roles <= set(ROLES)):
            wrong.append(f"{rule.endpoint} ({rule.rule}): roles {sorted(access.roles)}")
        elif access.caller != "staff" and access.roles:
            wrong.append(f"{rule.endpoint} ({rule.rule}): roles on a {access.caller} view")
    assert not wrong, "views without a (valid) access record; decorate them (voucher/core/permissions.py):\n" + \
        "\n".join(sorted(wrong))


# -- what each caller should get ------------------------------------------------------------------------

OK = "ordinary"
STAFF_SIGN_IN = "staff sign-in"
CITIZEN_SIGN_IN = "citizen sign-in"


def expected(access: Access, caller: str) -> str:
    if access.caller == "public":
        return OK
    if access.caller == "staff":
        if caller in ROLES:
            return OK if caller in access.roles else "403"
        return STAFF_SIGN_IN
    if access.caller == "citizen":
        return OK if caller == "citizen" else CITIZEN_SIGN_IN
    if access.caller in ("terminal", "partner"):
        return OK if caller == access.caller else "401"
    assert access.caller == "metrics", access
    return OK if caller == "metrics" else "404"


def _redirect_path(response) -> str | None:
    return urlsplit(response.location).path if response.status_code in (301, 302, 303, 307, 308) else None


def meets(expectation: str, response) -> bool:
    path = _redirect_path(response)
    if expectation == STAFF_SIGN_IN:
        return response.status_code == 302 and path == "/login"
    if expectation == CITIZEN_SIGN_IN:
        return response.status_code == 302 and path == "/c/login"
    if expectation == OK:
        # Treated as not signed in: the staff checks send the page asked for along (?next=); 退出 itself
        # ends on the sign-in page, without it. The citizen check sends nothing along, and no citizen
        # page an allowed caller opens ends on the citizen sign-in page.
        as_anonymous = (path == "/login" and "next=" in urlsplit(response.location).query) or path == "/c/login"
        return response.status_code in ORDINARY and not as_anonymous
    return str(response.status_code) == expectation


def described(response) -> str:
    path = _redirect_path(response)
    if path:
        return f"{response.status_code} -> {path}"
    if response.status_code >= 500 and response.is_json:
        return f"{response.status_code} {response.get_data(as_text=True).strip()[:80]}"
    return str(response.status_code)


# -- the callers --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Caller:
    name: str
    client: FlaskClient
    #: the headers a request carries: (method, path, body) -> headers
    headers: Callable[[str, str, bytes], dict] = lambda method, path, body: {}
    sign_in: Callable[[], None] | None = None
    is_signed_in: Callable[[], bool] | None = None


def _staff(app, username: str) -> Caller:
    client = app.test_client()

    def sign_in():
        response = client.post("/login", data={"username": username, "password": PASSWORD})
        assert response.status_code == 302 and _redirect_path(response) != "/account/password", (
            username, described(response))

    def is_signed_in():
        with client.session_transaction() as session:
            return "_user_id" in session

    return Caller(username, client, sign_in=sign_in, is_signed_in=is_signed_in)


def _citizen(app) -> Caller:
    client = app.test_client()

    def sign_in():
        # The one-time code is on the page outside production (OTP_DEV_DISPLAY).
        page = client.post("/c/login", data={"p-phone": PHONE}).get_data(as_text=True)
        code = page.split('class="dev-code">', 1)[1][:6]
        response = client.post("/c/login", data={"c-phone": PHONE, "c-code": code})
        assert response.status_code == 302, described(response)

    def is_signed_in():
        with client.session_transaction() as session:
            return "citizen_id" in session

    return Caller("citizen", client, sign_in=sign_in, is_signed_in=is_signed_in)


def _partner_headers(key_id: str) -> Callable[[str, str, bytes], dict]:
    secret = auth.partner_secret(key_id)

    def headers(method: str, path: str, body: bytes) -> dict:
        timestamp, nonce = str(int(time.time())), uuid.uuid4().hex
        return {"X-Partner-Key": key_id, "X-Timestamp": timestamp, "X-Nonce": nonce,
                "X-Signature": auth.signature(secret, method, path, timestamp, nonce, body)}

    return headers


@dataclasses.dataclass
class Setting:
    callers: dict[str, Caller]
    #: URL values for GETs, by argument name: rows made here
    ids: dict[str, object]
    #: ids for POSTs: rows made to be acted on (a manager may act on their own merchant's rows only,
    #: and answers 403 for any other id); other POSTs get ids that do not exist
    spare_ids: dict[str, int]


def _set_up(app, db) -> Setting:
    world = make_world()
    usernames: dict[str, str] = {}
    for field in dataclasses.fields(world):
        user = getattr(world, field.name)
        if isinstance(user, User):
            usernames.setdefault(user.role, user.username)
    for role in ROLES:  # a role make_world does not know yet still gets a user, and its column
        if role not in usernames:
            usernames[role] = create_user(f"matrix_{role}", PASSWORD, Role(role)).username
    campaign, release = make_campaign(world)
    mine = claim_one(release, citizens.citizen_for(PHONE))
    redeemed = claim_one(release, make_citizen("matrix"))
    redemption = redeem(redeemed.code, 150_00, world.cashier).redemption
    _, terminal_token = terminals.issue_terminal_token(world.cashier.store_id, "矩阵终端", world.manager.id)
    db.session.add(Partner(name="矩阵渠道", key_id="pk_matrix"))
    spare_cashier = create_user("matrix_spare", PASSWORD, Role.CASHIER, merchant_id=world.merchant.id,
                                store_id=world.cashier.store_id)
    spare_terminal, _ = terminals.issue_terminal_token(world.cashier.store_id, "备用终端", world.manager.id)
    db.session.commit()

    callers = {"anonymous": Caller("anonymous", app.test_client())}
    for role in ROLES:
        callers[role] = _staff(app, usernames[role])
    callers["citizen"] = _citizen(app)
    callers["terminal"] = Caller("terminal", app.test_client(),
                                 headers=lambda *_: {"Authorization": f"Bearer {terminal_token}"})
    callers["partner"] = Caller("partner", app.test_client(), headers=_partner_headers("pk_matrix"))
    callers["metrics"] = Caller("metrics", app.test_client(),
                                headers=lambda *_: {"Authorization": f"Bearer {METRICS_TOKEN}"})
    ids = {"campaign_id": campaign.id, "release_id": release.id, "voucher_id": mine.id,
           "source_id": campaign.funding_sources[0].id, "redemption_id": redemption.id, "number": 1,
           "fmt": "csv", "filename": "app.css"}
    return Setting(callers, ids, {"user_id": spare_cashier.id, "terminal_id": spare_terminal.id})


def url_for_rule(rule: Rule, method: str, setting: Setting) -> str:
    values = {}
    for name in rule.arguments:
        converter = rule._converters[name]
        if isinstance(converter, AnyConverter):
            values[name] = sorted(converter.items)[0]
        elif isinstance(converter, IntegerConverter):
            values[name] = (setting.ids if method == "GET" else setting.spare_ids).get(name, MISSING_ID)
        else:
            values[name] = setting.ids.get(name, "matrix")
    _, path = rule.build(values, append_unknown=False)
    return path


def ask(caller: Caller, method: str, path: str, want: str) -> tuple[str, bool]:
    """Request `path` as `caller` (an empty form, or `{}` to the API); the answer, and whether it is `want`."""
    api = path.startswith("/api/")
    body = b"{}" if api and method != "GET" else b""
    try:
        response = caller.client.open(path, method=method, headers=caller.headers(method, path, body),
                                      data=body if api else {}, content_type="application/json" if body else None)
    except Exception as error:  # noqa: BLE001 - in testing the app's errors propagate: a 5xx
        return f"raised {type(error).__name__}: {error}".splitlines()[0][:120], False
    return described(response), meets(want, response)


# -- the matrix ------------------------------------------------------------------------------------------


@pytest.fixture
def tables(app):
    """The `db` fixture's clean-up without its app context: each request here has a context of its own,
    as in production, so no request finds the previous one's transaction (on SQLite, its write lock)."""
    yield _db
    with app.app_context():
        empty_tables(_db)


def test_access_matrix(app, tables, monkeypatch):
    # /metrics: no network is trusted here, so only the token opens it.
    monkeypatch.setitem(app.config, "METRICS_ALLOWED_NETWORKS", ())
    monkeypatch.setitem(app.config, "METRICS_TOKEN", METRICS_TOKEN)
    with app.app_context():
        setting = _set_up(app, tables)
        dialect = _db.engine.dialect.name
    for caller in setting.callers.values():
        if caller.sign_in:
            caller.sign_in()

    cases = [(rule, method) for rule in app.url_map.iter_rules() for method in methods_of(rule)]
    cases.sort(key=lambda case: (case[1] != "GET", case[0].rule, case[1]))  # GETs first: they change nothing
    failures, requests, known_seen = [], 0, set()
    for rule, method in cases:
        access = access_of(app, rule.endpoint)
        path = url_for_rule(rule, method, setting)
        for name in CALLERS:
            known = KNOWN_DEFECTS.get((method, rule.endpoint))
            if known and (name not in known.callers or known.dialect not in (None, dialect)):
                known = None
            if known and known in known_seen:
                continue  # asked once below: the same defect, and on SQLite a ten-second wait each time
            caller = setting.callers[name]
            want = expected(access, name) if access else "an access record on the view"
            got, ok = ask(caller, method, path, want)
            requests += 1
            if known:
                known_seen.add(known)
                if ok:
                    failures.append(f"{method:4} {path:50} {name:17} answers as it should now: delete its "
                                    "KNOWN_DEFECTS entry")
                else:
                    warnings.warn(f"known defect, {method} {rule.rule} as {name}: got {got}; {known.reason}",
                                  stacklevel=1)
            elif not ok:
                failures.append(f"{method:4} {path:50} {name:17} got {got:24} expected {want}")
            if method != "GET" and caller.is_signed_in and not caller.is_signed_in():
                caller.sign_in()  # 退出 (or a session ended otherwise): the next case needs a signed-in caller

    print(f"access matrix: {len(cases)} route x method, {len(CALLERS)} callers, {requests} requests")
    assert not failures, f"{len(failures)} of {requests} answers not as expected:\n" + "\n".join(failures)

