"""Which column of a bank's statement holds which field, and the downloadable template.

A mapping gives, for each field, the header names a bank uses for it, in order of preference; the
first one present in the file is used. Three kinds, all selectable by name on the import page and by
`flask settlement import-statement --mapping NAME`:

- the built-in default 「默认」, the system's own template (one 金额 column, every line a payout, unless
  the file has a 借贷标识 column); it is
  code, not a row, so it can neither be lost nor edited into something that no longer reads the template.
  When a file does not fit it but fits a bank preset, the import uses that preset (and says so);
- the bank presets (工商银行, 建设银行, ...), data in voucher.reconciliation.presets;
- named mappings a finance officer saves for banks that write something else.
"""
from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field

import pandas as pd
from sqlalchemy import select

from voucher.accounts.models import User
from voucher.core import audit
from voucher.core.clock import utcnow
from voucher.core.db import db
from voucher.core.errors import InvalidInput
from voucher.reconciliation.models import StatementMapping
from voucher.reconciliation.presets import CREDIT_FLAGS, DEBIT_FLAGS, PRESETS


@dataclass(frozen=True)
class Field:
    key: str
    label: str
    required: bool
    #: the mapping page's explanation
    hint: str = ""


FIELDS = (
    Field("value_date", "交易日期", True),
    Field("serial", "流水号", True),
    Field("reference", "附言/摘要", True, "在此列中查找结算批次号（JS…）"),
    Field("purpose", "用途/备注", False, "其中列出的每一列都会查找批次号，并附在附言后保存"),
    Field("payee_name", "收款户名", False),
    Field("payee_account", "收款账号", False),
    Field("amount", "金额", False, "一列金额；与「借方金额」至少填一项"),
    Field("direction", "借贷标识", False, "与「金额」配合：借（支出）为付款，贷（收入）不是付款"),
    Field("debit", "借方金额（支出）", False, "借方、贷方分两列的对账单：借方为付款"),
    Field("credit", "贷方金额（收入）", False, "收入不是付款，不会与结算批次匹配"),
    Field("balance", "余额", False),
)
FIELD_BY_KEY = {f.key: f for f in FIELDS}
#: fields of which every listed column present is used (the others: the first present)
MULTI_FIELDS = ("purpose",)
#: the template's columns, in order
TEMPLATE_FIELDS = ("value_date", "serial", "reference", "payee_name", "payee_account", "amount")

POSITIVE_IS_PAYOUT = "positive_is_payout"
NEGATIVE_IS_PAYOUT = "negative_is_payout"
AMOUNT_SIGNS = {POSITIVE_IS_PAYOUT: "金额为正数，每行都是付款（本系统模板）",
                NEGATIVE_IS_PAYOUT: "金额负数为付款（支出），正数为收入"}

DEFAULT_NAME = "默认"
DEFAULT_MAPPING: dict[str, list[str]] = {
    "value_date": ["交易日期", "记账日期", "日期", "交易时间"],
    "serial": ["流水号", "交易流水号", "银行流水号", "凭证号"],
    "reference": ["附言", "摘要", "用途", "备注"],
    "purpose": [],
    "payee_name": ["收款户名", "收款人名称", "对方户名", "收款人"],
    "payee_account": ["收款账号", "收款人账号", "对方账号"],
    "amount": ["金额", "交易金额", "付款金额", "金额（元）"],
    # not in the template; where a file has such a column, it gives each line's direction ("借/贷" is
    # left to the presets: the mapping form splits headers at "/")
    "direction": ["借贷标识", "借贷标志", "借贷方向", "收支标志", "收支方向"],
    "debit": [],
    "credit": [],
    "balance": [],
}

_SEPARATORS = re.compile(r"[/／、,，;；|]")
_ENGLISH_GLOSS = re.compile(r"\[[^\]\u4e00-\u9fff]*\]")  # 中国银行: "交易日期[ Transaction Date ]"
MAX_HEADER = 40


@dataclass(frozen=True)
class Mapping:
    """A mapping as the import uses it."""

    name: str
    columns: dict[str, list[str]]
    kind: str = "saved"  # builtin | preset | saved
    amount_sign: str = POSITIVE_IS_PAYOUT
    debit_flags: tuple[str, ...] = DEBIT_FLAGS
    credit_flags: tuple[str, ...] = CREDIT_FLAGS
    description: str = ""
    #: a saved mapping's row, for the mapping page
    row: StatementMapping | None = field(default=None, compare=False)


def normalize_header(text: object) -> str:
    """Headers compare without spaces, BOMs, an English gloss in square brackets, and with full-width
    letters folded and half-width brackets: "金额(元)" is "金额（元）", "交易日期[ Date ]" is "交易日期"."""
    text = unicodedata.normalize("NFKC", str(text)).replace("\ufeff", "")
    text = re.sub(r"\s+", "", text)
    text = _ENGLISH_GLOSS.sub("", text) or text
    return text.replace("(", "（").replace(")", "）")


