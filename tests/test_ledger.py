"""Ledger invariants, and `flask ledger verify` catching a ledger that was tampered with."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, update

from tests.conftest import empty_tables
from tests.factories import claim_one, make_campaign, make_citizen, make_world
from voucher.campaigns import services as campaigns
from voucher.campaigns.models import Campaign
from voucher.core.clock import utcnow
from voucher.core.errors import UnbalancedPosting
from voucher.counter.redemption import redeem, reverse
from voucher.ledger import services as ledger
from voucher.ledger.models import AccountKind, EntryKind, JournalEntry, LedgerAccount, Posting
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


# The read API (ledger/services.py, its end): what the domains and reports ask instead of the tables.

_CO_FUNDED = [campaigns.SourceInput("municipal_finance", "市财政", 600_00, share=3),
              campaigns.SourceInput("bank", "港城银行", 400_00, share=2)]


def _lines_of(sources, from_kind, to_kind, parts):
    return [(account, amount) for s, part in zip(sources, parts)
            for account, amount in ((s.ids[from_kind], -part), (s.ids[to_kind], part))]


def test_entry_lines_are_one_kind_of_entry_of_one_reference(db):
    world = make_world()
    campaign, release = make_campaign(world, sources=_CO_FUNDED, quantity=10)
    sources = ledger.source_accounts(campaign.id)
    kept = redeem(claim_one(release, make_citizen("a")).code, 150_00, world.cashier).redemption
    undone = redeem(claim_one(release, make_citizen("b")).code, 150_00, world.cashier).redemption
    db.session.commit()
    reverse(undone.id, reason="退单", cashier=world.cashier)
    # Another kind of reference with the kept redemption's id, moving money the same way.
    ledger.post(EntryKind.REDEMPTION.value, campaign.id,
                ledger.transfer_lines(sources, AccountKind.RESERVED, AccountKind.SPENT, 1_00), ref=("other", kept.id))
    db.session.commit()

    redeemed = sorted(_lines_of(sources, AccountKind.RESERVED, AccountKind.SPENT, [12_00, 8_00]))  # 20 yuan, 3:2
    assert sorted(ledger.entry_lines("redemption", undone.id, EntryKind.REDEMPTION)) == redeemed
    # The reversal names the same redemption: only its kind tells it apart, and it is the exact opposite.
    assert sorted(ledger.entry_lines("redemption", undone.id, EntryKind.REVERSAL)) == sorted(
        (account, -amount) for account, amount in redeemed)
    assert sorted(ledger.entry_lines("redemption", kept.id, EntryKind.REDEMPTION)) == redeemed
    assert ledger.entry_lines("redemption", kept.id, EntryKind.REVERSAL) == []

    spent = ledger.lines_by_ref("redemption", EntryKind.REDEMPTION, AccountKind.SPENT)
    rows = db.session.execute(
        select(spent.c.ref_id, spent.c.funding_source_id, spent.c.amount_fen)
        .order_by(spent.c.ref_id, spent.c.funding_source_id)
    ).all()
    # Neither the reserved side, nor the reversal's spent line, nor the other reference's.
    first, second = (s.source_id for s in sources)
    assert rows == [(kept.id, first, 12_00), (kept.id, second, 8_00), (undone.id, first, 12_00),
                    (undone.id, second, 8_00)]


def test_balances_as_of_a_cutoff_leave_out_what_was_posted_at_it_or_later(db):
    world = make_world()
    campaign, _ = make_campaign(world, sources=_CO_FUNDED, quantity=10)  # 200 yuan reserved, split 3:2
    sources = ledger.source_accounts(campaign.id)
    first, second = (s.source_id for s in sources)
    cutoff = utcnow() + timedelta(hours=1)
    for at, amount in ((cutoff - timedelta(microseconds=1), 5_00), (cutoff, 7_00), (cutoff + timedelta(days=1), 9_00)):
        ledger.post(EntryKind.GRANT_PAYOUT.value, campaign.id,
                    ledger.transfer_lines(sources, AccountKind.AVAILABLE, AccountKind.SETTLED, amount), at=at)
    db.session.commit()

    as_of = ledger.source_balances_as_of(cutoff)
    assert as_of[first] == {AccountKind.FUNDING: -600_00, AccountKind.AVAILABLE: 600_00 - 120_00 - 3_00,
                            AccountKind.RESERVED: 120_00, AccountKind.SPENT: 0, AccountKind.SETTLED: 3_00}
    assert as_of[second] == {AccountKind.FUNDING: -400_00, AccountKind.AVAILABLE: 400_00 - 80_00 - 2_00,
                             AccountKind.RESERVED: 80_00, AccountKind.SPENT: 0, AccountKind.SETTLED: 2_00}
    assert ledger.source_balances_as_of(cutoff + timedelta(days=2))[first][AccountKind.SETTLED] == 3_00 + 4_20 + 5_40
    before_approval = ledger.source_balances_as_of(utcnow() - timedelta(days=1))
    assert before_approval[first] == {kind: 0 for kind in AccountKind}


def test_movements_count_only_the_kinds_and_the_window_asked_for(db):
    world = make_world()
    shared, _ = make_campaign(world, sources=_CO_FUNDED, quantity=10)
    single, _ = make_campaign(world, name="另一活动", quantity=10)
    shared_sources, single_sources = ledger.source_accounts(shared.id), ledger.source_accounts(single.id)
    start = utcnow() + timedelta(hours=1)
    end = start + timedelta(hours=2)
    for campaign, sources, kind, from_kind, to_kind, amount, at in (
        (shared, shared_sources, EntryKind.GRANT_PAYOUT, AccountKind.AVAILABLE, AccountKind.SETTLED, 5_00, start),
        (shared, shared_sources, EntryKind.EXPIRY, AccountKind.RESERVED, AccountKind.AVAILABLE, 10_00,
         start + timedelta(hours=1)),
        (shared, shared_sources, EntryKind.GRANT_PAYOUT, AccountKind.AVAILABLE, AccountKind.SETTLED, 11_00, end),
        (single, single_sources, EntryKind.GRANT_PAYOUT, AccountKind.AVAILABLE, AccountKind.SETTLED, 13_00,
         start + timedelta(hours=1)),
        (single, single_sources, EntryKind.GRANT_PAYOUT, AccountKind.AVAILABLE, AccountKind.SETTLED, 17_00,
         end + timedelta(microseconds=1)),
    ):
        ledger.post(kind.value, campaign.id, ledger.transfer_lines(sources, from_kind, to_kind, amount), at=at)
    db.session.commit()

    settled = (AccountKind.SETTLED,)
    # since and until are instants counted; before is a cutoff, not counted
    assert ledger.movements(settled, per="campaign", since=start, until=end) == {shared.id: 16_00, single.id: 13_00}
    assert ledger.movements(settled, per="campaign", since=start, before=end) == {shared.id: 5_00, single.id: 13_00}
    assert ledger.movements(settled, per="campaign", since=start + timedelta(microseconds=1),
                            until=end) == {shared.id: 11_00, single.id: 13_00}
    assert ledger.movements(settled, per="campaign", since=start, campaign_ids=[single.id]) == {single.id: 30_00}
    assert ledger.movements((AccountKind.SPENT,), per="campaign") == {}
    # Per source: the expiry moved 6 and 4 yuan back to available; the payouts out of it are another kind.
    first, second = (s.source_id for s in shared_sources)
    assert ledger.movements((AccountKind.AVAILABLE,), per="funding_source", entry_kinds=(EntryKind.EXPIRY,),
                            since=start) == {first: 6_00, second: 4_00}
    assert ledger.movements(settled, per="funding_source", entry_kinds=(EntryKind.GRANT_PAYOUT,),
                            campaign_ids=[shared.id], before=end) == {first: 3_00, second: 2_00}


def test_source_lines_are_one_sources_postings_in_the_order_written(db):
    world = make_world()
    campaign, release = make_campaign(world, sources=_CO_FUNDED, quantity=10)
    first, second = ledger.source_accounts(campaign.id)
    # Written settled first: the lines keep the entry's order, not the accounts'.
    payout = ledger.post(EntryKind.GRANT_PAYOUT.value, campaign.id,
                         [(first.ids[AccountKind.SETTLED], 5_00), (second.ids[AccountKind.SETTLED], 1_00),
                          (first.ids[AccountKind.AVAILABLE], -5_00), (second.ids[AccountKind.AVAILABLE], -1_00)],
                         memo="拨付")
    db.session.commit()

    lines = ledger.source_lines(first.source_id)
    assert [(line.entry_kind, line.account_kind, line.amount_fen) for line in lines] == [
        ("funding", AccountKind.FUNDING, -600_00), ("funding", AccountKind.AVAILABLE, 600_00),
        ("release_reserve", AccountKind.AVAILABLE, -120_00), ("release_reserve", AccountKind.RESERVED, 120_00),
        ("grant_payout", AccountKind.SETTLED, 5_00), ("grant_payout", AccountKind.AVAILABLE, -5_00),
    ]
    assert [line.entry_id for line in lines] == sorted(line.entry_id for line in lines)
    assert (lines[-1].entry_id, lines[-1].memo) == (payout, "拨付")
    assert sum(line.amount_fen for line in ledger.source_lines(second.source_id)) == 0
    assert len(ledger.source_lines(second.source_id)) == 6
