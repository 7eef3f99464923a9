"""The flows around the hot paths under concurrency: every collision ends in a definite answer (done,
"already done", or a 409), never a lost update or a 500, and the ledger verifies afterwards.

Each worker is its own transaction on its own connection, released together by a barrier (see
tests/test_concurrency.py). PostgreSQL is where these races happened; SQLite serialises writers.
"""
from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select

from tests.factories import claim_one, make_campaign, make_citizen, make_world
from tests.test_concurrency import run_at_once
from voucher.accounts.models import User
from voucher.campaigns.budget import decide_change, request_change
from voucher.campaigns.models import Campaign, FundingSource
from voucher.core.audit import AuditEntry
from voucher.core.db import db as _db
from voucher.counter.redemption import redeem
from voucher.ledger import closing
from voucher.ledger.models import AccountKind
from voucher.ledger.services import campaign_balances
from voucher.merchants import onboarding
from voucher.merchants.models import Merchant
from voucher.reports.consistency import verify_ledger
from voucher.settlement.models import SettlementItem
from voucher.vouchers.closing import close_campaign
from voucher.web import in_transaction


def race(app, works: list) -> list:
    """Each work() in its own thread, as a request runs it (web.in_transaction: one retry on a collision)."""
    return run_at_once(app, works, in_transaction)


def unexpected(outcomes: list) -> list:
    return [o for o in outcomes if isinstance(o, str) and o.startswith("unexpected")]


def user(name: str) -> User:
    return _db.session.scalar(select(User).where(User.username == name))


def source_of(campaign_id: int) -> FundingSource:
    return _db.session.scalar(select(FundingSource).where(FundingSource.campaign_id == campaign_id))


def test_moves_approved_at_once_into_one_campaign_all_arrive(app, db):
    """Defect 1: approving a move read the receiving source before locking it and wrote back a stale sum."""
    world = make_world()
    target, _ = make_campaign(world, quantity=1)
    givers = [make_campaign(world, quantity=1)[0] for _ in range(6)]
    target_source = source_of(target.id)
    before = target_source.amount_fen
    change_ids = [
        request_change(giver.id, kind="move", funding_source_id=source_of(giver.id).id, amount_fen=(i + 1) * 1000_00,
                       reason="调剂", actor=world.maker, target_funding_source_id=target_source.id).id
        for i, giver in enumerate(givers)
    ]
    top_up = request_change(target.id, kind="top_up", funding_source_id=target_source.id, amount_fen=7_00,
                            reason="追加", actor=world.maker).id
    db.session.commit()

    works = [lambda cid=cid: decide_change(cid, user("approver"), approve=True).id for cid in change_ids + [top_up]]
    outcomes = race(app, works)

    assert not unexpected(outcomes), outcomes
    assert all(isinstance(o, int) for o in outcomes), outcomes
    db.session.expire_all()
    assert source_of(target.id).amount_fen == before + sum((i + 1) * 1000_00 for i in range(6)) + 7_00
    assert verify_ledger() == []


def test_moves_in_opposite_directions_do_not_deadlock(app, db):
    """Defect 2: A -> B and B -> A approved at once locked the two campaigns in opposite orders."""
    world = make_world()
    a, _ = make_campaign(world, quantity=1)
    b, _ = make_campaign(world, quantity=1)
    sa, sb = source_of(a.id), source_of(b.id)
    pairs = []
    for _ in range(4):
        pairs.append(request_change(a.id, kind="move", funding_source_id=sa.id, amount_fen=100_00, reason="调剂",
                                    actor=world.maker, target_funding_source_id=sb.id).id)
        pairs.append(request_change(b.id, kind="move", funding_source_id=sb.id, amount_fen=100_00, reason="调剂",
                                    actor=world.maker, target_funding_source_id=sa.id).id)
    db.session.commit()
    before = (sa.amount_fen, sb.amount_fen)

    outcomes = race(app, [lambda cid=cid: decide_change(cid, user("approver"), approve=True).id for cid in pairs])

    assert all(isinstance(o, int) for o in outcomes), outcomes
    db.session.expire_all()
    assert (source_of(a.id).amount_fen, source_of(b.id).amount_fen) == before
    assert verify_ledger() == []


def test_closing_a_campaign_during_a_burst_of_redemptions(app, db):
    """Defect 2: the close (campaign locked, waiting for vouchers) and redemptions (voucher locked,
    waiting for the campaign's key share) deadlocked, and the close counted vouchers it then did not move."""
    world = make_world()
    campaign, release = make_campaign(world, quantity=12, per_person_limit=1)
    codes = [claim_one(release, make_citizen(f"c{i:02d}")).code for i in range(12)]
    campaign_id = campaign.id

    def redemption(code):
        return lambda: redeem(code, 150_00, user("cashier")).redemption.id

    works = [redemption(code) for code in codes] + [lambda: close_campaign(campaign_id, user("approver"), "提前结束").id]
    outcomes = race(app, works)

    assert not unexpected(outcomes), outcomes
    redeemed = [o for o in outcomes[:-1] if isinstance(o, int)]
    assert set(outcomes[:-1]) - set(redeemed) <= {"voucher_expired", "campaign_not_active"}, outcomes
    assert outcomes[-1] == campaign_id, outcomes
    db.session.expire_all()
    assert db.session.get(Campaign, campaign_id).status == "closed"
    balances = campaign_balances([campaign_id])[campaign_id]
    assert balances[AccountKind.RESERVED] == 0 and balances[AccountKind.AVAILABLE] == 0
    assert balances[AccountKind.SPENT] == 20_00 * len(redeemed)
    assert verify_ledger() == []


