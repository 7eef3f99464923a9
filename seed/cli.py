"""`flask --app wsgi seed demo`, `seed demo-statement` and `seed city-scale`: development data, added to
the product's `seed` group (voucher/cli.py, which keeps `seed measures`) by wsgi.py outside production. Each
command is one unit of work."""
from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from voucher.core.db import db

SEED_DIR = Path(__file__).resolve().parent


def register(app: Flask) -> None:
    """Add the development commands to the app's `seed` group."""
    seed_group = app.cli.commands["seed"]
    seed_group.add_command(seed_demo)
    seed_group.add_command(seed_demo_statement)
    seed_group.add_command(seed_city_scale)


def _refuse_in_production(message: str) -> None:
    # wsgi.py does not register these commands in production; this guards an app that registers them anyway.
    if current_app.config["ENV_NAME"] == "production":
        click.echo(message, err=True)
        sys.exit(2)


@click.command("demo")
@with_appcontext
def seed_demo() -> None:
    """Load measures and demo data (development only), and print the demo accounts."""
    from seed.demo import load_demo
    from seed.index_demo import load_demo as load_index_demo
    from voucher.campaigns.measures_seed import load_measures

    _refuse_in_production("生产环境不能载入演示数据")
    load_measures(SEED_DIR / "measures.toml")
    accounts = load_demo(SEED_DIR / "demo.toml")
    index_cells = load_index_demo(SEED_DIR / "index_demo.csv")
    db.session.commit()
    if index_cells:
        click.echo(f"信息消费发展指数示意数据（合成，非官方统计）已载入：{index_cells} 个数值")
    click.echo("演示数据已就绪。演示账号（仅限本地试用）：")
    for username, label, password in accounts:
        click.echo(f"  {username:<16} 密码 {password}   {label}")
    click.echo("市民领券页面：http://127.0.0.1:5000/c/   （手机号任意，开发模式下验证码直接显示在页面上）")


@click.command("demo-statement")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=Path("demo-bank-statement.csv"),
              show_default=True, help="写入的对账单文件")
@with_appcontext
def seed_demo_statement(out: Path) -> None:
    """Write the bank's statement of the payout files not yet confirmed (development only): the file the
    对账 page imports, so reconciliation can be tried on the demo."""
    from seed.demo import bank_statement

    _refuse_in_production("生产环境不能生成演示对账单")
    content, lines = bank_statement()
    if not lines:
        click.echo("没有已导出待确认的结算批次：请先在「商户结算」生成结算批次和付款文件", err=True)
        sys.exit(1)
    out.write_bytes(content)
    click.echo(f"演示银行对账单已写入 {out}：{lines} 笔付款（请在「对账」页导入）")


@click.command("city-scale")
@click.option("--seed", "seed_value", type=int, default=None, help="随机种子（默认 20221231）")
@click.option("--scale", type=float, default=1.0, show_default=True, help="规模，0 到 1；测试可用 0.001")
@click.option("--fresh/--append", default=True, show_default=True,
              help="--fresh 只载入空库；--append 允许库中已有其他数据")
@with_appcontext
def seed_city_scale(seed_value: int | None, scale: float, fresh: bool) -> None:
    """Load the city's reference case (2,902,100 vouchers, 43M yuan issued, 219M yuan driven) as a
    deterministic synthetic data set, with merchant sales baselines and a planted causal uplift."""
    from seed import city_scale_data
    from seed.city_scale import load_city_scale
    from voucher.core.errors import DomainError
    from voucher.core.money import format_yuan
    from voucher.core.progress import to_stderr

    _refuse_in_production("生产环境不能载入合成数据集")
    if not 0 < scale <= 1:
        click.echo("--scale 应大于 0 且不超过 1", err=True)
        sys.exit(2)
    try:
        summary = load_city_scale(
            city_scale_data.DEFAULT_SEED if seed_value is None else seed_value, scale, append=not fresh,
            progress=to_stderr("城市规模数据集"),  # stderr: the summary below, on stdout, is what scripts read
        )
    except (DomainError, ValueError) as error:
        db.session.rollback()
        click.echo(str(error), err=True)
        sys.exit(2)
    db.session.commit()
    click.echo(f"城市规模数据集已载入（种子 {summary.seed}，规模 {summary.scale:g}）")
    click.echo(f"  活动 {summary.campaigns} 个，发放场次 {summary.rounds} 轮")
    click.echo(f"  参与商户 {summary.merchants:,} 家，对照商户 {summary.comparables:,} 家，市民 {summary.citizens:,} 人")
    click.echo(f"  领取券 {summary.vouchers:,} 张，面值合计 {format_yuan(summary.issued_fen)} 元")
    click.echo(f"  核销 {summary.redemptions:,} 笔，补贴 {format_yuan(summary.subsidy_fen)} 元，"
               f"带动消费 {format_yuan(summary.driven_fen)} 元")
    click.echo(f"  杠杆率（带动消费 / 发放面值）{summary.driven_fen / summary.issued_fen:.2f}")
    click.echo(f"  商户日销售额基线 {summary.sales_rows:,} 行，记账分录 {summary.journal_entries:,} 笔")
    click.echo(f"  用时 {summary.seconds:.1f} 秒")
