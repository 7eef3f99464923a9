"""The payout file sent to the bank: one row per batch, in CSV (UTF-8 with BOM, which Excel opens as
Chinese text) and xlsx.

What the bank's import reads: payee name, bank, account number, amount, and the remark (附言) that
carries the batch reference back on the bank statement, where reconciliation finds it. There is no 合计
row among the payees: a bank import would take it for one; the xlsx has the totals on a second sheet.
In xlsx, amounts are number cells of yuan (exact Decimal, two decimals shown) and account numbers are
text cells, so no spreadsheet rounds 6222021234567890123 to 6.22202E+18. Every typed text is made inert.
"""
from __future__ import annotations

import csv
import io
from datetime import datetime

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from voucher.core.clock import to_local
from voucher.core.money import format_yuan, to_yuan
from voucher.core.spreadsheet import inert, inert_row
from voucher.settlement.models import SettlementBatch

COLUMNS = ["批次号", "收款户名", "收款银行", "收款账号", "金额（元）", "附言", "商户名称", "统一社会信用代码", "出资方",
           "活动", "业务日期", "核销笔数", "付款文件号"]
AMOUNT, ACCOUNT = COLUMNS.index("金额（元）"), COLUMNS.index("收款账号")
WIDTHS = (20, 24, 20, 24, 14, 32, 24, 22, 14, 24, 12, 10, 18)


def remark(batch: SettlementBatch) -> str:
    """The remark the bank carries onto its statement: the reference is what reconciliation matches."""
    return f"消费券结算 {batch.reference}"


def _row(batch: SettlementBatch, number: str) -> list:
    merchant = batch.merchant
    return [
        batch.reference, (merchant.bank_account_name or "").strip(), (merchant.bank_name or "").strip(),
        "".join((merchant.bank_account_no or "").split()), batch.amount_fen, remark(batch), merchant.name,
        merchant.uscc, batch.funding_source.name, batch.campaign.name, f"{batch.business_date:%Y-%m-%d}",
        batch.redemption_count, number,
    ]


def as_csv(batches: list[SettlementBatch], number: str) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for batch in batches:
        row = _row(batch, number)
        row[AMOUNT] = format_yuan(row[AMOUNT], grouping=False)
        writer.writerow(inert_row(row))
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def as_xlsx(batches: list[SettlementBatch], number: str, created_at: datetime,
            held_out: list[dict[str, str]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None  # a new Workbook has one sheet, the active one
    sheet.title = "结算付款"
    sheet.append(COLUMNS)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for batch in batches:
        row = _row(batch, number)
        row[AMOUNT] = to_yuan(row[AMOUNT])
        sheet.append(inert_row(row))
        line = sheet.max_row
        sheet.cell(line, AMOUNT + 1).number_format = "0.00"
        account = sheet.cell(line, ACCOUNT + 1)
        account.value, account.data_type, account.number_format = str(account.value), "s", "@"
    for index, width in enumerate(WIDTHS, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.freeze_panes = "A2"

    summary = book.create_sheet("汇总")
    summary.append(["付款文件号", number])
    summary.append(["生成时间", f"{to_local(created_at):%Y-%m-%d %H:%M}"])
    summary.append(["批次数", len(batches)])
    summary.append(["合计金额（元）", to_yuan(sum(b.amount_fen for b in batches))])
    summary.cell(4, 2).number_format = "#,##0.00"
    if held_out:
        summary.append([])
        summary.append(["未纳入本文件的批次", "商户", "原因"])
        for item in held_out:
            summary.append([inert(item["reference"]), inert(item["merchant"]), item["reason"]])
    summary.column_dimensions["A"].width = 22
    summary.column_dimensions["B"].width = 30
    summary.column_dimensions["C"].width = 40
    # Fixed document times: the stored bytes are the file, but a rebuilt file should not differ by them.
    book.properties.created = book.properties.modified = created_at
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
