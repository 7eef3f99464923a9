"""Bank reconciliation: import a statement, match it to settlement batches, resolve what is left."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import func, select

from tests.conftest import ORDINARY_NOW, pin_ordinary_time
from tests.factories import PASSWORD, claim_one, make_campaign, make_citizen, make_world
from voucher.accounts.services import create_user
from voucher.campaigns import services as campaigns
from voucher.core.audit import AuditEntry
from voucher.core.clock import local_day_start_utc
from voucher.core.errors import InvalidInput, InvalidTransition
from voucher.core.permissions import Role
from voucher.counter.redemption import redeem
from voucher.ledger.models import AccountKind
from voucher.ledger.services import campaign_balances
from voucher.merchants.models import Merchant, Store
from voucher.reconciliation import mapping as mappings
from voucher.reconciliation import services as reconciliation
from voucher.reconciliation.errors import MalformedStatement, StatementAlreadyImported
from voucher.reconciliation.models import BankStatement, BankStatementLine, BatchResolution, StatementMapping
from voucher.reconciliation.parsing import parse_amount, parse_date
from voucher.reports.consistency import verify_ledger
from voucher.settlement import batches as settlement
from voucher.settlement import payout_files
from voucher.settlement.models import SettlementBatch

HEADERS = ["交易日期", "流水号", "附言", "收款户名", "收款账号", "金额"]
# Yesterday's batches must be buildable (their reversal window long past): an ordinary moment, whatever
# VOUCHER_TEST_NOW says; tests/test_clock_boundaries.py covers the edges.
pytestmark = pin_ordinary_time
TODAY = ORDINARY_NOW.date()  # the suite's clock, not the machine's (see tests/conftest.py)


@pytest.fixture
def batches(db):
    """Four exported batches of yesterday: two shops of a campaign co-funded 3:2 by the city and a bank.
    老味道 redeemed 2 x 20 yuan (市财政 24.00, 港城银行 16.00), 小超市 1 x 20 yuan (12.00, 8.00)."""
    world = make_world()
    campaign, release = make_campaign(
        world, valid_from=TODAY - timedelta(days=5), quantity=10,
        sources=[campaigns.SourceInput("municipal_finance", "市财政", 600_00, share=3),
                 campaigns.SourceInput("bank", "港城银行", 400_00, share=2)],
    )
    shop = Merchant(name="海州小超市", uscc="91320706MA5FLG0011", category="零售", status="approved",
                    bank_account_name="海州小超市", bank_name="港城银行海州支行", bank_account_no="6222020000000001")
    shop.stores.append(Store(name="海州小超市门店", district="海州区"))
    db.session.add(shop)
    db.session.flush()
    shop_cashier = create_user("cashier_shop", PASSWORD, Role.CASHIER, merchant_id=shop.id, store_id=shop.stores[0].id)
    db.session.commit()
    noon = local_day_start_utc(TODAY - timedelta(days=1)) + timedelta(hours=12)
    vouchers = [claim_one(release, make_citizen(tag)) for tag in "abc"]
    redeem(vouchers[0].code, 150_00, world.cashier, now=noon)
    redeem(vouchers[1].code, 150_00, world.cashier, now=noon + timedelta(minutes=1))
    redeem(vouchers[2].code, 150_00, shop_cashier, now=noon + timedelta(minutes=2))
    db.session.commit()
    built = settlement.build_batches(TODAY - timedelta(days=1), world.finance).batches
    payout_files.create(world.finance)
    db.session.commit()
    by_key = {(b.merchant_id == shop.id and "shop" or "food", b.funding_source.name): b for b in built}
    named = {"A": by_key[("food", "市财政")], "B": by_key[("food", "港城银行")],
             "C": by_key[("shop", "市财政")], "D": by_key[("shop", "港城银行")]}
    assert [named[k].amount_fen for k in "ABCD"] == [24_00, 16_00, 12_00, 8_00]
    return world, campaign, named


def statement_csv(rows: list[list[str]], headers: list[str] = HEADERS, encoding: str = "utf-8-sig") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(headers)
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


def one_of_each(b) -> list[list[str]]:
    """A matched line (A), an amount mismatch (B paid 15.00 of 16.00), a bank line no batch explains;
    C and D get no line."""
    day = TODAY.isoformat()
    return [
        [day, "S0001", f"消费券结算 {b['A'].reference}", "港城老味道餐饮有限公司", "6222020000001234", "24.00"],
        [day, "S0002", f"消费券结算{b['B'].reference}", "港城老味道餐饮有限公司", "6222020000001234", "￥15"],
        [day, "S0003", "退回多付款 JS20200101999999", "某某公司", "6222000000009999", "1,234.50"],
    ]


def _count(db, model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def _login(client, username):
    client.post("/logout")
    assert client.post("/login", data={"username": username, "password": PASSWORD}).status_code == 302


def _upload(client, content: bytes, name: str = "bank.csv", mapping: str = "默认", **kwargs):
    return client.post("/finance/reconciliation/import", data={"statement": (io.BytesIO(content), name),
                                                               "mapping": mapping},
                       content_type="multipart/form-data", **kwargs)


# Matching ---------------------------------------------------------------------------------------------------


def test_a_statement_with_one_of_each_kind_is_matched_and_each_item_resolved_with_a_reason(db, batches):
    world, campaign, b = batches
    balances_before = campaign_balances([campaign.id])[campaign.id]

    result = reconciliation.import_statement(statement_csv(one_of_each(b)), "bank.csv", None, world.finance)
    db.session.commit()

    assert result.counts == {"matched": 1, "amount_mismatch": 1, "unmatched_line": 1} and result.skipped == 0
    assert result.statement.total_fen == 24_00 + 15_00 + 1234_50
    s = reconciliation.sections(result.statement.id)
    assert [line.batch_id for line in s.matched] == [b["A"].id]
    [mismatch] = s.amount_mismatch
    assert (mismatch.batch_id, mismatch.amount_fen, mismatch.batch.amount_fen) == (b["B"].id, 15_00, 16_00)
    [stray] = s.unmatched_lines
    assert stray.batch_id is None and stray.note == "没有批次号为 JS20200101999999 的结算批次"
    assert [batch.id for batch, _ in s.unmatched_batches] == [b["C"].id, b["D"].id]
    assert s.open_count == 4

    # Matching is evidence, not a posting: nothing moved in the ledger, no batch became paid.
    assert campaign_balances([campaign.id])[campaign.id] == balances_before
    assert {batch.status for batch in db.session.scalars(select(SettlementBatch))} == {"exported"}

    # A reason is required, and short; a matched line needs none.
    with pytest.raises(InvalidInput, match="请填写处理原因"):
        reconciliation.resolve_line(mismatch.id, "   ", world.finance)
    with pytest.raises(InvalidInput, match="不能超过 200 个字"):
        reconciliation.resolve_line(mismatch.id, "长" * 201, world.finance)
    with pytest.raises(InvalidTransition, match="已匹配的流水无需处理"):
        reconciliation.resolve_line(s.matched[0].id, "无", world.finance)
    with pytest.raises(InvalidInput, match="请填写处理原因"):
        reconciliation.resolve_batch(b["C"].id, "", world.finance)

    reconciliation.resolve_line(mismatch.id, "银行扣手续费 1 元，已与商户确认", world.finance)
    reconciliation.resolve_line(stray.id, "非本系统付款，属其他业务", world.finance)
    reconciliation.resolve_batch(b["C"].id, "银行退票：商户账号有误，已通知商户更正", world.finance)
    db.session.commit()
    with pytest.raises(InvalidTransition, match="已处理"):
        reconciliation.resolve_line(stray.id, "再次处理", world.finance)
    with pytest.raises(InvalidTransition, match="已处理"):
        reconciliation.resolve_batch(b["C"].id, "再次处理", world.finance)
    with pytest.raises(InvalidTransition, match="已有银行流水匹配"):
        reconciliation.resolve_batch(b["A"].id, "无", world.finance)

    db.session.expire_all()
    s = reconciliation.sections(result.statement.id)
    assert s.amount_mismatch[0].resolution == "银行扣手续费 1 元，已与商户确认"
    assert s.amount_mismatch[0].resolved_by_id == world.finance.id and s.amount_mismatch[0].resolved_at
    assert {batch.id: r and r.resolution for batch, r in s.unmatched_batches} == {
        b["C"].id: "银行退票：商户账号有误，已通知商户更正", b["D"].id: None}
    assert s.open_count == 1  # D is still waiting
    actions = db.session.scalars(select(AuditEntry.action).where(AuditEntry.action.like("reconciliation.%"))).all()
    assert sorted(actions) == ["reconciliation.import", "reconciliation.resolve_batch",
                               "reconciliation.resolve_line", "reconciliation.resolve_line"]


def test_a_second_line_for_a_batch_and_a_line_for_an_unexported_batch_stay_unmatched(db, batches):
    world, campaign, b = batches
    b["D"].status, b["D"].exported_at, b["D"].payout_file_id = "pending", None, None  # never exported
    db.session.commit()
    day = TODAY.isoformat()
    rows = [
        [day, "S1", b["A"].reference, "", "", "24.00"],
        [day, "S2", b["A"].reference, "", "", "24.00"],  # paid twice?
        [day, "S3", b["D"].reference, "", "", "8.00"],
        [day, "S4", f"{b['A'].reference} {b['C'].reference}", "", "", "36.00"],
        [day, "S5", "无批次号", "", "", "1.00"],
    ]
    result = reconciliation.import_statement(statement_csv(rows), "bank.csv", None, world.finance)
    notes = {line.serial: line.note for line in result.statement.lines}
    assert result.counts == {"matched": 1, "amount_mismatch": 0, "unmatched_line": 4}
    assert notes["S1"] is None
    assert notes["S2"] == f"批次 {b['A'].reference} 已由流水 S1 匹配，可能重复付款"
    assert notes["S3"] == f"批次 {b['D'].reference} 尚未导出付款文件"
    assert notes["S4"] == f"附言中有多个批次号：{b['A'].reference}、{b['C'].reference}"
    assert notes["S5"] == "附言中没有结算批次号"
    # A pending batch is not "unmatched": it was never sent to the bank.
    assert [batch.id for batch, _ in reconciliation.unmatched_batches()] == [b["B"].id, b["C"].id]


def test_finance_imports_on_the_page_resolves_and_confirms_payment(client, db, batches):
    world, campaign, b = batches
    _login(client, "finance")
    page = _upload(client, statement_csv(one_of_each(b)), follow_redirects=True)
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "已导入对账单 #1：3 条流水，已匹配 1，金额不符 1，银行流水未匹配 1" in text
    for heading in ("已匹配（1 条）", "金额不符（1 条）", "银行流水未匹配（1 条）", "结算批次未到账（2 个）"):
        assert heading in text, heading
    assert "-1.00" in text  # the difference of the mismatch, bank minus batch
    assert "没有批次号为 JS20200101999999 的结算批次" in text

    statement = db.session.scalar(select(BankStatement))
    lines = {line.serial: line for line in statement.lines}
    refused = client.post(f"/finance/reconciliation/lines/{lines['S0002'].id}/resolve",
                          data={"reason": "", "statement_id": statement.id}, follow_redirects=True)
    assert "请填写处理原因" in refused.get_data(as_text=True)
    done = client.post(f"/finance/reconciliation/lines/{lines['S0002'].id}/resolve",
                       data={"reason": "银行扣手续费", "statement_id": statement.id}, follow_redirects=True)
    assert "流水 S0002 已处理" in done.get_data(as_text=True) and "已处理：银行扣手续费" in done.get_data(as_text=True)
    done = client.post(f"/finance/reconciliation/batches/{b['D'].id}/resolve",
                       data={"reason": "次日到账", "statement_id": statement.id}, follow_redirects=True)
    assert f"批次 {b['D'].reference} 已处理" in done.get_data(as_text=True)

    # The human step: confirming the matched batch paid posts spent -> settled, once.
    before = campaign_balances([campaign.id])[campaign.id]
    paid = client.post(f"/finance/reconciliation/lines/{lines['S0001'].id}/confirm-paid",
                       data={"statement_id": statement.id}, follow_redirects=True)
    assert f"已确认批次 {b['A'].reference} 支付 24.00 元" in paid.get_data(as_text=True)
    after = campaign_balances([campaign.id])[campaign.id]
    assert after[AccountKind.SETTLED] - before[AccountKind.SETTLED] == 24_00
    again = client.post(f"/finance/reconciliation/lines/{lines['S0001'].id}/confirm-paid", follow_redirects=True)
    assert "已确认支付" in again.get_data(as_text=True)
    mismatch = client.post(f"/finance/reconciliation/lines/{lines['S0002'].id}/confirm-paid", follow_redirects=True)
    assert "只有金额一致的已匹配流水可以据此确认支付" in mismatch.get_data(as_text=True)
    assert db.session.get(SettlementBatch, b["B"].id).status == "exported"
    assert verify_ledger() == []

    listing = client.get("/finance/reconciliation").get_data(as_text=True)
    assert "bank.csv" in listing and "#1" in listing
    # Bad ids and input: answered, never a 500.
    assert client.get("/finance/reconciliation/999999").status_code == 404
    assert client.post("/finance/reconciliation/lines/999999/resolve", data={"reason": "x"},
                       follow_redirects=True).status_code == 200
    assert client.post("/finance/reconciliation/batches/999999/resolve", data={"reason": "x", "statement_id": "abc"},
                       follow_redirects=True).status_code == 200
    assert "请选择要导入的对账单文件" in client.post("/finance/reconciliation/import", data={},
                                                   follow_redirects=True).get_data(as_text=True)


# Re-imports -------------------------------------------------------------------------------------------------


def test_reimporting_the_same_statement_changes_nothing(client, db, batches):
    world, campaign, b = batches
    content = statement_csv(one_of_each(b))
    reconciliation.import_statement(content, "bank.csv", None, world.finance)
    db.session.commit()
    _login(client, "finance")  # signing in is audited too: before counting
    counts = (_count(db, BankStatement), _count(db, BankStatementLine), _count(db, AuditEntry))

    with pytest.raises(StatementAlreadyImported, match="已于 .*导入为对账单 #1，未做任何更改"):
        reconciliation.import_statement(content, "bank-again.csv", None, world.finance)
    db.session.rollback()
    # The same lines in other bytes (re-saved as GBK, another name): nothing new, nothing written.
    with pytest.raises(StatementAlreadyImported, match="3 条流水均已在此前的对账单中导入"):
        reconciliation.import_statement(statement_csv(one_of_each(b), encoding="gbk"), "bank.csv", None, world.finance)
    db.session.rollback()
    page = _upload(client, content, follow_redirects=True)
    assert "未做任何更改" in page.get_data(as_text=True)
    assert (_count(db, BankStatement), _count(db, BankStatementLine), _count(db, AuditEntry)) == counts


def test_an_overlapping_statement_adds_only_its_new_lines_and_a_changed_serial_is_refused(db, batches):
    world, campaign, b = batches
    rows = one_of_each(b)
    reconciliation.import_statement(statement_csv(rows), "day1.csv", None, world.finance)
    db.session.commit()

    later = rows[1:] + [[TODAY.isoformat(), "S0004", b["D"].reference, "海州小超市", "6222020000000001", "8.00"]]
    result = reconciliation.import_statement(statement_csv(later), "day1-2.csv", None, world.finance)
    db.session.commit()
    assert result.skipped == 2 and result.statement.line_count == 1
    assert result.counts == {"matched": 1, "amount_mismatch": 0, "unmatched_line": 0}
    assert [batch.id for batch, _ in reconciliation.unmatched_batches()] == [b["C"].id]

    changed = [[TODAY.isoformat(), "S0001", b["A"].reference, "", "", "25.00"],
               [TODAY.isoformat(), "S0009", b["C"].reference, "", "", "12.00"]]
    with pytest.raises(MalformedStatement) as refused:
        reconciliation.import_statement(statement_csv(changed), "odd.csv", None, world.finance)
    db.session.rollback()
    assert refused.value.problems == [
        "第 2 行：流水号「S0001」已在对账单 #1 第 2 行导入，但日期、金额或附言不同，请与银行核实"]
    assert _count(db, BankStatementLine) == 4  # S0009 was not half-imported


# Formats and encodings --------------------------------------------------------------------------------------


def test_a_gbk_csv_and_an_xlsx_with_typed_cells_import(db, batches):
    world, campaign, b = batches
    gbk = statement_csv(one_of_each(b), encoding="gbk")
    with pytest.raises(UnicodeDecodeError):
        gbk.decode("utf-8")
    result = reconciliation.import_statement(gbk, "gbk.csv", None, world.finance)
    assert result.counts == {"matched": 1, "amount_mismatch": 1, "unmatched_line": 1}
    assert result.statement.mapping["encoding"] == "GB18030"
    assert result.statement.lines[0].payee_name == "港城老味道餐饮有限公司"
    db.session.commit()

    # A bank's xlsx: a title row above the header, real dates and numbers in the cells, a totals row.
    frame = pd.DataFrame(
        [["港城银行对公账户交易明细", None, None, None, None, None],
         ["交易日期", "交易流水号", "摘要", "对方户名", "对方账号", "交易金额"],
         [datetime(TODAY.year, TODAY.month, TODAY.day), 900001, b["C"].reference, "海州小超市", 6222020000000001, 12],
         [datetime(TODAY.year, TODAY.month, TODAY.day), 900002, b["D"].reference, "海州小超市", 6222020000000001, 8.5],
         [None, None, None, None, None, None],
         ["合计", None, None, None, None, 20.5]])
    buffer = io.BytesIO()
    frame.to_excel(buffer, index=False, header=False)
    result = reconciliation.import_statement(buffer.getvalue(), "bank.xlsx", None, world.finance)
    assert result.counts == {"matched": 1, "amount_mismatch": 1, "unmatched_line": 0}
    lines = {line.serial: line for line in result.statement.lines}
    assert set(lines) == {"900001", "900002"}
    assert lines["900001"].payee_account == "6222020000000001" and lines["900002"].amount_fen == 8_50
    assert lines["900001"].row_number == 3 and lines["900001"].value_date == TODAY
    assert result.statement.mapping["headers"]["reference"] == "摘要"


def test_amounts_and_dates_are_read_as_banks_write_them():
    assert parse_amount("1,234.50") == (123450, None)
    assert parse_amount("¥1234.5") == (123450, None)
    assert parse_amount("￥１２.３") == (1230, None)
    assert parse_amount("12.300") == (1230, None)  # trailing zeros are not extra precision
    assert parse_amount("8元") == (800, None)
    assert parse_amount("12.345")[1] == "金额「12.345」超过两位小数"
    assert parse_amount("1,23.00")[1] == "金额「1,23.00」不是有效金额"
    assert parse_amount("0.00")[1] == "金额必须大于 0"
    assert "为负数" in parse_amount("-5.00")[1] and "为负数" in parse_amount("(5.00)")[1]
    assert parse_amount("1e5")[1] == "金额「1e5」不是有效金额"
    for text in ("2026-11-24", "2026/11/24", "20261124", "2026.11.24", "2026年11月24日", "2026-11-24 10:15:00"):
        assert parse_date(text).isoformat() == "2026-11-24", text
    assert parse_date("24/11/2026") is None and parse_date("2026-02-30") is None


MALFORMED = {
    "missing column": (statement_csv([["2026-11-24", "S1", "x", "", "", "1.00"]],
                                     headers=["交易日期", "流水号", "附言", "收款户名", "收款账号", "备注金额"]),
                       "缺少列：金额（可在列映射中设置对应的表头）"),
    "bad amount": (statement_csv([["2026-11-24", "S1", "x", "", "", "1.00"], ["2026-11-24", "S2", "x", "", "", "12,3x"]]),
                   "第 3 行：金额「12,3x」不是有效金额"),
    "three decimals": (statement_csv([["2026-11-24", "S1", "x", "", "", "12.345"]]), "第 2 行：金额「12.345」超过两位小数"),
    "negative": (statement_csv([["2026-11-24", "S1", "x", "", "", "-3.00"]]), "第 2 行：金额「-3.00」为负数"),
    "bad date": (statement_csv([["11/24", "S1", "x", "", "", "3.00"]]), "第 2 行：交易日期「11/24」无法识别"),
    "empty cell": (statement_csv([["2026-11-24", "", "x", "", "", "3.00"]]), "第 2 行：流水号为空"),
    "duplicate serial": (statement_csv([["2026-11-24", "S1", "x", "", "", "1.00"], ["2026-11-24", "S1", "y", "", "", "2.00"]]),
                         "第 3 行：流水号「S1」与第 2 行重复"),
    "empty file": (b"", "文件为空"),
    "header only": (statement_csv([]), "文件中没有流水记录（只有表头）"),
    "binary": (bytes(range(256)) * 8, "含二进制内容"),
    "unknown encoding": ("交易日期,流水号".encode("gbk") + b"\xff\xfe\x80\n", "无法识别文件编码（已尝试 UTF-8（含/不含 BOM）、GB18030/GBK）"),
    "fake xlsx": (b"PK\x03\x04 not really a zip", "无法读取 xlsx 文件"),
    "old xls": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "不支持旧版 Excel（.xls）文件"),
    "ragged csv": (statement_csv([["2026-11-24", "S1", "x", "", "", "1.00", "extra", "more"]]) + b'"unterminated\n',
                   "第 3 行：引号未闭合"),
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_a_malformed_statement_is_refused_with_row_messages_and_nothing_is_written(db, batches, kind):
    world, campaign, b = batches
    content, message = MALFORMED[kind]
    with pytest.raises(MalformedStatement) as refused:
        reconciliation.import_statement(content, "bad.csv", None, world.finance)
    db.session.rollback()
    assert any(message in p for p in refused.value.problems), refused.value.problems
    assert _count(db, BankStatement) == _count(db, BankStatementLine) == 0


def test_every_problem_of_a_file_is_listed_on_the_page_and_no_line_is_imported(client, db, batches):
    world, campaign, b = batches
    rows = one_of_each(b) + [["2026-13-01", "S0001", "x", "", "", "abc"], [TODAY.isoformat(), "S9", "y", "", "", "1.005"]]
    _login(client, "finance")
    page = _upload(client, statement_csv(rows))
    text = page.get_data(as_text=True)
    assert page.status_code == 422
    assert "「bank.csv」未导入：发现 4 处问题" in text
    for problem in ("第 5 行：交易日期「2026-13-01」无法识别", "第 5 行：金额「abc」不是有效金额",
                    "第 5 行：流水号「S0001」与第 2 行重复", "第 6 行：金额「1.005」超过两位小数"):
        assert problem in text, problem
    assert _count(db, BankStatement) == _count(db, BankStatementLine) == 0


# Mappings and the template ------------------------------------------------------------------------------------


def test_a_saved_mapping_reads_another_banks_headers(client, db, batches):
    world, campaign, b = batches
    _login(client, "finance")
    headers = ["记账日", "交易编号", "用途说明", "户名", "账号", "发生额"]
    form = {"name": "农商行", "value_date": "记账日", "serial": "交易编号", "reference": "用途说明/附注",
            "payee_name": "户名", "payee_account": "账号", "amount": "发生额"}
    missing = client.post("/finance/reconciliation/mappings", data={**form, "amount": ""})
    assert missing.status_code == 422 and "请填写「金额」对应的表头" in missing.get_data(as_text=True)
    twice = client.post("/finance/reconciliation/mappings", data={**form, "payee_name": "账号"})
    assert "表头「账号」同时用于「收款户名」和「收款账号」" in twice.get_data(as_text=True)
    builtin = client.post("/finance/reconciliation/mappings", data={**form, "name": "默认"})
    assert "内置映射，不能修改" in builtin.get_data(as_text=True)
    saved = client.post("/finance/reconciliation/mappings", data=form, follow_redirects=True)
    assert "列映射「农商行」已保存" in saved.get_data(as_text=True)
    assert db.session.scalar(select(StatementMapping.columns))["reference"] == ["用途说明", "附注"]

    content = statement_csv([[TODAY.isoformat(), "N1", b["C"].reference, "海州小超市", "1", "12.00"]], headers=headers)
    refused = _upload(client, content)  # the default mapping does not know these headers
    assert refused.status_code == 422 and "缺少列：交易日期" in refused.get_data(as_text=True)
    assert "农商行" in client.get("/finance/reconciliation").get_data(as_text=True)  # offered in the form
    page = _upload(client, content, mapping="农商行", follow_redirects=True)
    assert "已匹配 1" in page.get_data(as_text=True)
    assert db.session.scalar(select(BankStatement.mapping_name)) == "农商行"
    other = statement_csv([[TODAY.isoformat(), "N2", b["D"].reference, "海州小超市", "1", "8.00"]], headers=headers)
    unknown = _upload(client, other, mapping="不存在", follow_redirects=True)
    assert "找不到名为「不存在」的列映射" in unknown.get_data(as_text=True)


def test_the_templates_download_with_the_default_headers_and_import_as_they_are(client, db, batches):
    world, campaign, b = batches
    _login(client, "auditor")  # reading is enough
    xlsx = client.get("/finance/reconciliation/template.xlsx")
    assert xlsx.status_code == 200 and "attachment" in xlsx.headers["Content-Disposition"]
    sheet = pd.read_excel(io.BytesIO(xlsx.data), dtype=str)
    assert list(sheet.columns) == HEADERS == mappings.TEMPLATE_HEADERS
    assert sheet.iloc[0]["收款账号"] == "6222020000001234" and sheet.iloc[0]["金额"] == "1,234.50"
    raw = client.get("/finance/reconciliation/template.csv")
    assert raw.data.startswith("\ufeff".encode())
    frame = pd.read_csv(io.BytesIO(raw.data), dtype=str, encoding="utf-8-sig")
    assert list(frame.columns) == HEADERS and len(frame) == 1
    assert client.get("/finance/reconciliation/template.pdf").status_code == 404

    for body, name in ((xlsx.data, "template.xlsx"), (raw.data, "template.csv")):
        result = reconciliation.import_statement(body, name, None, world.finance)
        assert result.statement.line_count == 1 and result.statement.total_fen == 1234_50
        assert result.statement.lines[0].batch_reference == "JS20260104000001"
        db.session.rollback()


# Access and the command line --------------------------------------------------------------------------------


def test_the_auditor_reads_only_and_other_roles_are_refused(client, db, batches):
    world, campaign, b = batches
    result = reconciliation.import_statement(statement_csv(one_of_each(b)), "bank.csv", None, world.finance)
    db.session.commit()
    statement_id = result.statement.id
    line_id = result.statement.lines[1].id
    pages = ("/finance/reconciliation", f"/finance/reconciliation/{statement_id}", "/finance/reconciliation/mappings",
             "/finance/reconciliation/template.csv")
    posts = {"/finance/reconciliation/import": {}, f"/finance/reconciliation/lines/{line_id}/resolve": {"reason": "x"},
             f"/finance/reconciliation/batches/{b['C'].id}/resolve": {"reason": "x"},
             f"/finance/reconciliation/lines/{result.statement.lines[0].id}/confirm-paid": {},
             "/finance/reconciliation/mappings": {"name": "x"}}
    for username, read, write in (("auditor", 200, 403), ("cashier", 403, 403), ("maker", 403, 403),
                                  ("manager", 403, 403)):
        _login(client, username)
        for url in pages:
            assert client.get(url).status_code == read, (username, url)
        for url, data in posts.items():
            assert client.post(url, data=data).status_code == write, (username, url)
    _login(client, "auditor")
    text = client.get(f"/finance/reconciliation/{statement_id}").get_data(as_text=True)
    assert "金额不符（1 条）" in text and "处理原因" not in text and "确认已支付" not in text
    assert "导入对账单" not in client.get("/finance/reconciliation").get_data(as_text=True)
    assert db.session.scalar(select(func.count(BatchResolution.id))) == 0
    assert db.session.scalar(select(func.count(BankStatementLine.id)).where(BankStatementLine.resolved_at.isnot(None))) == 0
    # The administrator reads, like the auditor, and moves no money (separation of duties).
    _login(client, "admin")
    assert "导入对账单" not in client.get("/finance/reconciliation").get_data(as_text=True)
    for url, data in posts.items():
        assert client.post(url, data=data).status_code == 403, url
    _login(client, "finance")
    assert "导入对账单" in client.get("/finance/reconciliation").get_data(as_text=True)


def test_the_cli_imports_a_statement_and_refuses_a_malformed_one(app, db, batches, tmp_path):
    world, campaign, b = batches
    runner = app.test_cli_runner()
    good = tmp_path / "bank.csv"
    good.write_bytes(statement_csv(one_of_each(b), encoding="gbk"))
    done = runner.invoke(args=["settlement", "import-statement", str(good)])
    assert done.exit_code == 0, done.output
    assert "已导入对账单 #1：3 条流水，合计 1,273.50 元；已匹配 1，金额不符 1，银行流水未匹配 1" in done.output
    assert "结算批次未到账（待处理）2" in done.output
    again = runner.invoke(args=["settlement", "import-statement", str(good)])
    assert again.exit_code == 1 and "未做任何更改" in again.output

    bad = tmp_path / "bad.csv"
    bad.write_bytes(statement_csv([[TODAY.isoformat(), "X1", "x", "", "", "12.345"],
                                   [TODAY.isoformat(), "X2", "x", "", "", "abc"]]))
    refused = runner.invoke(args=["settlement", "import-statement", str(bad)])
    assert refused.exit_code == 1
    assert "第 2 行：金额「12.345」超过两位小数" in refused.output and "第 3 行：金额「abc」不是有效金额" in refused.output
    unknown = runner.invoke(args=["settlement", "import-statement", str(bad), "--mapping", "不存在"])
    assert unknown.exit_code == 1 and "找不到名为「不存在」的列映射" in unknown.output
    assert db.session.scalar(select(func.count(BankStatement.id))) == 1
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "reconciliation.import"))
    assert entry.actor_label == "system" and entry.after["matched"] == 1


# Batch references past 999,999 and typed in full width -------------------------------------------------------


def _full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def test_batch_references_of_any_length_are_read_and_told_apart_from_digits_after_them():
    from voucher.reconciliation.parsing import find_batch_references

    assert find_batch_references("消费券结算JS20261202000123") == (["JS20261202000123"], [])
    assert find_batch_references("JS202612021000000 退款") == (["JS202612021000000"], [])
    assert find_batch_references("结算JS2026120212345678，共 3 笔") == (["JS2026120212345678"], [])
    # A zero-padded id has exactly 6 digits: what follows is something else.
    assert find_batch_references("JS202612020001231000.00") == (["JS20261202000123"], [])
    # An id has at most 10 digits: a longer run after a non-zero id cannot be split.
    assert find_batch_references("JS2026120210000006222020000") == ([], ["JS2026120210000006222020000"])
    assert find_batch_references(_full_width("JS20261202000123") + "\u3000付款") == (["JS20261202000123"], [])
    assert find_batch_references("ｊｓ20261202000123") == (["JS20261202000123"], [])
    assert find_batch_references("ABCJS20261202000123 JS2026120200012") == ([], [])
    assert find_batch_references("JS20261202000123/JS20261202000123、JS202612021000001") == (
        ["JS20261202000123", "JS202612021000001"], [])


def test_a_batch_past_id_999999_matches_by_its_seven_digit_reference(db, batches):
    world, campaign, b = batches
    # The reference reference_for gives batch 1,000,000: seven id digits.
    seven = f"JS{b['C'].business_date:%Y%m%d}{1_000_000:06d}"
    assert len(seven) == 17
    b["C"].reference = seven
    db.session.commit()
    day = TODAY.isoformat()
    rows = [
        [day, "W1", f"{seven} 消费券结算", "海州小超市", "6222020000000001", "12.00"],
        [day, "W3", f"消费券结算{b['A'].reference}8", "港城老味道餐饮有限公司", "", "24.00"],
        [day, "W4", "JS2026120210000006222020000001234", "", "", "1.00"],
    ]
    result = reconciliation.import_statement(statement_csv(rows), "bank.csv", None, world.finance)
    lines = {line.serial: line for line in result.statement.lines}
    assert (lines["W1"].match_status, lines["W1"].batch_id, lines["W1"].batch_reference) == (
        "matched", b["C"].id, seven)
    # A zero-padded reference with a digit written after it is still told apart.
    assert (lines["W3"].match_status, lines["W3"].batch_id) == ("matched", b["A"].id)
    assert lines["W4"].note == "附言中的批次号 JS2026120210000006222020000001234 后紧接其他数字，无法确定批次号"


def test_a_reference_typed_in_full_width_matches(db, batches):
    world, campaign, b = batches
    day = TODAY.isoformat()
    rows = [[day, "W2", "消费券结算\u3000" + _full_width(b["D"].reference), "海州小超市", "6222020000000001", "8.00"],
            [day, "W5", _full_width(b["C"].reference.lower()), "海州小超市", "6222020000000001", "12.00"]]
    result = reconciliation.import_statement(statement_csv(rows), "bank.csv", None, world.finance)
    lines = {line.serial: line for line in result.statement.lines}
    assert (lines["W2"].match_status, lines["W2"].batch_id, lines["W2"].batch_reference) == (
        "matched", b["D"].id, b["D"].reference)
    assert lines["W2"].reference_text.startswith("消费券结算\u3000ＪＳ")  # stored as the bank wrote it
    assert (lines["W5"].match_status, lines["W5"].batch_id) == ("matched", b["C"].id)


# Real bank exports ------------------------------------------------------------------------------------------

ICBC_HEADERS = ["凭证号", "本方账号", "对方账号", "交易时间", "借/贷", "借方发生额", "贷方发生额", "对方行号", "摘要",
                "用途", "对方单位名称", "余额", "个性化信息"]
OWN = "1302010109000012345"


def _csv(rows: list[list[str]], encoding: str = "gbk") -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode(encoding)


def icbc_statement(b) -> bytes:
    """An ICBC-style export: GBK, a preamble above the header, 借方/贷方 columns, the remittance note in 用途,
    account numbers as ="…", a payout (A), a return of B (a credit naming B), an interest line without a
    voucher number, a blank row, a 合计 row and a 笔数 footer."""
    when = f"{TODAY.isoformat()} 10:15:30"
    return _csv([
        ["中国工商银行企业网上银行  账户明细"],
        [f"账号：{OWN}", "", "户名：港城市商务局消费券资金专户"],
        [f"起止日期：{(TODAY - timedelta(days=1)).isoformat()} 至 {TODAY.isoformat()}", "", "币种：人民币"],
        [],
        ICBC_HEADERS,
        ["0417001", OWN, '="6222020000001234"', when, "借", "24.00", "", "102100099996", "转账支取",
         f"消费券结算{b['A'].reference}", "港城老味道餐饮有限公司", "99,976.00", ""],
        ["0417002", OWN, '="6222020000001234"', when, "贷", "", "16.00", "102100099996", "退汇",
         f"退回 {b['B'].reference} 户名不符", "港城老味道餐饮有限公司", "99,992.00", ""],
        ["", OWN, "", f"{TODAY.isoformat()}-23.59.59.000000", "贷", "", "0.36", "", "结息", "", "", "99,992.36", ""],
        [],
        ["合计", "", "", "", "", "24.00", "16.36", "", "", "", "", "", ""],
        ["总笔数：3", "借方笔数：1", "贷方笔数：2"],
    ])


def test_an_icbc_export_with_preamble_debits_credits_interest_and_footer_imports(db, batches):
    world, campaign, b = batches
    content = icbc_statement(b)
    with pytest.raises(UnicodeDecodeError):
        content.decode("utf-8")

    result = reconciliation.import_statement(content, "icbc.csv", "工商银行", world.finance)
    db.session.commit()
    statement = result.statement
    assert result.counts == {"matched": 1, "amount_mismatch": 0, "unmatched_line": 2}
    assert result.non_payout == 2 and statement.line_count == 3
    lines = {line.row_number: line for line in statement.lines}
    payout, credit, interest = lines[6], lines[7], lines[8]
    assert (payout.batch_id, payout.amount_fen, payout.serial) == (b["A"].id, 24_00, "0417001")
    assert payout.payee_account == "6222020000001234" and payout.payee_name == "港城老味道餐饮有限公司"
    assert payout.reference_text == f"转账支取 / 消费券结算{b['A'].reference}"
    # A credit naming a batch is money coming back, not a payout: B stays unpaid.
    assert credit.match_status == "unmatched_line" and credit.batch_id is None
    assert credit.note == f"贷方（收入），不是付款；附言中的批次号 {b['B'].reference} 可能是退汇或退票，请核实"
    assert interest.match_status == "unmatched_line" and interest.amount_fen == 36
    assert interest.note.startswith("贷方（收入）：结息（利息），不是付给商户的款项")
    assert interest.serial.startswith("无流水号-")  # the bank gave none; a stable key instead
    assert [batch.id for batch, _ in reconciliation.unmatched_batches()] == [b["B"].id, b["C"].id, b["D"].id]
    # Summary and footer rows are skipped and listed, not refused.
    assert result.skipped_row_count == 3
    assert result.skipped_rows == ["第 9 行：空行", "第 10 行：汇总或页脚行（合计 24.00 16.36），未导入",
                                   "第 11 行：汇总或页脚行（总笔数：3 借方笔数：1 贷方笔数：2），未导入"]
    assert statement.mapping["skipped_rows"] == result.skipped_rows and statement.mapping["header_row"] == 5
    assert statement.mapping["layout"] == "debit_credit" and statement.mapping["headers"]["debit"] == "借方发生额"
    assert statement.total_fen == 24_00 and statement.mapping["credit_total_fen"] == 16_36
    assert statement.mapping_name == "工商银行"

    # The same lines again (an overlapping statement, re-saved in UTF-8): nothing new, the interest line too.
    with pytest.raises(StatementAlreadyImported, match="3 条流水均已在此前的对账单中导入"):
        reconciliation.import_statement(content.decode("gbk").encode("utf-8"), "icbc-again.csv", "工商银行",
                                        world.finance)
    db.session.rollback()


def test_the_default_mapping_reads_a_bank_export_by_its_preset(db, batches):
    world, campaign, b = batches
    result = reconciliation.import_statement(icbc_statement(b), "icbc.csv", None, world.finance)
    assert result.mapping_name == "工商银行" and result.asked_mapping == "默认"
    assert result.counts == {"matched": 1, "amount_mismatch": 0, "unmatched_line": 2}
    db.session.rollback()
    # A file that fits neither the template nor a preset is still refused, naming what is missing.
    content = statement_csv([[TODAY.isoformat(), "N1", b["C"].reference, "", "", "12.00"]],
                            headers=["记账日", "交易编号", "用途说明", "户名", "账号", "发生额"])
    with pytest.raises(MalformedStatement) as refused:
        reconciliation.import_statement(content, "odd.csv", None, world.finance)
    assert any("缺少列：交易日期" in p for p in refused.value.problems)
    assert any("不符合任何银行预设映射" in p for p in refused.value.problems)


def test_a_credit_line_is_never_a_payout_in_any_layout(db, batches):
    world, campaign, b = batches
    day = TODAY.isoformat()
    # One amount column and a 借/贷 flag (中国银行): the credit names C with C's exact amount.
    flagged = _csv([
        ["交易日期", "交易流水号", "借贷标识", "交易金额", "交易附言", "对方户名"],
        [day, "F1", "贷", "12.00", f"退汇 {b['C'].reference}", "海州小超市"],
        [day, "F2", "借", "8.00", f"消费券结算 {b['D'].reference}", "海州小超市"],
        [day, "F3", "X", "1.00", f"{b['A'].reference}", "港城老味道餐饮有限公司"],
    ])
    result = reconciliation.import_statement(flagged, "boc.csv", "中国银行", world.finance)
    lines = {line.serial: line for line in result.statement.lines}
    assert result.counts == {"matched": 1, "amount_mismatch": 0, "unmatched_line": 2}
    assert lines["F1"].batch_id is None and "可能是退汇或退票" in lines["F1"].note
    assert lines["F2"].batch_id == b["D"].id
    assert lines["F3"].batch_id is None and lines["F3"].note == "借贷标识「X」无法识别，未作为付款匹配"
    db.session.rollback()

    # A signed amount (中国银行 without a flag column): negative is a payout, positive a credit.
    signed = _csv([
        ["交易日期", "交易流水号", "交易金额", "交易附言"],
        [day, "G1", "12.00", b["C"].reference],
        [day, "G2", "-8.00", b["D"].reference],
    ])
    result = reconciliation.import_statement(signed, "boc.csv", "中国银行", world.finance)
    lines = {line.serial: line for line in result.statement.lines}
    assert lines["G1"].batch_id is None and lines["G1"].note.startswith("贷方（收入）")
    assert (lines["G2"].batch_id, lines["G2"].amount_fen) == (b["D"].id, 8_00)
    db.session.rollback()

    # The template's one amount column reads every line as a payout: a file that shows directions the
    # mapping ignores is refused rather than taking its credits for payouts.
    from voucher.reconciliation.parsing import parse

    content = statement_csv([[day, "H1", b["C"].reference, "", "", "12.00", "收入"]], headers=HEADERS + ["贷方金额"])
    no_direction = mappings.Mapping("农商行", {**mappings.DEFAULT_MAPPING, "direction": []})
    parsed = parse(content, "bank.csv", no_direction)
    assert parsed.lines == [] and "文件中有「贷方金额」列" in parsed.problems[0] and "会把收入当作付款" in parsed.problems[0]
    # The default reads a 借贷标识 column where a file has one.
    content = statement_csv([[day, "H1", b["C"].reference, "", "", "12.00", "收入"]], headers=HEADERS + ["收支标志"])
    parsed = parse(content, "bank.csv", mappings.default())
    assert parsed.problems == [] and parsed.layout == "amount_flag"
    assert [(line.payout, line.note) for line in parsed.lines] == [
        (False, f"贷方（收入），不是付款；附言中的批次号 {b['C'].reference} 可能是退汇或退票，请核实")]


def _boc(b) -> bytes:
    """中国银行: bilingual headers, 交易类型 来账/往账, the amount signed."""
    gloss = {"交易日期": "Transaction Date", "交易时间": "Transaction time", "交易类型": "Transaction Type",
             "交易金额": "Trade Amount", "交易后余额": "After-transaction balance",
             "交易流水号": "Transaction reference number", "收款人名称": "Payee's Name",
             "收款人账号": "Payee's Account Number", "摘要": "Reference", "用途": "Purpose", "交易附言": "Remark",
             "备注": "Remarks"}
    day = TODAY.strftime("%Y%m%d")
    return _csv([
        ["中国银行 交易明细"],
        [f"账号：{OWN}"],
        [f"{k}[ {v} ]" for k, v in gloss.items()],
        [day, "101530", "往账", "-12.00", "99,988.00", "BOC0001", "海州小超市", "6222020000000001", "转账", "货款",
         f"消费券结算{b['C'].reference}", ""],
        [day, "235959", "来账", "0.52", "99,988.52", "BOC0002", "港城市商务局", OWN, "结息", "", "", ""],
        ["合计笔数：2"],
    ], encoding="utf-8-sig")


def _ccb(b) -> bytes:
    """建设银行, as xlsx: 借方发生额（支取）/贷方发生额（收入）, the note in 备注, typed cells."""
    headers = ["交易时间", "借方发生额（支取）", "贷方发生额（收入）", "余额", "币种", "对方户名", "对方账号", "对方开户机构",
               "记账日期", "摘要", "备注", "账户明细编号-交易流水号", "企业流水号", "凭证种类", "凭证号"]
    when = datetime(TODAY.year, TODAY.month, TODAY.day, 10, 15, 30)
    frame = pd.DataFrame([
        ["中国建设银行单位客户账户明细", *[None] * 14],
        [f"账号：{OWN}", None, "账户名称：港城市商务局", *[None] * 12],
        headers,
        [when, 12.0, None, 99988, "人民币", "海州小超市", 6222020000000001, "建行海州支行", TODAY.strftime("%Y%m%d"),
         "转账", f"消费券结算 {b['C'].reference}", f"{OWN}-00001", None, None, None],
        [when, None, 1000, 100988, "人民币", "港城市财政局", 6222000000000009, "建行港城分行", TODAY.strftime("%Y%m%d"),
         "转存", "拨付消费券资金", f"{OWN}-00002", None, None, None],
        [None] * 15,
        ["本页小计", 12, 1000, *[None] * 12],
    ])
    buffer = io.BytesIO()
    frame.to_excel(buffer, index=False, header=False)
    return buffer.getvalue()


def _abc(b) -> bytes:
    """农业银行: 收入金额/支出金额, the note in 附言, a page break repeating the header."""
    headers = ["交易日期", "交易时间", "收入金额", "支出金额", "本次余额", "手续费总额", "交易方式", "交易行名", "交易流水号",
               "对方省市", "对方账号", "对方户名", "摘要", "附言"]
    day = TODAY.isoformat()
    return _csv([
        ["中国农业银行 账户明细查询"], [f"账号：{OWN}"], ["查询日期：" + day],
        headers,
        [day, "10:15:30", "", "12.00", "99988.00", "0.00", "网银", "农行海州支行", "ABC0001", "江苏连云港",
         "6222020000000001", "海州小超市", "转账", f"消费券结算{b['C'].reference}"],
        ["本页小计", "", "0.00", "12.00"],
        headers,
        [day, "16:00:00", "", "5.00", "99983.00", "", "", "农行海州支行", "ABC0002", "", "", "", "收费", "网银年费"],
        ["合计", "", "0.00", "17.00"],
    ])


def _bocom(b) -> bytes:
    """交通银行: 借方金额/贷方金额, the note in 附言."""
    day = TODAY.strftime("%Y/%m/%d")
    return _csv([
        ["交通银行对公账户交易明细"], [f"账号：{OWN}", "", f"起始日期：{day}", f"终止日期：{day}"], [],
        ["交易日期", "交易时间", "流水号", "摘要", "借方金额", "贷方金额", "余额", "对方账号", "对方户名", "对方开户行", "附言"],
        [day, "10:15:30", "BC0001", "网银转账", "12.00", "", "99,988.00", "6222020000000001", "海州小超市",
         "交行海州支行", f"消费券结算 {b['C'].reference}"],
        [day, "12:00:00", "BC0002", "转账", "", "300.00", "100,288.00", "6222000000000009", "某某公司", "", "往来款"],
        ["借方合计：12.00", "", "", "", "12.00", "300.00"],
    ])


def _icbc(b) -> bytes:
    day = TODAY.isoformat()
    return _csv([
        ["账户明细"], [f"账号：{OWN}"],
        ICBC_HEADERS,
        ["0001", OWN, "6222020000000001", f"{day} 10:15:30", "借", "12.00", "", "", "转账支取",
         f"消费券结算{b['C'].reference}", "海州小超市", "99,988.00", ""],
        ["0002", OWN, "", f"{day} 18:00:00", "贷", "", "2.00", "", "结息", "", "", "99,990.00", ""],
        ["合计", "", "", "", "", "12.00", "2.00"],
    ])


PRESET_SAMPLES = {"工商银行": ("icbc.csv", _icbc), "建设银行": ("ccb.xlsx", _ccb), "中国银行": ("boc.csv", _boc),
                  "农业银行": ("abc.csv", _abc), "交通银行": ("bocom.csv", _bocom)}


@pytest.mark.parametrize("bank", list(PRESET_SAMPLES))
def test_each_bank_preset_reads_a_sample_of_its_export(db, batches, bank):
    world, campaign, b = batches
    assert sorted(PRESET_SAMPLES) == sorted(mappings.PRESETS)
    file_name, build = PRESET_SAMPLES[bank]
    result = reconciliation.import_statement(build(b), file_name, bank, world.finance)
    statement = result.statement
    assert statement.mapping_name == bank
    assert result.counts == {"matched": 1, "amount_mismatch": 0, "unmatched_line": 1}, [
        (line.serial, line.note) for line in statement.lines]
    [payout] = [line for line in statement.lines if line.match_status == "matched"]
    [other] = [line for line in statement.lines if line.match_status != "matched"]
    assert (payout.batch_id, payout.amount_fen, payout.value_date) == (b["C"].id, 12_00, TODAY)
    assert payout.payee_name == "海州小超市"
    assert other.batch_id is None and other.note and "不是" in other.note
    assert result.skipped_row_count >= 1 and all("未导入" in s or "空行" in s or "表头" in s for s in result.skipped_rows)
    db.session.rollback()
    # Under the default, the bank's own export is recognised as that bank's.
    from voucher.reconciliation.parsing import parse

    assert parse(build(b), file_name, mappings.default(), mappings.presets()).mapping_name == bank


def test_summary_rows_page_breaks_and_fees_are_explained_not_refused(db, batches):
    world, campaign, b = batches
    result = reconciliation.import_statement(_abc(b), "abc.csv", "农业银行", world.finance)
    assert result.skipped_rows == ["第 6 行：汇总或页脚行（本页小计 0.00 12.00），未导入",
                                   "第 7 行：重复的表头行（分页导出）",
                                   "第 9 行：汇总或页脚行（合计 0.00 17.00），未导入"]
    fee = next(line for line in result.statement.lines if line.serial == "ABC0002")
    assert fee.note == "年费，不是付给商户的款项" and fee.match_status == "unmatched_line"
    assert result.statement.total_fen == 17_00  # money that left the account: the payout and the fee
    db.session.rollback()
    # A real problem in a bank's file is still refused, with its row.
    bad = _abc(b).decode("gbk").replace(",5.00,", ",5.0.0,")
    with pytest.raises(MalformedStatement) as refused:
        reconciliation.import_statement(bad.encode("gbk"), "abc.csv", "农业银行", world.finance)
    assert refused.value.problems == ["第 8 行：金额「5.0.0」不是有效金额"]


def test_statement_dates_are_read_as_bank_exports_write_them():
    from voucher.reconciliation.parsing import parse_value_date

    for text in ("2026-11-24", "2026-11-24 10:15:30", "2026-11-24-10.15.30.123456", "20261124 101530",
                 "2026/11/24", "2026年11月24日 10时", "２０２６－１１－２４"):
        assert parse_value_date(text).isoformat() == "2026-11-24", text
    for text in ("11/24", "2026-13-01", "合计", "总笔数：3", "202611241"):
        assert parse_value_date(text) is None, text


def test_presets_and_directional_mappings_on_the_pages_and_the_cli(app, client, db, batches, tmp_path):
    world, campaign, b = batches
    _login(client, "finance")
    index = client.get("/finance/reconciliation").get_data(as_text=True)
    for bank in mappings.PRESETS:
        assert f'<option value="{bank}">{bank}</option>' in index
    listing = client.get("/finance/reconciliation/mappings").get_data(as_text=True)
    assert "银行预设映射" in listing and "借方发生额（支取）" in listing

    page = _upload(client, icbc_statement(b), name="icbc.csv", follow_redirects=True)
    text = page.get_data(as_text=True)
    assert "已导入对账单 #1：3 条流水，已匹配 1，金额不符 0，银行流水未匹配 2" in text
    assert "其中 2 条收入、结息等非付款流水" in text and "未导入 3 行合计、页脚、空行等非流水行" in text
    assert "已按「工商银行」预设映射读取" in text
    assert "未导入的非流水行" in text and "第 10 行：汇总或页脚行（合计 24.00 16.36），未导入" in text
    assert "贷方（收入）：结息（利息）" in text

    # A preset's name is not free for a saved mapping; a saved mapping can have debit/credit columns.
    taken = client.post("/finance/reconciliation/mappings", data={
        "name": "工商银行", "value_date": "日期", "serial": "编号", "reference": "附言", "amount": "金额"})
    assert taken.status_code == 422 and "内置的银行预设映射" in taken.get_data(as_text=True)
    form = {"name": "村镇银行", "value_date": "记账日", "serial": "交易编号", "reference": "摘要", "purpose": "附言",
            "debit": "支出", "credit": "收入", "amount": ""}
    no_debit = client.post("/finance/reconciliation/mappings", data={**form, "debit": ""})
    assert "请填写「金额」对应的表头" in no_debit.get_data(as_text=True)
    assert "已保存" in client.post("/finance/reconciliation/mappings", data=form,
                                  follow_redirects=True).get_data(as_text=True)
    day = TODAY.isoformat()
    village = _csv([["某村镇银行对账单"], ["记账日", "交易编号", "摘要", "附言", "支出", "收入"],
                    [day, "V1", "转账", f"消费券结算{b['D'].reference}", "8.00", ""],
                    [day, "V2", "转账", f"退回{b['C'].reference}", "", "12.00"]])
    page = _upload(client, village, name="village.csv", mapping="村镇银行", follow_redirects=True)
    assert "已匹配 1，金额不符 0，银行流水未匹配 1" in page.get_data(as_text=True)

    runner = app.test_cli_runner()
    path = tmp_path / "ccb.xlsx"
    path.write_bytes(_ccb(b))
    done = runner.invoke(args=["settlement", "import-statement", str(path), "--mapping", "建设银行"])
    assert done.exit_code == 0, done.output
    assert "已匹配 1，金额不符 0，银行流水未匹配 1" in done.output
    assert db.session.scalar(select(BankStatement.mapping_name).where(BankStatement.file_name == "ccb.xlsx")) == "建设银行"


def test_a_tab_separated_export_with_a_title_line_is_read():
    from voucher.reconciliation.parsing import parse

    text = ("交通银行对公账户交易明细\n"
            "交易日期\t流水号\t摘要\t借方金额\t贷方金额\t附言\n"
            "2026-12-02\tX1\t转账\t12.00\t\t消费券结算 JS20261201000003\n")
    parsed = parse(text.encode("gbk"), "bocom.txt", next(m for m in mappings.presets() if m.name == "交通银行"))
    assert parsed.problems == [] and parsed.header_row == 2
    assert [(line.serial, line.batch_references, line.amount_fen) for line in parsed.lines] == [
        ("X1", ["JS20261201000003"], 12_00)]
