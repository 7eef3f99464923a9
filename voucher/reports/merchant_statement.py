"""A merchant's own settlement statement (商户端 · 结算对账单), for its manager: per business day, campaign and
funder, what was redeemed, what settlement batches hold (settled), and what the bank paid, with each batch's
payout file and, once paid, the bank's reference: the serial (流水号) of the statement line matched to the
batch, or 例外确认 when two finance officers confirmed it without one (reconciliation/payments.py).

The business day is the local (Beijing) day a redemption was made. A redemption's subsidy is split
between the campaign's funders as the ledger split it (the spent-side postings of its redemption entry,
as settlement builds its batches from them), so each funder's row adds up to what its batches pay. A
batch usually holds one day; a merchant held for a risk review gets the days it waited in one later
batch, which then appears on each of those days' rows, with that day's part.
"""
from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from sqlalchemy import case, func, select
from sqlalchemy.orm import selectinload

from voucher.accounts.models import User
from voucher.campaigns.models import Campaign, FundingSource
from voucher.core.clock import local_day_start_utc, local_today, to_local
from voucher.core.db import db, local_day
from voucher.core.errors import InvalidInput
from voucher.core.forms import keeper, parse_day, parse_id
from voucher.core.money import to_yuan
from voucher.core.spreadsheet import inert
from voucher.ledger.models import AccountKind, EntryKind, JournalEntry, LedgerAccount, Posting
from voucher.merchants.models import Merchant, Redemption
from voucher.merchants.scope import manager_scope
from voucher.reconciliation.payments import evidence_for
from voucher.settlement.models import BatchStatus, PaidEvidence, SettlementBatch, SettlementItem

DEFAULT_DAYS = 30
MAX_DAYS = 366
OVERRIDE_LABEL = "例外确认"
ROW_COLUMNS = ["业务日期", "活动", "出资方", "核销笔数", "核销补贴（元）", "已入结算批次（元）", "已支付（元）", "待结算（元）",
               "结算批次号", "付款文件号", "银行流水号"]
BATCH_COLUMNS = ["结算批次号", "批次业务日期", "活动", "出资方", "核销笔数", "金额（元）", "状态", "付款文件号", "支付确认时间",
                 "银行流水号"]


@dataclass(frozen=True)
class StatementFilter:
    date_from: date
    date_until: date
    campaign_id: int | None = None

    @classmethod
    def parse(cls, args: Mapping[str, str], today: date | None = None) -> StatementFilter:
        """From a query string; by default the last DEFAULT_DAYS days up to today. At most MAX_DAYS days."""
        today = today or local_today()
        until = parse_day(args.get("date_until") or "", "结束日期") or today
        start = parse_day(args.get("date_from") or "", "开始日期") or until - timedelta(days=DEFAULT_DAYS - 1)
        if start > until:
            raise InvalidInput("开始日期不能晚于结束日期")
        if (until - start).days + 1 > MAX_DAYS:
            raise InvalidInput(f"对账期间最长 {MAX_DAYS} 天，请缩小日期范围")
        campaign_text = (args.get("campaign") or "").strip()
        if campaign_text and parse_id(campaign_text) is None:
            raise InvalidInput("活动不正确")
        return cls(start, until, parse_id(campaign_text))

    @classmethod
    def parse_keeping(cls, args: Mapping[str, str], today: date | None = None
                      ) -> tuple[StatementFilter, InvalidInput | None]:
        """parse(), keeping every field that is right: a malformed one falls back to its default on its own, so
        one mistyped field does not clear the others; the first refusal comes back beside the filter, for the page
        to say. Dates the wrong way round fall back to the default period; a period too long keeps its end and is
        cut to MAX_DAYS."""
        today = today or local_today()
        errors: list[InvalidInput] = []
        kept = keeper(errors)

        given_until = kept(lambda: parse_day(args.get("date_until") or "", "结束日期"), None)
        given_from = kept(lambda: parse_day(args.get("date_from") or "", "开始日期"), None)
        campaign = kept(lambda: cls.parse({"campaign": args.get("campaign") or ""}, today).campaign_id, None)
        until = given_until or today
        start = given_from or until - timedelta(days=DEFAULT_DAYS - 1)
        if start > until:
            errors.append(InvalidInput("开始日期不能晚于结束日期"))
            until, start = today, today - timedelta(days=DEFAULT_DAYS - 1)
        elif (until - start).days + 1 > MAX_DAYS:
            errors.append(InvalidInput(f"对账期间最长 {MAX_DAYS} 天，已显示截至结束日期的 {MAX_DAYS} 天"))
            start = until - timedelta(days=MAX_DAYS - 1)
        return cls(start, until, campaign), (errors[0] if errors else None)

    @classmethod
    def default(cls, today: date | None = None) -> StatementFilter:
        return cls.parse({}, today)

    def query(self) -> dict[str, Any]:
        values = {"date_from": self.date_from.isoformat(), "date_until": self.date_until.isoformat(),
                  "campaign": self.campaign_id}
        return {k: v for k, v in values.items() if v is not None}


