"""Citizen identity: a verified phone number becomes a keyed hash; the number itself is never stored."""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select

from voucher.core.clock import utcnow
from voucher.core.db import db
from voucher.core.upsert import cached, insert_or_lock
from voucher.core.errors import DomainError, InvalidInput, InvalidOneTimeCode
from voucher.vouchers.models import Citizen, OneTimeCode

_MOBILE = re.compile(r"^1[3-9]\d{9}$")
CODE_TTL = timedelta(minutes=5)
MAX_ATTEMPTS = 5
MAX_CODES_PER_WINDOW = 5
CODE_WINDOW = timedelta(minutes=10)


class TooManyCodes(DomainError):
    code = "too_many_codes"
    status = 429
    default_message = "验证码发送过于频繁，请 10 分钟后再试"


def normalise_phone(raw: str) -> str:
    phone = re.sub(r"[\s-]", "", raw or "")
    phone = phone.removeprefix("+86").removeprefix("0086")
    if not _MOBILE.match(phone):
        raise InvalidInput("请输入正确的 11 位手机号码")
    return phone


def identity_hash(phone: str) -> str:
    key: bytes = current_app.config["IDENTITY_HASH_KEY"]
    return hmac.new(key, f"phone:{phone}".encode(), hashlib.sha256).hexdigest()


def _code_hash(identity: str, code: str) -> str:
    key: bytes = current_app.config["IDENTITY_HASH_KEY"]
    return hmac.new(key, f"otp:{identity}:{code}".encode(), hashlib.sha256).hexdigest()


def request_code(raw_phone: str) -> str:
    """Create a one-time code for a phone and return it (for the SMS gateway, or the dev page)."""
    identity = identity_hash(normalise_phone(raw_phone))
    now = utcnow()
    recent = db.session.scalar(
        select(func.count(OneTimeCode.id)).where(
            OneTimeCode.identity_hash == identity, OneTimeCode.created_at > now - CODE_WINDOW
        )
    )
    if recent >= MAX_CODES_PER_WINDOW:
        raise TooManyCodes()
    code = f"{secrets.randbelow(1_000_000):06d}"
    db.session.add(OneTimeCode(identity_hash=identity, code_hash=_code_hash(identity, code), expires_at=now + CODE_TTL))
    return code


def verify_code(raw_phone: str, code: str) -> Citizen:
    """Check the latest code for the phone; on success return (creating if new) the citizen."""
    identity = identity_hash(normalise_phone(raw_phone))
    now = utcnow()
    challenge = db.session.scalar(
        select(OneTimeCode)
        .where(OneTimeCode.identity_hash == identity, OneTimeCode.used_at.is_(None))
        .order_by(OneTimeCode.id.desc())
        .limit(1)
        .with_for_update()
    )
    if challenge is None or challenge.expires_at < now or challenge.attempts >= MAX_ATTEMPTS:
        raise InvalidOneTimeCode("验证码错误或已过期，请重新获取")
    challenge.attempts += 1
    if not hmac.compare_digest(challenge.code_hash, _code_hash(identity, (code or "").strip())):
        raise InvalidOneTimeCode(f"验证码错误，还可尝试 {MAX_ATTEMPTS - challenge.attempts} 次")
    challenge.used_at = now
    return _citizen_with(identity)


def citizen_for(raw_phone: str) -> Citizen:
    """The citizen with a phone number a channel partner has already verified (created if new)."""
    return _citizen_with(identity_hash(normalise_phone(raw_phone)))


def _citizen_with(identity: str) -> Citizen:
    """Found or created in one statement; the same person arriving twice at once (two channels)
    gets the one row. The row stays locked to this transaction, which a claim needs anyway."""
    return db.session.scalar(
        cached("citizen_upsert", lambda: insert_or_lock(Citizen, "identity_hash").returning(Citizen)),
        {"identity_hash": identity, "created_at": utcnow()},
    )
