"""The counter page for cashiers, and the merchant portal: its own redemptions and settlement statement."""
from __future__ import annotations

import uuid
from datetime import timedelta

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from voucher.core.clock import local_today, utcnow
from voucher.core.db import db
from voucher.core.errors import DomainError
from voucher.core.permissions import Role, roles_required
from voucher.counter.redemption import redeem, reverse
from voucher.merchants.forms import RedeemForm, ReverseForm
from voucher.merchants.models import Redemption
from voucher.ops import limits
from voucher.reports import merchant_redemptions, merchant_statement
from voucher.web import refused, unit_of_work

bp = Blueprint("merchants", __name__)


def _recent_at_store(store_id: int) -> list[Redemption]:
    return list(
        db.session.scalars(
            select(Redemption)
            .where(Redemption.store_id == store_id, Redemption.created_at > utcnow() - timedelta(hours=12))
            .order_by(Redemption.id.desc())
            .limit(10)
        )
    )


def _fresh_form() -> RedeemForm:
    form = RedeemForm(formdata=None)
    form.idempotency_key.data = uuid.uuid4().hex
    return form


@bp.route("/counter", methods=["GET", "POST"])
@limits.counter_page
@roles_required(Role.CASHIER)
def counter():
    form = RedeemForm()
    result = error = None
    status = 200
    if form.is_submitted():
        if form.validate_on_submit():
            try:
                with unit_of_work():
                    result = redeem(
                        form.code.data, form.order_amount.fen, current_user,
                        idempotency_key=form.idempotency_key.data or None,
                    )
            except DomainError as exc:
                error, status = exc.message, exc.status
        else:
            error = next(iter(m for messages in form.errors.values() for m in messages), "输入有误")
            status = 422
    if result is not None:
        next_form = _fresh_form()
    else:
        # After a refusal the next scan belongs to the next customer: the amount is never kept (a
        # scanner's Enter would submit it with the next voucher), the code box takes the focus.
        next_form = form if form.is_submitted() else _fresh_form()
        next_form.order_amount.data = None
        next_form.idempotency_key.data = uuid.uuid4().hex
    return (
        render_template(
            "merchants/counter.html", form=next_form, result=result, error=error,
            store=current_user.store, recent=_recent_at_store(current_user.store_id), reverse_form=ReverseForm(),
            reversible_after=utcnow() - timedelta(minutes=current_app.config["REVERSAL_WINDOW_MINUTES"]),
        ),
        status,
    )


@bp.post("/counter/redemptions/<int:redemption_id>/reverse")
@roles_required(Role.CASHIER)
def reverse_redemption(redemption_id: int):
    form = ReverseForm()
    if not form.validate_on_submit():
        flash("请填写撤销原因", "error")
        return redirect(url_for("merchants.counter"))
    try:
        with unit_of_work():
            reverse(redemption_id, reason=form.reason.data or "", cashier=current_user)
    except DomainError as error:
        return refused(error, "merchants.counter")
    flash("已撤销核销：券已恢复为未使用，金额已退回", "success")
    return redirect(url_for("merchants.counter"))


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@bp.get("/merchant/redemptions")
@roles_required(Role.MERCHANT_MANAGER, Role.CASHIER)
def redemptions():
    """核销记录: a manager's of every store of the merchant, a cashier's of their own store only."""
    status = 200
    # A refused filter (a date range that ends before it starts) is left out and said why; the others stay.
    found_filter, error = merchant_redemptions.RedemptionFilter.parse_keeping(request.args)
    if error is not None:
        flash(error.message, "error")
        status = error.status
    listing = merchant_redemptions.search(current_user, found_filter)  # another store: Forbidden, a 403
    return render_template("merchants/redemptions.html", listing=listing, f=listing.filter,
                           entered=request.args if error is not None else {},
                           statuses=merchant_redemptions.STATUSES,
                           export_limit=merchant_redemptions.EXPORT_LIMIT), status


@bp.get("/merchant/redemptions.xlsx")
@roles_required(Role.MERCHANT_MANAGER, Role.CASHIER)
def redemptions_workbook():
    found_filter = merchant_redemptions.RedemptionFilter.parse(request.args)
    body = merchant_redemptions.as_xlsx(current_user, found_filter)
    name = merchant_redemptions.file_name(found_filter, local_today())
    return Response(body, mimetype=XLSX, headers={"Content-Disposition": f"attachment; filename={name}"})


@bp.get("/merchant/statement")
@roles_required(Role.MERCHANT_MANAGER)
def statement():
    """结算对账单: redeemed -> settled -> paid, per business day, campaign and funder."""
    status = 200
    # A refused field (a malformed date or campaign, dates the wrong way round) is said why; the others stay.
    found_filter, error = merchant_statement.StatementFilter.parse_keeping(request.args)
    if error is not None:
        flash(error.message, "error")
        status = error.status
    found = merchant_statement.statement(current_user, found_filter)
    return render_template("merchants/statement.html", statement=found, f=found_filter), status


@bp.get("/merchant/statement.xlsx")
@roles_required(Role.MERCHANT_MANAGER)
def statement_workbook():
    found_filter = merchant_statement.StatementFilter.parse(request.args)
    body = merchant_statement.as_xlsx(current_user, found_filter)
    name = f"statement-{found_filter.date_from:%Y%m%d}-{found_filter.date_until:%Y%m%d}.xlsx"
    return Response(body, mimetype=XLSX, headers={"Content-Disposition": f"attachment; filename={name}"})
