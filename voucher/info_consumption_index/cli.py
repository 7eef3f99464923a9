"""`flask index ...`: import values, compute (CSV on stdout, for scripts), publish the campaign feed."""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import click
from flask import Flask

from voucher.core.db import db

SETTING_OPTIONS = [
    click.option("--normalisation", type=click.Choice(["threshold", "minmax", "zscore"]), default="threshold",
                 show_default=True, help="无量纲化：阈值法（报告方法）、最小-最大、Z 分数"),
    click.option("--aggregation", type=click.Choice(["arithmetic", "geometric"]), default="arithmetic",
                 show_default=True, help="合成：加权算术（报告方法）或几何平均"),
    click.option("--std", type=click.Choice(["sample", "population"]), default="sample", show_default=True,
                 help="阈值 = 中位数 + 2 × 标准差 中的标准差口径"),
    click.option("--cap/--no-cap", default=True, show_default=True, help="标准化值是否封顶为 1"),
    click.option("--base-year", type=int, default=None, help="阈值固定为该年（默认各期分别计算）"),
    click.option("--missing", type=click.Choice(["refuse", "median", "previous"]), default="refuse",
                 show_default=True, help="缺失值：拒绝、同年中位数插补、上一年插补"),
    click.option("--outliers", type=click.Choice(["none", "winsorise", "log"]), default="none", show_default=True,
                 help="离群值：不处理、缩尾、对数变换（仅偏度绝对值>2 且峰度>3.5 的数值类指标）"),
]


def _with_settings(command):
    for option in reversed(SETTING_OPTIONS):
        command = option(command)
    return command


def register(app: Flask) -> None:
    @app.cli.group("index")
    def index_group() -> None:
        """信息消费发展指数（ICDI-EC）：导入、计算、活动数据推送。"""

    @index_group.command("import")
    @click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    def index_import(path: Path) -> None:
        """Import city-year values (CSV or xlsx, long or wide form); all or nothing."""
        from voucher.info_consumption_index import catalogue, importing

        try:
            version = catalogue.require_active()
            summary = importing.import_file(path.read_bytes(), path.name, catalogue.as_method(version))
        except importing.ImportRefused as error:
            db.session.rollback()
            click.echo(f"未导入：文件有 {error.total} 处问题", err=True)
            for problem in error.problems:
                click.echo(f"  {problem}", err=True)
            sys.exit(2)
        except Exception as error:  # noqa: BLE001 - NotFound and the like: a Chinese message, exit 2
            db.session.rollback()
            click.echo(getattr(error, "message", str(error)), err=True)
            sys.exit(2)
        db.session.commit()
        click.echo(f"已导入 {summary.cells} 个数值（{len(summary.cities)} 个城市，"
                   f"{summary.years[0]}-{summary.years[-1]} 年），其中替换原有官方数值 {summary.replaced} 个；批次 #{summary.batch.id}")

    @index_group.command("compute")
    @click.option("--year", type=int, required=True)
    @_with_settings
    def index_compute(year: int, normalisation: str, aggregation: str, std: str, cap: bool,
                      base_year: int | None, missing: str, outliers: str) -> None:
        """Compute the index; CSV on stdout: city,composite,demand,supply,environment,rank (best first),
        and an imputed column naming the imputed indicators when an imputation is chosen; warnings (a base
        year that cannot scale an indicator) on stderr. A year with a value missing exits 2 naming it; the
        other years still compute."""
        from voucher.info_consumption_index import method, services

        try:
            settings = method.Settings(normalisation, aggregation, std, cap, base_year, missing, outliers)
            data = services.load()
            result = services.compute(data, settings)
            rows = result.table(year)
        except method.MethodError as error:
            click.echo(str(error), err=True)
            sys.exit(2)
        except Exception as error:  # noqa: BLE001 - NotFound (no catalogue): its Chinese message
            click.echo(getattr(error, "message", str(error)), err=True)
            sys.exit(2)
        services.record(result, data.version)
        db.session.commit()
        for warning in result.warnings:  # on stderr: stdout stays the CSV scripts read
            click.echo(warning, err=True)
        for treated in result.treated:
            click.echo(f"离群值处理：{treated}", err=True)
        growth = result.average_annual_growth
        click.echo(f"综合指数：{result.ranking_label}；年均增速 "
                   f"{'—' if growth is None else f'{growth * 100:.1f}%'}（{result.growth_label}）", err=True)
        writer = csv.writer(sys.stdout, lineterminator="\n")
        header = ["city", "composite", "demand", "supply", "environment", "rank"]
        flag = missing != "refuse"
        writer.writerow(header + (["imputed"] if flag else []))
        for row in rows:
            line = [row["city"], *(f"{row[k]:.6f}" for k in ("composite", "demand", "supply", "environment")),
                    row["rank"]]
            writer.writerow(line + ([";".join(row["imputed"])] if flag else []))

    @index_group.command("feed")
    @click.option("--year", type=int, required=True)
    @click.option("--city", default=None, help="默认为本市（INDEX_HOME_CITY，连云港）")
    def index_feed(year: int, city: str | None) -> None:
        """Publish the campaign side's S11 (money executed by information-consumption campaigns) for the
        home city and year, with its provenance."""
        from voucher.core.money import format_yuan
        from voucher.info_consumption_index import feed, services

        row = feed.publish(city or services.home_city(), year)
        db.session.commit()
        p = row.provenance
        assert p is not None  # publish() records where the figure came from
        click.echo(f"{row.city} {year} 年 S11（活动数据，已执行补贴）：{format_yuan(p['executed_fen'])} 元，"
                   f"来自 {len(p['campaigns'])} 个信息消费活动；信息消费类商户用券带动消费 {format_yuan(p['driven_consumption_fen'])} 元")
