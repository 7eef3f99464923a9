"""Everything of a computation as one xlsx workbook: settings and catalogue, ranking per year, first- and
second-level scores, values with their source and imputation flags, normalised values and thresholds,
short boards, sensitivity and leave-one-out, and the campaign feed with its provenance."""
from __future__ import annotations

import io

import numpy as np
from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill

from voucher.core.money import format_yuan, to_yuan
from voucher.info_consumption_index import analysis, method
from voucher.info_consumption_index.models import ValueSource
from voucher.info_consumption_index.services import Data

IMPUTED_FILL = PatternFill("solid", fgColor="FFF2CC")


def _header(sheet, cells: list) -> None:
    sheet.append(cells)
    for cell in sheet[sheet.max_row]:
        cell.font = Font(bold=True)


def _num(value) -> float | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else round(float(value), 10)


def as_xlsx(data: Data, result: method.Result, sensitivity: dict[int, analysis.Sensitivity],
            feed_rows: list, home: str, demo: bool) -> bytes:
    book = Workbook()
    cat = result.catalogue
    about = book.active
    assert about is not None  # a new Workbook has one sheet, the active one
    about.title = "说明"
    if demo:
        about.append(["注意：含示意数据（合成，按报告 2020 年均值校准），非官方统计"])
        about["A1"].font = Font(bold=True, color="C00000")
    about.append(["信息消费发展指数（ICDI-EC），方法见中国信通院《国家信息消费示范城市发展报告（2022年）》附录"])
    about.append(["指标目录版本", data.version.version])
    for label, value in result.settings.describe():
        about.append([label, value])
    for warning in result.warnings:
        about.append(["注意", warning])
    about.append(["综合指数", result.ranking_label])
    about.append(["同比增长与年均增速", result.growth_label])
    for line in result.treated:
        about.append(["离群值处理", line])
    for year, cells in result.blocked.items():
        about.append([f"{year} 年未计算", str(method.MissingValues(cells, year=year))])
    about.append(["插补的单元格", "在“指标数值”“标准化值”表中以黄色标出，排名表的“插补指标”列列出代码"])
    about.append([])
    _header(about, ["代码", "一级指标", "二级指标", "三级指标", "单位", "类型", "权重"])
    for i in cat.indicators:
        about.append([i.code, method.FIRST_LEVEL_LABELS[i.first], i.second, i.name, i.unit, method.KINDS[i.kind],
                      round(i.weight, 10)])
    about.column_dimensions["A"].width = 16
    about.column_dimensions["D"].width = 44

    ranking = book.create_sheet("排名")
    _header(ranking, ["年份", "排名", "城市", "综合指数", "需求", "供给", "环境", f"同比增长（{result.growth_base_year} 年固定阈值）", "插补指标"])
    for year in result.open_years:  # a year left out for a missing value is named on the first sheet
        for row in result.table(year):
            ranking.append([year, row["rank"], row["city"], _num(row["composite"]), _num(row["demand"]),
                            _num(row["supply"]), _num(row["environment"]), _num(row["growth"]),
                            "、".join(row["imputed"])])
    ranking.append([])
    _header(ranking, ["年份", "城市平均综合指数（当年排名用）", "需求平均", "供给平均", "环境平均",
                      f"城市平均（{result.growth_base_year} 年固定阈值）"])
    fixed = result.fixed_average if result.fixed_average is not None else result.average
    for t, year in enumerate(result.years):
        ranking.append([year, _num(result.average[t]), *(_num(v) for v in result.first_average[t]), _num(fixed[t])])
    growth = result.average_annual_growth
    ranking.append(["年均增速", _num(growth), None, None, None, result.growth_label])

    second = book.create_sheet("二级指标得分")
    _header(second, ["年份", "城市", *(f"{method.FIRST_LEVEL_LABELS[f][-2:]}·{s}" for f, s in cat.seconds)])
    for t, year in enumerate(result.years):
        for c, city in enumerate(result.cities):
            if result.present[t, c]:
                second.append([year, city, *(_num(v) for v in result.second[t, c])])

    values = book.create_sheet("指标数值")
    normal = book.create_sheet("标准化值")
    _header(values, ["年份", "城市", *cat.codes])
    _header(normal, ["年份", "城市", *cat.codes])
    for t, year in enumerate(result.years):
        for c, city in enumerate(result.cities):
            if not result.present[t, c]:
                continue
            values.append([year, city, *(_num(v) for v in result.values[t, c])])
            normal.append([year, city, *(_num(v) for v in result.normalised[t, c])])
            for k in np.flatnonzero(result.imputed[t, c]):
                values.cell(values.max_row, 3 + int(k)).fill = IMPUTED_FILL
                normal.cell(normal.max_row, 3 + int(k)).fill = IMPUTED_FILL
    normal.append([])
    _header(normal, ["年份", "阈值 A", *cat.codes])
    for t, year in enumerate(result.years):
        normal.append([year, "", *(_num(v) for v in result.thresholds[t])])

    sources = book.create_sheet("数据来源")
    _header(sources, ["年份", "城市", "指标", "采用来源", "官方数值", "活动推送数值（已执行补贴，元）"])
    for (city, year, code), by_source in sorted(data.all_values.items(), key=lambda item: (item[0][1], item[0][0], item[0][2])):
        if ValueSource.CAMPAIGN_FEED.value not in by_source and len(by_source) == 1:
            continue  # official only: the values sheet has it
        official, fed = by_source.get("official"), by_source.get("campaign_feed")
        used = data.sources.get((city, year, code))
        sources.append([year, city, code, ValueSource(used).label if used else "未参评（该城市该年无官方数据）",
                        official.value if official else None, fed.value if fed else None])

    boards = book.create_sheet("短板")
    latest = result.open_years[-1]
    _header(boards, ["年份", "城市", "指标", "名称", "本市数值", "同伴中位数", "标准化差距", "达到中位数可提高（指数点）", "插补"])
    panel = data.panel
    for c, city in enumerate(result.cities):
        if not result.present[result.year_index(latest), c]:
            continue
        for b in analysis.short_boards(result, panel, city, latest, limit=5):
            boards.append([latest, city, b.code, b.name, b.value, b.peer_median, _num(b.gap), _num(b.points),
                           "是" if b.imputed else ""])

    for year, s in sensitivity.items():
        sheet = book.create_sheet(f"敏感性{year}")
        sheet.append([f"权重：狄利克雷分布（集中度 {s.concentration:g}）每种方法 {s.draws} 次抽样；方法组合 {len(s.combinations)} 种"])
        _header(sheet, ["城市", "排名（目录权重）", "排名中位数", "90% 区间下限", "90% 区间上限",
                        *(analysis.combination_label(*combo) for combo in s.combinations)])
        for row in s.rows():
            sheet.append([row["city"], row["rank"], row["median"], row["low"], row["high"],
                          *(row["combinations"][combo] for combo in s.combinations)])
        sheet.append([])
        _header(sheet, ["去掉的指标", "名称", "平均排名变化", "最大排名变化", "变化最大的城市"])
        for item in s.leave_one_out:
            sheet.append([item.code, item.name, round(item.mean_shift, 4), item.max_shift, item.most_moved])

    fed = book.create_sheet("活动数据推送")
    _header(fed, ["城市", "年份", "采用", "活动推送 S11：已执行补贴（元）", "官方 S11（元）", "计算时间", "活动与执行金额（元）", "信息消费类商户用券带动消费（元）"])
    for view in feed_rows:
        p = view.fed.provenance if view.fed else {}
        fed.append([view.city, view.year, "官方数据" if view.used == "official" else "活动数据推送（已执行补贴）",
                    view.fed.value if view.fed else None, view.official.value if view.official else None,
                    p.get("computed_at"),
                    "；".join(f"{c['name']} {format_yuan(c['executed_fen'], grouping=False)}" for c in p.get("campaigns", [])),
                    to_yuan(p.get("driven_consumption_fen", 0)) if p else None])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
