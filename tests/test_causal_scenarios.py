"""benchmarks/causal_scenarios.py: each scenario's simulated data do what the scenario says, against the
baseline drawn from the same seed (every scenario takes the same random draws), and the truth it reports
is the net effect. The figures themselves are the benchmark's, not the suite's."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks import causal_scenarios as cs
from voucher.analytics import causal


def draw(scenario: str, seed: int = 5) -> cs.Campaign:
    return cs.simulate_campaign(np.random.default_rng(seed), scenario, treated=30, comparable=40)


@pytest.fixture(scope="module")
def base() -> cs.Campaign:
    return draw("baseline")


def test_the_baseline_lift_is_the_planted_leverage_times_the_subsidy_at_participants_only(base):
    assert np.allclose(base.sales - base.counterfactual, cs.LEVERAGE * base.subsidy)
    assert base.subsidy[~base.treated].sum() == 0 and (base.subsidy[base.treated, base.during] > 0).all()
    assert base.subsidy[:, base.pre].sum() == 0 and base.subsidy[:, base.post].sum() == 0
    assert cs.true_leverage([base]) == pytest.approx(cs.LEVERAGE)


def test_the_city_shock_multiplies_everyones_sales_from_the_campaign_weeks_on(base):
    shock = draw("city_shock")
    assert np.allclose(shock.sales[:, shock.pre], base.sales[:, base.pre])
    assert np.allclose(shock.sales[:, shock.post], (1 + cs.SHOCK) * base.sales[:, base.post])
    assert np.allclose(shock.subsidy, base.subsidy)
    assert cs.true_leverage([shock]) == pytest.approx(cs.LEVERAGE)  # the shock is not the campaign's doing


def test_selection_on_trends_grows_participants_only(base):
    trend = draw("trend_select")
    assert np.allclose(trend.sales[base.treated][:, base.post], (1 + cs.TREND) * base.sales[base.treated][:, base.post])
    assert np.allclose(trend.sales[~base.treated], base.sales[~base.treated])
    assert cs.true_leverage([trend]) == pytest.approx(cs.LEVERAGE)


def test_size_effects_fall_with_size_and_the_truth_is_the_subsidy_weighted_mean(base):
    sized = draw("size_effect")
    during = sized.subsidy[:, sized.during].sum(axis=1)
    effect = (sized.sales - sized.counterfactual)[:, sized.during].sum(axis=1)[sized.treated] / during[sized.treated]
    order = np.argsort(sized.level[sized.treated])
    assert (np.diff(effect[order]) <= 1e-9).all() and effect.max() > effect.min() + 0.5
    assert cs.true_leverage([sized]) == pytest.approx(float(effect @ during[sized.treated] / during.sum()))


def test_pull_forward_lowers_post_campaign_sales_by_the_moved_amount(base):
    pulled = draw("pull_forward")
    lift = cs.LEVERAGE * base.subsidy.sum(axis=1)
    assert np.allclose(pulled.sales[:, :cs.PRE_DAYS + cs.DURING_DAYS], base.sales[:, :cs.PRE_DAYS + cs.DURING_DAYS])
    moved = (base.sales - pulled.sales)[:, base.post].sum(axis=1)
    assert np.allclose(moved, cs.PULLED * lift) and moved[base.treated].min() > 0
    assert cs.true_leverage([pulled]) == pytest.approx((1 - cs.PULLED) * cs.LEVERAGE)


def test_anticipation_defers_purchases_in_the_two_weeks_before_only(base):
    early = draw("anticipation")
    lift = cs.LEVERAGE * base.subsidy.sum(axis=1)
    last_two_weeks = slice(cs.PRE_DAYS - cs.ANTICIPATION_DAYS, cs.PRE_DAYS)
    assert np.allclose(early.sales[:, :cs.PRE_DAYS - cs.ANTICIPATION_DAYS],
                       base.sales[:, :cs.PRE_DAYS - cs.ANTICIPATION_DAYS])
    assert np.allclose((base.sales - early.sales)[:, last_two_weeks].sum(axis=1), cs.DEFERRED * lift)
    assert np.allclose(early.sales[:, cs.PRE_DAYS:], base.sales[:, cs.PRE_DAYS:])
    assert cs.true_leverage([early]) == pytest.approx((1 - cs.DEFERRED) * cs.LEVERAGE)


def test_endogenous_subsidy_follows_each_merchants_own_sales(base):
    endo = draw("endogenous")
    t = base.treated
    # the merchant-season demand shock, per merchant, and the subsidy it brought beyond the baseline's
    season = (endo.counterfactual - base.counterfactual)[t][:, base.during].mean(axis=1) / base.level[t]
    extra = endo.subsidy[t][:, base.during].sum(axis=1) / base.subsidy[t][:, base.during].sum(axis=1) - 1
    assert np.corrcoef(season, extra)[0, 1] > 0.9 and season.std() > 0.05
    assert np.allclose(endo.sales - endo.counterfactual, cs.LEVERAGE * endo.subsidy)
    assert cs.true_leverage([endo]) == pytest.approx(cs.LEVERAGE)


def test_displacement_takes_half_the_lift_from_nearby_non_participants(base):
    moved = draw("displacement")
    lift = cs.LEVERAGE * base.subsidy[base.treated].sum()
    assert np.allclose(moved.sales[base.treated], base.sales[base.treated])
    lost = (base.sales - moved.sales)[~base.treated]
    assert lost[:, base.during].sum() == pytest.approx(cs.DISPLACED * lift)
    assert np.allclose(lost[:, base.pre], 0) and np.allclose(lost[:, base.post], 0)
    assert cs.true_leverage([moved]) == pytest.approx((1 - cs.DISPLACED) * cs.LEVERAGE)


def test_displaced_sales_come_from_comparables_of_the_participants_own_district(base):
    moved = draw("displacement")
    lost = (base.sales - moved.sales)[:, base.during].sum(axis=1)
    hit = np.flatnonzero(lost > 1e-6)
    participating = set(base.district[base.treated])
    assert len(hit) and not base.treated[hit].any() and set(base.district[hit]) <= participating


def test_the_panel_feeds_the_products_estimator_by_week_and_the_runs_are_deterministic(base):
    p = cs.panel_of([base, draw("baseline", seed=6)])
    assert len(np.unique(p.merchant)) == 140 and set(p.campaign) == {0, 1} and p.treated.sum() == 60
    assert p.weeks == tuple(range(-8, 6)) + causal.POST_WEEKS and (p.days == 7).all()
    assert np.allclose(p.sales[:70].sum(axis=1), base.sales.sum(axis=1), atol=len(p.weeks))
    assert np.allclose(p.subsidy[:70].sum(axis=1), base.subsidy.sum(axis=1), atol=len(p.weeks))
    first = cs.run_scenario("pull_forward", runs=3, treated=30, comparable=30)
    assert first == cs.run_scenario("pull_forward", runs=3, treated=30, comparable=30)
    assert first.truth == pytest.approx((1 - cs.PULLED) * cs.LEVERAGE)


def test_too_small_a_panel_counts_as_refused():
    small = cs.run_scenario("baseline", runs=2, campaigns=1, treated=10, comparable=30)
    assert small.refused == 1 and small.bias is None and "样本不足" in small.refusal_reasons[0]


def test_the_targets_are_met_on_a_short_run():
    # The full 200-run table is the benchmark's; 12 runs of the four hardest cases keep the suite fast.
    for scenario in ("city_shock", "endogenous"):
        summary = cs.run_scenario(scenario, runs=12)
        assert summary.identified and summary.coverage is not None and summary.coverage >= 0.8
    for scenario in ("trend_select", "displacement"):
        summary = cs.run_scenario(scenario, runs=12)
        assert not summary.identified and summary.refused >= 0.8 and summary.confidently_wrong == 0
