"""The ICDI-EC computation (CAICT 2022, table 2 and the appendix), pure numpy: no Flask, no database.

The report's method, step by step:

1. normalise each third-level value by a threshold, I = X / A: A = 100 % for a share indicator, and for
   a numeric indicator the median plus two standard deviations across the cities of the same period;
2. the composite I = sum_i W_i sum_j W_ij sum_k W_ijk I_ijk. With third-level weights equal within a
   first-level indicator, the inner sums (the first-level scores) are the weighted means of their
   third-level values, on the same 0-1 scale as the composite.

The report leaves four points open; each is a named setting here (docs/design.md §7 ICDI-EC), with the
stated default: sample standard deviation (Excel STDEV.S), I capped at 1, missing values refused
unless an imputation is chosen (imputed cells are flagged; a year with a value still missing is left
out, and only that year), thresholds per period (or fixed to a base year, so a city whose data do not
change keeps its score; an indicator the base year cannot scale takes the next year's, with a warning).
Beside the report's method, never replacing it: min-max and z-score normalisation, and geometric
aggregation.

Weights are absolute (they sum to 1 over the third-level indicators); a first- or second-level weight
is the sum of its third-level weights, and a first- or second-level score is the weighted mean of its
third-level values. Arrays are indexed (year, city, indicator).
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field, replace
from typing import Iterable, Mapping

import numpy as np

FIRST_LEVELS = ("demand", "supply", "environment")
FIRST_LEVEL_LABELS = {"demand": "信息消费需求", "supply": "信息消费供给", "environment": "信息消费环境"}
KINDS = {"share": "占比类", "numeric": "数值类"}

#: geometric aggregation takes logs: normalised values are floored here first (a zero would zero the
#: whole composite); 0.01 is one hundredth of the threshold
GEOMETRIC_FLOOR = 0.01


class MethodError(ValueError):
    """A computation that cannot be done as asked; the message is Chinese and names what is wrong."""


class MissingValues(MethodError):
    """Cells an assessed city-year lacks after any imputation. They block their own year only (`year`),
    unless that year is the fixed base year (`base_year`), whose statistics normalise every year."""

    def __init__(self, cells: list[tuple[str, int, str]], year: int | None = None, base_year: int | None = None):
        self.cells = cells
        shown = "、".join(f"{city} {y} 年 {code}" for city, y, code in cells[:12])
        more = f" 等 {len(cells)} 处" if len(cells) > 12 else ""
        if base_year is not None:
            lead = f"阈值基期 {base_year} 年缺少数据（各年都按基期的统计量标准化，所以每一年都无法计算）："
        elif year is not None:
            lead = f"{year} 年缺少数据（只有该年无法计算，其他年份不受影响）："
        else:
            lead = "缺少数据："
        super().__init__(
            f"{lead}{shown}{more}。默认不允许缺失值；如需计算，请明确选择插补方式"
            "（同年各城市中位数，或该城市上一年数值），插补的单元格会在所有结果中标出。"
        )


@dataclass(frozen=True)
class BaseYearFallback:
    """An indicator the fixed base year cannot normalise, and the year whose statistics it takes instead.

    In the base year every assessed city has the same value: for the threshold method that value is 0
    (the 5G stations of 2018), so A = 0; for min-max or z-scores there is no spread. Dividing by it would
    score the indicator 0 (or 1) for every city in every year, silently dropping its weight. The report's
    intent for a fixed base is one unchanging yardstick per indicator with the Delphi weights kept, so the
    indicator keeps its weight and one fixed reference: the first year after the base year that has one
    (or, if none does, the last before it). Every result, page, export and the CLI say so."""

    code: str
    name: str
    base_year: int
    used_year: int
    normalisation: str

    @property
    def message(self) -> str:
        if self.normalisation == "threshold":
            why, what = "各城市均为 0，阈值为 0", "阈值"
        else:
            why, what = "各城市数值相同，没有离散程度", "统计量"
        return (f"注意：阈值基期 {self.base_year} 年 {self.code}（{self.name}）{why}，无法据以标准化；"
                f"该指标各年改用 {self.used_year} 年的{what}，其他指标仍用 {self.base_year} 年的。")


# The catalogue ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Indicator:
    code: str
    name: str
    unit: str
    kind: str  # share | numeric
    first: str  # demand | supply | environment
    second: str  # the second-level group's name
    weight: float  # absolute: the weights of a catalogue sum to 1


@dataclass(frozen=True)
class Catalogue:
    indicators: tuple[Indicator, ...]
    version: int | None = None

    def __post_init__(self):
        codes = [i.code for i in self.indicators]
        if len(set(codes)) != len(codes):
            raise MethodError("指标代码重复")
        if any(i.first not in FIRST_LEVELS for i in self.indicators):
            raise MethodError("一级指标只能是需求、供给、环境")
        if any(i.kind not in KINDS for i in self.indicators):
            raise MethodError("指标类型只能是占比类或数值类")
        if any(i.weight < 0 for i in self.indicators) or abs(sum(i.weight for i in self.indicators) - 1) > 1e-9:
            raise MethodError("三级指标权重应为非负数，且合计为 1")

    @property
    def codes(self) -> list[str]:
        return [i.code for i in self.indicators]

    @property
    def weights(self) -> np.ndarray:
        return np.array([i.weight for i in self.indicators], dtype=float)

    @property
    def is_share(self) -> np.ndarray:
        return np.array([i.kind == "share" for i in self.indicators])

    @property
    def seconds(self) -> list[tuple[str, str]]:
        """(first level, second-level name) in catalogue order, each once."""
        seen: list[tuple[str, str]] = []
        for i in self.indicators:
            if (i.first, i.second) not in seen:
                seen.append((i.first, i.second))
        return seen

    def first_weights(self, weights: np.ndarray | None = None) -> np.ndarray:
        w = self.weights if weights is None else weights
        return np.array([w[[i.first == f for i in self.indicators]].sum() for f in FIRST_LEVELS])

    def group_matrices(self, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(G, H): normalised values @ G are the first-level scores, @ H the second-level scores.
        Column f of G holds w_k / W_f for the indicators k of first level f (a weighted mean)."""
        w = self.weights if weights is None else weights
        first = np.zeros((len(w), len(FIRST_LEVELS)))
        for k, ind in enumerate(self.indicators):
            first[k, FIRST_LEVELS.index(ind.first)] = w[k]
        seconds = self.seconds
        second = np.zeros((len(w), len(seconds)))
        for k, ind in enumerate(self.indicators):
            second[k, seconds.index((ind.first, ind.second))] = w[k]
        with np.errstate(invalid="ignore", divide="ignore"):
            first = np.nan_to_num(first / first.sum(axis=0))
            second = np.nan_to_num(second / second.sum(axis=0))
        return first, second

    def with_weights(self, weights: Iterable[float]) -> Catalogue:
        return Catalogue(tuple(replace(i, weight=float(w)) for i, w in zip(self.indicators, weights)), self.version)


