"""ICDI-EC pages: ranking, city profile, indicator distribution, sensitivity, what-if, data and feed,
catalogue versions; xlsx export of everything. Every page states the settings and catalogue version it
used; the settings come from the query string, defaulting to the report's method."""
from __future__ import annotations

from typing import Any

import numpy as np
from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from voucher.campaigns.models import Campaign
from voucher.core import charts
from voucher.core.clock import local_today
from voucher.core.db import db
from voucher.core.errors import DomainError
from voucher.core.forms import parse_id
from voucher.core.permissions import OVERSIGHT, Role, roles_required
from voucher.info_consumption_index import analysis, catalogue, feed, importing, method, services, xlsx
from voucher.info_consumption_index.models import DEMO_FILE_NAME, CatalogueVersion, IndexImportBatch
from voucher.web import refused, unit_of_work

bp = Blueprint("info_consumption_index", __name__, url_prefix="/index")

EDITORS = (Role.BUREAU_MAKER, Role.ADMIN)  # import data, publish the feed, tag campaigns, record computations
CATALOGUE_CHECKERS = (Role.BUREAU_APPROVER, Role.ADMIN)
MAX_DRAWS = 5000
#: the y-axis of a chart of composite or level scores (method.py: every score is on 0-1)
INDEX_UNIT = "指数（0–1）"


def _settings() -> tuple[method.Settings, str | None]:
    args = request.args
    try:
        base = args.get("base_year", "").strip()
        settings = method.Settings(
            normalisation=args.get("normalisation", "threshold"), aggregation=args.get("aggregation", "arithmetic"),
            std=args.get("std", "sample"), cap=args.get("cap", "1") != "0",
            base_year=parse_id(base), missing=args.get("missing", "refuse"),
            outliers=args.get("outliers", "none"),
        )
        return settings, None
    except method.MethodError as error:
        return method.Settings(), f"{error}；已改用报告方法的默认设置"


def _query(settings: method.Settings) -> dict:
    """The settings as query arguments, for links that keep them."""
    q: dict[str, Any] = {"normalisation": settings.normalisation, "aggregation": settings.aggregation, "std": settings.std,
         "cap": "1" if settings.cap else "0", "missing": settings.missing, "outliers": settings.outliers}
    if settings.base_year:
        q["base_year"] = settings.base_year
    return q


def _is_demo() -> bool:
    batch = select(IndexImportBatch.id).where(IndexImportBatch.file_name == DEMO_FILE_NAME).limit(1)
    return db.session.scalar(batch) is not None


def _context(settings: method.Settings, settings_error: str | None):
    """(data, result, error message, year) for the active catalogue and the year asked for. Result is None
    when nothing can be computed; when only the chosen year cannot (a value missing in it), the error says
    so and the result stays, so the page still offers the other years."""
    if settings_error:
        flash(settings_error, "error")
    try:
        data = services.load()
    except DomainError as error:
        return None, None, error.message, None
    if not data.panel.years:
        return data, None, "尚无指标数据：请在“数据与推送”页导入城市指标数值（或载入示意数据：flask seed demo）", None
    try:
        result = services.compute(data, settings)
    except method.MethodError as error:
        return data, None, str(error), None
    year = _year(result)
    try:
        result.year_index(year)
    except method.MissingValues as error:
        return data, result, str(error), year
    return data, result, None, year


def _year(result: method.Result) -> int:
    asked = parse_id(request.args.get("year", ""))
    return asked if asked is not None and asked in result.years else result.years[-1]


def _known(values) -> list[float | None]:
    """Floats for a chart, None where there is no figure (a year left out for a missing value)."""
    return [None if np.isnan(v) else float(v) for v in values]


def _common(settings, data, result, error, **extra):
    return dict(settings=settings, data=data, result=result, error=error, q=_query(settings),
                home=services.home_city(), demo=_is_demo(), options=OPTIONS, first_levels=method.FIRST_LEVELS,
                first_labels=method.FIRST_LEVEL_LABELS, **extra)


OPTIONS = {"normalisation": method.NORMALISATIONS, "aggregation": method.AGGREGATIONS, "std": method.STDS,
           "missing": method.MISSING, "outliers": method.OUTLIERS}


@bp.get("")
@roles_required(*OVERSIGHT)
def ranking():
    settings, settings_error = _settings()
    data, result, error, year = _context(settings, settings_error)
    trend = None
    if result is not None:
        trend = charts.lines([str(y) for y in result.years],
                             [("平均综合指数", _known(result.average))]
                             + [(method.FIRST_LEVEL_LABELS[f][-2:] + "平均", _known(result.first_average[:, n]))
                                for n, f in enumerate(method.FIRST_LEVELS)],
                             "各年城市平均指数", unit=INDEX_UNIT)
    return render_template("info_consumption_index/ranking.html", **_common(
        settings, data, result, error, year=year, rows=result.table(year) if result and not error else [],
        trend=trend))


