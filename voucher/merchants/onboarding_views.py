"""Onboarding pages: the public application, the bureau's review, and a manager's cashiers and terminals."""
from __future__ import annotations

from flask import Blueprint, abort, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from voucher.accounts.forms import ActionForm
from voucher.accounts.models import User
from voucher.campaigns.forms import ReasonForm
from voucher.core.db import db
from voucher.core.errors import DomainError
from voucher.core.forms import as_choices
from voucher.core.paging import page_number, page_of
from voucher.core.permissions import OVERSIGHT, Role, public, roles_required
from voucher.counter import risk
from voucher.merchants import onboarding
from voucher.merchants.forms import (
    ApplicationStatusForm,
    ApproveMerchantForm,
    CashierForm,
    MerchantApplicationForm,
    TerminalForm,
)
from voucher.merchants.models import MERCHANT_STATUS_LABELS, RiskFlag, Store, StoreTerminal
from voucher.ops import limits
from voucher.web import in_transaction, refused, unit_of_work

bp = Blueprint("onboarding", __name__)


@bp.route("/merchants/apply", methods=["GET", "POST"])
@public
@limits.merchant_apply
def apply():
    form = MerchantApplicationForm()
    if form.validate_on_submit():
        data = onboarding.MerchantApplication(
            name=form.name.data, uscc=form.uscc.data, category=form.category.data,
            stores=[onboarding.StoreInput(r.form.name.data or "", r.form.district.data or "", r.form.address.data or "")
                    for r in form.stores],
            bank_account_name=form.bank_account_name.data, bank_name=form.bank_name.data,
            bank_account_no=form.bank_account_no.data, manager_username=form.manager_username.data,
            manager_password=form.manager_password.data, manager_display_name=form.manager_display_name.data or "",
            contact_phone=form.contact_phone.data or "", previous_password=form.previous_password.data or "",
        )
        try:
            # Four identical applications posted at once: one is recorded, the others are told it exists.
            merchant = in_transaction(lambda: onboarding.apply(data))
        except DomainError as error:
            flash(error.message, "error")
            return render_template("merchants/apply.html", form=form), error.status
        return render_template("merchants/applied.html", merchant=merchant)
    status = 422 if form.is_submitted() else 200
    return render_template("merchants/apply.html", form=form), status


@bp.route("/merchants/apply/status", methods=["GET", "POST"])
@public
@limits.merchant_status
def application_status():
    """申请进度查询: by the USCC and contact phone of the application (a POST: neither lands in a URL or log)."""
    form = ApplicationStatusForm()
    if not form.validate_on_submit():
        status = 422 if form.is_submitted() else 200
        return render_template("merchants/application_status.html", form=form, found=None), status
    try:
        found = onboarding.application_status(form.uscc.data, form.contact_phone.data)
    except DomainError as error:
        flash(error.message, "error")
        return render_template("merchants/application_status.html", form=form, found=None), error.status
    return render_template("merchants/application_status.html", form=form, found=found)


@bp.get("/merchants")
@roles_required(*OVERSIGHT)
def index():
    status = request.args.get("status") or None
    text = (request.args.get("q") or "").strip()[:60]
    page = page_of(onboarding.merchant_query(text, status), page_number(request.args.get("page")))
    merchants = page.items
    args = {k: v for k, v in (("q", text), ("status", status if status in MERCHANT_STATUS_LABELS else None)) if v}
    return render_template("merchants/list.html", merchants=merchants, page=page, args=args, q=text, status=status,
                           labels=MERCHANT_STATUS_LABELS, action_form=ActionForm(), reason_form=ReasonForm(formdata=None),
                           asked_names=onboarding.requested_usernames([m.id for m in merchants]))


@bp.post("/merchants/<int:merchant_id>/<any(approve, reject):decision>")
@roles_required(Role.BUREAU_APPROVER)
def decide(merchant_id: int, decision: str):
    approving = decision == "approve"
    form = ApproveMerchantForm() if approving else ReasonForm()
    if not form.validate_on_submit():
        flash("管理员用户名过长" if approving else "驳回时请填写原因", "error")
        return redirect(url_for("onboarding.index", status="pending"))
    try:
        with unit_of_work():
            if approving:
                merchant = onboarding.decide(merchant_id, current_user, approve=True,
                                             manager_username=form.manager_username.data or "")
            else:
                merchant = onboarding.decide(merchant_id, current_user, approve=False, note=form.reason.data or "")
    except DomainError as error:
        return refused(error, "onboarding.index", status="pending")
    flash(f"商户「{merchant.name}」{'已批准入驻，管理员账号已启用' if approving else '的入驻申请已驳回，原因已记录'}", "success")
    return redirect(url_for("onboarding.index", status="pending"))


