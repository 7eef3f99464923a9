"""Claiming vouchers, signing a voucher's QR token, and reading a typed or scanned code (a citizen's own
vouchers as their pages show them: wallet.py)."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from flask import current_app
from sqlalchemy import ScalarSelect, bindparam, func, select, update
from sqlalchemy.orm import make_transient_to_detached

from voucher.campaigns.models import Campaign, CampaignStatus, LotteryEntry, Release, ReleaseMode, ReleaseStatus
from voucher.campaigns.services import voucher_validity
from voucher.core import audit, redis_store
from voucher.core.clock import local_day_end_utc, to_local, utcnow
from voucher.core.db import connection, db
from voucher.core.errors import ClaimLimitReached, InvalidToken, NotFound, ReleaseNotOpen, SoldOut
from voucher.vouchers import admission, batches, citizens, codes, tokens
from voucher.vouchers.lottery import ranked as lottery_ranked
from voucher.vouchers.models import FREE, Citizen, Voucher, VoucherStatus


def open_releases() -> list[Release]:
    return list(
        db.session.scalars(
            select(Release)
            .join(Campaign)
            .where(Release.status == ReleaseStatus.OPEN.value, Campaign.status == CampaignStatus.ACTIVE.value)
            .order_by(Release.opens_at)
        )
    )


def remaining(release_ids: list[int]) -> dict[int, int]:
    rows = db.session.execute(
        select(Voucher.release_id, func.count(Voucher.id))
        .where(Voucher.release_id.in_(release_ids), FREE)
        .group_by(Voucher.release_id)
    )
    return dict(rows.all())


# Releases seen sold out by this process. A release's pool never refills (a claimed voucher can only be
# redeemed, expire or be withdrawn, never become claimable again), so the answer is final; release
# ids are never reused by a live database.
_SOLD_OUT: set[int] = set()


def forget_sold_out() -> None:
    """For a database whose ids start over (the test suite empties its tables between tests)."""
    _SOLD_OUT.clear()


def known_sold_out(release_id: int) -> bool:
    """Whether this process has seen the release with no voucher left at all (final; api/fast_lane.py)."""
    return release_id in _SOLD_OUT


def any_known_sold_out() -> bool:
    return bool(_SOLD_OUT)


def ensure_not_sold_out(release_id: int) -> None:
    """Answer a flash crowd's late arrivals without touching the database."""
    if release_id in _SOLD_OUT:
        raise SoldOut()


# An open first-come release with no voucher left to take: finally sold out.
_EMPTY = select(Release.id).join(Campaign, Campaign.id == Release.campaign_id).where(
    Release.id == bindparam("release_id"), Release.status == ReleaseStatus.OPEN.value,
    Release.mode == ReleaseMode.FIRST_COME.value, Campaign.status == CampaignStatus.ACTIVE.value,
    ~select(Voucher.id).where(Voucher.release_id == Release.id, FREE).exists())


def finally_sold_out(release_id: int) -> bool:
    """Whether claims for the release can only ever be answered `sold_out`: an open first-come release
    whose every voucher has been taken by a committed claim (its pool never refills). For the reverse
    proxy in front of the app, which then answers a flash crowd's late arrivals by itself
    (api/views.py: edge_claims). A claim in flight that may still roll back keeps its voucher free in
    every other snapshot, so this is never said too early. Asks the database only when the gate, where
    there is one, has nothing left either: one indexed lookup."""
    if release_id in _SOLD_OUT:
        return True
    left = admission.places_left(release_id)
    if left is not None and left > 0:
        return False
    if db.session.execute(_EMPTY, {"release_id": release_id}).first() is None:
        return False
    _SOLD_OUT.add(release_id)
    return True


_VOUCHERS = Voucher.__table__


def _held(which) -> ScalarSelect:
    """How many of the citizen's vouchers are `which` (of the release, of the campaign): counted over the
    citizen's own vouchers only, so the one index PostgreSQL can use is the citizen's (a handful of rows).
    With the campaign in the WHERE clause too, a plan made on statistics older than the drop combined it
    with the campaign's index and read every voucher of the campaign, on every claim: 0.6 ms of PostgreSQL
    per voucher won at 15,000 claimed, growing with the round."""
    return (select(func.count().filter(which)).select_from(_VOUCHERS)
            .where(_VOUCHERS.c.citizen_id == bindparam("citizen_id")).scalar_subquery())


# The round and what the citizen already holds of it and of its campaign, in one round trip (run
# after the citizen's row is locked, so the counts stay true until the commit).
_ROUND = (
    select(Release.status, Release.mode, Release.per_person_limit, Release.opens_at, Release.batches,
           Release.batch_minutes, Campaign.id.label("campaign_id"),
           Campaign.status.label("campaign_status"), Campaign.per_person_limit.label("campaign_limit"),
           Campaign.valid_from, Campaign.valid_until, Campaign.validity_days,
           _held(_VOUCHERS.c.release_id == Release.id).label("in_round"),
           _held(_VOUCHERS.c.campaign_id == Campaign.id).label("in_campaign"))
    .join(Campaign, Campaign.id == Release.campaign_id).where(Release.id == bindparam("release_id"))
)
_LOCK_CITIZEN = select(Citizen.id).where(Citizen.id == bindparam("citizen_id")).with_for_update()


