"""Reading a bank statement (CSV or xlsx) into checked lines, or into the list of what is wrong.

Everything is read as text (dtype=str) and converted here: amounts through Decimal into fen, never
floats; dates in the formats banks write. Every problem of the file is collected, most with its row
number as a spreadsheet shows it, before anything is written: a file is imported whole or not at all.
"""
from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

import pandas as pd

from voucher.reconciliation.mapping import FIELD_BY_KEY, FIELDS, normalize_header

MAX_BYTES = 10 * 1024 * 1024
MAX_LINES = 20_000
HEADER_SEARCH_ROWS = 20  # banks put an account name and a period above the header
MAX_LENGTHS = {"serial": 64, "reference": 200, "payee_name": 120, "payee_account": 64}

BATCH_REFERENCE = re.compile(r"(?<![A-Z0-9])JS\d{14}(?!\d)")
_FULL_WIDTH = str.maketrans("０１２３４５６７８９．，－", "0123456789.,-")
_AMOUNT = re.compile(r"^(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?$")
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d", "%Y年%m月%d日")
_SUMMARY_WORDS = ("合计", "总计", "小计")
ENCODINGS_TRIED = "UTF-8（含/不含 BOM）、GB18030/GBK"


@dataclass
class ParsedLine:
    row_number: int
    serial: str
    value_date: date
    reference_text: str
    #: every batch reference written in the remark (normally one)
    batch_references: list[str]
    payee_name: str | None
    payee_account: str | None
    amount_fen: int


@dataclass
class ParsedStatement:
    file_type: str  # csv | xlsx
    encoding: str | None
    #: {field: the header found in the file}
    headers: dict[str, str]
    lines: list[ParsedLine] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def parse_amount(text: str) -> tuple[int | None, str | None]:
    """"1,234.50", "¥1234.5", "1234" -> fen. Returns (fen, None) or (None, why not)."""
    raw = text.translate(_FULL_WIDTH).strip().replace(" ", "")
    raw = raw.removesuffix("元").lstrip("¥￥").strip()
    if raw.startswith("+"):
        raw = raw[1:]
    if raw.startswith("-") or (raw.startswith("(") and raw.endswith(")")):
        return None, f"金额「{text}」为负数（退款或转入），对账单只应包含付给商户的款项"
    match = _AMOUNT.match(raw)
    if not match:
        return None, f"金额「{text}」不是有效金额"
    decimals = match.group(1) or ""
    if len(decimals.rstrip("0")) > 2:
        return None, f"金额「{text}」超过两位小数"
    try:
        value = Decimal(raw.replace(",", "")) * 100
    except InvalidOperation:  # pragma: no cover - the pattern admits only digits
        return None, f"金额「{text}」不是有效金额"
    if value >= Decimal(10) ** 14:
        return None, f"金额「{text}」超出允许范围"
    if value == 0:
        return None, "金额必须大于 0"
    return int(value), None


def parse_date(text: str) -> date | None:
    """"2026-11-24", "2026/11/24 10:15:00", "20261124", "2026年11月24日" -> a date; else None."""
    raw = text.strip().replace("T", " ").split(" ")[0]
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(raw, fmt).date()
        except ValueError:
            continue
    return None


# Reading the file into a table of text ------------------------------------------------------------


def _decode(content: bytes) -> tuple[str, str]:
    if content.startswith((b"\xff\xfe", b"\xfe\xff")):
        return content.decode("utf-16"), "UTF-16"  # Excel's "Unicode text"
    if b"\x00" in content:
        raise ValueError("文件不是 CSV 文本或 xlsx 表格（含二进制内容），请上传 CSV 或 xlsx 文件")
    try:
        return content.decode("utf-8-sig"), "UTF-8"
    except UnicodeDecodeError:
        pass
    try:
        # GB18030 is a superset of GBK and GB2312: what Chinese banks' exports and Excel on a Chinese
        # Windows write.
        return content.decode("gb18030"), "GB18030"
    except UnicodeDecodeError:
        raise ValueError(
            f"无法识别文件编码（已尝试 {ENCODINGS_TRIED}），请将文件另存为 UTF-8 编码的 CSV 或 xlsx"
        ) from None


def _read_csv(content: bytes) -> tuple[pd.DataFrame, str]:
    text, encoding = _decode(content)
    first_line = text.split("\n", 1)[0]
    sep = "\t" if first_line.count("\t") > first_line.count(",") else ","
    try:
        width = max((len(row) for row in csv.reader(io.StringIO(text), delimiter=sep)), default=0)
    except csv.Error as error:
        raise ValueError(f"CSV 格式有误：{error}") from None
    if width == 0:
        raise ValueError("文件为空")
    # Named columns up to the widest row: a bank's preamble rows are shorter than its table.
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, header=None, names=list(range(width)), dtype=str,
                            keep_default_na=False, skip_blank_lines=False)
    except pd.errors.ParserError as error:
        where = re.search(r"row (\d+)", str(error))
        if "EOF inside string" in str(error) and where:
            raise ValueError(f"第 {int(where.group(1)) + 1} 行：引号未闭合，CSV 无法按行读取") from None
        raise ValueError(f"CSV 格式有误，无法按行读取（{error}）") from None
    return frame, encoding


def _read_xlsx(content: bytes) -> pd.DataFrame:
    try:
        return pd.read_excel(io.BytesIO(content), sheet_name=0, header=None, dtype=str, keep_default_na=False,
                             engine="openpyxl")
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, TypeError) as error:
        raise ValueError(f"无法读取 xlsx 文件，文件可能已损坏或不是 Excel 2007 及以上格式（{type(error).__name__}）") from None
    except Exception:  # noqa: BLE001 - openpyxl raises many kinds on a damaged workbook
        raise ValueError("无法读取 xlsx 文件，文件可能已损坏或不是 Excel 2007 及以上格式") from None


