"""`flask leverage report`: the headline leverage figures for scripts, as JSON or CSV."""
from __future__ import annotations

import csv
import json
import sys
from datetime import date

import click
from flask import Flask

from voucher.analytics.leverage import REPORT_KEYS, LeverageFilter, headline, report


def _day(text: str | None, label: str) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        click.echo(f"{label}格式应为 YYYY-MM-DD", err=True)
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
        row = report(headline(selection))
        if fmt == "json":
            click.echo(json.dumps(row, ensure_ascii=False, indent=2))
            return
        writer = csv.DictWriter(sys.stdout, fieldnames=REPORT_KEYS, lineterminator="\n")
        writer.writeheader()
        writer.writerow({key: "" if value is None else value for key, value in row.items()})
