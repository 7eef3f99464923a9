"""The auditor's view of the audit log: filter by user, object and date; export what the filter shows."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import date

import pandas as pd
from sqlalchemy import select

from voucher.core.audit import AuditEntry
from voucher.core.clock import local_day_end_utc, local_day_start_utc, to_local
from voucher.core.db import db
from voucher.core.errors import InvalidInput
from voucher.core.forms import parse_id
from voucher.core.spreadsheet import inert_row

PAGE_SIZE = 200
EXPORT_LIMIT = 100_000
COLUMNS = ["编号", "时间", "操作人", "操作", "对象类型", "对象编号", "变更前", "变更后"]


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


def _query(f: AuditFilter):
    query = select(AuditEntry).order_by(AuditEntry.id.desc())
    if f.actor:
        query = query.where(AuditEntry.actor_label == f.actor)
    if f.object_type:
        query = query.where(AuditEntry.object_type == f.object_type)
    if f.object_id is not None:
        query = query.where(AuditEntry.object_id == f.object_id)
    if f.date_from:
        query = query.where(AuditEntry.at >= local_day_start_utc(f.date_from))
    if f.date_until:
        query = query.where(AuditEntry.at < local_day_end_utc(f.date_until))
    return query


def entries(f: AuditFilter, limit: int = PAGE_SIZE) -> list[AuditEntry]:
    return list(db.session.scalars(_query(f).limit(limit)))


def object_types() -> list[str]:
    return list(db.session.scalars(select(AuditEntry.object_type).distinct().order_by(AuditEntry.object_type)))


def _rows(found: list[AuditEntry]) -> list[list]:
    def state(value) -> str:
        return json.dumps(value, ensure_ascii=False, sort_keys=True) if value is not None else ""

    # Labels and states carry text people typed (names, reasons): made inert for the spreadsheet.
    return [inert_row([e.id, f"{to_local(e.at):%Y-%m-%d %H:%M:%S}", e.actor_label, e.action, e.object_type,
                       e.object_id if e.object_id is not None else "", state(e.before), state(e.after)])
            for e in found]


def as_csv(f: AuditFilter) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    writer.writerows(_rows(entries(f, EXPORT_LIMIT)))
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def as_xlsx(f: AuditFilter) -> bytes:
    buffer = io.BytesIO()
    pd.DataFrame(_rows(entries(f, EXPORT_LIMIT)), columns=COLUMNS, dtype=object).to_excel(
        buffer, sheet_name="审计日志", index=False, engine="openpyxl")
    return buffer.getvalue()
