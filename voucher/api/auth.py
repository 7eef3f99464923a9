"""Who is calling: a store terminal (bearer token) or a channel partner (signed request)."""
from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from datetime import timedelta

import redis
from flask import current_app, request
from sqlalchemy import Row, bindparam, delete, select

from voucher.api.models import Partner, PartnerNonce
from voucher.core import redis_store
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
    partner, nonce = signed_request()
    spend_nonce(partner, nonce)
    return partner


def signed_request() -> tuple[Row, str]:
    """The partner whose signature the request carries, and its nonce, still to be spent (spend_nonce,
    or nonce_step in the admission gate's round trip)."""
    headers = request.headers
    nonce = headers.get("X-Nonce", "")
    partner = signed_partner(headers.get("X-Partner-Key", ""), headers.get("X-Timestamp", ""), nonce,
                             headers.get("X-Signature", ""), request.method, request.path, request.get_data())
    return partner, nonce


def nonce_step(partner: Row, nonce: str) -> redis_store.Step:
    """Spending the nonce as a step of the admission gate's script: the same key and lifetime as
    spend_nonce_in_redis; spend_nonce when that Redis cannot run it."""
    return redis_store.Step("once", _nonce_key(partner.id, nonce), 2 * current_app.config["PARTNER_REPLAY_WINDOW_SECONDS"],
                            0, refused=_replayed, usual=lambda: spend_nonce(partner, nonce))


def _replayed() -> Unauthenticated:
    return Unauthenticated("重复的请求（随机数已使用）")


def spend_nonce(partner: Row, nonce: str) -> None:
    """Spend the nonce in the shared Redis, or in the database without it; Unauthenticated if it was
    spent before."""
    spent = spend_nonce_in_redis(partner.id, nonce)
    if spent is False:
        raise _replayed()
    if spent:
        return
    inserted = connection().execute(
        cached("insert_nonce", lambda: insert_ignore(PartnerNonce.__table__).returning(PartnerNonce.__table__.c.id)),
        {"partner_id": partner.id, "nonce": nonce, "seen_at": utcnow()},
    ).scalar()
    if inserted is None:
        raise _replayed()
    # The nonce is spent whatever the request's own outcome: committed on its own, so a refused
    # request (sold out, not open yet) cannot be replayed later to succeed.
    db.session.commit()


def signed_partner(key_id: str, timestamp: str, nonce: str, given: str, method: str, path: str, body: bytes,
                   partner_of: Callable[[str], Row | None] | None = None) -> Row:
    """The partner whose signature this is (known, active, fresh timestamp), or Unauthenticated. The
    nonce is checked apart (current_partner, api/fast_lane.py). `partner_of` finds the partner's row
    (default: the cache, then the database)."""
    if not (key_id and timestamp and nonce and given):
        raise Unauthenticated("缺少签名请求头（X-Partner-Key、X-Timestamp、X-Nonce、X-Signature）")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12) or len(nonce) > 64:
        raise Unauthenticated("时间戳或随机数格式不正确")
    window = current_app.config["PARTNER_REPLAY_WINDOW_SECONDS"]
    if abs(time.time() - int(timestamp)) > window:
        raise Unauthenticated(f"请求时间戳超出 {window} 秒有效窗口")
    partner = (partner_of or _partner)(key_id)
    if partner is None or not partner.is_active_partner:
        raise Unauthenticated("合作方未知或已停用")
    expected = signature(partner_secret(key_id), method, path, timestamp, nonce, body)
    if not hmac.compare_digest(expected.encode(), given.lower().encode()):
        raise Unauthenticated("签名校验失败")
    return partner


#: with the shared Redis, a partner's row is kept this long in each process, so a flash crowd's claims do
#: not read it from PostgreSQL each time: a partner switched off stops within this many seconds
PARTNER_CACHE_SECONDS = 5.0
_partners: dict[str, tuple[float, Row | None]] = {}


def _partner(key_id: str) -> Row | None:
    if not redis_store.enabled():
        return connection().execute(_PARTNER_BY_KEY, {"key_id": key_id}).first()
    now = time.monotonic()
    kept = _partners.get(key_id)
    if kept is not None and now - kept[0] < PARTNER_CACHE_SECONDS:
        return kept[1]
    row = connection().execute(_PARTNER_BY_KEY, {"key_id": key_id}).first()
    if len(_partners) > 10_000:  # made-up key ids must not grow it without end
        _partners.clear()
    _partners[key_id] = (now, row)
    return row


def cached_partner(key_id: str) -> Row | None:
    """The partner's row if this process has it fresh in its cache; None otherwise (nothing is read)."""
    kept = _partners.get(key_id)
    return kept[1] if kept is not None and time.monotonic() - kept[0] < PARTNER_CACHE_SECONDS else None


def forget_partners() -> None:
    """For tests whose partners' ids start over."""
    _partners.clear()


def spend_nonce_in_redis(partner_id: int, nonce: str) -> bool | None:
    """With the shared Redis: True if the nonce was unused (now spent), False if seen before; None when
    there is no Redis to ask, and the nonce goes to the database as before. Kept twice the window, as
    the database keeps them; a Redis that restarts forgets them, so within one window a captured request
    could be replayed once: the only partner call is a claim, and a claim replayed meets the per-person
    limit. A partner call that moves money must check its nonce in the database instead."""
    client = redis_store.CLIENT.get()
    if client is None:
        return None
    window = current_app.config["PARTNER_REPLAY_WINDOW_SECONDS"]
    try:
        return bool(client.set(_nonce_key(partner_id, nonce), b"1", nx=True, ex=2 * window))
    except redis.RedisError as error:
        redis_store.CLIENT.failed(error)
        return None


def _nonce_key(partner_id: int, nonce: str) -> str:
    return f"{current_app.config.get('ADMISSION_KEY_PREFIX', 'voucher')}:nonce:{partner_id}:{nonce}"


def prune_nonces() -> int:
    """Drop nonces older than twice the window: the timestamp check already refuses their requests.
    Kept off the claim path; run it from the scheduler or the CLI."""
    window = current_app.config["PARTNER_REPLAY_WINDOW_SECONDS"]
    result = db.session.execute(
        delete(PartnerNonce).where(PartnerNonce.seen_at < utcnow() - timedelta(seconds=2 * window))
    )
    return rowcount(result) or 0