def equal_within_first(first_weights: Mapping[str, float], firsts: list[str]) -> list[float]:
    """The report's rule: third-level indicators equally weighted within their first-level indicator."""
    counts = {f: firsts.count(f) for f in FIRST_LEVELS}
    return [first_weights[f] / counts[f] for f in firsts]


# Settings -------------------------------------------------------------------------------------------

NORMALISATIONS = {"threshold": "阈值法（报告方法）", "minmax": "最小-最大法", "zscore": "Z 分数法"}
AGGREGATIONS = {"arithmetic": "加权算术平均（报告方法）", "geometric": "加权几何平均"}
STDS = {"sample": "样本标准差（STDEV.S，默认）", "population": "总体标准差（STDEV.P）"}
MISSING = {"refuse": "不允许缺失（默认）", "median": "以同年各城市中位数插补", "previous": "以该城市上一年数值插补"}
OUTLIERS = {"none": "不处理（默认）", "winsorise": "缩尾（偏度、峰度超限时逐个压低极端值）",
            "log": "对数变换（仅偏度、峰度超限的数值类指标）"}
#: The check composite-index practice uses before treating outliers (OECD/JRC Handbook on Constructing
#: Composite Indicators, 2008; JRC COIN): an indicator is treated when |skewness| > 2 and kurtosis > 3.5,
#: both the sample-adjusted statistics of Excel's SKEW and KURT (kurtosis in excess of the normal's 3).
OUTLIER_SKEW = 2.0
OUTLIER_KURTOSIS = 3.5
#: winsorising stops after this many values of one indicator in one year (JRC practice: at most 5)
MAX_WINSORISED = 5


