"""`flask users create`: a staff account from the command line (the first administrator of a new
installation, or an account when the pages are not at hand). The password is asked for, hidden, or
read from NEW_USER_PASSWORD; it never appears in the command line or the shell's history."""
from __future__ import annotations

import sys

import click
from flask import Flask

from voucher.accounts.services import create_user
from voucher.core.db import db
from voucher.core.errors import DomainError
from voucher.core.permissions import ROLE_LABELS, Role

#: bureau and finance roles; cashiers and merchant managers belong to a merchant and are added on its pages
STAFF_ROLES = (Role.BUREAU_MAKER, Role.BUREAU_APPROVER, Role.FINANCE, Role.AUDITOR, Role.ADMIN)


def register(app: Flask) -> None:
    @app.cli.group("users")
    def users_group() -> None:
        """用户。"""

    @users_group.command("create")
    @click.argument("username")
    @click.option("--role", type=click.Choice([r.value for r in STAFF_ROLES]), required=True)
    @click.option("--name", "display_name", default=None, help="显示名称（默认同用户名）")
    @click.password_option("--password", envvar="NEW_USER_PASSWORD", prompt="密码", confirmation_prompt="再次输入密码")
    def create_command(username: str, role: str, display_name: str | None, password: str) -> None:
        """Create a staff account (bureau maker or approver, finance, auditor, admin)."""
        try:
            user = create_user(username.strip(), password, Role(role), display_name=display_name)
        except DomainError as error:
            db.session.rollback()
            click.echo(error.message, err=True)
            sys.exit(2)
        db.session.commit()
        click.echo(f"已创建用户 {user.username}（{ROLE_LABELS[Role(role)]}）")
