"""Reading an uploaded table (CSV or xlsx) within limits fixed before parsing starts.

Every import of a person's file (bank statements, merchants' sales baselines, ICDI-EC indicator data)
reads it here, so that no file, however it was made, holds a worker for long or fills its memory: the
file is refused at the first limit it passes, with a Chinese message naming the limit, before anything is
written. Within the limits the work is bounded by them (see docs/operations.md, "Uploads").

- The upload's size first (the whole request is capped by MAX_CONTENT_LENGTH = MAX_REQUEST_BYTES, a 413
  with a Chinese page).
- xlsx: the zip directory is read before the workbook is opened: a real xlsx ([Content_Types].xml), few
  members, stored or deflated only, not encrypted, the declared uncompressed sizes bounded in total and
  per part, each member's compression ratio bounded. A directory that understates a size does not help a
  bomb: the zip module stops each member at its declared size and then checks its CRC, which fails.
  openpyxl reads the package, the workbook and the styles (small parts); the shared strings and the first
  sheet are streamed through expat, with openpyxl's helpers for columns and dates: rows, columns, cells
  and each cell's length are checked as they arrive, and reading stops at the first one past its limit.
- CSV: the encoding is told from the bytes (UTF-16 BOM, UTF-8 with or without BOM, else GB18030); the
  lines are counted (too many, and the file is refused before any is read) and each line's length is
  checked before the csv module sees it; then rows, columns, cells and cell lengths.
"""
from __future__ import annotations

import csv
import enum
import io
import math
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from xml.parsers import expat

from openpyxl.reader.excel import ExcelReader
from openpyxl.styles.stylesheet import apply_stylesheet
from openpyxl.utils.cell import column_index_from_string
from openpyxl.utils.datetime import from_excel, from_ISO8601
from openpyxl.xml.constants import SHARED_STRINGS, SHEET_MAIN_NS

MB = 1024 * 1024
#: one uploaded file, as the nginx configuration allows it (client_max_body_size)
MAX_BYTES = 10 * MB
#: a whole upload request: the file, the form's other fields and the multipart framing
MAX_REQUEST_BYTES = MAX_BYTES + MB
ENCODINGS_TRIED = "UTF-8（含/不含 BOM）、GB18030/GBK"
_XLSX_DAMAGED = "无法读取 xlsx 文件，文件可能已损坏或不是 Excel 2007 及以上格式"
#: Excel's own widest and longest sheet (XFD1048576): a row beyond either is not a spreadsheet's
_EXCEL_COLUMNS, _EXCEL_ROWS = 16_384, 1_048_576


class UploadRefused(ValueError):
    """A file refused before or while reading it; the message is Chinese and names the limit. A ValueError,
    as the importers took every unreadable file to be."""


@dataclass(frozen=True)
class Limits:
    #: what the file should be, in messages: "文件不像银行对账单"
    what: str
    #: rows of the file (blank, preamble and footer rows included), beyond any header rows
    max_rows: int
    #: rows above the data that max_rows does not count (1: a header row)
    header_rows: int = 0
    #: columns up to a row's last value (a CSV's trailing empty fields, an xlsx's cells of formatting only
    #: are not counted)
    max_columns: int = 64
    #: cells read in all: CSV fields, xlsx cells holding a value (and xlsx cells and rows of formatting
    #: only, up to four times as many); also the rows times the widest, as the importers get the table
    max_cells: int = 1_000_000
    max_cell_chars: int = 1_000
    #: CSV: one line of the file, checked before it is split into cells
    max_line_chars: int = 4_096
    max_bytes: int = MAX_BYTES
    #: xlsx: the members' declared uncompressed sizes, together
    max_unzipped_bytes: int = 64 * MB
    max_members: int = 500
    #: xlsx: each part openpyxl reads whole (workbook, styles, relationships; see _parsed_whole)
    max_part_bytes: int = 4 * MB
    #: xlsx: uncompressed / compressed, for a member of over 1 MB (sheets compress 5-20 times)
    max_ratio: int = 100


