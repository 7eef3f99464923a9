"""Importing merchants' daily sales baselines (CSV or xlsx) for the causal leverage estimate.

A file has one row per merchant and local day: the merchant by 统一社会信用代码 (or its number in
the system), the day, and the day's whole sales in yuan. Every row is checked and every problem listed
with its row number before anything is written: a file is imported whole or not at all. A row for a
merchant and day already held replaces it (a corrected file can be imported again), and the rows are
marked `imported`. The causal panel is rebuilt afterwards, so the page's estimate uses them at once.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import delete, insert, select, tuple_

from voucher.accounts.models import User
from voucher.analytics import panel
from voucher.analytics.models import MerchantDailySales
from voucher.analytics.rollup import lock_state
from voucher.core import audit
from voucher.core.db import db, rowcount
from voucher.core.errors import RefusedFile
from voucher.core.forms import parse_id
from voucher.core.money import AmountUnreadable, read_fen
from voucher.core.progress import Progress, silent
from voucher.core.uploads import Limits, UploadRefused, read_table
from voucher.merchants.models import Merchant
from voucher.reconciliation.parsing import parse_date

MAX_ROWS = 200_000
#: checked while the file is read (voucher/core/uploads.py): three columns wanted, a few more tolerated
LIMITS = Limits("销售基线文件", max_rows=MAX_ROWS, header_rows=1, max_columns=16, max_cells=1_000_000)
#: accepted headers, after trimming and dropping full-width brackets: the first is the template's
HEADERS = {
    "merchant": ("统一社会信用代码", "商户编号", "商户ID", "merchant"),
    "day": ("日期", "营业日", "day", "date"),
    "sales": ("销售额（元）", "销售额(元)", "销售额", "sales_yuan", "sales"),
}
TEMPLATE_CSV = "统一社会信用代码,日期,销售额（元）\n91320700MA1XXXXXX0,2026-10-01,12345.67\n"


class BadBaselineFile(RefusedFile):
    code = "baseline_file_invalid"
    SHOWN = 100


@dataclass
class BaselineImport:
    rows: int = 0
    replaced: int = 0
    merchants: int = 0
    first_day: date | None = None
    last_day: date | None = None
    panel_units: int = 0
    problems: list[str] = field(default_factory=list)


def _key(text: str) -> str:
    return re.sub(r"\s+", "", text).replace("（", "(").replace("）", ")").lower()


def _columns(header: list[str]) -> tuple[dict[str, int], list[str]]:
    cells = [_key(h) for h in header]
    columns, problems = {}, []
    for name, accepted in HEADERS.items():
        for candidate in accepted:
            if _key(candidate) in cells:
                columns[name] = cells.index(_key(candidate))
                break
        else:
            problems.append(f"缺少「{accepted[0]}」列（表头应为：{'、'.join(h[0] for h in HEADERS.values())}）")
    return columns, problems


def _sales_fen(text: str) -> tuple[int | None, str | None]:
    try:
        return read_fen(text, what="销售额"), None
    except AmountUnreadable as error:
        if error.reason in ("format", "decimals"):
            return None, f"销售额「{text}」不是有效金额（元，最多两位小数）"
        return None, error.message


def import_baselines(content: bytes, file_name: str, actor: User | None,
                     progress: Progress = silent) -> BaselineImport:
    """Check the whole file, then write it in one go; raises BadBaselineFile listing every problem.
    `progress` hears of the reading, each thousand rows written and the panel's rebuild."""
    progress("读取文件", 0, 1)
    try:
        read = read_table(content, file_name, LIMITS)
    except UploadRefused as error:
        raise BadBaselineFile([str(error)]) from None
    table = [[v.strip() for v in row] for row in read.rows]
    while table and not any(table[-1]):
        table.pop()
    if not table:
        raise BadBaselineFile(["文件为空"])
    columns, problems = _columns(table[0])
    if problems:
        raise BadBaselineFile(problems)
    body = table[1:]
    if not body:
        raise BadBaselineFile(["文件只有表头，没有数据行"])

    codes = {row[columns["merchant"]].upper() for row in body if len(row) > columns["merchant"]}
    known = _merchants(codes)
    seen: dict[tuple[int, date], int] = {}
    parsed: list[dict] = []
    for number, row in enumerate(body, start=2):
        if not any(row):
            continue
        cells = {name: (row[i] if i < len(row) else "") for name, i in columns.items()}
        where = f"第 {number} 行"
        merchant_id = known.get(cells["merchant"].upper())
        if not cells["merchant"]:
            problems.append(f"{where}：缺少商户（统一社会信用代码）")
        elif merchant_id is None:
            problems.append(f"{where}：商户「{cells['merchant']}」不存在")
        day = parse_date(cells["day"]) if cells["day"] else None
        if day is None:
            problems.append(f"{where}：日期「{cells['day']}」无效，应为 YYYY-MM-DD")
        fen, why = _sales_fen(cells["sales"]) if cells["sales"] else (None, "缺少销售额")
        if why:
            problems.append(f"{where}：{why}")
        if merchant_id is None or day is None or fen is None:
            continue
        if (merchant_id, day) in seen:
            problems.append(f"{where}：商户「{cells['merchant']}」{day.isoformat()} 与第 {seen[merchant_id, day]} 行重复")
            continue
        seen[merchant_id, day] = number
        parsed.append({"merchant_id": merchant_id, "day": day, "sales_fen": fen, "source": "imported"})
    if problems:
        raise BadBaselineFile(problems)

    lock_state(panel.NAME)  # one import or panel rebuild at a time: none sees another's half-written rows
    first_day, last_day = min(r["day"] for r in parsed), max(r["day"] for r in parsed)
    result = BaselineImport(rows=len(parsed), merchants=len({r["merchant_id"] for r in parsed}),
                            first_day=first_day, last_day=last_day)
    for start in range(0, len(parsed), 1000):
        progress("写入", start, len(parsed) + 1)
        chunk = parsed[start:start + 1000]
        keys = [(r["merchant_id"], r["day"]) for r in chunk]
        result.replaced += rowcount(db.session.execute(
            delete(MerchantDailySales).where(tuple_(MerchantDailySales.merchant_id, MerchantDailySales.day).in_(keys))
        )) or 0
        db.session.execute(insert(MerchantDailySales), chunk)
    progress("重建因果面板", len(parsed), len(parsed) + 1)
    result.panel_units = panel.build()
    progress("完成", len(parsed) + 1, len(parsed) + 1)
    entry = audit.row("baselines.import", None, actor=actor, after={
        "file": file_name[:120], "rows": result.rows, "replaced": result.replaced, "merchants": result.merchants,
        "first_day": first_day.isoformat(), "last_day": last_day.isoformat()})
    audit.write({**entry, "object_type": MerchantDailySales.__tablename__})
    return result


