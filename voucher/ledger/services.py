"""Posting money and reading it back. Nothing else in the product writes postings; the domains and the
reports read them through the functions at the end of this module, by plain ids and the ledger's own kinds
(AccountKind, EntryKind), never through the tables, so what a posting is stays the ledger's business."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NamedTuple

from sqlalchemy import Connection, Subquery, bindparam, func, select
from sqlalchemy.orm import Session

from voucher.core.clock import utcnow
from voucher.core.db import connection, db, reads
from voucher.core.errors import AccountWouldGoNegative, UnbalancedPosting
from voucher.core.money import split_by_shares
from voucher.ledger.models import AccountKind, EntryKind, JournalEntry, LedgerAccount, Posting
from voucher.ledger.periods import require_open


@dataclass(frozen=True)
class SourceAccounts:
    """The ledger accounts of one funding source, and its co-funding share."""

    source_id: int
    share: int
    ids: dict[AccountKind, int]


def open_accounts(campaign_id: int, sources: list[tuple[int, int]]) -> None:
    """Create the five accounts of each funding source in hand, given as (source id, co-funding share),
    idempotently. The share is kept on the accounts: it never changes once the campaign is approved."""
    existing = {
        (a.funding_source_id, a.kind)
        for a in db.session.scalars(select(LedgerAccount).where(LedgerAccount.campaign_id == campaign_id))
    }
    for source_id, share in sources:
        for kind in AccountKind:
            if (source_id, kind.value) not in existing:
                db.session.add(LedgerAccount(campaign_id=campaign_id, funding_source_id=source_id, kind=kind.value,
                                             share=share))
    db.session.flush()  # callers post to the new accounts in the same unit of work


def source_accounts(campaign_id: int) -> list[SourceAccounts]:
    """Accounts per funding source, in a stable order (the split order). One query."""
    rows = db.session.execute(
        select(LedgerAccount.funding_source_id, LedgerAccount.share, LedgerAccount.kind, LedgerAccount.id)
        .where(LedgerAccount.campaign_id == campaign_id)
        .order_by(LedgerAccount.funding_source_id)
    ).all()
    grouped: dict[int, SourceAccounts] = {}
    for source_id, share, kind, account_id in rows:
        entry = grouped.setdefault(source_id, SourceAccounts(source_id, share, {}))
        entry.ids[AccountKind(kind)] = account_id
    return list(grouped.values())


_APPROVED_SOURCES: dict[tuple[int, object], list[SourceAccounts]] = {}


def forget_approved_sources() -> None:
    """For a database whose ids start over (the test suite empties its tables between tests): there a
    new campaign can have an old one's id, and the approval time alone is not enough to tell them apart."""
    _APPROVED_SOURCES.clear()


def source_accounts_of_approved(campaign_id: int, approved_at: object) -> list[SourceAccounts]:
    """source_accounts() for the hot path. Accounts and shares never change once a campaign is
    approved, so they are read once per process and approval (approved_at is part of the key)."""
    key = (campaign_id, approved_at)
    if key not in _APPROVED_SOURCES:
        _APPROVED_SOURCES[key] = source_accounts(campaign_id)
    return _APPROVED_SOURCES[key]


def post(
    kind: str,
    campaign_id: int,
    lines: list[tuple[int, int]],
    *,
    memo: str = "",
    ref: tuple[str, int] | None = None,
    actor_id: int | None = None,
    at: datetime | None = None,
) -> int:
    """Write one journal entry with its postings; refuse it unless it balances, or when it is dated
    (`at`, default now) in a closed month. Returns the entry id."""
    lines = [(account_id, amount) for account_id, amount in lines if amount != 0]
    if sum(amount for _, amount in lines) != 0:
        raise UnbalancedPosting()
    if at is not None:
        require_open(at)
    conn = connection()
    entry = {
        "kind": kind, "campaign_id": campaign_id, "memo": memo, "ref_type": ref[0] if ref else None,
        "ref_id": ref[1] if ref else None, "actor_id": actor_id, "created_at": at or utcnow(),
    }
    if lines and conn.dialect.name == "postgresql":
        params = {f"e_{name}": value for name, value in entry.items()}
        for i, (account_id, amount) in enumerate(lines):
            params[f"a{i}"], params[f"m{i}"] = account_id, amount
        entry_id = conn.exec_driver_sql(_entry_with_postings(len(lines), conn), params).scalar()
        assert entry_id is not None  # one row per posting (lines is not empty), each with the entry id
        return entry_id
    entry_id = conn.execute(_INSERT_ENTRY, entry).scalar_one()
    if lines:
        conn.execute(_INSERT_POSTINGS, [{"entry_id": entry_id, "account_id": a, "amount_fen": amt} for a, amt in lines])
    return entry_id