@dataclass(frozen=True)
class Settings:
    """The named settings of a computation. The defaults: the report's method as docs/design.md §7 ICDI-EC reads it."""

    #: threshold (I = X / A, the report's), minmax ((X - min) / (max - min)), zscore ((X - mean) / sd)
    normalisation: str = "threshold"
    #: arithmetic (the report's weighted sum) or geometric (weighted product of values floored at 0.01)
    aggregation: str = "arithmetic"
    #: the standard deviation in A = median + 2 sd: sample (n - 1, as Excel STDEV.S) or population (n)
    std: str = "sample"
    #: cap a normalised value at 1 (and min-max at 0 below); z-scores are never capped
    cap: bool = True
    #: None: thresholds (and min, max, mean, sd) from each period's own cities; a year: from that year's,
    #: for every period, so an unchanged city keeps its score
    base_year: int | None = None
    #: refuse, or impute by the cross-city median of the year, or by the city's previous year
    missing: str = "refuse"
    #: outlier treatment before normalisation, on numeric indicators whose distribution fails the
    #: skewness/kurtosis check (OUTLIER_SKEW, OUTLIER_KURTOSIS): none (the report's), winsorise (the most
    #: extreme value set to the next one, repeated until the check passes, at most MAX_WINSORISED values,
    #: each year on its own cities), or log (ln(1 + x) for every year of an indicator failing in any year)
    outliers: str = "none"

    def __post_init__(self):
        if self.normalisation not in NORMALISATIONS:
            raise MethodError(f"未知的无量纲化方法：{self.normalisation}")
        if self.aggregation not in AGGREGATIONS:
            raise MethodError(f"未知的合成方法：{self.aggregation}")
        if self.std not in STDS:
            raise MethodError(f"未知的标准差口径：{self.std}")
        if self.missing not in MISSING:
            raise MethodError(f"未知的缺失值处理方式：{self.missing}")
        if self.outliers not in OUTLIERS:
            raise MethodError(f"未知的离群值处理方式：{self.outliers}")
        if self.normalisation == "zscore" and self.aggregation == "geometric":
            raise MethodError("Z 分数可为负数，不能做几何平均；请改用算术平均或其他无量纲化方法")

    @property
    def is_report_method(self) -> bool:
        return self.normalisation == "threshold" and self.aggregation == "arithmetic" and self.outliers == "none"

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> Settings:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    def describe(self) -> list[tuple[str, str]]:
        """(setting, value) in Chinese, for every page and export that shows a result."""
        return [
            ("无量纲化", NORMALISATIONS[self.normalisation]),
            ("合成方法", AGGREGATIONS[self.aggregation]),
            ("阈值中的标准差", STDS[self.std]),
            ("标准化值封顶为 1", "是（默认）" if self.cap else "否"),
            ("阈值基期", f"固定为 {self.base_year} 年" if self.base_year else "各期分别计算（默认）"),
            ("缺失值", MISSING[self.missing]),
            ("离群值处理", OUTLIERS[self.outliers]),
        ]


# The data -------------------------------------------------------------------------------------------


