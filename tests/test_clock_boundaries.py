"""China time (Asia/Shanghai, UTC+8) at the edges of days, months and years.

Midnight in China is 16:00 UTC of the day before. From China midnight to 08:00 China, the China
date and the UTC date differ. Every test here puts at least one moment in that gap and asserts the
China-time answer, so code that used the UTC date for a daily slot, a business day, an accounting
month, a reversal's period or a voucher's last day would fail it. Every moment is given explicitly
(travel_to and now=); none comes from the machine's clock.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest
from sqlalchemy import select

from tests.factories import claim_one, make_campaign, make_citizen, make_world
from voucher.core.clock import local_day_end_utc, local_moment, travel_to
from voucher.core.db import db as _db
from voucher.core.errors import InvalidInput, InvalidTransition, ReversalWindowClosed, VoucherExpired
from voucher.counter.redemption import redeem, reverse
from voucher.jobs import registry, runner, tasks
from voucher.jobs.models import JobRun
from voucher.jobs.registry import daily
from voucher.ledger import services as ledger
from voucher.ledger.closing import close_period
from voucher.ledger.models import AccountKind, EntryKind, JournalEntry
from voucher.ledger.periods import PeriodClosed, period_of
from voucher.ledger.services import campaign_balances
from voucher.merchants.models import Redemption
from voucher.reports.consistency import verify_ledger
from voucher.settlement import batches as settlement
from voucher.settlement.models import SettlementItem
from voucher.vouchers import expiry
from voucher.vouchers.models import Voucher, VoucherStatus

ONE_DAY = timedelta(days=1)

#: (last day, next day): an ordinary night, the year end, and both sides of the 2028 leap day
NIGHTS = [
    pytest.param(date(2027, 3, 17), date(2027, 3, 18), id="ordinary-night"),
    pytest.param(date(2027, 12, 31), date(2028, 1, 1), id="year-end"),
    pytest.param(date(2028, 2, 28), date(2028, 2, 29), id="into-leap-day"),
    pytest.param(date(2028, 2, 29), date(2028, 3, 1), id="out-of-leap-day"),
]


def china(day: date, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    """A China wall-clock time, as the naive UTC the services take."""
    return local_moment(day, hour, minute, second)


def days_before(day: date) -> datetime:
    """10:00 China three days before `day`: when a test sets up its campaign and claims its vouchers.
    Set explicitly, so that the test does not depend on the moment it started at (.ci/clock-boundaries
    starts the suite at other moments through VOUCHER_TEST_NOW)."""
    return china(day - timedelta(days=3), 10)


def assert_utc_date_is_still(moment: datetime, day: date) -> None:
    """Check that this moment really lies in the gap, where a UTC-date computation answers differently."""
    assert moment.date() == day, f"{moment} (UTC) should still fall on {day}"


@pytest.fixture
def window(app, monkeypatch):
    """Set REVERSAL_WINDOW_MINUTES for one test (the app is shared by the session)."""
    return lambda minutes: monkeypatch.setitem(app.config, "REVERSAL_WINDOW_MINUTES", minutes)


def redeem_at(world, voucher: Voucher, moment: datetime) -> Redemption:
    """Redeem a voucher at the counter at `moment` (its ledger entry is dated by the clock, so move that too)."""
    with travel_to(moment):
        redemption = redeem(voucher.code, 150_00, world.cashier, now=moment).redemption
        _db.session.commit()
    return redemption


def reverse_at(world, redemption: Redemption, moment: datetime) -> Redemption:
    with travel_to(moment):
        reversed_ = reverse(redemption.id, reason="顾客退单", cashier=world.cashier, now=moment)
        _db.session.commit()
    return reversed_


def settled_ids(result: settlement.BuildResult) -> set[int]:
    batch_ids = [b.id for b in result.batches]
    return set(_db.session.scalars(select(SettlementItem.redemption_id).where(SettlementItem.batch_id.in_(batch_ids))))


def round_trip(campaign_id: int, at: datetime) -> None:
    """Two postings dated `at` that cancel out (1 yuan available -> reserved and back): a dated entry
    that leaves the ledger's invariants intact."""
    sources = ledger.source_accounts(campaign_id)
    lines = ledger.transfer_lines(sources, AccountKind.AVAILABLE, AccountKind.RESERVED, 1_00)
    ledger.post(EntryKind.BUDGET_CHANGE.value, campaign_id, lines, memo="补记", at=at)
    ledger.post(EntryKind.BUDGET_CHANGE.value, campaign_id, [(a, -m) for a, m in lines], memo="补记冲回", at=at)


