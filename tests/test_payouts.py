"""The payout lifecycle, tried as finance officers would: built -> exported in one numbered payout file
(by a POST) -> matched to a bank line -> paid. Each merchant is paid exactly once (issue 14, cases 5, 6)."""
from __future__ import annotations

import io
from datetime import timedelta

import pandas as pd
import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from tests.conftest import ORDINARY_NOW, pin_ordinary_time
from tests.factories import PASSWORD, bank_statement, claim_one, make_campaign, make_citizen, make_world
from tests.test_concurrency import run_at_once
from voucher.accounts.models import User
from voucher.accounts.services import create_user
from voucher.campaigns import services as campaigns
from voucher.core.audit import AuditEntry
from voucher.core.clock import local_day_start_utc
from voucher.core.db import db as _db
from voucher.core.errors import InvalidInput, InvalidTransition
from voucher.core.permissions import Role
from voucher.counter.redemption import redeem
from voucher.ledger.models import AccountKind
from voucher.ledger.services import campaign_balances
from voucher.merchants.models import Merchant, Store
from voucher.reconciliation import payments
from voucher.reconciliation import services as reconciliation
from voucher.reports.consistency import verify_ledger
from voucher.settlement import batches as settlement
from voucher.settlement import payout_files
from voucher.settlement.models import PayoutFile, PayoutFileItem, SettlementBatch
from voucher.web import in_transaction

pytestmark = pin_ordinary_time
TODAY = ORDINARY_NOW.date()
YESTERDAY = TODAY - timedelta(days=1)


@pytest.fixture
def world_with_batches(db):
    """Yesterday: 老味道 (complete bank details) redeemed twice (40 yuan), a shop whose name is a formula
    once (20 yuan), and 无账户小店 (no bank account on file) once: three batches of one funder."""
    world = make_world()
    world.finance2 = create_user("finance2", PASSWORD, Role.FINANCE)
    campaign, release = make_campaign(
        world, valid_from=TODAY - timedelta(days=5), quantity=10,
        sources=[campaigns.SourceInput("municipal_finance", "市财政", 1000_00)])
    formula = Merchant(name="=HYPERLINK(\"http://evil.example\",\"点我\")", uscc="91320706MA5FML0011",
                       category="餐饮", status="approved", bank_account_name="-2+3", bank_name="港城银行",
                       bank_account_no="6222 0200 0000 0777")
    bare = Merchant(name="无账户小店", uscc="91320706MA5NOB0011", category="餐饮", status="approved",
                    bank_account_name="无账户小店", bank_name="", bank_account_no=None)
    for shop in (formula, bare):
        shop.stores.append(Store(name="门店", district="海州区"))
        _db.session.add(shop)
    _db.session.flush()
    cashiers = [world.cashier, world.cashier]
    for shop, name in ((formula, "cashier_formula"), (bare, "cashier_bare")):
        cashiers.append(create_user(name, PASSWORD, Role.CASHIER, merchant_id=shop.id, store_id=shop.stores[0].id))
    _db.session.commit()
    noon = local_day_start_utc(YESTERDAY) + timedelta(hours=12)
    for i, cashier in enumerate(cashiers):
        voucher = claim_one(release, make_citizen("abcd"[i]))
        redeem(voucher.code, 150_00, cashier, now=noon + timedelta(minutes=i))
    _db.session.commit()
    settlement.build_batches(YESTERDAY, world.finance)
    _db.session.commit()
    by_merchant = {b.merchant_id: b for b in _db.session.scalars(select(SettlementBatch))}
    return world, campaign, by_merchant[world.merchant.id], by_merchant[formula.id], by_merchant[bare.id]


def _login(client, username):
    client.post("/logout")
    assert client.post("/login", data={"username": username, "password": PASSWORD}).status_code == 302


def _user(username: str) -> User:
    """The user in the calling thread's own session (a worker touching the test's objects would open a
    transaction on the test's connection, and on SQLite hold the write lock the workers wait for)."""
    return _db.session.scalar(select(User).where(User.username == username))


def _statuses() -> dict[int, str]:
    return dict(_db.session.execute(select(SettlementBatch.id, SettlementBatch.status)).all())


# Case 5: one numbered file per batch, kept as sent ----------------------------------------------------


