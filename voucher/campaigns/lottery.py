"""Verifiable lottery rounds (commit and reveal).

Before a lottery round opens, the product publishes commitment = SHA-256(seed). Citizens enter while
it is open; each entry's id is its public number. At the draw every entry is ranked by
SHA-256("<seed>:<entry number>") (hex, ascending) and the first `quantity` win. The seed and the
entry list are then published, so anyone can check that the seed matches the commitment and
recompute the winners with `winners()` below, or three lines of any language.
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


def winners(seed: str, entry_numbers: list[int], quantity: int) -> list[int]:
    """The published rule: rank entries by SHA-256("seed:number"), the first `quantity` win."""
    ranked = sorted(entry_numbers, key=lambda n: hashlib.sha256(f"{seed}:{n}".encode()).hexdigest())
    return sorted(ranked[:quantity])


def enter(release_id: int, citizen: Citizen) -> LotteryEntry:
    # A shared lock: entries may come in together, but not while the draw (which locks the round
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
        # Winning must not take a citizen past the campaign-wide limit: count what they hold now,
        # with their row locked as a first-come claim does.
        db.session.scalar(select(Citizen.id).where(Citizen.id == citizen.id).with_for_update())
        held = db.session.scalar(
            select(func.count(Voucher.id)).where(Voucher.campaign_id == release.campaign_id,
                                                 Voucher.citizen_id == citizen.id)
        )
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
    money of vouchers nobody won. Returns the winning entry numbers."""
    campaign, release = lock_release(release_id)
    if release.mode_enum is not ReleaseMode.LOTTERY or release.status_enum is not ReleaseStatus.OPEN:
        raise InvalidTransition("只有报名中的摇号场次可以开奖")
    entries = {e.id: e for e in db.session.scalars(select(LotteryEntry).where(LotteryEntry.release_id == release.id))}
    chosen = winners(release.seed, list(entries), release.quantity)
    vouchers = db.session.scalars(
        select(Voucher).where(Voucher.release_id == release.id, Voucher.status == VoucherStatus.AVAILABLE.value)
        .order_by(Voucher.id)
    ).all()
    now = utcnow()
    valid_from, valid_until = voucher_validity(campaign, now)
    for number, voucher in zip(chosen, vouchers):
        entry = entries[number]
        entry.won = True
        voucher.status = VoucherStatus.CLAIMED.value
        voucher.citizen_id = entry.citizen_id
        voucher.claim_slot = 1
        voucher.claimed_at = now
        voucher.valid_from, voucher.valid_until = valid_from, valid_until
    unwon = len(vouchers) - len(chosen)
    if unwon:
        db.session.flush()  # the update below must not touch the vouchers just given out
        db.session.execute(
            update(Voucher).where(Voucher.release_id == release.id, Voucher.status == VoucherStatus.AVAILABLE.value)
            .values(status=VoucherStatus.WITHDRAWN.value)
        )
        sources = ledger.source_accounts(campaign.id)
        face = campaign.product.face_value_fen
        ledger.post(
            EntryKind.LOTTERY_RETURN.value, campaign.id,
            ledger.voucher_lines(sources, AccountKind.RESERVED, AccountKind.AVAILABLE, face, unwon),
            memo=f"摇号报名不足：{unwon} 张券收回", ref=("release", release.id), actor_id=actor.id,
        )
    release.status = ReleaseStatus.CLOSED.value
    release.drawn_at = now
    audit.record("lottery.draw", release, actor=actor, before={"status": "open"},
                 after={"entries": len(entries), "winners": chosen, "seed": release.seed})
    return chosen
