from __future__ import annotations

from datetime import date

from flask import Blueprint, Response, flash, render_template, request
from sqlalchemy import select

from voucher.analytics import charts, leverage, leverage_xlsx
from voucher.analytics.leverage import LeverageFilter
from voucher.analytics.services import campaign_figures
from voucher.merchants.models import SIZE_CLASS_LABELS
from voucher.campaigns.models import Campaign, CampaignStatus
from voucher.core.db import db
from voucher.core.permissions import OVERSIGHT, roles_required

bp = Blueprint("analytics", __name__)


@bp.get("/dashboard")
@roles_required(*OVERSIGHT)
def dashboard():
    campaigns = db.session.scalars(
        select(Campaign).where(Campaign.status != CampaignStatus.DRAFT.value).order_by(Campaign.id)
    ).all()
    return render_template("analytics/dashboard.html", figures=campaign_figures(list(campaigns)))


def _leverage_filter() -> tuple[LeverageFilter, list[str]]:
    """The page's filters from the query string; a bad value is dropped with a message, not a 500."""
    problems: list[str] = []

    def day(name: str, label: str) -> date | None:
        text = (request.args.get(name) or "").strip()
        try:
            return date.fromisoformat(text) if text else None
        except ValueError:
            problems.append(f"{label}格式应为 YYYY-MM-DD")
            return None

    campaign_text = (request.args.get("campaign") or "").strip()
    campaign_id = int(campaign_text) if campaign_text.isdigit() and len(campaign_text) <= 9 else None
    if campaign_text and campaign_id is None:
        problems.append("活动编号应为正整数")
    return LeverageFilter(campaign_id, day("from", "开始日期"), day("until", "结束日期")), problems


@bp.get("/analytics/leverage")
@roles_required(*OVERSIGHT)
def leverage_page():
    selection, problems = _leverage_filter()
    for problem in problems:
        flash(problem, "error")
    dimension = request.args.get("by", "campaign")
    if dimension not in leverage.DIMENSIONS:
        dimension = "campaign"
    campaigns = db.session.scalars(
        select(Campaign).where(Campaign.status != CampaignStatus.DRAFT.value).order_by(Campaign.id)
    ).all()
    by_day = leverage.breakdown("day", selection)
    by_category = leverage.breakdown("category", selection)
    by_district = leverage.breakdown("district", selection)
    figures = {
        "over_time": charts.line([(day, r.leverage_on_paid) for day, r in by_day], "按日杠杆率（按支付）"),
        "by_category": charts.bars([(k, r.leverage_on_paid) for k, r in by_category], "按商户类别的杠杆率（按支付）"),
        "by_district": charts.bars([(k, r.leverage_on_paid) for k, r in by_district], "按区县的杠杆率（按支付）"),
        "floor": charts.floor_and_excess([(k, r.floor, r.excess) for k, r in by_category], "机制下限与超出部分（按类别）"),
    }
    return render_template(
        "analytics/leverage.html", f=leverage.headline(selection), selection=selection, campaigns=campaigns,
        dimension=dimension, dimensions=leverage.DIMENSIONS, size_labels=SIZE_CLASS_LABELS, charts=figures,
        rows=by_day if dimension == "day" else leverage.breakdown(dimension, selection),
    ), 422 if problems else 200


@bp.get("/analytics/leverage.xlsx")
@roles_required(*OVERSIGHT)
def leverage_workbook():
    selection, problems = _leverage_filter()
    if problems:
        return render_template("error.html", status=422, message="；".join(problems)), 422
    return Response(
        leverage_xlsx.as_xlsx(selection),
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": "attachment; filename=leverage.xlsx"},
    )
