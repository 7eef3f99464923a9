"""Analysis beyond the report, pure numpy like method.py: short boards, sensitivity of ranks, what-if.

Sensitivity perturbs the weights by Dirichlet draws centred on the catalogue's (Delphi) weights,
w ~ Dirichlet(concentration * w0), so E[w] = w0 and a larger concentration means draws closer to w0;
it also switches normalisation and aggregation among the combinations below (each inheriting the other
settings). A city's ranks over all draws of all combinations give its median rank and its 90 % rank
interval (5th to 95th percentile). Leaving an indicator out gives its weight to the others of its
first-level indicator in proportion to theirs (first-level weights unchanged), and measures how far
the ranks move.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from voucher.info_consumption_index import method
from voucher.info_consumption_index.method import Catalogue, Panel, Result, Settings

COMBINATIONS: tuple[tuple[str, str], ...] = (
    ("threshold", "arithmetic"),
    ("threshold", "geometric"),
    ("minmax", "arithmetic"),
    ("minmax", "geometric"),
    ("zscore", "arithmetic"),
)
DEFAULT_DRAWS = 1000
DEFAULT_CONCENTRATION = 100.0
DEFAULT_SEED = 20220301


def combination_label(normalisation: str, aggregation: str) -> str:
    return f"{method.NORMALISATIONS[normalisation].split('（')[0]} × {method.AGGREGATIONS[aggregation].split('（')[0]}"


# Short boards ----------------------------------------------------------------------------------------


@dataclass
class ShortBoard:
    code: str
    name: str
    unit: str
    value: float
    peer_median: float
    normalised: float
    peer_median_normalised: float
    #: the peers' median normalised value minus the city's: how far below the median it is
    gap: float
    #: the composite the city would gain by reaching the peers' median value (recomputed in full,
    #: thresholds included), in index points (the composite's own 0-1 scale)
    points: float
    imputed: bool


def short_boards(result: Result, panel: Panel, city: str, year: int, limit: int | None = 5) -> list[ShortBoard]:
    """The indicators where `city` is furthest below the median of the other cities of `year`."""
    t = result.year_index(year)
    c = result.cities.index(city)
    if not result.present[t, c]:
        raise method.MethodError(f"{city} 没有 {year} 年的数据")
    peers = result.present[t].copy()
    peers[c] = False
    if not peers.any():
        return []
    catalogue = result.catalogue
    boards = []
    for k, ind in enumerate(catalogue.indicators):
        own, median = result.values[t, c, k], float(np.median(result.values[t, peers, k]))
        norm_own = result.normalised[t, c, k]
        norm_median = float(np.median(result.normalised[t, peers, k]))
        if not own < median:
            continue
        after = method.compute(panel.with_value(city, year, k, median), catalogue, result.settings, growth=False)
        boards.append(ShortBoard(
            ind.code, ind.name, ind.unit, float(own), median, float(norm_own), norm_median, norm_median - float(norm_own),
            float(after.composite[t, c] - result.composite[t, c]), bool(result.imputed[t, c, k]),
        ))
    boards.sort(key=lambda b: (-b.gap, b.code))
    return boards if limit is None else boards[:limit]


# What-if ---------------------------------------------------------------------------------------------


@dataclass
class WhatIf:
    city: str
    year: int
    changes: list[tuple[str, float, float]]  # (code, old value, new value)
    before: float
    after: float
    rank_before: int
    rank_after: int
    first_before: list[float]
    first_after: list[float]
    cities: int

    @property
    def delta(self) -> float:
        return self.after - self.before


def what_if(result: Result, panel: Panel, city: str, year: int, changes: dict[str, float]) -> WhatIf:
    t = result.year_index(year)
    if city not in result.cities or not result.present[t, result.cities.index(city)]:
        raise method.MethodError(f"{city} 没有 {year} 年的数据")
    c = result.cities.index(city)
    codes = result.catalogue.codes
    changed = panel
    listed = []
    for code, value in changes.items():
        if code not in codes:
            raise method.MethodError(f"未知的指标代码：{code}")
        k = codes.index(code)
        ind = result.catalogue.indicators[k]
        if value < 0 or (ind.kind == "share" and value > 100):
            raise method.MethodError(f"{code} 的取值超出范围（{'0-100' if ind.kind == 'share' else '不能为负数'}）")
        listed.append((code, float(result.values[t, c, k]), float(value)))
        changed = changed.with_value(city, year, k, value)
    after = method.compute(changed, result.catalogue, result.settings, growth=False)
    return WhatIf(city, year, listed, float(result.composite[t, c]), float(after.composite[t, c]),
                  int(result.rank[t, c]), int(after.rank[t, c]), [float(v) for v in result.first[t, c]],
                  [float(v) for v in after.first[t, c]], int(result.present[t].sum()))


# Sensitivity -----------------------------------------------------------------------------------------


@dataclass
class LeaveOneOut:
    code: str
    name: str
    mean_shift: float  # mean absolute rank change over the cities
    max_shift: int
    most_moved: str  # the city whose rank moves most


@dataclass
class Sensitivity:
    year: int
    cities: list[str]
    baseline_rank: np.ndarray  # (C,)
    median_rank: np.ndarray
    low_rank: np.ndarray  # 5th percentile (the better end)
    high_rank: np.ndarray  # 95th percentile
    by_combination: dict[tuple[str, str], np.ndarray]  # the rank with the catalogue's weights
    leave_one_out: list[LeaveOneOut]
    draws: int
    concentration: float
    combinations: list[tuple[str, str]] = field(default_factory=list)

    def rows(self) -> list[dict]:
        out = []
        for n, city in enumerate(self.cities):
            out.append({
                "city": city, "rank": int(self.baseline_rank[n]), "median": float(self.median_rank[n]),
                "low": float(self.low_rank[n]), "high": float(self.high_rank[n]),
                "combinations": {combo: int(ranks[n]) for combo, ranks in self.by_combination.items()},
            })
        out.sort(key=lambda r: (r["rank"], r["city"]))
        return out


def _ranks(scores: np.ndarray) -> np.ndarray:
    """Ranks of the cities (axis 0) in each column, 1 = highest; ties (rare with continuous weights)
    broken by order. One sort per column, the ranks scattered back: a second argsort would double it."""
    by_column = np.ascontiguousarray(scores.T)  # (D, C): each row sorted in contiguous memory
    order = np.argsort(-by_column, axis=1)
    ranks = np.empty(order.shape, dtype=np.int32)
    np.put_along_axis(ranks, order, np.arange(1, order.shape[1] + 1, dtype=np.int32)[None, :], axis=1)
    return ranks.T


def _scores(normalised: np.ndarray, weights: np.ndarray, aggregation: str) -> np.ndarray:
    """Scores (C, D) of cities' normalised values (C, K) under weight vectors (D, K), for ranking only:
    for geometric aggregation the log of the composite (the same order, without D x C exponentials)."""
    if aggregation == "arithmetic":
        return normalised @ weights.T
    return np.log(np.maximum(normalised, method.GEOMETRIC_FLOOR)) @ weights.T


def _rank_percentiles(ranks: np.ndarray, quantiles: tuple[float, ...]) -> list[np.ndarray]:
    """Per city (row), the rank at each quantile of its ranks over the draws (columns): the smallest rank
    whose share of draws at or above it reaches the quantile (the inverted empirical distribution, so a
    percentile is always a rank that occurred). Counting, not sorting: ranks are small integers."""
    cities, draws = ranks.shape
    cells = (np.arange(cities)[:, None] * (cities + 1) + ranks).ravel()  # (city, rank) as one index
    counts = np.bincount(cells, minlength=cities * (cities + 1)).reshape(cities, cities + 1)
    cumulative = np.cumsum(counts, axis=1) / draws
    return [np.argmax(cumulative >= q - 1e-12, axis=1).astype(float) for q in quantiles]


def leave_one_out_weights(catalogue: Catalogue) -> np.ndarray:
    """(K, K): row k is the catalogue's weights with indicator k left out, its weight given to the rest
    of its first-level indicator in proportion (or, if it was alone there, to all the rest)."""
    w0 = catalogue.weights
    firsts = np.array([method.FIRST_LEVELS.index(i.first) for i in catalogue.indicators])
    out = np.tile(w0, (len(w0), 1))
    for k in range(len(w0)):
        out[k, k] = 0.0
        same = (firsts == firsts[k]) & (np.arange(len(w0)) != k)
        if out[k, same].sum() > 0:
            out[k, same] *= (w0[same].sum() + w0[k]) / out[k, same].sum()
        elif out[k].sum() > 0:
            out[k] /= out[k].sum()
    return out


def sensitivity(panel: Panel, catalogue: Catalogue, settings: Settings, years: list[int] | None = None,
                draws: int = DEFAULT_DRAWS, concentration: float = DEFAULT_CONCENTRATION,
                seed: int = DEFAULT_SEED, combinations=COMBINATIONS) -> dict[int, Sensitivity]:
    """Sensitivity of every city's rank, per year (all years of the panel unless `years` is given)."""
    years = panel.years if years is None else years
    values, _, present, blocked = method.prepare(panel, settings, catalogue.codes)
    w0 = catalogue.weights
    rng = np.random.default_rng(seed)
    alpha = concentration * np.maximum(w0, 1e-9)
    base_combo = (settings.normalisation, settings.aggregation)
    combos = [base_combo] + [c for c in combinations if c != base_combo]
    normalised = {}
    for norm, agg in combos:
        combo_settings = replace(settings, normalisation=norm, aggregation=agg)
        if (norm, agg) not in normalised:
            normalised[(norm, agg)] = method.normalise(values, present, panel.years, catalogue, combo_settings)[0]
    loo = leave_one_out_weights(catalogue)
    out = {}
    for year in years:
        if year not in panel.years:
            raise method.MethodError(f"没有 {year} 年的数据")
        if year in blocked:
            raise method.MissingValues(blocked[year], year=year)
        t = panel.years.index(year)
        here = present[t]
        cities = [c for c, p in zip(panel.cities, here) if p]
        weights = rng.dirichlet(alpha, size=draws)  # (D, K)
        pooled, by_combo = [], {}
        for combo in combos:
            N = normalised[combo][t, here]  # (C, K)
            base = _scores(N, w0[None, :], combo[1]).T  # (1, C): ties share a rank, as in the ranking table
            by_combo[combo] = method.rank_desc(base, np.ones(base.shape, dtype=bool))[0]
            pooled.append(_ranks(_scores(N, weights, combo[1])))
        ranks = np.concatenate(pooled, axis=1)
        low, median, high = _rank_percentiles(ranks, (0.05, 0.5, 0.95))
        baseline = by_combo[base_combo]
        moved = np.abs(_ranks(_scores(normalised[base_combo][t, here], loo, base_combo[1])) - baseline[:, None])
        leave = [LeaveOneOut(ind.code, ind.name, float(moved[:, k].mean()), int(moved[:, k].max()),
                             cities[int(moved[:, k].argmax())] if len(cities) else "")
                 for k, ind in enumerate(catalogue.indicators)]
        leave.sort(key=lambda item: (-item.mean_shift, item.code))
        out[year] = Sensitivity(year, cities, baseline, median, low, high, by_combo, leave, draws, concentration,
                                combos)
    return out


