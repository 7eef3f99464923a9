"""The scheduled jobs page: each job's schedule and last run, recent failures, and a run-now button."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user

from voucher.accounts.forms import ActionForm
from voucher.core.permissions import Role, roles_required
from voucher.jobs import registry, runner

bp = Blueprint("jobs", __name__)

_ROLES = (Role.ADMIN, Role.FINANCE)


@bp.get("/admin/jobs")
@roles_required(*_ROLES)
def index():
    ticked = runner.last_tick()
    return render_template(
        "jobs/list.html", jobs=registry.jobs(), latest=runner.latest_runs(), failures=runner.recent_failures(),
        last_tick=ticked, clock_running=runner.clock_running(ticked), max_attempts=runner.MAX_ATTEMPTS,
        action_form=ActionForm(),
    )


@bp.post("/admin/jobs/<name>/run")
@roles_required(*_ROLES)
def run(name: str):
    job = registry.get(name)
    if job is None:
        abort(404)
    if not ActionForm().validate_on_submit():
        flash("页面已过期，请刷新后重试", "error")
        return redirect(url_for("jobs.index")), 303
    # run_now commits its own units of work: the claim, then the job's work with its result.
    outcome = runner.run_now(job.name, actor=current_user)
    if outcome.ok:
        flash(f"「{job.label}」已运行完成：{_summary_text(outcome.summary)}", "success")
    else:
        flash(f"「{job.label}」运行失败：{outcome.error}", "error")
    return redirect(url_for("jobs.index"), 303)


def _summary_text(summary: dict | None) -> str:
    return "，".join(f"{key}={value}" for key, value in (summary or {}).items()) or "无变化"
