"""`flask users ...`: staff accounts from the command line (the first administrator of a new installation,
or when the pages are not at hand).

- `create USERNAME --role ROLE`: a new account;
- `set-password USERNAME`: a password of the operator's choosing, under the rule (passwords.py);
- `reset-password USERNAME`: a random temporary password, printed once, which the user must replace at
  the next sign-in;
- `reset-two-factor USERNAME`: forget the user's two-factor sign-in (a lost phone and lost recovery codes).

A password is asked for, hidden, or read from NEW_USER_PASSWORD; it never appears in the command line or
the shell's history. Setting or resetting a password ends every session of the user and lifts a lock."""
from __future__ import annotations

import sys

import click
from flask import Flask

from voucher.accounts import services
from voucher.core.db import db
from voucher.core.errors import DomainError
from voucher.core.permissions import ROLE_LABELS, Role

#: bureau and finance roles; cashiers and merchant managers belong to a merchant and are added on its pages
STAFF_ROLES = (Role.BUREAU_MAKER, Role.BUREAU_APPROVER, Role.FINANCE, Role.AUDITOR, Role.ADMIN)


def _refuse(error: DomainError) -> None:
    db.session.rollback()
    click.echo(error.message, err=True)
    sys.exit(2)


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
        name = username.strip()
        try:
            user = services.create_user(name, password, Role(role), display_name=display_name)
        except services.UsernameTaken:
            # The operator may know which names exist (unlike a visitor of the public application).
            _refuse(services.UsernameTaken(f"用户名 {name} 已存在"))
        except DomainError as error:
            _refuse(error)
        db.session.commit()
        click.echo(f"已创建用户 {user.username}（{ROLE_LABELS[Role(role)]}）")

    @users_group.command("set-password")
    @click.argument("username")
    @click.password_option("--password", envvar="NEW_USER_PASSWORD", prompt="新密码", confirmation_prompt="再次输入新密码")
    def set_password_command(username: str, password: str) -> None:
        """Set a user's password (ends the user's sessions, lifts a lock)."""
        try:
            user = services.set_password(services.find_user(username).id, password)
            name = user.username
        except DomainError as error:
            _refuse(error)
        db.session.commit()
        click.echo(f"已为用户 {name} 设置新密码，其所有登录已退出")

    @users_group.command("reset-password")
    @click.argument("username")
    def reset_password_command(username: str) -> None:
        """Give a user a temporary password, to be changed at the next sign-in (printed once)."""
        try:
            user, temporary = services.reset_password(services.find_user(username).id, actor=None)
            name = user.username
        except DomainError as error:
            _refuse(error)
        db.session.commit()
        click.echo(f"用户 {name} 的临时密码（只显示这一次）：{temporary}")
        click.echo("其所有登录已退出；用临时密码登录后须先设置新密码。")

    @users_group.command("reset-two-factor")
    @click.argument("username")
    def reset_two_factor_command(username: str) -> None:
        """Forget a user's two-factor secret and recovery codes (a lost phone); ends the user's sessions."""
        try:
            user = services.reset_two_factor(services.find_user(username).id, actor=None)
            name = user.username
        except DomainError as error:
            _refuse(error)
        db.session.commit()
        click.echo(f"已重置用户 {name} 的两步验证，其所有登录已退出；如其角色要求两步验证，下次登录后须重新设置。")
