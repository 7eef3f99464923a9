"""Hostile uploads: files made to tie up a worker are refused at once, in Chinese, and change nothing.

Issue 16 item 5: one 400 KB CSV row took 87 s and 2.4 GB in the statement and baseline imports, and a 626 KB
xlsx zip bomb 132 s and 1.1 GB before it was refused. Every file here goes through the page, posted as a
person uploads it, to each of the three imports (bank statement, merchants' sales baselines, ICDI-EC
data), and must be refused at the first limit it passes (voucher/core/uploads.py). What is checked first
is the message and that nothing was stored; the time and memory bounds are generous (the machine is
shared). A SIGALRM budget stops unbounded code within it instead of letting it run for minutes.
benchmarks/hostile_uploads.py measures the same files, at full size, before and after.

The builders below are used by the benchmark too.
"""
from __future__ import annotations

import io
import random
import signal
import time
import tracemalloc
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterable

import pytest
from sqlalchemy import func, select

from tests.factories import PASSWORD, make_world

MB = 1024 * 1024
STATEMENT_HEADER = "交易日期,流水号,附言,收款户名,收款账号,金额\n"

# Hostile files --------------------------------------------------------------------------------------------


def wide_row_csv(columns: int = 200_000) -> bytes:
    """The issue's file: one CSV row of 400 KB, 200,000 columns."""
    return ",".join(["1"] * columns).encode()


def long_cell_csv(chars: int = 400_000) -> bytes:
    """A statement whose first line holds one remark of 400 KB."""
    return (STATEMENT_HEADER + f"2026-11-24,S1,{'付' * chars},港城老味道,6222,1.00\n").encode()


def many_columns_csv(columns: int = 100_000, rows: int = 3) -> bytes:
    """100,000 columns a row, a few rows."""
    line = ",".join(f"c{n}" for n in range(columns))
    return "\n".join([line] * rows).encode()


def narrow_wide_csv(columns: int = 2_000) -> bytes:
    """2,000 columns in a 4 KB line: under the line limit, over the column limit."""
    return (",".join(["1"] * columns) + "\n").encode() * 2


def many_rows_csv(rows: int = 250_000) -> bytes:
    """250,000 short rows (5 MB): past every import's row limit."""
    return "".join(f"{n},2026-10-01,1.00\n" for n in range(rows)).encode()


_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    "</Types>")
_ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Target="xl/workbook.xml" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"/>'
    "</Relationships>")
_WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>')
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Target="worksheets/sheet1.xml" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"/>'
    "</Relationships>")
_SHEET_OPEN = ('<?xml version="1.0" encoding="UTF-8"?>'
               '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>')
_SHEET_CLOSE = "</sheetData></worksheet>"