@bp.get("/cities/<city>")
@roles_required(*OVERSIGHT)
def city_profile(city: str):
    settings, settings_error = _settings()
    data, result, error, year = _context(settings, settings_error)
    if result is not None and city not in result.cities:
        abort(404)
    context: dict[str, Any] = dict(city=city, year=year)
    if result is not None and not error:
        assert year is not None  # _year() gives a year whenever there is a result
        t, c = result.year_index(year), result.cities.index(city)
        if not result.present[t, c]:
            error = f"{city} 没有 {year} 年的数据"
        else:
            peers = result.present[t].copy()
            peers[c] = False
            seconds = [s for _, s in result.catalogue.seconds]
            peer_second = np.median(result.second[t, peers], axis=0) if peers.any() else np.zeros(len(seconds))
            peer_first = np.median(result.first[t, peers], axis=0) if peers.any() else np.zeros(3)
            context.update(
                t=t, c=c,
                radar_second=charts.radar(seconds, [(city, [float(v) for v in result.second[t, c]]),
                                                    ("其他城市中位数", [float(v) for v in peer_second])],
                                          f"{city} {year} 年二级指标得分"),
                radar_first=charts.radar([method.FIRST_LEVEL_LABELS[f] for f in method.FIRST_LEVELS],
                                         [(city, [float(v) for v in result.first[t, c]]),
                                          ("其他城市中位数", [float(v) for v in peer_first])],
                                         f"{city} {year} 年一级指标得分"),
                trend=charts.lines(
                    [str(y) for y in result.years],
                    [("综合指数", [None if not result.present[n, c] else float(result.composite[n, c])
                                   for n in range(len(result.years))])]
                    + [(method.FIRST_LEVEL_LABELS[f][-2:], [None if not result.present[n, c] else float(result.first[n, c, i])
                                                          for n in range(len(result.years))])
                       for i, f in enumerate(method.FIRST_LEVELS)]
                    + [("城市平均", _known(result.average))],
                    f"{city} 历年指数", unit=INDEX_UNIT),
                ranks=[(y, int(result.rank[n, c]) if result.present[n, c] else None, int(result.present[n].sum()))
                       for n, y in enumerate(result.years)],
                boards=analysis.short_boards(result, data.panel, city, year, limit=None),
                peer_median_second=peer_second,
            )
    return render_template("info_consumption_index/city.html", **_common(settings, data, result, error, **context))


@bp.get("/indicators")
@roles_required(*OVERSIGHT)
def indicators():
    settings, settings_error = _settings()
    data, result, error, year = _context(settings, settings_error)
    context = dict(year=year)
    if result is not None and not error:
        codes = result.catalogue.codes
        code = request.args.get("code", codes[0]).upper()
        if code not in codes:
            code = codes[0]
        k, t = codes.index(code), result.year_index(year)
        here = result.present[t]
        items = sorted(((city, float(result.values[t, c, k])) for c, city in enumerate(result.cities) if here[c]),
                       key=lambda item: -item[1])
        raw = result.values[t, here, k]
        ind = result.catalogue.indicators[k]
        marks = [("中位数", float(np.median(raw)))]
        if not np.isnan(result.thresholds[t, k]) and result.thresholds[t, k] <= max(raw.max() * 1.5, 1):
            marks.insert(0, ("阈值 A", float(result.thresholds[t, k])))
        sd = float(np.std(raw, ddof=1 if settings.std == "sample" and len(raw) > 1 else 0))
        context.update(
            code=code, indicator=ind, k=k,
            chart=charts.distribution(items, f"{code} {ind.name}（{year} 年，{ind.unit}）", highlight=services.home_city(),
                                      marks=marks),
            norm_chart=charts.distribution(
                sorted(((city, float(result.normalised[t, c, k])) for c, city in enumerate(result.cities) if here[c]),
                       key=lambda item: -item[1]), f"{code} 标准化值", highlight=services.home_city(), fmt="{:.3f}"),
            stats={"城市数": int(here.sum()), "平均": float(raw.mean()), "中位数": float(np.median(raw)),
                   "标准差": sd, "最小": float(raw.min()), "最大": float(raw.max()),
                   "阈值 A": None if np.isnan(result.thresholds[t, k]) else float(result.thresholds[t, k])},
            imputed_cities=[city for c, city in enumerate(result.cities) if here[c] and result.imputed[t, c, k]],
            trend=charts.lines([str(y) for y in result.years],
                               [("各城市平均", [float(np.mean(result.values[n, result.present[n], k])) if result.present[n].any() else None
                                           for n in range(len(result.years))]),
                                ("各城市中位数", [float(np.median(result.values[n, result.present[n], k])) if result.present[n].any() else None
                                             for n in range(len(result.years))])],
                               f"{code} 历年平均与中位数", fmt="{:,.2f}", unit=ind.unit),
        )
    return render_template("info_consumption_index/indicators.html", **_common(settings, data, result, error, **context))


