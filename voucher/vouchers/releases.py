"""Releases (发放场次): scheduling, and opening, which reserves the release's money and mints its vouchers."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert

from voucher.accounts.models import User
from voucher.campaigns.models import Campaign, CampaignStatus, Instrument, Release, ReleaseMode, ReleaseStatus
from voucher.campaigns.services import lock_campaign, lock_release
from voucher.core import audit
from voucher.core.clock import local_day_end_utc, utcnow
from voucher.core.db import db
from voucher.core.errors import AccountWouldGoNegative, BudgetExhausted, InvalidInput, InvalidTransition
from voucher.core.money import format_yuan
from voucher.ledger import services as ledger
from voucher.ledger.models import AccountKind, EntryKind
from voucher.vouchers import codes, lottery
from voucher.vouchers.batches import MAX_BATCHES
from voucher.vouchers.models import Voucher, VoucherStatus


def create_release(
    campaign: Campaign,
    *,
    name: str,
    quantity: int,
    per_person_limit: int,
    opens_at: datetime,
    actor: User,
    mode: str = ReleaseMode.FIRST_COME.value,
    at: datetime | None = None,
    batches: int = 1,
    batch_minutes: int = 0,
) -> Release:
    """Schedule a release. `at` (default now) dates it and its audit entry, as in open_release()."""
    # Under the campaign's lock: a close committing meanwhile would otherwise leave this release
    # scheduled in a closed campaign (found by the randomized money soak).
    campaign = lock_campaign(campaign.id)
    if campaign.status_enum not in (CampaignStatus.ACTIVE, CampaignStatus.PAUSED):
        raise InvalidTransition("活动批准后才能安排发放场次")
    if campaign.instrument_enum is Instrument.GRANT:
        raise InvalidTransition("补贴申报类活动不发券，没有发放场次")
    if not name.strip():
        raise InvalidInput("请填写场次名称")
    if quantity <= 0:
        raise InvalidInput("发放数量必须大于 0")
    if per_person_limit <= 0:
        raise InvalidInput("每人限领数量必须大于 0")
    if mode not in {m.value for m in ReleaseMode}:
        raise InvalidInput("请选择发放方式")
    if mode == ReleaseMode.LOTTERY.value and per_person_limit != 1:
        raise InvalidInput("摇号场次每人限中 1 张")
    if not 1 <= batches <= MAX_BATCHES or batch_minutes < 0 or batch_minutes > 24 * 60:
        raise InvalidInput(f"分批开放应为 1 到 {MAX_BATCHES} 批、每批间隔 0 到 1440 分钟")
    if batches > 1 and (mode == ReleaseMode.LOTTERY.value or batch_minutes == 0):
        raise InvalidInput("分批开放只用于先到先得的场次，并需填写每批间隔分钟数")
    if any(r.name == name.strip() for r in campaign.releases):
        raise InvalidInput(f"场次名称「{name.strip()}」已存在")
    if campaign.product is None:
        raise InvalidTransition("活动尚未设置券面，不能安排发放场次")
    needed = quantity * campaign.product.face_value_fen
    if needed > campaign.budget_fen:
        raise BudgetExhausted(
            f"本场次需要 {format_yuan(needed)} 元（{quantity:,} 张 × {format_yuan(campaign.product.face_value_fen)} 元），"
            f"超过活动预算 {format_yuan(campaign.budget_fen)} 元"
        )
    seed = commitment = None
    if mode == ReleaseMode.LOTTERY.value:
        seed, commitment = lottery.new_seed()
    release = Release(
        campaign_id=campaign.id, name=name.strip(), quantity=quantity, per_person_limit=per_person_limit,
        opens_at=opens_at, created_by_id=actor.id, mode=mode, seed=seed, seed_commitment=commitment,
        created_at=at or utcnow(), batches=batches, batch_minutes=batch_minutes,
    )
    db.session.add(release)
    db.session.flush()  # the audit entry needs the new id
    audit.record(
        "release.create", release, actor=actor,
        after={"name": release.name, "quantity": quantity, "per_person_limit": per_person_limit, "opens_at": opens_at,
               "mode": mode, "seed_commitment": commitment, "batches": batches, "batch_minutes": batch_minutes},
        at=at,
    )
    return release


def open_release(release_id: int, actor: User | None, now: datetime | None = None, *, at: datetime | None = None,
                 mint: bool = True) -> Release:
    """Open a release: reserve quantity x face value in one posting, then mint its vouchers.

    Reserving the whole release up front keeps claims off the ledger entirely: a claim only takes one
    minted voucher row, so the hot path touches no shared balance.

    `now` (default now) is what the opening time and the campaign's validity are checked against: the
    job passes its slot. `at` is when the opening happened, for a loader replaying history
    (seed/city_scale.py): it is then `now` too, and dates the posting and the audit entry as well as
    opened_at. With `mint=False` the caller writes the release's vouchers itself (that loader, in bulk).
    """
    now = now or at or utcnow()
    campaign, release = lock_release(release_id)
    if release.status_enum is not ReleaseStatus.SCHEDULED:
        raise InvalidTransition(f"场次当前为「{release.status_enum.label}」，不能再次开放")
    if campaign.status_enum is not CampaignStatus.ACTIVE:
        raise InvalidTransition("活动不在进行中，不能开放场次")
    if release.opens_at > now:
        raise InvalidTransition("尚未到场次的开放时间")
    if now > local_day_end_utc(campaign.valid_until):
        raise InvalidTransition("活动已过有效期，不能再开放场次")
    assert campaign.product is not None  # its releases were created with one (create_release)
    face = campaign.product.face_value_fen
    needed = release.quantity * face
    sources = ledger.source_accounts(campaign.id)
    lines = ledger.voucher_lines(sources, AccountKind.AVAILABLE, AccountKind.RESERVED, face, release.quantity)
    try:
        ledger.require_balance(sources, AccountKind.AVAILABLE, lines)
    except AccountWouldGoNegative:
        available = ledger.campaign_balances([campaign.id])[campaign.id][AccountKind.AVAILABLE]
        raise BudgetExhausted(
            f"可用预算 {format_yuan(available)} 元，不足以开放本场次（需要 {format_yuan(needed)} 元）"
        ) from None
    ledger.post(
        EntryKind.RELEASE_RESERVE.value, campaign.id, lines,
        memo=f"场次开放预留：{release.name}", ref=("release", release.id), actor_id=getattr(actor, "id", None),
        at=at,
    )
    if mint:
        _mint(release, face)
    release.status = ReleaseStatus.OPEN.value
    release.opened_at = at or now
    audit.record(
        "release.open", release, actor=actor, before={"status": "scheduled"},
        after={"status": release.status, "reserved_fen": needed}, at=at,
    )
    return release


def _mint(release: Release, face: int) -> None:
    issued: set[str] = set()
    while len(issued) < release.quantity:
        issued.add(codes.new_code())
    db.session.execute(
        insert(Voucher),
        [
            {"code": code, "release_id": release.id, "campaign_id": release.campaign_id, "face_value_fen": face,
             "status": VoucherStatus.AVAILABLE.value}
            for code in issued
        ],
    )
