from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from voucher.accounts import services
from voucher.accounts.forms import ActionForm, LoginForm
from voucher.core.errors import DomainError
from voucher.core.permissions import Role
from voucher.core.db import db
from voucher.ops import limits

bp = Blueprint("accounts", __name__)

HOME_BY_ROLE = {
    Role.BUREAU_MAKER.value: "campaigns.index",
    Role.BUREAU_APPROVER.value: "campaigns.approvals",
    Role.ADMIN.value: "analytics.dashboard",
    Role.FINANCE.value: "analytics.dashboard",
    Role.AUDITOR.value: "analytics.dashboard",
    Role.CASHIER.value: "merchants.counter",
    Role.MERCHANT_MANAGER.value: "merchants.redemptions",
}


@bp.get("/")
def home():
    if not current_user.is_authenticated:
        return render_template("home.html")
    return redirect(url_for(HOME_BY_ROLE[current_user.role]))


@bp.route("/login", methods=["GET", "POST"])
@limits.login
def login():
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = services.authenticate(form.username.data, form.password.data)
        except DomainError as error:
            # A failed sign-in changes only the failure counter and lock, which must persist.
            db.session.commit()
            flash(error.message, "error")
            return render_template("accounts/login.html", form=form), error.status
        db.session.commit()
        login_user(user)
        target = request.args.get("next", "")
        if not _is_local(target):
            target = url_for("accounts.home")
        return redirect(target)
    status = 422 if form.is_submitted() else 200
    return render_template("accounts/login.html", form=form), status


def _is_local(target: str) -> bool:
    parts = urlsplit(target)
    return bool(target) and not parts.scheme and not parts.netloc and target.startswith("/")


@bp.post("/logout")
@login_required
def logout():
    if ActionForm().validate_on_submit():
        logout_user()
        flash("已退出登录", "info")
    return redirect(url_for("accounts.login"))
