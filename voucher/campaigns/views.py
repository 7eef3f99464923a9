from __future__ import annotations

from datetime import timezone
from typing import Any, Callable

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from voucher.accounts.forms import ActionForm
from voucher.analytics.services import campaign_figures
from voucher.campaigns import budget, plan_check, services
from voucher.campaigns.forms import ApproveForm, BudgetChangeForm, CampaignForm, ReasonForm, ReleaseForm
from voucher.campaigns.models import (
    BudgetChange,
    Campaign,
    CampaignStatus,
    FundingSource,
    GrantApplication,
    Measure,
    Release,
)
from voucher.core.clock import LOCAL_TZ, local_today
from voucher.core.db import db
from voucher.core.errors import DomainError, NotFound
from voucher.core.forms import as_choices
from voucher.core.money import format_yuan
from voucher.core.paging import page_number, page_of
from voucher.core.permissions import OVERSIGHT, Role, roles_required
from voucher.jobs import background
from voucher.jobs.models import JobRun
from voucher.jobs.scheduler import wake_scheduler
from voucher.merchants import onboarding
from voucher.merchants.models import Merchant
from voucher.vouchers import closing, releases
from voucher.web import in_transaction, refused, unit_of_work

bp = Blueprint("campaigns", __name__)


def _campaign_or_404(campaign_id: int) -> Campaign:
    return db.get_or_404(Campaign, campaign_id)


@bp.get("/campaigns")
@roles_required(*OVERSIGHT)
def index():
    found = services.CampaignFilter.parse(request.args)
    page = page_of(services.campaign_query(found), page_number(request.args.get("page")))
    measures = db.session.scalars(select(Measure).order_by(Measure.number)).all()
    return render_template("campaigns/list.html", page=page, f=found, measures=measures,
                           statuses=list(CampaignStatus))


@bp.post("/campaigns/<int:campaign_id>/delete")
@roles_required(Role.BUREAU_MAKER)
def delete_draft(campaign_id: int):
    try:
        name = in_transaction(lambda: services.delete_draft(campaign_id, current_user))
    except NotFound as error:  # deleted already (a double click): back to the list, not to its page
        return refused(error, "campaigns.index")
    except DomainError as error:
        return refused(error, "campaigns.detail", campaign_id=campaign_id)
    flash(f"草稿「{name}」已删除", "success")
    return redirect(url_for("campaigns.index"), 303)


# The editor -----------------------------------------------------------------------------------------


def _campaign_form(campaign: Campaign | None = None) -> CampaignForm:
    form = CampaignForm(obj=None)
    form.measure_id.choices = as_choices(
        (m.id, f"{m.number}. {m.short_title}") for m in db.session.scalars(select(Measure).order_by(Measure.number))
    )
    form.merchant_ids.choices = as_choices(
        (m.id, f"{m.name}（{m.category}）")
        for m in db.session.scalars(select(Merchant).where(Merchant.status == "approved").order_by(Merchant.id))
    )
    if not form.is_submitted():
        _fill(form, campaign)
    return form


def _fill(form: CampaignForm, campaign: Campaign | None) -> None:
    """Prefill the editor: a draft being edited, or sensible defaults for a new campaign."""
    if campaign is None:
        form.valid_from.data = local_today()
        form.sources[0].form.name.data = "市财政"
        return
    form.measure_id.data = campaign.measure_id
    form.name.data = campaign.name
    form.description.data = campaign.description
    form.instrument.data = campaign.instrument
    for row, source in zip(form.sources, campaign.funding_sources):
        row.form.kind.data, row.form.name.data, row.form.status.data = source.kind, source.name, source.status
        row.form.amount.data = _yuan_text(source.amount_fen)
        row.form.share.data = source.share
    if campaign.product:
        form.face_value.data = _yuan_text(campaign.product.face_value_fen)
        form.threshold.data = _yuan_text(campaign.product.threshold_fen)
        if campaign.product.percent_bp:
            whole, hundredths = divmod(campaign.product.percent_bp, 100)
            form.percent.data = f"{whole}.{hundredths:02d}".rstrip("0").rstrip(".")
    form.award_min.data = _yuan_text(campaign.award_min_fen)
    form.award_max.data = _yuan_text(campaign.award_max_fen)
    form.planned_quantity.data = campaign.planned_quantity
    form.categories.data = campaign.categories
    form.districts.data = campaign.districts
    form.merchant_ids.data = [m.id for m in campaign.merchants]
    form.valid_from.data, form.valid_until.data = campaign.valid_from, campaign.valid_until
    form.validity_days.data = campaign.validity_days
    form.usable_from.data, form.usable_until.data = campaign.usable_from, campaign.usable_until
    form.per_person_limit.data = campaign.per_person_limit