# 1. Daily job slots --------------------------------------------------------------------------------


@pytest.mark.parametrize("last, next_day", NIGHTS)
def test_a_daily_slot_is_named_by_the_china_date(last, next_day):
    before_midnight, after_midnight = china(last, 23, 59, 59), china(next_day, 0, 0, 1)
    assert_utc_date_is_still(after_midnight, last)  # 16:00:01 UTC

    # At 23:59:59 China every daily time has come on that China date, 23:59 included (read in UTC,
    # 15:59:59, a 23:59 job would still be on the previous day's slot).
    for schedule in (daily(0, 0), daily(0, 30), daily(23, 59)):
        assert schedule.due_slot(before_midnight) == last.isoformat()
    # One second past China midnight a midnight job's new day is due; a 00:30 job's is not yet.
    assert daily(0, 0).due_slot(after_midnight) == next_day.isoformat()
    assert daily(0, 30).due_slot(after_midnight) == last.isoformat()
    # The run of the new slot stands for China midnight, which is 16:00 UTC the day before.
    assert daily(0, 0).run_time(next_day.isoformat(), after_midnight) == datetime.combine(last, time(16))


@pytest.mark.parametrize("last, next_day", NIGHTS[:3])
def test_a_midnight_job_runs_once_when_the_china_date_turns(db, only_jobs, last, next_day):
    seen: list[datetime] = []
    only_jobs(("midnight", "零点任务", daily(0, 0), lambda now: seen.append(now) or {}))

    # Just before China midnight: the slot of `last` runs once (standing for 00:00 China that day).
    assert [o.slot for o in runner.tick(china(last, 23, 59, 59))] == [last.isoformat()]
    assert runner.tick(china(last, 23, 59, 59)) == []

    # One second after, the UTC date has not changed, but the China date has: the new slot runs, once.
    assert_utc_date_is_still(china(next_day, 0, 0, 1), last)
    [outcome] = runner.tick(china(next_day, 0, 0, 1))
    assert (outcome.slot, outcome.status) == (next_day.isoformat(), "succeeded")
    assert runner.tick(china(next_day, 0, 0, 2)) == []

    assert seen == [china(last), china(next_day)]
    assert [(r.slot, r.status) for r in db.session.scalars(select(JobRun).order_by(JobRun.id))] == [
        (last.isoformat(), "succeeded"), (next_day.isoformat(), "succeeded")]


# 2. Settlement's business day -----------------------------------------------------------------------


