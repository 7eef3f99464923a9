"""Report pages: budget execution as of a date (on screen and as an xlsx workbook), voucher statistics, and
the audit log (a page at a time, exported whole)."""
from __future__ import annotations

from datetime import date

from flask import Blueprint, Response, flash, render_template, request

from voucher.core.clock import local_today
from voucher.core.db import report_reads
from voucher.core.errors import DomainError
from voucher.core.paging import page_number
from voucher.core.permissions import OVERSIGHT, Role, roles_required
from voucher.reports import audit_log, budget_xlsx
from voucher.reports.budget import COLUMNS, budget_execution
from voucher.reports.vouchers import voucher_statistics

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
    with report_reads():  # on the reports' standby when there is one
        report = budget_execution(as_of)
    return render_template("reports/budget.html", report=report, columns=COLUMNS,
                           sheets=budget_xlsx.SHEETS)


@bp.get("/budget.xlsx")
@roles_required(*OVERSIGHT)
def budget_workbook():
    as_of, ok = _as_of()
    if not ok:
        return render_template("error.html", status=422, message="日期格式应为 YYYY-MM-DD"), 422
    with report_reads():
        report = budget_execution(as_of)
    return Response(
        budget_xlsx.as_xlsx(report),
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f"attachment; filename=budget-{as_of:%Y%m%d}.xlsx"},
    )


@bp.get("/vouchers")
@roles_required(*OVERSIGHT)
def vouchers():
    with report_reads():  # on the reports' standby when there is one
        releases = voucher_statistics()
    return render_template("reports/vouchers.html", releases=releases)


#: the audit log's readers; its exports are the same records, so the same people
AUDITORS = (Role.AUDITOR, Role.ADMIN, Role.FINANCE)


@bp.get("/audit")
@roles_required(*AUDITORS)
def audit():
    try:
        found_filter = audit_log.AuditFilter.parse(request.args)
        status = 200
    except DomainError as error:
        flash(error.message, "error")
        found_filter, status = audit_log.AuditFilter(), 422
    # on the reports' standby when there is one; rendered inside, as the page's records belong to its session
    with report_reads():
        return render_template(
            "reports/audit.html", found=audit_log.page(found_filter, page_number(request.args.get("page"))),
            f=found_filter, query=found_filter.as_query(), object_types=audit_log.object_types(),
            export_limit=audit_log.EXPORT_LIMIT,
        ), status


@bp.get("/audit.<fmt>")
@roles_required(*AUDITORS)
def audit_export(fmt: str):
    if fmt not in ("csv", "xlsx"):
        return render_template("error.html", status=404, message="只提供 CSV 与 xlsx 两种格式"), 404
    try:
        found_filter = audit_log.AuditFilter.parse(request.args)
        with report_reads():  # the count and the records from one snapshot, on the standby when there is one
            body = audit_log.as_csv(found_filter) if fmt == "csv" else audit_log.as_xlsx(found_filter)
    except DomainError as error:  # a bad filter, or more records than an export holds
        return render_template("error.html", status=error.status, message=error.message), error.status
    mimetype = "text/csv; charset=utf-8" if fmt == "csv" else (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    return Response(body, mimetype=mimetype,
                    headers={"Content-Disposition": f"attachment; filename=audit-{local_today():%Y%m%d}.{fmt}"})
