"""JSON endpoints for store terminals (redemption, reversal) and channel partners (claims).

Each handler parses the request, calls one service, commits once, and answers in the one shape:
{"success": true, "data": ...} or {"success": false, "errors": [{"code", "message"}]} (see web.py).
"""
from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import Row, bindparam, select
from werkzeug.exceptions import HTTPException

from voucher.api import auth
from voucher.api.body import NOT_BLANK, Integer, Text, json_object, limit_body
from voucher.api.spec import MAX_ID, documented, openapi
from voucher.core import redis_store
from voucher.core.clock import to_local
from voucher.core.db import db
from voucher.core.errors import DomainError, InvalidInput, NotFound, SoldOut
from voucher.core.permissions import public
from voucher.counter.redemption import MAX_ORDER_FEN, redeem, reverse
from voucher.merchants.models import Redemption
from voucher.ops import limits
from voucher.vouchers import admission
from voucher.vouchers import services as vouchers
from voucher.web import unit_of_work

bp = Blueprint("api", __name__, url_prefix="/api/v1")
bp.before_request(limit_body)

REDEMPTION = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "voucher_code": {"type": "string"},
        "order_amount_fen": {"type": "integer"},
        "subsidy_fen": {"type": "integer"},
        "paid_by_citizen_fen": {"type": "integer"},
        "created_at": {"type": "string", "format": "date-time"},
        "reversed_at": {"type": ["string", "null"], "format": "date-time"},
        "replayed": {"type": "boolean", "description": "true when this repeats an earlier request's answer"},
    },
}


def ok(data, status: int = 200):
    return jsonify(success=True, data=data), status


def _redemption_json(redemption: Redemption, replayed: bool = False, voucher_code: str | None = None) -> dict:
    return {
        "id": redemption.id,
        "voucher_code": voucher_code or redemption.voucher.code,
        "order_amount_fen": redemption.order_amount_fen,
        "subsidy_fen": redemption.subsidy_fen,
        "paid_by_citizen_fen": redemption.paid_by_citizen_fen,
        "created_at": to_local(redemption.created_at).isoformat(),
        "reversed_at": to_local(redemption.reversed_at).isoformat() if redemption.reversed_at else None,
        "replayed": replayed,
    }


# The fields, each declared once: the schema in the description and the check in the handler.
IDEMPOTENCY_KEY = Text("请求编号", max_length=64, pattern="[!-~]{1,64}",
                       pattern_message="请提供 Idempotency-Key 请求头：1 到 64 个可见 ASCII 字符，不含空格",
                       description="printable ASCII without spaces; a retry with the same key returns the first "
                       "answer and changes nothing")
CODE = Text("券码", max_length=200, pattern=NOT_BLANK, pattern_message="请提供券码（code）",
            description="the scanned QR token (LYGV1.…) or the typed 11-character code; one that does not verify "
            "is answered 422 invalid_token, an unknown one 404 voucher_not_found")
ORDER_AMOUNT = Integer("订单金额", minimum=1, maximum=MAX_ORDER_FEN, description="the whole order, in fen")
REASON = Text("撤销原因", max_length=200, pattern=NOT_BLANK, pattern_message="请填写撤销原因")
RELEASE_ID = Integer("场次编号", minimum=1, maximum=MAX_ID)
#: a mainland mobile number, as verified by the partner: 11 digits, optionally after +86 or 0086
PHONE = Text("市民手机号", max_length=15, min_length=11, pattern="(?:\\+86|0086)?1[3-9][0-9]{9}",
             pattern_message="市民手机号（citizen.phone）应为 11 位手机号码，可带 +86 或 0086 前缀",
             description="verified by the partner; stored only as a keyed hash")


