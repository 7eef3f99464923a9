"""Bulk rows into the session's transaction: PostgreSQL COPY, SQLite executemany. For generated data
sets only (seed/city_scale.py); the product's own paths write row by row.

Ids are given explicitly (a loaded row refers to rows loaded with it), so the caller locks the
tables, reads the next free ids, and on PostgreSQL moves each id sequence past what it loaded.

PostgreSQL gets COPY's binary format built by numpy, not by Python per row: each column becomes a
byte matrix of (length, value) fields, big-endian, the columns side by side, and where a width
varies (text, NULL) a mask drops the padding in one pass. Formatting 2.9 million vouchers this way
takes about two seconds, where building Python rows and write_row took ten; and the server parses
binary in half the time it takes for text (5 s against 10 s for the vouchers, measured here).
Chunks are queued to a writer thread, so the server takes one while numpy makes the next.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Table, text

from voucher.core.db import db

CHUNK_ROWS = 200_000


@dataclass(frozen=True)
class Column:
    """One column to load: `kind` is int (int64), text (str), ts (int64 UTC microseconds), date (days
    since the epoch); values an array (or one value for every row); null a mask of NULL rows."""

    name: str
    kind: str
    values: object
    null: np.ndarray | None = None


def ints(name: str, values, null=None) -> Column:
    return Column(name, "int", values, null)


def texts(name: str, values, null=None) -> Column:
    return Column(name, "text", values, null)


def timestamps(name: str, values, null=None) -> Column:
    return Column(name, "ts", values, null)


def dates(name: str, values) -> Column:
    return Column(name, "date", values)


def dialect() -> str:
    return db.session.connection().dialect.name


def _driver():
    return db.session.connection().connection.driver_connection


def next_id(table: str) -> int:
    return int(db.session.execute(text(f"SELECT COALESCE(MAX(id), 0) FROM {table}")).scalar()) + 1


def lock(tables: Sequence[str]) -> None:
    """PostgreSQL: keep other writers out of the tables while ids are handed out and rows loaded.
    SQLite needs nothing: the transaction began IMMEDIATE and holds the database's write lock."""
    if dialect() == "postgresql":
        db.session.execute(text(f"LOCK TABLE {', '.join(tables)} IN SHARE ROW EXCLUSIVE MODE"))


def insert(table: str, columns: Sequence[Column]) -> int:
    db.session.flush()  # pending ORM rows first: loaded rows may refer to them
    count = max((len(c.values) for c in columns if not np.isscalar(c.values)), default=0)
    if not count:
        return 0
    names = ", ".join(c.name for c in columns)
    if dialect() == "postgresql":
        from psycopg.copy import QueuedLibpqWriter

        encoders = [_Encoder(c, _sql_type(table, c.name)) for c in columns]
        with _driver().cursor() as cursor, cursor.copy(
            f"COPY {table} ({names}) FROM STDIN (FORMAT binary)", writer=QueuedLibpqWriter(cursor)
        ) as copy:
            # the writer thread sends one chunk while numpy (mostly outside the GIL) makes the next
            copy.write(_SIGNATURE)
            for start in range(0, count, CHUNK_ROWS):
                copy.write(_encode(encoders, start, min(count, start + CHUNK_ROWS)))
            copy.write(_TRAILER)
    else:
        marks = ", ".join("?" for _ in columns)
        lists = [_python_values(c, count) for c in columns]
        _driver().executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", zip(*lists))
    return count


def move_sequences(tables: Sequence[str]) -> None:
    if dialect() == "postgresql":
        for table in tables:
            db.session.execute(text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT COALESCE(MAX(id), 1) FROM {table}))"
            ))


def can_defer_foreign_keys() -> bool:
    """PostgreSQL checks a foreign key with one query per row (about 5 us each on this machine: 13
    million checks for the city-scale set). A superuser may switch the row triggers off for the load
    and check every key in one set-based query per key instead (check_foreign_keys, before commit)."""
    if dialect() != "postgresql":
        return False
    return db.session.execute(text("SELECT current_setting('is_superuser')")).scalar() == "on"