@dataclass
class Panel:
    """City-year values of the catalogue's indicators; NaN where a value is missing. A city-year with no
    value at all is absent (the city was not assessed that year), not missing."""

    cities: list[str]
    years: list[int]
    values: np.ndarray  # (years, cities, indicators)

    @classmethod
    def from_records(cls, records: Iterable[tuple[str, int, str, float]], codes: list[str]) -> Panel:
        rows = list(records)
        cities = sorted({r[0] for r in rows})
        years = sorted({int(r[1]) for r in rows})
        city_at = {c: n for n, c in enumerate(cities)}
        year_at = {y: n for n, y in enumerate(years)}
        code_at = {c: n for n, c in enumerate(codes)}
        values = np.full((len(years), len(cities), len(codes)), np.nan)
        for city, year, code, value in rows:
            if code in code_at:
                values[year_at[int(year)], city_at[city], code_at[code]] = value
        return cls(cities, years, values)

    @property
    def present(self) -> np.ndarray:
        """(years, cities): the city was assessed that year (it has at least one value)."""
        return ~np.all(np.isnan(self.values), axis=2)

    def with_value(self, city: str, year: int, code_index: int, value: float) -> Panel:
        values = self.values.copy()
        values[self.years.index(year), self.cities.index(city), code_index] = value
        return Panel(self.cities, self.years, values)


@dataclass
class Result:
    catalogue: Catalogue
    settings: Settings
    cities: list[str]
    years: list[int]
    present: np.ndarray  # (Y, C)
    values: np.ndarray  # (Y, C, K) after imputation
    imputed: np.ndarray  # (Y, C, K) bool
    normalised: np.ndarray  # (Y, C, K)
    thresholds: np.ndarray  # (Y, K): A of the threshold method (NaN for the alternatives)
    composite: np.ndarray  # (Y, C), NaN where absent
    first: np.ndarray  # (Y, C, 3)
    second: np.ndarray  # (Y, C, S)
    rank: np.ndarray  # (Y, C), 1 = highest; ties share the better rank; 0 where absent
    #: (Y, C): the fixed-base composite over the previous year's, minus 1; NaN for the first year. Always on
    #: thresholds fixed to `growth_base_year`, never per period: per-period thresholds move with the cities,
    #: so a rise every city shares would not show (issue 18)
    growth: np.ndarray
    average: np.ndarray  # (Y,): mean composite over the cities of the year (the year's own scores)
    first_average: np.ndarray  # (Y, 3)
    extra: dict = field(default_factory=dict)
    #: years left out because an assessed city still lacks a value there: year -> its missing cells.
    #: Their cities count as not assessed (present False), so they are neither ranked nor averaged.
    blocked: dict[int, list[tuple[str, int, str]]] = field(default_factory=dict)
    #: indicators whose fixed base year could not normalise them (see BaseYearFallback)
    fallbacks: list[BaseYearFallback] = field(default_factory=list)
    #: the year whose thresholds (statistics) every year's growth is computed on: the chosen base year, or
    #: with per-period thresholds the first year that computes; None when no year computes
    growth_base_year: int | None = None
    #: (Y, C) and (Y,): composite and its average on thresholds fixed to growth_base_year (the same as
    #: composite and average when the settings fix a base year)
    fixed_composite: np.ndarray | None = None
    fixed_average: np.ndarray | None = None
    #: base-year fallbacks of the fixed-base run behind the growth figures (per-period settings only)
    growth_fallbacks: list[BaseYearFallback] = field(default_factory=list)
    #: what outlier treatment changed (Settings.outliers): one line per indicator and year, in Chinese
    treated: list[str] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        """What a reader must be told beside the figures, in Chinese: every page, export and the CLI show it."""
        own = [f.message for f in self.fallbacks]
        return own + [f"增速计算（按 {self.growth_base_year} 年固定阈值）：{f.message}" for f in self.growth_fallbacks
                      if f.message not in own]

    @property
    def per_period(self) -> bool:
        return self.settings.base_year is None

    @property
    def ranking_label(self) -> str:
        """What the year's composite is for, in Chinese."""
        if self.per_period:
            return "当年排名用，各年阈值不同、不可跨年比较"
        return f"按 {self.settings.base_year} 年固定阈值计算，可跨年比较"

    @property
    def growth_label(self) -> str:
        """On what the growth figures stand, in Chinese."""
        if self.growth_base_year is None:
            return "没有可计算的年份，无法计算增速"
        return f"增速按 {self.growth_base_year} 年固定阈值计算"

    @property
    def average_annual_growth(self) -> float | None:
        """Compound annual growth of the fixed-base average, first year to last (the report's 6.6 % a year
        is a per-period figure; see docs/icdi-ec.md, growth on a fixed base)."""
        averages = self.average if self.fixed_average is None else self.fixed_average
        known = [(y, a) for y, a in zip(self.years, averages) if not np.isnan(a)]
        if len(known) < 2 or known[0][1] <= 0:
            return None
        (y0, a0), (y1, a1) = known[0], known[-1]
        return float((a1 / a0) ** (1 / (y1 - y0)) - 1)

    def year_index(self, year: int) -> int:
        if year not in self.years:
            raise MethodError(f"没有 {year} 年的数据")
        if year in self.blocked:
            raise MissingValues(self.blocked[year], year=year)
        return self.years.index(year)

    @property
    def open_years(self) -> list[int]:
        """The years that could be computed."""
        return [y for y in self.years if y not in self.blocked]

    def table(self, year: int) -> list[dict]:
        """One row per city assessed in `year`, best first."""
        t = self.year_index(year)
        rows = []
        for c, city in enumerate(self.cities):
            if not self.present[t, c]:
                continue
            rows.append({
                "city": city, "composite": float(self.composite[t, c]),
                **{f: float(self.first[t, c, n]) for n, f in enumerate(FIRST_LEVELS)},
                "rank": int(self.rank[t, c]),
                "growth": None if np.isnan(self.growth[t, c]) else float(self.growth[t, c]),
                "imputed": [self.catalogue.codes[k] for k in np.flatnonzero(self.imputed[t, c])],
            })
        rows.sort(key=lambda r: (r["rank"], r["city"]))
        return rows


