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
    @click.option("--date", "day", default=None, help="business day YYYY-MM-DD (default: every unpaid batch)")
    @click.option("--format", "fmt", type=click.Choice(["csv", "xlsx"]), default="xlsx")
    @click.option("--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
    def export(day: str | None, fmt: str, output: Path) -> None:
        """Write the payout file of the unpaid batches and mark them exported."""
        from voucher.settlement import batches, payout_file
        from voucher.settlement.models import BatchStatus

        rows = [b for b in batches.batches(_day(day)) if b.status_enum is not BatchStatus.PAID]
        output.write_bytes(payout_file.as_csv(rows) if fmt == "csv" else payout_file.as_xlsx(rows))
        batches.mark_exported(rows)
        db.session.commit()
        click.echo(f"已写出 {len(rows)} 个批次到 {output}")

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
