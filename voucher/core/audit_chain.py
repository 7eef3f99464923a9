"""Sealing the audit log into a chain, and checking it (`flask audit seal|verify`).

Every record carries an HMAC of its content from the moment it is written (core.audit.signed). A
seal then binds, in id order, every record since the previous seal: its chain value is
HMAC(key, previous chain value ‖ id ‖ record digest ‖ …), where a record's digest covers all its
columns, object_id included. So:
- an edited record fails its own MAC (and, once sealed, its seal);
- a deleted, inserted or reordered record breaks the chain value of its seal;
- a seal removed from the end leaves its records unsealed, which verify reports; the latest chain value
  (shown by `flask audit verify`) is what an auditor notes down outside the system.
The database refuses UPDATE and DELETE on both tables (triggers, see the migration), so none of this
can happen through the application; the chain is for whoever goes around it.

Sealing is a job, not part of each write: chaining at write time would make every redemption wait
for the one before it. A seal takes only records older than SEAL_AFTER, longer than any transaction
of the application runs, so a record committed late (a lower id becoming visible after a higher
one) is not skipped; one that still arrives inside a sealed range is reported as inserted later.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import DateTime, Integer, String, func, select
from sqlalchemy.orm import Mapped, mapped_column

from voucher.core import keyed_mac
from voucher.core.audit import MAC_FIELDS, AuditEntry, content_mac
from voucher.core.clock import utcnow
from voucher.core.db import Model, db, intpk, serialize

SEAL_AFTER = timedelta(minutes=10)
GENESIS = "0" * 64
_BATCH = 5000


class AuditSeal(Model):
    """One link of the chain: the records with ids in (previous seal's last_entry_id, last_entry_id]."""

    __tablename__ = "audit_seals"

    id: Mapped[intpk]
    first_entry_id: Mapped[int] = mapped_column(Integer)
    last_entry_id: Mapped[int] = mapped_column(Integer, unique=True)
    entry_count: Mapped[int] = mapped_column(Integer)
    #: HMAC over the previous seal's chain value and the sealed records' digests, in id order
    chain: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(16))
    sealed_at: Mapped[datetime] = mapped_column(DateTime)


def _key(key_id: str) -> bytes:
    keys = current_app.config["AUDIT_MAC_KEYS"]
    if key_id not in keys:
        raise KeyError(key_id)
    return keys[key_id]


def _digest(entry: AuditEntry) -> bytes:
    """Everything a record holds, its id and object_id too."""
    content = [entry.id, entry.object_id, entry.mac, entry.mac_key,
               *(getattr(entry, name).isoformat() if name == "at" else getattr(entry, name) for name in MAC_FIELDS)]
    return hashlib.sha256(json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                                     default=str).encode()).digest()


def _link(key: bytes, previous: str, entries: list[AuditEntry]) -> str:
    mac = keyed_mac.new(key)
    mac.update(previous.encode())
    for entry in entries:
        mac.update(entry.id.to_bytes(8, "big"))
        mac.update(_digest(entry))
    return mac.finalize().hex()


def _entries(after_id: int, up_to_id: int | None = None) -> list[AuditEntry]:
    query = select(AuditEntry).where(AuditEntry.id > after_id).order_by(AuditEntry.id)
    if up_to_id is not None:
        query = query.where(AuditEntry.id <= up_to_id)
    return list(db.session.scalars(query.execution_options(yield_per=_BATCH)))


def latest_seal() -> AuditSeal | None:
    return db.session.scalar(select(AuditSeal).order_by(AuditSeal.last_entry_id.desc()).limit(1))


def seal(now: datetime | None = None) -> AuditSeal | None:
    """Seal the records written up to SEAL_AFTER ago that no seal covers yet; None when there are none."""
    now = now or utcnow()
    serialize("audit.seal")  # two sealers at once would both link from the same previous seal
    previous = latest_seal()
    after_id = previous.last_entry_id if previous else 0
    up_to = db.session.scalar(select(func.max(AuditEntry.id)).where(AuditEntry.id > after_id,
                                                                     AuditEntry.at <= now - SEAL_AFTER))
    if up_to is None:
        return None
    entries = _entries(after_id, up_to)
    key_id = current_app.config["AUDIT_MAC_ACTIVE_KEY_ID"]
    link = AuditSeal(first_entry_id=entries[0].id, last_entry_id=up_to, entry_count=len(entries),
                     chain=_link(_key(key_id), previous.chain if previous else GENESIS, entries), key_id=key_id,
                     sealed_at=now)
    db.session.add(link)
    db.session.flush()
    return link


@dataclass
class Verification:
    records: int = 0
    seals: int = 0
    unsealed: int = 0
    head: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify() -> Verification:
    """Check every record's MAC and every seal's chain value, from the first seal to the last."""
    result = Verification()
    previous_id, previous_chain = 0, GENESIS
    for link in db.session.scalars(select(AuditSeal).order_by(AuditSeal.last_entry_id)):
        entries = _entries(previous_id, link.last_entry_id)
        result.records += len(entries)
        _check_macs(entries, result)
        try:
            expected = _link(_key(link.key_id), previous_chain, entries)
        except KeyError:
            result.problems.append(f"封存段 #{link.id} 使用的密钥 {link.key_id} 不在 AUDIT_MAC_KEYS 中，无法核对")
            expected = None
        if expected is not None and (expected != link.chain or len(entries) != link.entry_count):
            result.problems.append(
                f"封存段 #{link.id}（记录 {previous_id + 1}–{link.last_entry_id}，封存时 {link.entry_count} 条，"
                f"现有 {len(entries)} 条）与封存值不符：其中有记录被修改、删除、插入或调换顺序")
        result.seals += 1
        previous_id, previous_chain = link.last_entry_id, link.chain
    tail = _entries(previous_id)
    result.records += len(tail)
    result.unsealed = len(tail)
    _check_macs(tail, result)
    result.head = previous_chain if result.seals else None
    return result


def _check_macs(entries: list[AuditEntry], result: Verification) -> None:
    for entry in entries:
        if entry.mac is None:
            continue  # written before records were signed: its seal binds it
        try:
            key = _key(entry.mac_key or "")
        except KeyError:
            result.problems.append(f"记录 #{entry.id} 的密钥 {entry.mac_key} 不在 AUDIT_MAC_KEYS 中，无法核对")
            continue
        values = {name: getattr(entry, name) for name in MAC_FIELDS}
        if not keyed_mac.equal(content_mac(values, key), entry.mac):
            result.problems.append(f"记录 #{entry.id}（{entry.action}）的内容与其签名不符：记录被修改过")