# Variance-based split of rank uncertainty ---------------------------------------------------------------
#
# Which source drives the rank uncertainty? Each source is a factor of the model "settings -> ranking", and
# the output is the mean absolute shift of the cities' ranks from the ranking under the chosen settings (the
# summary statistic of Saisana, Saltelli & Tarantola, JRSS A 168(2), 2005, for composite indicators). Its
# variance is split by Sobol indices: first order S_i (the share of the variance the factor explains alone)
# and total effect S_Ti (alone and in interaction with the others), estimated from two independent sample
# matrices A and B and the k matrices AB_i (A with column i from B): S_i = mean(f(B) (f(AB_i) - f(A))) / V
# (Saltelli et al. 2010, Comput. Phys. Commun. 181, table 2 (b)) and S_Ti = mean((f(A) - f(AB_i))^2) / (2 V)
# (Jansen 1999), V the variance of f over A and B: N (k + 2) runs. SALib implements the same estimators; it
# is not used because it would bring scipy and matplotlib for a few lines of numpy. Discrete factors are
# drawn uniform on (0, 1) and mapped to their levels, as SALib users do; the weights factor picks one of a
# pool of Dirichlet draws around the Delphi weights. Estimates carry Monte Carlo error (about 1/sqrt(N)):
# small negative values are noise around 0.