def test_a_batch_goes_into_one_payout_file_and_downloading_changes_nothing(client, db, world_with_batches):
    """Defect: every 下载 re-included batches already exported (and those the bank had paid), and the
    download itself, a GET, marked them exported."""
    world, campaign, food, formula, bare = world_with_batches
    _login(client, "finance")
    page = client.get("/finance/settlement").get_data(as_text=True)
    assert "待导出：<strong>2</strong> 个批次" in page
    assert "无账户小店" in page and "商户结算信息缺少开户银行、银行账号" in page  # held out, with the reason
    assert _statuses() == {food.id: "pending", formula.id: "pending", bare.id: "pending"}  # a GET changed nothing

    created = client.post("/finance/settlement/payout-files", follow_redirects=True).get_data(as_text=True)
    assert "1 个批次因商户结算信息不完整未纳入" in created and "无账户小店" in created
    file = db.session.scalar(select(PayoutFile))
    assert (file.batch_count, file.total_fen) == (2, 60_00)
    assert _statuses() == {food.id: "exported", formula.id: "exported", bare.id: "pending"}

    first = client.get(f"/finance/settlement/payout-files/{file.id}.xlsx").data
    second = client.get(f"/finance/settlement/payout-files/{file.id}.xlsx").data
    assert first == second and client.get(f"/finance/settlement/payout-files/{file.id}.csv").data == file.csv_bytes

    # A second "create" finds nothing new: the exported batches are never written into another file.
    again = client.post("/finance/settlement/payout-files", follow_redirects=True).get_data(as_text=True)
    assert "没有可导出的批次：1 个待支付批次的商户结算信息不完整" in again
    assert db.session.scalar(select(func.count(PayoutFile.id))) == 1
    assert db.session.scalar(select(func.count(PayoutFileItem.id))) == 2

    # Once the merchant completes its details, the batch goes out in a file of its own.
    merchant = db.session.get(Merchant, bare.merchant_id)
    merchant.bank_name, merchant.bank_account_no = "港城银行", "6222020000000888"
    db.session.commit()
    client.post("/finance/settlement/payout-files")
    files = db.session.scalars(select(PayoutFile).order_by(PayoutFile.id)).all()
    assert [f.batch_count for f in files] == [2, 1]
    items = db.session.execute(select(PayoutFileItem.batch_id, func.count()).group_by(PayoutFileItem.batch_id)).all()
    assert sorted(n for _, n in items) == [1, 1, 1]


def test_the_xlsx_has_numbers_for_amounts_text_for_accounts_and_inert_formulas(db, world_with_batches):
    world, campaign, food, formula, bare = world_with_batches
    file = payout_files.create(world.finance)
    db.session.commit()
    book = load_workbook(io.BytesIO(file.xlsx_bytes))
    sheet = book["结算付款"]
    header = [c.value for c in sheet[1]]
    rows = {r[0].value: {h: c for h, c in zip(header, r)} for r in sheet.iter_rows(min_row=2)}
    assert set(rows) == {food.reference, formula.reference}  # payees only: no 合计 row a bank would pay
    amount = rows[food.reference]["金额（元）"]
    assert amount.data_type == "n" and amount.value == 40 and amount.number_format == "0.00"
    account = rows[formula.reference]["收款账号"]
    assert account.data_type == "s" and account.value == "6222020000000777"  # spaces gone, still text
    assert rows[formula.reference]["商户名称"].value.startswith("'=HYPERLINK")  # shown as text, never run
    assert rows[formula.reference]["收款户名"].value == "'-2+3"
    assert rows[food.reference]["附言"].value == f"消费券结算 {food.reference}"
    summary = {r[0].value: r[1].value for r in book["汇总"].iter_rows() if r[0].value}
    assert summary["付款文件号"] == file.number and summary["合计金额（元）"] == 60
    assert summary["未纳入本文件的批次"] == "商户"  # the header of the held-out list
    assert any(r[0].value == bare.reference for r in book["汇总"].iter_rows())
    csv_text = file.csv_bytes.decode("utf-8-sig")
    assert "'=HYPERLINK" in csv_text and "\n=HYPERLINK" not in csv_text and ",=HYPERLINK" not in csv_text


def test_two_officers_creating_a_file_at_once_get_one_file_and_a_clear_answer(app, db, world_with_batches):
    outcomes = run_at_once(app, [lambda: payout_files.create(_user("finance")).number,
                                 lambda: payout_files.create(_user("finance2")).number], in_transaction)
    assert sorted(o.startswith("FK") for o in outcomes) == [False, True], outcomes
    assert "invalid_input" in outcomes, outcomes
    assert db.session.scalar(select(func.count(PayoutFileItem.id))) == 2


