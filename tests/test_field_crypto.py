"""Settlement bank account numbers encrypted at rest (voucher/core/field_crypto.py): AES-256-GCM or SM4-GCM
per key id, bound to the column's purpose, rotatable by `flask crypto rotate-fields`, shown masked on
pages and in full only in the payout file the bank imports."""
from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import String, select, text, type_coerce

from tests.conftest import ORDINARY_NOW, pin_ordinary_time
from tests.factories import PASSWORD, claim_one, make_campaign, make_citizen, make_world
from voucher.config import DEV_FIELD_ENCRYPTION_KEYS, parse_field_keys
from voucher.core import field_crypto
from voucher.core.audit import AuditEntry
from voucher.core.clock import local_day_start_utc
from voucher.core.field_crypto import EncryptedString, FieldDecryptionError, FieldKey
from voucher.core.masking import mask_account_no
from voucher.counter.redemption import redeem
from voucher.merchants.models import Merchant
from voucher.settlement import batches as settlement
from voucher.settlement import payout_files

pytestmark = pin_ordinary_time
YESTERDAY = ORDINARY_NOW.date() - timedelta(days=1)
ACCOUNT = "6217001234567890123"
SM4_RING = "f2:sm4-gcm:" + base64.b64encode(b"sm4-test-key-16b").decode()
AES_KEY = FieldKey("aes-256-gcm", bytes(range(32)))
SM4_KEY = FieldKey("sm4-gcm", bytes(range(16)))


# The cipher --------------------------------------------------------------------------------------


def test_sm4_gcm_known_answer():
    """RFC 8998, appendix A.1 (SM4-GCM)."""
    key = FieldKey("sm4-gcm", bytes.fromhex("0123456789ABCDEFFEDCBA9876543210"))
    nonce = bytes.fromhex("00001234567800000000ABCD")
    aad = bytes.fromhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2")
    plaintext = bytes.fromhex("AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD"
                              "EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA")
    sealed = field_crypto.seal(key, nonce, plaintext, aad)
    assert sealed[12:-16].hex().upper() == (
        "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735"
        "D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D")
    assert sealed[-16:].hex().upper() == "83DE3541E4C2B58177E065A9BF7B62EC"
    assert field_crypto.open_sealed(key, sealed, aad) == plaintext


def test_aes_256_gcm_known_answer():
    """McGrew and Viega's GCM specification, test case 14 (AES-256, zero key and nonce)."""
    key = FieldKey("aes-256-gcm", bytes(32))
    sealed = field_crypto.seal(key, bytes(12), bytes(16), b"")
    assert sealed[12:-16].hex() == "cea7403d4d606b6e074ec5d3baf39d18"
    assert sealed[-16:].hex() == "d0d1c8a799996bf0265b98b5d48ab919"


@pytest.mark.parametrize("key", [AES_KEY, SM4_KEY], ids=["aes-256-gcm", "sm4-gcm"])
def test_round_trip_and_format(key):
    keys = {"k1": key}
    stored = field_crypto.encrypt(ACCOUNT, "t.purpose", keys, "k1")
    version, kid, body = stored.split(".")
    assert (version, kid) == ("v1", "k1") and ACCOUNT not in stored
    assert len(base64.b64decode(body)) == 12 + len(ACCOUNT) + 16
    assert field_crypto.encrypt(ACCOUNT, "t.purpose", keys, "k1") != stored  # a fresh nonce each time
    assert field_crypto.decrypt(stored, "t.purpose", keys) == ACCOUNT
    assert field_crypto.decrypt(field_crypto.encrypt("", "t.purpose", keys, "k1"), "t.purpose", keys) == ""