def _merchants(codes: set[str]) -> dict[str, int]:
    """{code as written (upper case): merchant id} for 统一社会信用代码 or a merchant number."""
    known: dict[str, int] = {}
    listed = sorted(codes)
    for start in range(0, len(listed), 1000):
        chunk = listed[start:start + 1000]
        for merchant_id, uscc in db.session.execute(select(Merchant.id, Merchant.uscc).where(Merchant.uscc.in_(chunk))):
            known[uscc.upper()] = merchant_id
        numbers = [n for n in map(parse_id, chunk) if n is not None]
        for (merchant_id,) in db.session.execute(select(Merchant.id).where(Merchant.id.in_(numbers))):
            known.setdefault(str(merchant_id), merchant_id)
    return known


@dataclass(frozen=True)
class Coverage:
    source: str
    rows: int
    merchants: int
    first_day: date | None
    last_day: date | None


SOURCE_LABELS = {"imported": "导入", "synthetic": "合成（示意数据）"}


def coverage() -> list[Coverage]:
    """What baselines are held, by source."""
    from sqlalchemy import func

    return [Coverage(source, int(rows), int(merchants), first, last) for source, rows, merchants, first, last in
            db.session.execute(
                select(MerchantDailySales.source, func.count(MerchantDailySales.id),
                       func.count(MerchantDailySales.merchant_id.distinct()), func.min(MerchantDailySales.day),
                       func.max(MerchantDailySales.day))
                .group_by(MerchantDailySales.source).order_by(MerchantDailySales.source))]