@bp.post("/redemptions")
@documented(
    "post", "/redemptions", summary="核销一张券（终端）", security="storeTerminal",
    parameters=[{"name": "Idempotency-Key", "in": "header", "required": True, "schema": IDEMPOTENCY_KEY.schema(),
                 "description": IDEMPOTENCY_KEY.description}],
    request={"type": "object", "required": ["code", "order_amount_fen"],
             "properties": {"code": CODE.schema(), "order_amount_fen": ORDER_AMOUNT.schema()}},
    responses={201: ("redeemed", REDEMPTION), 200: ("a retry: the first answer", REDEMPTION),
               403: ("the merchant is not approved or suspended, or the voucher is not usable at this store "
                     "(forbidden, merchant_not_eligible)", None),
               404: ("no voucher with this code (voucher_not_found)", None),
               409: ("already redeemed, not claimed, expired, not yet valid, campaign not active, outside usable "
                     "hours, idempotency conflict, concurrent change", None),
               422: ("a field outside its schema or the body refused (invalid_input), a code that does not verify "
                     "(invalid_token), threshold not met (threshold_not_met)", None),
               429: ("too many requests from this address or terminal (rate_limited)", None)},
)
@limits.redemption_ip
@limits.redemption_terminal
def create_redemption():
    terminal = auth.current_terminal()
    body = json_object()
    key = IDEMPOTENCY_KEY.check(request.headers.get("Idempotency-Key", ""), "Idempotency-Key")
    code = CODE.read(body, "code")
    amount = ORDER_AMOUNT.read(body, "order_amount_fen")
    with unit_of_work():
        result = redeem(code, amount, terminal=terminal, idempotency_key=key)
        # Built before the commit, while the row is in hand: no reload afterwards.
        data = _redemption_json(result.redemption, result.replayed, result.voucher_code)
    return ok(data, 200 if result.replayed else 201)


def _not_found() -> NotFound:
    # Another store's redemption is "not found", in the same words as a missing one, whatever the
    # terminal asks of it: a terminal learns nothing about other shops, not even that a number is taken.
    return NotFound("找不到该核销记录")


_STORE_OF_REDEMPTION = select(Redemption.store_id).where(Redemption.id == bindparam("redemption_id"))


@bp.get("/redemptions/<int:redemption_id>")
@documented("get", "/redemptions/{redemption_id}", summary="查询本店的一笔核销", security="storeTerminal",
            responses={200: ("the redemption", REDEMPTION),
                       404: ("no such redemption at this store: another store's is not found either", None)})
def get_redemption(redemption_id: int):
    terminal = auth.current_terminal()
    redemption = db.session.get(Redemption, redemption_id)
    if redemption is None or redemption.store_id != terminal.store_id:
        raise _not_found()
    return ok(_redemption_json(redemption))


@bp.post("/redemptions/<int:redemption_id>/reversal")
@documented(
    "post", "/redemptions/{redemption_id}/reversal", summary="撤销核销（原门店，时限内）", security="storeTerminal",
    request={"type": "object", "required": ["reason"], "properties": {"reason": REASON.schema()}},
    responses={200: ("reversed", REDEMPTION),
               404: ("no such redemption at this store: another store's is not found either", None),
               409: ("already reversed, settled, the window has closed, the campaign has ended, the budget cannot "
                     "take the voucher back, concurrent change", None),
               429: ("too many requests from this address or terminal (rate_limited)", None)},
)
@limits.redemption_ip
@limits.redemption_terminal
def reverse_redemption(redemption_id: int):
    terminal = auth.current_terminal()
    reason = REASON.read(json_object(), "reason")
    # Checked here, before the service (which answers 403 to a cashier of another store on the counter page).
    if db.session.execute(_STORE_OF_REDEMPTION, {"redemption_id": redemption_id}).scalar() != terminal.store_id:
        raise _not_found()
    with unit_of_work():
        redemption = reverse(redemption_id, reason=reason, terminal=terminal)
    return ok(_redemption_json(redemption))


CLAIM_RESULT = {
    "type": "object",
    "properties": {
        "result": {"const": "won"},
        "voucher": {"type": "object", "properties": {
            "code": {"type": "string"}, "qr_token": {"type": "string"},
            "face_value_fen": {"type": "integer"}, "valid_until": {"type": "string", "format": "date-time"}}},
    },
}


CLAIM_ANSWERS = {
    201: ("won: one voucher", CLAIM_RESULT),
    401: ("bad signature, stale timestamp, reused nonce, unknown partner (unauthenticated)", None),
    404: ("no such release (not_found)", None),
    409: ("sold_out, claim_limit_reached, release_not_open, concurrent change", None),
    429: ("too many requests from this address or partner (rate_limited), or the release's waiting "
          "room (queued: come back after Retry-After seconds; the place in the queue is kept)", None)}
CITIZEN = {"type": "object", "required": ["phone"], "properties": {"phone": PHONE.schema()}}


@bp.post("/channel/claims")
@documented(
    "post", "/channel/claims", summary="代已验证身份的市民领券（合作渠道）", security="partnerSignature",
    request={"type": "object", "required": ["release_id", "citizen"],
             "properties": {"release_id": RELEASE_ID.schema(), "citizen": CITIZEN}},
    responses=CLAIM_ANSWERS,
)
def channel_claim():
    return _claim(read_claim)


