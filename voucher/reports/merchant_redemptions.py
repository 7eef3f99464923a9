"""A merchant's own redemptions (商户端 · 核销记录): filtered, totalled, paged, and exported as xlsx.

Everything is read within the user's Scope (merchants/scope.py): a manager sees every store of the
merchant, a cashier only their own store. The totals are of the whole filtered set, not of the page; the
page shows PAGE_SIZE rows of it and says how many there are, and the export writes all of them up to
EXPORT_LIMIT, refusing (never cutting short) a larger set. The export carries no citizen data: no citizen
is named, and a voucher's code, which would redeem it again once a redemption is reversed, is shown
by its last four characters only.
"""
from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import Cell, WriteOnlyCell
from openpyxl.styles import Font
from sqlalchemy import case, func, select

from voucher.accounts.models import User
from voucher.campaigns.models import Campaign
from voucher.core.clock import local_day_start_utc, to_local
from voucher.core.db import db
from voucher.core.errors import InvalidInput
from voucher.core.forms import keeper, parse_day, parse_id
from voucher.core.money import to_yuan
from voucher.core.paging import PAGE_SIZE, Page, clamp
from voucher.core.spreadsheet import inert
from voucher.merchants.models import Redemption, Store, StoreTerminal
from voucher.merchants.scope import Scope, scope_for
from voucher.settlement.models import BatchStatus, SettlementBatch, SettlementItem
from voucher.vouchers.codes import display as display_code
from voucher.vouchers.models import Voucher

EXPORT_LIMIT = 50_000
#: the status filter: value -> label ("" is every redemption, reversed ones too)
STATUSES = {
    "": "全部（含已撤销）",
    "valid": "有效（未撤销）",
    "unsettled": "待结算",
    "settling": "结算中（已入批次，待支付）",
    "paid": "已支付",
    "reversed": "已撤销",
}
COLUMNS = ["核销编号", "核销时间", "门店", "活动", "券码（后四位）", "订单金额（元）", "优惠补贴（元）", "顾客实付（元）",
           "操作员", "状态", "撤销原因"]
MONEY_COLUMNS = {"订单金额（元）", "优惠补贴（元）", "顾客实付（元）"}


@dataclass(frozen=True)
class RedemptionFilter:
    date_from: date | None = None
    date_until: date | None = None
    store_id: int | None = None
    campaign_id: int | None = None
    status: str = ""
    page: int = 1

    @classmethod
    def parse(cls, args: Mapping[str, str]) -> RedemptionFilter:
        """From a query string; a malformed value is refused with the field's name (a store outside the
        user's own is the Scope's to refuse)."""
        found, error = cls.parse_keeping(args)
        if error is not None:
            raise error
        return found

    @classmethod
    def parse_keeping(cls, args: Mapping[str, str]) -> tuple[RedemptionFilter, InvalidInput | None]:
        """From a query string, keeping every filter that is right: a malformed one (or a date range that
        ends before it starts, both of its dates) is left out and the first refusal returned beside it, so the
        page can show the reason without clearing what else the user chose."""
        errors: list[InvalidInput] = []
        kept = keeper(errors)

        def number(name: str, label: str) -> int | None:
            text = (args.get(name) or "").strip()
            if text and parse_id(text) is None:
                raise InvalidInput(f"{label}不正确")
            return parse_id(text)

        def status() -> str:
            text = (args.get("status") or "").strip()
            if text not in STATUSES:
                raise InvalidInput("状态不正确")
            return text

        date_from = kept(lambda: parse_day(args.get("date_from") or "", "开始日期"), None)
        date_until = kept(lambda: parse_day(args.get("date_until") or "", "结束日期"), None)
        if date_from and date_until and date_from > date_until:
            errors.append(InvalidInput("开始日期不能晚于结束日期"))
            date_from = date_until = None
        result = cls(date_from=date_from, date_until=date_until,
                     store_id=kept(lambda: number("store", "门店"), None),
                     campaign_id=kept(lambda: number("campaign", "活动"), None), status=kept(status, ""),
                     page=kept(lambda: number("page", "页码"), None) or 1)
        return result, (errors[0] if errors else None)

    def query(self, **changes: Any) -> dict[str, Any]:
        """The filter as url_for's arguments (empty ones left out), with `changes` (page=…)."""
        f = replace(self, **changes)
        values = {"date_from": f.date_from.isoformat() if f.date_from else None,
                  "date_until": f.date_until.isoformat() if f.date_until else None,
                  "store": f.store_id, "campaign": f.campaign_id, "status": f.status or None,
                  "page": f.page if f.page > 1 else None}
        return {k: v for k, v in values.items() if v is not None}