# Steps ----------------------------------------------------------------------------------------------


def impute(panel: Panel, settings: Settings,
           codes: list[str]) -> tuple[np.ndarray, np.ndarray, dict[int, list[tuple[str, int, str]]]]:
    """(values, imputed mask, the cells still missing by year). Missing cells of assessed city-years are
    filled only when an imputation is chosen; what is left blocks its year (prepare())."""
    values = panel.values.copy()
    present = panel.present
    missing = np.isnan(values) & present[:, :, None]
    imputed = np.zeros_like(missing)
    if settings.missing == "median" and missing.any():
        with warnings.catch_warnings():  # an indicator nobody reported that year: stays missing
            warnings.simplefilter("ignore", RuntimeWarning)
            medians = np.nanmedian(np.where(present[:, :, None], values, np.nan), axis=1)  # (Y, K)
        fill = np.broadcast_to(medians[:, None, :], values.shape)
        can = missing & ~np.isnan(fill)
        values[can] = fill[can]
        imputed = can
    elif settings.missing == "previous" and missing.any():
        for t in range(1, len(panel.years)):
            # present[t] is per city: a column against the year's (cities, indicators) values. As a row it
            # broadcast against the indicators, and failed unless there happened to be as many of each.
            can = np.isnan(values[t]) & present[t][:, None] & ~np.isnan(values[t - 1])
            values[t][can] = values[t - 1][can]  # carries forward over several years if need be
            imputed[t] |= can
    still: dict[int, list[tuple[str, int, str]]] = {}
    for t, c, k in np.argwhere(np.isnan(values) & present[:, :, None]):
        still.setdefault(panel.years[t], []).append((panel.cities[c], panel.years[t], codes[k]))
    return values, imputed, still


def prepare(panel: Panel, settings: Settings, codes: list[str]):
    """(values, imputed, present, blocked): the imputed values, and the city-years that can be computed.

    A year with a cell still missing is left out whole (its cities count as not assessed): with
    thresholds per period each year stands on its own, so a gap in 2019 does not stop 2020. With
    thresholds fixed to a base year every year is normalised by that year, so a gap there stops all."""
    values, imputed, blocked = impute(panel, settings, codes)
    if settings.base_year in blocked:
        raise MissingValues(blocked[settings.base_year], base_year=settings.base_year)
    present = panel.present.copy()
    for year in blocked:
        present[panel.years.index(year)] = False
    return values, imputed, present, blocked