def _staff_page(status: int = 200, *, new_token: str | None = None, cashier_form=None, terminal_form=None):
    merchant = current_user.merchant
    stores = as_choices((s.id, s.name) for s in merchant.stores)
    cashier_form = cashier_form or CashierForm(formdata=None)
    terminal_form = terminal_form or TerminalForm(formdata=None)
    cashier_form.store_id.choices = terminal_form.store_id.choices = stores
    cashiers = db.session.scalars(
        select(User).where(User.merchant_id == merchant.id, User.role == Role.CASHIER.value).order_by(User.id)
    ).all()
    terminals = db.session.scalars(
        select(StoreTerminal).join(Store).where(Store.merchant_id == merchant.id).order_by(StoreTerminal.id)
    ).all()
    return render_template("merchants/staff.html", merchant=merchant, cashiers=cashiers, terminals=terminals,
                           cashier_form=cashier_form, terminal_form=terminal_form, new_token=new_token,
                           action_form=ActionForm()), status


@bp.get("/merchant/staff")
@roles_required(Role.MERCHANT_MANAGER)
def staff():
    return _staff_page()


@bp.post("/merchant/cashiers")
@roles_required(Role.MERCHANT_MANAGER)
def add_cashier():
    form = CashierForm()
    if not form.validate_on_submit():
        flash(next(iter(m for ms in form.errors.values() for m in ms), "输入有误"), "error")
        return _staff_page(422, cashier_form=form)
    try:
        with unit_of_work():
            onboarding.add_cashier(current_user, store_id=form.store_id.data, username=form.username.data,
                                   display_name=form.display_name.data or "", password=form.password.data)
    except DomainError as error:
        flash(error.message, "error")
        return _staff_page(error.status, cashier_form=form)
    flash("收银员已添加", "success")
    return redirect(url_for("onboarding.staff"))


@bp.post("/merchant/cashiers/<int:user_id>/<any(activate, deactivate):action>")
@roles_required(Role.MERCHANT_MANAGER)
def cashier_active(user_id: int, action: str):
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        with unit_of_work():
            onboarding.set_cashier_active(current_user, user_id, action == "activate")
    except DomainError as error:
        flash(error.message, "error")
        return _staff_page(error.status)
    return redirect(url_for("onboarding.staff"))


@bp.post("/merchant/cashiers/<int:user_id>/reset-password")
@roles_required(Role.MERCHANT_MANAGER)
def reset_cashier_password(user_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        with unit_of_work():
            cashier, temporary = onboarding.reset_cashier_password(current_user, user_id)
            username, display_name = cashier.username, cashier.display_name
    except DomainError as error:
        flash(error.message, "error")
        return _staff_page(error.status)
    # Shown in this answer only (as the administrator's reset): never flashed into the session cookie.
    response = make_response(render_template(
        "accounts/temporary_password.html", username=username, display_name=display_name, temporary=temporary,
        back_url=url_for("onboarding.staff"), back_label="返回收银员与终端"))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/merchant/terminals")
@roles_required(Role.MERCHANT_MANAGER)
def issue_terminal():
    form = TerminalForm()
    if not form.validate_on_submit():
        return _staff_page(422, terminal_form=form)
    try:
        with unit_of_work():
            _, token = onboarding.issue_terminal(current_user, store_id=form.store_id.data, label=form.label.data)
    except DomainError as error:
        flash(error.message, "error")
        return _staff_page(error.status, terminal_form=form)
    # Shown in this response only; only its hash is kept, and no cache keeps the page.
    response = make_response(*_staff_page(new_token=token))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/merchant/terminals/<int:terminal_id>/revoke")
@roles_required(Role.MERCHANT_MANAGER)
def revoke_terminal(terminal_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        with unit_of_work():
            onboarding.revoke_terminal(current_user, terminal_id)
    except DomainError as error:
        flash(error.message, "error")
        return _staff_page(error.status)
    flash("终端令牌已停用", "success")
    return redirect(url_for("onboarding.staff"))


@bp.get("/risk")
@roles_required(*OVERSIGHT)
def risk_flags():
    status = request.args.get("status", "open")
    query = select(RiskFlag).order_by(RiskFlag.day.desc(), RiskFlag.id.desc())
    if status in ("open", "cleared"):
        query = query.where(RiskFlag.status == status)
    return render_template("merchants/risk.html", flags=db.session.scalars(query.limit(500)).all(), status=status)


@bp.post("/risk/<int:flag_id>/clear")
@roles_required(Role.BUREAU_MAKER, Role.BUREAU_APPROVER)
def clear_risk(flag_id: int):
    form = ReasonForm()
    if not form.validate_on_submit():
        flash("请填写核查结论", "error")
        return redirect(url_for("onboarding.risk_flags"))
    try:
        with unit_of_work():
            risk.review(flag_id, current_user, note=form.reason.data or "")
    except DomainError as error:
        return refused(error, "onboarding.risk_flags")
    flash("已处理该风险提示", "success")
    return redirect(url_for("onboarding.risk_flags"))
