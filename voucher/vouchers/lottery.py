"""Verifiable lottery releases (commit and reveal).

Before a lottery release opens, the product publishes commitment = SHA-256(seed). Citizens enter while
it is open; each entry's id is its public number. At the draw every entry is ranked by
SHA-256("<seed>:<entry number>") (hex, ascending) and, going down that order, the first `quantity`
entries win, passing over any entrant who by then already holds the campaign's per-person limit
(每人限领, counting vouchers of every release of the campaign): the prize goes to the next entrant in the
drawn order. The seed, the entry list and the entries passed over are then published (the audit log
records each one with its reason), so anyone can check that the seed matches the commitment and
recompute the winners with `winners()` below, or three lines of any language.

The per-person limit: a pending entry is a chance, not a voucher, so it does not count towards the
limit (see vouchers.services.claim); entering is refused to a citizen who already holds the limit, and
the draw enforces it again at the moment it hands vouchers out.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.exc import IntegrityError

from voucher.accounts.models import User
from voucher.campaigns.models import CampaignStatus, LotteryEntry, Release, ReleaseMode, ReleaseStatus
from voucher.campaigns.services import lock_release, voucher_validity
from voucher.core import audit
from voucher.core.clock import utcnow
from voucher.core.db import db
from voucher.core.errors import ClaimLimitReached, InvalidTransition, NotFound, ReleaseNotOpen
from voucher.ledger import services as ledger
from voucher.ledger.models import AccountKind, EntryKind
from voucher.vouchers.models import FREE, Citizen, Voucher, VoucherStatus


def new_seed() -> tuple[str, str]:
    seed = secrets.token_hex(32)
    return seed, commitment(seed)


def commitment(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


#: Why the draw passed over an entry ranked among the winners (shown in the audit log).
LIMIT_REACHED = "已达活动每人限领"


def ranked(seed: str, entry_numbers: list[int]) -> list[int]:
    """The drawn order: entries by SHA-256("seed:number") in hex, ascending."""
    return sorted(entry_numbers, key=lambda n: hashlib.sha256(f"{seed}:{n}".encode()).hexdigest())


def winners(seed: str, entry_numbers: list[int], quantity: int, passed_over: frozenset[int] | set[int] = frozenset()
            ) -> list[int]:
    """The published rule: rank entries by SHA-256("seed:number"); the first `quantity` of that order,
    leaving out the entries passed over at the draw (their citizen already held the campaign's limit), win."""
    return sorted([n for n in ranked(seed, entry_numbers) if n not in passed_over][:quantity])


def enter(release_id: int, citizen: Citizen) -> LotteryEntry:
    # A shared lock: entries may come in together, but not while the draw (which locks the release
    # for update) is running, so an entry either makes the published list or is refused.
    release = db.session.scalar(
        select(Release).where(Release.id == release_id).with_for_update(read=True)
        .execution_options(populate_existing=True)
    )
    if release is None:
        raise NotFound("找不到该发放场次")
    if release.mode_enum is not ReleaseMode.LOTTERY:
        raise ReleaseNotOpen("本场次为先到先得，请直接领取")
    if release.status_enum is not ReleaseStatus.OPEN or release.campaign.status_enum is not CampaignStatus.ACTIVE:
        raise ReleaseNotOpen("本场次摇号报名未开放或已截止")
    limit = release.campaign.per_person_limit
    if limit is not None:
        # A citizen who already holds the campaign-wide limit could never be given a voucher: refuse
        # the entry. Count what they hold now, with their row locked as a first-come claim does. Their
        # other pending entries do not count (an entry is not a voucher): the draw enforces the limit
        # again when it hands vouchers out, passing over whoever holds it by then.
        db.session.scalar(select(Citizen.id).where(Citizen.id == citizen.id).with_for_update())
        held = db.session.execute(
            select(func.count(Voucher.id)).where(Voucher.campaign_id == release.campaign_id,
                                                 Voucher.citizen_id == citizen.id)
        ).scalar_one()
        if held >= limit:
            raise ClaimLimitReached(f"本活动每人限领 {limit} 张，您已领取 {held} 张，不能再报名摇号")
    try:
        with db.session.begin_nested():
            entry = LotteryEntry(release_id=release.id, citizen_id=citizen.id)
            db.session.add(entry)
    except IntegrityError:
        raise ClaimLimitReached("您已报名本场次摇号，每人限报一次") from None
    audit.record("lottery.enter", entry, actor_label=f"市民#{citizen.id}", after={"release_id": release.id})
    return entry


def close_entries(release_id: int) -> Release:
    """The first step of a background draw (jobs/background.py): entries close (the release is DRAWING),
    committed on its own so the list is final while the draw runs. Idempotent."""
    _, release = lock_release(release_id)
    if release.mode_enum is not ReleaseMode.LOTTERY or release.status_enum not in (ReleaseStatus.OPEN,
                                                                                   ReleaseStatus.DRAWING):
        raise InvalidTransition("只有报名中的摇号场次可以开奖")
    release.status = ReleaseStatus.DRAWING.value
    return release


def entry_count(release_id: int) -> int:
    return db.session.execute(
        select(func.count(LotteryEntry.id)).where(LotteryEntry.release_id == release_id)
    ).scalar_one()


#: rows changed per statement when handing out vouchers
_BATCH = 10_000


def draw(release_id: int, actor: User | None) -> list[int]:
    """Close entries, pick the winners by the published rule, give each one voucher, and return the
    money of vouchers nobody won. Returns the winning entry numbers.

    The campaign-wide per-person limit holds here, at the moment vouchers are handed out: an entrant
    who already holds it (vouchers claimed first-come from any release of the campaign, or won at an
    earlier draw) is passed over, and the voucher goes to the next entrant in the drawn order.

    One transaction, whatever the size: a draw is all or nothing. It works on ids and bulk statements,
    not on loaded objects, so a million entries draw in seconds (benchmarks/big_rounds.py). A release
    whose entries a background draw already closed (DRAWING) is drawn the same way.
    """
    # The system's lock order: the campaign, then the release (entries wait on it: the list is final
    # from here), then the entrants' citizen rows, then the release's vouchers.
    campaign, release = lock_release(release_id)
    if release.mode_enum is not ReleaseMode.LOTTERY or release.status_enum not in (ReleaseStatus.OPEN,
                                                                                   ReleaseStatus.DRAWING):
        raise InvalidTransition("只有报名中的摇号场次可以开奖")
    db.session.flush()  # pending changes of the entries out before the bulk statements below
    entries: dict[int, int] = dict(db.session.execute(  # entry number -> citizen id
        select(LotteryEntry.id, LotteryEntry.citizen_id).where(LotteryEntry.release_id == release.id)
    ).all())
    limit = campaign.per_person_limit
    held: dict[int, int] = {}  # citizen id -> vouchers of the campaign held
    if limit is not None and entries:
        # Every entrant's row, in ascending id order, with the lock a first-come claim takes: a claim
        # by an entrant either committed before this (its voucher is counted below) or waits for the
        # draw to commit (and then counts the voucher won here). Whoever comes second sees the other.
        entrants = select(LotteryEntry.citizen_id).where(LotteryEntry.release_id == release.id)
        db.session.execute(select(Citizen.id).where(Citizen.id.in_(entrants)).order_by(Citizen.id).with_for_update())
        held = {citizen: count for citizen, count in db.session.execute(
            select(Voucher.citizen_id, func.count(Voucher.id))
            .where(Voucher.campaign_id == campaign.id, Voucher.citizen_id.in_(entrants))
            .group_by(Voucher.citizen_id)
        ).all() if citizen is not None}
    vouchers = db.session.scalars(
        select(Voucher.id).where(Voucher.release_id == release.id, FREE)
        .order_by(Voucher.id)
    ).all()
    prizes = min(release.quantity, len(vouchers))
    now = utcnow()
    valid_from, valid_until = voucher_validity(campaign, now)
    chosen: list[int] = []
    given: list[tuple[int, int]] = []  # (voucher id, citizen id)
    passed_over: dict[int, int] = {}  # entry number -> vouchers of the campaign its citizen held
    assert release.seed is not None  # a lottery release is created with its seed (releases.create_release)
    for number in ranked(release.seed, list(entries)):
        if len(chosen) == prizes:
            break
        citizen_id = entries[number]
        already = held.get(citizen_id, 0)
        if limit is not None and already >= limit:
            passed_over[number] = already
            continue
        given.append((vouchers[len(chosen)], citizen_id))
        held[citizen_id] = already + 1
        chosen.append(number)
    # The vouchers of a release are alike: which winner gets which is free. Ascending voucher ids to
    # ascending citizens writes the vouchers' citizen indexes in order rather than at random.
    given = list(zip(sorted(v for v, _ in given), sorted(c for _, c in given)))
    chosen.sort()
    # An entry is created not won (won = False) and only the draw changes it: mark the winners.
    _mark_won(chosen)
    _give(given, now, valid_from, valid_until)
    for number, already in passed_over.items():
        audit.record("lottery.pass_over", LotteryEntry(id=number), actor=actor, after={
            "release_id": release.id, "won": False, "reason": LIMIT_REACHED, "held": already, "limit": limit,
        })
    unwon = len(vouchers) - len(chosen)
    if unwon:
        db.session.execute(
            update(Voucher).where(Voucher.release_id == release.id, FREE)
            .values(status=VoucherStatus.WITHDRAWN.value).execution_options(synchronize_session=False)
        )
        sources = ledger.source_accounts(campaign.id)
        assert campaign.product is not None  # its releases were created with one (releases.create_release)
        face = campaign.product.face_value_fen
        ledger.post(
            EntryKind.LOTTERY_RETURN.value, campaign.id,
            ledger.voucher_lines(sources, AccountKind.RESERVED, AccountKind.AVAILABLE, face, unwon),
            memo=(f"摇号报名不足（另有 {len(passed_over)} 人{LIMIT_REACHED}）：{unwon} 张券收回" if passed_over
                  else f"摇号报名不足：{unwon} 张券收回"),
            ref=("release", release.id), actor_id=getattr(actor, "id", None),
        )
    before = release.status
    release.status = ReleaseStatus.CLOSED.value
    release.drawn_at = now
    audit.record("lottery.draw", release, actor=actor, before={"status": before},
                 after={"entries": len(entries), "winners": chosen, "seed": release.seed,
                        "passed_over": sorted(passed_over), "passed_over_reason": LIMIT_REACHED if passed_over else None})
    # The objects loaded before the bulk statements hold their old values: write the release's
    # changes, then let every object reload.
    db.session.flush()
    db.session.expire_all()
    return chosen


def _mark_won(chosen: list[int]) -> None:
    if db.session.get_bind().dialect.name == "postgresql":
        # One statement (a batch each would scan the table each time).
        db.session.execute(text("UPDATE lottery_entries SET won = true WHERE id = ANY(CAST(:ids AS integer[]))"),
                           {"ids": chosen})
        return
    for first in range(0, len(chosen), _BATCH):
        db.session.execute(update(LotteryEntry).where(LotteryEntry.id.in_(chosen[first:first + _BATCH]))
                           .values(won=True).execution_options(synchronize_session=False))


def _give(given: list[tuple[int, int]], now: datetime, valid_from: datetime, valid_until: datetime) -> None:
    """Hand each (voucher id, citizen id) its voucher: one statement on PostgreSQL (the pairs as two
    arrays, joined in one pass), an executemany elsewhere."""
    values = {"status": VoucherStatus.CLAIMED.value, "claim_slot": 1, "claimed_at": now,
              "valid_from": valid_from, "valid_until": valid_until}
    if db.session.get_bind().dialect.name == "postgresql":
        # A million pairs joined at once: room to hash them in memory instead of spilling to disk.
        db.session.execute(text("SET LOCAL work_mem = '256MB'"))
        if given:
            db.session.execute(
                text("UPDATE vouchers SET citizen_id = w.citizen_id, status = :status, claim_slot = :claim_slot,"
                     " claimed_at = :claimed_at, valid_from = :valid_from, valid_until = :valid_until"
                     " FROM unnest(CAST(:vids AS integer[]), CAST(:cids AS integer[])) AS w(voucher_id, citizen_id)"
                     " WHERE vouchers.id = w.voucher_id"),
                {**values, "vids": [v for v, _ in given], "cids": [c for _, c in given]},
            )
        return
    table = Voucher.__table__
    statement = (table.update().where(table.c.id == bindparam("voucher_id"))
                 .values(citizen_id=bindparam("to_citizen"), **values))
    for first in range(0, len(given), _BATCH):
        db.session.execute(statement, [{"voucher_id": v, "to_citizen": c} for v, c in given[first:first + _BATCH]])
