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
        after = method.compute(panel.with_value(city, year, k, median), catalogue, result.settings)
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
    after = method.compute(changed, result.catalogue, result.settings)
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
