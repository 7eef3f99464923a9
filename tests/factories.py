"""Builders for test data, going through the same services the product uses."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select

from voucher.accounts.models import User
from voucher.accounts.services import create_user
from voucher.campaigns import services as campaigns
from voucher.campaigns.models import Campaign, Measure, Release
from voucher.core.clock import local_today, utcnow
from voucher.core.db import db
from voucher.core.money import format_yuan
from voucher.core.permissions import Role
from voucher.merchants.models import Merchant, Store
from voucher.vouchers import releases
from voucher.vouchers.models import Citizen, Voucher

PASSWORD = "secret-pass-1"


@dataclass
class World:
    maker: User
    approver: User
    finance: User
    auditor: User
    admin: User
    manager: User
    cashier: User  # 餐饮, 海州区: eligible
    cashier_car: User  # 汽车: wrong category
    cashier_donghai: User  # 零售 in 东海县: wrong district
    merchant: Merchant
    other_merchant: Merchant


def _merchant(name: str, uscc: str, category: str, district: str) -> Merchant:
    # Complete settlement details, as an approved merchant has: the payout file needs them.
    merchant = Merchant(name=name, uscc=uscc, category=category, status="approved", bank_account_name=name,
                        bank_name="港城银行")
    merchant.stores.append(Store(name=name + "门店", district=district))
    db.session.add(merchant)
    db.session.flush()  # ids for the users below
    merchant.bank_account_no = f"62220200{merchant.id:08d}"
    return merchant


def make_world() -> World:
    food = _merchant("港城老味道餐厅", "91320706MA2ABC0026", "餐饮", "海州区")
    car = _merchant("港城汽车", "91320700MA3CAR0034", "汽车", "海州区")
    donghai = _merchant("晶都百货", "91320722MA4DHX004Y", "零售", "东海县")

    def user(name: str, role: Role, merchant: Merchant | None = None) -> User:
        return create_user(
            name, PASSWORD, role, merchant_id=merchant.id if merchant else None,
            store_id=merchant.stores[0].id if merchant and role is Role.CASHIER else None,
        )

    world = World(
        maker=user("maker", Role.BUREAU_MAKER),
        approver=user("approver", Role.BUREAU_APPROVER),
        finance=user("finance", Role.FINANCE),
        auditor=user("auditor", Role.AUDITOR),
        admin=user("admin", Role.ADMIN),
        manager=user("manager", Role.MERCHANT_MANAGER, food),
        cashier=user("cashier", Role.CASHIER, food),
        cashier_car=user("cashier_car", Role.CASHIER, car),
        cashier_donghai=user("cashier_donghai", Role.CASHIER, donghai),
        merchant=food,
        other_merchant=car,
    )
    db.session.commit()
    return world


def make_campaign(
    world: World,
    *,
    budget_fen: int = 1_000_000_00,
    face_value_fen: int = 20_00,
    threshold_fen: int = 100_00,
    quantity: int = 100,
    per_person_limit: int = 1,
    valid_from: date | None = None,
    valid_until: date | None = None,
    sources: list[campaigns.SourceInput] | None = None,
    measure_number: int = 1,
    plan_override_reason: str | None = None,
    **fields,
) -> tuple[Campaign, Release | None]:
    """An approved campaign (measure 1 by default: 餐饮/零售 in 海州区 and 连云区) with one open round
    (none for a grant campaign). `fields` overrides any CampaignInput field. A campaign beyond its
    measure's plan, or under a measure with none, needs `plan_override_reason` (campaigns/plan_check.py)."""
    measure = db.session.scalar(select(Measure).where(Measure.number == measure_number))
    data = campaigns.CampaignInput(
        measure_id=measure.id, name="市区餐饮零售消费券", face_value_fen=face_value_fen,
        threshold_fen=threshold_fen, categories=["餐饮", "零售"], districts=["海州区", "连云区"],
        valid_from=valid_from or local_today(), valid_until=valid_until or local_today() + timedelta(days=30),
        sources=sources or [campaigns.SourceInput("municipal_finance", "市财政", budget_fen)],
    )
    for key, value in fields.items():
        setattr(data, key, value)
    campaign = campaigns.create_campaign(data, world.maker)
    campaigns.submit_for_approval(campaign, world.maker)
    campaigns.approve(campaign.id, world.approver, plan_override_reason=plan_override_reason)
    release = None
    if campaign.product is not None:
        release = releases.create_release(
            campaign, name="第一轮", quantity=quantity, per_person_limit=per_person_limit,
            opens_at=utcnow() - timedelta(minutes=1), actor=world.maker,
        )
        releases.open_release(release.id, world.maker)
    db.session.commit()
    return campaign, release


def make_citizen(tag: str = "a") -> Citizen:
    citizen = Citizen(identity_hash=(tag * 64)[:64])
    db.session.add(citizen)
    db.session.commit()
    return citizen


def claim_one(release: Release, citizen: Citizen) -> Voucher:
    from voucher.vouchers.services import claim

    voucher = claim(release.id, citizen)
    db.session.commit()
    return voucher


def bank_statement(batches, day: date | None = None, serial_prefix: str = "T") -> bytes:
    """The bank's statement of paying `batches` in full, in the system's template (UTF-8 CSV)."""
    day = day or local_today()
    lines = ["交易日期,流水号,附言,收款户名,收款账号,金额"]
    for batch in batches:
        lines.append(f"{day.isoformat()},{serial_prefix}{batch.id:08d},消费券结算 {batch.reference},"
                     f"{batch.merchant.bank_account_name},{batch.merchant.bank_account_no},{format_yuan(batch.amount_fen, grouping=False)}")
    return ("\ufeff" + "\n".join(lines) + "\n").encode("utf-8")


def pay_through_bank(batches, finance: User) -> None:
    """What finance does to pay batches: a payout file, the bank's statement of it, and the confirmation
    of the matched lines. The caller commits."""
    from voucher.reconciliation import payments
    from voucher.reconciliation import services as reconciliation
    from voucher.settlement import payout_files

    batches = list(batches)
    payout_files.create(finance)
    reconciliation.import_statement(bank_statement(batches), f"statement-{batches[0].id}.csv", None, finance)
    for batch in batches:
        payments.confirm_paid(batch.id, finance)