class FileType(str, enum.Enum):
    """What read_table found a file to be (kept as its value, e.g. on an ICDI-EC import batch)."""

    CSV = "csv"
    XLSX = "xlsx"


@dataclass
class Table:
    #: every row as text, padded with "" to the widest; trailing blank rows dropped
    rows: list[list[str]]
    file_type: str  # a FileType value
    encoding: str | None = None


def read_table(content: bytes, file_name: str, limits: Limits, sniff_lines: int = 1) -> Table:
    """The file's first sheet (xlsx) or its rows (CSV) as text. Raises UploadRefused with a Chinese message.
    With sniff_lines, a CSV's separator is judged on that many first lines when the first has none."""
    if not content:
        raise UploadRefused("文件为空")
    if len(content) > limits.max_bytes:
        raise UploadRefused(f"文件过大（超过 {limits.max_bytes // MB} MB），请分段导出后分别导入")
    lower = file_name.lower()
    if lower.endswith(".xls") or content.startswith(b"\xd0\xcf\x11\xe0"):
        raise UploadRefused("不支持旧版 Excel（.xls）文件，请在 Excel 中另存为 .xlsx 或 CSV")
    if content.startswith(b"PK\x03\x04"):
        rows = _read_xlsx(content, limits)
        return Table(_finish(rows, limits), FileType.XLSX.value)
    if lower.endswith(".xlsx"):
        raise UploadRefused("文件扩展名为 .xlsx，但内容不是 Excel 表格")
    rows, encoding = _read_csv(content, limits, sniff_lines)
    return Table(_finish(rows, limits), FileType.CSV.value, encoding)


