"""补贴申报 pages: record an application, review it, approve or reject it, record the payout."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user

from voucher.accounts.forms import ActionForm
from voucher.campaigns import grants
from voucher.campaigns.forms import GrantApplicationForm, GrantApproveForm, GrantReviewForm, ReasonForm
from voucher.campaigns.models import Campaign, GrantApplication
from voucher.core.db import db
from voucher.core.errors import DomainError
from voucher.core.permissions import OVERSIGHT, Role, roles_required
from voucher.web import unit_of_work

bp = Blueprint("grants", __name__)


def _application_or_404(application_id: int) -> GrantApplication:
    return db.get_or_404(GrantApplication, application_id)


def _render(application: GrantApplication, status: int = 200, **forms):
    return render_template(
        "campaigns/grant.html", application=application, action_form=ActionForm(),
        review_form=forms.get("review_form") or GrantReviewForm(formdata=None),
        approve_form=forms.get("approve_form") or GrantApproveForm(formdata=None),
        reason_form=forms.get("reason_form") or ReasonForm(formdata=None),
    ), status


@bp.route("/campaigns/<int:campaign_id>/grants/new", methods=["GET", "POST"])
@roles_required(Role.BUREAU_MAKER)
def new(campaign_id: int):
    campaign = db.get_or_404(Campaign, campaign_id)
    form = GrantApplicationForm()
    if form.validate_on_submit():
        try:
            with unit_of_work():
                application = grants.submit(
                    campaign_id, applicant_name=form.applicant_name.data or "",
                    applicant_uscc=form.applicant_uscc.data or "", project=form.project.data or "",
                    evidence=form.evidence.data or "", requested_fen=form.requested.fen or 0,
                    district=form.district.data or None, actor=current_user,
                )
        except DomainError as error:
            flash(error.message, "error")
            return render_template("campaigns/grant_new.html", form=form, campaign=campaign), error.status
        flash("申报已录入，待初审", "success")
        return redirect(url_for("grants.detail", application_id=application.id))
    status = 422 if form.is_submitted() else 200
    return render_template("campaigns/grant_new.html", form=form, campaign=campaign), status


@bp.get("/grants/<int:application_id>")
@roles_required(*OVERSIGHT)
def detail(application_id: int):
    return _render(_application_or_404(application_id))


def _act(application_id: int, form, form_name: str, action, success: str):
    application = _application_or_404(application_id)
    if not form.validate_on_submit():
        if isinstance(form, ActionForm):
            abort(400)
        flash(next(iter(m for ms in form.errors.values() for m in ms), "输入有误"), "error")
        return _render(application, 422, **{form_name: form})
    try:
        with unit_of_work():
            action(form)
    except DomainError as error:
        flash(error.message, "error")
        return _render(_application_or_404(application_id), error.status, **{form_name: form})
    flash(success, "success")
    return redirect(url_for("grants.detail", application_id=application_id))


@bp.post("/grants/<int:application_id>/review")
@roles_required(Role.BUREAU_MAKER)
def review(application_id: int):
    return _act(application_id, GrantReviewForm(), "review_form",
                lambda f: grants.review(application_id, current_user, recommended_fen=f.recommended.fen, note=f.note.data),
                "初审完成，待审批")


@bp.post("/grants/<int:application_id>/approve")
@roles_required(Role.BUREAU_APPROVER)
def approve(application_id: int):
    return _act(application_id, GrantApproveForm(), "approve_form",
                lambda f: grants.approve(application_id, current_user, amount_fen=f.amount.fen),
                "已批准，金额已在预算中预留，待财务拨付")


@bp.post("/grants/<int:application_id>/reject")
@roles_required(Role.BUREAU_MAKER, Role.BUREAU_APPROVER)
def reject(application_id: int):
    return _act(application_id, ReasonForm(), "reason_form",
                lambda f: grants.reject(application_id, current_user, reason=f.reason.data), "补贴申报已驳回，原因已记录")


@bp.post("/grants/<int:application_id>/pay")
@roles_required(Role.FINANCE)
def pay(application_id: int):
    return _act(application_id, ActionForm(), "action_form", lambda f: grants.pay(application_id, current_user),
                "已记录拨付")
