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

from sqlalchemy import func, select, update
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
from voucher.vouchers.models import Citizen, Voucher, VoucherStatus


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


def draw(release_id: int, actor: User) -> list[int]:
    """Close entries, pick the winners by the published rule, give each one voucher, and return the
    money of vouchers nobody won. Returns the winning entry numbers.

    The campaign-wide per-person limit holds here, at the moment vouchers are handed out: an entrant
    who already holds it (vouchers claimed first-come from any release of the campaign, or won at an
    earlier draw) is passed over, and the voucher goes to the next entrant in the drawn order.
    """
    # The system's lock order: the campaign, then the release (entries wait on it: the list is final
    # from here), then the entrants' citizen rows, then the release's vouchers.
    campaign, release = lock_release(release_id)
    if release.mode_enum is not ReleaseMode.LOTTERY or release.status_enum is not ReleaseStatus.OPEN:
        raise InvalidTransition("只有报名中的摇号场次可以开奖")
    entries = {e.id: e for e in db.session.scalars(
        select(LotteryEntry).where(LotteryEntry.release_id == release.id).execution_options(populate_existing=True)
    )}
    limit = campaign.per_person_limit
    held: dict[int | None, int] = {}  # citizen id -> vouchers of the campaign held
    if limit is not None and entries:
        # Every entrant's row, in ascending id order, with the lock a first-come claim takes: a claim
        # by an entrant either committed before this (its voucher is counted below) or waits for the
        # draw to commit (and then counts the voucher won here). Whoever comes second sees the other.
        entrants = select(LotteryEntry.citizen_id).where(LotteryEntry.release_id == release.id)
        db.session.execute(select(Citizen.id).where(Citizen.id.in_(entrants)).order_by(Citizen.id).with_for_update())
        held = dict(db.session.execute(
            select(Voucher.citizen_id, func.count(Voucher.id))
            .where(Voucher.campaign_id == campaign.id, Voucher.citizen_id.in_(entrants))
            .group_by(Voucher.citizen_id)
        ).all())
    vouchers = db.session.scalars(
        select(Voucher).where(Voucher.release_id == release.id, Voucher.status == VoucherStatus.AVAILABLE.value)
        .order_by(Voucher.id)
    ).all()
    prizes = min(release.quantity, len(vouchers))
    now = utcnow()
    valid_from, valid_until = voucher_validity(campaign, now)
    chosen: list[int] = []
    passed_over: dict[int, int] = {}  # entry number -> vouchers of the campaign its citizen held
    assert release.seed is not None  # a lottery release is created with its seed (releases.create_release)
    for number in ranked(release.seed, list(entries)):
        if len(chosen) == prizes:
            break
        entry = entries[number]
        already = held.get(entry.citizen_id, 0)
        if limit is not None and already >= limit:
            entry.won = False
            passed_over[number] = already
            continue
        voucher = vouchers[len(chosen)]
        entry.won = True
        voucher.status = VoucherStatus.CLAIMED.value
        voucher.citizen_id = entry.citizen_id
        voucher.claim_slot = 1
        voucher.claimed_at = now
        voucher.valid_from, voucher.valid_until = valid_from, valid_until
        held[entry.citizen_id] = already + 1
        chosen.append(number)
    for number, already in passed_over.items():
        audit.record("lottery.pass_over", entries[number], actor=actor, after={
            "release_id": release.id, "won": False, "reason": LIMIT_REACHED, "held": already, "limit": limit,
        })
    unwon = len(vouchers) - len(chosen)
    if unwon:
        db.session.flush()  # the update below must not touch the vouchers just given out
        db.session.execute(
            update(Voucher).where(Voucher.release_id == release.id, Voucher.status == VoucherStatus.AVAILABLE.value)
            .values(status=VoucherStatus.WITHDRAWN.value)
        )
        sources = ledger.source_accounts(campaign.id)
        assert campaign.product is not None  # its releases were created with one (releases.create_release)
        face = campaign.product.face_value_fen
        ledger.post(
            EntryKind.LOTTERY_RETURN.value, campaign.id,
            ledger.voucher_lines(sources, AccountKind.RESERVED, AccountKind.AVAILABLE, face, unwon),
            memo=(f"摇号报名不足（另有 {len(passed_over)} 人{LIMIT_REACHED}）：{unwon} 张券收回" if passed_over
                  else f"摇号报名不足：{unwon} 张券收回"),
            ref=("release", release.id), actor_id=actor.id,
        )
    chosen.sort()
    release.status = ReleaseStatus.CLOSED.value
    release.drawn_at = now
    audit.record("lottery.draw", release, actor=actor, before={"status": "open"},
                 after={"entries": len(entries), "winners": chosen, "seed": release.seed,
                        "passed_over": sorted(passed_over), "passed_over_reason": LIMIT_REACHED if passed_over else None})
    return chosen