_INSERT_ENTRY = JournalEntry.__table__.insert().returning(JournalEntry.__table__.c.id)
_INSERT_POSTINGS = Posting.__table__.insert()
_ENTRY_WITH_POSTINGS: dict[int, str] = {}


def _entry_with_postings(count: int, conn: Connection) -> str:
    """PostgreSQL: the entry and its `count` postings in one statement (one round trip, where a
    redemption would otherwise spend two), the entry inserted in a CTE. SQLite has no DML in CTEs.
    Compiled once here: SQLAlchemy does not cache a statement with DML in a CTE, and compiling it
    on every posting cost a millisecond."""
    if count not in _ENTRY_WITH_POSTINGS:
        entries, postings = JournalEntry.__table__, Posting.__table__
        new_entry = entries.insert().values(
            {name: bindparam(f"e_{name}") for name in ("kind", "campaign_id", "memo", "ref_type", "ref_id",
                                                        "actor_id", "created_at")}
        ).returning(entries.c.id).cte("new_entry")
        entry_id = select(new_entry.c.id).scalar_subquery()
        statement = postings.insert().values([
            {"entry_id": entry_id, "account_id": bindparam(f"a{i}"), "amount_fen": bindparam(f"m{i}")}
            for i in range(count)
        ]).add_cte(new_entry).returning(postings.c.entry_id)
        _ENTRY_WITH_POSTINGS[count] = str(statement.compile(dialect=conn.dialect))
    return _ENTRY_WITH_POSTINGS[count]


def split(sources: list[SourceAccounts], amount: int) -> list[int]:
    """Each funder's part of an amount, by co-funding share, to the fen."""
    return split_by_shares(amount, [s.share for s in sources])


def transfer_lines(
    sources: list[SourceAccounts],
    from_kind: AccountKind,
    to_kind: AccountKind,
    amount: int,
    parts: list[int] | None = None,
) -> list[tuple[int, int]]:
    """Lines that move `amount` between two kinds of account, split across sources by share
    (or by `parts`, one per source, when the caller has already split it)."""
    if parts is None:
        parts = split(sources, amount)
    lines: list[tuple[int, int]] = []
    for source, part in zip(sources, parts):
        lines.append((source.ids[from_kind], -part))
        lines.append((source.ids[to_kind], part))
    return lines


def voucher_lines(
    sources: list[SourceAccounts], from_kind: AccountKind, to_kind: AccountKind, face: int, count: int
) -> list[tuple[int, int]]:
    """Lines that move the money of `count` vouchers of one face value. Each voucher is split across
    sources the same way, so releases, redemptions, withdrawals and expiries move the same fen per source."""
    per_voucher = split(sources, face)
    return transfer_lines(sources, from_kind, to_kind, face * count, parts=[p * count for p in per_voucher])


def require_balance(sources: list[SourceAccounts], kind: AccountKind, lines: list[tuple[int, int]]) -> None:
    """Refuse lines that would take an account of `kind` below zero.

    Only for paths that hold the campaign's row lock (release opening, budget changes): the hot paths
    (claim, redemption) never need it, because a release's money is reserved before its vouchers exist.
    """
    ids = {s.ids[kind] for s in sources}
    current = balances(ids)
    for account_id, amount in lines:
        if account_id in ids and current.get(account_id, 0) + amount < 0:
            raise AccountWouldGoNegative(f"{kind.label}余额不足")


def balances(account_ids: set[int] | None = None, session: Session | None = None) -> dict[int, int]:
    query = select(Posting.account_id, func.sum(Posting.amount_fen)).group_by(Posting.account_id)
    if account_ids is not None:
        query = query.where(Posting.account_id.in_(account_ids))
    return {account_id: int(total) for account_id, total in (session or db.session).execute(query)}


def campaign_balances(campaign_ids: list[int] | None = None,
                      session: Session | None = None) -> dict[int, dict[AccountKind, int]]:
    """Balance per campaign and kind, summed over funding sources."""
    query = (
        select(LedgerAccount.campaign_id, LedgerAccount.kind, func.coalesce(func.sum(Posting.amount_fen), 0))
        .select_from(LedgerAccount)
        .outerjoin(Posting, Posting.account_id == LedgerAccount.id)
        .group_by(LedgerAccount.campaign_id, LedgerAccount.kind)
    )
    if campaign_ids is not None:
        query = query.where(LedgerAccount.campaign_id.in_(campaign_ids))
    out: dict[int, dict[AccountKind, int]] = defaultdict(lambda: {k: 0 for k in AccountKind})
    for campaign_id, kind, total in (session or db.session).execute(query):
        out[campaign_id][AccountKind(kind)] = int(total)
    return out


