"""Finance pages: build the day's batches, download the payout file, confirm what the bank paid."""
from __future__ import annotations

from datetime import date

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_login import current_user

from voucher.core.clock import local_today, utcnow
from voucher.core.errors import DomainError, InvalidInput
from voucher.core.permissions import Role, roles_required
from voucher.settlement import batches as settlement
from voucher.settlement import payout_file
from voucher.settlement.models import BatchStatus
from voucher.web import in_transaction, unit_of_work
from voucher.core.money import format_yuan

bp = Blueprint("settlement", __name__, url_prefix="/finance/settlement")

FINANCE = (Role.FINANCE, Role.ADMIN)
READERS = (Role.FINANCE, Role.ADMIN, Role.AUDITOR)


def _day(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput("日期格式应为 YYYY-MM-DD") from None


def _filters() -> tuple[date | None, str | None]:
    status = request.args.get("status") or None
    if status is not None and status not in {s.value for s in BatchStatus}:
        raise InvalidInput("未知的批次状态")
    return _day(request.args.get("date")), status


@bp.get("")
@roles_required(*READERS)
def index():
    try:
        day, status = _filters()
    except DomainError as error:
        flash(error.message, "error")
        day, status = None, None
    rows = settlement.batches(day, status)
    return render_template(
        "settlement/batches.html", batches=rows, day=day, status=status, statuses=list(BatchStatus),
        buildable=settlement.latest_buildable_day(), held=settlement.held_amounts(),
        total_fen=sum(b.amount_fen for b in rows),
    )


@bp.post("/build")
@roles_required(*FINANCE)
def build():
    try:
        day = _day(request.form.get("business_date")) or settlement.latest_buildable_day()
        result = in_transaction(lambda: settlement.build_batches(day, current_user))
    except DomainError as error:
        flash(error.message, "error")
        return redirect(url_for("settlement.index")), 303
    message = f"{day:%Y-%m-%d}：新建 {len(result.batches)} 个结算批次，合计 {format_yuan(result.total_fen)} 元"
    if result.held:
        message += f"；{len(result.held)} 家商户因风险核查暂缓结算"
    flash(message, "success")
    return redirect(url_for("settlement.index", date=day.isoformat()))


@bp.get("/payout.<fmt>")
@roles_required(*FINANCE)
def payout(fmt: str):
    """The payout file of the filtered batches that are not paid yet; exporting marks them exported."""
    if fmt not in ("csv", "xlsx"):
        return render_template("error.html", status=404, message="只提供 CSV 与 xlsx 两种格式"), 404
    try:
        day, _ = _filters()
    except DomainError as error:
        flash(error.message, "error")
        return redirect(url_for("settlement.index")), 303
    rows = [b for b in settlement.batches(day) if b.status_enum is not BatchStatus.PAID]
    body = payout_file.as_csv(rows) if fmt == "csv" else payout_file.as_xlsx(rows)
    with unit_of_work():
        settlement.mark_exported(rows)
    stamp = (day or local_today()).strftime("%Y%m%d")
    mimetype = "text/csv; charset=utf-8" if fmt == "csv" else (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    return Response(body, mimetype=mimetype,
                    headers={"Content-Disposition": f"attachment; filename=payout-{stamp}.{fmt}"})


@bp.post("/<int:batch_id>/paid")
@roles_required(*FINANCE)
def confirm_paid(batch_id: int):
    try:
        batch = in_transaction(lambda: settlement.confirm_paid(batch_id, current_user, now=utcnow()))
    except DomainError as error:
        flash(error.message, "error")
        return redirect(request.referrer or url_for("settlement.index")), 303
    flash(f"已确认批次 {batch.reference} 支付 {format_yuan(batch.amount_fen)} 元", "success")
    return redirect(request.referrer or url_for("settlement.index"))