def test_what_cannot_be_decrypted_is_an_error_never_a_guess():
    keys = {"k1": AES_KEY, "k2": SM4_KEY}
    stored = field_crypto.encrypt(ACCOUNT, "merchants.bank_account_no", keys, "k1")
    with pytest.raises(FieldDecryptionError, match="从其他字段复制"):
        field_crypto.decrypt(stored, "users.totp_secret", keys)  # copied into a column of another purpose
    with pytest.raises(FieldDecryptionError, match="不在 FIELD_ENCRYPTION_KEYS"):
        field_crypto.decrypt(stored, "merchants.bank_account_no", {"k2": SM4_KEY})
    with pytest.raises(FieldDecryptionError):
        field_crypto.decrypt(stored.replace("v1.k1.", "v1.k2.", 1), "merchants.bank_account_no", keys)
    body = bytearray(base64.b64decode(stored.split(".")[2]))
    body[15] ^= 1
    with pytest.raises(FieldDecryptionError) as info:
        field_crypto.decrypt("v1.k1." + base64.b64encode(bytes(body)).decode(), "merchants.bank_account_no", keys)
    assert ACCOUNT not in str(info.value)
    for garbage in (ACCOUNT, "v1.k1.", "v1.k1.!!!", "v1.k1.AAAA", "v2.k1." + stored.split(".")[2]):
        with pytest.raises(FieldDecryptionError):
            field_crypto.decrypt(garbage, "merchants.bank_account_no", keys)


def test_masking():
    assert mask_account_no("6217 0012 3456 7890 123") == "6217 **** **** 0123"
    assert mask_account_no("62220200") == "**** 0200"
    assert mask_account_no("1234") == "****"
    assert mask_account_no(None) == mask_account_no("") == ""


# In the database -------------------------------------------------------------------------------------


def _raw(db, merchant_id: int) -> str:
    return db.session.execute(text("SELECT bank_account_no FROM merchants WHERE id = :id"), {"id": merchant_id}).scalar()


def test_the_database_row_holds_ciphertext_and_the_model_the_number(app, db):
    world = make_world()
    world.merchant.bank_account_no = ACCOUNT
    db.session.commit()
    stored = _raw(db, world.merchant.id)
    assert ACCOUNT not in stored and stored.startswith(f"v1.{app.config['FIELD_ENCRYPTION_ACTIVE_KEY_ID']}.")
    db.session.expire_all()
    assert db.session.get(Merchant, world.merchant.id).bank_account_no == ACCOUNT
    # The ciphertext moved into a column of another purpose does not read as that column's value.
    coerced = select(type_coerce(type_coerce(Merchant.bank_account_no, String), EncryptedString("users.totp_secret")))
    with pytest.raises(FieldDecryptionError):
        db.session.scalar(coerced.where(Merchant.id == world.merchant.id))


def test_the_encrypted_column_cannot_be_searched(db):
    with pytest.raises(TypeError, match="加密字段"):
        select(Merchant).where(Merchant.bank_account_no == ACCOUNT)
    with pytest.raises(TypeError, match="加密字段"):
        select(Merchant).order_by(Merchant.bank_account_no.desc())
    make_world()
    assert db.session.scalars(select(Merchant.id).where(Merchant.bank_account_no.is_not(None))).all()
    assert not db.session.scalars(select(Merchant.id).where(Merchant.bank_account_no == None)).all()  # IS NULL: allowed


def _one_payout_file(world):
    _, release = make_campaign(world, valid_from=YESTERDAY - timedelta(days=5), quantity=5)
    noon = local_day_start_utc(YESTERDAY) + timedelta(hours=12)
    redeem(claim_one(release, make_citizen("a")).code, 150_00, world.cashier, now=noon)
    settlement.build_batches(YESTERDAY, world.finance)
    return payout_files.create(world.finance)


def test_the_payout_file_has_the_full_number_the_pages_and_audit_log_do_not(app, db, client):
    world = make_world()
    world.merchant.bank_account_no = ACCOUNT
    db.session.commit()
    file = _one_payout_file(world)
    db.session.commit()
    assert ACCOUNT.encode() in file.csv_bytes  # the bank needs the whole number
    audit_text = " ".join(str(row) for row in db.session.execute(select(AuditEntry.before, AuditEntry.after)))
    assert ACCOUNT not in audit_text
    for username in ("approver", "finance", "auditor"):
        client.post("/logout")
        assert client.post("/login", data={"username": username, "password": PASSWORD}).status_code == 302
        page = client.get("/merchants").get_data(as_text=True)
        assert "6217 **** **** 0123" in page and ACCOUNT not in page, username
        payout_page = client.get(f"/finance/settlement/payout-files/{file.id}").get_data(as_text=True)
        assert ACCOUNT not in payout_page


