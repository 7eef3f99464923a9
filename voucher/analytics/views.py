from __future__ import annotations

from datetime import date

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import select

from voucher.analytics import baselines, benefit, causal, leverage, leverage_xlsx, panel, rollup
from voucher.analytics.leverage import LeverageFilter
from voucher.analytics.services import dashboard as dashboard_figures
from voucher.campaigns.models import Campaign, CampaignStatus
from voucher.core import charts, money
from voucher.core.db import db, report_reads
from voucher.core.errors import InvalidInput
from voucher.core.forms import parse_day, parse_id
from voucher.core.permissions import OVERSIGHT, Role, roles_required
from voucher.core.reference import DISTRICTS
from voucher.merchants.models import SIZE_CLASS_LABELS
from voucher.web import unit_of_work

bp = Blueprint("analytics", __name__)


@bp.get("/dashboard")
@roles_required(*OVERSIGHT)
def dashboard():
    """The city's totals, then the campaigns in a table: `sort` (a column of the whitelist, "-" before it
    for descending; anything else is the default order) and `page`."""
    return render_template("analytics/dashboard.html",
                           d=dashboard_figures(request.args.get("sort"), parse_id(request.args.get("page"))))


def _leverage_filter() -> tuple[LeverageFilter, list[str]]:
    """The page's filters from the query string; a bad value is dropped with a message, not a 500."""
    problems: list[str] = []

    def day(name: str, label: str) -> date | None:
        try:
            return parse_day(request.args.get(name, ""), label)
        except InvalidInput as error:
            problems.append(error.message)
            return None

    campaign_text = (request.args.get("campaign") or "").strip()
    campaign_id = parse_id(campaign_text)
    if campaign_text and campaign_id is None:
        problems.append("活动编号应为正整数")
    selection = LeverageFilter(campaign_id, day("from", "开始日期"), day("until", "结束日期"))
    if selection.date_from and selection.date_until and selection.date_from > selection.date_until:
        problems.append("开始日期不能晚于结束日期")
        selection = LeverageFilter(campaign_id)
    return selection, problems


#: a bookmark from before the model and the UI used one word for 场次
OLD_DIMENSION_NAMES = {"round": "release"}


@bp.get("/analytics/leverage")
@roles_required(*OVERSIGHT)
def leverage_page():
    selection, problems = _leverage_filter()
    for problem in problems:
        flash(problem, "error")
    dimension = request.args.get("by", "campaign")
    dimension = OLD_DIMENSION_NAMES.get(dimension, dimension)
    if dimension not in leverage.DIMENSIONS:
        dimension = "campaign"
    campaigns = db.session.scalars(
        select(Campaign).where(Campaign.status != CampaignStatus.DRAFT.value).order_by(Campaign.id)
    ).all()
    # the figures' reads on the reports' standby when there is one (docs/operations.md, "A read replica for reports")
    with report_reads():
        by_day = leverage.breakdown("day", selection)
        by_category = leverage.breakdown("category", selection)
        by_district = leverage.breakdown("district", selection)
        headline = leverage.headline(selection)
        rows = by_day if dimension == "day" else leverage.breakdown(dimension, selection)
        planted, rolled_through = leverage.planted_truth(), rollup.built_through()
        causal_estimate = panel.estimate(selection.campaign_id, selection.date_from, selection.date_until)
    figures = {
        # two to a row in .chart-grid: drawn at that box's width, so their text is read at its size
        "over_time": charts.line([(day, r.leverage_on_paid) for day, r in by_day], "按日杠杆率（按支付）",
                                 unit="倍", width=charts.HALF),
        "by_category": charts.bars([(k, r.leverage_on_paid) for k, r in by_category], "按商户类别的杠杆率（按支付）",
                                   unit="倍", width=charts.HALF),
        "by_district": charts.bars([(k, r.leverage_on_paid) for k, r in by_district], "按区县的杠杆率（按支付）",
                                   unit="倍", width=charts.HALF),
        "floor": charts.floor_and_excess([(k, r.floor, r.excess) for k, r in by_category], "机制下限与超出部分（按类别）",
                                         unit="倍", width=charts.HALF),
    }
    return render_template(
        "analytics/leverage.html", f=headline, selection=selection, campaigns=campaigns,
        dimension=dimension, dimensions=leverage.DIMENSIONS, size_labels=SIZE_CLASS_LABELS, charts=figures,
        rows=rows,
        causal=causal_estimate, causal_charts=_causal_charts(causal_estimate.estimate),
        planted=planted, rolled_through=rolled_through, pre_days=panel.PRE_DAYS,
        min_units=(causal.MIN_TREATED, causal.MIN_COMPARABLE),
    ), 422 if problems else 200