def _yuan_text(fen: int | None) -> str:
    return "" if fen is None else format_yuan(fen, grouping=False)


def _input_from(form: CampaignForm) -> services.CampaignInput:
    # only after validate_on_submit(): the dates are DataRequired
    assert form.valid_from.data is not None and form.valid_until.data is not None
    return services.CampaignInput(
        measure_id=form.measure_id.data,
        name=form.name.data or "",
        description=form.description.data or "",
        instrument=form.instrument.data,
        sources=[
            services.SourceInput(
                kind=row.form.kind.data, name=row.form.name.data or "", amount_fen=row.form.amount.fen or 0,
                status=row.form.status.data, share=row.form.share.data if row.form.share.data is not None else 1,
            )
            for row in form.sources
            if not row.form.is_blank
        ],
        face_value_fen=form.face_value.fen or 0,
        threshold_fen=form.threshold.fen or 0,
        percent_bp=form.percent.bp,
        planned_quantity=form.planned_quantity.data,
        award_min_fen=form.award_min.fen,
        award_max_fen=form.award_max.fen,
        categories=form.categories.data or [],
        districts=form.districts.data or [],
        merchant_ids=form.merchant_ids.data or [],
        valid_from=form.valid_from.data,
        valid_until=form.valid_until.data,
        validity_days=form.validity_days.data,
        usable_from=form.usable_from.data,
        usable_until=form.usable_until.data,
        per_person_limit=form.per_person_limit.data,
    )


def _editor(form: CampaignForm, campaign: Campaign | None, save):
    if form.validate_on_submit():
        try:
            with unit_of_work():
                saved = save(_input_from(form))
        except DomainError as error:
            flash(error.message, "error")
            return render_template("campaigns/form.html", form=form, campaign=campaign), error.status
        flash("活动已保存为草稿，确认无误后请提交审批", "success")
        return redirect(url_for("campaigns.detail", campaign_id=saved.id))
    status = 422 if form.is_submitted() else 200
    if status == 422:
        flash("请按提示修改后再保存", "error")
    return render_template("campaigns/form.html", form=form, campaign=campaign), status


@bp.route("/campaigns/new", methods=["GET", "POST"])
@roles_required(Role.BUREAU_MAKER)
def new():
    return _editor(_campaign_form(), None, lambda data: services.create_campaign(data, current_user))


@bp.route("/campaigns/<int:campaign_id>/edit", methods=["GET", "POST"])
@roles_required(Role.BUREAU_MAKER)
def edit(campaign_id: int):
    campaign = _campaign_or_404(campaign_id)
    if campaign.status_enum is not CampaignStatus.DRAFT:
        flash("只有草稿状态的活动可以修改", "error")
        return redirect(url_for("campaigns.detail", campaign_id=campaign_id))
    return _editor(_campaign_form(campaign), campaign, lambda data: services.update_draft(campaign_id, data, current_user))


# The campaign page and its actions --------------------------------------------------------------------


@bp.get("/campaigns/<int:campaign_id>")
@roles_required(*OVERSIGHT)
def detail(campaign_id: int):
    return _render_detail(_campaign_or_404(campaign_id))


def _budget_form(campaign: Campaign, formdata=None) -> BudgetChangeForm:
    form = BudgetChangeForm(formdata=formdata)
    form.funding_source_id.choices = as_choices(
        (s.id, f"{s.name}（{s.kind_label}）") for s in campaign.funding_sources if s.status == "in_hand"
    )
    others = db.session.scalars(
        select(FundingSource).join(Campaign)
        .where(Campaign.id != campaign.id, Campaign.status.in_(["active", "paused"]), FundingSource.status == "in_hand")
        .order_by(Campaign.id)
    ).all()
    form.target_funding_source_id.choices = as_choices(
        [(0, "—")] + [(s.id, f"{s.campaign.name} · {s.name}") for s in others]
    )
    return form


_BEFORE_APPROVAL = (CampaignStatus.DRAFT, CampaignStatus.PENDING_APPROVAL)