def _skew_kurtosis(x: np.ndarray) -> tuple[float, float]:
    """Excel's SKEW and KURT (sample-adjusted; kurtosis in excess of 3) of the values x; 0 when undefined."""
    n = len(x)
    sd = float(np.std(x, ddof=1)) if n > 1 else 0.0
    if n < 4 or sd == 0:
        return 0.0, 0.0
    z = (x - x.mean()) / sd
    skew = n / ((n - 1) * (n - 2)) * float((z ** 3).sum())
    kurt = n * (n + 1) / ((n - 1) * (n - 2) * (n - 3)) * float((z ** 4).sum()) - 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))
    return skew, kurt


def fails_outlier_check(x: np.ndarray) -> bool:
    """|skewness| > 2 and kurtosis > 3.5: the distribution is dominated by a few extreme values."""
    skew, kurt = _skew_kurtosis(x)
    return abs(skew) > OUTLIER_SKEW and kurt > OUTLIER_KURTOSIS


def treat_outliers(values: np.ndarray, present: np.ndarray, years: list[int], catalogue: Catalogue,
                   settings: Settings) -> tuple[np.ndarray, list[str]]:
    """(values, what was changed) after Settings.outliers; share indicators (bounded 0-100) are left alone.

    winsorise: per year and numeric indicator, while the year's cities fail the check, the most extreme value
    (on the side of the skew) is set to the next one, at most MAX_WINSORISED times. log: ln(1 + x) for every
    year of a numeric indicator that fails the check in any year, so that years stay on one scale (thresholds,
    fixed base years and growth then work on the logarithms)."""
    if settings.outliers == "none":
        return values, []
    out, notes = values.copy(), []
    numeric = np.flatnonzero(~catalogue.is_share)
    for k in numeric:
        code = catalogue.codes[k]
        failing = [t for t in range(len(years))
                   if present[t].any() and fails_outlier_check(out[t, present[t], k][~np.isnan(out[t, present[t], k])])]
        if not failing:
            continue
        if settings.outliers == "log":
            out[:, :, k] = np.log1p(np.maximum(out[:, :, k], 0.0))
            notes.append(f"{code} 偏度、峰度超限（{'、'.join(str(years[t]) for t in failing)} 年），各年取对数 ln(1+x)")
            continue
        for t in failing:
            cells = np.flatnonzero(present[t] & ~np.isnan(out[t, :, k]))
            original = out[t, cells, k]
            sign = 1.0 if _skew_kurtosis(original)[0] > 0 else -1.0
            y = sign * original  # the tail to shorten is the upper one of y
            rounds = 0
            while rounds < MAX_WINSORISED and fails_outlier_check(sign * y):
                top = y.max()
                below = y[y < top]
                if not len(below):
                    break
                y[y == top] = below.max()
                rounds += 1
            out[t, cells, k] = sign * y
            cities = int((sign * y != original).sum())
            notes.append(f"{years[t]} 年 {code} 偏度、峰度超限，缩尾 {cities} 个城市（极端值压至相邻城市的数值）")
    return out, notes


def _scale(masked: np.ndarray, catalogue: Catalogue, settings: Settings) -> np.ndarray:
    """(Y, K): what each period's values are divided by: the threshold A, the span max - min, or the sd."""
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an indicator nobody reported: NaN statistics
        if settings.normalisation == "threshold":
            A = np.nanmedian(masked, axis=1) + 2 * _std(masked, settings)
            A[:, catalogue.is_share] = 100.0
            return A
        if settings.normalisation == "minmax":
            return np.nanmax(masked, axis=1) - np.nanmin(masked, axis=1)
        return _std(masked, settings)