def test_a_reissue_needs_a_reason_is_audited_and_never_covers_a_batch_the_bank_shows(client, db, world_with_batches):
    world, campaign, food, formula, bare = world_with_batches
    first = payout_files.create(world.finance)
    db.session.commit()
    _login(client, "finance")
    detail = client.get(f"/finance/settlement/payout-files/{first.id}").get_data(as_text=True)
    assert f'value="{food.id}"' in detail and "重新导出所选批次" in detail

    no_reason = client.post("/finance/settlement/payout-files/reissue", data={"batch_id": [food.id], "reason": " "},
                            follow_redirects=True).get_data(as_text=True)
    assert "重新导出须填写原因" in no_reason
    # The bank paid 老味道 from the first file: re-issuing it would pay twice.
    reconciliation.import_statement(bank_statement([db.session.get(SettlementBatch, food.id)]), "b.csv", None,
                                    world.finance)
    db.session.commit()
    refused = client.post("/finance/settlement/payout-files/reissue",
                          data={"batch_id": [food.id, formula.id], "reason": "银行退回文件"},
                          follow_redirects=True).get_data(as_text=True)
    assert "已有银行流水，重新导出会重复付款" in refused
    assert db.session.scalar(select(func.count(PayoutFile.id))) == 1

    done = client.post("/finance/settlement/payout-files/reissue",
                       data={"batch_id": [formula.id], "reason": "银行退回文件：户名不符"},
                       follow_redirects=True).get_data(as_text=True)
    second = db.session.scalar(select(PayoutFile).order_by(PayoutFile.id.desc()))
    assert f"已重新导出 1 个批次到付款文件 {second.number}" in done and "银行退回文件：户名不符" in done
    assert db.session.get(SettlementBatch, formula.id).payout_file_id == second.id
    old = db.session.scalar(select(PayoutFileItem).where(PayoutFileItem.payout_file_id == first.id,
                                                         PayoutFileItem.batch_id == formula.id))
    assert old.superseded_by_id == second.id
    assert first.csv_bytes == db.session.get(PayoutFile, first.id).csv_bytes  # the old file is as it was sent
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "settlement.payout_reissue"))
    assert entry is not None and "银行退回文件：户名不符" in str(entry.after)
    page = client.get(f"/finance/settlement/payout-files/{first.id}").get_data(as_text=True)
    assert "已作废，改由" in page and second.number in page


# Case 6: paid only on the bank's word, or two officers' -----------------------------------------------


def test_a_batch_never_exported_cannot_be_confirmed_and_shows_no_button(client, db, world_with_batches):
    """Defect: 确认已支付 appeared on, and worked for, batches never sent to the bank."""
    world, campaign, food, *_ = world_with_batches
    _login(client, "finance")
    assert "确认已支付</button>" not in client.get("/finance/settlement").get_data(as_text=True)
    refused = client.post(f"/finance/settlement/{food.id}/paid", follow_redirects=True).get_data(as_text=True)
    assert "尚未导出付款文件，不能确认支付" in refused
    assert _statuses()[food.id] == "pending" and verify_ledger() == []


def test_an_amount_mismatch_is_no_evidence_of_payment(client, db, world_with_batches):
    """Defect: a batch matched as 金额不符 (333.30 paid against 333.33) was confirmed as paid in full."""
    world, campaign, food, formula, bare = world_with_batches
    payout_files.create(world.finance)
    short = bank_statement([food]).replace(b",40.00", b",39.97")
    result = reconciliation.import_statement(short, "short.csv", None, world.finance)
    db.session.commit()
    assert result.counts["amount_mismatch"] == 1
    before = campaign_balances([campaign.id])[campaign.id][AccountKind.SETTLED]
    _login(client, "finance")
    refused = client.post(f"/finance/settlement/{food.id}/paid", follow_redirects=True).get_data(as_text=True)
    assert "金额 39.97 元与批次金额 40.00 元不符，不能确认支付：请与银行核实差额" in refused
    line_id = result.statement.lines[0].id
    via_line = client.post(f"/finance/reconciliation/lines/{line_id}/confirm-paid", follow_redirects=True)
    assert "只有金额一致的已匹配流水可以据此确认支付" in via_line.get_data(as_text=True)
    assert _statuses()[food.id] == "exported"
    assert campaign_balances([campaign.id])[campaign.id][AccountKind.SETTLED] == before


