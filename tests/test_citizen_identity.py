"""The citizen identity hash as a key ring (HMAC-SHA256 or HMAC-SM3 per key id): a rotation must never
make one person two, so everything that finds a person by phone looks under every key of the ring."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.factories import claim_one, make_campaign, make_world
from voucher.config import parse_key_ring
from voucher.core import keyed_mac
from voucher.core.errors import ClaimLimitReached, InvalidOneTimeCode
from voucher.vouchers import citizens
from voucher.vouchers.models import Citizen, OneTimeCode
from voucher.vouchers.services import claim

PHONE = "13912345678"
FIRST = "i1:identity-key-one-0123456789"
SECOND = "i2:hmac-sm3:identity-key-two-abcdefghij"


def _ring(monkeypatch, app, text: str, active: str) -> None:
    monkeypatch.setitem(app.config, "IDENTITY_HASH_KEYS", parse_key_ring(text, "IDENTITY_HASH_KEYS"))
    monkeypatch.setitem(app.config, "IDENTITY_HASH_ACTIVE_KEY_ID", active)


def _sign_in(phone: str = PHONE) -> Citizen:
    return citizens.verify_code(phone, citizens.request_code(phone))


def test_a_rotated_ring_finds_the_same_citizen_and_the_limit_holds(app, db, monkeypatch):
    world = make_world()
    _, release = make_campaign(world, per_person_limit=1)
    _ring(monkeypatch, app, FIRST, "i1")
    first = _sign_in()
    claim_one(release, first)
    stored_under_first = first.identity_hash

    _ring(monkeypatch, app, f"{FIRST},{SECOND}", "i2")  # i2 (HMAC-SM3) now active, i1 still in the ring
    again = _sign_in()
    assert again.id == first.id and again.identity_hash == stored_under_first
    assert citizens.citizen_for(PHONE).id == first.id  # a channel partner's path too
    assert db.session.scalar(select(func.count(Citizen.id))) == 1
    with pytest.raises(ClaimLimitReached):
        claim(release.id, again)
    db.session.rollback()

    # Someone new is stored under the active key, with its algorithm.
    newcomer = _sign_in("13800000001")
    sm3_key = app.config["IDENTITY_HASH_KEYS"]["i2"]
    assert sm3_key.algorithm == keyed_mac.HMAC_SM3
    assert newcomer.identity_hash == keyed_mac.hexdigest(sm3_key, b"phone:13800000001")
    assert newcomer.identity_hash == citizens.identity_hash("13800000001")
    assert db.session.scalar(select(func.count(Citizen.id))) == 2


def test_a_code_sent_before_the_rotation_still_signs_in_after_it(app, db, monkeypatch):
    _ring(monkeypatch, app, FIRST, "i1")
    first = _sign_in()
    pending = citizens.request_code(PHONE)
    _ring(monkeypatch, app, f"{FIRST},{SECOND}", "i2")
    with pytest.raises(InvalidOneTimeCode):
        citizens.verify_code(PHONE, "000000" if pending != "000000" else "111111")
    assert citizens.verify_code(PHONE, pending).id == first.id


def test_the_code_limit_counts_codes_under_every_key(app, db, monkeypatch):
    _ring(monkeypatch, app, FIRST, "i1")
    for _ in range(citizens.MAX_CODES_PER_WINDOW - 1):
        citizens.request_code(PHONE)
    _ring(monkeypatch, app, f"{FIRST},{SECOND}", "i2")
    citizens.request_code(PHONE)
    with pytest.raises(citizens.TooManyCodes):
        citizens.request_code(PHONE)
    db.session.rollback()


def test_a_ring_of_one_keeps_the_hashes_of_the_single_key(app, db, monkeypatch):
    """IDENTITY_HASH_KEY (one key, HMAC-SHA256) as before: existing citizens keep their hash."""
    import hashlib
    import hmac

    monkeypatch.setitem(app.config, "IDENTITY_HASH_KEYS", {"default": b"prod-identity-key-77"})
    monkeypatch.setitem(app.config, "IDENTITY_HASH_ACTIVE_KEY_ID", "default")
    assert citizens.identity_hash(PHONE) == hmac.new(b"prod-identity-key-77", f"phone:{PHONE}".encode(),
                                                     hashlib.sha256).hexdigest()
    citizen = _sign_in()
    assert citizen.identity_hash == citizens.identity_hash(PHONE)
    assert db.session.scalar(select(OneTimeCode.identity_hash)) == citizen.identity_hash
