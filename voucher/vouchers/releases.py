"""Releases (发放场次): scheduling, and opening, which reserves the release's money and mints its vouchers."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, insert, select, text

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

    All in the caller's transaction. A big release is opened in steps instead, each its own unit of
    work (jobs/background.py): reserve(), then mint_chunk() until it returns 0, then finish_opening().
    """
    reserve(release_id, actor, now, at=at)
    if mint:
        while mint_chunk(release_id, MINT_CHUNK):
            pass
    return finish_opening(release_id, actor, at=at, now=now)


#: vouchers inserted per statement (and, in a background opening, per commit)
MINT_CHUNK = 50_000


def check_openable(release_id: int, now: datetime | None = None) -> tuple[Campaign, Release]:
    """The refusals of opening, without opening: what a page says at once when a big release's opening
    would only start a background job. Locks the campaign and the release, as opening does."""
    now = now or utcnow()
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
    sources = ledger.source_accounts(campaign.id)
    lines = ledger.voucher_lines(sources, AccountKind.AVAILABLE, AccountKind.RESERVED, face, release.quantity)
    try:
        ledger.require_balance(sources, AccountKind.AVAILABLE, lines)
    except AccountWouldGoNegative:
        available = ledger.campaign_balances([campaign.id])[campaign.id][AccountKind.AVAILABLE]
        raise BudgetExhausted(
            f"可用预算 {format_yuan(available)} 元，不足以开放本场次（需要 {format_yuan(release.quantity * face)} 元）"
        ) from None
    return campaign, release


def reserve(release_id: int, actor: User | None, now: datetime | None = None, *,
            at: datetime | None = None) -> Release:
    """The first step of opening: reserve the release's money in one posting; the release is then
    OPENING (nobody can claim yet, it cannot be opened again). Idempotent: a release already OPENING
    (a background opening resumed after a crash) is returned as it is, reserved once."""
    now = now or at or utcnow()
    campaign, release = lock_release(release_id)
    if release.status_enum is ReleaseStatus.OPENING:
        return release
    campaign, release = check_openable(release_id, now)
    assert campaign.product is not None  # check_openable
    face = campaign.product.face_value_fen
    sources = ledger.source_accounts(campaign.id)
    ledger.post(
        EntryKind.RELEASE_RESERVE.value, campaign.id,
        ledger.voucher_lines(sources, AccountKind.AVAILABLE, AccountKind.RESERVED, face, release.quantity),
        memo=f"场次开放预留：{release.name}", ref=("release", release.id), actor_id=getattr(actor, "id", None),
        at=at,
    )
    release.status = ReleaseStatus.OPENING.value
    return release


def minted(release_id: int) -> int:
    return db.session.execute(
        select(func.count(Voucher.id)).where(Voucher.release_id == release_id)
    ).scalar_one()


def mint_chunk(release_id: int, size: int = MINT_CHUNK) -> int:
    """Mint up to `size` of an OPENING release's vouchers still missing; returns how many (0: all are).

    Idempotent by count, not by chunk: what is missing is the quantity less the vouchers the release
    has, so a chunk rolled back (a crash, a code collision) is simply minted again, never twice."""
    campaign, release = lock_release(release_id)
    if release.status_enum is not ReleaseStatus.OPENING:
        raise InvalidTransition(f"场次当前为「{release.status_enum.label}」，不能生成消费券")
    assert campaign.product is not None  # reserve() checked it
    missing = min(size, release.quantity - minted(release_id))
    if missing > 0:
        _mint(release, campaign.product.face_value_fen, missing)
    return max(missing, 0)


def finish_opening(release_id: int, actor: User | None, *, at: datetime | None = None,
                   now: datetime | None = None) -> Release:
    """The last step: the release, reserved and with its vouchers (or minted by the caller), opens."""
    campaign, release = lock_release(release_id)
    if release.status_enum is not ReleaseStatus.OPENING:
        raise InvalidTransition(f"场次当前为「{release.status_enum.label}」，不能开放")
    assert campaign.product is not None  # reserve() checked it
    release.status = ReleaseStatus.OPEN.value
    release.opened_at = at or now or utcnow()
    audit.record(
        "release.open", release, actor=actor, before={"status": "scheduled"},
        after={"status": release.status, "reserved_fen": release.quantity * campaign.product.face_value_fen}, at=at,
    )
    return release


def _mint(release: Release, face: int, count: int) -> None:
    issued: set[str] = set()
    while len(issued) < count:
        issued.update(codes.new_codes(count - len(issued)))
    if db.session.get_bind().dialect.name == "postgresql":
        # One statement per chunk, the codes as one array: several times faster than a multi-row
        # INSERT of the same rows (benchmarks/big_rounds.py).
        ordered = list(issued)
        for first in range(0, len(ordered), MINT_CHUNK):
            db.session.execute(
                text("INSERT INTO vouchers (code, release_id, campaign_id, face_value_fen, status)"
                     " SELECT code, :release_id, :campaign_id, :face, :status FROM unnest(CAST(:codes AS text[])) AS code"),
                {"codes": ordered[first:first + MINT_CHUNK], "release_id": release.id,
                 "campaign_id": release.campaign_id, "face": face, "status": VoucherStatus.AVAILABLE.value},
            )
        return
    rows = [
        {"code": code, "release_id": release.id, "campaign_id": release.campaign_id, "face_value_fen": face,
         "status": VoucherStatus.AVAILABLE.value}
        for code in issued
    ]
    for first in range(0, len(rows), MINT_CHUNK):
        db.session.execute(insert(Voucher), rows[first:first + MINT_CHUNK])
