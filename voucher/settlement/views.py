"""Finance pages: build the day's batches, create and download numbered payout files, confirm payments
against the bank's statement."""
from __future__ import annotations

from datetime import date

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_login import current_user

from voucher.core.clock import utcnow
from voucher.core.errors import DomainError, InvalidInput
from voucher.core.money import format_yuan
from voucher.core.paging import page_number, page_of
from voucher.core.permissions import Role, roles_required
from voucher.reconciliation import payments
from voucher.settlement import batches as settlement
from voucher.settlement import payout_files
from voucher.settlement.models import BatchStatus
from voucher.web import back_to, in_transaction, refused

bp = Blueprint("settlement", __name__, url_prefix="/finance/settlement")

# Money moves only by finance officers' hands: the system administrator manages accounts and may read
# here, but neither builds, exports, confirms nor matches a payment (等保 separation of duties: an
# administrator who could also pay could create an account and pay it).
FINANCE = (Role.FINANCE,)
READERS = (Role.FINANCE, Role.ADMIN, Role.AUDITOR)
MIMETYPES = {"csv": "text/csv; charset=utf-8",
             "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


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


#: where a form on the finance pages sends the browser back to (web.back_to)
PAGES = "/finance/"


@bp.get("")
@roles_required(*READERS)
def index():
    try:
        day, status = _filters()
    except DomainError as error:
        flash(error.message, "error")
        day, status = None, None
    page = page_of(settlement.batch_query(day, status), page_number(request.args.get("page")))
    exported = payments.evidence_for(settlement.exported_ids())
    args = {k: v for k, v in (("date", day.isoformat() if day else None), ("status", status)) if v}
    return render_template(
        "settlement/batches.html", batches=page.items, page=page, args=args, day=day, status=status,
        statuses=list(BatchStatus), buildable=settlement.latest_buildable_day(), held=settlement.held_amounts(),
        total_fen=settlement.batch_total(day, status), preview=payout_files.preview(day),
        # a paid batch keeps its bank line's serial on the page, as the merchant's statement shows it
        evidence={**payments.evidence_for([b.id for b in page.items if b.paid_evidence == "bank_line"]),
                  **{i: e for i, e in exported.items() if i in {b.id for b in page.items}}},
        matched_count=sum(1 for e in exported.values() if e.matched), files=payout_files.recent(),
    )


@bp.post("/build")
@roles_required(*FINANCE)
def build():
    try:
        day = _day(request.form.get("business_date")) or settlement.latest_buildable_day()
        result = in_transaction(lambda: settlement.build_batches(day, current_user))
    except DomainError as error:
        return refused(error, "settlement.index")
    message = f"{day:%Y-%m-%d}：新建 {len(result.batches)} 个结算批次，合计 {format_yuan(result.total_fen)} 元"
    if result.held:
        message += f"；{len(result.held)} 家商户因风险核查暂缓结算"
    flash(message, "success")
    return redirect(url_for("settlement.index", date=day.isoformat()))


@bp.post("/payout-files")
@roles_required(*FINANCE)
def create_payout_file():
    """A new numbered payout file of the pending batches; the page then offers its download."""
    try:
        day = _day(request.form.get("business_date"))
        file = in_transaction(lambda: payout_files.create(current_user, day))
    except DomainError as error:
        return refused(error, "settlement.index", within=PAGES)
    message = f"已生成付款文件 {file.number}：{file.batch_count} 个批次，合计 {format_yuan(file.total_fen)} 元"
    if file.held_out:
        message += f"；{len(file.held_out)} 个批次因商户结算信息不完整未纳入"
    flash(message, "success")
    return redirect(url_for("settlement.payout_file", file_id=file.id), 303)


@bp.get("/payout-files/<int:file_id>")
@roles_required(*READERS)
def payout_file(file_id: int):
    file = payout_files.get(file_id)
    ids = [item.batch_id for item in file.items]
    return render_template("settlement/payout_file.html", file=file, evidence=payments.evidence_for(ids))


@bp.get("/payout-files/<int:file_id>.<fmt>")
@roles_required(*READERS)
def download(file_id: int, fmt: str):
    """The file as it was created: the same bytes every time, and nothing changes."""
    if fmt not in MIMETYPES:
        return render_template("error.html", status=404, message="只提供 CSV 与 xlsx 两种格式"), 404
    file = payout_files.get(file_id)
    body = file.csv_bytes if fmt == "csv" else file.xlsx_bytes
    return Response(body, mimetype=MIMETYPES[fmt],
                    headers={"Content-Disposition": f"attachment; filename={file.number}.{fmt}"})


@bp.post("/payout-files/reissue")
@roles_required(*FINANCE)
def reissue():
    try:
        ids = [int(v) for v in request.form.getlist("batch_id")]
    except ValueError:
        return refused(InvalidInput("所选批次无效"), "settlement.index", within=PAGES)
    try:
        file = in_transaction(lambda: payout_files.reissue(
            ids, request.form.get("reason"), current_user, payments.bank_claimed(ids)))
    except DomainError as error:
        return refused(error, "settlement.index", within=PAGES)
    flash(f"已重新导出 {file.batch_count} 个批次到付款文件 {file.number}（原文件中的这些批次已作废）", "success")
    return redirect(url_for("settlement.payout_file", file_id=file.id), 303)


@bp.post("/<int:batch_id>/paid")
@roles_required(*FINANCE)
def confirm_paid(batch_id: int):
    try:
        batch = in_transaction(lambda: payments.confirm_paid(batch_id, current_user, now=utcnow()))
    except DomainError as error:
        return refused(error, "settlement.index", within=PAGES)
    flash(f"已确认批次 {batch.reference} 支付 {format_yuan(batch.amount_fen)} 元", "success")
    return redirect(back_to("settlement.index", within=PAGES), 303)


@bp.post("/<int:batch_id>/override")
@roles_required(*FINANCE)
def request_override(batch_id: int):
    try:
        batch = in_transaction(lambda: payments.request_override(batch_id, request.form.get("reason"),
                                                                 current_user))
    except DomainError as error:
        return refused(error, "settlement.index", within=PAGES)
    flash(f"已申请批次 {batch.reference} 例外确认，待另一位财务人员复核", "success")
    return redirect(back_to("settlement.index", within=PAGES), 303)


@bp.post("/<int:batch_id>/override/withdraw")
@roles_required(*FINANCE)
def withdraw_override(batch_id: int):
    try:
        batch = in_transaction(lambda: payments.withdraw_override(batch_id, current_user))
    except DomainError as error:
        return refused(error, "settlement.index", within=PAGES)
    flash(f"已撤回批次 {batch.reference} 的例外确认申请", "success")
    return redirect(back_to("settlement.index", within=PAGES), 303)


@bp.post("/confirm-matched")
@roles_required(*FINANCE)
def confirm_matched():
    try:
        result = in_transaction(lambda: payments.confirm_all_matched(current_user, now=utcnow()))
    except DomainError as error:
        return refused(error, "settlement.index", within=PAGES)
    flash(f"已确认 {len(result.confirmed)} 个批次支付，合计 {format_yuan(result.total_fen)} 元", "success")
    return redirect(back_to("settlement.index", within=PAGES), 303)
