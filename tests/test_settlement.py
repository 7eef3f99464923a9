"""Merchant settlement: daily batches per merchant and funder, holds, payout files, confirmation."""
from __future__ import annotations

import csv
import io
from datetime import timedelta

import pandas as pd
import pytest
from sqlalchemy import func, insert, select

from tests.conftest import pin_ordinary_time
from tests.factories import (
    PASSWORD,
    bank_statement,
    claim_one,
    make_campaign,
    make_citizen,
    make_world,
    pay_through_bank,
)
from voucher.accounts.services import create_user
from voucher.campaigns import services as campaigns
from voucher.campaigns.models import FundingSource
from voucher.core.clock import local_day_start_utc, local_today
from voucher.core.errors import InvalidInput, InvalidTransition
from voucher.core.money import format_yuan
from voucher.core.permissions import Role
from voucher.counter.redemption import redeem, reverse
from voucher.ledger.models import AccountKind
from voucher.ledger.services import campaign_balances
from voucher.merchants.models import Merchant, RiskFlag, Store
from voucher.reconciliation import payments
from voucher.reconciliation import services as reconciliation
from voucher.reconciliation.models import BankStatementLine
from voucher.reports.consistency import verify_ledger
from voucher.settlement import batches as settlement
from voucher.settlement import payout_files
from voucher.settlement.models import PayoutFile, SettlementBatch, SettlementItem

# Yesterday's redemptions must be settleable (their reversal window long past), so these tests
# run at an ordinary moment whatever VOUCHER_TEST_NOW says; tests/test_clock_boundaries.py covers the edges.
pytestmark = pin_ordinary_time


@pytest.fixture
def day(db):
    """Yesterday's redemptions at two shops of a campaign co-funded 3:2 by the city and a bank; the
    second shop has an open risk flag."""
    world = make_world()
    campaign, release = make_campaign(
        world, valid_from=local_today() - timedelta(days=5), quantity=10,
        sources=[campaigns.SourceInput("municipal_finance", "市财政", 600_00, share=3),
                 campaigns.SourceInput("bank", "港城银行", 400_00, share=2)],
    )
    flagged = Merchant(name="海州小超市", uscc="91320706MA5FLG0011", category="零售", status="approved",
                       bank_account_name="海州小超市", bank_name="港城银行海州支行", bank_account_no="6222020000000001")
    flagged.stores.append(Store(name="海州小超市门店", district="海州区"))
    db.session.add(flagged)
    db.session.flush()
    flagged_cashier = create_user("cashier_flagged", PASSWORD, Role.CASHIER, merchant_id=flagged.id,
                                  store_id=flagged.stores[0].id)
    world.merchant.bank_account_name, world.merchant.bank_name = "港城老味道餐饮有限公司", "港城银行"
    world.merchant.bank_account_no = "6222020000001234"
    db.session.commit()

    noon = local_day_start_utc(local_today() - timedelta(days=1)) + timedelta(hours=12)
    vouchers = [claim_one(release, make_citizen(tag)) for tag in "abcd"]
    kept = [redeem(v.code, 150_00, world.cashier, now=noon + timedelta(minutes=i)).redemption for i, v in
            enumerate(vouchers[:2])]
    undone = redeem(vouchers[2].code, 150_00, world.cashier, now=noon + timedelta(minutes=5)).redemption
    reverse(undone.id, reason="顾客退单", cashier=world.cashier, now=noon + timedelta(minutes=10))
    held = redeem(vouchers[3].code, 150_00, flagged_cashier, now=noon).redemption
    db.session.add(RiskFlag(merchant_id=flagged.id, kind="velocity", day=noon.date(), detail={"n": 1}))
    db.session.commit()
    return world, campaign, flagged, kept, undone, held


