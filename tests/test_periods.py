"""Month-end close: a closed month takes no more postings; the current month cannot be closed."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from tests.factories import PASSWORD, make_campaign, make_world
from voucher.accounts.models import User
from voucher.core.audit import AuditEntry
from voucher.core.clock import local_day_start_utc, local_today, utcnow
from voucher.core.errors import InvalidInput, InvalidTransition
from voucher.ledger import closing
from voucher.ledger import services as ledger
from voucher.ledger.closing import close_period
from voucher.ledger.models import AccountKind, JournalEntry
from voucher.ledger.periods import PeriodClosed, closed_periods
from voucher.vouchers.models import Voucher


def _last_month() -> tuple[str, object]:
    first = local_today().replace(day=1)
    last_day = first - timedelta(days=1)
    return f"{last_day:%Y-%m}", local_day_start_utc(last_day) + timedelta(hours=10)


def test_a_posting_dated_in_a_closed_month_is_refused_and_the_open_month_takes_corrections(db):
    world = make_world()
    campaign, _ = make_campaign(world)
    period, moment_in_it = _last_month()
    sources = ledger.source_accounts(campaign.id)
    lines = ledger.transfer_lines(sources, AccountKind.AVAILABLE, AccountKind.RESERVED, 1_00)

    # Before the close a dated posting into last month goes in.
    ledger.post("budget_change", campaign.id, lines, memo="补记", at=moment_in_it)
    ledger.post("budget_change", campaign.id, [(a, -m) for a, m in lines], memo="补记冲回", at=moment_in_it)
    close_period(period, world.finance)
    db.session.commit()
    entries = db.session.scalar(select(func.count(JournalEntry.id)))

    with pytest.raises(PeriodClosed, match=f"{period} 已结账"):
        ledger.post("budget_change", campaign.id, lines, memo="迟到的分录", at=moment_in_it)
    db.session.rollback()
    assert db.session.scalar(select(func.count(JournalEntry.id))) == entries
    # Now-dated postings (the hot paths) are never in a closed month.
    ledger.post("budget_change", campaign.id, lines, memo="本期更正")
    ledger.post("budget_change", campaign.id, [(a, -m) for a, m in lines], memo="本期更正冲回", at=utcnow())
    db.session.commit()


def test_only_a_month_that_has_ended_closes_once(db):
    world = make_world()
    period, _ = _last_month()
    with pytest.raises(InvalidTransition, match="尚未结束"):
        close_period(f"{local_today():%Y-%m}", world.finance)
    with pytest.raises(InvalidInput, match="YYYY-MM"):
        close_period("2026-13", world.finance)
    close_period(period, world.finance)
    with pytest.raises(InvalidTransition, match="已结账"):
        close_period(period, world.finance)


def test_finance_closes_a_month_on_the_page_and_others_cannot(client, db):
    make_world()
    period, _ = _last_month()
    for username, status in (("auditor", 403), ("maker", 403), ("cashier", 403)):
        client.post("/logout")
        client.post("/login", data={"username": username, "password": PASSWORD})
        assert client.post("/finance/periods", data={"period": period}).status_code == status
    client.post("/logout")
    client.post("/login", data={"username": "finance", "password": PASSWORD})
    bad = client.post("/finance/periods", data={"period": "下个月"}, follow_redirects=True)
    assert "会计期间格式应为 YYYY-MM" in bad.get_data(as_text=True)
    done = client.post("/finance/periods", data={"period": period}, follow_redirects=True)
    text = done.get_data(as_text=True)
    assert f"{period} 已结账" in text and "<h2 id=" in text
    # Who closed it by name (it showed "#3"), and what the close verified.
    finance_name = db.session.scalar(select(User.display_name).where(User.username == "finance"))
    assert finance_name in text and "#" + str(db.session.scalar(select(User.id).where(User.username == "finance"))) \
        not in text.split("<h1>")[1]
    assert "每笔分录借贷平衡" in text and "券状态与核销记录相符" in text
    assert 'data-confirm="结账后该月不能再记入任何分录' in text


def test_an_administrator_reopens_a_closed_month_with_a_reason_and_finance_closes_it_again(client, db):
    """A correction that cannot wait for the open month: the administrator reopens, with a reason on
    record; the month takes postings again until finance closes it again, verified afresh."""
    world = make_world()
    campaign, _ = make_campaign(world)
    period, moment_in_it = _last_month()
    close_period(period, world.finance)
    db.session.commit()

    for username, status in (("finance", 403), ("auditor", 403), ("approver", 403)):
        client.post("/logout")
        client.post("/login", data={"username": username, "password": PASSWORD})
        assert client.post(f"/finance/periods/{period}/reopen", data={"reason": "更正"}).status_code == status
    client.post("/logout")
    client.post("/login", data={"username": "admin", "password": PASSWORD})
    page = client.get("/finance/periods").get_data(as_text=True)
    assert "重新开放原因" in page and 'data-confirm="重新开放' in page
    no_reason = client.post(f"/finance/periods/{period}/reopen", data={"reason": "  "}, follow_redirects=True)
    assert "须填写原因" in no_reason.get_data(as_text=True)
    reopened = client.post(f"/finance/periods/{period}/reopen", data={"reason": "补记上月漏记的预算调整"},
                           follow_redirects=True)
    text = reopened.get_data(as_text=True)
    assert f"{period} 已重新开放" in text and "补记上月漏记的预算调整" in text and "已重新开放" in text
    again = client.post(f"/finance/periods/{period}/reopen", data={"reason": "再来一次"}, follow_redirects=True)
    assert "未结账或已重新开放" in again.get_data(as_text=True)

    # The month takes a posting again; then finance closes it a second time and it is shut again.
    sources = ledger.source_accounts(campaign.id)
    lines = ledger.transfer_lines(sources, AccountKind.AVAILABLE, AccountKind.RESERVED, 1_00)
    ledger.post("budget_change", campaign.id, lines, memo="补记", at=moment_in_it)
    ledger.post("budget_change", campaign.id, [(a, -m) for a, m in lines], memo="补记冲回", at=moment_in_it)
    close_period(period, world.finance)
    db.session.commit()
    with pytest.raises(PeriodClosed):
        ledger.post("budget_change", campaign.id, lines, memo="迟到的分录", at=moment_in_it)
    db.session.rollback()
    actions = list(db.session.scalars(select(AuditEntry.action).where(AuditEntry.action.like("period.%"))
                                      .order_by(AuditEntry.id)))
    assert actions == ["period.close", "period.reopen", "period.close"]
    assert len(closed_periods()) == 2 and [p.in_force for p in closed_periods()] == [True, False]


def test_a_month_does_not_close_without_the_whole_system_check(db, monkeypatch):
    """The ledger cannot import the domains it would compare itself with; the check is plugged in when
    the app is made (voucher/__init__.py). Without it, closing refuses rather than closing unchecked."""
    world = make_world()
    monkeypatch.setattr(closing, "_CHECKS", {})
    with pytest.raises(InvalidTransition, match="整体账务核对未登记"):
        close_period(_last_month()[0], world.finance)


def test_the_close_runs_the_whole_system_check(db):
    """A voucher whose money the ledger does not hold: the ledger's own invariants hold (every entry
    balances), only the comparison with the domains finds it, and the month stays open."""
    world = make_world()
    campaign, _ = make_campaign(world)
    db.session.execute(update(Voucher).where(Voucher.campaign_id == campaign.id)
                       .values(face_value_fen=Voucher.face_value_fen + 1))
    db.session.commit()  # the close reads in a snapshot of its own (PostgreSQL)
    with pytest.raises(InvalidTransition, match="已预留"):
        close_period(_last_month()[0], world.finance)