@bp.post("/channel/releases/<int:release_id>/claims")
@documented(
    "post", "/channel/releases/{release_id}/claims", summary="代已验证身份的市民领券（场次在路径中）",
    security="partnerSignature",
    request={"type": "object", "required": ["citizen"], "properties": {"citizen": CITIZEN}},
    responses=CLAIM_ANSWERS,
)
def channel_release_claim(release_id: int):
    """The same claim with the release in the path, where the reverse proxy can read it: once the
    release is finally sold out, the proxy answers its late arrivals itself (edge_claims)."""
    return _claim(lambda body: (release_id, read_citizen(body)))


def _claim(read: Callable[[dict], tuple[int, str]]):
    partner, first = _claim_checks()
    try:
        release_id, phone = read(json_object())
    except (DomainError, HTTPException):
        _make(first)  # a malformed claim is counted and spends its nonce all the same
        raise
    if not first:
        vouchers.ensure_not_sold_out(release_id)
    try:
        data = _won(partner, release_id, phone, first)
    except admission.ChecksNotMade as undone:  # Redis failed: each check made apart, then the database path
        _make(undone.steps)
        data = _won(partner, release_id, phone, [])
    return ok(data, 201)


def _won(partner: Row, release_id: int, phone: str, first: list[redis_store.Step]) -> dict:
    with unit_of_work():
        voucher = vouchers.claim_by_phone(release_id, phone, actor_label=f"渠道:{partner.name}", first=first)
        return {"result": "won", "voucher": {
            "code": voucher.code, "qr_token": vouchers.qr_token(voucher), "face_value_fen": voucher.face_value_fen,
            # a claimed voucher always has its validity (only an unclaimed one may wait for it)
            "valid_until": to_local(voucher.valid_until).isoformat() if voucher.valid_until else None}}


def _make(checks: list[redis_store.Step]) -> None:
    for check in checks:
        check.usual()


def _claim_checks() -> tuple[Row, list[redis_store.Step]]:
    """The claim's checks, in this order: the client address's allowance, the partner's signature, its
    nonce, the partner's allowance. Returns the partner, and the checks still to make: for a partner this
    process knows (auth.cached_partner: the signature is then checked without the database) and the rate
    limits counted in the admission gate's Redis, the address, nonce and partner checks go into the
    gate's script (one round trip for the whole claim, vouchers/admission.py admit); otherwise each is
    made here, the address first, and none is left."""
    redis_url = current_app.config.get("ADMISSION_REDIS_URL")
    known = (auth.cached_partner(request.headers.get("X-Partner-Key", ""))
             if redis_url and not redis_store.CLIENT.degraded else None)
    counts = limits.channel_claim_steps(str(known.id), redis_url) if known is not None and redis_url else None
    if counts is None:
        limits.channel_claim_address()
        partner = auth.current_partner()
        limits.channel_claim_partner(str(partner.id))
        return partner, []
    try:
        partner, nonce = auth.signed_request()
    except auth.Unauthenticated:
        limits.channel_claim_address()  # a bad signature counts against its address, as ever
        raise
    address, partner_count = counts
    return partner, [*address, auth.nonce_step(partner, nonce), *partner_count]


def read_claim(body: dict) -> tuple[int, str]:
    """A channel claim's release and citizen's phone number, or InvalidInput (also api/fast_lane.py's)."""
    return RELEASE_ID.read(body, "release_id"), read_citizen(body)


def read_citizen(body: dict) -> str:
    citizen_body = body.get("citizen")
    if not isinstance(citizen_body, dict):
        raise InvalidInput("请提供市民身份（citizen.phone）")
    return PHONE.read(citizen_body, "phone")


@bp.get("/edge/releases/<int:release_id>/claims")
@public
def edge_claims(release_id: int):
    """For the reverse proxy only (deploy/nginx-claims-edge.conf, its auth_request, cached a second):
    200 while a claim for the release may still win, 403 once it can only be `sold_out`. The proxy then
    answers the late arrivals of a flash crowd itself, without reaching Python. Not part of the partners'
    API (nginx does not pass it from outside); what it says is public (the citizen page shows what is left)."""
    if vouchers.finally_sold_out(release_id):
        return jsonify(success=False, errors=[{"code": SoldOut.code, "message": SoldOut.default_message}]), 403
    return ok({"finally_sold_out": False})


@bp.get("/openapi.json")
@public
def openapi_json():
    return jsonify(openapi())