def _render_detail(campaign: Campaign, *, status: int = 200, **forms):
    figures = campaign_figures([campaign])[0]
    changes = db.session.scalars(
        select(BudgetChange).where(BudgetChange.campaign_id == campaign.id).order_by(BudgetChange.id.desc())
    ).all()
    applications = db.session.scalars(
        select(GrantApplication).where(GrantApplication.campaign_id == campaign.id).order_by(GrantApplication.id.desc())
    ).all()
    # Before approval, maker and approver see the campaign against its measure's plan.
    plan = plan_check.assess(campaign) if campaign.status_enum in _BEFORE_APPROVAL else None
    jobs = background.runs_by_release([r.id for r in campaign.releases])
    return (
        render_template(
            "campaigns/detail.html",
            campaign=campaign,
            figures=figures,
            plan=plan,
            budget_changes=changes,
            applications=applications,
            action_form=ActionForm(),
            approve_form=forms.get("approve_form") or ApproveForm(formdata=None),
            release_form=forms.get("release_form") or ReleaseForm(formdata=None),
            reason_form=forms.get("reason_form") or ReasonForm(formdata=None),
            budget_form=forms.get("budget_form") or _budget_form(campaign),
            Status=CampaignStatus,
            release_jobs={i: background.status(run) for i, run in jobs.items()},
            jobs_active=any(background.is_active(run) for run in jobs.values()),
        ),
        status,
    )


def _act(campaign_id: int, action, success: str | Callable[[Any], str], *, form=None, form_name: str = "reason_form"):
    """Run one state change from a button or a small form; show the Chinese reason when refused."""
    campaign = _campaign_or_404(campaign_id)
    form = form or ActionForm()
    if not form.validate_on_submit():
        if isinstance(form, ActionForm):
            abort(400)
        flash(next(iter(m for ms in form.errors.values() for m in ms), "输入有误"), "error")
        return _render_detail(campaign, status=422, **{form_name: form})
    try:
        result = in_transaction(lambda: action(campaign, form))
    except DomainError as error:
        flash(error.message, "error")
        return _render_detail(_campaign_or_404(campaign_id), status=error.status, **{form_name: form})
    if isinstance(result, JobRun):
        wake_scheduler(current_app)  # committed: the clock may pick the job up now rather than in 30 s
    flash(success(result) if callable(success) else success, "success")
    return redirect(url_for("campaigns.detail", campaign_id=campaign_id))


@bp.post("/campaigns/<int:campaign_id>/submit")
@roles_required(Role.BUREAU_MAKER)
def submit(campaign_id: int):
    return _act(campaign_id, lambda c, f: services.submit_for_approval(c, current_user), "已提交审批")


@bp.post("/campaigns/<int:campaign_id>/approve")
@roles_required(Role.BUREAU_APPROVER)
def approve(campaign_id: int):
    return _act(
        campaign_id,
        lambda c, f: services.approve(c.id, current_user, plan_override_reason=f.plan_override_reason.data),
        "活动已批准，预算已入账", form=ApproveForm(), form_name="approve_form",
    )


@bp.post("/campaigns/<int:campaign_id>/reject")
@roles_required(Role.BUREAU_APPROVER)
def reject(campaign_id: int):
    return _act(campaign_id, lambda c, f: services.reject(c.id, current_user, f.reason.data), "已退回经办人修改",
                form=ReasonForm())


@bp.post("/campaigns/<int:campaign_id>/pause")
@roles_required(Role.BUREAU_MAKER, Role.BUREAU_APPROVER)
def pause(campaign_id: int):
    return _act(campaign_id, lambda c, f: services.pause(c.id, current_user), "活动已暂停：暂停期间不能领券和核销")


@bp.post("/campaigns/<int:campaign_id>/resume")
@roles_required(Role.BUREAU_MAKER, Role.BUREAU_APPROVER)
def resume(campaign_id: int):
    return _act(campaign_id, lambda c, f: services.resume(c.id, current_user), "活动已恢复")


@bp.post("/campaigns/<int:campaign_id>/close")
@roles_required(Role.BUREAU_APPROVER)
def close(campaign_id: int):
    return _act(campaign_id, lambda c, f: closing.close_campaign(c.id, current_user, f.reason.data),
                "活动已结束，未使用资金已退回出资方", form=ReasonForm(prefix="close"))