def entry_lines(ref_type: str, ref_id: int, kind: EntryKind) -> list[tuple[int, int]]:
    """(account id, fen) of every line of the entries of `kind` made for one reference, e.g. a
    redemption's, for the counter to post their exact opposite. One statement, no order: the counter's
    hot path, and a reversal needs the lines, not their sequence."""
    rows = db.session.execute(
        select(Posting.account_id, Posting.amount_fen)
        .join(JournalEntry, JournalEntry.id == Posting.entry_id)
        .where(JournalEntry.ref_type == ref_type, JournalEntry.ref_id == ref_id, JournalEntry.kind == kind.value)
    ).all()
    return [(account_id, amount) for account_id, amount in rows]


def lines_by_ref(ref_type: str, kind: EntryKind, account_kind: AccountKind) -> Subquery:
    """The lines on accounts of `account_kind` of every entry of `kind` made for a `ref_type`, as a
    subquery with columns ref_id, funding_source_id and amount_fen. The caller joins its own rows on
    ref_id: the ledger knows the ids its entries name, not the domain tables behind them, and one joined
    statement keeps a caller that reads thousands of references (a settlement build) to one round trip."""
    return (
        select(JournalEntry.ref_id, LedgerAccount.funding_source_id, Posting.amount_fen)
        .join(Posting, Posting.entry_id == JournalEntry.id)
        .join(LedgerAccount, (LedgerAccount.id == Posting.account_id) & (LedgerAccount.kind == account_kind.value))
        .where(JournalEntry.ref_type == ref_type, JournalEntry.kind == kind.value)
        .subquery("ledger_lines")
    )


def source_balances_as_of(cutoff: datetime) -> dict[int, dict[AccountKind, int]]:
    """Balance per funding source and kind of the postings dated before `cutoff`, so that a figure as
    of a past day does not move when later postings arrive. A source without such postings is all zeros."""
    rows = reads().execute(
        select(LedgerAccount.funding_source_id, LedgerAccount.kind, func.sum(Posting.amount_fen))
        .join(Posting, Posting.account_id == LedgerAccount.id)
        .join(JournalEntry, JournalEntry.id == Posting.entry_id)
        .where(JournalEntry.created_at < cutoff)
        .group_by(LedgerAccount.funding_source_id, LedgerAccount.kind)
    )
    out: dict[int, dict[AccountKind, int]] = defaultdict(lambda: {k: 0 for k in AccountKind})
    for source_id, kind, total in rows:
        out[source_id][AccountKind(kind)] = int(total)
    return out


def movements(
    account_kinds: Collection[AccountKind],
    *,
    per: Literal["campaign", "funding_source"],
    entry_kinds: Collection[EntryKind] | None = None,
    campaign_ids: Collection[int] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: datetime | None = None,
) -> dict[int, int]:
    """Net fen posted to accounts of `account_kinds`, per campaign or per funding source, by entries of
    `entry_kinds` (any kind when None) dated at or after `since`, at or before `until` (a last instant,
    as core.clock.local_day_end_utc gives) and before `before` (a cutoff); a bound left out does not
    apply. A campaign or source that nothing moved is absent."""
    key = LedgerAccount.campaign_id if per == "campaign" else LedgerAccount.funding_source_id
    query = (
        select(key, func.sum(Posting.amount_fen))
        .join(Posting, Posting.account_id == LedgerAccount.id)
        .join(JournalEntry, JournalEntry.id == Posting.entry_id)
        .where(LedgerAccount.kind.in_([k.value for k in account_kinds]))
        .group_by(key)
    )
    if entry_kinds is not None:
        query = query.where(JournalEntry.kind.in_([k.value for k in entry_kinds]))
    if campaign_ids is not None:
        query = query.where(LedgerAccount.campaign_id.in_(campaign_ids))
    if since is not None:
        query = query.where(JournalEntry.created_at >= since)
    if until is not None:
        query = query.where(JournalEntry.created_at <= until)
    if before is not None:
        query = query.where(JournalEntry.created_at < before)
    return {owner: int(total) for owner, total in reads().execute(query)}


class SourceLine(NamedTuple):
    """One posting on a funding source's accounts, with its entry."""

    entry_id: int
    at: datetime
    entry_kind: str
    memo: str
    account_kind: AccountKind
    amount_fen: int


def source_lines(source_id: int) -> list[SourceLine]:
    """Every posting on the accounts of one funding source, with its entry, oldest first (by entry,
    then in the order the entry wrote them)."""
    rows = db.session.execute(
        select(JournalEntry.id, JournalEntry.created_at, JournalEntry.kind, JournalEntry.memo, LedgerAccount.kind,
               Posting.amount_fen)
        .join(Posting, Posting.entry_id == JournalEntry.id)
        .join(LedgerAccount, LedgerAccount.id == Posting.account_id)
        .where(LedgerAccount.funding_source_id == source_id)
        .order_by(JournalEntry.id, Posting.id)
    )
    return [SourceLine(entry_id, at, entry_kind, memo, AccountKind(account_kind), amount)
            for entry_id, at, entry_kind, memo, account_kind, amount in rows]