def _take_one():
    """The first free voucher nobody else holds right now (SKIP LOCKED: concurrent claimants never
    queue on each other), taken in the same statement; every column of it returned."""
    return (
        update(_VOUCHERS)
        .where(_VOUCHERS.c.id == select(_VOUCHERS.c.id).where(
            _VOUCHERS.c.release_id == bindparam("b_release"), FREE,
        ).order_by(_VOUCHERS.c.id).limit(1).with_for_update(skip_locked=True).scalar_subquery())
        .values(status=VoucherStatus.CLAIMED.value, citizen_id=bindparam("b_citizen"), claim_slot=bindparam("slot"),
                claimed_at=bindparam("now"), valid_from=bindparam("from_"), valid_until=bindparam("until"))
        .returning(*_VOUCHERS.c)
    )


_TAKE_ONE = _take_one()
_ANY_LEFT = select(Voucher.id).where(
    Voucher.release_id == bindparam("release_id"), FREE
).limit(1)


def claim(release_id: int, citizen: Citizen, now: datetime | None = None, *, actor_label: str | None = None) -> Voucher:
    """Give the citizen one free voucher of the release, within the per-person limits.

    Asks the admission gate first (vouchers/admission.py: with Redis, a refusal there touches no
    database); then touches one voucher row and no balance: the money was reserved when the release
    opened. Runs constant statements, one round trip each: a flash crowd makes this the busiest path.
    The voucher comes back attached to the session, as a page or a test goes on to use it.
    """
    ticket = admission.admit(release_id, citizen.identity_hash)
    # Serialise this citizen's claims (only theirs), so the counts stay true until the commit; the
    # unique (release, citizen, slot) index stays as the last guard.
    connection().execute(_LOCK_CITIZEN, {"citizen_id": citizen.id})
    voucher = _claim(release_id, citizen, now, actor_label, ticket)
    make_transient_to_detached(voucher)
    return db.session.merge(voucher, load=False)


def claim_by_phone(release_id: int, phone: str, *, actor_label: str,
                   first: Sequence[redis_store.Step] = ()) -> Voucher:
    """A channel partner's claim for a citizen it has verified: the gate is asked with the identity hash
    of the phone number before the citizen's row is found or created, so a refused attempt in a flash
    crowd writes nothing. `first`: the caller's checks to make in the gate's round trip (admission.admit).
    The voucher comes back as values (not attached to the session): the answer is built from it and
    nothing else is read."""
    identity = citizens.Identity(citizens.normalise_phone(phone))
    ticket = admission.admit(release_id, identity.active, first)
    if ticket is None:
        ensure_not_sold_out(release_id)  # the checks made, the database's last word is remembered
    # citizen_ref_for finds or creates the row with a lock held until the commit: no second lock needed
    return _claim(release_id, citizens.citizen_ref_for(identity), None, actor_label, ticket)


def _claim(release_id: int, citizen: Citizen | citizens.CitizenRef, now: datetime | None, actor_label: str | None,
           ticket: admission.Ticket | None) -> Voucher:
    """The claim itself, the citizen's row already locked (by the caller's lock or upsert, the claim's
    first statement): two more on PostgreSQL (the round with the citizen's holdings; the voucher taken
    with its audit entry), three on SQLite (the audit entry on its own)."""
    now = now or utcnow()
    conn = connection()
    round_ = conn.execute(_ROUND, {"release_id": release_id, "citizen_id": citizen.id}).first()
    if round_ is None:
        raise NotFound("找不到该发放场次")
    if round_.status != ReleaseStatus.OPEN.value or round_.campaign_status != CampaignStatus.ACTIVE.value:
        raise ReleaseNotOpen()
    if round_.mode == ReleaseMode.LOTTERY.value:
        raise ReleaseNotOpen("本场次为摇号发放，请报名参加摇号")
    if now > local_day_end_utc(round_.valid_until):
        raise ReleaseNotOpen("活动已过有效期，不再发放")
    if round_.batches > 1:
        yours = batches.opens_for(round_.opens_at, citizen.identity_hash, round_.batches, round_.batch_minutes)
        if now < yours:
            raise ReleaseNotOpen(batch_message(yours, round_.batches))
    valid_from, valid_until = voucher_validity(round_, now)
    in_round, in_campaign = round_.in_round, round_.in_campaign
    # The campaign-wide limit counts vouchers held (from any release, first-come or won at a draw), not
    # pending lottery entries. An entry is only a chance, and most entrants lose: a citizen who entered
    # a lottery must not be shut out of a first-come release while waiting for a draw they will probably
    # not win, nor have to guess which to try. The limit still holds whenever a voucher is handed out:
    # the draw takes this same citizen lock and passes over an entrant who holds the limit by then (the
    # voucher goes to the next in the drawn order; vouchers/lottery.py draw), so nobody ends up past it
    # and no voucher is lost.
    if round_.campaign_limit is not None and in_campaign >= round_.campaign_limit:
        raise ClaimLimitReached(f"本活动每人限领 {round_.campaign_limit} 张，您已领取 {in_campaign} 张")
    if in_round >= round_.per_person_limit:
        raise ClaimLimitReached(f"每人限领 {round_.per_person_limit} 张，您已领取 {in_round} 张")
    taking = {"b_release": release_id, "b_citizen": citizen.id, "slot": in_round + 1, "now": now,
              "from_": valid_from, "until": valid_until}
    entry = audit.row("voucher.claim", Voucher(), actor_label=actor_label or f"市民#{citizen.id}",
                      after={"release_id": release_id, "citizen_id": citizen.id}, at=now)  # the claim's time
    if conn.dialect.name == "postgresql":
        sql, constants = audit.in_one_statement(conn, "voucher.claim", _take_one_and_log)
        taken = conn.exec_driver_sql(sql, constants | taking | audit.entry_parameters(entry)).first()
    else:
        taken = conn.execute(_TAKE_ONE, taking).first()
        if taken is not None:
            audit.write(entry | {"object_id": taken.id})
    if taken is None:
        if conn.execute(_ANY_LEFT, {"release_id": release_id}).first() is None:
            _SOLD_OUT.add(release_id)  # none left at all, not merely all locked right now
            admission.sold_out(ticket)
        raise SoldOut()
    # Built from what was written: not tracked by the session, no reload.
    return Voucher(**taken._mapping)