class _Counter:
    """Rows, cells and cell lengths as they are read, refused at the first one past its limit."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.cells = 0

    def row(self, number: int) -> None:
        if number > self.limits.max_rows + self.limits.header_rows:
            if self.limits.header_rows:
                raise UploadRefused(f"数据超过 {self.limits.max_rows:,} 行（不含表头），请分段导出后分别导入")
            raise UploadRefused(f"文件超过 {self.limits.max_rows:,} 行，请分段导出后分别导入")

    def column(self, row: int, column: int) -> None:
        if column > self.limits.max_columns:
            raise UploadRefused(f"第 {row} 行超过 {self.limits.max_columns:,} 列，文件不像{self.limits.what}，未导入")

    def cell(self, row: int, column: int, text: str) -> None:
        if len(text) > self.limits.max_cell_chars:
            raise UploadRefused(f"第 {row} 行第 {column} 列超过 {self.limits.max_cell_chars:,} 个字符，"
                                f"文件不像{self.limits.what}，未导入")

    def add(self, cells: int) -> None:
        self.cells += cells
        if self.cells > self.limits.max_cells:
            raise UploadRefused(f"文件超过 {self.limits.max_cells:,} 个单元格，请分段导出后分别导入")


def _finish(rows: list[list[str]], limits: Limits) -> list[list[str]]:
    while rows and not any(rows[-1]):
        rows.pop()
    width = max((len(r) for r in rows), default=0)
    if width == 0:
        raise UploadRefused("文件为空")
    if len(rows) * width > limits.max_cells:  # padded, as the importers read it
        raise UploadRefused(f"文件超过 {limits.max_cells:,} 个单元格（{len(rows):,} 行 × {width} 列），请分段导出后分别导入")
    for row in rows:
        if len(row) < width:
            row.extend([""] * (width - len(row)))
    return rows


# CSV ---------------------------------------------------------------------------------------------------------


def decode(content: bytes) -> tuple[str, str]:
    """(text, encoding name). The whole file, already bounded by its size, is decoded in one call (a few
    milliseconds for 10 MB): judged on a prefix only, a GBK byte further down would stop the file half-read."""
    if content.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return content.decode("utf-16"), "UTF-16"  # Excel's "Unicode text"
        except UnicodeDecodeError:
            raise UploadRefused("文件以 UTF-16 标记开头，但内容无法按 UTF-16 读取") from None
    if b"\x00" in content:
        raise UploadRefused("文件不是 CSV 文本或 xlsx 表格（含二进制内容），请上传 CSV 或 xlsx 文件")
    try:
        return content.decode("utf-8-sig"), "UTF-8"
    except UnicodeDecodeError:
        pass
    try:
        # GB18030 is a superset of GBK and GB2312: what Chinese banks' exports and Excel on a Chinese
        # Windows write.
        return content.decode("gb18030"), "GB18030"
    except UnicodeDecodeError:
        raise UploadRefused(
            f"无法识别文件编码（已尝试 {ENCODINGS_TRIED}），请将文件另存为 UTF-8 编码的 CSV 或 xlsx"
        ) from None


class _Lines:
    """The text's lines (ending in LF, CR LF or CR, as the csv module reads them), each checked for length
    before anything splits it. Lines are cut from the text where they stand: no copy of the file is made,
    and each line break is looked for once."""

    def __init__(self, text: str, limits: Limits):
        self.text, self.limits = text, limits
        self.position = self.number = 0
        self.next_lf = self.next_cr = -2  # where the next LF and CR are (-1: none left, -2: not looked)

    def __iter__(self):
        return self

    def _next(self, char: str, known: int) -> int:
        return known if known == -1 or known >= self.position else self.text.find(char, self.position)

    def __next__(self) -> str:
        text, start = self.text, self.position
        if start >= len(text):
            raise StopIteration
        self.next_lf = self._next("\n", self.next_lf)
        self.next_cr = self._next("\r", self.next_cr)
        ends = [e for e in (self.next_lf, self.next_cr) if e >= 0]
        end = min(ends) if ends else len(text)
        self.number += 1
        if end - start > self.limits.max_line_chars:
            raise UploadRefused(f"第 {self.number} 行超过 {self.limits.max_line_chars:,} 个字符，"
                                f"文件不像{self.limits.what}，未导入")
        if ends:
            end += 2 if text.startswith("\r\n", end) else 1
        self.position = end
        return text[start:end]


def _separator(first_lines: list[str], sniff_lines: int) -> str:
    """Tab or comma, by the first line; with sniff_lines > 1, by the first lines together when the first
    has neither (a bank's title line above a tab-separated table)."""
    sample = first_lines[0] if first_lines else ""
    if sniff_lines > 1 and "\t" not in sample and "," not in sample:
        sample = "".join(first_lines[:sniff_lines])
    return "\t" if sample.count("\t") > sample.count(",") else ","


def _read_csv(content: bytes, limits: Limits, sniff_lines: int) -> tuple[list[list[str]], str]:
    text, encoding = decode(content)
    counter = _Counter(limits)
    # The lines are counted first, in C (a few milliseconds): a row is at least a line, so a file with
    # too many lines is refused before any is read (a quoted line break counts as a line here too).
    breaks = text.count("\n") + text.count("\r") - text.count("\r\n")
    counter.row(breaks + (0 if text.endswith(("\n", "\r")) else 1))
    lines = _Lines(text, limits)
    first = [line for _, line in zip(range(max(sniff_lines, 1)), lines)]
    sep = _separator(first, sniff_lines)

    ended = False

    def every_line():
        nonlocal ended
        yield from first
        yield from lines
        ended = True  # the reader asked for a line past the last one

    rows: list[list[str]] = []
    reader = csv.reader(every_line(), delimiter=sep)
    while True:
        number = len(rows) + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            if "field larger than field limit" in str(error):
                raise UploadRefused(f"第 {number} 行有超过 {limits.max_cell_chars:,} 个字符的单元格（或引号未闭合），"
                                    f"文件不像{limits.what}，未导入") from None
            raise UploadRefused(f"第 {number} 行：CSV 格式有误（{error}）") from None
        if ended:
            # Only a quoted field still open at the end of the file is finished by the end of the file:
            # every other row ends at its line break.
            raise UploadRefused(f"第 {number} 行：引号未闭合，CSV 无法按行读取")
        counter.row(number)
        counter.add(len(row))
        if row and max(map(len, row)) > limits.max_cell_chars:
            column = next(n for n, cell in enumerate(row, start=1) if len(cell) > limits.max_cell_chars)
            counter.cell(number, column, row[column - 1])
        while row and not row[-1]:  # the empty fields Excel writes up to its used range
            row.pop()
        counter.column(number, len(row))
        rows.append(row)
    return rows, encoding


# xlsx --------------------------------------------------------------------------------------------------------

# element names as expat gives them with namespace_separator="}"
_SI, _T, _RPH, _IS, _C, _V, _ROW, _SHEET_DATA = (f"{SHEET_MAIN_NS}}}{name}"
                                                for name in ("si", "t", "rPh", "is", "c", "v", "row", "sheetData"))


def _parsed_whole(name: str) -> bool:
    """Parts openpyxl builds objects from in one go (content types, workbook, styles, relationships): a few
    kilobytes in any real workbook. The shared strings and the sheet are streamed here instead; other
    sheets, images and the rest are never read."""
    lower = name.lower()
    return (lower.endswith((".xml", ".rels")) and not lower.startswith("xl/worksheets/")
            and not lower.endswith("sharedstrings.xml"))


def _declared_members(content: bytes) -> int | None:
    """The member count in the zip's end record, read before the directory itself (reading a directory of
    100,000 members takes a second or two); None where the record does not say (zip64)."""
    end = content.rfind(b"PK\x05\x06", max(0, len(content) - 22 - 65_535))
    if end < 0 or end + 22 > len(content):
        return None
    count = int.from_bytes(content[end + 10:end + 12], "little")
    return None if count == 0xFFFF else count


def inspect_xlsx(content: bytes, limits: Limits) -> None:
    """Refuse a zip that is not a plain xlsx, or would unpack to too much, from its directory alone."""
    declared = _declared_members(content)
    if declared is not None and declared > limits.max_members:
        raise UploadRefused(f"xlsx 文件包含 {declared:,} 个部件（上限 {limits.max_members:,}），"
                            f"不是普通的 Excel 表格，未导入")
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError):
        raise UploadRefused(f"{_XLSX_DAMAGED}（zip 目录无法读取）") from None
    with archive:
        members = archive.infolist()
        if len(members) > limits.max_members:
            raise UploadRefused(f"xlsx 文件包含 {len(members):,} 个部件（上限 {limits.max_members:,}），"
                                f"不是普通的 Excel 表格，未导入")
        names = {m.filename for m in members}
        if "[Content_Types].xml" not in names or not any(n.startswith("xl/") for n in names):
            raise UploadRefused("文件是 zip 压缩包，但不是 Excel 表格（xlsx），未导入")
        total = 0
        for member in members:
            name = member.filename[:60]
            if member.flag_bits & 0x1:
                raise UploadRefused("xlsx 文件已加密，请在 Excel 中取消密码后另存再导入")
            if member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise UploadRefused(f"xlsx 文件中「{name}」的压缩方式不是 Excel 所用的，文件可能已被改动，未导入")
            ratio = member.file_size / max(member.compress_size, 1)
            if member.file_size > MB and ratio > limits.max_ratio:
                raise UploadRefused(f"xlsx 文件中「{name}」解压后 {member.file_size / MB:,.0f} MB，"
                                    f"压缩比 {ratio:,.0f} 倍（上限 {limits.max_ratio} 倍），疑似压缩炸弹，未导入")
            if _parsed_whole(member.filename) and member.file_size > limits.max_part_bytes:
                raise UploadRefused(f"xlsx 文件中「{name}」解压后 {member.file_size / MB:,.1f} MB"
                                    f"（上限 {limits.max_part_bytes // MB} MB），不是普通的 Excel 表格，未导入")
            total += member.file_size
            if total > limits.max_unzipped_bytes:
                raise UploadRefused(f"xlsx 文件解压后超过 {limits.max_unzipped_bytes // MB} MB（上限），"
                                    f"请删去多余的工作表或分段导出，未导入")