def test_settlement_builds_for_different_days_at_once_settle_each_redemption_once(app, db):
    """Defect 4: two builds at once inserted the same settlement items (IntegrityError, a 500)."""
    from datetime import timedelta

    from voucher.core.clock import local_day_start_utc, local_today
    from voucher.settlement.batches import build_batches

    world = make_world()
    _, release = make_campaign(world, quantity=6, valid_from=local_today() - timedelta(days=5))
    for i in range(6):
        code = claim_one(release, make_citizen(f"s{i}")).code
        day = local_today() - timedelta(days=2 + i % 2)
        redeem(code, 150_00, world.cashier, now=local_day_start_utc(day) + timedelta(hours=12, minutes=i))
    db.session.commit()
    days = [local_today() - timedelta(days=3), local_today() - timedelta(days=2)] * 2

    outcomes = race(app, [lambda day=day: len(build_batches(day, user("finance")).batches) for day in days])

    assert not unexpected(outcomes), outcomes
    items = db.session.execute(select(SettlementItem.redemption_id, func.count()).group_by(SettlementItem.redemption_id)).all()
    assert len(items) == 6 and all(count == 1 for _, count in items)
    assert verify_ledger() == []


def test_the_same_month_closed_by_two_officers_at_once(app, db):
    """Defect 4: the second close hit the unique period (a 500); now it is told the month is closed."""
    from voucher.core.clock import local_today

    world = make_world()
    world.finance  # noqa: B018 - the users exist
    first = local_today().replace(day=1)
    last_month = f"{first.year - (first.month == 1)}-{(first.month - 2) % 12 + 1:02d}"

    outcomes = race(app, [lambda: closing.close_period(last_month, user("finance")).period] * 3)

    assert sorted(outcomes, key=str) == sorted([last_month, "invalid_transition", "invalid_transition"], key=str), outcomes


def test_identical_merchant_applications_posted_at_once(app, db):
    """Defect 4: four identical applications answered [500, 500, 500, 200]."""

    def application(i: int) -> onboarding.MerchantApplication:
        return onboarding.MerchantApplication(
            name="港城新开小馆", uscc="91320706MA1NEW001N", category="餐饮",
            stores=[onboarding.StoreInput("港城新开小馆", "海州区", "海州区人民路 1 号")],
            bank_account_name="港城新开小馆", bank_name="港城银行", bank_account_no="6222020000009999",
            manager_username=f"xinkai{i}", manager_password="Xinkai-2026-secure", manager_display_name="",
            contact_phone="0518-85821234",
        )

    outcomes = race(app, [lambda i=i: onboarding.apply(application(i)).id for i in range(4)])

    assert not unexpected(outcomes), outcomes
    kinds = Counter("ok" if isinstance(o, int) else o for o in outcomes)
    assert kinds["ok"] == 1 and sum(kinds.values()) == 4, outcomes


def test_a_refused_applicant_applying_again_twice_at_once_reopens_once(app, db):
    """A double click on 提交申请 after a refusal: the merchant row is locked before it is read, so one
    application reopens it and the other is told it is already pending, never a 500 or two reopenings."""
    world = make_world()

    def application(i: int) -> onboarding.MerchantApplication:
        return onboarding.MerchantApplication(
            name="港城重申小馆", uscc="91320706MA1NEW002R", category="餐饮",
            stores=[onboarding.StoreInput(f"重申小馆{i}号店", "海州区", "")],
            bank_account_name="港城重申小馆", bank_name="港城银行", bank_account_no="6222020000009999",
            manager_username=f"chongshen{i}", manager_password="Chongshen-2026-secure", contact_phone="13800138000",
            previous_password="Chongshen-2026-secure",
        )

    first = onboarding.apply(application(0))
    onboarding.decide(first.id, world.approver, approve=False, note="材料不全")
    _db.session.commit()
    outcomes = race(app, [lambda i=i: onboarding.apply(application(i)).id for i in (1, 2)])

    assert not unexpected(outcomes), outcomes
    assert sorted(map(str, outcomes)) == sorted([str(first.id), "invalid_input"]), outcomes
    _db.session.expire_all()
    again = _db.session.get(Merchant, first.id)
    assert again.status == "pending" and len(again.stores) == 1
    assert _db.session.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.action == "merchant.reapply")) == 1