def defer_foreign_keys(on: bool) -> None:
    db.session.execute(text(f"SET LOCAL session_replication_role = {'replica' if on else 'DEFAULT'}"))


def check_foreign_keys(table: Table, first_id: int) -> list[str]:
    """Every foreign key of the rows loaded (id >= first_id) that points at no row: one anti-join per key."""
    problems = []
    for constraint in table.foreign_key_constraints:
        (column,) = constraint.columns
        (element,) = constraint.elements
        parent = element.column.table.name
        orphans = db.session.execute(text(
            f"SELECT COUNT(*) FROM {table.name} t WHERE t.id >= :first AND t.{column.name} IS NOT NULL "
            f"AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.{element.column.name} = t.{column.name})"
        ), {"first": first_id}).scalar()
        if orphans:
            problems.append(f"{table.name}.{column.name}：{orphans} 行指向不存在的 {parent}")
    return problems


# ---------------------------------------------------------------------------------------------
# SQLite: Python values, as SQLAlchemy would bind them


def timestamp_texts(us: np.ndarray) -> np.ndarray:
    """UTC microseconds -> b'YYYY-MM-DD HH:MM:SS.ffffff': the text SQLAlchemy keeps in SQLite (so
    string comparisons order correctly), and what PostgreSQL reads."""
    return _timestamp_matrix(np.asarray(us, dtype=np.int64)).view("S26").ravel()


def _digits(out: np.ndarray, column: int, values: np.ndarray, width: int) -> None:
    for position in range(width - 1, -1, -1):
        values, digit = np.divmod(values, 10)
        out[:, column + position] = digit + 48


def _date_matrix(days: np.ndarray) -> np.ndarray:
    """Days since the epoch -> (rows, 10) bytes 'YYYY-MM-DD' (the proleptic Gregorian calendar,
    H. Hinnant's civil_from_days; numpy's datetime_as_string takes ten times as long)."""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    out = np.empty((len(days), 10), dtype=np.uint8)
    _digits(out, 0, year, 4)
    out[:, 4] = out[:, 7] = ord("-")
    _digits(out, 5, month, 2)
    _digits(out, 8, day, 2)
    return out