def _draws() -> tuple[int, float]:
    draws = request.args.get("draws", "")
    concentration = request.args.get("concentration", "")
    n = parse_id(draws) or 0
    n = n if 10 <= n <= MAX_DRAWS else analysis.DEFAULT_DRAWS
    try:
        alpha = float(concentration) if concentration else analysis.DEFAULT_CONCENTRATION
    except ValueError:
        alpha = analysis.DEFAULT_CONCENTRATION
    return n, alpha if 1 <= alpha <= 10_000 else analysis.DEFAULT_CONCENTRATION


@bp.get("/sensitivity")
@roles_required(*OVERSIGHT)
def sensitivity():
    settings, settings_error = _settings()
    data, result, error, year = _context(settings, settings_error)
    draws, concentration = _draws()
    context = dict(year=year, draws=draws, concentration=concentration)
    if result is not None and not error:
        s = analysis.sensitivity(data.panel, data.catalogue, settings, [year], draws=draws,
                                 concentration=concentration)[year]
        rows = s.rows()
        try:
            split = analysis.sobol_split(data.panel, data.catalogue, settings, year, concentration=concentration)
            context.update(split=split, split_levels=analysis.source_levels(data.panel, data.catalogue, settings, year))
        except method.MethodError as problem:
            context.update(split=None, split_error=str(problem))
        context.update(s=s, rows=rows, chart=charts.rank_intervals(rows, f"{year} 年排名的 90% 区间",
                                                                    highlight=services.home_city()),
                       labels={combo: analysis.combination_label(*combo) for combo in s.combinations})
    return render_template("info_consumption_index/sensitivity.html", **_common(settings, data, result, error, **context))


@bp.get("/what-if")
@roles_required(*OVERSIGHT)
def what_if():
    settings, settings_error = _settings()
    data, result, error, year = _context(settings, settings_error)
    city = request.args.get("city") or services.home_city()
    context = dict(year=year, city=city, outcome=None, changes={}, entered={})
    if result is not None and not error:
        if city not in result.cities or not result.present[result.year_index(year), result.cities.index(city)]:
            error = f"{city} 没有 {year} 年的数据，无法模拟"
        else:
            t, c = result.year_index(year), result.cities.index(city)
            context["current"] = {code: float(result.values[t, c, k]) for k, code in enumerate(result.catalogue.codes)}
            changes, problems = {}, []
            for code in result.catalogue.codes:
                text = request.args.get(code, "").strip()
                if not text:
                    continue
                value = importing.parse_number(text)
                if value is None:
                    problems.append(f"{code}：“{text}”不是数字")
                elif value != context["current"][code]:
                    changes[code] = value
            context["entered"] = {code: f"{value:.12g}" for code, value in changes.items()}
            context["changes"] = changes
            for problem in problems:
                flash(problem, "error")
            if changes:
                try:
                    context["outcome"] = analysis.what_if(result, data.panel, city, year, changes)
                except method.MethodError as problem:
                    flash(str(problem), "error")
            # how the composite moves with S11 alone, from none to three times the current value
            if "S11" in result.catalogue.codes:
                k = result.catalogue.codes.index("S11")
                base = context["current"]["S11"] or float(np.median(result.values[t, result.present[t], k])) or 1.0
                steps = [0, 0.5, 1, 1.5, 2, 3]
                curve = [analysis.what_if(result, data.panel, city, year, {"S11": base * f}).after for f in steps]
                # from zero, like every index chart: a move of a few hundredths looks as small as it is
                context["s11_curve"] = charts.lines([f"×{f:g}" for f in steps], [("综合指数", curve)],
                                                    f"{city} 的综合指数随 S11 变化（其余不变）", unit=INDEX_UNIT,
                                                    point_labels=True)
    return render_template("info_consumption_index/what_if.html", **_common(settings, data, result, error, **context))


