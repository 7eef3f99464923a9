"""The audit log is append-only and tamper-evident (issue 16): the application cannot change a record,
and whoever goes around it (a DBA, a restored backup edited by hand) shows in `flask audit verify`."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DatabaseError

from tests.factories import claim_one, make_campaign, make_citizen, make_world
from voucher.core import audit_chain
from voucher.core.audit import AuditEntry
from voucher.core.audit_chain import AuditSeal, seal, verify
from voucher.core.clock import utcnow
from voucher.counter.redemption import redeem


@pytest.fixture
def logged(db):
    """A campaign, a claim and a redemption (the hot path's one-statement audit write on PostgreSQL),
    all sealed."""
    world = make_world()
    campaign, release = make_campaign(world, quantity=3)
    voucher = claim_one(release, make_citizen("a"))
    redeem(voucher.code, 150_00, world.cashier)
    db.session.commit()
    link = seal(utcnow() + audit_chain.SEAL_AFTER + timedelta(seconds=1))
    db.session.commit()
    return world, link


def _around_the_app(db, sql: str, **params) -> None:
    """What a person with database access could do: the triggers set aside, the change, the triggers back."""
    db.session.rollback()
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))  # row triggers do not fire
            conn.execute(text(sql), params)
        else:
            triggers = conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall()
            for name, _ in triggers:
                conn.exec_driver_sql(f"DROP TRIGGER {name}")
            conn.execute(text(sql), params)
            for _, ddl in triggers:
                conn.exec_driver_sql(ddl)


def test_a_sealed_log_verifies_and_every_record_is_signed(db, logged):
    world, link = logged
    total = db.session.scalar(select(func.count(AuditEntry.id)))
    assert link is not None and link.entry_count == total >= 3
    assert db.session.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.mac.is_(None))) == 0
    actions = set(db.session.scalars(select(AuditEntry.action)))
    assert {"voucher.redeem", "campaign.approve"} <= actions
    result = verify()
    assert result.ok, result.problems
    assert (result.records, result.seals, result.unsealed, result.head) == (total, 1, 0, link.chain)
    # Nothing new to seal: no empty link.
    assert seal(utcnow() + timedelta(hours=1)) is None


def test_the_application_cannot_update_or_delete_a_record(db, logged):
    entry_id = db.session.scalar(select(AuditEntry.id).limit(1))
    for sql in ("UPDATE audit_entries SET action = 'nothing' WHERE id = :id", "DELETE FROM audit_entries WHERE id = :id"):
        with pytest.raises(DatabaseError, match="append-only"):
            db.session.execute(text(sql), {"id": entry_id})
        db.session.rollback()
    with pytest.raises(DatabaseError, match="append-only"):
        db.session.execute(text("DELETE FROM audit_seals"))
    db.session.rollback()
    assert verify().ok


@pytest.mark.parametrize("tampering, finding", [
    ("UPDATE audit_entries SET actor_label = 'someone_else' WHERE id = :id", "内容与其签名不符"),
    ("UPDATE audit_entries SET object_id = object_id + 1000 WHERE id = :id", "与封存值不符"),
    ("DELETE FROM audit_entries WHERE id = :id", "封存时"),
])
def test_an_edited_or_deleted_record_shows(db, logged, tampering, finding):
    entry_id = db.session.scalar(select(AuditEntry.id).where(AuditEntry.action == "voucher.redeem"))
    _around_the_app(db, tampering, id=entry_id)
    result = verify()
    assert not result.ok and any(finding in p for p in result.problems), result.problems


def test_a_record_forged_with_a_fresh_mac_still_breaks_the_chain(app, db, logged):
    """Even someone who could compute a record's MAC (they cannot without the key) breaks the seal."""
    from voucher.core.audit import MAC_FIELDS, content_mac

    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "voucher.redeem"))
    values = {name: getattr(entry, name) for name in MAC_FIELDS} | {"actor_label": "someone_else"}
    mac = content_mac(values, app.config["AUDIT_MAC_KEYS"][entry.mac_key])
    _around_the_app(db, "UPDATE audit_entries SET actor_label = 'someone_else', mac = :mac WHERE id = :id",
                    mac=mac, id=entry.id)
    problems = verify().problems
    assert len(problems) == 1 and "与封存值不符" in problems[0]


