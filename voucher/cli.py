"""Command-line entry points (`flask --app wsgi ...`). Each command is one unit of work."""
from __future__ import annotations

import sys

import click
from flask import Flask, current_app

from voucher import PROJECT_ROOT
from voucher.core.db import db

SEED_DIR = PROJECT_ROOT / "seed"


def register_cli(app: Flask) -> None:
    from voucher.accounts.cli import register as register_users
    from voucher.analytics.cli import register as register_leverage
    from voucher.info_consumption_index.cli import register as register_index
    from voucher.ops.cli import register as register_backup
    from voucher.settlement.cli import register as register_settlement

    register_settlement(app)
    register_users(app)
    register_backup(app)
    register_leverage(app)
    register_index(app)

    @app.cli.group("ledger")
    def ledger_group() -> None:
        """账本：核对余额与不变量。"""

    @ledger_group.command("verify")
    def ledger_verify() -> None:
        """Recompute every balance from postings; exit 1 on any broken invariant."""
        from voucher.reports.consistency import verify_ledger

        problems = verify_ledger()
        if problems:
            for line in problems:
                click.echo(f"不一致：{line}", err=True)
            click.echo(f"账本核对失败：{len(problems)} 处不一致", err=True)
            sys.exit(1)
        click.echo("账本核对通过：所有分录借贷平衡，余额与过账、券和核销记录一致")

    @app.cli.group("audit")
    def audit_group() -> None:
        """审计日志：封存与防篡改核对。"""

    @audit_group.command("seal")
    def audit_seal() -> None:
        """Seal the records old enough into the chain (the job does this every few minutes)."""
        from voucher.core.audit_chain import seal

        link = seal()
        db.session.commit()
        if link is None:
            click.echo("没有需要封存的审计记录")
        else:
            click.echo(f"已封存审计记录 #{link.first_entry_id}–#{link.last_entry_id}（{link.entry_count} 条），"
                       f"链值 {link.chain}")

    @audit_group.command("verify")
    def audit_verify() -> None:
        """Check every record's MAC and the chain of seals; exit 1 on any sign of tampering."""
        from voucher.core.audit_chain import verify

        result = verify()
        db.session.rollback()
        for line in result.problems:
            click.echo(f"异常：{line}", err=True)
        summary = (f"{result.records} 条审计记录，{result.seals} 个封存段，{result.unsealed} 条尚未封存"
                   + (f"；最新链值 {result.head}（请在系统外记录，以便日后核对）" if result.head else ""))
        if not result.ok:
            click.echo(f"审计日志核对失败：{len(result.problems)} 处异常；{summary}", err=True)
            sys.exit(1)
        click.echo(f"审计日志核对通过：{summary}")

    @app.cli.group("crypto")
    def crypto_group() -> None:
        """商用密码：加密字段的密钥轮换。"""

    @crypto_group.command("rotate-fields")
    def crypto_rotate_fields() -> None:
        """Re-encrypt every encrypted field under FIELD_ENCRYPTION_ACTIVE_KEY_ID (after a key rotation)."""
        from voucher.core.field_rotation import rotate_fields

        active = current_app.config["FIELD_ENCRYPTION_ACTIVE_KEY_ID"]
        columns = rotate_fields()
        db.session.commit()
        for column in columns:
            before = "，".join(f"原密钥 {kid} {count} 个" for kid, count in sorted(column.rewritten.items()))
            click.echo(f"{column.column}：共 {column.values} 个值，重新加密 {column.rewritten.total()} 个"
                       + (f"（{before}）" if before else ""))
        click.echo(f"全部加密字段现已使用密钥 {active}；其他密钥可从 FIELD_ENCRYPTION_KEYS 中移除")

    # `seed demo` and `seed city-scale` (development data) are added to this group by wsgi.py outside
    # production, from seed/cli.py: the product never imports seed/.
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

    @app.cli.group("partners")
    def partners_group() -> None:
        """渠道合作方（城市 App、银行）。"""

    @partners_group.command("create")
    @click.argument("name")
    def partners_create(name: str) -> None:
        """Register a channel partner and print its key id and signing secret (shown once)."""
        import secrets as _secrets

        from voucher.api.auth import partner_secret
        from voucher.api.models import Partner

        key_id = "pk_" + _secrets.token_hex(8)
        db.session.add(Partner(name=name, key_id=key_id))
        db.session.commit()
        click.echo(f"合作方：{name}\nX-Partner-Key：{key_id}\n签名密钥：{partner_secret(key_id)}")

    @partners_group.command("prune-nonces")
    def partners_prune() -> None:
        """Forget request nonces older than the replay window."""
        from voucher.api.auth import prune_nonces

        count = prune_nonces()
        db.session.commit()
        click.echo(f"已清理 {count} 条过期随机数")

    @app.cli.group("terminals")
    def terminals_group() -> None:
        """门店收银终端（API 令牌）。"""

    @terminals_group.command("create")
    @click.option("--store-id", type=int, required=True)
    @click.option("--label", default="收银终端")
    @click.option("--by", "username", required=True, help="the merchant manager or admin issuing it")
    def terminals_create(store_id: int, label: str, username: str) -> None:
        """Issue an API token for a store's terminal (printed once; only its hash is kept)."""
        from sqlalchemy import select

        from voucher.accounts.models import User
        from voucher.merchants.models import Store
        from voucher.merchants.terminals import issue_terminal_token

        user = db.session.scalar(select(User).where(User.username == username))
        store = db.session.get(Store, store_id)
        if user is None or store is None:
            click.echo("找不到该用户或门店", err=True)
            sys.exit(2)
        if not (user.role == "admin" or (user.role == "merchant_manager" and user.merchant_id == store.merchant_id)):
            click.echo("只有本商户的管理员或系统管理员可以为门店签发终端令牌", err=True)
            sys.exit(2)
        terminal, token = issue_terminal_token(store.id, label, user.id)
        db.session.commit()
        click.echo(f"门店：{store.name}\n终端 #{terminal.id}：{label}\n令牌（仅显示一次）：{token}")

    @app.cli.group("risk")
    def risk_group() -> None:
        """风险提示。"""

    @risk_group.command("scan")
    @click.option("--date", "day", default=None, help="local day YYYY-MM-DD (default: yesterday)")
    def risk_scan(day: str | None) -> None:
        """Flag the day's unusual redemption patterns for review."""
        from datetime import date, timedelta

        from voucher.core.clock import local_today
        from voucher.counter.risk import scan

        try:
            target = date.fromisoformat(day) if day else local_today() - timedelta(days=1)
        except ValueError:
            click.echo("日期格式应为 YYYY-MM-DD", err=True)
            sys.exit(2)
        flags = scan(target)
        db.session.commit()
        click.echo(f"{target.isoformat()}：新增 {len(flags)} 条风险提示")
        for flag in flags:
            click.echo(f"  {flag.merchant.name}：{flag.kind_enum.label} {flag.detail}")

    @app.cli.group("jobs")
    def jobs_group() -> None:
        """定时任务：查看、手动运行、调度一次。"""

    @jobs_group.command("list")
    def jobs_list() -> None:
        """Each job with its schedule and its last run."""
        from voucher.core.clock import to_local
        from voucher.jobs import registry, runner

        latest = runner.latest_runs()
        for job in registry.jobs():
            run = latest.get(job.name)
            last = "尚未运行" if run is None else (
                f"{to_local(run.started_at):%Y-%m-%d %H:%M} {run.status_label}（第 {run.attempts} 次）"
                + (f"：{run.error}" if run.error else "")
            )
            click.echo(f"{job.name:<18} {job.schedule.label:<10} {job.label}    最近：{last}")

    @jobs_group.command("run")
    @click.argument("name")
    def jobs_run(name: str) -> None:
        """Run one job now (outside its schedule); exit 1 if it fails."""
        from voucher.jobs import registry, runner

        if registry.get(name) is None:
            click.echo(f"没有这个定时任务：{name}（可用：{', '.join(j.name for j in registry.jobs())}）", err=True)
            sys.exit(2)
        outcome = runner.run_now(name)
        if not outcome.ok:
            click.echo(f"{name} 运行失败：{outcome.error}", err=True)
            sys.exit(1)
        click.echo(f"{name} 运行完成：{outcome.summary}")

    @jobs_group.command("tick")
    def jobs_tick() -> None:
        """One beat of the scheduler (for cron, where no process runs the clock); exit 1 if a job failed."""
        from voucher.jobs import runner

        outcomes = runner.tick()
        for outcome in outcomes:
            detail = outcome.summary if outcome.ok else outcome.error
            click.echo(f"{outcome.job} {outcome.slot} 第 {outcome.attempts} 次：{outcome.status} {detail}")
        if not outcomes:
            click.echo("没有到期的任务")
        if any(o.status == "failed" for o in outcomes):
            sys.exit(1)