@bp.get("/export.xlsx")
@roles_required(*OVERSIGHT)
def export():
    settings, settings_error = _settings()
    data, result, error, year = _context(settings, settings_error)
    if result is None or error:
        return render_template("error.html", status=422, message=error), 422
    draws, concentration = _draws()
    s = analysis.sensitivity(data.panel, data.catalogue, settings, [year], draws=draws, concentration=concentration)
    body = xlsx.as_xlsx(data, result, s, feed.feed_views(services.home_city()), services.home_city(), _is_demo())
    return Response(body, mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f"attachment; filename=icdi-ec-{local_today():%Y%m%d}.xlsx"})


# Data, feed, computations -----------------------------------------------------------------------------


def _data_page(problems: list[str] | None = None, file_name: str | None = None, status: int = 200):
    version = catalogue.active_version()
    batches = list(db.session.scalars(select(IndexImportBatch).order_by(IndexImportBatch.id.desc()).limit(20)))
    home = services.home_city()
    return render_template(
        "info_consumption_index/data.html", version=version, batches=batches, problems=problems, problem_file=file_name,
        feed_views=feed.feed_views(home), campaigns=feed.tagged_campaigns(), all_campaigns=_campaigns(),
        pending_tags=feed.pending_tags(), checkers=[r.value for r in CATALOGUE_CHECKERS],
        computations=services.computations(), home=home, demo=_is_demo(), editors=[r.value for r in EDITORS],
        information_measure=feed.INFORMATION_MEASURE, this_year=local_today().year,
        describe=lambda settings: method.Settings.from_dict(settings).describe(),
    ), status


def _campaigns():
    return list(db.session.scalars(select(Campaign).order_by(Campaign.id.desc()).limit(200)))


@bp.get("/data")
@roles_required(*OVERSIGHT)
def data_page():
    return _data_page()


@bp.post("/data/import")
@roles_required(*EDITORS)
def import_values():
    upload = request.files.get("values")
    if upload is None or not upload.filename:
        flash("请选择要导入的文件（CSV 或 xlsx）", "error")
        return redirect(url_for("info_consumption_index.data_page")), 303
    try:
        with unit_of_work():
            version = catalogue.require_active()
            summary = importing.import_file(upload.read(), upload.filename, catalogue.as_method(version), current_user)
    except importing.ImportRefused as error:
        return _data_page(error.problems, upload.filename, 422)
    except DomainError as error:
        return refused(error, "info_consumption_index.data_page")
    flash(f"已导入 {summary.cells} 个数值（{len(summary.cities)} 个城市，{summary.years[0]}-{summary.years[-1]} 年），"
          f"替换原有官方数值 {summary.replaced} 个", "success")
    return redirect(url_for("info_consumption_index.data_page")), 303