def test_swapped_records_and_a_removed_seal_show(db, logged):
    first, second = db.session.scalars(select(AuditEntry.id).order_by(AuditEntry.id).limit(2)).all()
    _around_the_app(db, "UPDATE audit_entries SET id = -1 WHERE id = :a", a=first)
    _around_the_app(db, "UPDATE audit_entries SET id = :a WHERE id = :b", a=first, b=second)
    _around_the_app(db, "UPDATE audit_entries SET id = :b WHERE id = -1", b=second)
    assert any("与封存值不符" in p for p in verify().problems)

    _around_the_app(db, "UPDATE audit_entries SET id = -1 WHERE id = :a", a=first)  # back as it was
    _around_the_app(db, "UPDATE audit_entries SET id = :a WHERE id = :b", a=first, b=second)
    _around_the_app(db, "UPDATE audit_entries SET id = :b WHERE id = -1", b=second)
    assert verify().ok
    # Removing the seal leaves every record unsealed: the chain head the auditor wrote down is gone.
    head = verify().head
    _around_the_app(db, "DELETE FROM audit_seals")
    result = verify()
    assert result.head is None and result.unsealed == result.records and head is not None


def test_only_records_older_than_the_margin_are_sealed_and_the_cli_reports(app, db):
    world = make_world()
    make_campaign(world, quantity=1)
    db.session.commit()
    assert seal(utcnow()) is None  # all written just now: a transaction may still be committing one
    runner = app.test_cli_runner()
    checked = runner.invoke(args=["audit", "verify"])
    assert checked.exit_code == 0 and "尚未封存" in checked.output
    assert db.session.scalar(select(func.count(AuditSeal.id))) == 0
    entry_id = db.session.scalar(select(AuditEntry.id).limit(1))
    _around_the_app(db, "UPDATE audit_entries SET action = 'x' WHERE id = :id", id=entry_id)
    failed = runner.invoke(args=["audit", "verify"])
    assert failed.exit_code == 1 and "内容与其签名不符" in failed.output


def test_rotating_to_an_hmac_sm3_key_keeps_the_older_records_verifying(app, db, logged, monkeypatch):
    """Records and a seal made under the SHA-256 key, then more under a new HMAC-SM3 key: all verify, and
    an edit of a record signed with SM3 still shows."""
    from voucher.config import parse_key_ring

    world, _ = logged
    old_key_id = app.config["AUDIT_MAC_ACTIVE_KEY_ID"]
    ring = {**app.config["AUDIT_MAC_KEYS"], **parse_key_ring("sm1:hmac-sm3:audit-sm3-key-0123456789", "AUDIT_MAC_KEYS")}
    monkeypatch.setitem(app.config, "AUDIT_MAC_KEYS", ring)
    monkeypatch.setitem(app.config, "AUDIT_MAC_ACTIVE_KEY_ID", "sm1")
    make_campaign(world, quantity=1)
    db.session.commit()
    link = seal(utcnow() + audit_chain.SEAL_AFTER + timedelta(seconds=1))
    db.session.commit()
    assert link.key_id == "sm1"
    assert {old_key_id, "sm1"} == set(db.session.scalars(select(AuditEntry.mac_key).distinct()))
    assert verify().ok, verify().problems

    newest = db.session.scalar(select(AuditEntry.id).where(AuditEntry.mac_key == "sm1").limit(1))
    _around_the_app(db, "UPDATE audit_entries SET actor_label = 'someone_else' WHERE id = :id", id=newest)
    assert any("内容与其签名不符" in p for p in verify().problems)
