"""The scheduled jobs page: each job's schedule and last run, recent failures, and a run-now button."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user

from voucher.accounts.forms import ActionForm
from voucher.core.money import format_yuan
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
        action_form=ActionForm(), summary_text=summary_text,
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
        flash(f"「{job.label}」已运行完成：{summary_text(outcome.summary)}", "success")
    else:
        flash(f"「{job.label}」运行失败：{outcome.error}", "error")
    return redirect(url_for("jobs.index"), 303)


#: what a job's summary keys say (jobs/tasks.py); a key not named here shows as itself
SUMMARY_NAMES = {
    "opened": "开放场次", "failed": "未能开放", "expired": "过期券", "campaigns": "涉及活动", "batches": "结算批次",
    "total_fen": "金额", "held_merchants": "暂缓结算商户", "flags": "风险提示", "runs": "清理运行记录",
    "nonces": "清理签名随机数", "sealed": "封存审计记录", "last_entry_id": "最后封存记录", "day": "日期",
    "built_through": "汇总至", "rebuilt_from": "重算自", "facts": "汇总行", "merchant_days": "商户日",
    "panel_units": "因果面板单元", "built": "重建领券闸门", "corrected": "校正闸门余量", "dropped": "移除闸门",
    "unreachable": "Redis 不可达", "started": "转入后台开放", "vouchers": "消费券", "entries": "报名", "winners": "中签",
}


def _value_text(key: str, value: object) -> str:
    if value is None:
        return "—"
    if key.endswith("_fen") and isinstance(value, int):
        return f"{format_yuan(value)} 元"
    if isinstance(value, (list, tuple, dict)):
        return f"{len(value)} 个" if value else "无"
    return str(value)


def summary_text(summary: dict | None) -> str:
    """A run's summary as a person reads it: 开放场次 2 个，金额 660.00 元 (not opened=[3, 4] total_fen=66000)."""
    return "，".join(f"{SUMMARY_NAMES.get(key, key)} {_value_text(key, value)}"
                    for key, value in (summary or {}).items()) or "无变化"
