"""The causal leverage estimator under harder simulated panels: bias, RMSE, coverage and refusals.

    .venv/bin/python benchmarks/causal_scenarios.py                 # 200 runs per scenario, seed 18
    .venv/bin/python benchmarks/causal_scenarios.py --runs 50 --json
    .venv/bin/python benchmarks/causal_scenarios.py --scenario pull_forward --scenario displacement

It draws daily sales for merchants in four campaigns (8 weeks before, the 6 campaign weeks, 4 weeks after)
and breaks one assumption per scenario:

    0 baseline       nothing broken: unequal sizes, a campaign-wide shift in yuan, subsidy growing with
                     size, daily noise
    1 city_shock     every merchant's sales x 1.01 from the campaign weeks on (a proportional shock)
    2 trend_select   participating merchants grow 3 % between the weeks before and the campaign weeks
                     (growing merchants select in)
    3 size_effect    the effect per yuan falls with size (1.8 - 0.6 z, z the standardised log size)
    4 pull_forward   40 % of the lift is purchases moved from the 4 weeks after the campaign
    5 anticipation   announced two weeks ahead: customers of participating merchants put off purchases
                     in the last 2 weeks before it, a quarter of the campaign's lift, bought in the campaign
    6 endogenous     subsidy is a share of each day's own sales, which carry a merchant-season demand shock
                     (sd 10 %) for every merchant: busy merchants redeem more
    7 displacement   half the lift is taken from nearby non-participating merchants (3 of the same district
                     in the same panel each; participants are spread unevenly over 6 districts)

The truth in every scenario is what the page says the figure is ("extra sales each yuan of subsidy really
caused"), computed from the simulation's own counterfactual: the sum over every merchant and every simulated
day (before, during and after) of observed minus no-campaign sales, over the subsidy paid. So pull-forward,
anticipation and displacement count net; a shock or a trend is not caused by the campaign; under size effects
it is the subsidy-weighted mean effect. Runs draw different truths only in size_effect; bias and coverage are
against each run's own truth.

The product's code does the estimating: the simulation sums each merchant's days, sales and subsidy by week
as causal_panel_weeks holds them (panel_of()), and voucher.analytics.causal.estimate() gives the value, the
95 % interval, the interval across campaigns, the checks and any refusal. Trend selection and displacement
are what no before/after comparison can identify (IDENTIFIED lists the others): the target there is a
refusal in at least 80 % of runs, elsewhere coverage of at least 90 %. Deterministic: run r of scenario k uses
seed (seed, k, r).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voucher.analytics import causal, panel  # noqa: E402

SCENARIOS = ("baseline", "city_shock", "trend_select", "size_effect", "pull_forward", "anticipation",
             "endogenous", "displacement")
LEVERAGE = 1.8  # the planted gross effect: extra sales per yuan of subsidy in the campaign weeks
PRE_DAYS, DURING_DAYS, POST_DAYS = panel.PRE_DAYS, 42, 28
ANTICIPATION_DAYS = 14
SHOCK = 0.01  # city_shock: +1 % of sales for everyone
TREND = 0.03  # trend_select: participating merchants grow 3 %
PULLED = 0.4  # pull_forward: share of the lift moved from after the campaign
DEFERRED = 0.25  # anticipation: share of the lift that is purchases put off in the two weeks before
DISPLACED = 0.5  # displacement: share of the lift taken from nearby non-participants
NEIGHBOURS = 3
#: where the design (net window, comparables' change fitted per campaign, ratio of totals) identifies the
#: effect; in the others no before/after comparison can, and the product must refuse
IDENTIFIED = ("baseline", "city_shock", "size_effect", "pull_forward", "anticipation", "endogenous")
DISTRICTS = 6
SEASON_SD = 0.10  # endogenous: merchant-season demand shock in the campaign weeks


@dataclass
class Campaign:
    """One campaign's simulated merchants, day by day (fen): observed sales, the no-campaign sales,
    the subsidy paid. Columns are days: PRE_DAYS before, DURING_DAYS of campaign, POST_DAYS after."""
    treated: np.ndarray  # bool per merchant
    level: np.ndarray  # the merchant's usual daily sales
    sales: np.ndarray  # observed
    counterfactual: np.ndarray  # without the campaign (shocks and trends included: the campaign did not cause them)
    subsidy: np.ndarray
    district: np.ndarray  # 0 .. DISTRICTS-1 per merchant

    @property
    def pre(self) -> slice:
        return slice(0, PRE_DAYS)

    @property
    def during(self) -> slice:
        return slice(PRE_DAYS, PRE_DAYS + DURING_DAYS)

    @property
    def post(self) -> slice:
        return slice(PRE_DAYS + DURING_DAYS, PRE_DAYS + DURING_DAYS + POST_DAYS)


def simulate_campaign(rng: np.random.Generator, scenario: str, treated: int = 200, comparable: int = 200,
                      noise: float = 0.25) -> Campaign:
    """Every scenario takes the same random draws in the same order, so one seed gives the same merchants,
    noise and vouchers under each, and a scenario differs from the baseline only by what it says."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}")
    n, days = treated + comparable, PRE_DAYS + DURING_DAYS + POST_DAYS
    during, post = slice(PRE_DAYS, PRE_DAYS + DURING_DAYS), slice(PRE_DAYS + DURING_DAYS, days)
    is_treated = np.arange(n) < treated
    shift = rng.normal(0, 300_00)  # what happened to everyone in the campaign's weeks, fen per day
    level = rng.lognormal(np.log(3_000_00), 0.8, n)
    daily = rng.normal(0, noise, (n, days))
    vouchers = rng.gamma(2.0, 1.0, (n, DURING_DAYS))  # redemptions' relative size per day
    season = rng.normal(0, SEASON_SD, n)
    # districts: comparables spread evenly, participants unevenly (some districts take part more)
    district = np.concatenate([rng.choice(DISTRICTS, treated, p=rng.dirichlet(np.ones(DISTRICTS))),
                               rng.integers(0, DISTRICTS, comparable)])
    pick = rng.random((treated, NEIGHBOURS))

    base = level[:, None] * (1 + daily)
    if scenario == "endogenous":
        base[:, during] += level[:, None] * season[:, None]
    if scenario == "city_shock":
        base[:, PRE_DAYS:] *= 1 + SHOCK
    if scenario == "trend_select":
        base[is_treated, PRE_DAYS:] *= 1 + TREND
    counterfactual = base.copy()
    counterfactual[:, during] += shift

    subsidy = np.zeros((n, days))
    share = 0.02 * (base[is_treated, during] if scenario == "endogenous" else level[is_treated, None])
    subsidy[is_treated, during] = vouchers[:treated] * share
    effect = np.full(n, LEVERAGE)
    if scenario == "size_effect":
        z = (np.log(level) - np.log(3_000_00)) / 0.8
        effect = np.maximum(LEVERAGE - 0.6 * z, 0.0)
    lift = effect[:, None] * subsidy  # the gross lift in the campaign weeks
    sales = counterfactual + lift
    total_lift = lift.sum(axis=1)
    if scenario == "pull_forward":
        sales[:, post] -= (PULLED * total_lift / POST_DAYS)[:, None]
    if scenario == "anticipation":
        sales[:, PRE_DAYS - ANTICIPATION_DAYS:PRE_DAYS] -= (DEFERRED * total_lift / ANTICIPATION_DAYS)[:, None]
    if scenario == "displacement":
        taken = np.zeros(n)
        neighbours = _neighbours(district, is_treated, pick)
        np.add.at(taken, neighbours.ravel(), np.repeat(DISPLACED * total_lift[:treated] / NEIGHBOURS, NEIGHBOURS))
        sales[:, during] -= (taken / DURING_DAYS)[:, None]
    return Campaign(is_treated, level, sales, counterfactual, subsidy, district)