def test_rotation_re_encrypts_every_value_and_the_old_key_can_then_go(app, db, monkeypatch):
    world = make_world()
    world.merchant.bank_account_no = ACCOUNT
    db.session.commit()
    old_id = app.config["FIELD_ENCRYPTION_ACTIVE_KEY_ID"]
    old_ring = app.config["FIELD_ENCRYPTION_KEYS"]
    merchants = db.session.scalars(select(Merchant.id).order_by(Merchant.id)).all()
    assert len(merchants) == 3 and all(_raw(db, m).startswith(f"v1.{old_id}.") for m in merchants)

    monkeypatch.setitem(app.config, "FIELD_ENCRYPTION_KEYS", {**old_ring, **parse_field_keys(SM4_RING)})
    monkeypatch.setitem(app.config, "FIELD_ENCRYPTION_ACTIVE_KEY_ID", "f2")
    db.session.add(Merchant(name="新商户", uscc="91320706MA5NEW0011", category="餐饮", bank_account_no="6222000011112222"))
    db.session.commit()  # written under the new key; the others still under the old one
    result = app.test_cli_runner().invoke(args=["crypto", "rotate-fields"])
    assert result.exit_code == 0, result.output
    assert f"merchants.bank_account_no：共 4 个值，重新加密 3 个（原密钥 {old_id} 3 个）" in result.output
    assert "现已使用密钥 f2" in result.output
    assert all(_raw(db, m).startswith("v1.f2.") for m in db.session.scalars(select(Merchant.id)))

    # The old key leaves the ring: everything still reads, the payout file still has the number.
    monkeypatch.setitem(app.config, "FIELD_ENCRYPTION_KEYS", parse_field_keys(SM4_RING))
    db.session.expire_all()
    assert db.session.get(Merchant, world.merchant.id).bank_account_no == ACCOUNT
    file = _one_payout_file(world)
    assert ACCOUNT.encode() in file.csv_bytes
    db.session.rollback()
    again = app.test_cli_runner().invoke(args=["crypto", "rotate-fields"])
    assert "共 4 个值，重新加密 0 个" in again.output


def test_without_the_rotation_the_old_key_cannot_go(app, db, monkeypatch):
    world = make_world()
    monkeypatch.setitem(app.config, "FIELD_ENCRYPTION_KEYS", parse_field_keys(SM4_RING))
    monkeypatch.setitem(app.config, "FIELD_ENCRYPTION_ACTIVE_KEY_ID", "f2")
    db.session.expire_all()
    with pytest.raises(FieldDecryptionError, match="不在 FIELD_ENCRYPTION_KEYS"):
        db.session.get(Merchant, world.merchant.id)  # loading the row decrypts it
    db.session.rollback()


def test_the_migration_encrypts_existing_numbers_and_its_downgrade_decrypts_them(app, db):
    """Rows written before the revision hold the number in plain text; upgrading encrypts them with the
    configured key, downgrading gives the plain numbers back."""
    db.session.commit()
    downgrade(revision="e7b3c9d2f5a4")
    try:
        db.session.execute(text("INSERT INTO merchants (id, name, uscc, category, status, size_class, "
                                "bank_account_no, created_at) VALUES (1, '老店', '91320706MA5OLD0011', '餐饮', "
                                "'approved', 'small', :no, :at), (2, '无账号', '91320706MA5OLD0022', '餐饮', "
                                "'approved', 'small', NULL, :at)"), {"no": ACCOUNT, "at": ORDINARY_NOW})
        db.session.commit()
    finally:
        upgrade()
    stored = _raw(db, 1)
    assert stored.startswith("v1.") and ACCOUNT not in stored and _raw(db, 2) is None
    assert db.session.get(Merchant, 1).bank_account_no == ACCOUNT
    db.session.commit()
    downgrade(revision="e7b3c9d2f5a4")
    try:
        assert _raw(db, 1) == ACCOUNT
        db.session.rollback()
    finally:
        upgrade()
    assert field_crypto.key_id_of(_raw(db, 1)) == app.config["FIELD_ENCRYPTION_ACTIVE_KEY_ID"]


def test_the_development_key_is_marked():
    assert all(key.secret.startswith(b"dev-only") for key in parse_field_keys(DEV_FIELD_ENCRYPTION_KEYS).values())