@dataclass(frozen=True)
class RedemptionRow:
    id: int
    created_at: datetime
    store: str
    campaign: str
    code: str
    order_amount_fen: int
    subsidy_fen: int
    operator: str
    status: str
    reversal_reason: str | None

    @property
    def paid_by_citizen_fen(self) -> int:
        return self.order_amount_fen - self.subsidy_fen

    @property
    def status_label(self) -> str:
        return STATUSES[self.status].split("（")[0]

    @property
    def code_tail(self) -> str:
        """The code as shown with all but its last four characters hidden: ****-***H-JKM."""
        masked = "*" * (len(self.code) - 4) + self.code[-4:]
        return display_code(masked)


@dataclass(frozen=True)
class Totals:
    """Of the whole filtered set; the reversed ones among them apart, as they are never settled."""

    count: int = 0
    order_amount_fen: int = 0
    subsidy_fen: int = 0
    reversed_count: int = 0
    reversed_order_amount_fen: int = 0
    reversed_subsidy_fen: int = 0

    @property
    def paid_by_citizen_fen(self) -> int:
        return self.order_amount_fen - self.subsidy_fen


@dataclass
class Listing:
    scope: Scope
    filter: RedemptionFilter
    totals: Totals
    page: Page[RedemptionRow]
    #: (id, name) of the campaigns the user's stores redeemed for, for the filter
    campaigns: list[tuple[int, str]] = field(default_factory=list)


def _settled():
    return select(SettlementItem.id).where(SettlementItem.redemption_id == Redemption.id).exists()


def _unpaid():
    return (select(SettlementItem.id)
            .join(SettlementBatch, SettlementBatch.id == SettlementItem.batch_id)
            .where(SettlementItem.redemption_id == Redemption.id, SettlementBatch.status != BatchStatus.PAID.value)
            .exists())


def _conditions(scope: Scope, f: RedemptionFilter) -> list:
    live = Redemption.reversed_at.is_(None)
    found = [Redemption.merchant_id == scope.merchant_id, Redemption.store_id.in_(scope.store_ids)]
    if f.date_from:
        found.append(Redemption.created_at >= local_day_start_utc(f.date_from))
    if f.date_until:
        found.append(Redemption.created_at < local_day_start_utc(f.date_until + timedelta(days=1)))
    if f.campaign_id is not None:
        found.append(Redemption.campaign_id == f.campaign_id)
    found.extend({
        "": [],
        "valid": [live],
        "reversed": [Redemption.reversed_at.is_not(None)],
        "unsettled": [live, ~_settled()],
        "settling": [_settled(), _unpaid()],
        "paid": [_settled(), ~_unpaid()],
    }[f.status])
    return found


def _totals(conditions: list) -> Totals:
    reversed_ = Redemption.reversed_at.is_not(None)
    row = db.session.execute(
        select(func.count(Redemption.id), func.coalesce(func.sum(Redemption.order_amount_fen), 0),
               func.coalesce(func.sum(Redemption.subsidy_fen), 0),
               func.coalesce(func.sum(case((reversed_, 1), else_=0)), 0),
               func.coalesce(func.sum(case((reversed_, Redemption.order_amount_fen), else_=0)), 0),
               func.coalesce(func.sum(case((reversed_, Redemption.subsidy_fen), else_=0)), 0))
        .where(*conditions)
    ).one()
    return Totals(*(int(v) for v in row))


def _rows(conditions: list, limit: int, offset: int = 0) -> list[RedemptionRow]:
    status = case(
        (Redemption.reversed_at.is_not(None), "reversed"),
        (~_settled(), "unsettled"),
        (_unpaid(), "settling"),
        else_="paid",
    )
    query = (
        select(Redemption.id, Redemption.created_at, Store.name, Campaign.name, Voucher.code,
               Redemption.order_amount_fen, Redemption.subsidy_fen, User.display_name, StoreTerminal.label,
               status, Redemption.reversal_reason)
        .join(Store, Store.id == Redemption.store_id)
        .join(Campaign, Campaign.id == Redemption.campaign_id)
        .join(Voucher, Voucher.id == Redemption.voucher_id)
        .outerjoin(User, User.id == Redemption.cashier_id)
        .outerjoin(StoreTerminal, StoreTerminal.id == Redemption.terminal_id)
        .where(*conditions)
        .order_by(Redemption.created_at.desc(), Redemption.id.desc())
        .limit(limit).offset(offset)
    )
    return [
        RedemptionRow(id=r[0], created_at=r[1], store=r[2], campaign=r[3], code=r[4], order_amount_fen=r[5],
                      subsidy_fen=r[6], operator=r[7] if r[7] is not None else f"终端：{r[8] or ''}",
                      status=r[9], reversal_reason=r[10])
        for r in db.session.execute(query)
    ]