#: base sample size N: N (k + 2) = 65,536 runs of the ranking; the totals then vary by about 0.01 between
#: seeds on the illustrative data, first orders by about 0.1 (their estimator is the noisier one)
SOBOL_DEFAULT_N = 8192
SOURCE_LABELS = {"weights": "权重（Dirichlet 扰动）", "method": "无量纲化与合成方法", "std": "标准差口径（样本/总体）",
                 "cap": "封顶为 1（是/否）", "missing": "插补方式（中位数/上一年）", "base_year": "阈值基期（各期/固定某年）"}


@dataclass
class SobolSplit:
    year: int
    runs: int
    #: (source key, its levels in Chinese, first order, total effect), in SOURCE_LABELS order
    sources: list[tuple[str, str, float, float]]
    #: mean absolute rank shift from the chosen settings' ranking over the sample's runs, and its sd
    mean_shift: float
    sd_shift: float
    cities: list[str]
    low_rank: np.ndarray  # per city: 5th and 95th percentile of its rank over every run of A and B
    high_rank: np.ndarray

    @property
    def driver(self) -> tuple[str, float]:
        """The source with the largest total effect, and that effect."""
        key, _, _, total = max(self.sources, key=lambda s: s[3])
        return SOURCE_LABELS[key], total

    def sentence(self) -> str:
        if self.sd_shift == 0:
            return "各来源的变化都不改变排名。"
        ordered = sorted(self.sources, key=lambda s: -s[3])
        (_, label, first, total), (_, second_label, _, second_total) = ordered[0], ordered[1]
        text = (f"排名的不确定性主要来自{label}（总效应约 {min(max(total, 0), 1) * 100:.0f}%，"
                f"单独解释约 {max(first, 0) * 100:.0f}%）")
        if second_total > 0.5 * total:
            text += f"，其次是{second_label}（总效应约 {min(max(second_total, 0), 1) * 100:.0f}%）"
        quiet = [s[1] for s in self.sources if s[3] < 0.01]
        if quiet:
            text += f"；{'、'.join(quiet)}几乎不影响排名"
        return text + "。总效应大于一阶指数的部分来自与其他来源的交互。"


