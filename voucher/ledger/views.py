"""Finance: closing a month."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from voucher.accounts.services import display_names
from voucher.core.clock import local_today
from voucher.core.errors import DomainError
from voucher.core.permissions import Role, roles_required
from voucher.ledger import closing, periods
from voucher.web import in_transaction, refused

bp = Blueprint("periods", __name__, url_prefix="/finance/periods")


def _last_month() -> str:
    first = local_today().replace(day=1)
    return f"{first.year - (first.month == 1)}-{(first.month - 2) % 12 + 1:02d}"


@bp.get("")
@roles_required(Role.FINANCE, Role.ADMIN, Role.AUDITOR)
def index():
    closes = periods.closed_periods()
    ids = {p.closed_by_id for p in closes} | {p.reopened_by_id for p in closes if p.reopened_by_id}
    return render_template("ledger/periods.html", closed=closes, suggested=_last_month(), names=display_names(ids))


@bp.post("")
@roles_required(Role.FINANCE)
def close():
    period = (request.form.get("period") or "").strip()
    try:
        in_transaction(lambda: closing.close_period(period, current_user))
    except DomainError as error:
        return refused(error, "periods.index")
    flash(f"{period} 已结账：此后记入该月的分录将被拒绝", "success")
    return redirect(url_for("periods.index"), 303)


@bp.post("/<period>/reopen")
@roles_required(Role.ADMIN)
def reopen(period: str):
    try:
        in_transaction(lambda: closing.reopen_period(period, current_user, request.form.get("reason")))
    except DomainError as error:
        return refused(error, "periods.index")
    flash(f"{period} 已重新开放：可记入该月的更正分录，更正后请财务重新结账", "success")
    return redirect(url_for("periods.index"), 303)
