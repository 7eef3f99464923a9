"""Who is calling: a store terminal (bearer token) or a channel partner (signed request)."""
from __future__ import annotations

import hashlib
import hmac
import time
from datetime import timedelta

from flask import current_app, request
from sqlalchemy import Row, bindparam, delete, select

from voucher.api.models import Partner, PartnerNonce
from voucher.core.clock import utcnow
from voucher.core.db import connection, db, rowcount
from voucher.core.errors import DomainError
from voucher.core.upsert import cached, insert_ignore
from voucher.counter.redemption import TERMINAL_BY_TOKEN, Terminal
from voucher.merchants.terminals import hash_token


class Unauthenticated(DomainError):
    code = "unauthenticated"
    status = 401
    default_message = "身份验证失败"


def current_terminal() -> Terminal:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        raise Unauthenticated("缺少终端令牌（Authorization: Bearer …）")
    row = connection().execute(TERMINAL_BY_TOKEN, {"token_hash": hash_token(header[7:].strip())}).first()
    if row is None:
        raise Unauthenticated("终端令牌无效或已停用")
    return Terminal(*row)


def partner_secret(key_id: str) -> str:
    return hmac.new(current_app.config["PARTNER_MASTER_KEY"], f"partner:{key_id}".encode(), hashlib.sha256).hexdigest()


def signature(secret: str, method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    message = "\n".join([method.upper(), path, timestamp, nonce, hashlib.sha256(body).hexdigest()])
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


_PARTNER_BY_KEY = select(
    Partner.__table__.c.id, Partner.__table__.c.name, Partner.__table__.c.is_active_partner
).where(Partner.__table__.c.key_id == bindparam("key_id"))


def current_partner() -> Row:
    """Check the signed request: known active partner, fresh timestamp, good signature, unused nonce.
    Returns the partner's id and name (a row, not an ORM object: every claim reads it)."""
    key_id = request.headers.get("X-Partner-Key", "")
    timestamp = request.headers.get("X-Timestamp", "")
    nonce = request.headers.get("X-Nonce", "")
    given = request.headers.get("X-Signature", "")
    if not (key_id and timestamp and nonce and given):
        raise Unauthenticated("缺少签名请求头（X-Partner-Key、X-Timestamp、X-Nonce、X-Signature）")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12) or len(nonce) > 64:
        raise Unauthenticated("时间戳或随机数格式不正确")
    window = current_app.config["PARTNER_REPLAY_WINDOW_SECONDS"]
    if abs(time.time() - int(timestamp)) > window:
        raise Unauthenticated(f"请求时间戳超出 {window} 秒有效窗口")
    partner = connection().execute(_PARTNER_BY_KEY, {"key_id": key_id}).first()
    if partner is None or not partner.is_active_partner:
        raise Unauthenticated("合作方未知或已停用")
    expected = signature(partner_secret(key_id), request.method, request.path, timestamp, nonce, request.get_data())
    if not hmac.compare_digest(expected.encode(), given.lower().encode()):
        raise Unauthenticated("签名校验失败")
    inserted = connection().execute(
        cached("insert_nonce", lambda: insert_ignore(PartnerNonce.__table__).returning(PartnerNonce.__table__.c.id)),
        {"partner_id": partner.id, "nonce": nonce, "seen_at": utcnow()},
    ).scalar()
    if inserted is None:
        raise Unauthenticated("重复的请求（随机数已使用）")
    # The nonce is spent whatever the request's own outcome: committed on its own, so a refused
    # request (sold out, not open yet) cannot be replayed later to succeed.
    db.session.commit()
    return partner


def prune_nonces() -> int:
    """Drop nonces older than twice the window: the timestamp check already refuses their requests.
    Kept off the claim path; run it from the scheduler or the CLI."""
    window = current_app.config["PARTNER_REPLAY_WINDOW_SECONDS"]
    result = db.session.execute(
        delete(PartnerNonce).where(PartnerNonce.seen_at < utcnow() - timedelta(seconds=2 * window))
    )
    return rowcount(result) or 0