def _timestamp_matrix(us: np.ndarray) -> np.ndarray:
    days, within = np.divmod(us, 86_400_000_000)
    seconds, micro = np.divmod(within, 1_000_000)
    out = np.empty((len(us), 26), dtype=np.uint8)
    out[:, :10] = _date_matrix(days)
    out[:, 10] = ord(" ")
    _digits(out, 11, seconds // 3600, 2)
    out[:, 13] = out[:, 16] = ord(":")
    _digits(out, 14, seconds // 60 % 60, 2)
    _digits(out, 17, seconds % 60, 2)
    out[:, 19] = ord(".")
    _digits(out, 20, micro, 6)
    return out


def _python_values(column: Column, count: int) -> list:
    values = column.values
    if np.isscalar(values):
        out = [values] * count
    elif column.kind == "int":
        out = np.asarray(values, dtype=np.int64).tolist()
    elif column.kind == "ts":
        out = timestamp_texts(values).astype("U26").tolist()
    elif column.kind == "date":
        out = _date_matrix(np.asarray(values, dtype=np.int64)).view("S10").ravel().astype("U10").tolist()
    else:
        array = np.asarray(values)
        out = (array.astype(f"U{array.dtype.itemsize}") if array.dtype.kind == "S" else array).tolist()
    if column.null is not None:
        out = [None if is_null else value for value, is_null in zip(out, column.null.tolist())]
    return out


# ---------------------------------------------------------------------------------------------
# PostgreSQL: COPY's binary format made by numpy

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # no flags, no header extension
_TRAILER = b"\xff\xff"
_EPOCH_2000_US = 946_684_800_000_000
_EPOCH_2000_DAYS = 10_957
_NULL_LENGTH = np.frombuffer(b"\xff\xff\xff\xff", dtype=np.uint8)


class _Encoder:
    """One column's fields for a slice of rows: a (rows, width) byte matrix of the 4-byte length and
    the value, and which of its bytes are real where the width varies (text, NULL)."""

    def __init__(self, column: Column, sql_type: str) -> None:
        self.column = column
        self.sql_type = sql_type
        values = column.values
        if np.isscalar(values):
            self.constant = _field(_scalar_bytes(values, sql_type))
            return
        self.constant = None
        if column.kind == "text":
            array = np.asarray(values)
            try:
                self.values = array.astype("S")  # ASCII: fast
            except UnicodeEncodeError:
                self.values = np.char.encode(array, "utf-8")
        else:
            self.values = np.asarray(values, dtype=np.int64)

    def matrix(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray | None]:
        rows = stop - start
        if self.constant is not None:
            return np.broadcast_to(self.constant, (rows, len(self.constant))), None
        part = self.values[start:stop]
        valid = None
        if self.column.kind == "text":
            width = part.dtype.itemsize
            data = part.view(np.uint8).reshape(rows, width)
            lengths = (data != 0).sum(axis=1)  # UTF-8 text holds no zero byte: the rest is padding
            out = np.empty((rows, 4 + width), dtype=np.uint8)
            out[:, :4] = lengths.astype(">i4").view(np.uint8).reshape(rows, 4)
            out[:, 4:] = data
            valid = np.ones((rows, 4 + width), dtype=bool)
            valid[:, 4:] = np.arange(width) < lengths[:, None]
        else:
            if self.sql_type == "ts":
                data, size = (part - _EPOCH_2000_US).astype(">i8"), 8
            elif self.sql_type == "date":
                data, size = (part - _EPOCH_2000_DAYS).astype(">i4"), 4
            elif self.sql_type == "int8":
                data, size = part.astype(">i8"), 8
            else:
                data, size = part.astype(">i4"), 4
            out = np.empty((rows, 4 + size), dtype=np.uint8)
            out[:, :4] = np.frombuffer(size.to_bytes(4, "big"), dtype=np.uint8)
            out[:, 4:] = data.view(np.uint8).reshape(rows, size)
        null = self.column.null
        if null is not None and null[start:stop].any():
            null = null[start:stop]
            if valid is None:
                valid = np.ones(out.shape, dtype=bool)
            out[null, :4] = _NULL_LENGTH
            valid[null, 4:] = False
        return out, valid


def _field(data: bytes) -> np.ndarray:
    return np.frombuffer(len(data).to_bytes(4, "big", signed=True) + data, dtype=np.uint8)


def _scalar_bytes(value, sql_type: str) -> bytes:
    if isinstance(value, str):
        return value.encode()
    size = 8 if sql_type in ("int8", "ts") else 4
    return int(value).to_bytes(size, "big", signed=True)


def _sql_type(table: str, column: str) -> str:
    from sqlalchemy import BigInteger, Date, DateTime, Integer

    sql_type = db.metadata.tables[table].c[column].type
    if isinstance(sql_type, BigInteger):
        return "int8"
    if isinstance(sql_type, Integer):
        return "int4"
    if isinstance(sql_type, DateTime):
        return "ts"
    if isinstance(sql_type, Date):
        return "date"
    return "text"


def _encode(encoders: list[_Encoder], start: int, stop: int) -> bytes:
    rows = stop - start
    count = np.frombuffer(len(encoders).to_bytes(2, "big"), dtype=np.uint8)
    parts, masks = [np.broadcast_to(count, (rows, 2))], [None]
    for encoder in encoders:
        matrix, valid = encoder.matrix(start, stop)
        parts.append(matrix)
        masks.append(valid)
    flat = np.hstack(parts)
    if all(m is None for m in masks):
        return flat.tobytes()
    valid = np.hstack([np.ones(p.shape, dtype=bool) if m is None else m for p, m in zip(parts, masks)])
    return flat[valid].tobytes()