def reference_years(values: np.ndarray, present: np.ndarray, years: list[int], catalogue: Catalogue,
                    settings: Settings) -> tuple[np.ndarray | None, list[BaseYearFallback]]:
    """Per indicator, the index of the year whose cross-city statistics normalise every period (None:
    each period its own), and the indicators for which that is not the base year (BaseYearFallback)."""
    if settings.base_year is None:
        return None, []
    if settings.base_year not in years:
        raise MethodError(f"阈值基期 {settings.base_year} 年不在数据年份之中（{years[0]}-{years[-1]}）")
    base = years.index(settings.base_year)
    usable = _scale(np.where(present[:, :, None], values, np.nan), catalogue, settings) > 0  # NaN: not usable
    rows = np.full(values.shape[2], base)
    fallbacks = []
    for k in np.flatnonzero(~usable[base]):
        candidates = [t for t in range(base + 1, len(years)) if usable[t, k]] or \
            [t for t in range(base - 1, -1, -1) if usable[t, k]]
        if not candidates:  # no year has a scale: every value is the same everywhere, and scores so
            continue
        rows[k] = candidates[0]
        ind = catalogue.indicators[k]
        fallbacks.append(BaseYearFallback(ind.code, ind.name, settings.base_year, years[rows[k]],
                                          settings.normalisation))
    return rows, fallbacks


def _reference(values: np.ndarray, present: np.ndarray, years: list[int], catalogue: Catalogue,
               settings: Settings) -> tuple[np.ndarray, list[BaseYearFallback]]:
    """The cross-city values each period is normalised by, shaped (Y, C, K): each period's own, or each
    indicator's reference year's repeated; and the base-year fallbacks."""
    masked = np.where(present[:, :, None], values, np.nan)
    rows, fallbacks = reference_years(values, present, years, catalogue, settings)
    if rows is not None:
        fixed = masked[rows, :, np.arange(values.shape[2])].T  # (C, K): indicator k from year rows[k]
        masked = np.broadcast_to(fixed[None], masked.shape)
    return masked, fallbacks


def _std(masked: np.ndarray, settings: Settings) -> np.ndarray:
    ddof = 1 if settings.std == "sample" else 0
    with warnings.catch_warnings():  # a column with fewer than ddof + 1 values: NaN, no spread
        warnings.simplefilter("ignore", RuntimeWarning)
        sd = np.nanstd(masked, axis=1, ddof=ddof)
    return np.nan_to_num(sd)  # one city alone: no spread


def normalise(values: np.ndarray, present: np.ndarray, years: list[int], catalogue: Catalogue,
              settings: Settings) -> tuple[np.ndarray, np.ndarray]:
    """(normalised (Y, C, K), thresholds (Y, K)); the thresholds are NaN for the alternative methods.
    Outlier treatment (Settings.outliers) is applied first."""
    values, _ = treat_outliers(values, present, years, catalogue, settings)
    normalised, thresholds, _ = _normalise(values, present, years, catalogue, settings)
    return normalised, thresholds