def _read_xlsx(content: bytes, limits: Limits) -> list[list[str]]:
    inspect_xlsx(content, limits)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl warns of styles and extensions it does not know
            # openpyxl's load_workbook(read_only=True) less what costs without bound: it reads every sheet
            # once to find its size when the file does not say it, and builds an object per shared string.
            reader = ExcelReader(io.BytesIO(content), read_only=True, data_only=True, keep_links=False)
            with reader.archive:
                reader.read_manifest()
                reader.read_workbook()
                apply_stylesheet(reader.archive, reader.wb)
                # the first sheet, as load_workbook's worksheets[0] (chart sheets are not worksheets)
                sheet = next((rel.target for _, rel in reader.parser.find_sheets()
                              if rel.target in reader.valid_files and "chartsheet" not in rel.Type), None)
                if sheet is None:
                    raise UploadRefused("xlsx 文件中没有工作表")
                part = reader.package.find(SHARED_STRINGS)
                strings = _shared_strings(reader.archive, part.PartName[1:], limits) if part is not None else []
                return _sheet_rows(reader.archive, sheet, strings, reader.wb, limits)
    except UploadRefused:
        raise
    except zipfile.BadZipFile:
        # a CRC that fails: the data do not match the directory (a member longer than it says)
        raise UploadRefused(f"{_XLSX_DAMAGED}（压缩数据与 zip 目录不符）") from None
    except (expat.ExpatError, zlib.error, EOFError):
        raise UploadRefused(f"{_XLSX_DAMAGED}（XML 无法读取）") from None
    except Exception:  # noqa: BLE001 - openpyxl raises many kinds on a damaged workbook
        raise UploadRefused(_XLSX_DAMAGED) from None


