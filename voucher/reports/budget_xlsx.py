"""The budget execution report as an xlsx workbook: one sheet per view, amounts in yuan to the fen.

Amounts are written as numbers with a two-decimal format, computed from integer fen by exact decimal
division, so a spreadsheet can add them up and shows the same figures as the page."""
from __future__ import annotations

import io

from openpyxl import Workbook
from openpyxl.styles import Font

from voucher.core.money import to_yuan
from voucher.core.spreadsheet import inert
from voucher.reports.budget import COLUMNS, BudgetReport, Figures, Row

SHEETS = (("按措施", "by_measure", "措施"), ("按活动", "by_campaign", "活动"), ("按资金来源", "by_source", "活动 · 资金来源"),
          ("按出资方", "by_funder", "出资方"), ("按区县", "by_district", "区县（券核销所在门店）"))


def as_xlsx(report: BudgetReport) -> bytes:
    book = Workbook()
    first = book.active
    assert first is not None  # a new Workbook has one sheet, the active one
    book.remove(first)
    for title, attribute, first_column in SHEETS:
        sheet = book.create_sheet(title)
        sheet.append([f"预算执行情况（截至 {report.as_of:%Y-%m-%d} 日终，单位：元）"])
        sheet.append([first_column, *COLUMNS.values()])
        for cell in sheet[2]:
            cell.font = Font(bold=True)
        rows: list[Row] = getattr(report, attribute)
        for row in rows:
            sheet.append([inert(row.label), *(to_yuan(getattr(row.figures, key)) for key in COLUMNS)])
        total = Figures()
        for row in rows:
            total.add(row.figures)
        sheet.append(["合计", *(to_yuan(getattr(total, key)) for key in COLUMNS)])
        for line in sheet.iter_rows(min_row=3, min_col=2):
            for cell in line:
                cell.number_format = "#,##0.00"
        sheet.column_dimensions["A"].width = 36
        for letter in "BCDEFGHIJ":
            sheet.column_dimensions[letter].width = 16
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
