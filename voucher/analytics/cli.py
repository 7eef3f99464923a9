"""`flask leverage report|refresh|import-baselines`: the headline figures for scripts (JSON or CSV),
the nightly pre-aggregation on demand, and merchants' daily sales baselines from a file."""
from __future__ import annotations

import csv
import json
import sys
from datetime import date

import click
from flask import Flask

from voucher.analytics import baselines, panel
from voucher.analytics.leverage import REPORT_KEYS, LeverageFilter, headline, report
from voucher.core.db import db
from voucher.core.errors import InvalidInput
from voucher.core.forms import parse_day
from voucher.core.progress import silent, to_stderr


def _day(text: str | None, label: str) -> date | None:
    try:
        return parse_day(text or "", label)
    except InvalidInput as error:
        click.echo(error.message, err=True)
        sys.exit(2)


def register(app: Flask) -> None:
    @app.cli.group("leverage")
    def leverage_group() -> None:
        """杠杆率。"""

    @leverage_group.command("report")
    @click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json")
    @click.option("--campaign", "campaign_id", type=int, default=None, help="one campaign's id")
    @click.option("--from", "date_from", default=None, help="first local day YYYY-MM-DD")
    @click.option("--until", "date_until", default=None, help="last local day YYYY-MM-DD")
    def report_command(fmt: str, campaign_id: int | None, date_from: str | None, date_until: str | None) -> None:
        """Print the headline figures (claims by claim date, redemptions by redemption date)."""
        selection = LeverageFilter(campaign_id, _day(date_from, "开始日期"), _day(date_until, "结束日期"))
        causal = panel.estimate(campaign_id, selection.date_from, selection.date_until).estimate
        row = report(headline(selection), causal.as_tuple(), causal.missing_reason)
        if fmt == "json":
            click.echo(json.dumps(row, ensure_ascii=False, indent=2))
            return
        writer = csv.DictWriter(sys.stdout, fieldnames=REPORT_KEYS, lineterminator="\n")
        writer.writeheader()
        writer.writerow({key: "" if value is None else value for key, value in row.items()})

    @leverage_group.command("refresh")
    @click.option("--full", is_flag=True, help="rebuild every day, not only the days since the last run")
    def refresh_command(full: bool) -> None:
        """Pre-aggregate the figures up to yesterday and rebuild the causal panel (the nightly job)."""
        # The percentages go to stderr: stdout is the one line scripts read.
        result = panel.refresh_leverage(full=full, progress=to_stderr("杠杆率预聚合") if full else silent)
        db.session.commit()
        click.echo(f"汇总至 {result['built_through']}：{result['facts']:,} 行汇总，"
                   f"{result['merchant_days']:,} 个（日，活动）商户集合；因果面板 {result['panel_units']:,} 个商户单元")

    @leverage_group.command("import-baselines")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False))
    def import_command(file: str) -> None:
        """Import merchants' daily sales (CSV or xlsx: 统一社会信用代码, 日期, 销售额（元）)."""
        from pathlib import Path

        path = Path(file)
        try:
            result = baselines.import_baselines(path.read_bytes(), path.name, None, progress=to_stderr("导入销售额基线"))
        except baselines.BadBaselineFile as error:
            db.session.rollback()
            click.echo(f"未导入：发现 {error.total} 处问题", err=True)
            for problem in error.problems:
                click.echo(f"  {problem}", err=True)
            sys.exit(2)
        db.session.commit()
        click.echo(f"已导入 {result.rows:,} 行（{result.merchants:,} 家商户，{result.first_day} 至 {result.last_day}），"
                   f"替换已有 {result.replaced:,} 行；因果面板 {result.panel_units:,} 个商户单元")
