"""The leverage figures as an xlsx workbook: the headline, then one sheet per breakdown."""
from __future__ import annotations

import io

from openpyxl import Workbook
from openpyxl.styles import Font

from voucher.analytics import leverage, panel
from voucher.analytics.leverage import Figures, LeverageFilter
from voucher.core.money import to_yuan
from voucher.core.spreadsheet import inert

COLUMNS = ("领取张数", "发放面值（元）", "核销笔数", "补贴支付（元）", "带动消费（元）", "门槛下限消费（元）",
           "杠杆率（按发放）", "杠杆率（按支付）", "机制下限", "超出下限",
           "核销率（按张数，领取批次）", "沉淀率（按张数，领取批次）", "核销率（按金额，领取批次）", "沉淀率（按金额，领取批次）")


def _values(f: Figures) -> list:
    def ratio(value):
        return None if value is None else round(value, 4)

    return [f.vouchers_claimed if f.attributable_issue else None,
            to_yuan(f.issued_fen) if f.attributable_issue else None,
            f.vouchers_redeemed, to_yuan(f.subsidy_paid_fen), to_yuan(f.driven_fen),
            to_yuan(f.floor_driven_fen), ratio(f.leverage_on_issued), ratio(f.leverage_on_paid),
            ratio(f.floor), ratio(f.excess), ratio(f.redemption_rate), ratio(f.breakage),
            ratio(f.redemption_rate_money), ratio(f.breakage_money)]


def as_xlsx(selection: LeverageFilter) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None  # a new Workbook has one sheet, the active one
    sheet.title = "总览"
    sheet.append(["以下均为毛口径（带动消费 = 用券订单全额）；按商户维度无法归属发放，杠杆率与下限按支付计。"
                  "核销率与沉淀率按领取批次：所选日期内领取的券此后任何时间的核销，按张数为张数之比，按金额为已支付补贴 ÷ 发放面值。"])
    sheet.append(["", *COLUMNS])
    sheet.append(["合计", *_values(leverage.headline(selection))])
    sheet.append([])
    causal = panel.estimate(selection.campaign_id, selection.date_from, selection.date_until).estimate
    sheet.append(["因果口径（每元补贴带来的净增量销售额）", "增量杠杆率", "95% 下限", "95% 上限", "参与商户", "可比商户",
                  "活动数"])
    estimate = causal.as_tuple()
    if estimate is None:
        sheet.append(["", causal.missing_reason])
    else:
        value, low, high = estimate
        sheet.append(["", round(value, 4), round(low, 4), round(high, 4), causal.treated,
                      causal.comparable, causal.campaigns])
    if causal.checks:
        sheet.append(["可靠性检查", "结果", "数值", "说明"])
        for check in causal.checks:
            result = "无法检查" if check.passed is None else ("通过" if check.passed else "未通过")
            sheet.append(["", check.name, result, check.figure, check.explanation])
    for title, rows in (("按商户规模", causal.sizes), ("按周（事件研究）", causal.weeks), ("按活动", causal.by_campaign)):
        if rows:
            sheet.append([title, "名称", "估计", "95% 下限", "95% 上限", "参与商户", "说明"])
            for row in rows:
                sheet.append(["", inert(row.label), _rounded(row.value), _rounded(row.low), _rounded(row.high),
                              row.treated, row.note])
    for name, (label, _) in leverage.DIMENSIONS.items():
        part = book.create_sheet(f"按{label}")
        part.append([label, *COLUMNS])
        for cell in part[1]:
            cell.font = Font(bold=True)
        for key, figures in leverage.breakdown(name, selection):
            part.append([inert(key), *_values(figures)])  # campaign and merchant names were typed
        part.column_dimensions["A"].width = 32
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