@bp.get("/template.<fmt>")
@roles_required(*OVERSIGHT)
def template(fmt: str):
    try:
        cat = catalogue.as_method(catalogue.require_active())
    except DomainError as error:
        return render_template("error.html", status=422, message=error.message), 422
    if fmt == "xlsx":
        return Response(importing.template_xlsx(cat),
                        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        headers={"Content-Disposition": "attachment; filename=icdi-ec-template.xlsx"})
    if fmt in ("csv", "long.csv"):
        layout = "long" if fmt == "long.csv" else "wide"
        return Response(importing.template_csv(cat, layout), mimetype="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f"attachment; filename=icdi-ec-template-{layout}.csv"})
    abort(404)


@bp.post("/feed/publish")
@roles_required(*EDITORS)
def publish_feed():
    text = request.form.get("year", "")
    if not 1990 <= (parse_id(text) or 0) <= 2100:
        flash("年份应为 1990-2100 之间的整数", "error")
        return redirect(url_for("info_consumption_index.data_page")), 303
    with unit_of_work():
        row = feed.publish(services.home_city(), parse_id(text), current_user)
    flash(f"已推送 {row.city} {row.year} 年 S11（已执行补贴）：{row.value:,.2f} 元（来自 {len(row.provenance['campaigns'])} 个信息消费活动）",
          "success")
    return redirect(url_for("info_consumption_index.data_page")), 303


@bp.post("/feed/tag/<int:campaign_id>")
@roles_required(*EDITORS)
def tag_campaign(campaign_id: int):
    """A request to tag or untag: it takes effect only when another person approves it (tag_decide)."""
    tagged = request.form.get("tagged") == "1"
    try:
        with unit_of_work():
            campaign = feed.request_tag(campaign_id, tagged, current_user)
    except DomainError as error:
        return refused(error, "info_consumption_index.data_page")
    flash(f"已提交申请：将活动“{campaign.name}”{'标记' if tagged else '取消标记'}为信息消费活动，待其他审批人审批", "success")
    return redirect(url_for("info_consumption_index.data_page")), 303


@bp.post("/feed/tag/<int:campaign_id>/decide")
@roles_required(*CATALOGUE_CHECKERS)
def tag_decide(campaign_id: int):
    approve = request.form.get("decision") == "approve"
    try:
        with unit_of_work():
            campaign = feed.decide_tag(campaign_id, approve, current_user, request.form.get("reason", ""))
    except DomainError as error:
        return refused(error, "info_consumption_index.data_page")
    flash(f"活动“{campaign.name}”的信息消费标记申请已{'批准' if approve else '驳回'}", "success")
    return redirect(url_for("info_consumption_index.data_page")), 303


@bp.post("/computations")
@roles_required(*EDITORS)
def record_computation():
    settings, settings_error = _settings()
    if settings_error:
        flash(settings_error, "error")
        return redirect(url_for("info_consumption_index.ranking")), 303
    try:
        with unit_of_work():
            data = services.load()
            row = services.record(services.compute(data, settings), data.version, current_user)
    except (DomainError, method.MethodError) as error:
        return refused(error, "info_consumption_index.ranking", **_query(settings))
    flash(f"已记录计算 #{row.id}（指标目录第 {data.version.version} 版）", "success")
    return redirect(url_for("info_consumption_index.data_page")), 303


# Catalogue versions -----------------------------------------------------------------------------------


@bp.get("/catalogue")
@roles_required(*OVERSIGHT)
def catalogue_page():
    chosen = request.args.get("version", "")
    all_versions = catalogue.versions()
    shown = next((v for v in all_versions if str(v.version) == chosen), None) or catalogue.active_version()
    return render_template("info_consumption_index/catalogue.html", versions=all_versions, shown=shown,
                           first_labels=method.FIRST_LEVEL_LABELS, kinds=method.KINDS, first_levels=method.FIRST_LEVELS)


@bp.post("/catalogue/draft")
@roles_required(Role.ADMIN)
def catalogue_draft():
    try:
        with unit_of_work():
            draft = catalogue.draft_from(catalogue.require_active(), current_user)
    except DomainError as error:
        return refused(error, "info_consumption_index.catalogue_page")
    return redirect(url_for("info_consumption_index.catalogue_page", version=draft.version)), 303


@bp.post("/catalogue/<int:version_id>/edit")
@roles_required(Role.ADMIN)
def catalogue_edit(version_id: int):
    form = request.form
    try:
        with unit_of_work():
            draft = catalogue.get_version(version_id)
            firsts = {}
            for f in method.FIRST_LEVELS:
                value = importing.parse_number(form.get(f"weight_{f}", ""))
                if value is None:
                    raise DomainError(f"{method.FIRST_LEVEL_LABELS[f]}的权重应为数字")
                firsts[f] = value
            edits = []
            for i in draft.indicators:
                relative = importing.parse_number(form.get(f"rel_{i.code}", "1") or "1")
                if relative is None:
                    raise DomainError(f"{i.code} 的相对权重应为数字")
                edits.append(catalogue.IndicatorEdit(i.code, form.get(f"name_{i.code}", i.name),
                                                     form.get(f"unit_{i.code}", i.unit),
                                                     form.get(f"second_{i.code}", i.second_level), relative,
                                                     form.get(f"kind_{i.code}") or None))
            catalogue.update_draft(draft, firsts, edits, form.get("note", ""), current_user)
            if form.get("submit") == "1":
                catalogue.submit(draft, current_user)
    except (DomainError, method.MethodError) as error:
        return refused(error, "info_consumption_index.catalogue_page", version=_version_number(version_id))
    flash("已保存" + ("并提交审批" if form.get("submit") == "1" else "草稿"), "success")
    return redirect(url_for("info_consumption_index.catalogue_page", version=_version_number(version_id))), 303


def _version_number(version_id: int) -> int | None:
    found = db.session.get(CatalogueVersion, version_id)
    return found.version if found else None


@bp.post("/catalogue/<int:version_id>/decide")
@roles_required(*CATALOGUE_CHECKERS)
def catalogue_decide(version_id: int):
    try:
        with unit_of_work():
            version = catalogue.get_version(version_id)
            if request.form.get("decision") == "approve":
                catalogue.approve(version, current_user)
                message = f"指标目录第 {version.version} 版已生效"
            else:
                catalogue.reject(version, request.form.get("reason", ""), current_user)
                message = f"指标目录第 {version.version} 版已退回"
    except DomainError as error:
        return refused(error, "info_consumption_index.catalogue_page", version=_version_number(version_id))
    flash(message, "success")
    return redirect(url_for("info_consumption_index.catalogue_page", version=_version_number(version_id))), 303
