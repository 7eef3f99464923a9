"""Claiming vouchers, listing a citizen's vouchers, and reading a typed or scanned code."""
from __future__ import annotations

from datetime import datetime

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from voucher.campaigns.models import Campaign, CampaignStatus, LotteryEntry, Release, ReleaseMode, ReleaseStatus
from voucher.campaigns.services import voucher_validity
from voucher.core import audit
from voucher.core.clock import local_day_end_utc, utcnow
from voucher.core.db import db
from voucher.core.errors import ClaimLimitReached, InvalidToken, NotFound, ReleaseNotOpen, SoldOut
from voucher.vouchers import codes, tokens
from voucher.vouchers.models import Citizen, Voucher, VoucherStatus


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
        .where(Voucher.release_id.in_(release_ids), Voucher.status == VoucherStatus.AVAILABLE.value)
        .group_by(Voucher.release_id)
    )
    return dict(rows.all())


# Rounds seen sold out by this process. A round's pool never refills (a claimed voucher can only be
# redeemed, expire or be withdrawn, never become claimable again), so the answer is final; release
# ids are never reused by a live database.
_SOLD_OUT: set[int] = set()


def forget_sold_out() -> None:
    """For a database whose ids start over (the test suite empties its tables between tests)."""
    _SOLD_OUT.clear()


def ensure_not_sold_out(release_id: int) -> None:
    """Answer a flash crowd's late arrivals without touching the database."""
    if release_id in _SOLD_OUT:
        raise SoldOut()


def claim(release_id: int, citizen: Citizen, now: datetime | None = None, *, actor_label: str | None = None) -> Voucher:
    """Give the citizen one free voucher of the round, within the per-person limit.

    Touches one voucher row (SKIP LOCKED, so concurrent claimants never queue on each other) and no
    balance: the money was reserved when the round opened.
    """
    now = now or utcnow()
    release = db.session.get(Release, release_id)
    if release is None:
        raise NotFound("找不到该发放场次")
    if release.status_enum is not ReleaseStatus.OPEN or release.campaign.status_enum is not CampaignStatus.ACTIVE:
        raise ReleaseNotOpen()
    if release.mode_enum is ReleaseMode.LOTTERY:
        raise ReleaseNotOpen("本场次为摇号发放，请报名参加摇号")
    if now > local_day_end_utc(release.campaign.valid_until):
        raise ReleaseNotOpen("活动已过有效期，不再发放")
    campaign = release.campaign
    valid_from, valid_until = voucher_validity(campaign, now)
    if campaign.per_person_limit is not None:
        # A campaign-wide limit spans rounds, so the per-round slot cannot guard it: serialise this
        # citizen's claims (only theirs) on their own row, then count.
        db.session.scalar(select(Citizen.id).where(Citizen.id == citizen.id).with_for_update())
        held_in_campaign = db.session.scalar(
            select(func.count(Voucher.id)).where(Voucher.campaign_id == campaign.id, Voucher.citizen_id == citizen.id)
        )
        if held_in_campaign >= campaign.per_person_limit:
            raise ClaimLimitReached(f"本活动每人限领 {campaign.per_person_limit} 张，您已领取 {held_in_campaign} 张")
    voucher = None
    # The k-th claim of a citizen takes slot k (unique per round). When a parallel claim by the same
    # citizen takes the slot first, count again and try the next one, until the limit.
    for _ in range(release.per_person_limit + 1):
        held = db.session.scalar(
            select(func.count(Voucher.id)).where(Voucher.release_id == release_id, Voucher.citizen_id == citizen.id)
        )
        if held >= release.per_person_limit:
            raise ClaimLimitReached(f"每人限领 {release.per_person_limit} 张，您已领取 {held} 张")
        if voucher is None:
            voucher = db.session.scalar(
                select(Voucher)
                .where(Voucher.release_id == release_id, Voucher.status == VoucherStatus.AVAILABLE.value)
                .order_by(Voucher.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if voucher is None:
                if not db.session.scalar(
                    select(Voucher.id).where(Voucher.release_id == release_id,
                                             Voucher.status == VoucherStatus.AVAILABLE.value).limit(1)
                ):
                    _SOLD_OUT.add(release_id)  # none left at all, not merely all locked right now
                raise SoldOut()
        try:
            with db.session.begin_nested():
                voucher.status = VoucherStatus.CLAIMED.value
                voucher.citizen_id = citizen.id
                voucher.claim_slot = held + 1
                voucher.claimed_at = now
                voucher.valid_from = valid_from
                voucher.valid_until = valid_until
            break
        except IntegrityError:
            continue
    else:
        raise ClaimLimitReached(f"每人限领 {release.per_person_limit} 张")
    audit.record("voucher.claim", voucher, actor_label=actor_label or f"市民#{citizen.id}",
                 after={"release_id": release_id, "citizen_id": citizen.id})
    return voucher


def citizen_vouchers(citizen_id: int) -> list[Voucher]:
    return list(
        db.session.scalars(select(Voucher).where(Voucher.citizen_id == citizen_id).order_by(Voucher.claimed_at.desc()))
    )


def qr_token(voucher: Voucher) -> str:
    return tokens.sign(voucher.code, current_app.config["QR_SIGNING_KEYS"], current_app.config["QR_ACTIVE_KEY_ID"])


def code_from_input(text: str) -> str:
    """Turn what the scanner or the cashier typed into a voucher code, refusing forgeries before any lookup."""
    raw = (text or "").strip()
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


def lottery_entries_of(citizen_id: int, release_ids: list[int]) -> dict[int, int]:
    """The citizen's entry number per lottery round entered."""
    rows = db.session.execute(
        select(LotteryEntry.release_id, LotteryEntry.id)
        .where(LotteryEntry.citizen_id == citizen_id, LotteryEntry.release_id.in_(release_ids))
    )
    return dict(rows.all())


def lottery_entry_numbers(release_id: int, *, won: bool | None = None) -> list[int]:
    query = select(LotteryEntry.id).where(LotteryEntry.release_id == release_id).order_by(LotteryEntry.id)
    if won is not None:
        query = query.where(LotteryEntry.won.is_(won))
    return list(db.session.scalars(query))
