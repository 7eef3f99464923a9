"""Importing city-year indicator values from CSV or xlsx, long or wide, all or nothing.

Long form: columns city, year, indicator, value (indicator by code, D1-D3, S1-S13, E1-E7). Wide form:
columns city, year and one column per code. Chinese headers (城市, 年份, 指标, 数值) work too. Share
indicators are in percent (0-100; "90.5%" is read as 90.5). Every problem of the file is collected, with
its row number as a spreadsheet shows it, before anything is written: a file is imported whole or not at
all. An empty cell of the wide form is simply not imported (a missing value, refused at computation
unless an imputation is chosen).
"""
from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field

from openpyxl import Workbook
from openpyxl.styles import Font
from sqlalchemy import select

from voucher.core import audit
from voucher.core.clock import utcnow
from voucher.core.db import db
from voucher.core.errors import RefusedFile
from voucher.core.typed_text import clean
from voucher.core.uploads import Limits, UploadRefused, read_table
from voucher.info_consumption_index import method
from voucher.info_consumption_index.models import IndexImportBatch, IndexValue, ValueSource

MAX_CELLS = 200_000
#: checked while the file is read (voucher/core/uploads.py): long form, a value a row; wide form, a city-year
#: a row with one column per indicator (23) and a note
LIMITS = Limits("指标数据文件", max_rows=MAX_CELLS, header_rows=1, max_columns=64, max_cells=1_200_000)

HEADERS = {
    "city": ("city", "城市", "城市名称"),
    "year": ("year", "年份", "年度"),
    "indicator": ("indicator", "code", "指标", "指标代码"),
    "value": ("value", "数值", "值", "指标值"),
    #: ignored: a remark such as the illustrative data's label
    "note": ("note", "备注", "说明"),
}
_YEAR = re.compile(r"^[0-9]{4}$")
_NUMBER = re.compile(r"^-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$|^-?\.\d+$")


class ImportRefused(RefusedFile):
    code = "index_import_refused"


@dataclass
class Cell:
    row: int  # as a spreadsheet shows it (the header is row 1)
    city: str
    year: int
    code: str
    value: float


@dataclass
class Parsed:
    file_type: str
    layout: str  # long | wide
    cells: list[Cell] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def normalize_city(name: str) -> str:
    """"连云港市 " -> "连云港": the report writes "北京市", statistics yearbooks often do not."""
    text = re.sub(r"\s+", "", name or "")
    return text[:-1] if len(text) > 2 and text.endswith("市") else text


def parse_number(text: str) -> float | None:
    raw = clean(text)
    if not _NUMBER.match(raw):
        return None
    value = float(raw.replace(",", ""))
    return value if math.isfinite(value) else None  # "9" x 400 parses to inf


def _header_key(cell: str) -> str | None:
    low = cell.strip().lower()
    for key, names in HEADERS.items():
        if low in names:
            return key
    return None


def parse(content: bytes, file_name: str, catalogue: method.Catalogue) -> Parsed:
    try:
        read = read_table(content, file_name, LIMITS)
    except UploadRefused as error:
        raise ImportRefused([str(error)]) from None
    file_type = read.file_type
    rows = [[v.strip() for v in row] for row in read.rows]
    while rows and not any(rows[-1]):
        rows.pop()
    if not rows:
        raise ImportRefused(["文件为空"])
    header = rows[0]
    keys = [_header_key(h) for h in header]
    codes = {c.upper(): c for c in catalogue.codes}
    by_code = {i.code: i for i in catalogue.indicators}
    problems: list[str] = []
    for needed in ("city", "year"):
        if needed not in keys:
            problems.append(f"表头缺少“{HEADERS[needed][0]}”（或“{HEADERS[needed][1]}”）列")
    layout = "long" if "indicator" in keys else "wide"
    if layout == "long" and "value" not in keys:
        problems.append("长表缺少“value”（或“数值”）列")
    code_columns: dict[int, str] = {}
    if layout == "wide":
        for n, (h, k) in enumerate(zip(header, keys)):
            if k is not None or not h:
                continue
            if h.strip().upper() in codes:
                code_columns[n] = codes[h.strip().upper()]
            else:
                problems.append(f"第 {n + 1} 列表头“{h}”不是指标代码（应为 {catalogue.codes[0]}-{catalogue.codes[-1]} 之一）")
        if not code_columns and not problems:
            problems.append("表头中没有指标代码列：宽表每个指标一列，列名为指标代码（如 D1、S11）；长表需有 indicator 列")
    if problems:
        raise ImportRefused(problems)

    parsed = Parsed(file_type, layout)
    column = {k: keys.index(k) for k in HEADERS if k in keys}
    seen: dict[tuple[str, int, str], int] = {}

    def add(row_number: int, city: str, year: int | None, code: str, text: str) -> None:
        ind = by_code[code]
        value = parse_number(text.removesuffix("%") if ind.kind == "share" else text)
        where = f"第 {row_number} 行 {code}"
        if value is None:
            problems.append(f"{where}：“{text}”不是数字")
            return
        if ind.kind == "share" and not 0 <= value <= 100:
            problems.append(f"{where}（{ind.name}，占比类，按百分数填写 0-100）：{text} 超出范围")
            return
        if value < 0:
            problems.append(f"{where}（{ind.name}，单位 {ind.unit}）：不能为负数")
            return
        if year is None or not city:
            return  # the row's own problem is already reported
        key = (city, year, code)
        if key in seen:
            problems.append(f"{where}：{city} {year} 年 {code} 与第 {seen[key]} 行重复")
            return
        seen[key] = row_number
        parsed.cells.append(Cell(row_number, city, year, code, value))

    for offset, row in enumerate(rows[1:], start=2):
        if not any(row):
            continue
        city = normalize_city(row[column["city"]])
        if not city:
            problems.append(f"第 {offset} 行：城市为空")
        year_text = clean(row[column["year"]]).removesuffix("年").removesuffix(".0")
        year = int(year_text) if _YEAR.match(year_text) and 1990 <= int(year_text) <= 2100 else None
        if year is None:
            problems.append(f"第 {offset} 行：年份“{row[column['year']]}”应为 1990-2100 之间的整数")
        if layout == "long":
            code_text = row[column["indicator"]].strip().upper()
            if code_text not in codes:
                problems.append(f"第 {offset} 行：未知的指标代码“{row[column['indicator']]}”")
                continue
            text = row[column["value"]]
            if not text:
                problems.append(f"第 {offset} 行 {codes[code_text]}：数值为空")
                continue
            add(offset, city, year, codes[code_text], text)
        else:
            for n, code in code_columns.items():
                if n < len(row) and row[n]:
                    add(offset, city, year, code, row[n])
        if len(parsed.cells) > MAX_CELLS:
            raise ImportRefused([f"文件超过 {MAX_CELLS} 个数值，请分批导入"])
    if not parsed.cells and not problems:
        problems.append("文件中没有任何数值")
    parsed.problems = problems
    return parsed


