"""The ICDI-EC computation (CAICT 2022, table 2 and the appendix), pure numpy: no Flask, no database.

The report's method, step by step:

1. normalise each third-level value by a threshold, I = X / A: A = 100 % for a share indicator, and for
   a numeric indicator the median plus two standard deviations across the cities of the same period;
2. the composite I = sum_i W_i sum_j W_ij sum_k W_ijk I_ijk. With third-level weights equal within a
   first-level indicator, the inner sums (the first-level scores) are the weighted means of their
   third-level values, on the same 0-1 scale as the composite.

The report leaves four points open; each is a named setting here (docs/design.md §7 ICDI-EC), with the
stated default: sample standard deviation (Excel STDEV.S), I capped at 1, missing values refused
unless an imputation is chosen (imputed cells are flagged), thresholds per period (or fixed to a base
year, so a city whose data do not change keeps its score). Beside the report's method, never replacing
it: min-max and z-score normalisation, and geometric aggregation.

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
    def __init__(self, cells: list[tuple[str, int, str]]):
        self.cells = cells
        shown = "、".join(f"{city} {year} 年 {code}" for city, year, code in cells[:12])
        more = f" 等 {len(cells)} 处" if len(cells) > 12 else ""
        super().__init__(
            f"缺少数据：{shown}{more}。默认不允许缺失值；如需计算，请明确选择插补方式"
            "（同年各城市中位数，或该城市上一年数值），插补的单元格会在所有结果中标出。"
        )


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

    def __post_init__(self):
        if self.normalisation not in NORMALISATIONS:
            raise MethodError(f"未知的无量纲化方法：{self.normalisation}")
        if self.aggregation not in AGGREGATIONS:
            raise MethodError(f"未知的合成方法：{self.aggregation}")
        if self.std not in STDS:
            raise MethodError(f"未知的标准差口径：{self.std}")
        if self.missing not in MISSING:
            raise MethodError(f"未知的缺失值处理方式：{self.missing}")
        if self.normalisation == "zscore" and self.aggregation == "geometric":
            raise MethodError("Z 分数可为负数，不能做几何平均；请改用算术平均或其他无量纲化方法")

    @property
    def is_report_method(self) -> bool:
        return self.normalisation == "threshold" and self.aggregation == "arithmetic"

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
    growth: np.ndarray  # (Y, C): composite over the previous year's, minus 1; NaN for the first year
    average: np.ndarray  # (Y,): mean composite over the cities of the year
    first_average: np.ndarray  # (Y, 3)
    extra: dict = field(default_factory=dict)

    @property
    def average_annual_growth(self) -> float | None:
        """Compound annual growth of the average, first year to last (the report's 6.6 % a year)."""
        known = [(y, a) for y, a in zip(self.years, self.average) if not np.isnan(a)]
        if len(known) < 2 or known[0][1] <= 0:
            return None
        (y0, a0), (y1, a1) = known[0], known[-1]
        return float((a1 / a0) ** (1 / (y1 - y0)) - 1)

    def year_index(self, year: int) -> int:
        if year not in self.years:
            raise MethodError(f"没有 {year} 年的数据")
        return self.years.index(year)

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


def impute(panel: Panel, settings: Settings, codes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(values, imputed mask). Refuses missing cells of assessed city-years unless told how to fill them."""
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
            can = np.isnan(values[t]) & present[t] & ~np.isnan(values[t - 1])
            values[t][can] = values[t - 1][can]  # carries forward over several years if need be
            imputed[t] |= can
    still = np.argwhere(np.isnan(values) & present[:, :, None])
    if len(still):
        raise MissingValues([(panel.cities[c], panel.years[t], codes[k]) for t, c, k in still])
    return values, imputed


def _reference(values: np.ndarray, present: np.ndarray, years: list[int], settings: Settings):
    """The cross-city statistics each period is normalised by, shaped (Y, K): each period's own, or
    the base year's repeated."""
    masked = np.where(present[:, :, None], values, np.nan)
    if settings.base_year is not None:
        if settings.base_year not in years:
            raise MethodError(f"阈值基期 {settings.base_year} 年不在数据年份之中（{years[0]}-{years[-1]}）")
        t = years.index(settings.base_year)
        masked = np.broadcast_to(masked[t:t + 1], masked.shape)
    return masked


def _std(masked: np.ndarray, settings: Settings) -> np.ndarray:
    ddof = 1 if settings.std == "sample" else 0
    with warnings.catch_warnings():  # a column with fewer than ddof + 1 values: NaN, no spread
        warnings.simplefilter("ignore", RuntimeWarning)
        sd = np.nanstd(masked, axis=1, ddof=ddof)
    return np.nan_to_num(sd)  # one city alone: no spread


def normalise(values: np.ndarray, present: np.ndarray, years: list[int], catalogue: Catalogue,
              settings: Settings) -> tuple[np.ndarray, np.ndarray]:
    """(normalised (Y, C, K), thresholds (Y, K)); the thresholds are NaN for the alternative methods."""
    masked = _reference(values, present, years, settings)
    Y, _, K = values.shape
    thresholds = np.full((Y, K), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an indicator nobody reported: NaN statistics
        if settings.normalisation == "threshold":
            A = np.nanmedian(masked, axis=1) + 2 * _std(masked, settings)
            A[:, catalogue.is_share] = 100.0
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
    return np.where(present[:, :, None], out, np.nan), thresholds


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


def compute(panel: Panel, catalogue: Catalogue, settings: Settings = Settings()) -> Result:
    if panel.values.shape[2] != len(catalogue.indicators):
        raise MethodError("数据的指标与指标目录不一致")
    if not panel.years:
        raise MethodError("没有可计算的数据")
    present = panel.present
    values, imputed = impute(panel, settings, catalogue.codes)
    normalised, thresholds = normalise(values, present, panel.years, catalogue, settings)
    composite, first, second = aggregate(normalised, catalogue, settings)
    composite = np.where(present, composite, np.nan)
    rank = rank_desc(composite, present)
    growth = np.full(composite.shape, np.nan)
    for t in range(1, len(panel.years)):
        if panel.years[t] - panel.years[t - 1] == 1:
            with np.errstate(invalid="ignore", divide="ignore"):
                growth[t] = composite[t] / composite[t - 1] - 1
    with warnings.catch_warnings():  # a year nobody was assessed in: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        average = np.nanmean(composite, axis=1)
        first_average = np.nanmean(np.where(present[:, :, None], first, np.nan), axis=1)
    return Result(catalogue, settings, panel.cities, panel.years, present, values, imputed, normalised,
                  thresholds, composite, first, second, rank, growth, average, first_average)