def test_a_day_settles_each_redemption_once_per_funder_nets_reversals_and_holds_flagged_merchants(db, day):
    world, campaign, flagged, kept, undone, held = day
    yesterday = local_today() - timedelta(days=1)

    result = settlement.build_batches(yesterday, world.finance)
    db.session.commit()

    # Two redemptions of 20 yuan each survive; each funder gets its own batch: 3:2 of 40 yuan.
    by_source = {b.funding_source.name: b for b in result.batches}
    assert set(by_source) == {"市财政", "港城银行"}
    assert (by_source["市财政"].amount_fen, by_source["港城银行"].amount_fen) == (24_00, 16_00)
    assert all(b.merchant_id == world.merchant.id and b.redemption_count == 2 for b in result.batches)
    assert result.held == {flagged.id: 20_00}
    items = db.session.scalars(select(SettlementItem.redemption_id)).all()
    assert sorted(set(items)) == sorted(r.id for r in kept)  # not the reversed one, not the held one
    assert all(b.reference == f"JS{yesterday:%Y%m%d}{b.id:06d}" for b in result.batches)

    # A second build of the same day adds nothing.
    again = settlement.build_batches(yesterday, world.finance)
    db.session.commit()
    assert again.batches == [] and db.session.scalar(select(func.count(SettlementBatch.id))) == 2

    # Paying moves spent -> settled per funder; the ledger ties out to the fen.
    before = campaign_balances([campaign.id])[campaign.id]
    pay_through_bank(result.batches, world.finance)
    db.session.commit()
    after = campaign_balances([campaign.id])[campaign.id]
    assert after[AccountKind.SETTLED] - before[AccountKind.SETTLED] == 40_00
    assert before[AccountKind.SPENT] - after[AccountKind.SPENT] == 40_00
    assert after[AccountKind.SPENT] == 20_00  # the held shop's redemption, still waiting
    assert verify_ledger() == []
    with pytest.raises(InvalidTransition, match="已确认支付"):
        payments.confirm_paid(result.batches[0].id, world.finance)


def test_a_released_merchant_is_paid_in_the_next_batch(db, day):
    world, campaign, flagged, kept, undone, held = day
    yesterday = local_today() - timedelta(days=1)
    settlement.build_batches(yesterday, world.finance)
    db.session.scalar(select(RiskFlag)).status = "cleared"
    db.session.commit()

    result = settlement.build_batches(yesterday, world.finance)
    db.session.commit()
    assert {(b.merchant_id, b.amount_fen) for b in result.batches} == {(flagged.id, 12_00), (flagged.id, 8_00)}
    assert db.session.scalar(select(func.count(SettlementItem.id))) == 6  # 3 redemptions x 2 funders
    assert verify_ledger() == []


def test_a_day_inside_the_reversal_window_cannot_be_built(db, day):
    world, *_ = day
    with pytest.raises(InvalidInput, match="撤销时限"):
        settlement.build_batches(local_today(), world.finance)


def test_a_settled_redemption_cannot_be_reversed(app, db, day):
    world, campaign, flagged, kept, undone, held = day
    settlement.build_batches(local_today() - timedelta(days=1), world.finance)
    db.session.commit()
    app.config["REVERSAL_WINDOW_MINUTES"] = 60 * 24 * 3
    try:
        with pytest.raises(InvalidTransition, match="已进入结算批次"):
            reverse(kept[0].id, reason="晚了", cashier=world.cashier)
    finally:
        app.config["REVERSAL_WINDOW_MINUTES"] = 30


def _login(client, username):
    client.post("/logout")
    assert client.post("/login", data={"username": username, "password": PASSWORD}).status_code == 302