def _neighbours(district: np.ndarray, is_treated: np.ndarray, pick: np.ndarray) -> np.ndarray:
    """For each participant, NEIGHBOURS comparables of its own district (any comparable if it has none):
    the uniform draws in `pick` choose among them."""
    comparables = np.flatnonzero(~is_treated)
    chosen = np.empty(pick.shape, dtype=int)
    for i, d in enumerate(district[is_treated]):
        pool = comparables[district[comparables] == d]
        pool = pool if len(pool) else comparables
        chosen[i] = pool[(pick[i] * len(pool)).astype(int)]
    return chosen


def panel_of(campaigns: list[Campaign]) -> causal.Panel:
    """The panel as voucher/analytics/panel.py hands it to causal.estimate(): each merchant's days, sales
    and subsidy summed by week (-8..-1 before, 0..5 the campaign, 100..103 after), whole fen."""
    weeks = tuple(range(-8, 0)) + tuple(range(DURING_DAYS // 7)) + tuple(range(causal.POST_WEEK, causal.POST_WEEK + 4))
    columns = len(weeks)

    def by_week(values: np.ndarray) -> np.ndarray:
        return np.rint(values.reshape(len(values), columns, 7).sum(axis=2))

    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("campaign", "merchant", "treated", "district", "sales",
                                                          "subsidy")}
    merchant = 0
    for c, camp in enumerate(campaigns):
        n = len(camp.treated)
        parts["campaign"].append(np.full(n, c))
        parts["merchant"].append(np.arange(merchant, merchant + n))
        parts["treated"].append(camp.treated)
        parts["district"].append(np.array([f"区{d}" for d in camp.district]))
        parts["sales"].append(by_week(camp.sales))
        parts["subsidy"].append(by_week(camp.subsidy))
        merchant += n
    joined = {k: np.concatenate(v) for k, v in parts.items()}
    units = len(joined["campaign"])
    return causal.Panel(joined["campaign"], joined["merchant"], joined["treated"], joined["district"], weeks,
                        np.full((units, columns), 7.0), joined["sales"], joined["subsidy"], np.ones(units, dtype=bool))


def true_leverage(campaigns: list[Campaign]) -> float:
    """Net extra sales over every merchant and every simulated day, per yuan of subsidy paid."""
    extra = sum(float((c.sales - c.counterfactual).sum()) for c in campaigns)
    return extra / sum(float(c.subsidy.sum()) for c in campaigns)


@dataclass
class Summary:
    scenario: str
    runs: int
    truth: float  # mean over the runs of each run's truth
    mean_estimate: float | None
    bias: float | None
    rmse: float | None
    coverage: float | None  # share of the estimated runs whose 95 % interval holds that run's truth
    mean_width: float | None
    refused: float  # share of runs with no figure
    confidently_wrong: float  # share of all runs given a figure whose interval excludes the truth
    refusal_reasons: list[str]
    identified: bool
    across_coverage: float | None  # the wild-bootstrap interval across campaigns, where given
    across_width: float | None
    failed_checks: dict[str, int]  # runs in which each check failed

    @property
    def meets_target(self) -> bool:
        """Coverage of at least 90 % where the design identifies the effect; a refusal in at least 80 %
        of runs where it does not."""
        if self.identified:
            return self.coverage is not None and self.coverage >= 0.9
        return self.refused >= 0.8


def run_scenario(scenario: str, runs: int, seed: int = 18, campaigns: int = 4, treated: int = 200,
                 comparable: int = 200) -> Summary:
    k = SCENARIOS.index(scenario)
    truths, values, covered, widths, reasons = [], [], [], [], set()
    across_covered, across_widths, failed = [], [], {}
    for r in range(runs):
        rng = np.random.default_rng([seed, k, r])
        sims = [simulate_campaign(rng, scenario, treated, comparable) for _ in range(campaigns)]
        truth = true_leverage(sims)
        truths.append(truth)
        result = causal.estimate(panel_of(sims))
        for check in result.checks:
            failed[check.name] = failed.get(check.name, 0) + (check.passed is False)
        if result.across is not None and result.across.low is not None and result.across.high is not None:
            across_covered.append(result.across.low <= truth <= result.across.high)
            across_widths.append(result.across.high - result.across.low)
        if result.value is None or result.low is None or result.high is None:
            reasons.add(result.missing_reason or "")
            continue
        values.append((result.value, truth))
        covered.append(result.low <= truth <= result.high)
        widths.append(result.high - result.low)
    estimated = len(values)
    errors = np.array([v - t for v, t in values])
    return Summary(
        scenario, runs, float(np.mean(truths)),
        float(np.mean([v for v, _ in values])) if estimated else None,
        float(errors.mean()) if estimated else None,
        float(np.sqrt((errors ** 2).mean())) if estimated else None,
        float(np.mean(covered)) if estimated else None,
        float(np.mean(widths)) if estimated else None,
        (runs - estimated) / runs, (estimated - int(np.sum(covered))) / runs, sorted(reasons),
        scenario in IDENTIFIED, float(np.mean(across_covered)) if across_covered else None,
        float(np.mean(across_widths)) if across_widths else None, failed)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(summaries: list[Summary]) -> str:
    lines = [f"{'scenario':<14}{'runs':>6}{'truth':>8}{'mean est':>10}{'bias':>8}{'RMSE':>8}"
             f"{'coverage':>10}{'width':>8}{'refused':>9}{'wrong+sure':>12}{'across':>8}{'width':>7}  target"]
    for s in summaries:
        flag = (f"{'identified' if s.identified else 'refuse'}: {'met' if s.meets_target else 'NOT MET'}")
        lines.append(f"{s.scenario:<14}{s.runs:>6}{s.truth:>8.3f}{_fmt(s.mean_estimate, '.3f'):>10}"
                     f"{_fmt(s.bias, '+.3f'):>8}{_fmt(s.rmse, '.3f'):>8}{_fmt(s.coverage, '.1%'):>10}"
                     f"{_fmt(s.mean_width, '.3f'):>8}{s.refused:>9.1%}{s.confidently_wrong:>12.1%}"
                     f"{_fmt(s.across_coverage, '.0%'):>8}{_fmt(s.across_width, '.2f'):>7}  {flag}")
    checks = sorted({name for s in summaries for name in s.failed_checks})
    lines.append("")
    lines.append("runs in which each check failed: " + "; ".join(
        f"{s.scenario} " + ", ".join(f"{name} {s.failed_checks.get(name, 0)}" for name in checks) for s in summaries))
    return "\n".join(lines)


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent.parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="simulated panels per scenario (default 200)")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="only these (repeatable)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    summaries = [run_scenario(name, args.runs, args.seed) for name in (args.scenario or SCENARIOS)]
    elapsed = time.perf_counter() - started
    meta = {"date": time.strftime("%Y-%m-%d"), "commit": _commit(),
            "command": "benchmarks/causal_scenarios.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "seconds": round(elapsed, 1), "planted_gross_leverage": LEVERAGE}
    if args.json:
        print(json.dumps({**meta, "scenarios": [asdict(s) for s in summaries]}, ensure_ascii=False, indent=2))
        return
    print(table(summaries))
    print(f"[{elapsed:.1f} s; seed {args.seed}; commit {meta['commit']}; truth = net extra sales per yuan of subsidy; "
          f"wrong+sure = share of all runs given a figure whose 95 % interval excludes the truth]")


if __name__ == "__main__":
    main()
