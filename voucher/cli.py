"""Command-line entry points (`flask --app wsgi ...`). Each command is one unit of work."""
from __future__ import annotations

import sys

import click
from flask import Flask, current_app

from voucher import PROJECT_ROOT
from voucher.core.db import db

SEED_DIR = PROJECT_ROOT / "seed"


def register_cli(app: Flask) -> None:
    @app.cli.group("ledger")
    def ledger_group() -> None:
        """账本：核对余额与不变量。"""

    @ledger_group.command("verify")
    def ledger_verify() -> None:
        """Recompute every balance from postings; exit 1 on any broken invariant."""
        from voucher.ledger.verify import verify_ledger

        problems = verify_ledger()
        if problems:
            for line in problems:
                click.echo(f"不一致：{line}", err=True)
            click.echo(f"账本核对失败：{len(problems)} 处不一致", err=True)
            sys.exit(1)
        click.echo("账本核对通过：所有分录借贷平衡，余额与过账、券和核销记录一致")

    @app.cli.group("seed")
    def seed_group() -> None:
        """载入种子数据。"""

    @seed_group.command("measures")
    def seed_measures() -> None:
        """Load the twenty policy measures from seed/measures.toml."""
        from voucher.campaigns.measures_seed import load_measures

        count = load_measures(SEED_DIR / "measures.toml")
        db.session.commit()
        click.echo(f"已载入 {count} 条政策措施")

    @seed_group.command("demo")
    def seed_demo() -> None:
        """Load measures and demo data (development only), and print the demo accounts."""
        from voucher.campaigns.measures_seed import load_measures
        from voucher.demo_data import load_demo

        if current_app.config["ENV_NAME"] == "production":
            click.echo("生产环境不能载入演示数据", err=True)
            sys.exit(2)
        load_measures(SEED_DIR / "measures.toml")
        accounts = load_demo(SEED_DIR / "demo.toml")
        db.session.commit()
        click.echo("演示数据已就绪。演示账号（仅限本地试用）：")
        for username, label, password in accounts:
            click.echo(f"  {username:<16} 密码 {password}   {label}")
        click.echo("市民领券页面：http://127.0.0.1:5000/c/   （手机号任意，开发模式下验证码直接显示在页面上）")
