from __future__ import annotations

from datetime import timezone

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select

from voucher.accounts.forms import ActionForm
from voucher.analytics.services import campaign_figures
from voucher.campaigns import services
from voucher.campaigns.forms import CampaignForm, RejectForm, ReleaseForm
from voucher.campaigns.models import Campaign, CampaignStatus, Measure, Release
from voucher.core.clock import LOCAL_TZ, local_today
from voucher.core.db import db
from voucher.core.errors import DomainError
from voucher.core.permissions import OVERSIGHT, Role, roles_required
from voucher.web import unit_of_work

bp = Blueprint("campaigns", __name__)


def _campaign_or_404(campaign_id: int) -> Campaign:
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None:
        abort(404)
    return campaign


@bp.get("/measures")
@roles_required(*OVERSIGHT)
def measures():
    rows = db.session.scalars(select(Measure).order_by(Measure.number)).all()
    return render_template("campaigns/measures.html", measures=rows)


@bp.get("/campaigns")
@roles_required(*OVERSIGHT)
def index():
    campaigns = db.session.scalars(select(Campaign).order_by(Campaign.id.desc())).all()
    return render_template("campaigns/list.html", campaigns=campaigns)


@bp.route("/campaigns/new", methods=["GET", "POST"])
@roles_required(Role.BUREAU_MAKER)
def new():
    form = CampaignForm()
    form.measure_id.choices = [
        (m.id, f"{m.number}. {m.short_title}") for m in db.session.scalars(select(Measure).order_by(Measure.number))
    ]
    if not form.is_submitted():
        form.valid_from.data = local_today()
    if form.validate_on_submit():
        data = services.CampaignInput(
            measure_id=form.measure_id.data,
            name=form.name.data,
            description=form.description.data or "",
            budget_fen=form.budget.fen,
            face_value_fen=form.face_value.fen,
            threshold_fen=form.threshold.fen,
            valid_from=form.valid_from.data,
            valid_until=form.valid_until.data,
            funding_kind=form.funding_kind.data,
            funding_name=form.funding_name.data,
            categories=form.categories.data,
            districts=form.districts.data,
        )
        try:
            with unit_of_work():
                campaign = services.create_campaign(data, current_user)
        except DomainError as error:
            flash(error.message, "error")
            return render_template("campaigns/new.html", form=form), error.status
        flash("活动已保存为草稿，确认无误后请提交审批", "success")
        return redirect(url_for("campaigns.detail", campaign_id=campaign.id))
    status = 422 if form.is_submitted() else 200
    return render_template("campaigns/new.html", form=form), status


@bp.get("/campaigns/<int:campaign_id>")
@roles_required(*OVERSIGHT)
def detail(campaign_id: int):
    campaign = _campaign_or_404(campaign_id)
    return _render_detail(campaign)


def _render_detail(campaign: Campaign, *, release_form: ReleaseForm | None = None, reject_form: RejectForm | None = None,
                   status: int = 200):
    figures = campaign_figures([campaign])[0]
    return (
        render_template(
            "campaigns/detail.html",
            campaign=campaign,
            figures=figures,
            action_form=ActionForm(),
            release_form=release_form or ReleaseForm(formdata=None),
            reject_form=reject_form or RejectForm(formdata=None),
            Status=CampaignStatus,
        ),
        status,
    )


def _act(campaign_id: int, action, success: str):
    """Run one state change from a button; show the Chinese reason when it is refused."""
    campaign = _campaign_or_404(campaign_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        with unit_of_work():
            action(campaign)
    except DomainError as error:
        flash(error.message, "error")
        return _render_detail(_campaign_or_404(campaign_id), status=error.status)
    flash(success, "success")
    return redirect(url_for("campaigns.detail", campaign_id=campaign_id))


@bp.post("/campaigns/<int:campaign_id>/submit")
@roles_required(Role.BUREAU_MAKER)
def submit(campaign_id: int):
    return _act(campaign_id, lambda c: services.submit_for_approval(c, current_user), "已提交审批")


@bp.post("/campaigns/<int:campaign_id>/approve")
@roles_required(Role.BUREAU_APPROVER)
def approve(campaign_id: int):
    return _act(campaign_id, lambda c: services.approve(c.id, current_user), "活动已审批通过，预算已入账")


@bp.post("/campaigns/<int:campaign_id>/reject")
@roles_required(Role.BUREAU_APPROVER)
def reject(campaign_id: int):
    campaign = _campaign_or_404(campaign_id)
    form = RejectForm()
    if not form.validate_on_submit():
        flash("退回时请填写原因", "error")
        return _render_detail(campaign, reject_form=form, status=422)
    try:
        with unit_of_work():
            services.reject(campaign.id, current_user, form.reason.data)
    except DomainError as error:
        flash(error.message, "error")
        return _render_detail(_campaign_or_404(campaign_id), reject_form=form, status=error.status)
    flash("已退回经办人修改", "success")
    return redirect(url_for("campaigns.detail", campaign_id=campaign_id))


@bp.post("/campaigns/<int:campaign_id>/releases")
@roles_required(Role.BUREAU_MAKER)
def create_release(campaign_id: int):
    campaign = _campaign_or_404(campaign_id)
    form = ReleaseForm()
    if not form.validate_on_submit():
        return _render_detail(campaign, release_form=form, status=422)
    opens_at = form.opens_at.data.replace(tzinfo=LOCAL_TZ).astimezone(timezone.utc).replace(tzinfo=None)
    try:
        with unit_of_work():
            services.create_release(
                campaign, name=form.name.data, quantity=form.quantity.data,
                per_person_limit=form.per_person_limit.data, opens_at=opens_at, actor=current_user,
            )
    except DomainError as error:
        flash(error.message, "error")
        return _render_detail(_campaign_or_404(campaign_id), release_form=form, status=error.status)
    flash("发放场次已创建", "success")
    return redirect(url_for("campaigns.detail", campaign_id=campaign_id))


@bp.post("/releases/<int:release_id>/open")
@roles_required(Role.BUREAU_MAKER, Role.BUREAU_APPROVER)
def open_release(release_id: int):
    release = db.session.get(Release, release_id)
    if release is None:
        abort(404)
    return _act(release.campaign_id, lambda c: services.open_release(release_id, current_user),
                "场次已开放：预算已预留，消费券已生成，市民可以领取")


@bp.get("/approvals")
@roles_required(Role.BUREAU_APPROVER)
def approvals():
    pending = db.session.scalars(
        select(Campaign).where(Campaign.status == CampaignStatus.PENDING_APPROVAL.value).order_by(Campaign.id)
    ).all()
    return render_template("campaigns/approvals.html", campaigns=pending, action_form=ActionForm())
