"""Ledger invariants, and `flask ledger verify` catching a ledger that was tampered with."""
from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import func, insert, select, update

from tests.conftest import empty_tables
from tests.factories import claim_one, make_campaign, make_citizen, make_world
from voucher.campaigns import services as campaigns
from voucher.campaigns.models import Campaign
from voucher.core.errors import UnbalancedPosting
from voucher.counter.redemption import redeem
from voucher.ledger import services as ledger
from voucher.ledger.models import AccountKind, JournalEntry, LedgerAccount, Posting
from voucher.reports.consistency import verify_ledger


def test_balances_follow_the_voucher_life(db):
    world = make_world()
    campaign, release = make_campaign(world, budget_fen=10_000_00, face_value_fen=20_00, quantity=100)
    by_kind = ledger.campaign_balances([campaign.id])[campaign.id]
    assert by_kind[AccountKind.AVAILABLE] == 8_000_00 and by_kind[AccountKind.RESERVED] == 2_000_00
    assert by_kind[AccountKind.FUNDING] == -10_000_00

    voucher = claim_one(release, make_citizen())
    # Claiming moves no money: the round's money was reserved when it opened.
    assert ledger.campaign_balances([campaign.id])[campaign.id] == by_kind
    redeem(voucher.code, 150_00, world.cashier)
    db.session.commit()
    after = ledger.campaign_balances([campaign.id])[campaign.id]
    assert after[AccountKind.RESERVED] == 1_980_00 and after[AccountKind.SPENT] == 20_00
    assert sum(after.values()) == 0
    assert verify_ledger() == []


def test_no_threshold_voucher_on_a_small_order_returns_the_rest(db):
    world = make_world()
    campaign, release = make_campaign(world, budget_fen=1_000_00, face_value_fen=20_00, threshold_fen=0, quantity=10)
    voucher = claim_one(release, make_citizen())
    result = redeem(voucher.code, 12_50, world.cashier)
    db.session.commit()
    assert result.redemption.subsidy_fen == 12_50
    after = ledger.campaign_balances([campaign.id])[campaign.id]
    assert after[AccountKind.SPENT] == 12_50
    assert after[AccountKind.AVAILABLE] == 800_00 + 7_50
    assert verify_ledger() == []


def test_an_unbalanced_entry_is_refused(db):
    world = make_world()
    campaign, _ = make_campaign(world)
    account = db.session.scalar(select(LedgerAccount.id).where(LedgerAccount.campaign_id == campaign.id))
    count = db.session.scalar(select(func.count(Posting.id)))
    with pytest.raises(UnbalancedPosting):
        ledger.post("redemption", campaign.id, [(account, 100)])
    db.session.rollback()
    assert db.session.scalar(select(func.count(Posting.id))) == count


@pytest.mark.parametrize("tamper", ["unbalanced", "negative", "orphan_voucher"])
def test_verify_finds_tampering_and_the_cli_fails(db, app, tamper):
    world = make_world()
    campaign, release = make_campaign(world, quantity=10)
    runner = app.test_cli_runner()
    clean = runner.invoke(args=["ledger", "verify"])
    assert clean.exit_code == 0 and "账本核对通过" in clean.output

    accounts = {
        a.kind: a.id
        for a in db.session.scalars(select(LedgerAccount).where(LedgerAccount.campaign_id == campaign.id))
    }
    entry = JournalEntry(kind="redemption", campaign_id=campaign.id, memo="tampered")
    db.session.add(entry)
    db.session.flush()
    if tamper == "unbalanced":
        rows = [(accounts["spent"], 5)]
    elif tamper == "negative":
        rows = [(accounts["settled"], -5), (accounts["spent"], 5)]
    else:  # money moved to spent with no redemption behind it
        rows = [(accounts["reserved"], -20_00), (accounts["spent"], 20_00)]
    db.session.execute(insert(Posting), [{"entry_id": entry.id, "account_id": a, "amount_fen": x} for a, x in rows])
    db.session.commit()

    problems = verify_ledger()
    assert problems
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 1
    assert "账本核对失败" in result.output


def test_a_campaign_with_a_reused_id_gets_its_own_funding_sources(db):
    """The suite empties its tables and ids start over, so a campaign 1 can follow an earlier campaign 1
    approved at the same instant: what the process remembers by (id, approval time) must go with the rows
    (tests/conftest.py empty_tables), or the second campaign is split by the first one's sources."""
    instant = datetime(2027, 3, 17, 2, 0, 0)

    def approved_campaign_redeeming_once(sources):
        world = make_world()
        campaign, release = make_campaign(world, sources=sources, quantity=10)
        db.session.execute(update(Campaign).where(Campaign.id == campaign.id).values(approved_at=instant))
        db.session.commit()
        redeem(claim_one(release, make_citizen()).code, 150_00, world.cashier)
        db.session.commit()
        return campaign.id

    first = approved_campaign_redeeming_once([campaigns.SourceInput("municipal_finance", "市财政", 1_000_00)])
    empty_tables(db)
    second = approved_campaign_redeeming_once([campaigns.SourceInput("municipal_finance", "市财政", 600_00, share=3),
                                               campaigns.SourceInput("bank", "港城银行", 400_00, share=2)])
    assert first == second == 1
    spent = ledger.balances({s.ids[AccountKind.SPENT] for s in ledger.source_accounts(second)})
    assert sorted(spent.values()) == [8_00, 12_00]  # a 20-yuan voucher split 3:2, not all to one source
    assert verify_ledger() == []