def read_table(content: bytes, file_name: str) -> tuple[pd.DataFrame, str, str | None]:
    """(table of text, "csv" or "xlsx", encoding). Raises ValueError with a Chinese message."""
    if not content:
        raise ValueError("文件为空")
    if len(content) > MAX_BYTES:
        raise ValueError(f"文件过大（超过 {MAX_BYTES // 1024 // 1024} MB），请分段导出")
    lower = file_name.lower()
    if lower.endswith(".xls") or content.startswith(b"\xd0\xcf\x11\xe0"):
        raise ValueError("不支持旧版 Excel（.xls）文件，请在 Excel 中另存为 .xlsx 或 CSV")
    if content.startswith(b"PK\x03\x04"):
        return _read_xlsx(content).fillna(""), "xlsx", None
    if lower.endswith(".xlsx"):
        raise ValueError("文件扩展名为 .xlsx，但内容不是 Excel 表格")
    frame, encoding = _read_csv(content)
    return frame.fillna(""), "csv", encoding


# From the table to checked lines ---------------------------------------------------------------------


def _cell(value: object) -> str:
    return "" if value is None else str(value).strip()


def _find_header(frame: pd.DataFrame, mapping: dict[str, list[str]]) -> tuple[int, dict[str, int]]:
    """(header row index, {field: column}): the first row among the first few holding every required
    field, else the row holding the most fields (so the missing ones can be named)."""
    best: tuple[int, int, dict[str, int]] | None = None
    for index in range(min(len(frame), HEADER_SEARCH_ROWS)):
        cells = [normalize_header(_cell(v)) for v in frame.iloc[index].tolist()]
        if not any(cells):
            continue
        columns: dict[str, int] = {}
        for f in FIELDS:
            for header in mapping.get(f.key, []):
                wanted = normalize_header(header)
                if wanted in cells:
                    columns[f.key] = cells.index(wanted)
                    break
        if all(f.key in columns for f in FIELDS if f.required):
            return index, columns
        if best is None or len(columns) > best[1]:
            best = (index, len(columns), columns)
    if best is None:
        return -1, {}
    return best[0], best[2]


def parse(content: bytes, file_name: str, mapping: dict[str, list[str]]) -> ParsedStatement:
    """Parse and check a statement file. The result's `problems` is empty only for a clean file."""
    try:
        frame, file_type, encoding = read_table(content, file_name)
    except ValueError as error:
        return ParsedStatement("", None, {}, problems=[str(error)])
    result = ParsedStatement(file_type, encoding, {})

    header_index, columns = _find_header(frame, mapping)
    if header_index < 0:
        result.problems.append("文件为空")
        return result
    missing = [f for f in FIELDS if f.required and f.key not in columns]
    for f in missing:
        result.problems.append(
            f"缺少列：{f.label}（可在列映射中设置对应的表头）；当前映射认作该列的表头：{'、'.join(mapping.get(f.key) or ['（未设置）'])}"
        )
    if missing:
        return result
    header_cells = [_cell(v) for v in frame.iloc[header_index].tolist()]
    result.headers = {key: header_cells[col] for key, col in columns.items()}

    first_row_of_serial: dict[str, int] = {}
    data = frame.iloc[header_index + 1 :]
    for index, values in zip(data.index, data.itertuples(index=False)):
        cells = [_cell(v) for v in values]
        if not any(cells):
            continue
        row = int(index) + 1  # the header of a plain file is row 1
        get = {key: cells[col] if col < len(cells) else "" for key, col in columns.items()}
        if not get["serial"] and any(c.startswith(_SUMMARY_WORDS) for c in cells):
            continue  # a totals row under the table
        if len(result.lines) + len(result.problems) >= MAX_LINES:
            result.problems.append(f"流水超过 {MAX_LINES} 行，请分段导出后分别导入")
            break
        problems: list[str] = []
        for key in ("value_date", "serial", "reference", "amount"):
            if not get[key]:
                problems.append(f"{FIELD_BY_KEY[key].label}为空")
        for key, limit in MAX_LENGTHS.items():
            if len(get.get(key, "")) > limit:
                problems.append(f"{FIELD_BY_KEY[key].label}超过 {limit} 个字")
        value_date = None
        if get["value_date"]:
            value_date = parse_date(get["value_date"])
            if value_date is None:
                problems.append(f"交易日期「{get['value_date']}」无法识别，应为 2026-11-24 或 2026/11/24 等格式")
        amount_fen = None
        if get["amount"]:
            amount_fen, why = parse_amount(get["amount"])
            if why:
                problems.append(why)
        serial = get["serial"]
        if serial:
            if serial in first_row_of_serial:
                problems.append(f"流水号「{serial}」与第 {first_row_of_serial[serial]} 行重复")
            else:
                first_row_of_serial[serial] = row
        if problems:
            result.problems.extend(f"第 {row} 行：{p}" for p in problems)
            continue
        references = list(dict.fromkeys(BATCH_REFERENCE.findall(get["reference"].upper())))
        result.lines.append(ParsedLine(
            row_number=row, serial=serial, value_date=value_date, reference_text=get["reference"],
            batch_references=references, payee_name=get.get("payee_name") or None,
            payee_account=get.get("payee_account") or None, amount_fen=amount_fen,
        ))
    if not result.lines and not result.problems:
        result.problems.append("文件中没有流水记录（只有表头）")
    return result
