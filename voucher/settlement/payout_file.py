"""The payout file sent to the bank: one row per batch, in CSV (UTF-8 with BOM, which Excel opens
as Chinese text) or xlsx. Amounts are yuan with two decimals, written from fen as text, never floats."""
from __future__ import annotations

import csv
import io

import pandas as pd

from voucher.core.money import format_yuan
from voucher.settlement.models import SettlementBatch

COLUMNS = ["批次号", "业务日期", "商户名称", "统一社会信用代码", "开户名", "开户银行", "银行账号", "出资方", "活动",
           "核销笔数", "金额（元）", "状态"]


def rows(batches: list[SettlementBatch]) -> list[list[str | int]]:
    return [
        [
            b.reference, f"{b.business_date:%Y-%m-%d}", b.merchant.name, b.merchant.uscc,
            b.merchant.bank_account_name or "", b.merchant.bank_name or "", b.merchant.bank_account_no or "",
            b.funding_source.name, b.campaign.name, b.redemption_count,
            format_yuan(b.amount_fen, grouping=False), b.status_enum.label,
        ]
        for b in batches
    ]


def as_csv(batches: list[SettlementBatch]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    writer.writerows(rows(batches))
    writer.writerow(["合计", "", "", "", "", "", "", "", "", sum(b.redemption_count for b in batches),
                     format_yuan(sum(b.amount_fen for b in batches), grouping=False), ""])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def as_xlsx(batches: list[SettlementBatch]) -> bytes:
    """Amounts as text cells with two decimals (what the bank's import expects), account numbers
    as text too so a spreadsheet does not turn them into rounded numbers."""
    frame = pd.DataFrame(rows(batches), columns=COLUMNS, dtype=object)
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        frame.to_excel(writer, sheet_name="结算付款", index=False)
        sheet = writer.sheets["结算付款"]
        for column, width in zip("ABCDEFGHIJKL", (20, 12, 24, 22, 24, 20, 24, 14, 24, 10, 14, 12)):
            sheet.column_dimensions[column].width = width
        sheet.append(["合计", None, None, None, None, None, None, None, None,
                      sum(b.redemption_count for b in batches),
                      format_yuan(sum(b.amount_fen for b in batches), grouping=False), None])
    return buffer.getvalue()
