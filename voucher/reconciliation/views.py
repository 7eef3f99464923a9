"""Finance pages: import a bank statement, see what matched, resolve what did not, set column mappings."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response as BaseResponse

from voucher.core.errors import DomainError
from voucher.core.forms import parse_id
from voucher.core.money import format_yuan
from voucher.core.permissions import Role, roles_required
from voucher.reconciliation import mapping as mappings
from voucher.reconciliation import payments
from voucher.reconciliation import services as reconciliation
from voucher.reconciliation.errors import MalformedStatement
from voucher.reconciliation.models import MatchStatus
from voucher.web import in_transaction, refused, unit_of_work

bp = Blueprint("reconciliation", __name__, url_prefix="/finance/reconciliation")

# Money moves only by finance officers' hands: the system administrator manages accounts and may read
# here, but neither builds, exports, confirms nor matches a payment (等保 separation of duties: an
# administrator who could also pay could create an account and pay it).
FINANCE = (Role.FINANCE,)
READERS = (Role.FINANCE, Role.ADMIN, Role.AUDITOR)


def _index(problems: list[str] | None = None, file_name: str | None = None, status: int = 200):
    return render_template(
        "reconciliation/index.html", summaries=reconciliation.statements(), mapping_names=mappings.names(),
        preset_names=list(mappings.PRESETS), default_name=mappings.DEFAULT_NAME,
        waiting=len([1 for _, resolution in reconciliation.unmatched_batches() if resolution is None]),
        problems=problems, problem_file=file_name, statuses=list(MatchStatus),
    ), status


@bp.get("")
@roles_required(*READERS)
def index():
    return _index()


@bp.post("/import")
@roles_required(*FINANCE)
def import_statement():
    upload = request.files.get("statement")
    if upload is None or not upload.filename:
        flash("请选择要导入的对账单文件（CSV 或 xlsx）", "error")
        return redirect(url_for("reconciliation.index")), 303
    try:
        with unit_of_work():
            result = reconciliation.import_statement(upload.read(), upload.filename, request.form.get("mapping"),
                                                     current_user)
    except MalformedStatement as error:
        return _index(error.problems, upload.filename, 422)
    except DomainError as error:
        return refused(error, "reconciliation.index")
    counts = result.counts
    message = (f"已导入对账单 #{result.statement.id}：{result.statement.line_count} 条流水，"
               f"已匹配 {counts['matched']}，金额不符 {counts['amount_mismatch']}，"
               f"银行流水未匹配 {counts['unmatched_line']}")
    if result.non_payout:
        message += f"（其中 {result.non_payout} 条收入、结息等非付款流水，已注明原因）"
    if result.skipped:
        message += f"；跳过 {result.skipped} 条此前已导入的流水"
    if result.skipped_row_count:
        message += f"；未导入 {result.skipped_row_count} 行合计、页脚、空行等非流水行（详见对账单页）"
    if result.mapping_name != (result.asked_mapping or mappings.DEFAULT_NAME):
        message += f"；文件不符合「{result.asked_mapping}」模板，已按「{result.mapping_name}」预设映射读取"
    flash(message, "success")
    return redirect(url_for("reconciliation.statement", statement_id=result.statement.id)), 303


@bp.get("/<int:statement_id>")
@roles_required(*READERS)
def statement(statement_id: int):
    return render_template("reconciliation/statement.html", s=reconciliation.sections(statement_id))


def _page(statement_id: str | int | None) -> tuple[str, dict[str, Any]]:
    """url_for's endpoint and values for the statement page a form was posted from, else the list."""
    ident = parse_id(str(statement_id)) if statement_id is not None else None
    return ("reconciliation.statement", {"statement_id": ident}) if ident is not None else ("reconciliation.index", {})


def _back(statement_id: str | int | None) -> BaseResponse:
    endpoint, values = _page(statement_id)
    return redirect(url_for(endpoint, **values), 303)


@bp.post("/lines/<int:line_id>/resolve")
@roles_required(*FINANCE)
def resolve_line(line_id: int):
    try:
        with unit_of_work():
            line = reconciliation.resolve_line(line_id, request.form.get("reason"), current_user)
    except DomainError as error:
        endpoint, values = _page(request.form.get("statement_id"))
        return refused(error, endpoint, **values)
    flash(f"流水 {line.serial} 已处理", "success")
    return _back(line.statement_id)


@bp.post("/batches/<int:batch_id>/resolve")
@roles_required(*FINANCE)
def resolve_batch(batch_id: int):
    try:
        with unit_of_work():
            resolution = reconciliation.resolve_batch(batch_id, request.form.get("reason"), current_user)
            reference = resolution.batch.reference
    except DomainError as error:
        endpoint, values = _page(request.form.get("statement_id"))
        return refused(error, endpoint, **values)
    flash(f"批次 {reference} 已处理", "success")
    return _back(request.form.get("statement_id"))


@bp.post("/lines/<int:line_id>/confirm-paid")
@roles_required(*FINANCE)
def confirm_paid(line_id: int):
    try:
        batch = in_transaction(lambda: payments.confirm_line_paid(line_id, current_user))
    except DomainError as error:
        endpoint, values = _page(request.form.get("statement_id"))
        return refused(error, endpoint, **values)
    flash(f"已确认批次 {batch.reference} 支付 {format_yuan(batch.amount_fen)} 元", "success")
    return _back(request.form.get("statement_id"))


@bp.post("/<int:statement_id>/confirm-matched")
@roles_required(*FINANCE)
def confirm_matched(statement_id: int):
    """Confirm every batch this statement's matched lines pay, in one step."""
    try:
        result = in_transaction(lambda: payments.confirm_all_matched(current_user, statement_id))
    except DomainError as error:
        endpoint, values = _page(statement_id)
        return refused(error, endpoint, **values)
    flash(f"已确认 {len(result.confirmed)} 个批次支付，合计 {format_yuan(result.total_fen)} 元", "success")
    return _back(statement_id)


@bp.get("/template.<fmt>")
@roles_required(*READERS)
def template(fmt: str):
    if fmt == "csv":
        body, mimetype = mappings.template_csv(), "text/csv; charset=utf-8"
    elif fmt == "xlsx":
        body, mimetype = mappings.template_xlsx(), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    else:
        return render_template("error.html", status=404, message="只提供 CSV 与 xlsx 两种格式"), 404
    return Response(body, mimetype=mimetype,
                    headers={"Content-Disposition": f"attachment; filename=statement-template.{fmt}"})


def _mappings_page(form: dict[str, str] | None = None, status: int = 200):
    return render_template(
        "reconciliation/mappings.html", fields=mappings.FIELDS, default=mappings.DEFAULT_MAPPING,
        default_name=mappings.DEFAULT_NAME, saved=mappings.saved(), form=form or {},
        presets=mappings.presets(), amount_signs=mappings.AMOUNT_SIGNS,
    ), status


@bp.get("/mappings")
@roles_required(*READERS)
def mapping_list():
    return _mappings_page()


@bp.post("/mappings")
@roles_required(*FINANCE)
def save_mapping():
    name = request.form.get("name", "")
    headers = {f.key: request.form.get(f.key, "") for f in mappings.FIELDS}
    amount_sign = request.form.get("amount_sign") or None
    try:
        with unit_of_work():
            row = mappings.save(name, headers, current_user, amount_sign)
            saved_name = row.name
    except DomainError as error:
        flash(error.message, "error")
        return _mappings_page({"name": name, "amount_sign": amount_sign or "", **headers}, 422)
    flash(f"列映射「{saved_name}」已保存", "success")
    return redirect(url_for("reconciliation.mapping_list")), 303
