"""`flask backup ...`: the SQLite backup and the figures to compare after a restore."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask import Flask, current_app


def register(app: Flask) -> None:
    @app.cli.group("backup")
    def backup_group() -> None:
        """备份：SQLite 在线备份；恢复前后核对的汇总数字。"""

    @backup_group.command("sqlite")
    @click.option("--to", "target", required=True, type=click.Path(dir_okay=False, path_type=Path),
                  help="备份文件路径（不会覆盖已有文件）")
    def backup_sqlite_command(target: Path) -> None:
        """Copy the SQLite database with SQLite's online backup API, while the app keeps serving."""
        from voucher.ops.backup import BackupError, backup_sqlite, sqlite_path

        try:
            source = sqlite_path(current_app.config["SQLALCHEMY_DATABASE_URI"])
            backup_sqlite(source, target)
        except BackupError as error:
            click.echo(str(error), err=True)
            sys.exit(1)
        click.echo(f"已备份 {source} -> {target}（{target.stat().st_size:,} 字节，完整性检查通过）")

    @backup_group.command("summary")
    def backup_summary() -> None:
        """Rows per table and every ledger account's balance, as JSON: compare before and after a restore."""
        from voucher.ops.backup import summary

        click.echo(json.dumps(summary(), ensure_ascii=False, indent=1, sort_keys=True))
