"""Finance: closing a month."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

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
    return render_template("ledger/periods.html", closed=periods.closed_periods(), suggested=_last_month())


@bp.post("")
@roles_required(Role.FINANCE)
def close():
    period = (request.form.get("period") or "").strip()
    try:
        in_transaction(lambda: closing.close_period(period, current_user))
    except DomainError as error:
        return refused(error, "periods.index")
    flash(f"{period} 已结账：此后记入该月的分录将被拒绝", "success")
    return redirect(url_for("periods.index"))
