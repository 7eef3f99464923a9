"""The policy overview, a measure's page, and recording progress towards its targets."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from voucher.campaigns import targets
from voucher.campaigns.forms import TargetProgressForm
from voucher.campaigns.models import Measure, MeasureTarget, TargetProgress
from voucher.campaigns.overview import policy_overview
from voucher.core.db import db
from voucher.core.errors import DomainError
from voucher.core.permissions import OVERSIGHT, Role, roles_required
from voucher.core.reference import DISTRICTS
from voucher.web import unit_of_work

bp = Blueprint("measures", __name__)


@bp.get("/measures")
@roles_required(*OVERSIGHT)
def overview():
    unit = request.args.get("unit") or None
    district = request.args.get("district") or None
    if district and district not in DISTRICTS:
        district = None
    data = policy_overview(unit=unit, district=district)
    return render_template("campaigns/overview.html", overview=data, unit=unit, district=district, districts=DISTRICTS)


def _measure_or_404(number: int) -> Measure:
    measure = db.session.scalar(select(Measure).where(Measure.number == number))
    if measure is None:
        abort(404)
    return measure


def _render_measure(measure: Measure, form: TargetProgressForm | None = None, status: int = 200):
    line = next(line for line in policy_overview().lines if line.measure.id == measure.id)
    progress = db.session.scalars(
        select(TargetProgress).join(MeasureTarget).where(MeasureTarget.measure_id == measure.id)
        .order_by(TargetProgress.id.desc())
    ).all()
    return render_template("campaigns/measure.html", measure=measure, line=line, progress=progress,
                           form=form or TargetProgressForm(formdata=None)), status


@bp.get("/measures/<int:number>")
@roles_required(*OVERSIGHT)
def measure(number: int):
    return _render_measure(_measure_or_404(number))


@bp.post("/targets/<int:target_id>/progress")
@roles_required(Role.BUREAU_MAKER)
def record_progress(target_id: int):
    target = db.session.get(MeasureTarget, target_id)
    if target is None:
        abort(404)
    form = TargetProgressForm()
    if not form.validate_on_submit():
        flash(next(iter(m for ms in form.errors.values() for m in ms), "输入有误"), "error")
        return _render_measure(target.measure, form, 422)
    try:
        with unit_of_work():
            assert form.quantity.data is not None  # validated: DataRequired
            targets.record_progress(
                target_id, quantity=form.quantity.data, description=form.description.data or "",
                evidence=form.evidence.data or "", district=form.district.data or None, actor=current_user,
            )
    except DomainError as error:
        flash(error.message, "error")
        return _render_measure(target.measure, form, error.status)
    flash("进展已记录", "success")
    return redirect(url_for("measures.measure", number=target.measure.number))