@bp.post("/campaigns/<int:campaign_id>/releases")
@roles_required(Role.BUREAU_MAKER)
def create_release(campaign_id: int):
    def action(campaign, form):
        opens_at = form.opens_at.data.replace(tzinfo=LOCAL_TZ).astimezone(timezone.utc).replace(tzinfo=None)
        releases.create_release(
            campaign, name=form.name.data, quantity=form.quantity.data,
            per_person_limit=form.per_person_limit.data, opens_at=opens_at, actor=current_user, mode=form.mode.data,
            batches=form.batches.data or 1, batch_minutes=form.batch_minutes.data or 0,
        )

    return _act(campaign_id, action, "发放场次已创建", form=ReleaseForm(), form_name="release_form")


@bp.post("/releases/<int:release_id>/open")
@roles_required(Role.BUREAU_MAKER, Role.BUREAU_APPROVER)
def open_release(release_id: int):
    release = db.get_or_404(Release, release_id)
    # A big release only starts its background job (jobs/background.py); the page then shows its progress.
    return _act(release.campaign_id, lambda c, f: background.request_open(release_id, current_user),
                lambda run: "场次已开放：预算已预留，消费券已生成，市民可以领取" if run is None else
                f"已开始在后台开放场次（共 {run.total:,} 张券），进度见下方发放场次表")


@bp.post("/releases/<int:release_id>/draw")
@roles_required(Role.BUREAU_MAKER, Role.BUREAU_APPROVER)
def draw_lottery(release_id: int):
    release = db.get_or_404(Release, release_id)
    return _act(release.campaign_id, lambda c, f: background.request_draw(release_id, current_user),
                lambda run: "已开奖：中签者已获得消费券，种子与名单已公开，可在公示页核验" if run is None else
                f"报名已截止，已开始在后台开奖（共 {run.total:,} 条报名），进度见下方发放场次表")


@bp.get("/releases/<int:release_id>/job")
@roles_required(*OVERSIGHT)
def release_job(release_id: int):
    """The latest background job of a release, for polling: {"state", "done", "total", ...}. The same
    roles as the campaign page that shows it."""
    db.get_or_404(Release, release_id)
    run = background.runs_by_release([release_id]).get(release_id)
    if run is None:
        return jsonify(success=False, errors=[{"code": "not_found", "message": "该场次没有后台任务"}]), 404
    return jsonify(success=True, data={"release_id": release_id, **background.status(run)})


# Budget changes and funder statements ----------------------------------------------------------------


@bp.post("/campaigns/<int:campaign_id>/budget-changes")
@roles_required(Role.BUREAU_MAKER)
def request_budget_change(campaign_id: int):
    campaign = _campaign_or_404(campaign_id)

    def action(campaign, form):
        budget.request_change(
            campaign.id, kind=form.kind.data, funding_source_id=form.funding_source_id.data,
            amount_fen=form.amount.fen, reason=form.reason.data, actor=current_user,
            target_funding_source_id=form.target_funding_source_id.data or None,
        )

    return _act(campaign_id, action, "预算调整已提交，批准后生效",
                form=_budget_form(campaign, formdata=request.form), form_name="budget_form")


@bp.post("/budget-changes/<int:change_id>/<any(approve, reject):decision>")
@roles_required(Role.BUREAU_APPROVER)
def decide_budget_change(change_id: int, decision: str):
    change = db.get_or_404(BudgetChange, change_id)
    approving = decision == "approve"
    form = ActionForm() if approving else ReasonForm(prefix=f"bc{change_id}")
    return _act(change.campaign_id,
                lambda c, f: budget.decide_change(change_id, current_user, approve=approving,
                                                  note="" if approving else f.reason.data),
                "预算调整已生效" if approving else "预算调整已驳回", form=form)


@bp.get("/funding-sources/<int:source_id>/statement")
@roles_required(*OVERSIGHT)
def funder_statement(source_id: int):
    return render_template("campaigns/statement.html", statement=budget.funder_statement(source_id))


@bp.get("/approvals")
@roles_required(Role.BUREAU_APPROVER)
def approvals():
    pending = db.session.scalars(
        select(Campaign).where(Campaign.status == CampaignStatus.PENDING_APPROVAL.value).order_by(Campaign.id)
    ).all()
    changes = db.session.scalars(
        select(BudgetChange).where(BudgetChange.status == "pending").order_by(BudgetChange.id)
    ).all()
    grants = db.session.scalars(
        select(GrantApplication).where(GrantApplication.status == "reviewed").order_by(GrantApplication.id)
    ).all()
    plans = {c.id: plan_check.assess(c) for c in pending}
    return render_template("campaigns/approvals.html", campaigns=pending, plans=plans, budget_changes=changes,
                           grants=grants, merchants=onboarding.pending(), action_form=ActionForm())