def _normalise(values: np.ndarray, present: np.ndarray, years: list[int], catalogue: Catalogue,
               settings: Settings) -> tuple[np.ndarray, np.ndarray, list[BaseYearFallback]]:
    masked, fallbacks = _reference(values, present, years, catalogue, settings)
    Y, _, K = values.shape
    thresholds = np.full((Y, K), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an indicator nobody reported: NaN statistics
        if settings.normalisation == "threshold":
            A = _scale(masked, catalogue, settings)
            thresholds = A
            out = np.where(A[:, None, :] > 0, values / A[:, None, :], 0.0)
            if settings.cap:
                out = np.minimum(out, 1.0)
        elif settings.normalisation == "minmax":
            low, high = np.nanmin(masked, axis=1), np.nanmax(masked, axis=1)
            span = high - low
            out = np.where(span[:, None, :] > 0, (values - low[:, None, :]) / span[:, None, :], 1.0)
            if settings.cap:
                out = np.clip(out, 0.0, 1.0)
        else:
            mean, sd = np.nanmean(masked, axis=1), _std(masked, settings)
            out = np.where(sd[:, None, :] > 0, (values - mean[:, None, :]) / sd[:, None, :], 0.0)
    return np.where(present[:, :, None], out, np.nan), thresholds, fallbacks


def aggregate(normalised: np.ndarray, catalogue: Catalogue, settings: Settings,
              weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(composite, first-level scores, second-level scores) from normalised values (..., K)."""
    G, H = catalogue.group_matrices(weights)
    W = catalogue.first_weights(weights)
    if settings.aggregation == "arithmetic":
        first, second = normalised @ G, normalised @ H
        composite = first @ W
    else:
        logs = np.log(np.maximum(normalised, GEOMETRIC_FLOOR))
        first, second = np.exp(logs @ G), np.exp(logs @ H)
        composite = np.exp(logs @ (weights if weights is not None else catalogue.weights))
    return composite, first, second


def rank_desc(scores: np.ndarray, present: np.ndarray) -> np.ndarray:
    """(Y, C) ranks, 1 = highest, ties sharing the better rank (1, 2, 2, 4); 0 where absent."""
    ranks = np.zeros(scores.shape, dtype=int)
    for t in range(scores.shape[0]):
        here = present[t]
        ordered = np.sort(-scores[t, here])
        ranks[t, here] = np.searchsorted(ordered, -scores[t, here], side="left") + 1
    return ranks


def growth_base(years: list[int], blocked: Mapping[int, object], settings: Settings) -> int | None:
    """The year whose thresholds growth is computed on: the chosen base year, or the first year that computes."""
    if settings.base_year is not None:
        return settings.base_year
    return next((y for y in years if y not in blocked), None)


def _yearly_growth(composite: np.ndarray, years: list[int]) -> np.ndarray:
    growth = np.full(composite.shape, np.nan)
    for t in range(1, len(years)):
        if years[t] - years[t - 1] == 1:
            with np.errstate(invalid="ignore", divide="ignore"):
                growth[t] = composite[t] / composite[t - 1] - 1
    return growth


def _mean_over_cities(scores: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():  # a year nobody was assessed in: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(scores, axis=1)


def compute(panel: Panel, catalogue: Catalogue, settings: Settings = Settings(), growth: bool = True) -> Result:
    """The index for every year. With per-period thresholds (the default) the year's composite and rank stand
    on that year's thresholds, and growth on a second normalisation with thresholds fixed to the first year
    that computes (growth_base). `growth=False` skips that second run, for callers that read only composites
    and ranks (short boards, what-if, many times over): their growth and fixed-base figures are NaN."""
    if panel.values.shape[2] != len(catalogue.indicators):
        raise MethodError("数据的指标与指标目录不一致")
    if not panel.years:
        raise MethodError("没有可计算的数据")
    values, imputed, present, blocked = prepare(panel, settings, catalogue.codes)
    treated_values, treated = treat_outliers(values, present, panel.years, catalogue, settings)
    normalised, thresholds, fallbacks = _normalise(treated_values, present, panel.years, catalogue, settings)
    composite, first, second = aggregate(normalised, catalogue, settings)
    composite = np.where(present, composite, np.nan)
    rank = rank_desc(composite, present)
    average = _mean_over_cities(composite)
    first_average = _mean_over_cities(np.where(present[:, :, None], first, np.nan))
    base_year = growth_base(panel.years, blocked, settings)
    fixed_composite = np.full(composite.shape, np.nan)
    growth_fallbacks: list[BaseYearFallback] = []
    if settings.base_year is not None:
        fixed_composite = composite
    elif growth and base_year is not None:
        fixed_settings = replace(settings, base_year=base_year)
        fixed_normalised, _, growth_fallbacks = _normalise(treated_values, present, panel.years, catalogue,
                                                           fixed_settings)
        fixed_composite = np.where(present, aggregate(fixed_normalised, catalogue, fixed_settings)[0], np.nan)
    return Result(catalogue, settings, panel.cities, panel.years, present, values, imputed, normalised,
                  thresholds, composite, first, second, rank, _yearly_growth(fixed_composite, panel.years), average,
                  first_average, blocked=blocked, fallbacks=fallbacks, growth_base_year=base_year,
                  fixed_composite=fixed_composite, fixed_average=_mean_over_cities(fixed_composite),
                  growth_fallbacks=growth_fallbacks, treated=treated)