def _take_one_and_log():
    taken = _take_one().cte("taken")
    return taken, select(taken)


def batch_message(opens: datetime, count: int) -> str:
    return f"本场次分 {count} 批开放，您所在的批次将于 {to_local(opens):%m月%d日 %H:%M} 开放领取，请届时再来"


def qr_token(voucher: Voucher) -> str:
    return tokens.sign(voucher.code, current_app.config["QR_SIGNING_KEYS"], current_app.config["QR_ACTIVE_KEY_ID"])


def code_from_input(text: str) -> str:
    """Turn what the scanner or the cashier typed into a voucher code, refusing forgeries before any lookup."""
    # Full-width characters (a Chinese IME left on), ideographic or zero-width spaces, line breaks and
    # dash variants are folded away first, so neither the check character nor the signature is
    # tested against them; a genuinely altered token or mistyped code is still refused below.
    raw = codes.clean(text)
    if not raw:
        raise InvalidToken("请扫描二维码或输入券码")
    if tokens.looks_like_token(raw):
        return tokens.verify(raw, current_app.config["QR_SIGNING_KEYS"])
    code = codes.normalise(raw)
    if not codes.is_well_formed(code):
        raise InvalidToken("券码不正确：请核对 11 位券码（校验位不符）")
    return code


def lottery_entry_counts(release_ids: list[int]) -> dict[int, int]:
    rows = db.session.execute(
        select(LotteryEntry.release_id, func.count(LotteryEntry.id))
        .where(LotteryEntry.release_id.in_(release_ids)).group_by(LotteryEntry.release_id)
    )
    return dict(rows.all())


def held_of(citizen_id: int, release_ids: list[int]) -> dict[int, int]:
    """How many vouchers of each release the citizen holds or held (the per-person limit counts them all):
    the offers page shows 已领取 instead of a button that would only be refused."""
    rows = db.session.execute(
        select(Voucher.release_id, func.count(Voucher.id))
        .where(Voucher.citizen_id == citizen_id, Voucher.release_id.in_(release_ids))
        .group_by(Voucher.release_id)
    )
    return dict(rows.all())


def lottery_entries_of(citizen_id: int, release_ids: list[int]) -> dict[int, int]:
    """The citizen's entry number per lottery release entered."""
    rows = db.session.execute(
        select(LotteryEntry.release_id, LotteryEntry.id)
        .where(LotteryEntry.citizen_id == citizen_id, LotteryEntry.release_id.in_(release_ids))
    )
    return dict(rows.all())


def lottery_passed_over(seed: str, entries: list[int], winners: list[int]) -> list[int]:
    """The entries the draw passed over (their citizen already held the campaign's per-person limit):
    those the seed ranks ahead of the last winner that did not win. Derived from what the public page
    shows, so anyone can check it: the rule "in ranked order, skip who holds the limit" is all there is."""
    if not winners:
        return []
    won = set(winners)
    passed: list[int] = []
    for number in lottery_ranked(seed, entries):
        if len(won) == 0:
            break
        if number in won:
            won.discard(number)
        else:
            passed.append(number)
    return passed


def lottery_entry_numbers(release_id: int, *, won: bool | None = None) -> list[int]:
    query = select(LotteryEntry.id).where(LotteryEntry.release_id == release_id).order_by(LotteryEntry.id)
    if won is not None:
        query = query.where(LotteryEntry.won.is_(won))
    return list(db.session.scalars(query))