def test_an_override_takes_a_reason_and_a_second_finance_officer(client, db, world_with_batches):
    world, campaign, food, formula, bare = world_with_batches
    payout_files.create(world.finance)
    db.session.commit()
    _login(client, "finance")
    empty = client.post(f"/finance/settlement/{food.id}/override", data={"reason": ""}, follow_redirects=True)
    assert "请填写例外确认的原因" in empty.get_data(as_text=True)
    asked = client.post(f"/finance/settlement/{food.id}/override",
                        data={"reason": "银行回单 HD0417 已核实，对账单尚未下发"}, follow_redirects=True)
    assert "待另一位财务人员复核" in asked.get_data(as_text=True)
    myself = client.post(f"/finance/settlement/{food.id}/paid", follow_redirects=True).get_data(as_text=True)
    assert "由您本人申请，须由另一位财务人员复核确认" in myself and _statuses()[food.id] == "exported"

    _login(client, "finance2")
    page = client.get("/finance/settlement").get_data(as_text=True)
    assert "银行回单 HD0417 已核实" in page and "复核并确认已支付" in page
    confirmed = client.post(f"/finance/settlement/{food.id}/paid", follow_redirects=True).get_data(as_text=True)
    assert f"已确认批次 {food.reference} 支付 40.00 元" in confirmed
    batch = db.session.get(SettlementBatch, food.id)
    assert (batch.status, batch.paid_evidence, batch.confirmed_by_id) == ("paid", "override", world.finance2.id)
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "settlement.paid"))
    assert "override" in str(entry.after) and "HD0417" in str(entry.after)
    assert verify_ledger() == []


def test_the_requester_withdraws_an_override_and_only_they_can(client, db, world_with_batches):
    """An override request could not be taken back: a wrong reason, or the bank's line arriving after all, left
    it waiting for a second officer to confirm it or leave it there for good."""
    world, campaign, food, formula, bare = world_with_batches
    payout_files.create(world.finance)
    db.session.commit()
    _login(client, "finance")
    client.post(f"/finance/settlement/{food.id}/override", data={"reason": "回单 HD0417（写错了批次）"})
    assert "撤回申请" in client.get("/finance/settlement").get_data(as_text=True)

    _login(client, "finance2")
    page = client.get("/finance/settlement").get_data(as_text=True)
    assert "复核并确认已支付" in page and "撤回申请" not in page  # the second officer confirms or leaves it
    theirs = client.post(f"/finance/settlement/{food.id}/override/withdraw", follow_redirects=True)
    assert "只能由申请人撤回" in theirs.get_data(as_text=True)
    assert db.session.get(SettlementBatch, food.id).override_requested_by_id == world.finance.id

    _login(client, "finance")
    done = client.post(f"/finance/settlement/{food.id}/override/withdraw", follow_redirects=True)
    assert f"已撤回批次 {food.reference} 的例外确认申请" in done.get_data(as_text=True)
    db.session.expire_all()
    batch = db.session.get(SettlementBatch, food.id)
    assert (batch.status, batch.override_requested_by_id, batch.override_reason) == ("exported", None, None)
    again = client.post(f"/finance/settlement/{food.id}/override/withdraw", follow_redirects=True)
    assert "没有待复核的例外确认申请" in again.get_data(as_text=True)
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "settlement.paid_override_withdraw"))
    assert entry.object_id == food.id and "HD0417" in str(entry.before)

    _login(client, "finance2")  # nothing left to confirm on
    refused = client.post(f"/finance/settlement/{food.id}/paid", follow_redirects=True).get_data(as_text=True)
    assert "尚无匹配的银行流水，不能确认支付" in refused and _statuses()[food.id] == "exported"
    _login(client, "finance")  # and a new request may follow
    asked = client.post(f"/finance/settlement/{food.id}/override", data={"reason": "回单 HD0418"}, follow_redirects=True)
    assert "待另一位财务人员复核" in asked.get_data(as_text=True)
    assert verify_ledger() == []


def test_a_withdrawal_and_a_confirmation_at_once_get_one_answer_each(app, db, world_with_batches):
    world, campaign, food, formula, bare = world_with_batches
    payout_files.create(world.finance)
    payments.request_override(food.id, "回单 HD0417", world.finance)
    db.session.commit()
    food_id = food.id
    outcomes = run_at_once(app, [lambda: payments.withdraw_override(food_id, _user("finance")).reference,
                                 lambda: payments.confirm_paid(food_id, _user("finance2")).reference],
                           in_transaction)
    # whichever took the batch's lock first won; the other was told why, not a 500
    assert outcomes in ([food.reference, "invalid_transition"], ["invalid_transition", food.reference]), outcomes
    db.session.expire_all()
    batch = db.session.get(SettlementBatch, food_id)
    if outcomes[0] == food.reference:
        assert (batch.status, batch.override_requested_by_id) == ("exported", None)
    else:
        assert (batch.status, batch.paid_evidence) == ("paid", "override")
    assert verify_ledger() == []