class _Stop(Exception):
    """The end of the sheet's data: the rest is formatting, not read."""


def _expat(start, end, text):
    """A namespace-aware expat parser with these handlers. A DTD is refused: no xlsx has one, and it is
    where entity expansion (a "billion laughs") would hide."""

    def doctype(*_args):
        raise UploadRefused(f"{_XLSX_DAMAGED}（含 DTD 声明）")

    parser = expat.ParserCreate(namespace_separator="}")
    parser.buffer_text = True
    parser.StartElementHandler, parser.EndElementHandler, parser.CharacterDataHandler = start, end, text
    parser.StartDoctypeDeclHandler = doctype
    return parser


def _feed(parser, source) -> None:
    try:
        while chunk := source.read(64 * 1024):
            parser.Parse(chunk, False)
        parser.Parse(b"", True)
    except _Stop:
        pass


def _shared_strings(archive: zipfile.ZipFile, path: str, limits: Limits) -> list[str]:
    """The shared strings as openpyxl reads them (Text.content: the plain text, then the runs', never the
    phonetic guide rPh; "x005F_" dropped)."""
    strings: list[str] = []
    parts: list[str] = []
    state = {"collect": False, "phonetic": 0, "chars": 0}

    def start(name, _attrs):
        if name == _T:
            state["collect"] = not state["phonetic"]
        elif name == _SI:
            parts.clear()
            state["chars"] = 0
        elif name == _RPH:
            state["phonetic"] += 1

    def end(name):
        if name == _T:
            state["collect"] = False
        elif name == _RPH:
            state["phonetic"] -= 1
        elif name == _SI:
            strings.append("".join(parts).replace("x005F_", ""))
            if len(strings) > limits.max_cells:
                raise UploadRefused(f"xlsx 文件的共享字符串超过 {limits.max_cells:,} 个，请分段导出后分别导入")

    def text(data):
        if state["collect"]:
            parts.append(data)

    with archive.open(path) as source:
        _feed(_expat(start, end, text), source)
    return strings


