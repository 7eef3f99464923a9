"""Incremental (causal) leverage by difference in differences: extra sales per yuan of subsidy paid.

Each unit is one merchant in one campaign's panel: its mean daily sales in the campaign's days minus
its mean in the weeks before (its own baseline), against the same change at comparable merchants that
took no part (the campaign's intercept absorbs what happened to everyone). The slope on the change in
mean daily subsidy paid at the merchant is the causal leverage:

    change_i = a_campaign(i) + b x dose_i + e_i,   dose_i = subsidy per day during - before

Within-campaign demeaning gives b; the interval is cluster-robust by merchant (a merchant can sit in
several campaigns' panels) with the usual small-sample factor, so it holds with unequal noise across
merchants of very different size. Pure numpy: the panel comes from voucher/analytics/panel.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

Z_95 = 1.959963984540054
#: fewer units than this on either side gives no estimate rather than a wide, fragile one
MIN_TREATED = 20
MIN_COMPARABLE = 20


@dataclass(frozen=True)
class CausalEstimate:
    value: float | None
    low: float | None
    high: float | None
    std_error: float | None
    treated: int
    comparable: int
    campaigns: int
    #: why there is no estimate (Chinese, for the page); None when there is one
    missing_reason: str | None = None

    def as_tuple(self) -> tuple[float, float, float] | None:
        if self.value is None or self.low is None or self.high is None:  # all three, or none
            return None
        return self.value, self.low, self.high


def estimate(group: np.ndarray, change: np.ndarray, dose: np.ndarray, cluster: np.ndarray,
             is_treated: np.ndarray | None = None) -> CausalEstimate:
    """The slope of change on dose with one intercept per group, and its 95% interval. `is_treated`
    marks the redeeming units (default: a dose other than zero); the counts are distinct clusters
    (merchants), not units, since one merchant can sit in several campaigns' panels."""
    group, cluster = np.asarray(group), np.asarray(cluster)
    change, dose = np.asarray(change, dtype=float), np.asarray(dose, dtype=float)
    is_treated = dose != 0 if is_treated is None else np.asarray(is_treated, dtype=bool)
    treated = len(np.unique(cluster[is_treated]))
    comparable = len(np.unique(cluster[~is_treated]))
    groups, g_index = np.unique(group, return_inverse=True)
    counts: dict[str, Any] = dict(treated=treated, comparable=comparable, campaigns=len(groups))
    if treated < MIN_TREATED or comparable < MIN_COMPARABLE:
        return CausalEstimate(None, None, None, None, **counts, missing_reason=(
            f"样本不足：需要至少 {MIN_TREATED} 家有基线的核销商户和 {MIN_COMPARABLE} 家可比商户，"
            f"现有 {treated} 家和 {comparable} 家"))

    def demeaned(values: np.ndarray) -> np.ndarray:
        means = np.bincount(g_index, weights=values) / np.bincount(g_index)
        return values - means[g_index]

    y, d = demeaned(change), demeaned(dose)
    sxx = float(d @ d)
    if sxx <= 0:
        return CausalEstimate(None, None, None, None, **counts, missing_reason="补贴剂量在活动内没有差异，无法估计")
    slope = float(d @ y) / sxx
    residual = y - slope * d
    _, c_index = np.unique(cluster, return_inverse=True)
    scores = np.bincount(c_index, weights=d * residual)
    n, n_clusters, k = len(y), len(scores), len(groups) + 1
    correction = n_clusters / max(n_clusters - 1, 1) * (n - 1) / max(n - k, 1)
    se = float(np.sqrt(correction * float(scores @ scores)) / sxx)
    return CausalEstimate(slope, slope - Z_95 * se, slope + Z_95 * se, se, **counts)


def simulate(seed: int, true_leverage: float, campaigns: int = 4, treated: int = 200, comparable: int = 200,
             pre_days: int = 56, during_days: int = 42, noise: float = 0.25) -> tuple[np.ndarray, ...]:
    """A synthetic panel with a known effect, to check the estimator's coverage: merchants of unequal
    size and weekday pattern, a campaign-wide shift, subsidy that grows with size, daily noise.
    Returns (group, change, dose, cluster) as estimate() takes them."""
    rng = np.random.default_rng(seed)
    rows = []
    merchant = 0
    for c in range(campaigns):
        shift = rng.normal(0, 300_00)  # what happened to everyone in that campaign's weeks, fen per day
        for is_treated, n in ((True, treated), (False, comparable)):
            level = rng.lognormal(np.log(3_000_00), 0.8, n)
            for i in range(n):
                subsidy = rng.gamma(2.0, level[i] * 0.02, during_days) if is_treated else np.zeros(during_days)
                before = level[i] * (1 + rng.normal(0, noise, pre_days))
                during = level[i] * (1 + rng.normal(0, noise, during_days)) + shift + true_leverage * subsidy
                rows.append((c, during.mean() - before.mean(), subsidy.mean(), merchant))
                merchant += 1
    table = np.asarray(rows)
    return table[:, 0], table[:, 1], table[:, 2], table[:, 3]