def xlsx(sheet: Iterable[bytes], members: int = 0, prologue: str = "") -> bytes:
    """A minimal xlsx whose sheet XML is written chunk by chunk (never held whole), with `members` empty
    extra members and text before the root element (a DTD)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as book:
        book.writestr("[Content_Types].xml", _CONTENT_TYPES)
        book.writestr("_rels/.rels", _ROOT_RELS)
        book.writestr("xl/workbook.xml", _WORKBOOK)
        book.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        with book.open("xl/worksheets/sheet1.xml", "w") as part:
            part.write((prologue + _SHEET_OPEN).encode() if prologue else _SHEET_OPEN.encode())
            for chunk in sheet:
                part.write(chunk)
            part.write(_SHEET_CLOSE.encode())
        for n in range(members):
            book.writestr(f"xl/media/m{n}", b"")
    return buffer.getvalue()


def plain_xlsx(rows: list[list[str]]) -> bytes:
    """A small, ordinary xlsx of inline strings (to check that the minimal package reads)."""
    xml = "".join("<row>" + "".join(f'<c t="inlineStr"><is><t>{v}</t></is></c>' for v in row) + "</row>"
                  for row in rows)
    return xlsx([xml.encode()])


def zip_bomb_xlsx(unzipped: int = 100 * MB) -> bytes:
    """Identical rows of twenty cells, many MB of them, that deflate to about a thousandth."""
    row = ("<row>" + '<c t="inlineStr"><is><t>消费券结算</t></is></c>' * 20 + "</row>").encode()
    chunk = row * (MB // len(row))
    return xlsx(chunk for _ in range(unzipped // len(chunk)))


def lying_sizes_xlsx(unzipped: int = 50 * MB, declared: int = 1024) -> bytes:
    """A zip bomb whose directory (and local header) declare the sheet 1 KB: small enough to pass any size
    check, while its data unpack to 50 MB."""
    content = bytearray(zip_bomb_xlsx(unzipped))
    name = b"xl/worksheets/sheet1.xml"
    local = 0
    while True:  # the sheet's local header: uncompressed size at offset 22
        local = content.find(b"PK\x03\x04", local)
        length = int.from_bytes(content[local + 26:local + 28], "little")
        if content[local + 30:local + 30 + length] == name:
            content[local + 22:local + 26] = declared.to_bytes(4, "little")
            break
        local += 4
    central = 0
    while True:  # its central directory entry: uncompressed size at offset 24
        central = content.find(b"PK\x01\x02", central)
        length = int.from_bytes(content[central + 28:central + 30], "little")
        if content[central + 46:central + 46 + length] == name:
            content[central + 24:central + 28] = declared.to_bytes(4, "little")
            break
        central += 4
    return bytes(content)


def wide_row_xlsx(cells: int = 200_000) -> bytes:
    """One row of 200,000 cells of varied numbers: compresses only three-fold, so it passes the size and
    ratio checks, and must be stopped as its cells arrive."""
    rng = random.Random(7)
    values = "".join(f"<c><v>{rng.randrange(10_000, 99_999)}</v></c>" for _ in range(cells))
    return xlsx([b"<row>", values.encode(), b"</row>"])


def many_members_xlsx(members: int = 20_000) -> bytes:
    return xlsx([b"<row><c><v>1</v></c></row>"], members=members)


def entity_expansion_xlsx() -> bytes:
    """A "billion laughs": entities that expand to a gigabyte from a few hundred bytes."""
    entities = '<!ENTITY a0 "消费券消费券消费券消费券">' + "".join(
        f'<!ENTITY a{n} "{("&a" + str(n - 1) + ";") * 10}">' for n in range(1, 10))
    return xlsx([b'<row><c t="inlineStr"><is><t>&a9;</t></is></c></row>'],
                prologue=f'<?xml version="1.0"?><!DOCTYPE worksheet [{entities}]>')


@dataclass(frozen=True)
class Hostile:
    name: str
    build: Callable[[], bytes]
    #: the refusal, with {what} for the import's kind of file, {columns} and {rows} for its limits
    message: str


HOSTILE = [
    Hostile("wide-row-400kb.csv", wide_row_csv, "第 1 行超过 4,096 个字符，文件不像{what}，未导入"),
    Hostile("long-cell-400kb.csv", long_cell_csv, "第 2 行超过 4,096 个字符，文件不像{what}，未导入"),
    Hostile("columns-100k.csv", many_columns_csv, "第 1 行超过 4,096 个字符，文件不像{what}，未导入"),
    Hostile("columns-2000.csv", narrow_wide_csv, "第 1 行超过 {columns} 列，文件不像{what}，未导入"),
    Hostile("rows-250k.csv", many_rows_csv, "{rows}，请分段导出后分别导入"),
    Hostile("zip-bomb.xlsx", zip_bomb_xlsx, "（上限 100 倍），疑似压缩炸弹，未导入"),
    Hostile("lying-sizes.xlsx", lying_sizes_xlsx, "无法读取 xlsx 文件，文件可能已损坏或不是 Excel 2007 及以上格式（压缩数据与 zip 目录不符）"),
    Hostile("wide-row.xlsx", wide_row_xlsx, "第 1 行超过 {columns} 列，文件不像{what}，未导入"),
    Hostile("many-members.xlsx", many_members_xlsx, "xlsx 文件包含 20,005 个部件（上限 500），不是普通的 Excel 表格，未导入"),
    Hostile("entity-expansion.xlsx", entity_expansion_xlsx, "含 DTD 声明"),
]


# The three imports, as a person uses them ----------------------------------------------------------------


@dataclass(frozen=True)
class Importer:
    name: str
    user: str
    url: str
    field: str
    what: str
    columns: int
    rows: str

    def stored(self, db) -> int:
        from voucher.analytics.models import MerchantDailySales
        from voucher.core.audit import AuditEntry
        from voucher.info_consumption_index.models import IndexImportBatch, IndexValue
        from voucher.reconciliation.models import BankStatement, BankStatementLine

        return sum(db.session.scalar(select(func.count()).select_from(model)) for model in (
            BankStatement, BankStatementLine, MerchantDailySales, IndexImportBatch, IndexValue)) + db.session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action.in_(
                ("reconciliation.import", "baselines.import", "index.import"))))


IMPORTERS = {
    "statement": Importer("statement", "finance", "/finance/reconciliation/import", "statement", "银行对账单", 64,
                          "文件超过 25,000 行"),
    "baselines": Importer("baselines", "finance", "/analytics/baselines", "baselines", "销售基线文件", 16,
                          "数据超过 200,000 行（不含表头）"),
    "index": Importer("index", "admin", "/index/data/import", "values", "指标数据文件", 64,
                      "数据超过 200,000 行（不含表头）"),
}


class Overran(Exception):
    pass


@contextmanager
def budget(seconds: float):
    """Stop the code under test after `seconds` (SIGALRM, main thread): unbounded parsing fails the test
    within the budget, not after minutes."""
    def overran(*_args):
        raise Overran(f"over the {seconds} s budget")

    previous = signal.signal(signal.SIGALRM, overran)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def files():
    return {}


def _content(files: dict, hostile: Hostile) -> bytes:
    if hostile.name not in files:  # built once per run: the bombs take a moment to compress
        files[hostile.name] = hostile.build()
    return files[hostile.name]


@pytest.fixture
def world(db):
    from voucher.info_consumption_index import catalogue

    made = make_world()
    catalogue.install_default_catalogue()
    db.session.commit()
    return made


def _sign_in(client, username: str) -> None:
    assert client.post("/login", data={"username": username, "password": PASSWORD}).status_code == 302


def _post(client, importer: Importer, content: bytes, name: str):
    return client.post(importer.url, data={importer.field: (io.BytesIO(content), name)},
                       content_type="multipart/form-data")


# Tests -----------------------------------------------------------------------------------------------------


def test_the_minimal_xlsx_of_these_tests_is_read_as_excel_writes_it():
    """The hostile xlsx files differ from an ordinary one only in what they hold."""
    from voucher.core.uploads import Limits, read_table

    table = read_table(plain_xlsx([["a", "b"], ["c", "d"]]), "x.xlsx", Limits("表格", max_rows=10))
    assert table.rows == [["a", "b"], ["c", "d"]] and table.file_type == "xlsx"


def test_rows_of_formatting_only_below_the_table_are_neither_counted_nor_kept():
    """Exports often format thousands of empty rows below the table: not rows of the file. A value in a
    row past the limit is."""
    from voucher.core.uploads import Limits, UploadRefused, read_table
    from voucher.reconciliation.parsing import LIMITS

    def cell(text: str) -> str:
        return f'<c t="inlineStr"><is><t>{text}</t></is></c>'

    table = [f'<row r="1">{cell("交易日期")}{cell("金额")}</row>', f'<row r="3">{cell("2026-11-24")}{cell("1.00")}</row>']
    formatted = "".join(f'<row r="{n}" s="1" customFormat="1" ht="15"><c r="A{n}" s="1"/></row>'
                        for n in range(4, 60_000))
    read = read_table(xlsx(["".join(table).encode(), formatted.encode()]), "bank.xlsx", LIMITS)
    assert read.rows == [["交易日期", "金额"], ["", ""], ["2026-11-24", "1.00"]]
    with pytest.raises(UploadRefused, match="文件超过 25,000 行，请分段导出后分别导入"):
        read_table(xlsx(["".join(table).encode(), formatted.encode(), f'<row r="60000">{cell("x")}</row>'.encode()]),
                   "bank.xlsx", LIMITS)
    # cells of formatting only cost reading too: bounded at four times the cells a file may hold
    with pytest.raises(UploadRefused, match="xlsx 表格超过 4,000 个单元格（含只有格式的空白单元格）"):
        read_table(xlsx([b"<row>" + b'<c s="1"/>' * 5_000 + b"</row>"]), "bank.xlsx",
                   Limits("银行对账单", max_rows=100, max_cells=1_000))


def test_csv_lines_end_as_the_csv_module_reads_them_and_quoted_breaks_stay_in_their_cell():
    from voucher.core.uploads import read_table
    from voucher.reconciliation.parsing import LIMITS

    read = read_table(b'a,b\r\n"x\ny",z\r\n\r\nlast,row', "bank.csv", LIMITS)
    assert read.rows == [["a", "b"], ["x\ny", "z"], ["", ""], ["last", "row"]] and read.encoding == "UTF-8"


@pytest.mark.parametrize("kind", sorted(IMPORTERS))
@pytest.mark.parametrize("hostile", HOSTILE, ids=[h.name for h in HOSTILE])
def test_a_hostile_file_is_refused_on_the_page_quickly_in_chinese_and_nothing_is_stored(
        client, db, world, files, hostile, kind):
    importer = IMPORTERS[kind]
    content = _content(files, hostile)
    _sign_in(client, importer.user)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with budget(20):
            page = _post(client, importer, content, hostile.name)
    finally:
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    text = page.get_data(as_text=True)
    expected = hostile.message.format(what=importer.what, columns=f"{importer.columns:,}", rows=importer.rows)
    assert page.status_code == 422, text[:500]
    assert f"「{hostile.name}」未导入" in text and expected in text, text[:2000]
    assert importer.stored(db) == 0
    # generous bounds (measured: well under a second and tens of MB; before: minutes and gigabytes)
    assert elapsed < 5, f"{elapsed:.1f} s"
    assert peak < 200 * MB, f"{peak / MB:.0f} MB"


@pytest.mark.parametrize("kind", sorted(IMPORTERS))
def test_a_request_over_the_upload_limit_is_answered_413_with_a_chinese_page(client, db, world, kind):
    importer = IMPORTERS[kind]
    _sign_in(client, importer.user)
    content = b"2026-11-24,S1,x,,,1.00\n" * (12 * MB // 23)
    page = _post(client, importer, content, "big.csv")
    assert page.status_code == 413
    text = page.get_data(as_text=True)
    assert "<html" in text and "单个文件不能超过 10 MB" in text, text[:500]
    assert importer.stored(db) == 0


def test_a_file_over_10_mb_within_the_request_limit_is_refused_naming_the_limit(client, db, world):
    importer = IMPORTERS["statement"]
    _sign_in(client, importer.user)
    content = (STATEMENT_HEADER + "2026-11-24,S1,x,,,1.00\n" * (10 * MB // 23 + 1000)).encode()[: 10 * MB + 1000]
    page = _post(client, importer, content, "big.csv")
    assert page.status_code == 422
    assert "文件过大（超过 10 MB），请分段导出后分别导入" in page.get_data(as_text=True)
    assert importer.stored(db) == 0
