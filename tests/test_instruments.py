"""The instruments of the 20 measures, end to end: free tickets, percentage purchase subsidies, partner
(bank) vouchers, claim-relative validity, daily usable hours, campaign-wide claim limits, and grants."""
from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from sqlalchemy import func, select

from tests.factories import PASSWORD, _merchant, claim_one, make_campaign, make_citizen, make_world
from voucher.accounts.services import create_user
from voucher.campaigns import services
from voucher.campaigns.budget import funder_statement
from voucher.campaigns.models import Measure, Release
from voucher.campaigns.services import SourceInput
from voucher.core.clock import local_day_end_utc, local_today, to_local, utcnow
from voucher.core.errors import (
    ClaimLimitReached,
    InvalidTransition,
    MerchantNotEligible,
    OutsideUsableHours,
    ThresholdNotMet,
    VoucherExpired,
)
from voucher.core.permissions import Role
from voucher.core.uscc import check_char, is_valid
from voucher.counter.redemption import redeem
from voucher.ledger.models import AccountKind
from voucher.ledger.services import campaign_balances
from voucher.reports.consistency import verify_ledger
from voucher.vouchers import releases
from voucher.vouchers.models import Voucher
from voucher.vouchers.services import claim


def login(client, username):
    client.post("/logout")
    response = client.post("/login", data={"username": username, "password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)


def merchant_with_cashier(db, name: str, category: str, district: str, serial: int, username: str):
    first17 = f"91320706MA7WL{serial:04d}"
    uscc = first17 + check_char(first17)
    assert is_valid(uscc)
    merchant = _merchant(name, uscc, category, district)
    cashier = create_user(username, PASSWORD, Role.CASHIER, merchant_id=merchant.id, store_id=merchant.stores[0].id)
    db.session.commit()
    return merchant, cashier


def balances(campaign_id: int) -> dict[AccountKind, int]:
    return dict(campaign_balances([campaign_id])[campaign_id])


# (a) Free tickets --------------------------------------------------------------------------------------


def test_free_ticket_is_paid_in_full_by_the_campaign(client, db):
    world = make_world()
    merchant_with_cashier(db, "花果山景区", "文旅", "云台山景区", 1, "cashier_scenic")
    campaign, release = make_campaign(
        world, measure_number=2, instrument="free_ticket", name="4A级景区免费电子门票", face_value_fen=120_00,
        threshold_fen=0, categories=["文旅"], districts=[], budget_fen=100_000_00, quantity=5,
    )
    assert campaign.product.kind == "free_ticket" and campaign.product.threshold_fen == 0
    voucher = claim_one(release, make_citizen())

    # A restaurant cannot take a scenic-spot ticket.
    with pytest.raises(MerchantNotEligible):
        redeem(voucher.code, 120_00, world.cashier)
    db.session.rollback()

    login(client, "cashier_scenic")
    response = client.post("/counter", data={"code": voucher.code, "order_amount": "120", "idempotency_key": "t1"})
    page = response.get_data(as_text=True)
    assert response.status_code == 200, page
    assert "核销成功" in page and "优惠 ¥120.00" in page and "<strong>¥0.00</strong>" in page

    db.session.expire_all()
    redeemed = db.session.get(Voucher, voucher.id)
    assert redeemed.status == "redeemed"
    totals = balances(campaign.id)
    assert totals[AccountKind.SPENT] == 120_00
    assert totals[AccountKind.RESERVED] == 4 * 120_00
    assert totals[AccountKind.AVAILABLE] == 100_000_00 - 5 * 120_00
    assert verify_ledger() == []


# (b) Percentage purchase subsidies -------------------------------------------------------------------


def test_percentage_subsidy_rounds_down_is_capped_and_returns_the_unused_cap(db):
    world = make_world()
    listed, listed_cashier = merchant_with_cashier(db, "苏宁易购连云港店", "家电家居", "海州区", 2, "cashier_listed")
    _, unlisted_cashier = merchant_with_cashier(db, "国美电器连云港店", "家电家居", "海州区", 3, "cashier_unlisted")
    campaign, release = make_campaign(
        world, measure_number=6, instrument="purchase_subsidy", name="绿色节能家电补贴", percent_bp=1000,
        face_value_fen=500_00, threshold_fen=0, categories=["家电家居"], districts=[], merchant_ids=[listed.id],
        budget_fen=1_000_000_00, quantity=10, per_person_limit=3,
        plan_override_reason="政策未定节能家电补贴总额，按财政批复安排",  # measure 6 plans no money
    )
    assert campaign.product.kind == "percentage" and campaign.product.percent_bp == 1000
    citizen = make_citizen()
    first, second, third = (claim_one(release, citizen) for _ in range(3))
    start = balances(campaign.id)
    assert start[AccountKind.RESERVED] == 10 * 500_00
    assert start[AccountKind.AVAILABLE] == 1_000_000_00 - 10 * 500_00

    # 10% of 3,999.99 is 399.999: rounded down to 399.99; the 100.01 of the cap not used goes back.
    assert redeem(first.code, 3_999_99, listed_cashier).redemption.subsidy_fen == 399_99
    db.session.commit()
    after_first = balances(campaign.id)
    assert after_first[AccountKind.SPENT] == 399_99
    assert after_first[AccountKind.RESERVED] == start[AccountKind.RESERVED] - 500_00
    assert after_first[AccountKind.AVAILABLE] == start[AccountKind.AVAILABLE] + 100_01

    # 10% of 8,000 is 800: capped at 500.
    redemption = redeem(second.code, 8_000_00, listed_cashier).redemption
    db.session.commit()
    assert redemption.subsidy_fen == 500_00 and redemption.paid_by_citizen_fen == 7_500_00
    after_second = balances(campaign.id)
    assert after_second[AccountKind.SPENT] == 899_99
    assert after_second[AccountKind.AVAILABLE] == after_first[AccountKind.AVAILABLE]

    # A seller of the same category that did not win the bid is refused.
    with pytest.raises(MerchantNotEligible) as refused:
        redeem(third.code, 2_000_00, unlisted_cashier)
    assert "指定商户" in refused.value.message
    db.session.rollback()
    db.session.expire_all()
    assert db.session.get(Voucher, third.id).status == "claimed"
    assert balances(campaign.id) == after_second
    assert verify_ledger() == []


# (c) Partner (bank) vouchers ---------------------------------------------------------------------------


def test_partner_voucher_behaves_like_a_fixed_voucher_and_the_statement_shows_the_bank(client, db):
    world = make_world()
    campaign, release = make_campaign(
        world, measure_number=13, name="社区商圈消费券", face_value_fen=10_00, threshold_fen=50_00,
        sources=[SourceInput("bank", "交通银行连云港分行", 1_000_000_00)], quantity=20,
    )
    source = campaign.funding_sources[0]
    voucher = claim_one(release, make_citizen())
    with pytest.raises(ThresholdNotMet):
        redeem(voucher.code, 49_99, world.cashier)
    db.session.rollback()
    assert redeem(voucher.code, 50_00, world.cashier).redemption.subsidy_fen == 10_00
    db.session.commit()

    statement = funder_statement(source.id)
    assert statement.source.name == "交通银行连云港分行"
    assert statement.source.kind == "bank" and statement.source.kind_label == "银行"
    assert statement.funded_fen == 1_000_000_00
    assert statement.balances[AccountKind.SPENT] == 10_00
    assert statement.balances[AccountKind.RESERVED] == 19 * 10_00
    assert verify_ledger() == []

    login(client, "finance")
    page = client.get(f"/funding-sources/{source.id}/statement").get_data(as_text=True)
    assert "交通银行连云港分行" in page and "社区商圈消费券" in page


# (d) Validity counted from the claim -------------------------------------------------------------------


def test_validity_days_count_from_the_claim(db):
    world = make_world()
    campaign, release = make_campaign(world, validity_days=3, quantity=3)
    voucher = claim_one(release, make_citizen())
    claimed_at, valid_until = voucher.claimed_at, voucher.valid_until
    assert abs((valid_until - (claimed_at + timedelta(days=3))).total_seconds()) <= 1
    assert valid_until < local_day_end_utc(campaign.valid_until)

    with pytest.raises(VoucherExpired):
        redeem(voucher.code, 150_00, world.cashier, now=claimed_at + timedelta(days=4))
    db.session.rollback()
    result = redeem(voucher.code, 150_00, world.cashier, now=claimed_at + timedelta(days=2))
    db.session.commit()
    assert result.redemption.subsidy_fen == 20_00
    assert verify_ledger() == []


# (e) Daily usable hours (Beijing time) -----------------------------------------------------------------


def test_usable_hours_are_beijing_time(db):
    world = make_world()
    campaign, release = make_campaign(world, usable_from=time(10, 0), usable_until=time(22, 0), quantity=3)
    voucher = claim_one(release, make_citizen())
    today = local_today()
    two_am = datetime.combine(today, time(18, 0))  # naive UTC: 02:00 the next morning in Beijing
    noon = datetime.combine(today + timedelta(days=1), time(4, 0))  # 12:00 Beijing, the same local day
    assert (to_local(two_am).hour, to_local(noon).hour) == (2, 12)
    assert to_local(two_am).date() == to_local(noon).date()

    with pytest.raises(OutsideUsableHours) as refused:
        redeem(voucher.code, 150_00, world.cashier, now=two_am)
    assert "仅限每日 10:00–22:00" in refused.value.message
    db.session.rollback()

    assert redeem(voucher.code, 150_00, world.cashier, now=noon).redemption.subsidy_fen == 20_00
    db.session.commit()
    assert verify_ledger() == []


# (f) A campaign-wide limit across rounds ---------------------------------------------------------------


def test_campaign_wide_limit_spans_rounds(db):
    world = make_world()
    measure_id = db.session.scalar(select(Measure.id).where(Measure.number == 1))
    campaign = services.create_campaign(services.CampaignInput(
        measure_id=measure_id, name="限领一张的消费券", face_value_fen=20_00, threshold_fen=100_00,
        categories=["餐饮"], districts=["海州区"], valid_from=local_today(),
        valid_until=local_today() + timedelta(days=30), per_person_limit=1,
        sources=[SourceInput("municipal_finance", "市财政", 100_000_00)],
    ), world.maker)
    services.submit_for_approval(campaign, world.maker)
    services.approve(campaign.id, world.approver)
    rounds = []
    for name in ("第一轮", "第二轮"):
        release = releases.create_release(campaign, name=name, quantity=5, per_person_limit=1,
                                          opens_at=utcnow() - timedelta(minutes=1), actor=world.maker)
        releases.open_release(release.id, world.maker)
        rounds.append(release.id)
    db.session.commit()

    citizen, other = make_citizen("a"), make_citizen("b")
    claim(rounds[0], citizen)
    db.session.commit()
    with pytest.raises(ClaimLimitReached) as refused:
        claim(rounds[1], citizen)
    assert "本活动每人限领" in refused.value.message
    db.session.rollback()
    assert db.session.scalar(select(func.count(Voucher.id)).where(Voucher.citizen_id == citizen.id)) == 1

    # Someone who has none yet can still claim in the second round.
    assert claim(rounds[1], other).citizen_id == other.id
    db.session.commit()
    assert verify_ledger() == []


# (g) Grants -------------------------------------------------------------------------------------------


def test_grant_campaign_has_no_product_and_no_rounds(client, db):
    world = make_world()
    campaign, release = make_campaign(
        world, measure_number=10, instrument="grant", name="名优产品展示展销活动补助",
        award_min_fen=10_000_00, award_max_fen=30_000_00, categories=[], districts=[],
        sources=[SourceInput("municipal_finance", "市财政", 500_000_00)],
    )
    assert release is None
    assert campaign.product is None
    assert (campaign.award_min_fen, campaign.award_max_fen) == (10_000_00, 30_000_00)
    assert balances(campaign.id)[AccountKind.AVAILABLE] == 500_000_00

    with pytest.raises(InvalidTransition) as refused:
        releases.create_release(campaign, name="第一轮", quantity=10, per_person_limit=1,
                                opens_at=utcnow(), actor=world.maker)
    assert "补贴申报类活动不发券" in refused.value.message
    db.session.rollback()

    login(client, "maker")
    opens = local_today().isoformat() + "T08:00"
    response = client.post(f"/campaigns/{campaign.id}/releases", data={
        "name": "第一轮", "quantity": "10", "per_person_limit": "1", "opens_at": opens})
    assert response.status_code == 409
    assert "补贴申报类活动不发券" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count(Release.id))) == 0
    assert db.session.scalar(select(func.count(Voucher.id))) == 0
    assert verify_ledger() == []