def _cell_text(raw: str, kind: str, style: int, strings: list[str], book) -> str:
    """A cell's text as openpyxl reads its value (data_only) and pandas' read_excel(dtype=str) wrote it:
    whole numbers without ".0", dates as "2026-12-02 00:00:00", booleans as True and False."""
    if kind == "s":
        return strings[int(raw)]
    if kind == "n":
        value = float(raw) if "." in raw or "E" in raw or "e" in raw else int(raw)
        if style in book._date_formats:
            try:
                value = from_excel(value, book.epoch, timedelta=style in book._timedelta_formats)
            except (OverflowError, ValueError):
                return ""  # openpyxl reads a date out of range as an error value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return str(int(value))
        return str(value)
    if kind == "b":
        return str(bool(int(raw)))
    if kind == "d":
        return str(from_ISO8601(raw))
    return raw  # str (a formula's text result), inlineStr


def _sheet_rows(archive: zipfile.ZipFile, path: str, strings: list[str], book, limits: Limits) -> list[list[str]]:
    """The sheet's rows, read as the XML arrives (expat's callbacks, no tree): rows, cells and each cell's
    length are counted as they come, and reading stops at the first one past its limit, or at the end of
    the sheet's data."""
    counter = _Counter(limits)
    rows: list[list[str]] = []
    parts: list[str] = []
    row: list[str] = []
    number = column = in_row = style = phonetic = chars = elements = 0
    # Rows and cells without a value (formatting only) are not the table's, but cost reading all the same.
    most_elements = 4 * limits.max_cells
    kind, collect, inline = "n", False, False
    columns: dict[str, int] = {}  # "AB" -> 28

    def start(name, attrs):
        nonlocal row, number, column, in_row, style, phonetic, chars, elements, kind, collect, inline
        if name == _V:
            collect = not inline
        elif name == _C:
            in_row += 1
            elements += 1
            if in_row > _EXCEL_COLUMNS:
                raise UploadRefused(f"第 {number} 行的单元格超过 Excel 的 {_EXCEL_COLUMNS:,} 列，"
                                    f"文件不像{limits.what}，未导入")
            if elements > most_elements:
                raise UploadRefused(f"xlsx 表格超过 {most_elements:,} 个单元格（含只有格式的空白单元格），"
                                    f"请删去多余的行列或分段导出，未导入")
            coordinate = attrs.get("r")
            if coordinate:
                letters = coordinate.rstrip("0123456789")
                column = columns.get(letters) or columns.setdefault(letters, column_index_from_string(letters))
            else:
                column += 1
            kind, given = attrs.get("t", "n"), attrs.get("s")
            style = int(given) if given else 0
            parts.clear()
            chars = 0
        elif name == _ROW:
            given = attrs.get("r")
            following = int(float(given)) if given else number + 1
            elements += 1
            if following <= number or following > _EXCEL_ROWS or elements > most_elements:
                raise UploadRefused(f"{_XLSX_DAMAGED}（第 {following} 行的行号异常）")
            row, number, column, in_row = [], following, 0, 0
        elif name == _T:
            collect = inline and not phonetic
        elif name == _IS:
            inline = True
        elif name == _RPH:
            phonetic += 1

    def end(name):
        nonlocal collect, inline, phonetic
        if name == _V or name == _T:
            collect = False
        elif name == _C:
            inline = False
            raw = "".join(parts)
            if not raw or kind == "e":  # empty, or an error value (#N/A)
                return
            counter.column(number, column)
            counter.add(1)
            text = _cell_text(raw, kind, style, strings, book)
            counter.cell(number, column, text)  # a shared string's own length
            if column > len(row):
                row.extend([""] * (column - len(row)))
            row[column - 1] = text
        elif name == _ROW and row:  # a row of formatting only is not counted, nor kept if last
            counter.row(number)
            rows.extend([] for _ in range(number - 1 - len(rows)))  # rows left out, or without a value
            rows.append(row)
        elif name == _RPH:
            phonetic -= 1
        elif name == _SHEET_DATA:
            raise _Stop  # the rest of the sheet is formatting

    def text(data):
        nonlocal chars
        if collect:
            parts.append(data)
            chars += len(data)
            if chars > limits.max_cell_chars:  # refused before a long text is even joined
                counter.cell(number, column, "".join(parts))

    with archive.open(path) as source:
        _feed(_expat(start, end, text), source)
    return rows
