"""Report pages: budget execution as of a date, on screen and as an xlsx workbook."""
from __future__ import annotations

from datetime import date

from flask import Blueprint, Response, flash, render_template, request

from voucher.core.clock import local_today
from voucher.core.permissions import OVERSIGHT, roles_required
from voucher.reports import budget_xlsx
from voucher.reports.budget import COLUMNS, budget_execution

bp = Blueprint("reports", __name__, url_prefix="/reports")


def _as_of() -> tuple[date, bool]:
    text = request.args.get("date")
    if not text:
        return local_today(), True
    try:
        return date.fromisoformat(text), True
    except ValueError:
        return local_today(), False


@bp.get("/budget")
@roles_required(*OVERSIGHT)
def budget():
    as_of, ok = _as_of()
    if not ok:
        flash("日期格式应为 YYYY-MM-DD，已显示今天的数据", "error")
    return render_template("reports/budget.html", report=budget_execution(as_of), columns=COLUMNS,
                           sheets=budget_xlsx.SHEETS)


@bp.get("/budget.xlsx")
@roles_required(*OVERSIGHT)
def budget_workbook():
    as_of, ok = _as_of()
    if not ok:
        return render_template("error.html", status=422, message="日期格式应为 YYYY-MM-DD"), 422
    return Response(
        budget_xlsx.as_xlsx(budget_execution(as_of)),
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f"attachment; filename=budget-{as_of:%Y%m%d}.xlsx"},
    )