def test_a_redemption_belongs_to_its_china_business_day(db, window):
    """Day D's batch holds what was redeemed before China midnight, and can only be built once the
    30-minute reversal window of D's last redemption has run out, at 00:30 China on D+1."""
    window(30)
    day, next_day = date(2027, 3, 20), date(2027, 3, 21)
    with travel_to(days_before(day)):
        world = make_world()
        _, release = make_campaign(world, quantity=5)  # valid for 30 days from 2027-03-17
        late_v, undone_v, early_v = (claim_one(release, make_citizen(tag)) for tag in "abc")

    late = redeem_at(world, late_v, china(day, 23, 59, 30))  # 15:59:30 UTC on D
    undone = redeem_at(world, undone_v, china(day, 23, 50))
    early = redeem_at(world, early_v, china(next_day, 0, 0, 30))
    assert_utc_date_is_still(china(next_day, 0, 0, 30), day)  # 16:00:30 UTC, still D in UTC
    # A reversal after midnight, inside the window, of a redemption made on D.
    reverse_at(world, undone, china(next_day, 0, 10))

    # D's last redemption (23:59:30) can be reversed until 00:29:30: D is not buildable before 00:30.
    assert settlement.latest_buildable_day(china(next_day, 0, 29, 59)) == day - ONE_DAY
    with pytest.raises(InvalidInput, match="撤销时限"):
        settlement.build_batches(day, now=china(next_day, 0, 29, 59))

    # At 00:30 China (16:30 UTC, still D in UTC) D is buildable, and holds only what was redeemed
    # and kept before China midnight: not the 00:00:30 one, which a UTC day would include.
    at_0030 = china(next_day, 0, 30)
    assert settlement.latest_buildable_day(at_0030) == day
    result = settlement.build_batches(day, now=at_0030)
    db.session.commit()
    assert settled_ids(result) == {late.id}
    assert {b.business_date for b in result.batches} == {day}
    with pytest.raises(InvalidInput, match="撤销时限"):
        settlement.build_batches(next_day, now=at_0030)

    # The nightly job, at 02:00 China on D+1 (18:00 UTC on D), works on D, the China yesterday.
    assert tasks.build_settlement(china(next_day, 2, 0))["day"] == day.isoformat()

    # The 00:00:30 redemption is settled with D+1, once D+1's window has run out.
    following = settlement.build_batches(next_day, now=china(next_day + ONE_DAY, 0, 30))
    db.session.commit()
    assert settled_ids(following) == {early.id}
    assert {b.business_date for b in following.batches} == {next_day}
    assert verify_ledger() == []


# 3. Month-end close ---------------------------------------------------------------------------------


@pytest.mark.parametrize("last_day", [
    pytest.param(date(2027, 3, 31), id="month-end"),
    pytest.param(date(2027, 12, 31), id="year-end"),
    pytest.param(date(2028, 2, 29), id="leap-february"),
])
def test_a_month_closes_at_china_midnight_and_keeps_its_last_second(db, last_day):
    with travel_to(days_before(last_day)):
        world = make_world()
        campaign, _ = make_campaign(world)
    period, first = f"{last_day:%Y-%m}", last_day + ONE_DAY
    last_second, midnight = china(last_day, 23, 59, 59), china(first)
    assert_utc_date_is_still(midnight, last_day)  # 16:00 UTC on the last day of the old month

    # The month's last second is in that month; China midnight is in the next one (UTC: still the old one).
    assert period_of(last_second) == period
    assert period_of(midnight) == f"{first:%Y-%m}"

    # At 23:59:59 China the month has not ended: a posting dated in it goes in, the close is refused.
    with travel_to(last_second):
        round_trip(campaign.id, at=last_second)
        db.session.commit()
        with pytest.raises(InvalidTransition, match="尚未结束"):
            close_period(period, world.finance, now=last_second)

    # At 00:00:00 China on the 1st it has, though UTC is still on its last day.
    with travel_to(midnight):
        closed = close_period(period, world.finance, now=midnight)
        db.session.commit()
        assert closed.period == period

        # The last second is in the closed month: refused. The new month's first instant is open.
        with pytest.raises(PeriodClosed, match=f"{period} 已结账"):
            round_trip(campaign.id, at=last_second)
        db.session.rollback()
        round_trip(campaign.id, at=midnight)
        db.session.commit()
    assert verify_ledger() == []


# 4. Reversal window ---------------------------------------------------------------------------------


