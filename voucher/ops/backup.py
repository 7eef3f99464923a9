"""Backups. PostgreSQL is backed up with its own tools (pg_dump -Fc, pg_restore: see docs/operations.md);
the embedded SQLite database with SQLite's online backup API, which copies a consistent snapshot while
the app keeps serving. `summary()` gives the figures to compare before and after a restore.
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from voucher.core.db import db
from voucher.ledger.services import balances


class BackupError(RuntimeError):
    pass


def sqlite_path(database_uri: str) -> Path:
    url = make_url(database_uri)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        raise BackupError("此命令只适用于 SQLite 数据库文件；PostgreSQL 请用 pg_dump -Fc（见 docs/operations.md 部署指南）")
    return Path(url.database)


def backup_sqlite(source: Path, target: Path) -> None:
    """Copy `source` to `target` as one self-contained file, checked before it takes the final name."""
    if target.exists():
        raise BackupError(f"目标文件已存在：{target}（不会覆盖）")
    if not source.exists():
        raise BackupError(f"数据库文件不存在：{source}")
    partial = target.with_name(target.name + ".part")
    partial.unlink(missing_ok=True)
    src = sqlite3.connect(source)
    dst = sqlite3.connect(partial)
    try:
        # One step: a consistent snapshot. In WAL mode readers don't block the app's writers.
        src.backup(dst)
        # The copy as one file (no -wal beside it), whatever the live database's journal mode.
        dst.execute("PRAGMA journal_mode=DELETE")
        result = dst.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        dst.close()
        src.close()
    if result != "ok":
        partial.unlink(missing_ok=True)
        raise BackupError(f"备份文件完整性检查失败：{result}")
    os.replace(partial, target)


def summary() -> dict:
    """Rows per table and the balance of every ledger account: equal before and after a restore."""
    tables = {
        table.name: db.session.scalar(select(func.count()).select_from(table))
        for table in sorted(db.metadata.sorted_tables, key=lambda t: t.name)
    }
    return {"tables": tables, "balances": {str(k): v for k, v in sorted(balances().items())}}