@dataclass(frozen=True)
class BatchLine:
    """A settlement batch as the merchant sees it."""

    id: int
    reference: str
    business_date: date
    campaign: str
    funder: str
    redemption_count: int
    amount_fen: int
    status: str
    payout_file: str
    paid_at: datetime | None
    #: once paid: the matched bank line's serial, or 例外确认
    bank_reference: str

    @property
    def status_label(self) -> str:
        return BatchStatus(self.status).label


@dataclass
class StatementRow:
    day: date
    campaign_id: int
    campaign: str
    funder: str
    redemption_count: int
    redeemed_fen: int
    settled_fen: int
    paid_fen: int
    batches: list[BatchLine] = field(default_factory=list)

    @property
    def unsettled_fen(self) -> int:
        return self.redeemed_fen - self.settled_fen

    def joined(self, attribute: str) -> str:
        """One attribute of the row's batches, in one cell ("、" between two)."""
        return "、".join(dict.fromkeys(v for b in self.batches if (v := getattr(b, attribute))))


@dataclass(frozen=True)
class StatementTotals:
    #: redemptions, each once (a co-funded one is on one row per funder)
    redemption_count: int = 0
    redeemed_fen: int = 0
    settled_fen: int = 0
    paid_fen: int = 0

    @property
    def unsettled_fen(self) -> int:
        return self.redeemed_fen - self.settled_fen


@dataclass
class Statement:
    merchant: Merchant
    filter: StatementFilter
    rows: list[StatementRow]
    batches: list[BatchLine]
    totals: StatementTotals
    campaigns: list[tuple[int, str]]


def _as_date(value: date | str) -> date:
    # local_day() is a date on PostgreSQL and 'YYYY-MM-DD' text on SQLite
    return date.fromisoformat(value) if isinstance(value, str) else value


def _live_in_range(merchant_id: int, f: StatementFilter) -> list:
    found = [Redemption.merchant_id == merchant_id, Redemption.reversed_at.is_(None),
             Redemption.created_at >= local_day_start_utc(f.date_from),
             Redemption.created_at < local_day_start_utc(f.date_until + timedelta(days=1))]
    if f.campaign_id is not None:
        found.append(Redemption.campaign_id == f.campaign_id)
    return found


def _bank_reference(batch: SettlementBatch, evidence) -> str:
    if batch.status != BatchStatus.PAID.value:
        return ""
    if batch.paid_evidence == PaidEvidence.OVERRIDE.value:
        return OVERRIDE_LABEL
    return evidence.line.serial if evidence.matched else ""