def _preset(name: str) -> Mapping:
    entry = PRESETS[name]
    columns = {key: list(entry["columns"].get(key, [])) for key in FIELD_BY_KEY}
    return Mapping(name, columns, "preset", entry.get("amount_sign", POSITIVE_IS_PAYOUT),
                   tuple(entry.get("debit_flags", DEBIT_FLAGS)), tuple(entry.get("credit_flags", CREDIT_FLAGS)),
                   entry.get("description", ""))


def default() -> Mapping:
    return Mapping(DEFAULT_NAME, DEFAULT_MAPPING, "builtin",
                   description="本系统的对账单模板：一列金额，每行都是付款（文件有借贷标识列时按其区分收付）")


def presets() -> list[Mapping]:
    return [_preset(name) for name in PRESETS]


def _from_row(row: StatementMapping) -> Mapping:
    columns = {key: list(row.columns.get(key) or []) for key in FIELD_BY_KEY}
    stored = row.columns.get("amount_sign")
    sign = stored if isinstance(stored, str) and stored in AMOUNT_SIGNS else POSITIVE_IS_PAYOUT
    return Mapping(row.name, columns, "saved", sign, row=row)


def names() -> list[str]:
    """Every selectable name: the default, the bank presets, then the saved mappings."""
    out = [DEFAULT_NAME, *PRESETS]
    return out + [n for n in db.session.scalars(select(StatementMapping.name).order_by(StatementMapping.name))
                  if n not in out]


def saved() -> list[StatementMapping]:
    return list(db.session.scalars(select(StatementMapping).order_by(StatementMapping.name)))


def load(name: str | None) -> Mapping:
    """The named mapping: the default for an empty name, a saved mapping, else a bank preset (a mapping
    saved under a preset's name before the presets existed keeps its meaning)."""
    if not name or name == DEFAULT_NAME:
        return default()
    row = db.session.scalar(select(StatementMapping).where(StatementMapping.name == name))
    if row is not None:
        return _from_row(row)
    if name in PRESETS:
        return _preset(name)
    raise InvalidInput(f"找不到名为「{name}」的列映射")


def parse_headers(text: str | None) -> list[str]:
    """"附言/摘要、用途" -> ["附言", "摘要", "用途"]."""
    return [h for h in (part.strip() for part in _SEPARATORS.split(text or "")) if h]


def save(name: str, headers_text: dict[str, str], actor: User, amount_sign: str | None = None) -> StatementMapping:
    """Create or replace the named mapping. Every required field needs a header, and the amount a 金额
    or a 借方金额 column; no header may stand for two fields (the import could not tell which is meant),
    except 附言/摘要 and 用途/备注, both searched for the batch reference."""
    name = (name or "").strip()
    problems: list[str] = []
    if not name:
        problems.append("请填写映射名称")
    elif len(name) > 40:
        problems.append("映射名称不能超过 40 个字")
    elif name == DEFAULT_NAME:
        problems.append(f"「{DEFAULT_NAME}」是内置映射，不能修改，请另起名称")
    elif name in PRESETS:
        problems.append(f"「{name}」是内置的银行预设映射，不能修改，请另起名称")
    sign = amount_sign or POSITIVE_IS_PAYOUT
    if sign not in AMOUNT_SIGNS:
        problems.append("金额符号的设置无法识别")
    columns: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    for f in FIELDS:
        headers = parse_headers(headers_text.get(f.key))
        if f.required and not headers:
            problems.append(f"请填写「{f.label}」对应的表头")
        for header in headers:
            if len(header) > MAX_HEADER:
                problems.append(f"表头「{header[:MAX_HEADER]}…」过长（不超过 {MAX_HEADER} 个字）")
            key = normalize_header(header)
            if key in seen and seen[key] != f.key and {seen[key], f.key} != {"reference", "purpose"}:
                problems.append(f"表头「{header}」同时用于「{FIELD_BY_KEY[seen[key]].label}」和「{f.label}」")
            seen.setdefault(key, f.key)
        columns[f.key] = headers
    if not columns["amount"] and not columns["debit"]:
        problems.append(f"请填写「金额」对应的表头（或填写「{FIELD_BY_KEY['debit'].label}」）")
    if columns["direction"] and not columns["amount"]:
        problems.append("填写了「借贷标识」时须同时填写「金额」")
    if columns["credit"] and not columns["debit"]:
        problems.append(f"填写了「{FIELD_BY_KEY['credit'].label}」时须同时填写「{FIELD_BY_KEY['debit'].label}」")
    if problems:
        raise InvalidInput("；".join(dict.fromkeys(problems)))
    stored: dict[str, object] = dict(columns)
    if sign != POSITIVE_IS_PAYOUT:
        stored["amount_sign"] = sign
    row = db.session.scalar(select(StatementMapping).where(StatementMapping.name == name).with_for_update())
    before = dict(row.columns) if row else None
    if row is None:
        row = StatementMapping(name=name, columns=stored)
        db.session.add(row)
    else:
        row.columns = stored
    row.updated_at, row.updated_by_id = utcnow(), actor.id
    db.session.flush()  # the id, for the audit entry
    audit.record("reconciliation.mapping", row, actor=actor, before=before, after={"name": name, **stored})
    return row


# The template ------------------------------------------------------------------------------------

TEMPLATE_HEADERS = [DEFAULT_MAPPING[key][0] for key in TEMPLATE_FIELDS]
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
