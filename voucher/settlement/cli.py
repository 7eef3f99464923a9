"""`flask settlement build|export|import-statement`: the finance pages' actions for scripts and the scheduler."""
from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import click
from flask import Flask

from voucher.core.db import db
from voucher.core.errors import DomainError
from voucher.core.money import format_yuan


def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        click.echo("日期格式应为 YYYY-MM-DD", err=True)
        sys.exit(2)


def register(app: Flask) -> None:
    @app.cli.group("settlement")
    def settlement_group() -> None:
        """商户结算。"""

    @settlement_group.command("build")
    @click.option("--date", "day", default=None, help="business day YYYY-MM-DD (default: the latest buildable)")
    def build(day: str | None) -> None:
        """Build the settlement batches of a business day."""
        from voucher.settlement import batches

        target = _day(day) or batches.latest_buildable_day()
        try:
            result = batches.build_batches(target)
            db.session.commit()
        except DomainError as error:
            db.session.rollback()
            click.echo(error.message, err=True)
            sys.exit(1)
        click.echo(f"{target.isoformat()}：新建 {len(result.batches)} 个批次，合计 {format_yuan(result.total_fen)} 元；"
                   f"暂缓 {len(result.held)} 家商户")

    @settlement_group.command("export")
    @click.option("--date", "day", default=None, help="business day YYYY-MM-DD (default: every pending batch)")
    @click.option("--format", "fmt", type=click.Choice(["csv", "xlsx"]), default="xlsx")
    @click.option("--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
    def export(day: str | None, fmt: str, output: Path) -> None:
        """Create a numbered payout file of the pending batches and write it to OUTPUT."""
        from voucher.settlement import payout_files

        try:
            file = payout_files.create(None, _day(day))
            db.session.commit()
        except DomainError as error:
            db.session.rollback()
            click.echo(error.message, err=True)
            sys.exit(1)
        output.write_bytes(file.csv_bytes if fmt == "csv" else file.xlsx_bytes)
        click.echo(f"付款文件 {file.number}：{file.batch_count} 个批次，合计 {format_yuan(file.total_fen)} 元，已写出到 {output}")
        for held in file.held_out or []:
            click.echo(f"  未纳入 {held['reference']}（{held['merchant']}）：{held['reason']}")

    @settlement_group.command("payout-file")
    @click.argument("number")
    @click.option("--format", "fmt", type=click.Choice(["csv", "xlsx"]), default="xlsx")
    @click.option("--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
    def payout_file_copy(number: str, fmt: str, output: Path) -> None:
        """Write an existing payout file again, byte for byte (changes nothing)."""
        from sqlalchemy import select

        from voucher.settlement.models import PayoutFile

        file = db.session.scalar(select(PayoutFile).where(PayoutFile.number == number.strip()))
        if file is None:
            click.echo(f"找不到付款文件 {number}", err=True)
            sys.exit(1)
        output.write_bytes(file.csv_bytes if fmt == "csv" else file.xlsx_bytes)
        click.echo(f"付款文件 {file.number} 已写出到 {output}")

    @settlement_group.command("import-statement")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--mapping", "mapping_name", default=None, help="a saved column mapping (default: 默认)")
    def import_statement(file: Path, mapping_name: str | None) -> None:
        """Import a bank statement (CSV or xlsx) and match it to the settlement batches."""
        from voucher.reconciliation import services as reconciliation
        from voucher.reconciliation.errors import MalformedStatement

        try:
            result = reconciliation.import_statement(file.read_bytes(), file.name, mapping_name, None)
            db.session.commit()
        except MalformedStatement as error:
            db.session.rollback()
            click.echo(f"{file.name}：{error.message}", err=True)
            for problem in error.problems:
                click.echo(f"  {problem}", err=True)
            sys.exit(1)
        except DomainError as error:
            db.session.rollback()
            click.echo(error.message, err=True)
            sys.exit(1)
        counts = result.counts
        waiting = len([1 for _, r in reconciliation.unmatched_batches(result.statement.last_value_date) if r is None])
        click.echo(f"已导入对账单 #{result.statement.id}：{result.statement.line_count} 条流水，"
                   f"合计 {format_yuan(result.statement.total_fen)} 元；已匹配 {counts['matched']}，"
                   f"金额不符 {counts['amount_mismatch']}，银行流水未匹配 {counts['unmatched_line']}，"
                   f"跳过此前已导入 {result.skipped}；结算批次未到账（待处理）{waiting}")
        if result.mapping_name != result.asked_mapping:
            click.echo(f"按「{result.mapping_name}」格式读取（文件不符合「{result.asked_mapping}」）")
        if result.non_payout:
            click.echo(f"非付款流水（收入、利息、手续费等）{result.non_payout} 条：已导入，不参与匹配")
        if result.skipped_row_count:
            click.echo(f"未导入的非流水行 {result.skipped_row_count} 行：")
            for text in result.skipped_rows:
                click.echo(f"  {text}")
