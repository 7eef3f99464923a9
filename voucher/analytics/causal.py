"""Incremental (causal) leverage: extra sales each yuan of subsidy really caused, net, with the checks
that say whether the figure can be trusted.

Each unit is one merchant in one campaign's panel, with its sales and the subsidy paid to it week by week
(voucher/analytics/panel.py builds the weeks). The windows, counted from the campaign's first day:

    base         weeks -8 .. -3   the merchant's own normal level
    anticipation weeks -2 .. -1   announced campaigns make customers wait: counted in the effect, not the base
    during       the campaign's weeks
    post         4 weeks after    purchases pulled forward show as a dip here: counted in the effect

The net figure is a ratio of totals over the participating ("treated") units:

    leverage = sum over treated of extra sales in anticipation + during + post
               / sum over treated of the subsidy paid in those weeks above their base rate

where a unit's extra sales are its sales minus its counterfactual: its base level carried forward by the
change the comparable merchants of the same campaign (eligible, no subsidy at all) show. That change is
fitted per campaign as  a + g / base  in relative terms, so a proportional shock (everyone x 1.01) and an
additive one (everyone + 300 yuan a day) are both absorbed. As a ratio of totals the figure needs neither
a constant effect nor a dose-response: merchants whose effect differs by size, or whose subsidy follows
their own busy weeks, still add up to the total extra over the total paid.

It assumes that, without the campaign, participants would have changed as comparables of the same
campaign did (parallel trends), that comparables are not themselves hit (no displacement), and that
the four weeks after hold the pull-forward. Three checks test what the data can test; when one fails at
the 1 % level the estimate is refused ("不能可靠估计") with the reason, instead of a number:

    placebo      weeks -5..-3 against weeks -8..-6, as if the campaign had begun then: participants must
                 not already be pulling away (a pre-trend)
    post         participants must not stay above the comparables after the subsidy stops: a lasting gap
                 is growth that selected into the campaign, not its effect (pull-forward makes it negative)
    displacement comparables in districts where participants took more subsidy must not fall more
                 (by campaign and district; not run where the panel has too few district cells)

Each campaign needs MIN_TREATED participants and MIN_COMPARABLE comparables of its own (a campaign
short of either is left out and named, not pooled with the others). The 95 % interval is cluster-robust
by merchant (a merchant can stand in several campaigns' panels), from the estimator's influence
function; it is for these campaigns. Beside it, with at least MIN_CAMPAIGNS_ACROSS campaigns, a wild
cluster bootstrap across campaigns (Webb's six-point weights, all sign patterns enumerated when few)
gives the interval for what a campaign like these would do. Pure numpy.

benchmarks/causal_scenarios.py measures bias, coverage and refusals under eight kinds of data.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from voucher.core.money import short_yuan

Z_95 = 1.959963984540054
#: two-sided 1 % (placebo) and one-sided 1 % (post gap, displacement): a check fails beyond these
Z_TWO_SIDED = 2.5758293035489
Z_ONE_SIDED = 2.3263478740408
#: each campaign's own minimum, on either side
MIN_TREATED = 20
MIN_COMPARABLE = 20
MIN_CAMPAIGNS_ACROSS = 4
#: a unit counts with at least this many days with a sales baseline in the window
MIN_BASE_DAYS = 28
MIN_ANTICIPATION_DAYS = 7
MIN_DURING_DAYS = 7
MIN_POST_DAYS = 14
#: the week numbers panel.py writes: -8..-1 before, 0.. during, POST_WEEK.. after the last day
BASE_WEEKS = tuple(range(-8, -2))
ANTICIPATION_WEEKS = (-2, -1)
POST_WEEK = 100
POST_WEEKS = tuple(range(POST_WEEK, POST_WEEK + 4))
SIZE_CLASSES = ("小", "中", "大")
#: a check's figure this close to zero is rounding, not a finding
NEGLIGIBLE = 1e-9


def week_label(week: int) -> str:
    if week < 0:
        return f"前{-week}周"
    if week >= POST_WEEK:
        return f"后{week - POST_WEEK + 1}周"
    return f"第{week + 1}周"


@dataclass(frozen=True)
class Panel:
    """Units (rows) by weeks (columns): days with a sales baseline, sales and subsidy summed (fen)."""

    campaign: np.ndarray
    merchant: np.ndarray
    treated: np.ndarray  # bool
    district: np.ndarray  # str ("" when unknown)
    weeks: tuple[int, ...]
    days: np.ndarray
    sales: np.ndarray
    subsidy: np.ndarray
    #: the campaign's four weeks after have passed (else the net figure cannot include them)
    post_complete: np.ndarray  # bool

    def window(self, weeks: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        columns = [i for i, w in enumerate(self.weeks) if w in weeks]
        return (self.days[:, columns].sum(axis=1), self.sales[:, columns].sum(axis=1),
                self.subsidy[:, columns].sum(axis=1))

    def during_weeks(self) -> tuple[int, ...]:
        return tuple(w for w in self.weeks if 0 <= w < POST_WEEK)

    def take(self, keep: np.ndarray) -> Panel:
        return Panel(self.campaign[keep], self.merchant[keep], self.treated[keep], self.district[keep], self.weeks,
                     self.days[keep], self.sales[keep], self.subsidy[keep], self.post_complete[keep])


@dataclass(frozen=True)
class Ratio:
    """Extra sales over subsidy above base, with its merchant-clustered standard error."""

    value: float
    std_error: float
    influence: np.ndarray  # per unit, summed by cluster for a variance
    #: per unit: its dose over the denominator (the influence moves by minus this per unit of value)
    dose_share: np.ndarray

    @property
    def low(self) -> float:
        return self.value - Z_95 * self.std_error

    @property
    def high(self) -> float:
        return self.value + Z_95 * self.std_error

    @property
    def z(self) -> float:
        if abs(self.value) < NEGLIGIBLE:  # rounding in noise-free data is not a finding
            return 0.0
        return self.value / self.std_error if self.std_error > 0 else float(np.sign(self.value)) * np.inf


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool | None  # None: could not be run here (says why)
    figure: str
    explanation: str


@dataclass(frozen=True)
class Row:
    """One line of a breakdown (a week, a size class, a campaign)."""

    label: str
    value: float | None
    low: float | None
    high: float | None
    treated: int = 0
    note: str = ""


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
    #: True when the checks failed: the panel is there but the figure would not be reliable
    refused: bool = False
    checks: list[Check] = field(default_factory=list)
    #: the campaign weeks alone, before pull-forward and anticipation are netted
    gross: Row | None = None
    across: Row | None = None  # the wild-bootstrap interval across campaigns
    weeks: list[Row] = field(default_factory=list)
    sizes: list[Row] = field(default_factory=list)
    by_campaign: list[Row] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # campaigns without enough units of their own
    #: "net": anticipation, campaign and post weeks; "gross": no campaign has its four weeks after yet
    basis: str = "net"

    def as_tuple(self) -> tuple[float, float, float] | None:
        if self.value is None or self.low is None or self.high is None:  # all three, or none
            return None
        return self.value, self.low, self.high


def _cluster_variance(influence: np.ndarray, cluster: np.ndarray) -> float:
    _, index = np.unique(cluster, return_inverse=True)
    scores = np.bincount(index, weights=influence)
    clusters = len(scores)
    return float(scores @ scores) * clusters / max(clusters - 1, 1)


def ratio(p: Panel, base_weeks: tuple[int, ...], effect_weeks: tuple[int, ...], dose_weeks: tuple[int, ...],
          counted: np.ndarray | None = None) -> Ratio | None:
    """Extra sales of the counted treated units over `effect_weeks`, against their `base_weeks` level
    carried forward by the comparables' change, per yuan of their subsidy above base over `dose_weeks`.
    None when the counted units took no subsidy above base."""
    b_days, b_sales, b_sub = p.window(base_weeks)
    e_days, e_sales, _ = p.window(effect_weeks)
    present = (b_days > 0) & (e_days > 0)  # a week a shorter campaign does not have, a merchant's missing days
    if not present.all():
        return ratio(p.take(present), base_weeks, effect_weeks, dose_weeks,
                     None if counted is None else counted[present]) if present.any() else None
    d_days, _, d_sub = p.window(dose_weeks)
    base = b_sales / b_days
    y = (e_sales / np.maximum(e_days, 1)) / base - 1
    dose = d_sub - d_days * b_sub / b_days
    counted = p.treated if counted is None else counted & p.treated
    denominator = float(dose[counted].sum())
    if denominator <= 0:
        return None
    weight = e_days * base  # fen of sales a relative change of 1 means over the window
    x = np.column_stack([np.ones(len(y)), 1 / base])
    numerator, residual, influence = 0.0, np.zeros(len(y)), np.zeros(len(y))
    for c in np.unique(p.campaign[counted]):
        comparable = (p.campaign == c) & ~p.treated
        xtx = x[comparable].T @ x[comparable]
        theta = np.linalg.lstsq(x[comparable], y[comparable], rcond=None)[0]
        mine = (p.campaign == c) & counted
        residual[mine] = y[mine] - x[mine] @ theta
        numerator += float((weight * residual)[mine].sum())
        # the comparables move the estimate through theta: d numerator / d theta = -sum weight x
        pull = np.linalg.pinv(xtx) @ (weight[mine, None] * x[mine]).sum(axis=0)
        influence[comparable] -= (x[comparable] @ pull) * (y[comparable] - x[comparable] @ theta)
    value = numerator / denominator
    influence[counted] += weight[counted] * residual[counted] - value * dose[counted]
    influence /= denominator
    share = np.where(counted, dose, 0.0) / denominator
    return Ratio(value, float(np.sqrt(_cluster_variance(influence, p.merchant))), influence, share)


def _webb_interval(main: Ratio, dose_part: np.ndarray, campaign: np.ndarray) -> tuple[float, float] | None:
    """The 95 % interval across campaigns by inverting a wild cluster score bootstrap (Webb's six-point
    weights; every pattern enumerated up to 6 campaigns, 9,999 drawn beyond): a value b0 is inside when,
    with b0 imposed on each campaign's score, the observed score is not in the outer 5 % of its sign-
    flipped copies. Imposing the null is what keeps the test honest with as few as four or five campaigns,
    where the unrestricted bootstrap-t is known to be too narrow."""
    _, index = np.unique(campaign, return_inverse=True)
    groups = index.max() + 1
    if groups < MIN_CAMPAIGNS_ACROSS:
        return None
    # a unit's influence is (its part at the estimate) - (b0 - value) x its dose share: linear in b0
    at_value = np.bincount(index, weights=main.influence)
    per_b0 = np.bincount(index, weights=dose_part)
    webb = np.array([-np.sqrt(1.5), -1.0, -np.sqrt(0.5), np.sqrt(0.5), 1.0, np.sqrt(1.5)])
    if groups <= 6:
        weights = np.array(list(itertools.product(webb, repeat=groups)))
    else:
        weights = np.random.default_rng(20221).choice(webb, size=(9999, groups))

    def accepted(b0: float) -> bool:
        scores = at_value - (b0 - main.value) * per_b0
        observed = abs(scores.sum()) / np.sqrt(scores @ scores)
        draws = np.abs(weights @ scores) / np.sqrt((weights ** 2) @ (scores ** 2))
        return bool(np.mean(draws >= observed - 1e-12) > 0.05)

    step = max(main.std_error, 1e-9) / 20
    bounds = []
    for direction in (-1, 1):
        inside, reach = main.value, step
        while reach < 400 * step and accepted(main.value + direction * reach):
            inside, reach = main.value + direction * reach, reach * 1.5
        outside = main.value + direction * reach
        for _ in range(30):  # bisect between the last value inside and the first outside
            middle = (inside + outside) / 2
            inside, outside = (middle, outside) if accepted(middle) else (inside, middle)
        bounds.append(inside)
    return bounds[0], bounds[1]


#: Student's t, one-sided 1 %, by degrees of freedom (the displacement check has few district cells)
T_ONE_SIDED = {1: 31.821, 2: 6.965, 3: 4.541, 4: 3.747, 5: 3.365, 6: 3.143, 7: 2.998, 8: 2.896, 9: 2.821,
               10: 2.764, 11: 2.718, 12: 2.681, 13: 2.650, 14: 2.624, 15: 2.602, 16: 2.583, 17: 2.567, 18: 2.552,
               19: 2.539, 20: 2.528, 21: 2.518, 22: 2.508, 23: 2.500, 24: 2.492, 25: 2.485, 26: 2.479, 27: 2.473,
               28: 2.467, 29: 2.462, 30: 2.457, 40: 2.423, 60: 2.390, 120: 2.358}


def _t_one_sided(df: int) -> float:
    return next((T_ONE_SIDED[k] for k in sorted(T_ONE_SIDED) if k >= df), Z_ONE_SIDED)


def _displacement(p: Panel, effect_weeks: tuple[int, ...]) -> Check:
    """Do comparables fall more where participants took more? Per campaign and district (a cell): the
    comparables' mean departure from their campaign's fitted change, against the subsidy participants of
    that cell took as a share of the cell's panel sales, with one intercept per campaign, weighted by
    comparables, heteroskedasticity-robust, against Student's t with (cells - parameters) degrees of
    freedom. A significantly negative slope is sales drawn away from nearby merchants."""
    name = "就近分流"
    b_days, b_sales, b_sub = p.window(BASE_WEEKS)
    e_days, e_sales, e_sub = p.window(effect_weeks)
    base = b_sales / b_days
    y = (e_sales / np.maximum(e_days, 1)) / base - 1
    dose = np.where(p.treated, e_sub - e_days * b_sub / b_days, 0.0)
    cell = np.char.add(np.char.add(p.campaign.astype(str), "|"), p.district.astype(str))
    cells, index = np.unique(cell, return_inverse=True)
    exposure = np.bincount(index, weights=dose) / np.bincount(index, weights=e_days * base)
    comparable = ~p.treated
    departure = np.zeros(len(y))
    x = np.column_stack([np.ones(len(y)), 1 / base])
    for c in np.unique(p.campaign):
        mine = (p.campaign == c) & comparable
        theta = np.linalg.lstsq(x[mine], y[mine], rcond=None)[0]
        departure[mine] = y[mine] - x[mine] @ theta
    count = np.bincount(index, weights=comparable.astype(float))
    known = (count > 0) & (np.array([c.split("|", 1)[1] for c in cells]) != "")
    campaign_of = np.array([c.split("|", 1)[0] for c in cells])[known]
    design = np.column_stack([(campaign_of == c).astype(float) for c in np.unique(campaign_of)]
                             + [exposure[known]]) if known.any() else np.zeros((0, 1))
    df = int(known.sum()) - design.shape[1]
    if df < 3 or np.ptp(exposure[known]) <= 0:
        return Check(name, None, "—", "参与和可比商户分布的区县太少，无法检查参与商户是否分走了附近商户的销售。")
    weight = count[known]
    mean = (np.bincount(index, weights=departure) / np.maximum(count, 1))[known]
    coef = np.linalg.lstsq(design * np.sqrt(weight)[:, None], mean * np.sqrt(weight), rcond=None)[0]
    residual = mean - design @ coef
    bread = np.linalg.pinv((design * weight[:, None]).T @ design)
    score = design * (weight * residual)[:, None]
    covariance = bread @ (score.T @ score) @ bread * len(mean) / df
    se = float(np.sqrt(max(covariance[-1, -1], 0.0)))
    negligible = abs(float(coef[-1])) * float(np.ptp(exposure[known])) < NEGLIGIBLE
    t = float(coef[-1]) / se if se > 0 and not negligible else 0.0
    passed = t >= -_t_one_sided(df)
    return Check(name, passed, f"t = {t:+.2f}（{int(known.sum())} 个活动×区县）",
                 "参与商户补贴越多的区县，可比商户销售并未明显更低。" if passed else
                 "参与商户补贴越多的区县，可比商户的销售明显更低：券可能只是把附近商户的生意挪了过来，"
                 "净效应小于估计。")


def _qualifying(p: Panel, names: dict[int, str]) -> tuple[Panel, list[str]]:
    """Units with enough days, in campaigns with enough of each side of their own."""
    days = {name: p.window(weeks)[0] for name, weeks in
            (("base", BASE_WEEKS), ("anticipation", ANTICIPATION_WEEKS), ("during", p.during_weeks()))}
    usable = ((days["base"] >= MIN_BASE_DAYS) & (days["anticipation"] >= MIN_ANTICIPATION_DAYS)
              & (days["during"] >= MIN_DURING_DAYS))
    p = p.take(usable)
    keep, left_out = np.zeros(len(p.campaign), dtype=bool), []
    for c in np.unique(p.campaign):
        mine = p.campaign == c
        treated, comparable = int((mine & p.treated).sum()), int((mine & ~p.treated).sum())
        if treated >= MIN_TREATED and comparable >= MIN_COMPARABLE:
            keep |= mine
        else:
            left_out.append(f"{names.get(int(c), f'活动 {int(c)}')}（参与 {treated} 家、可比 {comparable} 家）")
    return p.take(keep), left_out


def _counts(p: Panel) -> dict[str, Any]:
    return dict(treated=len(np.unique(p.merchant[p.treated])), comparable=len(np.unique(p.merchant[~p.treated])),
                campaigns=len(np.unique(p.campaign)))


def _row(label: str, r: Ratio | None, treated: int = 0, note: str = "") -> Row:
    if r is None:
        return Row(label, None, None, None, treated, note or "无高于基期的补贴")
    return Row(label, r.value, r.low, r.high, treated, note)


def estimate(p: Panel, names: dict[int, str] | None = None) -> CausalEstimate:
    """The net leverage over the panel's qualifying campaigns, its checks and breakdowns; `names` labels
    the campaigns (by id) in the breakdown and in what is left out."""
    names = names or {}
    p, left_out = _qualifying(p, names)
    counts = _counts(p)
    if counts["campaigns"] == 0:
        why = (f"样本不足：每个活动需要至少 {MIN_TREATED} 家有基线的参与商户和 {MIN_COMPARABLE} 家可比商户"
               + (f"，{'；'.join(left_out)}" if left_out else ""))
        return CausalEstimate(None, None, None, None, **counts, missing_reason=why, left_out=left_out)
    during = p.during_weeks()
    gross = ratio(p, BASE_WEEKS, during, during)
    complete = p.post_complete
    basis = "net" if complete.any() else "gross"
    if basis == "net":
        post_days = p.window(POST_WEEKS)[0]
        p = p.take(complete & ((post_days >= MIN_POST_DAYS) | ~p.treated))
        effect = ANTICIPATION_WEEKS + during + POST_WEEKS
    else:
        effect = ANTICIPATION_WEEKS + during
    counts = _counts(p)
    main = ratio(p, BASE_WEEKS, effect, effect)
    if main is None:
        return CausalEstimate(None, None, None, None, **counts, missing_reason="参与商户没有高于活动前水平的补贴，无法估计",
                              left_out=left_out)

    checks = []
    placebo = ratio(p, BASE_WEEKS[:3], BASE_WEEKS[3:], effect)
    if placebo is not None:
        ok = abs(placebo.z) <= Z_TWO_SIDED
        checks.append(Check("活动前趋势（安慰剂）", ok, f"{placebo.value:+.2f}（z = {placebo.z:+.2f}）",
                            "假定活动提前 3 周开始，参与商户并未提前拉开差距。" if ok else
                            "活动开始前，参与商户已经比可比商户增长得快（或慢）：两组本来就走势不同，差值不能归于消费券。"))
    if basis == "net":
        post = ratio(p, BASE_WEEKS, POST_WEEKS, effect)
        if post is not None:
            ok = post.z <= Z_ONE_SIDED
            checks.append(Check("活动后差距", ok, f"{post.value:+.2f}（z = {post.z:+.2f}）",
                                ("活动结束后参与商户没有持续高于可比商户"
                                 + ("；活动后的回落（提前消费）已从净值中扣除。" if post.value < 0 else "。")) if ok else
                                "补贴停止后参与商户仍明显高于可比商户：更可能是增长较快的商户自选参与，而不是券的效果。"))
    else:
        checks.append(Check("活动后差距", None, "—", "活动结束不满 4 周，还不能检查活动后回落（提前消费），"
                            "下方数字是活动前两周与活动期的效应，未扣除提前消费。"))
    checks.append(_displacement(p, effect))
    failed = [c for c in checks if c.passed is False]

    weeks = [_row(week_label(w), ratio(p, BASE_WEEKS, (w,), effect)) for w in BASE_WEEKS + effect
             if p.window((w,))[0][p.treated].any()]
    base_level = p.window(BASE_WEEKS)
    level = base_level[1] / base_level[0]
    edges = np.quantile(level[p.treated], [1 / 3, 2 / 3])
    size = np.digitize(level, edges)
    sizes = []
    for k, name in enumerate(SIZE_CLASSES):
        mine = p.treated & (size == k)
        low = 0 if k == 0 else edges[k - 1]
        low_yuan = short_yuan(int(round(low)))  # the class edges are quantiles of fen, shown in whole yuan
        span = (f"日均 {low_yuan} 元以上" if k == 2 else f"日均 {low_yuan}–{short_yuan(int(round(edges[k])))} 元")
        n = len(np.unique(p.merchant[mine]))
        sizes.append(_row(name, ratio(p, BASE_WEEKS, effect, effect, mine) if n >= MIN_TREATED else None, n,
                          span if n >= MIN_TREATED else f"{span}；不足 {MIN_TREATED} 家"))
    by_campaign = [_row(names.get(int(c), f"活动 {int(c)}"), ratio(p.take(p.campaign == c), BASE_WEEKS, effect, effect),
                        int((p.treated & (p.campaign == c)).sum())) for c in np.unique(p.campaign)]
    across_interval = _webb_interval(main, main.dose_share, p.campaign)
    across = (Row("跨活动", main.value, *across_interval, note=f"{counts['campaigns']} 个活动的野聚类自助法")
              if across_interval else
              Row("跨活动", None, None, None, note=f"活动少于 {MIN_CAMPAIGNS_ACROSS} 个，无法给出跨活动区间"))
    gross_row = _row("活动期（毛）", gross)
    extra: dict[str, Any] = dict(checks=checks, gross=gross_row, across=across, weeks=weeks, sizes=sizes,
                                 by_campaign=by_campaign, left_out=left_out, basis=basis)
    if failed:
        why = "不能可靠估计：" + "；".join(f"{c.name}未通过" for c in failed)
        return CausalEstimate(None, None, None, None, **counts, missing_reason=why, refused=True, **extra)
    return CausalEstimate(main.value, main.low, main.high, main.std_error, **counts, **extra)