def _causal_charts(e: causal.CausalEstimate) -> dict[str, Markup]:
    def rows(items: list[causal.Row]) -> list[tuple[str, float | None, float | None, float | None]]:
        return [(r.label, r.value, r.low, r.high) for r in items]

    return {"weeks": charts.estimates(rows(e.weeks), "各周多带来的销售额（每元补贴）"),
            "sizes": charts.estimates(rows(e.sizes), "按商户规模的增量杠杆率"),
            "campaigns": charts.estimates(rows(e.by_campaign), "按活动的增量杠杆率")}


@bp.get("/analytics/leverage.xlsx")
@roles_required(*OVERSIGHT)
def leverage_workbook():
    selection, problems = _leverage_filter()
    if problems:
        return render_template("error.html", status=422, message="；".join(problems)), 422
    with report_reads():
        body = leverage_xlsx.as_xlsx(selection)
    return Response(
        body,
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": "attachment; filename=leverage.xlsx"},
    )


#: who brings in merchants' sales figures (from the merchants or the tax bureau)
BASELINE_IMPORTERS = (Role.BUREAU_MAKER, Role.FINANCE, Role.ADMIN)


def _baselines_page(problems: list[str] | None = None, file_name: str | None = None, status: int = 200):
    return render_template("analytics/baselines.html", coverage=baselines.coverage(), labels=baselines.SOURCE_LABELS,
                           problems=problems, problem_file=file_name,
                           can_import=current_user.role in {r.value for r in BASELINE_IMPORTERS}), status


@bp.get("/analytics/baselines")
@roles_required(*OVERSIGHT)
def baselines_page():
    return _baselines_page()


@bp.post("/analytics/baselines")
@roles_required(*BASELINE_IMPORTERS)
def import_baselines():
    upload = request.files.get("baselines")
    if upload is None or not upload.filename:
        return _baselines_page(["请选择要导入的销售基线文件（CSV 或 xlsx）"], None, 422)
    try:
        with unit_of_work():
            result = baselines.import_baselines(upload.read(), upload.filename, current_user)
    except baselines.BadBaselineFile as error:
        return _baselines_page(error.problems, upload.filename, 422)
    flash(f"已导入 {result.rows:,} 行销售基线（{result.merchants:,} 家商户，{result.first_day} 至 {result.last_day}），"
          f"其中替换已有 {result.replaced:,} 行；因果面板已重新生成（{result.panel_units:,} 个商户单元）", "success")
    return redirect(url_for("analytics.baselines_page")), 303


@bp.get("/analytics/baselines/template.csv")
@roles_required(*OVERSIGHT)
def baselines_template():
    return Response(("\ufeff" + baselines.TEMPLATE_CSV).encode("utf-8"), mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": "attachment; filename=sales-baseline-template.csv"})


#: who records districts' resident populations (the denominator of the figures per resident)
POPULATION_EDITORS = (Role.BUREAU_MAKER, Role.ADMIN)


def _benefit_page(selection: LeverageFilter, problems: list[str], status: int = 200):
    figures = benefit.benefit(selection)

    def marks(concentration: benefit.Concentration) -> list[tuple[float, str]]:
        share, count, amount = concentration.top[-1]
        held = concentration.share(amount)
        return [] if held is None else [(1 - share, f"最大的 {share:.0%} 商户（{count:,} 家）占 {held:.1%}")]

    curves = {
        "subsidy": charts.lorenz(figures.subsidy.curve, "补贴的集中度曲线", marks(figures.subsidy)),
        "driven": charts.lorenz(figures.driven.curve, "带动消费的集中度曲线", marks(figures.driven)),
    }
    campaigns = db.session.scalars(
        select(Campaign).where(Campaign.status != CampaignStatus.DRAFT.value).order_by(Campaign.id)
    ).all()
    return render_template(
        "analytics/benefit.html", b=figures, selection=selection, campaigns=campaigns, charts=curves,
        problems=problems, populations=benefit.populations(), districts=DISTRICTS,
        yuan_per=money.yuan_per, can_edit_population=current_user.role in {r.value for r in POPULATION_EDITORS},
    ), status


@bp.get("/analytics/benefit")
@roles_required(*OVERSIGHT)
def benefit_page():
    """受益结构: how the subsidy and the driven consumption spread across merchants, sizes and districts."""
    selection, problems = _leverage_filter()
    for problem in problems:
        flash(problem, "error")
    return _benefit_page(selection, [], 422 if problems else 200)


@bp.post("/analytics/benefit/populations")
@roles_required(*POPULATION_EDITORS)
def set_population():
    form = request.form
    try:
        data = benefit.read_population(form.get("district"), form.get("year"), form.get("residents"),
                                       form.get("source"))
    except InvalidInput as error:
        return _benefit_page(LeverageFilter(), [error.message], 422)
    with unit_of_work():
        benefit.set_population(data, current_user)
    flash(f"已保存{data.district} {data.year} 年常住人口 {data.residents:,} 人", "success")
    return redirect(url_for("analytics.benefit_page")), 303