def test_bulk_confirm_pays_each_matched_batch_once(client, db, world_with_batches):
    world, campaign, food, formula, bare = world_with_batches
    payout_files.create(world.finance)
    result = reconciliation.import_statement(bank_statement([food, formula]), "bank.csv", None, world.finance)
    db.session.commit()
    before = campaign_balances([campaign.id])[campaign.id][AccountKind.SETTLED]
    _login(client, "finance")
    statement = client.get(f"/finance/reconciliation/{result.statement.id}").get_data(as_text=True)
    assert "全部确认已支付（2 个批次）" in statement and "data-confirm=" in statement
    done = client.post(f"/finance/reconciliation/{result.statement.id}/confirm-matched", follow_redirects=True)
    assert "已确认 2 个批次支付，合计 60.00 元" in done.get_data(as_text=True)
    twice = client.post(f"/finance/reconciliation/{result.statement.id}/confirm-matched", follow_redirects=True)
    assert "没有可确认的批次" in twice.get_data(as_text=True)
    assert campaign_balances([campaign.id])[campaign.id][AccountKind.SETTLED] - before == 60_00
    assert _statuses() == {food.id: "paid", formula.id: "paid", bare.id: "pending"}
    assert verify_ledger() == []


def test_two_officers_confirming_at_once_pay_once(app, db, world_with_batches):
    world, campaign, food, formula, bare = world_with_batches
    payout_files.create(world.finance)
    reconciliation.import_statement(bank_statement([food, formula]), "bank.csv", None, world.finance)
    db.session.commit()
    before = campaign_balances([campaign.id])[campaign.id][AccountKind.SETTLED]
    food_id = food.id
    # Objects of the test's session stay out of the workers: each loads its own (see _user).
    outcomes = run_at_once(app, [lambda: len(payments.confirm_all_matched(_user("finance")).confirmed),
                                 lambda: payments.confirm_paid(food_id, _user("finance2")).reference,
                                 lambda: len(payments.confirm_all_matched(_user("finance2")).confirmed)],
                           in_transaction)
    assert not [o for o in outcomes if isinstance(o, str) and o.startswith("unexpected")], outcomes
    assert campaign_balances([campaign.id])[campaign.id][AccountKind.SETTLED] - before == 60_00
    assert verify_ledger() == []


def test_services_refuse_what_the_pages_do_not_offer(db, world_with_batches):
    world, campaign, food, formula, bare = world_with_batches
    with pytest.raises(InvalidInput, match="请选择"):
        payout_files.reissue([], "原因", world.finance, set())
    with pytest.raises(InvalidTransition, match="只有已导出待确认的批次可以重新导出"):
        payout_files.reissue([food.id], "原因", world.finance, set())
    with pytest.raises(InvalidTransition, match="无需例外确认"):
        payments.request_override(food.id, "原因", world.finance)
    payout_files.create(world.finance)
    reconciliation.import_statement(bank_statement([food]), "bank.csv", None, world.finance)
    with pytest.raises(InvalidTransition, match="可直接确认支付"):
        payments.request_override(food.id, "原因", world.finance)
    df = pd.read_csv(io.BytesIO(db.session.scalar(select(PayoutFile)).csv_bytes), dtype=str, encoding="utf-8-sig")
    assert list(df["金额（元）"]) == ["40.00", "20.00"]


def test_exports_of_typed_text_are_inert_in_a_spreadsheet(app, db, world_with_batches):
    """A campaign or merchant name typed as a formula is written as text in every export, never run."""
    from voucher.core.spreadsheet import inert
    from voucher.reports.budget import budget_execution
    from voucher.reports.budget_xlsx import as_xlsx

    assert [inert(v) for v in ("=1+1", "+cmd", "-2", "@SUM(A1)", "\t=x", "＝1", "ok", -5, None)] == [
        "'=1+1", "'+cmd", "'-2", "'@SUM(A1)", "'\t=x", "'＝1", "ok", -5, None]
    world, campaign, *_ = world_with_batches
    campaign.name = "=HYPERLINK(\"http://evil.example\")"
    db.session.commit()
    book = load_workbook(io.BytesIO(as_xlsx(budget_execution(TODAY))))
    names = [row[0].value for row in book["按活动"].iter_rows(min_row=3)]
    assert "'=HYPERLINK(\"http://evil.example\")" in names and campaign.name not in names