def test_finance_builds_creates_a_numbered_payout_file_and_confirms_against_the_bank(client, db, day):
    world, campaign, flagged, kept, undone, held = day
    _login(client, "finance")
    yesterday = (local_today() - timedelta(days=1)).isoformat()

    page = client.post("/finance/settlement/build", data={"business_date": yesterday}, follow_redirects=True)
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "新建 2 个结算批次，合计 40.00 元" in text
    assert "1 家商户因风险核查暂缓结算" in text and "海州小超市" in text  # the held list
    assert "待导出：<strong>2</strong> 个批次，合计 <strong>40.00</strong> 元" in text
    assert "确认已支付</button>" not in text  # nothing was sent to the bank: nothing to confirm

    created = client.post("/finance/settlement/payout-files", data={"business_date": yesterday},
                          follow_redirects=True)
    file = db.session.scalar(select(PayoutFile))
    assert f"已生成付款文件 {file.number}：2 个批次，合计 40.00 元" in created.get_data(as_text=True)
    assert file.number.startswith(f"FK{local_today():%Y%m%d}-")

    xlsx = client.get(f"/finance/settlement/payout-files/{file.id}.xlsx")
    assert xlsx.status_code == 200 and f"filename={file.number}.xlsx" in xlsx.headers["Content-Disposition"]
    sheet = pd.read_excel(io.BytesIO(xlsx.data), sheet_name="结算付款", dtype=str)
    assert list(sheet.columns[:6]) == ["批次号", "收款户名", "收款银行", "收款账号", "金额（元）", "附言"]
    assert sorted(sheet["金额（元）"]) == ["16", "24"] and len(sheet) == 2  # no 合计 row among payees
    assert set(sheet["收款账号"]) == {"6222020000001234"}
    assert set(sheet["附言"]) == {f"消费券结算 {b.reference}" for b in db.session.scalars(select(SettlementBatch))}

    raw = client.get(f"/finance/settlement/payout-files/{file.id}.csv")
    assert raw.data.startswith("\ufeff".encode())  # Excel opens it as UTF-8
    lines = list(csv.reader(io.StringIO(raw.data.decode("utf-8-sig"))))
    assert lines[0][0] == "批次号" and sorted(row[4] for row in lines[1:]) == ["16.00", "24.00"]
    assert {b.status for b in db.session.scalars(select(SettlementBatch))} == {"exported"}

    # No statement yet: confirming is refused and says what to do; nothing moves.
    batch = db.session.scalars(select(SettlementBatch).order_by(SettlementBatch.id)).first()
    refused = client.post(f"/finance/settlement/{batch.id}/paid", follow_redirects=True).get_data(as_text=True)
    assert "尚无匹配的银行流水，不能确认支付" in refused
    assert db.session.get(SettlementBatch, batch.id).status == "exported"

    # The bank's statement arrives; the page offers bulk confirmation of the matched batches.
    reconciliation.import_statement(bank_statement(db.session.scalars(select(SettlementBatch)).all()),
                                    "bank.csv", None, world.finance)
    db.session.commit()
    listing = client.get("/finance/settlement").get_data(as_text=True)
    assert "批量确认已匹配批次（2 个）" in listing and "data-confirm=" in listing
    confirmed = client.post("/finance/settlement/confirm-matched", data={"next": "/finance/settlement"},
                            follow_redirects=True)
    assert "已确认 2 个批次支付，合计 40.00 元" in confirmed.get_data(as_text=True)
    again = client.post(f"/finance/settlement/{batch.id}/paid", follow_redirects=True)
    assert "已确认支付" in again.get_data(as_text=True)
    assert {b.paid_evidence for b in db.session.scalars(select(SettlementBatch))} == {"bank_line"}
    # Once paid, the list still names the bank line that paid each batch (a walk-through found only 已匹配).
    paid = client.get("/finance/settlement").get_data(as_text=True)
    serials = [line.serial for line in db.session.scalars(select(BankStatementLine))]
    assert serials and all(f"流水 {serial}" in paid for serial in serials)
    assert verify_ledger() == []


def test_bad_input_on_the_settlement_pages_is_refused_in_chinese(client, db, day):
    _login(client, "finance")
    response = client.post("/finance/settlement/build", data={"business_date": "2026-13-45"}, follow_redirects=True)
    assert "日期格式应为 YYYY-MM-DD" in response.get_data(as_text=True)
    assert client.get("/finance/settlement?status=bogus").status_code == 200
    assert client.get("/finance/settlement/payout-files/1.pdf").status_code == 404
    assert client.get("/finance/settlement/payout-files/999999.csv").status_code == 404
    assert client.post("/finance/settlement/999999/paid", follow_redirects=True).status_code == 200
    nothing = client.post("/finance/settlement/payout-files", follow_redirects=True).get_data(as_text=True)
    assert "没有待支付的结算批次" in nothing
    # An off-site "next" is never followed.
    away = client.post("/finance/settlement/999999/paid", data={"next": "//evil.example/finance/"})
    assert away.headers["Location"].endswith("/finance/settlement")
    # A refused action on a filtered list goes back to that list, filtered, with the reason.
    filtered = "/finance/settlement?status=exported&date=2026-11-24"
    kept = client.post("/finance/settlement/999999/paid", data={"next": filtered})
    assert kept.status_code == 303 and kept.headers["Location"] == filtered
    assert "找不到该结算批次" in client.get(filtered).get_data(as_text=True)
    assert db.session.scalar(select(func.count(SettlementBatch.id))) == 0
    assert db.session.scalar(select(func.count(PayoutFile.id))) == 0