def _campaigns(scope: Scope) -> list[tuple[int, str]]:
    used = (select(Redemption.campaign_id)
            .where(Redemption.merchant_id == scope.merchant_id, Redemption.store_id.in_(tuple(s.id for s in scope.stores)))
            .distinct())
    return [(i, n) for i, n in db.session.execute(
        select(Campaign.id, Campaign.name).where(Campaign.id.in_(used)).order_by(Campaign.id.desc()))]


def search(user: User, f: RedemptionFilter) -> Listing:
    """One page of the user's own redemptions under `f`, with the totals of all of them. A page past the
    last shows the last one."""
    scope = scope_for(user, f.store_id)
    conditions = _conditions(scope, f)
    totals = _totals(conditions)
    number = clamp(f.page, totals.count)
    rows = _rows(conditions, PAGE_SIZE, (number - 1) * PAGE_SIZE) if totals.count else []
    return Listing(scope=scope, filter=replace(f, page=number), totals=totals,
                   page=Page(rows, number, PAGE_SIZE, totals.count), campaigns=_campaigns(scope))


def _money(sheet, fen: int) -> Cell:
    cell = WriteOnlyCell(sheet)
    cell.value = to_yuan(fen)  # an exact Decimal, written as a number
    cell.number_format = "#,##0.00"
    return cell


def _bold(sheet, value: Any) -> Cell:
    cell = WriteOnlyCell(sheet, value=value)
    cell.font = Font(bold=True)
    return cell


def _describe(listing_scope: Scope, f: RedemptionFilter, campaign_names: Mapping[int, str]) -> str:
    """The filter in words, for the workbook's first line."""
    parts = [f"{f.date_from or '最早'} 至 {f.date_until or '今'}"]
    if f.store_id is not None:
        parts.append(next(s.name for s in listing_scope.stores if s.id == f.store_id))
    elif not listing_scope.is_manager:
        parts.append(listing_scope.stores[0].name)
    if f.campaign_id is not None:
        parts.append(campaign_names.get(f.campaign_id, f"活动 #{f.campaign_id}"))
    parts.append(STATUSES[f.status])
    return "，".join(parts)


def as_xlsx(user: User, f: RedemptionFilter) -> bytes:
    """Every redemption of the filtered set (not only one page), with a 合计 row; refused when there are more
    than EXPORT_LIMIT of them. Amounts are number cells of yuan, typed text is made inert."""
    scope = scope_for(user, f.store_id)
    conditions = _conditions(scope, f)
    totals = _totals(conditions)
    if totals.count > EXPORT_LIMIT:
        raise InvalidInput(f"筛选结果共 {totals.count:,} 条，超过单次导出上限 {EXPORT_LIMIT:,} 条，"
                           f"请缩小日期范围后分次导出")
    book = Workbook(write_only=True)
    sheet = book.create_sheet("核销记录")
    for letter, width in zip("ABCDEFGHIJK", (10, 20, 24, 28, 16, 14, 14, 14, 16, 10, 24)):
        sheet.column_dimensions[letter].width = width
    title = f"{scope.merchant.name} 核销记录（{_describe(scope, f, dict(_campaigns(scope)))}；金额单位：元）"
    sheet.append([inert(title)])
    sheet.append([_bold(sheet, c) for c in COLUMNS])
    for r in _rows(conditions, EXPORT_LIMIT):
        sheet.append([
            r.id, f"{to_local(r.created_at):%Y-%m-%d %H:%M:%S}", inert(r.store), inert(r.campaign), r.code_tail,
            _money(sheet, r.order_amount_fen), _money(sheet, r.subsidy_fen), _money(sheet, r.paid_by_citizen_fen),
            inert(r.operator), r.status_label, inert(r.reversal_reason or ""),
        ])
    sheet.append([_bold(sheet, "合计"), f"{totals.count} 笔", "", "", "", _money(sheet, totals.order_amount_fen),
                  _money(sheet, totals.subsidy_fen), _money(sheet, totals.paid_by_citizen_fen), "", "", ""])
    if totals.reversed_count:
        sheet.append([_bold(sheet, "其中已撤销"), f"{totals.reversed_count} 笔", "", "", "",
                      _money(sheet, totals.reversed_order_amount_fen), _money(sheet, totals.reversed_subsidy_fen),
                      _money(sheet, totals.reversed_order_amount_fen - totals.reversed_subsidy_fen), "", "", "不参与结算"])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def file_name(f: RedemptionFilter, today: date) -> str:
    span = f"{f.date_from:%Y%m%d}-{f.date_until:%Y%m%d}" if f.date_from and f.date_until else f"{today:%Y%m%d}"
    return f"redemptions-{span}.xlsx"