def _levels(panel: Panel, catalogue: Catalogue, settings: Settings, year: int, combinations) -> dict[str, list]:
    """The levels of each source that can compute `year`."""
    missing = []
    blocked_by = {}
    has_gaps = bool(np.isnan(panel.values)[panel.present].any())
    choices = ["median", "previous"] if has_gaps or settings.missing != "refuse" else [settings.missing]
    for how in choices:
        _, _, _, blocked = method.prepare(panel, replace(settings, missing=how, base_year=None), catalogue.codes)
        if year not in blocked:
            missing.append(how)
            blocked_by[how] = set(blocked)
    if not missing:
        raise method.MethodError(f"{year} 年在任何插补方式下都缺少数据，无法做方差分解")
    closed = set().union(*blocked_by.values())
    return {
        "weights": [None],  # continuous: the level is a draw from the pool
        "method": list(dict.fromkeys([(settings.normalisation, settings.aggregation), *combinations])),
        "std": ["sample", "population"],
        "cap": [True, False],
        "missing": missing,
        "base_year": [None] + [y for y in panel.years if y not in closed],
    }


def sobol_indices(model, A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(first-order, total, f(A), f(B)) Sobol indices of model (rows of factors in (0, 1) -> outputs) from the
    sample matrices A and B (N, k): S_i by Saltelli et al. 2010, S_Ti by Jansen 1999 (see above)."""
    fA, fB = model(A), model(B)
    variance = float(np.var(np.concatenate([fA, fB])))
    firsts, totals = np.zeros(A.shape[1]), np.zeros(A.shape[1])
    for i in range(A.shape[1]):
        AB = A.copy()
        AB[:, i] = B[:, i]
        fAB = model(AB)
        if variance > 0:
            firsts[i] = np.mean(fB * (fAB - fA)) / variance
            totals[i] = np.mean((fA - fAB) ** 2) / (2 * variance)
    return firsts, totals, fA, fB


def source_levels(panel: Panel, catalogue: Catalogue, settings: Settings, year: int,
                  combinations=COMBINATIONS) -> dict[str, str]:
    """Each source's levels in the split, in Chinese, for the page's table."""
    levels = _levels(panel, catalogue, settings, year, combinations)
    return {
        "weights": "围绕德尔菲权重的狄利克雷抽样",
        "method": "、".join(combination_label(*combo) for combo in levels["method"]),
        "std": "样本、总体",
        "cap": "是、否",
        "missing": "、".join(method.MISSING[how].replace("以", "").replace("插补", "") for how in levels["missing"]),
        "base_year": "各期分别计算、" + "、".join(f"固定为 {y} 年" for y in levels["base_year"][1:]),
    }


def sobol_split(panel: Panel, catalogue: Catalogue, settings: Settings, year: int, n: int = SOBOL_DEFAULT_N,
                concentration: float = DEFAULT_CONCENTRATION, seed: int = DEFAULT_SEED,
                combinations=COMBINATIONS) -> SobolSplit:
    """First-order and total Sobol indices of the mean absolute rank shift in `year`, by source."""
    if year not in panel.years:
        raise method.MethodError(f"没有 {year} 年的数据")
    t = panel.years.index(year)
    levels = _levels(panel, catalogue, settings, year, combinations)
    keys = list(SOURCE_LABELS)
    k = len(keys)
    rng = np.random.default_rng(seed)
    w0 = catalogue.weights
    pool = rng.dirichlet(concentration * np.maximum(w0, 1e-9), size=n)
    A, B = rng.random((n, k)), rng.random((n, k))
    prepared: dict[str, tuple] = {}
    normalised: dict[tuple, np.ndarray] = {}

    def discrete(u: np.ndarray, key: str) -> np.ndarray:
        return np.minimum((u * len(levels[key])).astype(int), len(levels[key]) - 1)

    def normalised_for(codes: tuple) -> np.ndarray:
        """(C, K) normalised values of the year under one combination of the discrete sources (cached: the
        N (k + 2) runs share a few dozen combinations)."""
        if codes not in normalised:
            (norm, agg), std, cap, how, base = (levels[key][c] for key, c in zip(keys[1:], codes))
            if how not in prepared:
                prepared[how] = method.prepare(panel, replace(settings, missing=how, base_year=None), catalogue.codes)
            values, _, present, _ = prepared[how]
            combo = replace(settings, normalisation=norm, aggregation=agg, std=std, cap=cap, missing=how, base_year=base)
            normalised[codes] = method.normalise(values, present, panel.years, catalogue, combo)[0][t]
        return normalised[codes]

    here = None
    for how in levels["missing"]:
        present = method.prepare(panel, replace(settings, missing=how, base_year=None), catalogue.codes)[2][t]
        here = present if here is None else here & present
    assert here is not None
    cities = [c for c, p in zip(panel.cities, here) if p]
    baseline_settings = replace(settings, missing=levels["missing"][0] if settings.missing not in levels["missing"]
                                else settings.missing)
    values, _, present, _ = method.prepare(panel, replace(baseline_settings, base_year=None), catalogue.codes)
    base_norm = method.normalise(values, present, panel.years, catalogue, baseline_settings)[0][t][here]
    baseline = _ranks(_scores(base_norm, w0[None, :], settings.aggregation))[:, 0]

    def run(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(outputs (N,), ranks (C, N)) of the runs whose factors are the rows of matrix."""
        weights = pool[np.minimum((matrix[:, 0] * n).astype(int), n - 1)]
        codes = np.stack([discrete(matrix[:, j], key) for j, key in enumerate(keys) if j > 0], axis=1)
        ranks = np.empty((len(cities), len(matrix)), dtype=np.int32)
        groups: dict[tuple, list[int]] = {}
        for row, combo in enumerate(map(tuple, codes)):
            groups.setdefault(combo, []).append(row)
        for combo, rows in groups.items():
            agg = levels["method"][combo[0]][1]
            ranks[:, rows] = _ranks(_scores(normalised_for(combo)[here], weights[rows], agg))
        return np.abs(ranks - baseline[:, None]).mean(axis=0), ranks

    kept: list[np.ndarray] = []

    def outputs(matrix: np.ndarray) -> np.ndarray:
        out, ranks = run(matrix)
        if len(kept) < 2:  # A and B: their ranks give each city's interval over every source at once
            kept.append(ranks)
        return out

    firsts, totals, fA, fB = sobol_indices(outputs, A, B)
    sources = [(key, SOURCE_LABELS[key], float(firsts[i]), float(totals[i])) for i, key in enumerate(keys)]
    ranks_a, ranks_b = kept
    low, high = _rank_percentiles(np.concatenate([ranks_a, ranks_b], axis=1), (0.05, 0.95))
    shifts = np.concatenate([fA, fB])
    return SobolSplit(year, n * (k + 2), sources, float(shifts.mean()), float(shifts.std()), cities, low, high)
