"""Citizen identity: a verified phone number becomes a keyed hash; the number itself is never stored.

The hash key is a ring (IDENTITY_HASH_KEYS), each key HMAC-SHA256 or HMAC-SM3. A new citizen is stored
under the active key; everything that finds a person by phone (the citizen, the one-time codes and their
per-person limit) looks under every key of the ring, so a rotation never makes one person two. A stored
hash does not name its key: the phone is never kept, so a row cannot be re-hashed under a new key, and
each key stays in the ring as long as citizens hashed under it may come back.
"""
from __future__ import annotations

import re
import secrets
from datetime import timedelta
from typing import NamedTuple

from flask import current_app
from sqlalchemy import bindparam, func, select, update

from voucher.core import keyed_mac
from voucher.core.clock import utcnow
from voucher.core.db import connection, db
from voucher.core.errors import DomainError, InvalidInput, InvalidOneTimeCode
from voucher.core.typed_text import clean
from voucher.core.upsert import cached, insert_or_lock
from voucher.vouchers.models import Citizen, OneTimeCode

# ASCII digits only: \d would also take other scripts' digits ("١٣٨..."), which would hash as another person.
_MOBILE = re.compile(r"^1[3-9][0-9]{9}$")
CODE_TTL = timedelta(minutes=5)
MAX_ATTEMPTS = 5
MAX_CODES_PER_WINDOW = 5
CODE_WINDOW = timedelta(minutes=10)


class TooManyCodes(DomainError):
    code = "too_many_codes"
    status = 429
    default_message = "验证码发送过于频繁，请 10 分钟后再试"


def normalise_phone(raw: str | None) -> str:
    """The 11 digits of a mainland mobile number as typed: full-width digits from a Chinese IME
    ("１３８００１３８０００"), spaces, dashes of any kind and a +86 / 0086 prefix are folded away first
    (core/typed_text.py), so one person is one number however it was typed."""
    phone = clean(raw).replace("-", "")
    phone = phone.removeprefix("+86").removeprefix("0086")
    if not _MOBILE.match(phone):
        raise InvalidInput("请输入正确的 11 位手机号码")
    return phone


class Identity:
    """A phone's hash under each key of the ring; `active` is the one a new row is stored under."""

    def __init__(self, phone: str) -> None:
        keys = current_app.config["IDENTITY_HASH_KEYS"]
        by_key_id = {kid: keyed_mac.hexdigest(key, f"phone:{phone}".encode()) for kid, key in keys.items()}
        self._keys = {by_key_id[kid]: key for kid, key in keys.items()}
        self.active = by_key_id[current_app.config["IDENTITY_HASH_ACTIVE_KEY_ID"]]

    @property
    def hashes(self) -> list[str]:
        return list(self._keys)

    def code_hash(self, identity_hash: str, code: str) -> str:
        """A one-time code's hash, under the key that made `identity_hash` (one of self.hashes)."""
        return keyed_mac.hexdigest(self._keys[identity_hash], f"otp:{identity_hash}:{code}".encode())


def identity_hash(phone: str) -> str:
    """The hash a new citizen with this phone is stored under (the active key)."""
    return Identity(phone).active


def request_code(raw_phone: str) -> str:
    """Create a one-time code for a phone and return it (for the SMS gateway, or the dev page)."""
    identity = Identity(normalise_phone(raw_phone))
    now = utcnow()
    recent = db.session.execute(
        select(func.count(OneTimeCode.id)).where(
            OneTimeCode.identity_hash.in_(identity.hashes), OneTimeCode.created_at > now - CODE_WINDOW
        )
    ).scalar_one()
    if recent >= MAX_CODES_PER_WINDOW:
        raise TooManyCodes()
    # A new code (a resend, or the number typed again) replaces the codes sent before it: only the
    # latest one can sign in, each with its own MAX_ATTEMPTS, and no more than MAX_CODES_PER_WINDOW of
    # them are sent in CODE_WINDOW, so resending never widens what a guesser gets.
    db.session.execute(
        update(OneTimeCode)
        .where(OneTimeCode.identity_hash.in_(identity.hashes), OneTimeCode.used_at.is_(None),
               OneTimeCode.expires_at > now)
        .values(expires_at=now)
    )
    code = f"{secrets.randbelow(1_000_000):06d}"
    db.session.add(OneTimeCode(identity_hash=identity.active, code_hash=identity.code_hash(identity.active, code),
                               expires_at=now + CODE_TTL))
    return code


def verify_code(raw_phone: str, code: str) -> Citizen:
    """Check the latest code for the phone; on success return (creating if new) the citizen."""
    identity = Identity(normalise_phone(raw_phone))
    now = utcnow()
    challenge = db.session.scalar(
        select(OneTimeCode)
        .where(OneTimeCode.identity_hash.in_(identity.hashes), OneTimeCode.used_at.is_(None))
        .order_by(OneTimeCode.id.desc())
        .limit(1)
        .with_for_update()
    )
    if challenge is None or challenge.expires_at <= now or challenge.attempts >= MAX_ATTEMPTS:
        raise InvalidOneTimeCode("验证码错误或已过期，请重新获取")
    challenge.attempts += 1
    if not keyed_mac.equal(challenge.code_hash, identity.code_hash(challenge.identity_hash, clean(code))):
        raise InvalidOneTimeCode(f"验证码错误，还可尝试 {MAX_ATTEMPTS - challenge.attempts} 次")
    challenge.used_at = now
    return _citizen_with(identity)


def citizen_for(raw_phone: str) -> Citizen:
    """The citizen with a phone number a channel partner has already verified (created if new)."""
    return _citizen_with(Identity(normalise_phone(raw_phone)))


class CitizenRef(NamedTuple):
    """What a claim needs of a citizen: the row's id and identity hash, without an ORM object."""

    id: int
    identity_hash: str


def citizen_ref_for(identity: Identity) -> CitizenRef:
    """citizen_for as plain values, for the channel claim (a flash crowd's busiest path), from the
    identity the claim has already hashed for the admission gate."""
    return _citizen_ref(identity)


def _citizen_with(identity: Identity) -> Citizen:
    return db.session.get_one(Citizen, _citizen_ref(identity).id)


_CITIZENS = Citizen.__table__
_UNDER_ANY_KEY = (
    select(_CITIZENS.c.id, _CITIZENS.c.identity_hash)
    .where(_CITIZENS.c.identity_hash.in_(bindparam("hashes", expanding=True)))
    .order_by(_CITIZENS.c.id).limit(1).with_for_update()
)


def _citizen_ref(identity: Identity) -> CitizenRef:
    """Found or created in one statement; the same person arriving twice at once (two channels)
    gets the one row. The row stays locked to this transaction, which a claim needs anyway.

    With more than one key in the ring, a person may be stored under an older key: they are looked for
    under every key first (the oldest row, should a misconfigured ring ever have made two), and only
    someone found under none is created, under the active key. Core statements: a flash crowd's
    channel claims run this, and an ORM object would cost more to build than the statement to run."""
    conn = connection()
    if len(identity.hashes) > 1:
        existing = conn.execute(_UNDER_ANY_KEY, {"hashes": identity.hashes}).first()
        if existing is not None:
            return CitizenRef(*existing)
    upsert = cached("citizen_upsert", lambda: insert_or_lock(_CITIZENS, "identity_hash").returning(
        _CITIZENS.c.id, _CITIZENS.c.identity_hash))
    return CitizenRef(*conn.execute(upsert, {"identity_hash": identity.active, "created_at": utcnow()}).one())