def _batches(merchant_id: int, batch_ids: set[int]) -> dict[int, BatchLine]:
    if not batch_ids:
        return {}
    found = list(db.session.scalars(
        select(SettlementBatch)
        .where(SettlementBatch.id.in_(batch_ids), SettlementBatch.merchant_id == merchant_id)
        .options(selectinload(SettlementBatch.payout_file), selectinload(SettlementBatch.campaign),
                 selectinload(SettlementBatch.funding_source))
        .order_by(SettlementBatch.business_date.desc(), SettlementBatch.id.desc())
    ))
    evidence = evidence_for([b.id for b in found])
    return {b.id: BatchLine(
        id=b.id, reference=b.reference, business_date=b.business_date, campaign=b.campaign.name,
        funder=b.funding_source.name, redemption_count=b.redemption_count, amount_fen=b.amount_fen, status=b.status,
        payout_file=b.payout_file.number if b.payout_file is not None else "", paid_at=b.paid_at,
        bank_reference=_bank_reference(b, evidence[b.id]),
    ) for b in found}


def statement(user: User, f: StatementFilter) -> Statement:
    """The manager's own merchant's statement for the days of `f`."""
    scope = manager_scope(user)
    conditions = _live_in_range(scope.merchant_id, f)
    day = local_day(Redemption.created_at)
    paid = case((SettlementBatch.status == BatchStatus.PAID.value, SettlementItem.amount_fen), else_=0)
    flows = db.session.execute(
        select(day, Redemption.campaign_id, LedgerAccount.funding_source_id, func.count(Redemption.id),
               func.sum(Posting.amount_fen), func.coalesce(func.sum(SettlementItem.amount_fen), 0),
               func.coalesce(func.sum(paid), 0))
        .select_from(Redemption)
        .join(JournalEntry, (JournalEntry.ref_type == "redemption") & (JournalEntry.ref_id == Redemption.id)
              & (JournalEntry.kind == EntryKind.REDEMPTION.value))
        .join(Posting, Posting.entry_id == JournalEntry.id)
        .join(LedgerAccount, (LedgerAccount.id == Posting.account_id) & (LedgerAccount.kind == AccountKind.SPENT.value))
        .outerjoin(SettlementItem, (SettlementItem.redemption_id == Redemption.id)
                   & (SettlementItem.funding_source_id == LedgerAccount.funding_source_id))
        .outerjoin(SettlementBatch, SettlementBatch.id == SettlementItem.batch_id)
        .where(*conditions)
        .group_by(day, Redemption.campaign_id, LedgerAccount.funding_source_id)
    ).all()
    held_by: dict[tuple[date, int], set[int]] = defaultdict(set)
    for held_day, source_id, batch_id in db.session.execute(
        select(day, SettlementItem.funding_source_id, SettlementItem.batch_id)
        .join(SettlementItem, SettlementItem.redemption_id == Redemption.id)
        .where(*conditions)
        .group_by(day, SettlementItem.funding_source_id, SettlementItem.batch_id)
    ):
        held_by[(_as_date(held_day), source_id)].add(batch_id)
    batches = _batches(scope.merchant_id, {b for ids in held_by.values() for b in ids})
    sources = {s.id: s for s in db.session.scalars(
        select(FundingSource).where(FundingSource.id.in_({r[2] for r in flows}))
        .options(selectinload(FundingSource.campaign)))}
    rows = []
    for row_day, campaign_id, source_id, count, redeemed, settled, paid_fen in flows:
        row_day = _as_date(row_day)
        source = sources[source_id]
        rows.append(StatementRow(
            day=row_day, campaign_id=campaign_id, campaign=source.campaign.name, funder=source.name,
            redemption_count=int(count), redeemed_fen=int(redeemed), settled_fen=int(settled), paid_fen=int(paid_fen),
            batches=[batches[b] for b in sorted(held_by.get((row_day, source_id), ())) if b in batches],
        ))
    rows.sort(key=lambda r: (-r.day.toordinal(), r.campaign_id, r.funder))
    count = db.session.scalar(select(func.count(Redemption.id)).where(*conditions)) or 0
    totals = StatementTotals(redemption_count=count, redeemed_fen=sum(r.redeemed_fen for r in rows),
                             settled_fen=sum(r.settled_fen for r in rows), paid_fen=sum(r.paid_fen for r in rows))
    used = select(Redemption.campaign_id).where(Redemption.merchant_id == scope.merchant_id).distinct()
    campaigns = [(i, n) for i, n in db.session.execute(
        select(Campaign.id, Campaign.name).where(Campaign.id.in_(used)).order_by(Campaign.id.desc()))]
    return Statement(merchant=scope.merchant, filter=f, rows=rows, batches=list(batches.values()), totals=totals,
                     campaigns=campaigns)