def test_a_redemption_at_2355_is_reversible_after_china_midnight_within_the_window(db, window):
    """A 10-minute window: a redemption at 23:55 China on the last day of March can be reversed at
    00:04 on 1 April, after March is closed (the reversal is posted in April), and not at 00:05:01."""
    window(10)
    march_31, april_1 = date(2027, 3, 31), date(2027, 4, 1)
    with travel_to(days_before(march_31)):
        world = make_world()
        _, release = make_campaign(world, quantity=5)
        first_v, second_v = (claim_one(release, make_citizen(tag)) for tag in "ab")
    first = redeem_at(world, first_v, china(march_31, 23, 55))
    second = redeem_at(world, second_v, china(march_31, 23, 55))

    # March ends at China midnight (16:00 UTC on 31 March) and is closed at once.
    with travel_to(china(april_1)):
        close_period("2027-03", world.finance, now=china(april_1))
        db.session.commit()

    # 00:04 China: nine minutes later, across midnight, the month end and the close.
    assert_utc_date_is_still(china(april_1, 0, 4), march_31)
    reverse_at(world, first, china(april_1, 0, 4))
    db.session.expire_all()
    assert db.session.get(Voucher, first_v.id).status == VoucherStatus.CLAIMED.value
    reversal = db.session.scalar(select(JournalEntry).where(JournalEntry.kind == EntryKind.REVERSAL.value))
    assert period_of(reversal.created_at) == "2027-04"  # the open month (in UTC it would be March, closed)

    # 00:05:01 China is 10 minutes 1 second after 23:55: too late.
    with travel_to(china(april_1, 0, 5, 1)), pytest.raises(ReversalWindowClosed, match="10 分钟"):
        reverse(second.id, reason="顾客退单", cashier=world.cashier, now=china(april_1, 0, 5, 1))
    db.session.rollback()
    assert db.session.get(Redemption, second.id).reversed_at is None
    assert verify_ledger() == []


# 5. Voucher validity and the expiry job --------------------------------------------------------------


@pytest.mark.parametrize("last_day", [
    pytest.param(date(2027, 3, 20), id="ordinary-day"),
    pytest.param(date(2027, 12, 31), id="year-end"),
])
def test_a_voucher_is_good_until_china_midnight_of_its_last_day(db, only_jobs, last_day):
    expire_job = registry.get("expire_vouchers")
    only_jobs((expire_job.name, expire_job.label, expire_job.schedule, expire_job.run))  # daily at 00:30
    with travel_to(days_before(last_day)):
        world = make_world()
        campaign, release = make_campaign(world, quantity=5, valid_until=last_day)
        used, left = (claim_one(release, make_citizen(tag)) for tag in "ab")
    next_day = last_day + ONE_DAY
    last_second, midnight = china(last_day, 23, 59, 59), china(next_day)
    assert left.valid_until == local_day_end_utc(last_day)
    assert_utc_date_is_still(midnight, last_day)  # 16:00 UTC on its last day

    # Redeemable at 23:59:59 China of its last day...
    redeem_at(world, used, last_second)
    # ...refused as expired at 00:00:00 China, although the UTC date is still its last day.
    with travel_to(midnight), pytest.raises(VoucherExpired):
        redeem(left.code, 150_00, world.cashier, now=midnight)
    db.session.rollback()

    # Not expired at its last second; the nightly job expires it only after China midnight.
    assert expiry.expire_vouchers(last_second) == {}
    assert [o.summary for o in runner.tick(last_second)] == [{"expired": 0, "campaigns": 0}]  # slot `last_day`
    assert runner.tick(china(next_day, 0, 29, 59)) == []  # 00:30 China has not come: no new slot
    db.session.expire_all()
    assert db.session.get(Voucher, left.id).status == VoucherStatus.CLAIMED.value
    before = campaign_balances([campaign.id])[campaign.id]

    # 00:30 China (16:30 UTC on its last day): the new day's slot runs and expires it, once.
    [outcome] = runner.tick(china(next_day, 0, 30))
    assert (outcome.slot, outcome.summary) == (next_day.isoformat(), {"expired": 1, "campaigns": 1})
    db.session.expire_all()
    assert db.session.get(Voucher, left.id).status == VoucherStatus.EXPIRED.value
    assert db.session.get(Voucher, used.id).status == VoucherStatus.REDEEMED.value
    after = campaign_balances([campaign.id])[campaign.id]
    assert after[AccountKind.AVAILABLE] - before[AccountKind.AVAILABLE] == 20_00  # its face value back
    assert verify_ledger() == []