def test_only_finance_moves_money_and_the_auditor_and_administrator_only_read(client, db, day):
    """Separation of duties (等保): the system administrator manages accounts and may read the money
    pages, but moves no money: one who could create an account and pay it would need no accomplice."""
    world, *_ = day
    settlement.build_batches(local_today() - timedelta(days=1), world.finance)
    file = payout_files.create(world.finance)
    db.session.commit()
    for username, page, build, download, create in (
            ("auditor", 200, 403, 200, 403), ("cashier", 403, 403, 403, 403), ("maker", 403, 403, 403, 403),
            ("admin", 200, 403, 200, 403), ("finance", 200, 302, 200, 302)):
        _login(client, username)
        assert client.get("/finance/settlement").status_code == page, username
        assert client.get(f"/finance/settlement/payout-files/{file.id}.csv").status_code == download, username
        status = client.post("/finance/settlement/build", data={}).status_code
        assert status == build or (build == 302 and status == 303), username
        status = client.post("/finance/settlement/payout-files", data={}).status_code
        assert status == create or (create == 302 and status == 303), username
    # The old download that changed state by a GET is gone.
    assert client.get("/finance/settlement/payout.csv").status_code == 404


def test_cli_builds_exports_and_writes_a_file_again(app, db, day, tmp_path):
    runner = app.test_cli_runner()
    yesterday = (local_today() - timedelta(days=1)).isoformat()
    built = runner.invoke(args=["settlement", "build", "--date", yesterday])
    assert built.exit_code == 0 and "新建 2 个批次，合计 40.00 元；暂缓 1 家商户" in built.output
    assert runner.invoke(args=["settlement", "build", "--date", local_today().isoformat()]).exit_code == 1
    out = tmp_path / "payout.xlsx"
    exported = runner.invoke(args=["settlement", "export", "--output", str(out)])
    assert exported.exit_code == 0 and "2 个批次，合计 40.00 元" in exported.output, exported.output
    assert len(pd.read_excel(out, dtype=str)) == 2
    number = db.session.scalar(select(PayoutFile.number))
    nothing = runner.invoke(args=["settlement", "export", "--output", str(tmp_path / "again.xlsx")])
    assert nothing.exit_code == 1 and "没有待支付的结算批次" in nothing.output
    copy = tmp_path / "copy.xlsx"
    assert runner.invoke(args=["settlement", "payout-file", number, "--output", str(copy)]).exit_code == 0
    assert copy.read_bytes() == out.read_bytes()


def test_the_nightly_job_builds_the_previous_day_after_the_risk_scan(db, day):
    from voucher.jobs import runner

    world, campaign, flagged, kept, undone, held = day
    outcome = runner.run_now("build_settlement")
    assert outcome.ok, outcome.error
    assert outcome.summary["day"] == (local_today() - timedelta(days=1)).isoformat()
    assert outcome.summary["batches"] == 2 and outcome.summary["held_merchants"] == [flagged.id]
    assert runner.run_now("build_settlement").summary["batches"] == 0  # nothing twice
    from voucher.jobs.tasks import JOBS

    schedule = {name: sched for name, _, sched, _ in JOBS}
    assert schedule["risk_scan"].daily_at < schedule["build_settlement"].daily_at


def test_the_batch_list_pages_with_the_total_of_every_batch_it_selects(client, db):
    """Thousands of batches (a year of daily batches for a few hundred merchants): the list shows 50 a
    page, says how many there are, and its 合计 is of all of them, not of the page."""
    world = make_world()
    campaign, _ = make_campaign(world)
    source = db.session.scalar(select(FundingSource.id).where(FundingSource.campaign_id == campaign.id))
    first = local_today() - timedelta(days=2000)
    db.session.execute(insert(SettlementBatch), [
        {"reference": f"JSBULK{n:06d}", "business_date": first + timedelta(days=n), "merchant_id": world.merchant.id,
         "campaign_id": campaign.id, "funding_source_id": source, "amount_fen": 100_00 + n, "redemption_count": 1,
         "status": "pending"} for n in range(1230)])
    db.session.commit()
    _login(client, "finance")
    page = client.get("/finance/settlement").get_data(as_text=True)
    assert "共 1,230 条" in page and "第 1–50 条" in page and "JSBULK001229" in page and "JSBULK001179" not in page
    assert f"{format_yuan(sum(100_00 + n for n in range(1230)))}" in page.split("合计（全部筛选结果）")[1][:200]
    last = client.get("/finance/settlement?status=pending&page=25").get_data(as_text=True)
    assert "第 1,201–1,230 条" in last and "JSBULK000000" in last and "status=pending" in last
    one_day = client.get(f"/finance/settlement?date={first.isoformat()}").get_data(as_text=True)
    assert "共 1 条" in one_day and format_yuan(100_00) in one_day.split("合计（全部筛选结果）")[1][:200]
