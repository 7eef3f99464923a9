"""The auditor's view of the audit log: filter by user, object and date, a page at a time (core.paging);
export what the filter finds, every record of it, with each change spelt out in Chinese
(voucher/reports/audit_diff.py)."""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date
from itertools import chain
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font
from sqlalchemy import func, select

from voucher.core.audit import AuditEntry
from voucher.core.clock import local_day_end_utc, local_day_start_utc, to_local
from voucher.core.db import reads
from voucher.core.errors import InvalidInput
from voucher.core.forms import parse_id
from voucher.core.paging import Page, page_of
from voucher.core.spreadsheet import inert_row
from voucher.reports.audit_diff import Diff, diff
from voucher.reports.audit_names import action_name, object_type_name

#: an export holds at most this many records; a wider filter is refused, never cut short. Sized to the
#: request: 20,000 records took 6.5 s as xlsx on a busy machine, and a worker is cut off at 30 s.
EXPORT_LIMIT = 30_000
COLUMNS = ["编号", "时间", "操作人", "操作", "对象类型", "对象编号", "变更内容", "变更前（原始记录）", "变更后（原始记录）"]
#: Excel and WPS keep at most 32,767 characters in a cell and call a longer one a damaged file
CELL_LIMIT = 32_000


class ExportTooLarge(InvalidInput):
    code = "export_too_large"


@dataclass(frozen=True)
class AuditFilter:
    actor: str = ""
    object_type: str = ""
    object_id: int | None = None
    date_from: date | None = None
    date_until: date | None = None

    @classmethod
    def parse(cls, args) -> AuditFilter:
        """From a query string; a bad value is refused with the field's name."""
        def day(name: str, label: str) -> date | None:
            text = (args.get(name) or "").strip()
            try:
                return date.fromisoformat(text) if text else None
            except ValueError:
                raise InvalidInput(f"{label}格式应为 YYYY-MM-DD") from None

        object_id_text = (args.get("object_id") or "").strip()
        if object_id_text and parse_id(object_id_text) is None:
            raise InvalidInput("对象编号应为正整数")
        result = cls(
            actor=(args.get("actor") or "").strip()[:80], object_type=(args.get("object_type") or "").strip()[:40],
            object_id=parse_id(object_id_text),
            date_from=day("date_from", "开始日期"), date_until=day("date_until", "结束日期"),
        )
        if result.date_from and result.date_until and result.date_from > result.date_until:
            raise InvalidInput("开始日期不能晚于结束日期")
        return result

    def as_query(self) -> dict[str, str | int]:
        """The filter as url_for's arguments (page links and exports keep it); empty fields left out."""
        values: dict[str, Any] = {"actor": self.actor, "object_type": self.object_type, "object_id": self.object_id,
                                  "date_from": self.date_from and self.date_from.isoformat(),
                                  "date_until": self.date_until and self.date_until.isoformat()}
        return {name: value for name, value in values.items() if value}


def _conditions(f: AuditFilter) -> list:
    found = []
    if f.actor:
        found.append(AuditEntry.actor_label == f.actor)
    if f.object_type:
        found.append(AuditEntry.object_type == f.object_type)
    if f.object_id is not None:
        found.append(AuditEntry.object_id == f.object_id)
    if f.date_from:
        found.append(AuditEntry.at >= local_day_start_utc(f.date_from))
    if f.date_until:
        found.append(AuditEntry.at < local_day_end_utc(f.date_until))
    return found


def _query(f: AuditFilter):
    return select(AuditEntry).where(*_conditions(f)).order_by(AuditEntry.id.desc())


def count(f: AuditFilter) -> int:
    return reads().scalar(select(func.count(AuditEntry.id)).where(*_conditions(f))) or 0


@dataclass(frozen=True)
class Shown:
    """A record as the page shows it."""

    entry: AuditEntry
    action: str
    object_type: str
    diff: Diff


def shown(entry: AuditEntry) -> Shown:
    return Shown(entry, action_name(entry.action), object_type_name(entry.object_type),
                 diff(entry.object_type, entry.before, entry.after))


def page(f: AuditFilter, number: int = 1) -> Page[Shown]:
    """One page of what the filter finds (core.paging: 50 a page, newest first, the count of all of them)."""
    found = page_of(_query(f), number)
    return replace(found, items=[shown(e) for e in found.items])


def object_types() -> list[tuple[str, str]]:
    """(code, name) of every object type the log holds, for the filter."""
    codes = reads().scalars(select(AuditEntry.object_type).distinct().order_by(AuditEntry.object_type))
    return [(code, object_type_name(code)) for code in codes]


def _export_entries(f: AuditFilter) -> Iterator[AuditEntry]:
    total = count(f)
    if total > EXPORT_LIMIT:
        raise ExportTooLarge(f"符合筛选条件的记录共 {total:,} 条，超过单次导出上限 {EXPORT_LIMIT:,} 条，"
                             f"请缩小日期范围或增加筛选条件后分批导出")
    # bounded again: records written since the count are not the export's
    yield from reads().scalars(_query(f).limit(EXPORT_LIMIT).execution_options(yield_per=1000))


def _cell(text: str) -> str:
    text = ILLEGAL_CHARACTERS_RE.sub("", text)
    return text if len(text) <= CELL_LIMIT else text[:CELL_LIMIT] + "…（已截断）"


def _rows(f: AuditFilter) -> Iterator[list]:
    def state(value) -> str:
        return _cell(json.dumps(value, ensure_ascii=False, sort_keys=True)) if value is not None else ""

    for e in _export_entries(f):
        change = diff(e.object_type, e.before, e.after)
        # Labels and states carry text people typed (names, reasons): made inert for the spreadsheet.
        yield inert_row([e.id, f"{to_local(e.at):%Y-%m-%d %H:%M:%S}", e.actor_label, action_name(e.action),
                         object_type_name(e.object_type), e.object_id if e.object_id is not None else "",
                         _cell(change.text()), state(e.before), state(e.after)])


def as_csv(f: AuditFilter) -> bytes:
    rows = list(_rows(f))  # refused (ExportTooLarge) before a byte is written
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def as_xlsx(f: AuditFilter) -> bytes:
    rows = _rows(f)
    first = next(rows, None)  # the count, and a refusal, come before the workbook
    book = Workbook(write_only=True)
    sheet = book.create_sheet("审计日志")
    sheet.freeze_panes = "A2"
    for letter, width in zip("ABCDEFGHI", (10, 20, 14, 22, 16, 10, 60, 40, 40)):
        sheet.column_dimensions[letter].width = width
    sheet.append([_cell_of(sheet, name, font=Font(bold=True)) for name in COLUMNS])
    wrapped = Alignment(wrap_text=True, vertical="top")
    for row in chain([first] if first is not None else [], rows):
        # the change, one line per field, wraps inside its cell
        sheet.append([*row[:6], _cell_of(sheet, row[6], alignment=wrapped), *row[7:]])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _cell_of(sheet, value, **style):
    cell = WriteOnlyCell(sheet, value=value)
    for name, setting in style.items():
        setattr(cell, name, setting)
    return cell
