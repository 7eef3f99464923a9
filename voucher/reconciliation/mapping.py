"""Which column of a bank's statement holds which field, and the downloadable template.

A mapping gives, for each field, the header names a bank uses for it, in order of preference; the
first one present in the file is used. The built-in default knows the usual Chinese headers; a finance
officer can save named mappings for banks that write something else. The default is code, not a row,
so it can neither be lost nor edited into something that no longer reads the template.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import select

from voucher.accounts.models import User
from voucher.core import audit
from voucher.core.clock import utcnow
from voucher.core.db import db
from voucher.core.errors import InvalidInput
from voucher.reconciliation.models import StatementMapping


@dataclass(frozen=True)
class Field:
    key: str
    label: str
    required: bool


FIELDS = (
    Field("value_date", "交易日期", True),
    Field("serial", "流水号", True),
    Field("reference", "附言/摘要", True),
    Field("payee_name", "收款户名", False),
    Field("payee_account", "收款账号", False),
    Field("amount", "金额", True),
)
FIELD_BY_KEY = {f.key: f for f in FIELDS}

DEFAULT_NAME = "默认"
DEFAULT_MAPPING: dict[str, list[str]] = {
    "value_date": ["交易日期", "记账日期", "日期", "交易时间"],
    "serial": ["流水号", "交易流水号", "银行流水号", "凭证号"],
    "reference": ["附言", "摘要", "用途", "备注"],
    "payee_name": ["收款户名", "收款人名称", "对方户名", "收款人"],
    "payee_account": ["收款账号", "收款人账号", "对方账号"],
    "amount": ["金额", "交易金额", "付款金额", "金额（元）"],
}

_SEPARATORS = re.compile(r"[/／、,，;；|]")
MAX_HEADER = 40


def normalize_header(text: object) -> str:
    """Headers compare without spaces, BOMs and with half-width brackets: "金额(元)" is "金额（元）"."""
    return re.sub(r"\s+", "", str(text)).replace("\ufeff", "").replace("(", "（").replace(")", "）")


def names() -> list[str]:
    return [DEFAULT_NAME, *db.session.scalars(select(StatementMapping.name).order_by(StatementMapping.name))]


def saved() -> list[StatementMapping]:
    return list(db.session.scalars(select(StatementMapping).order_by(StatementMapping.name)))


def load(name: str | None) -> tuple[str, dict[str, list[str]]]:
    """(name, {field: [headers]}) of a saved mapping, or the default for an empty name."""
    if not name or name == DEFAULT_NAME:
        return DEFAULT_NAME, DEFAULT_MAPPING
    row = db.session.scalar(select(StatementMapping).where(StatementMapping.name == name))
    if row is None:
        raise InvalidInput(f"找不到名为「{name}」的列映射")
    return row.name, {key: list(row.columns.get(key, [])) for key in FIELD_BY_KEY}


def parse_headers(text: str | None) -> list[str]:
    """"附言/摘要、用途" -> ["附言", "摘要", "用途"]."""
    return [h for h in (part.strip() for part in _SEPARATORS.split(text or "")) if h]


def save(name: str, headers_text: dict[str, str], actor: User) -> StatementMapping:
    """Create or replace the named mapping. Every required field needs a header; no header may
    stand for two fields (the import could not tell which is meant)."""
    name = (name or "").strip()
    problems: list[str] = []
    if not name:
        problems.append("请填写映射名称")
    elif len(name) > 40:
        problems.append("映射名称不能超过 40 个字")
    elif name == DEFAULT_NAME:
        problems.append(f"「{DEFAULT_NAME}」是内置映射，不能修改，请另起名称")
    columns: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    for field in FIELDS:
        headers = parse_headers(headers_text.get(field.key))
        if field.required and not headers:
            problems.append(f"请填写「{field.label}」对应的表头")
        for header in headers:
            if len(header) > MAX_HEADER:
                problems.append(f"表头「{header[:MAX_HEADER]}…」过长（不超过 {MAX_HEADER} 个字）")
            key = normalize_header(header)
            if key in seen and seen[key] != field.key:
                problems.append(f"表头「{header}」同时用于「{FIELD_BY_KEY[seen[key]].label}」和「{field.label}」")
            seen[key] = field.key
        columns[field.key] = headers
    if problems:
        raise InvalidInput("；".join(problems))
    row = db.session.scalar(select(StatementMapping).where(StatementMapping.name == name).with_for_update())
    before = dict(row.columns) if row else None
    if row is None:
        row = StatementMapping(name=name, columns=columns)
        db.session.add(row)
    else:
        row.columns = columns
    row.updated_at, row.updated_by_id = utcnow(), actor.id
    db.session.flush()  # the id, for the audit entry
    audit.record("reconciliation.mapping", row, actor=actor, before=before, after={"name": name, **columns})
    return row


# The template ------------------------------------------------------------------------------------

TEMPLATE_HEADERS = [DEFAULT_MAPPING[f.key][0] for f in FIELDS]
TEMPLATE_EXAMPLE = ["2026-01-05", "202601050000001", "消费券结算 JS20260104000001", "港城老味道餐饮有限公司",
                    "6222020000001234", "1,234.50"]


def template_csv() -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(TEMPLATE_HEADERS)
    writer.writerow(TEMPLATE_EXAMPLE)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def template_xlsx() -> bytes:
    """Every cell is text, so a spreadsheet keeps account and serial numbers whole."""
    frame = pd.DataFrame([TEMPLATE_EXAMPLE], columns=TEMPLATE_HEADERS, dtype=object)
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        frame.to_excel(writer, sheet_name="银行对账单", index=False)
        sheet = writer.sheets["银行对账单"]
        for column, width in zip("ABCDEF", (12, 20, 34, 26, 22, 14)):
            sheet.column_dimensions[column].width = width
            for cell in sheet[column]:
                cell.number_format = "@"
    return buffer.getvalue()
