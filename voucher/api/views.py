"""JSON endpoints for store terminals (redemption, reversal) and channel partners (claims).

Each handler parses the request, calls one service, commits once, and answers in the one shape:
{"success": true, "data": ...} or {"success": false, "errors": [{"code", "message"}]} (see web.py).
"""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from voucher.api import auth
from voucher.api.spec import documented, openapi
from voucher.core.clock import to_local
from voucher.core.db import db
from voucher.core.errors import InvalidInput, NotFound
from voucher.merchants.models import Redemption
from voucher.merchants.redemption import redeem, reverse
from voucher.ops import limits
from voucher.vouchers import citizens, services as vouchers
from voucher.web import unit_of_work

bp = Blueprint("api", __name__, url_prefix="/api/v1")

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


def _json_body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidInput("请求体应为 JSON 对象")
    return body


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


def _positive_int(body: dict, key: str, label: str) -> int:
    value = body.get(key)
    if type(value) is not int or not 0 < value < 2**53:  # noqa: E721 - bool is an int subclass, refused too
        raise InvalidInput(f"{label}（{key}）应为正整数")
    return value


@bp.post("/redemptions")
@documented(
    "post", "/redemptions", summary="核销一张券（终端）", security="storeTerminal",
    parameters=[{"name": "Idempotency-Key", "in": "header", "required": True, "schema": {"type": "string", "maxLength": 64},
                 "description": "a retry with the same key returns the first answer and changes nothing"}],
    request={"type": "object", "required": ["code", "order_amount_fen"],
             "properties": {"code": {"type": "string", "description": "the scanned QR token or the typed code"},
                            "order_amount_fen": {"type": "integer", "minimum": 1}}},
    responses={201: ("redeemed", REDEMPTION), 200: ("a retry: the first answer", REDEMPTION),
               401: ("bad token", None), 409: ("already redeemed, expired, idempotency conflict...", None),
               422: ("invalid code or amount, threshold not met", None),
               429: ("too many requests from this address or terminal", None)},
)
@limits.redemption_ip
@limits.redemption_terminal
def create_redemption():
    terminal = auth.current_terminal()
    body = _json_body()
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key or len(key) > 64:
        raise InvalidInput("请提供 Idempotency-Key 请求头（不超过 64 个字符）")
    code = body.get("code")
    if not isinstance(code, str) or not code.strip():
        raise InvalidInput("请提供券码（code）")
    amount = _positive_int(body, "order_amount_fen", "订单金额")
    with unit_of_work():
        result = redeem(code, amount, terminal=terminal, idempotency_key=key)
        # Built before the commit, while the row is in hand: no reload afterwards.
        data = _redemption_json(result.redemption, result.replayed, result.voucher_code)
    return ok(data, 200 if result.replayed else 201)


@bp.get("/redemptions/<int:redemption_id>")
@documented("get", "/redemptions/{redemption_id}", summary="查询本店的一笔核销", security="storeTerminal",
            responses={200: ("the redemption", REDEMPTION), 404: ("not found at this store", None)})
def get_redemption(redemption_id: int):
    terminal = auth.current_terminal()
    redemption = db.session.get(Redemption, redemption_id)
    # Another store's redemption is "not found": a terminal learns nothing about other shops.
    if redemption is None or redemption.store_id != terminal.store_id:
        raise NotFound("找不到该核销记录")
    return ok(_redemption_json(redemption))


@bp.post("/redemptions/<int:redemption_id>/reversal")
@documented(
    "post", "/redemptions/{redemption_id}/reversal", summary="撤销核销（原门店，时限内）", security="storeTerminal",
    request={"type": "object", "required": ["reason"], "properties": {"reason": {"type": "string", "maxLength": 200}}},
    responses={200: ("reversed", REDEMPTION), 403: ("another store's redemption", None),
               409: ("already reversed, or the window has closed", None),
               429: ("too many requests from this address or terminal", None)},
)
@limits.redemption_ip
@limits.redemption_terminal
def reverse_redemption(redemption_id: int):
    terminal = auth.current_terminal()
    body = _json_body()
    with unit_of_work():
        redemption = reverse(redemption_id, reason=str(body.get("reason") or ""), terminal=terminal)
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


@bp.post("/channel/claims")
@documented(
    "post", "/channel/claims", summary="代已验证身份的市民领券（合作渠道）", security="partnerSignature",
    request={"type": "object", "required": ["release_id", "citizen"],
             "properties": {"release_id": {"type": "integer"},
                            "citizen": {"type": "object", "required": ["phone"],
                                        "properties": {"phone": {"type": "string", "description":
                                                                 "verified by the partner; stored only as a keyed hash"}}}}},
    responses={201: ("won: one voucher", CLAIM_RESULT), 401: ("bad signature, stale timestamp, reused nonce", None),
               409: ("sold_out, claim_limit_reached, release_not_open", None), 422: ("bad input", None),
               429: ("too many requests from this address or partner", None)},
)
@limits.channel_claim_ip
def channel_claim():
    partner = auth.current_partner()
    limits.channel_claim_partner(str(partner.id))
    body = _json_body()
    release_id = _positive_int(body, "release_id", "场次编号")
    citizen_body = body.get("citizen")
    if not isinstance(citizen_body, dict) or not isinstance(citizen_body.get("phone"), str):
        raise InvalidInput("请提供市民身份（citizen.phone）")
    vouchers.ensure_not_sold_out(release_id)
    with unit_of_work():
        citizen = citizens.citizen_for(citizen_body["phone"])
        voucher = vouchers.claim(release_id, citizen, actor_label=f"渠道:{partner.name}")
        data = {"result": "won", "voucher": {
            "code": voucher.code, "qr_token": vouchers.qr_token(voucher), "face_value_fen": voucher.face_value_fen,
            "valid_until": to_local(voucher.valid_until).isoformat()}}
    return ok(data, 201)


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(openapi())
