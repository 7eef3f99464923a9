"""Reading a bank statement (CSV or xlsx) into checked lines, or into the list of what is wrong.

The file is read as text within LIMITS (voucher/core/uploads.py: a file past one is refused before its
lines are looked at) and converted here: amounts through Decimal into fen, never floats; dates in the
formats banks write. Every problem of the file is collected, most with its row number as a spreadsheet
shows it, before anything is written: a file is imported whole or not at all.

What a bank's export holds besides payments is not a problem: the header is found below a preamble
(account name, number, period), summary and footer rows (合计, 笔数, 本页小计, blank rows...) are skipped
and listed with the reason, and lines that are not payouts (credits, interest, fees) are kept as lines
that explain why they match no batch. The account that pays merchants shows payouts as debits (借方):
a credit line is never taken as a payout, whatever its remark says.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime

from voucher.core.money import AmountUnreadable, read_fen
from voucher.core.typed_text import clean
from voucher.core.uploads import Limits, UploadRefused, read_table
from voucher.reconciliation.mapping import (
    FIELD_BY_KEY,
    FIELDS,
    MULTI_FIELDS,
    NEGATIVE_IS_PAYOUT,
    Mapping,
    normalize_header,
)
from voucher.reconciliation.presets import PRESETS

MAX_LINES = 20_000
#: rows read at most (statement lines plus preamble, summary and footer rows); a longer file is refused
MAX_ROWS = MAX_LINES + 5_000
HEADER_SEARCH_ROWS = 30  # banks put an account name, number and a period above the header
MAX_LENGTHS = {"serial": 64, "reference": 200, "payee_name": 120, "payee_account": 64}
MAX_REFERENCE_TEXT = 200
MAX_SKIPPED_LISTED = 200

#: A batch reference (settlement.batches.reference_for): JS, the business day (8 digits), the batch id
#: zero-padded to 6 digits, longer once ids pass 999,999. Read in the NFKC-normalised, upper-cased remark.
_BATCH_REFERENCE = re.compile(r"(?<![A-Z0-9])JS(\d{8})(\d{6,})")
#: SettlementBatch.id is a 32-bit integer: at most 10 digits
MAX_ID_DIGITS = 10
_NO_AMOUNT = {"", "-", "--", "—", "——", "0", "0.0", "0.00"}
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d", "%Y年%m月%d日")
#: a date at the start of a timestamp as banks write it: "2026-12-02 10:15:30", "2026-12-02-10.15.30.123456",
#: "20261202 101530", "2026年12月2日 10时"
_DATE_PREFIX = re.compile(r"^(\d{4})(?:[-/.年](\d{1,2})[-/.月](\d{1,2})日?|(\d{2})(\d{2}))(?=$|[^\d])")
#: words of summary and footer rows (合计, 总笔数：3, 本页小计, 期末余额...) — only in a row without a date
_SUMMARY_WORDS = ("合计", "总计", "小计", "笔数", "累计", "汇总", "期初余额", "期末余额", "上日余额", "承前页", "过次页",
                  "以下空白", "本页")
#: what a line that pays no merchant is, from its remark (checked only where no batch reference decides)
_NON_PAYOUT_WORDS = (("结息", "结息（利息）"), ("利息", "利息"), ("手续费", "银行手续费"), ("服务费", "银行服务费"),
                     ("工本费", "工本费"), ("年费", "年费"), ("管理费", "账户管理费"), ("汇划费", "汇划费"),
                     ("邮电费", "邮电费"), ("短信", "短信服务费"), ("冲正", "冲正"), ("退汇", "退汇"), ("退票", "退票"))
_INTEREST = ("结息（利息）", "利息")
_EXCEL_TEXT = re.compile(r'^="(.*)"$', re.DOTALL)  # ="6222..." keeps an account number whole in Excel


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
    #: debit (money out of the account), credit (money in), unknown (a flag the mapping does not know)
    direction: str = "debit"
    #: a payout to a merchant, to be matched to a batch: a debit line
    payout: bool = True
    #: why the line matches no batch: for a line that is not a payout, always; for a payout, when its
    #: remark shows it is something else (a fee) and carries no batch reference
    note: str | None = None
    #: JS references followed by digits that cannot be told apart from the batch id
    unclear_references: list[str] = field(default_factory=list)


@dataclass
class ParsedStatement:
    file_type: str  # csv | xlsx
    encoding: str | None
    #: {field: the header found in the file}
    headers: dict[str, str]
    lines: list[ParsedLine] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: "第 12 行：合计行（...）" — rows not imported, with the reason
    skipped_rows: list[str] = field(default_factory=list)
    skipped_row_count: int = 0
    #: the mapping used (the one asked for, or the bank preset the file fits)
    mapping_name: str | None = None
    #: debit_credit | amount_flag | signed_amount | amount
    layout: str | None = None
    #: the header's row as a spreadsheet shows it
    header_row: int | None = None


def find_batch_references(text: str) -> tuple[list[str], list[str]]:
    """(batch references, unclear references) written in a remark, in order, each once.

    The remark is NFKC-normalised first (full-width letters and digits, ideographic spaces) and upper-
    cased. A reference is JS + 8 date digits + the batch id: 6 digits zero-padded, or more once the id
    passes 999,999. Digits written straight after a reference are told apart where the format allows:
    a zero-padded id has exactly 6 digits (JS20261202000123 then 4 is JS20261202000123), and an id has at
    most 10. A run that starts with another digit and is longer than that cannot be split: unclear."""
    normal = unicodedata.normalize("NFKC", text or "").upper()
    found: list[str] = []
    unclear: list[str] = []
    for match in _BATCH_REFERENCE.finditer(normal):
        day, digits = match.groups()
        if digits[0] == "0" or len(digits) == 6:
            found.append(f"JS{day}{digits[:6]}")
        elif len(digits) <= MAX_ID_DIGITS:
            found.append(f"JS{day}{digits}")
        else:
            unclear.append(f"JS{day}{digits}")
    return list(dict.fromkeys(found)), list(dict.fromkeys(unclear))


def parse_money(text: str) -> tuple[int | None, str | None]:
    """Signed fen: "1,234.50", "-1,234.50", "(5.00)", "¥12", "" (0). Returns (fen, None) or (None, why not)."""
    if clean(text).removesuffix("元").lstrip("¥") in _NO_AMOUNT:
        return 0, None
    try:
        return read_fen(text, signed=True), None
    except AmountUnreadable as error:
        return None, error.message


def parse_amount(text: str) -> tuple[int | None, str | None]:
    """"1,234.50", "¥1234.5", "1234" -> fen of a payout. Returns (fen, None) or (None, why not)."""
    try:
        value = read_fen(text)
    except AmountUnreadable as error:
        if error.reason == "negative":
            return None, f"金额「{text}」为负数（退款或转入），对账单只应包含付给商户的款项"
        if error.reason == "blank":
            return None, f"金额「{text}」不是有效金额"
        return None, error.message
    if value == 0:
        return None, "金额必须大于 0"
    return value, None


def parse_date(text: str) -> date | None:
    """"2026-11-24", "2026/11/24 10:15:00", "20261124", "2026年11月24日" -> a date; else None."""
    raw = text.strip().replace("T", " ").split(" ")[0]
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(raw, fmt).date()
        except ValueError:
            continue
    return None


def parse_value_date(text: str) -> date | None:
    """A statement's date or timestamp: what parse_date reads, and the timestamps banks write
    ("2026-12-02-10.15.30.123456", "20261202 10:15:30", full-width digits); else None."""
    raw = unicodedata.normalize("NFKC", text).strip()
    day = parse_date(raw)
    if day is not None:
        return day
    match = _DATE_PREFIX.match(raw)
    if not match:
        return None
    year, month, dom = match.group(1), match.group(2) or match.group(4), match.group(3) or match.group(5)
    try:
        return date(int(year), int(month), int(dom))
    except ValueError:
        return None
# Reading the file into a table of text ------------------------------------------------------------

#: what a statement file may hold, checked while it is read (voucher/core/uploads.py): a bank's export has
#: a few dozen columns and lines of a few hundred characters
LIMITS = Limits("银行对账单", max_rows=MAX_ROWS, max_columns=64, max_cells=1_000_000)


# From the table to checked lines ---------------------------------------------------------------------


def _cell(value: object) -> str:
    if value is None:
        return ""
    text = str(value).strip()
    excel_text = _EXCEL_TEXT.match(text)
    return excel_text.group(1).strip() if excel_text else text


def _known_direction_headers() -> frozenset[str]:
    """Headers that say a file tells credits from debits (贷方发生额, 收入金额, 借贷标识...): the presets'
    credit and direction columns, where the name itself says so."""
    names = {"借贷标识", "借贷标志", "借/贷", "借贷方向", "收支标志", "收支方向"}
    for entry in PRESETS.values():
        names.update(entry["columns"].get("credit", []))
        names.update(entry["columns"].get("direction", []))
    return frozenset(normalize_header(n) for n in names if any(w in n for w in ("贷", "收入", "收款", "收支")))


_DIRECTION_HEADERS = _known_direction_headers()


@dataclass
class _Header:
    index: int
    #: {field: column} of the single-column fields
    columns: dict[str, int]
    #: the columns of the multi-column fields (用途/备注)
    extra: dict[str, list[int]]

    @property
    def complete(self) -> bool:
        return (all(f.key in self.columns for f in FIELDS if f.required)
                and ("debit" in self.columns or "amount" in self.columns))

    @property
    def score(self) -> int:
        return len(self.columns) + sum(len(c) for c in self.extra.values())


def _header_in(index: int, cells: list[str], mapping: Mapping) -> _Header:
    position: dict[str, int] = {}
    for column, cell in enumerate(cells):
        if cell:
            position.setdefault(cell, column)
    columns: dict[str, int] = {}
    for f in FIELDS:
        if f.key in MULTI_FIELDS:
            continue
        for header in mapping.columns.get(f.key, []):
            at = position.get(normalize_header(header))
            if at is not None and at not in columns.values():
                columns[f.key] = at
                break
    extra: dict[str, list[int]] = {}
    for key in MULTI_FIELDS:
        found = [position.get(normalize_header(h)) for h in mapping.columns.get(key, [])]
        extra[key] = list(dict.fromkeys(c for c in found if c is not None and c not in columns.values()))
    return _Header(index, columns, extra)


def _find_header(top: list[list[str]], mapping: Mapping) -> _Header | None:
    """The header among the first rows: the first row holding every required column, else the row holding
    the most mapped columns (so the missing ones can be named); None for an empty file."""
    best: _Header | None = None
    for index, cells in enumerate(top):
        if not any(cells):
            continue
        header = _header_in(index, cells, mapping)
        if header.complete:
            return header
        if best is None or header.score > best.score:
            best = header
    return best


def _layout(header: _Header, mapping: Mapping) -> str:
    if "debit" in header.columns:
        return "debit_credit"
    if "direction" in header.columns:
        return "amount_flag"
    return "signed_amount" if mapping.amount_sign == NEGATIVE_IS_PAYOUT else "amount"


def _direction_ignored(header: _Header, mapping: Mapping, cells: list[str]) -> list[int]:
    """Columns of the header row that show directions (贷方发生额, 借贷标识...) which a one-amount mapping
    ignores: read so, a credit would be taken for a payout."""
    if _layout(header, mapping) != "amount":
        return []
    used = set(header.columns.values())
    return [c for c, cell in enumerate(cells) if cell in _DIRECTION_HEADERS and c not in used]


def _rank(header: _Header, mapping: Mapping, table: list[list[str]], top: list[list[str]]) -> tuple[int, int, int]:
    """How well a mapping reads the file: the columns it finds, then in how many of the first rows under
    the header its date column holds a date (交易时间 may be a time only), then how many of its columns
    go by the bank's first-choice name (tells two banks' near-identical layouts apart)."""
    column = header.columns["value_date"]
    dated = sum(1 for values in table[header.index + 1 : header.index + 11]
                if column < len(values) and parse_value_date(_cell(values[column])) is not None)
    cells = top[header.index]
    canonical = sum(1 for key, c in header.columns.items()
                    if mapping.columns.get(key) and cells[c] == normalize_header(mapping.columns[key][0]))
    return header.score, dated, canonical


def _choose(table: list[list[str]], top: list[list[str]], mapping: Mapping,
            alternatives: list[Mapping]) -> tuple[Mapping, _Header | None]:
    """The mapping asked for, unless an alternative (a bank preset, tried for the default) reads the file
    better: it finds the header where the asked one does not, or reads it better (see _rank), or the
    asked one would read every line as a payout of a file that shows directions. Only an alternative
    that reads the direction from a column is taken: a sign convention cannot be told from the headers."""
    header = _find_header(top, mapping)
    best: tuple[tuple, Mapping, _Header] | None = None
    if header is not None and header.complete:
        misread = alternatives and _direction_ignored(header, mapping, top[header.index])
        if not misread:
            best = (_rank(header, mapping, table, top), mapping, header)
    for alternative in alternatives:
        found = _find_header(top, alternative)
        if found is None or not found.complete or _layout(found, alternative) not in ("debit_credit", "amount_flag"):
            continue
        rank = _rank(found, alternative, table, top)
        if best is None or rank > best[0]:
            best = (rank, alternative, found)
    return (best[1], best[2]) if best else (mapping, header)


def _excerpt(cells: list[str]) -> str:
    text = " ".join(c for c in cells if c)
    return text if len(text) <= 40 else text[:39] + "…"


def _summary_word(cells: list[str]) -> str | None:
    for cell in cells:
        compact = re.sub(r"\s+", "", unicodedata.normalize("NFKC", cell))
        for word in _SUMMARY_WORDS:
            if word in compact:
                return word
    return None


def _non_payout_kind(text: str) -> str | None:
    compact = re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))
    for word, label in _NON_PAYOUT_WORDS:
        if word in compact:
            return label
    return None


def _flag(text: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).upper()


def _synthetic_serial(row: dict[str, str], value_date: date, direction: str, amount_fen: int, text: str) -> str:
    """A key for a line the bank gave no serial (an interest line): the same line in an overlapping
    statement gets the same key, so it is stored once."""
    basis = "|".join([value_date.isoformat(), direction, str(amount_fen), row.get("balance", ""), text,
                      row.get("payee_account", "")])
    return "无流水号-" + hashlib.sha256(basis.encode("utf-8")).hexdigest()[:20]


def parse(content: bytes, file_name: str, mapping: Mapping | dict[str, list[str]],
          alternatives: list[Mapping] | tuple[Mapping, ...] = ()) -> ParsedStatement:
    """Parse and check a statement file. The result's `problems` is empty only for a clean file.
    `alternatives` are mappings to try when the file fits them better (the bank presets, for the default)."""
    if not isinstance(mapping, Mapping):
        mapping = Mapping("", {key: list(mapping.get(key, [])) for key in FIELD_BY_KEY})
    try:
        read = read_table(content, file_name, LIMITS, sniff_lines=HEADER_SEARCH_ROWS)
    except UploadRefused as error:
        return ParsedStatement("", None, {}, problems=[str(error)])
    table = read.rows
    result = ParsedStatement(read.file_type, read.encoding, {}, mapping_name=mapping.name)
    top = [[normalize_header(_cell(v)) for v in values] for values in table[:HEADER_SEARCH_ROWS]]
    mapping, header = _choose(table, top, mapping, list(alternatives))
    result.mapping_name = mapping.name
    if header is None:
        result.problems.append("文件为空")
        return result
    if not header.complete:
        for f in FIELDS:
            if f.required and f.key not in header.columns:
                result.problems.append(
                    f"缺少列：{f.label}（可在列映射中设置对应的表头）；当前映射认作该列的表头：{'、'.join(mapping.columns.get(f.key) or ['（未设置）'])}"
                )
        if "debit" not in header.columns and "amount" not in header.columns:
            message = (f"缺少列：金额（可在列映射中设置对应的表头）；当前映射认作该列的表头：{'、'.join(mapping.columns.get('amount') or ['（未设置）'])}")
            if mapping.columns.get("debit"):
                message += f"；认作借方金额列的表头：{'、'.join(mapping.columns['debit'])}"
            result.problems.append(message)
        if alternatives:
            result.problems.append(f"文件也不符合任何银行预设映射（{'、'.join(a.name for a in alternatives)}），"
                                   f"请在列映射中设置该文件的表头")
        return result

    layout = _layout(header, mapping)
    result.layout, result.header_row = layout, header.index + 1
    header_cells = [_cell(v) for v in table[header.index]]
    result.headers = {key: header_cells[col] for key, col in header.columns.items()}
    for key, cols in header.extra.items():
        if cols:
            result.headers[key] = "、".join(header_cells[c] for c in cols)
    if layout == "amount":
        # One amount column read as payouts: refused if the file shows directions the mapping ignores,
        # or a credit would be taken for a payout.
        ignored = [header_cells[c] for c in _direction_ignored(header, mapping, top[header.index])]
        if ignored:
            result.problems.append(
                f"文件中有「{'、'.join(ignored)}」列（收入或借贷方向），但列映射「{mapping.name}」按每行都是付款读取金额，"
                f"会把收入当作付款；请选择相应银行的预设映射，或在列映射中设置借方/贷方金额或借贷标识列"
            )
            return result

    debit_flags = {_flag(v) for v in mapping.debit_flags}
    credit_flags = {_flag(v) for v in mapping.credit_flags}
    header_compact = [c for c in top[header.index]]
    while header_compact and not header_compact[-1]:
        header_compact.pop()

    skipped: list[list] = []  # [first row, last row, reason]

    def skip(row: int, reason: str) -> None:
        result.skipped_row_count += 1
        if reason == "空行" and skipped and skipped[-1][2] == "空行" and skipped[-1][1] == row - 1:
            skipped[-1][1] = row
        else:
            skipped.append([row, row, reason])

    first_row_of_serial: dict[str, int] = {}
    synthetic_seen: dict[str, int] = {}
    trailing_blank = 0
    for index in range(header.index + 1, len(table)):
        cells = [_cell(v) for v in table[index]]
        row = index + 1  # the header of a plain file is row 1
        if not any(cells):
            skip(row, "空行")
            trailing_blank += 1
            continue
        trailing_blank = 0
        normalized = [normalize_header(c) for c in cells]
        while normalized and not normalized[-1]:
            normalized.pop()
        if normalized == header_compact:
            skip(row, "重复的表头行（分页导出）")
            continue
        get = {key: cells[col] if col < len(cells) else "" for key, col in header.columns.items()}
        extra_texts = [cells[c] for c in header.extra.get("purpose", []) if c < len(cells) and cells[c]]
        money_cells = [get.get(k, "") for k in ("amount", "debit", "credit")]
        has_money = any(parse_money(m) != (0, None) for m in money_cells)
        value_date = parse_value_date(get["value_date"]) if get["value_date"] else None
        if value_date is None:
            word = _summary_word(cells)
            if word:
                skip(row, f"汇总或页脚行（{_excerpt(cells)}），未导入")
                continue
            if not get["serial"] and not has_money:
                skip(row, f"不是流水行（没有日期、流水号和金额：{_excerpt(cells)}），未导入")
                continue
        elif not has_money and not get["serial"] and layout != "amount":
            skip(row, f"没有发生额的行（{_excerpt(cells)}），未导入")
            continue
        if len(result.lines) + len(result.problems) >= MAX_LINES:
            result.problems.append(f"流水超过 {MAX_LINES} 行，请分段导出后分别导入")
            break

        problems: list[str] = []
        if not get["value_date"]:
            problems.append(f"{FIELD_BY_KEY['value_date'].label}为空")
        elif value_date is None:
            problems.append(f"交易日期「{get['value_date']}」无法识别，应为 2026-11-24 或 2026/11/24 等格式")
        for key, limit in MAX_LENGTHS.items():
            if len(get.get(key, "")) > limit:
                problems.append(f"{FIELD_BY_KEY[key].label}超过 {limit} 个字")

        # The amount and its direction, by the layout.
        direction, amount_fen, note = "debit", None, None
        if layout == "amount":
            if not get["amount"]:
                problems.append(f"{FIELD_BY_KEY['amount'].label}为空")
            else:
                amount_fen, why = parse_amount(get["amount"])
                if why:
                    problems.append(why)
        elif layout in ("signed_amount", "amount_flag"):
            value, why = parse_money(get["amount"]) if get["amount"] else (None, f"{FIELD_BY_KEY['amount'].label}为空")
            if why:
                problems.append(why)
            elif value == 0:
                skip(row, f"金额为 0（{_excerpt(cells)}），未导入")
                continue
            elif layout == "signed_amount":
                assert value is not None  # parse_money gives a value or a reason
                direction, amount_fen = ("debit" if value < 0 else "credit"), abs(value)
            else:
                assert value is not None  # parse_money gives a value or a reason
                amount_fen = abs(value)
                flag = _flag(get["direction"])
                if flag in debit_flags:
                    direction = "debit"
                elif flag in credit_flags:
                    direction = "credit"
                else:
                    direction = "unknown"
                    note = (f"借贷标识「{get['direction']}」无法识别，未作为付款匹配" if flag
                            else "借贷标识为空，未作为付款匹配")
        else:  # debit_credit
            debit, why_debit = parse_money(get["debit"])
            credit, why_credit = parse_money(get.get("credit", ""))
            problems.extend(w for w in (why_debit, why_credit) if w)
            if not (why_debit or why_credit):
                if debit and credit:
                    problems.append(f"借方金额「{get['debit']}」与贷方金额「{get['credit']}」都有值，无法判断收付方向")
                elif debit:
                    direction, amount_fen = "debit", abs(debit)
                elif credit:
                    direction, amount_fen = "credit", abs(credit)
                else:
                    skip(row, f"借方、贷方金额均为空或为 0（{_excerpt(cells)}），未导入")
                    continue

        parts = list(dict.fromkeys(t for t in [get["reference"], *extra_texts] if t))
        full_text = " / ".join(parts)
        reference_text = full_text if len(full_text) <= MAX_REFERENCE_TEXT else full_text[:MAX_REFERENCE_TEXT - 1] + "…"
        references, unclear = find_batch_references(full_text)
        payout = direction == "debit"
        kind = _non_payout_kind(full_text)
        if direction == "credit":
            if kind in _INTEREST:
                note = f"贷方（收入）：{kind}，不是付给商户的款项"
            elif references:
                note = f"贷方（收入），不是付款；附言中的批次号 {'、'.join(references)} 可能是退汇或退票，请核实"
            elif kind:
                note = f"贷方（收入）：{kind}，不是付给商户的款项"
            else:
                note = "贷方（收入），不是付给商户的款项"
        elif payout and kind and not references and not unclear:
            note = f"{kind}，不是付给商户的款项"
        if layout == "amount" and not get["reference"]:
            problems.append(f"{FIELD_BY_KEY['reference'].label}为空")

        serial = get["serial"]
        if not serial:
            if payout or value_date is None or amount_fen is None:
                problems.append(f"{FIELD_BY_KEY['serial'].label}为空")
            else:
                serial = _synthetic_serial(get, value_date, direction, amount_fen, full_text)
                note = f"{note}；银行未给流水号，已按日期、金额和余额生成编号"
        if serial and not get["serial"]:
            # the same content twice in one file (two fees of a day): numbered in file order
            synthetic_seen[serial] = synthetic_seen.get(serial, 0) + 1
            if synthetic_seen[serial] > 1:
                serial = f"{serial}-{synthetic_seen[serial]}"
        if serial:
            if serial in first_row_of_serial:
                problems.append(f"流水号「{serial}」与第 {first_row_of_serial[serial]} 行重复")
            else:
                first_row_of_serial[serial] = row
        if problems:
            result.problems.extend(f"第 {row} 行：{p}" for p in problems)
            continue
        assert value_date is not None and amount_fen is not None  # a row without them has a problem
        result.lines.append(ParsedLine(
            row_number=row, serial=serial, value_date=value_date, reference_text=reference_text,
            batch_references=references, payee_name=get.get("payee_name") or None,
            payee_account=get.get("payee_account") or None, amount_fen=amount_fen, direction=direction,
            payout=payout, note=note[:200] if note else None, unclear_references=unclear,
        ))
    if trailing_blank:  # blank rows after the table are no news
        result.skipped_row_count -= trailing_blank
        skipped[-1][1] -= trailing_blank
        if skipped[-1][1] < skipped[-1][0]:
            skipped.pop()
    result.skipped_rows = [
        f"第 {first} 行：{reason}" if first == last else f"第 {first}–{last} 行：{reason}"
        for first, last, reason in skipped
    ]
    if len(result.skipped_rows) > MAX_SKIPPED_LISTED:
        hidden = len(result.skipped_rows) - MAX_SKIPPED_LISTED
        result.skipped_rows = result.skipped_rows[:MAX_SKIPPED_LISTED] + [f"另有 {hidden} 处未列出"]
    if not result.lines and not result.problems:
        result.problems.append("文件中没有流水记录（只有表头）")
    return result