@dataclass
class ImportSummary:
    batch: IndexImportBatch
    cells: int
    replaced: int
    cities: list[str]
    years: list[int]


def import_file(content: bytes, file_name: str, catalogue: method.Catalogue, actor=None) -> ImportSummary:
    """Parse, check, and write every value as official (replacing an earlier official value of the same
    city, year and indicator). Raises ImportRefused, writing nothing, on any problem."""
    parsed = parse(content, file_name, catalogue)
    if parsed.problems:
        raise ImportRefused(parsed.problems)
    batch = IndexImportBatch(file_name=file_name[:200], file_type=parsed.file_type, layout=parsed.layout,
                             cells=len(parsed.cells), imported_by_id=getattr(actor, "id", None))
    db.session.add(batch)
    db.session.flush()  # the values below refer to the batch
    existing = {
        (v.city, v.year, v.code): v for v in db.session.scalars(select(IndexValue).where(
            IndexValue.source == ValueSource.OFFICIAL.value,
            IndexValue.year.in_({c.year for c in parsed.cells}),
            IndexValue.city.in_({c.city for c in parsed.cells})))
    }
    now = utcnow()
    replaced = 0
    for cell in parsed.cells:
        found = existing.get((cell.city, cell.year, cell.code))
        if found is None:
            db.session.add(IndexValue(city=cell.city, year=cell.year, code=cell.code, value=cell.value,
                                      source=ValueSource.OFFICIAL.value, batch_id=batch.id,
                                      updated_by_id=batch.imported_by_id, updated_at=now))
        else:
            replaced += found.value != cell.value
            found.value, found.batch_id, found.updated_by_id, found.updated_at = (
                cell.value, batch.id, batch.imported_by_id, now)
    batch.replaced = replaced
    audit.record("index.import", batch, actor=actor, actor_label=None if actor else "cli",
                 after={"file": batch.file_name, "layout": batch.layout, "cells": batch.cells, "replaced": replaced})
    return ImportSummary(batch, len(parsed.cells), replaced, sorted({c.city for c in parsed.cells}),
                         sorted({c.year for c in parsed.cells}))


# Templates ------------------------------------------------------------------------------------------


def template_csv(catalogue: method.Catalogue, layout: str = "wide") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    if layout == "long":
        writer.writerow(["city", "year", "indicator", "value"])
    else:
        writer.writerow(["city", "year", *catalogue.codes])
    return ("\ufeff" + out.getvalue()).encode("utf-8")  # the BOM makes Excel read UTF-8


def template_xlsx(catalogue: method.Catalogue) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None  # a new Workbook has one sheet, the active one
    sheet.title = "数据"
    sheet.append(["city", "year", *catalogue.codes])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    notes = book.create_sheet("指标说明")
    notes.append(["代码", "一级指标", "二级指标", "三级指标", "单位", "类型", "填写说明"])
    for i in catalogue.indicators:
        notes.append([i.code, method.FIRST_LEVEL_LABELS[i.first], i.second, i.name, i.unit, method.KINDS[i.kind],
                      "按百分数填写，0-100" if i.kind == "share" else "非负数"])
    notes.append([])
    notes.append(["“数据”表每行一个城市一年；也可用长表：city, year, indicator, value 四列，indicator 填指标代码。"])
    notes.column_dimensions["D"].width = 44
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