def _header(sheet, columns: list[str]) -> None:
    sheet.append(columns)
    for cell in sheet[sheet.max_row]:
        cell.font = Font(bold=True)


def _money_format(sheet, first_row: int, columns: list[str], money: set[str]) -> None:
    indexes = [i + 1 for i, c in enumerate(columns) if c in money]
    for line in sheet.iter_rows(min_row=first_row):
        for index in indexes:
            line[index - 1].number_format = "#,##0.00"


def as_xlsx(user: User, f: StatementFilter) -> bytes:
    """The statement as a workbook of two sheets: 按日按活动 (the rows, with a 合计 row) and 结算批次 (each
    batch once). Amounts are number cells of yuan, typed text is made inert."""
    found = statement(user, f)
    book = Workbook()
    sheet = book.active
    assert sheet is not None  # a new Workbook has one sheet, the active one
    sheet.title = "按日按活动"
    sheet.append([inert(f"{found.merchant.name} 结算对账单（{f.date_from:%Y-%m-%d} 至 {f.date_until:%Y-%m-%d}，"
                        f"按核销日；金额单位：元）")])
    _header(sheet, ROW_COLUMNS)
    for r in found.rows:
        sheet.append([f"{r.day:%Y-%m-%d}", inert(r.campaign), inert(r.funder), r.redemption_count,
                      to_yuan(r.redeemed_fen), to_yuan(r.settled_fen), to_yuan(r.paid_fen), to_yuan(r.unsettled_fen),
                      r.joined("reference"), r.joined("payout_file"), inert(r.joined("bank_reference"))])
    t = found.totals
    sheet.append(["合计", "", "", t.redemption_count, to_yuan(t.redeemed_fen), to_yuan(t.settled_fen),
                  to_yuan(t.paid_fen), to_yuan(t.unsettled_fen), "", "", ""])
    sheet.cell(sheet.max_row, 1).font = Font(bold=True)
    _money_format(sheet, 3, ROW_COLUMNS, {"核销补贴（元）", "已入结算批次（元）", "已支付（元）", "待结算（元）"})
    for letter, width in zip("ABCDEFGHIJK", (12, 28, 14, 10, 14, 16, 14, 14, 20, 20, 22)):
        sheet.column_dimensions[letter].width = width
    sheet.freeze_panes = "A3"

    batches = book.create_sheet("结算批次")
    _header(batches, BATCH_COLUMNS)
    for b in found.batches:
        batches.append([b.reference, f"{b.business_date:%Y-%m-%d}", inert(b.campaign), inert(b.funder),
                        b.redemption_count, to_yuan(b.amount_fen), b.status_label, b.payout_file,
                        f"{to_local(b.paid_at):%Y-%m-%d %H:%M}" if b.paid_at else "", inert(b.bank_reference)])
    _money_format(batches, 2, BATCH_COLUMNS, {"金额（元）"})
    for letter, width in zip("ABCDEFGHIJ", (20, 12, 28, 14, 10, 14, 14, 20, 18, 22)):
        batches.column_dimensions[letter].width = width
    batches.freeze_panes = "A2"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
