"""ICDI-EC method: the composite on a small data set computed by hand, and what each setting does.
Pure computation: no database, so these run once, not per database."""
from __future__ import annotations

import math

import numpy as np
import pytest

from voucher.info_consumption_index import analysis, method
from voucher.info_consumption_index.catalogue import default_catalogue
from voucher.info_consumption_index.method import Catalogue, Indicator, Panel, Settings

# A small catalogue: demand has a numeric and a share indicator (0.2 each), supply two numeric ones in
# two second-level groups (0.3 each); environment is empty.
SMALL = Catalogue((
    Indicator("N1", "数值一", "元", "numeric", "demand", "甲", 0.2),
    Indicator("P1", "占比一", "%", "share", "demand", "乙", 0.2),
    Indicator("N2", "数值二", "个", "numeric", "supply", "丙", 0.3),
    Indicator("N3", "数值三", "个", "numeric", "supply", "丁", 0.3),
))
CITIES = ["A", "B", "C", "D"]
DATA = {  # city: (N1, P1 in percent, N2, N3)
    "A": (10, 50, 1, 2),
    "B": (20, 80, 1, 4),
    "C": (30, 90, 1, 6),
    "D": (40, 100, 100, 8),
}


def panel(data=DATA, year=2020) -> Panel:
    return Panel.from_records(
        [(city, year, code, value) for city, row in data.items() for code, value in zip(SMALL.codes, row)], SMALL.codes)


# By hand. N1: median 25; deviations from the mean 25 are -15, -5, 5, 15, sum of squares 500, sample
# variance 500/3. N2: median 1, mean 25.75, sum of squares 3 * 24.75^2 + 74.25^2 = 7350.75, sample
# variance 2450.25, sd 49.5 exactly, so A = 1 + 99 = 100. N3: median 5, sum of squares 20, variance 20/3.
A1 = 25 + 2 * math.sqrt(500 / 3)
A2 = 100.0
A3 = 5 + 2 * math.sqrt(20 / 3)


def expected(city: str) -> tuple[float, float, float]:
    n1, p1, n2, n3 = DATA[city]
    demand = (0.2 * (n1 / A1) + 0.2 * (p1 / 100)) / 0.4
    supply = (0.3 * (n2 / A2) + 0.3 * (n3 / A3)) / 0.6
    return 0.4 * demand + 0.6 * supply, demand, supply


def test_composite_matches_the_hand_computation():
    result = method.compute(panel(), SMALL)
    np.testing.assert_allclose(result.thresholds[0], [A1, 100.0, A2, A3], rtol=0, atol=1e-9)
    for c, city in enumerate(CITIES):
        composite, demand, supply = expected(city)
        assert result.composite[0, c] == pytest.approx(composite, abs=1e-9)
        assert result.first[0, c, 0] == pytest.approx(demand, abs=1e-9)
        assert result.first[0, c, 1] == pytest.approx(supply, abs=1e-9)
        assert result.first[0, c, 2] == 0.0  # no environment indicator in this catalogue
    # second-level scores: each group here has one indicator, so the score is its normalised value
    assert result.second[0, 0].tolist() == pytest.approx([10 / A1, 0.5, 0.01, 2 / A3], abs=1e-12)
    assert result.rank[0].tolist() == [4, 3, 2, 1]
    assert result.average[0] == pytest.approx(sum(expected(c)[0] for c in CITIES) / 4, abs=1e-12)


def test_the_report_formula_with_nested_weights_gives_the_same_composite():
    # I = sum_i W_i sum_j W_ij sum_k W_ijk I_ijk with conditional weights, for city B
    n1, p1, n2, n3 = DATA["B"]
    demand = 0.5 * (n1 / A1) + 0.5 * (p1 / 100)  # two groups, one indicator each: W_ij = 1/2, W_ijk = 1
    supply = 0.5 * (n2 / A2) + 0.5 * (n3 / A3)
    assert method.compute(panel(), SMALL).composite[0, 1] == pytest.approx(0.4 * demand + 0.6 * supply, abs=1e-12)


def test_default_catalogue_weights():
    cat = default_catalogue()
    assert cat.codes[:3] == ["D1", "D2", "D3"] and cat.codes[-1] == "E7" and len(cat.codes) == 23
    w = dict(zip(cat.codes, cat.weights))
    assert w["D1"] == pytest.approx(0.05) and w["S11"] == pytest.approx(0.55 / 13) and w["E7"] == pytest.approx(0.30 / 7)
    assert cat.first_weights().tolist() == pytest.approx([0.15, 0.55, 0.30])
    assert len(cat.seconds) == 11
    shares = [i.code for i in cat.indicators if i.kind == "share"]
    assert shares == ["S4", "S5", "S6", "S7", "E1", "E5", "E6"]
    # a second-level weight is the sum of its third-level weights: 公共服务发展水平 has S4-S8
    G, H = cat.group_matrices()
    public = [s for _, s in cat.seconds].index("公共服务发展水平")
    assert H[:, public].sum() == pytest.approx(1.0)
    assert np.count_nonzero(H[:, public]) == 5


def test_sample_versus_population_standard_deviation():
    sample = method.compute(panel(), SMALL)
    population = method.compute(panel(), SMALL, Settings(std="population"))
    A1_population = 25 + 2 * math.sqrt(500 / 4)
    assert population.thresholds[0, 0] == pytest.approx(A1_population, abs=1e-9)
    # a smaller threshold gives every city with a positive value a higher normalised value
    assert (population.normalised[0, :, 0] > sample.normalised[0, :, 0]).all()


def test_cap_at_one():
    # With the population sd, N2's threshold is 1 + 2 * sqrt(7350.75 / 4) < 100: D's 100 exceeds it.
    A2_population = 1 + 2 * math.sqrt(7350.75 / 4)
    capped = method.compute(panel(), SMALL, Settings(std="population"))
    uncapped = method.compute(panel(), SMALL, Settings(std="population", cap=False))
    assert capped.normalised[0, 3, 2] == 1.0
    assert uncapped.normalised[0, 3, 2] == pytest.approx(100 / A2_population, abs=1e-9)
    assert 100 / A2_population > 1
    assert uncapped.composite[0, 3] - capped.composite[0, 3] == pytest.approx(0.3 * (100 / A2_population - 1), abs=1e-9)
    # the other cities do not move
    assert uncapped.composite[0, :3].tolist() == pytest.approx(capped.composite[0, :3].tolist(), abs=1e-12)


def test_missing_values_are_refused_by_default_with_the_cell_named():
    data = dict(DATA)
    data["B"] = (20, float("nan"), 1, 4)
    result = method.compute(panel(data), SMALL)
    with pytest.raises(method.MissingValues) as refused:
        result.table(2020)
    assert refused.value.cells == [("B", 2020, "P1")] and result.blocked == {2020: [("B", 2020, "P1")]}
    assert "B 2020 年 P1" in str(refused.value) and "插补" in str(refused.value)


def test_median_imputation_fills_and_flags():
    data = dict(DATA)
    data["B"] = (20, float("nan"), 1, 4)
    result = method.compute(panel(data), SMALL, Settings(missing="median"))
    assert result.values[0, 1, 1] == 90.0  # median of 50, 90, 100
    assert result.imputed[0, 1].tolist() == [False, True, False, False]
    rows = {r["city"]: r for r in result.table(2020)}
    assert rows["B"]["imputed"] == ["P1"] and rows["A"]["imputed"] == []


def test_previous_year_imputation_fills_and_flags():
    records = [(city, 2019, code, value) for city, row in DATA.items() for code, value in zip(SMALL.codes, row)]
    records += [(city, 2020, code, value * 1.1) for city, row in DATA.items() for code, value in zip(SMALL.codes, row)
                if not (city == "C" and code == "N3")]
    p = Panel.from_records(records, SMALL.codes)
    with pytest.raises(method.MissingValues):
        method.compute(p, SMALL).table(2020)
    result = method.compute(p, SMALL, Settings(missing="previous"))
    assert result.values[1, 2, 3] == 6.0  # C's 2019 N3
    assert result.imputed.sum() == 1 and result.imputed[1, 2, 3]
    # the median of the year would have been something else
    assert method.compute(p, SMALL, Settings(missing="median")).values[1, 2, 3] == pytest.approx(4.4)


def _two_years(grow_others: float) -> Panel:
    records = []
    for year, factor in ((2019, 1.0), (2020, grow_others)):
        for city, row in DATA.items():
            for code, value in zip(SMALL.codes, row):
                changed = value if city == "A" else (min(value * factor, 100) if code == "P1" else value * factor)
                records.append((city, year, code, changed))
    return Panel.from_records(records, SMALL.codes)


def test_fixed_base_year_keeps_an_unchanged_city_score():
    p = _two_years(1.5)  # A does not change; everyone else grows by half
    per_period = method.compute(p, SMALL)
    fixed = method.compute(p, SMALL, Settings(base_year=2019))
    a = CITIES.index("A")
    # per period, the thresholds rise with the others, so A's unchanged data score lower
    assert per_period.composite[1, a] < per_period.composite[0, a] - 1e-6
    # fixed to 2019, A keeps its score to the last digit, and 2019 is as computed per period
    assert fixed.composite[1, a] == pytest.approx(fixed.composite[0, a], abs=1e-15)
    assert fixed.composite[0].tolist() == pytest.approx(per_period.composite[0].tolist(), abs=1e-15)
    assert fixed.thresholds[1].tolist() == pytest.approx(fixed.thresholds[0].tolist())
    with pytest.raises(method.MethodError, match="基期"):
        method.compute(p, SMALL, Settings(base_year=2015))


def test_growth_average_and_average_annual_growth():
    p = _two_years(1.2)
    result = method.compute(p, SMALL, Settings(base_year=2019))
    d = CITIES.index("D")
    assert result.growth[1, d] == pytest.approx(result.composite[1, d] / result.composite[0, d] - 1, abs=1e-12)
    assert np.isnan(result.growth[0]).all()
    assert result.average.tolist() == pytest.approx(result.composite.mean(axis=1).tolist(), abs=1e-12)
    assert result.average_annual_growth == pytest.approx(result.average[1] / result.average[0] - 1, abs=1e-12)


def test_min_max_normalisation():
    result = method.compute(panel(), SMALL, Settings(normalisation="minmax"))
    assert result.normalised[0, :, 0].tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1], abs=1e-12)
    assert result.normalised[0, :, 1].tolist() == pytest.approx([0, 0.6, 0.8, 1], abs=1e-12)  # shares too
    assert result.composite[0, 0] == 0.0 and result.composite[0, 3] == pytest.approx(1.0)
    assert np.isnan(result.thresholds).all()


def test_z_score_normalisation():
    result = method.compute(panel(), SMALL, Settings(normalisation="zscore"))
    z = (np.array([10, 20, 30, 40]) - 25) / math.sqrt(500 / 3)
    assert result.normalised[0, :, 0].tolist() == pytest.approx(z.tolist(), abs=1e-12)
    assert result.average[0] == pytest.approx(0.0, abs=1e-12)  # z-scores centre every indicator
    with pytest.raises(method.MethodError, match="几何"):
        Settings(normalisation="zscore", aggregation="geometric")


def test_geometric_aggregation():
    result = method.compute(panel(), SMALL, Settings(aggregation="geometric"))
    n1, p1, n2, n3 = DATA["B"]
    by_hand = (n1 / A1) ** 0.2 * (p1 / 100) ** 0.2 * max(n2 / A2, method.GEOMETRIC_FLOOR) ** 0.3 * (n3 / A3) ** 0.3
    assert result.composite[0, 1] == pytest.approx(by_hand, abs=1e-12)
    demand = ((n1 / A1) ** 0.5) * ((p1 / 100) ** 0.5)
    assert result.first[0, 1, 0] == pytest.approx(demand, abs=1e-12)
    # never above the arithmetic mean
    assert (result.composite[0] <= method.compute(panel(), SMALL).composite[0] + 1e-12).all()


def test_ties_share_the_better_rank_and_absent_cities_are_not_ranked():
    data = dict(DATA)
    data["E"] = data["C"]
    records = [(city, 2020, code, value) for city, row in data.items() for code, value in zip(SMALL.codes, row)]
    records += [("A", 2019, code, 1.0) for code in SMALL.codes]  # A alone in 2019: the others were not assessed
    result = method.compute(Panel.from_records(records, SMALL.codes), SMALL)
    ranks = dict(zip(result.cities, result.rank[1]))
    assert ranks == {"A": 5, "B": 4, "C": 2, "D": 1, "E": 2}
    assert result.present[0].tolist() == [True, False, False, False, False]
    assert [r["city"] for r in result.table(2019)] == ["A"]


def test_short_boards_and_what_if():
    p = panel()
    result = method.compute(p, SMALL)
    boards = analysis.short_boards(result, p, "A", 2020, limit=None)
    # A is below the others' median (20, 80, 4 ... ) on N1, P1 and N3; on N2 it equals the median (1)
    assert [b.code for b in boards] == sorted([b.code for b in boards], key=lambda c: -next(
        b.gap for b in boards if b.code == c))
    assert {b.code for b in boards} == {"N1", "P1", "N3"}
    p1 = next(b for b in boards if b.code == "P1")
    assert p1.peer_median == 90 and p1.points == pytest.approx(0.2 * (0.9 - 0.5), abs=1e-12)
    # the what-if of reaching the median gives the same points
    moved = analysis.what_if(result, p, "A", 2020, {"P1": 90})
    assert moved.delta == pytest.approx(p1.points, abs=1e-12)
    assert moved.rank_before == 4 and moved.changes == [("P1", 50.0, 90.0)]
    with pytest.raises(method.MethodError):
        analysis.what_if(result, p, "A", 2020, {"P1": 130})


def test_sensitivity_shapes_and_leave_one_out():
    p = panel()
    out = analysis.sensitivity(p, SMALL, Settings(), draws=200, seed=1)[2020]
    assert out.cities == CITIES
    assert out.baseline_rank.tolist() == [4, 3, 2, 1]
    assert (out.low_rank <= out.median_rank).all() and (out.median_rank <= out.high_rank).all()
    assert set(out.by_combination) == set(analysis.COMBINATIONS)
    assert out.rows()[0]["city"] == "D" and out.rows()[0]["low"] == 1
    loo = analysis.leave_one_out_weights(SMALL)
    assert loo.sum(axis=1).tolist() == pytest.approx([1.0] * 4)
    assert loo[0].tolist() == pytest.approx([0, 0.4, 0.3, 0.3])  # N1's weight goes to P1
    assert {item.code for item in out.leave_one_out} == set(SMALL.codes)


def test_rank_percentiles_count_the_ranks_that_occurred():
    ranks = np.array([[1, 1, 2, 3], [2, 3, 1, 1], [3, 2, 3, 2]])
    low, median, high = analysis._rank_percentiles(ranks, (0.05, 0.5, 0.95))
    assert low.tolist() == [1, 1, 2] and median.tolist() == [1, 1, 2] and high.tolist() == [3, 3, 3]
    scores = np.array([[0.5, 0.1], [0.9, 0.2], [0.1, 0.3]])
    assert analysis._ranks(scores).tolist() == [[2, 3], [1, 2], [3, 1]]


def test_sensitivity_ranks_with_the_catalogue_weights_are_each_methods_ranks():
    p = panel()
    out = analysis.sensitivity(p, SMALL, Settings(), draws=20, seed=3)[2020]
    for normalisation, aggregation in analysis.COMBINATIONS:
        direct = method.compute(p, SMALL, Settings(normalisation=normalisation, aggregation=aggregation))
        assert out.by_combination[(normalisation, aggregation)].tolist() == direct.rank[0].tolist()
    again = analysis.sensitivity(p, SMALL, Settings(), draws=20, seed=3)[2020]
    assert again.median_rank.tolist() == out.median_rank.tolist()  # reproducible with the seed


# Five cities, seven indicators, three years: the counts differ from each other (and from the 23 of the
# real catalogue), so an axis mixed up between cities and indicators cannot pass by coincidence.
SEVEN = Catalogue(tuple(
    Indicator(code, code, unit, kind, first, second, weight) for (code, unit, kind, first, second), weight in zip(
        [("N1", "元", "numeric", "demand", "甲"), ("P1", "%", "share", "demand", "乙"),
         ("N2", "个", "numeric", "supply", "丙"), ("N3", "个", "numeric", "supply", "丙"),
         ("P2", "%", "share", "supply", "丁"), ("N4", "万个", "numeric", "environment", "戊"),
         ("N5", "件", "numeric", "environment", "己")],
        method.equal_within_first({"demand": 0.15, "supply": 0.55, "environment": 0.30},
                                  ["demand", "demand", "supply", "supply", "supply", "environment", "environment"]))))
FIVE = ["A", "B", "C", "D", "E"]
YEARS = [2018, 2019, 2020]


def seven_value(city: str, year: int, k: int) -> float:
    """Every cell distinct: (indicator + 1) * 10 + city, growing 10 % a year; shares stay within 0-100."""
    return round(((k + 1) * 10 + FIVE.index(city)) * 1.1 ** (year - 2018), 6)


def seven_panel(gaps=(), overrides=None) -> Panel:
    overrides = overrides or {}
    return Panel.from_records(
        [(city, year, code, overrides.get((city, year, code), seven_value(city, year, k)))
         for year in YEARS for city in FIVE for k, code in enumerate(SEVEN.codes) if (city, year, code) not in gaps],
        SEVEN.codes)


def test_previous_year_imputation_with_five_cities_and_seven_indicators():
    gaps = {("B", 2019, "N2"), ("C", 2019, "P2"), ("C", 2020, "P2"), ("E", 2020, "N5")}
    p = seven_panel(gaps)
    assert p.values.shape == (3, 5, 7)
    result = method.compute(p, SEVEN, Settings(missing="previous"))
    t, c, k = YEARS.index, FIVE.index, SEVEN.codes.index
    # by hand: each gap takes the city's own value of the year before, over two years if need be
    assert result.values[t(2019), c("B"), k("N2")] == seven_value("B", 2018, k("N2")) == 31.0
    assert result.values[t(2019), c("C"), k("P2")] == seven_value("C", 2018, k("P2")) == 52.0
    assert result.values[t(2020), c("C"), k("P2")] == 52.0
    assert result.values[t(2020), c("E"), k("N5")] == seven_value("E", 2019, k("N5")) == pytest.approx(81.4)
    assert sorted((YEARS[a], FIVE[b], SEVEN.codes[d]) for a, b, d in np.argwhere(result.imputed)) == sorted(
        (year, city, code) for city, year, code in gaps)
    assert {r["city"]: r["imputed"] for r in result.table(2020)} == {"A": [], "B": [], "C": ["P2"], "D": [], "E": ["N5"]}
    # the rest of the computation is the complete panel's with those values typed in
    by_hand = method.compute(seven_panel(overrides={("B", 2019, "N2"): 31.0, ("C", 2019, "P2"): 52.0,
                                                    ("C", 2020, "P2"): 52.0, ("E", 2020, "N5"): 81.4}), SEVEN)
    np.testing.assert_allclose(result.composite, by_hand.composite, rtol=0, atol=1e-12)
    assert result.rank.tolist() == by_hand.rank.tolist()
    out = analysis.sensitivity(p, SEVEN, Settings(missing="previous"), draws=20, seed=1)[2020]
    assert out.baseline_rank.tolist() == by_hand.rank[t(2020)].tolist()


def test_a_base_year_in_which_an_indicator_is_zero_everywhere_takes_its_threshold_from_the_next_year():
    # N4 is like the 5G stations: none anywhere in 2018, then a few
    p = seven_panel(overrides={(city, 2018, "N4"): 0.0 for city in FIVE})
    k = SEVEN.codes.index("N4")
    result = method.compute(p, SEVEN, Settings(base_year=2018))
    n4_2019 = np.array([seven_value(city, 2019, k) for city in FIVE])
    a_2019 = np.median(n4_2019) + 2 * np.std(n4_2019, ddof=1)
    # every year is normalised by the 2019 threshold for N4 (one threshold for all years, as the base year
    # setting means), and by 2018's for the other indicators
    assert result.thresholds[:, k].tolist() == pytest.approx([a_2019] * 3, abs=1e-12)
    per_period = method.compute(p, SEVEN)
    others = [n for n in range(7) if n != k]
    np.testing.assert_allclose(result.thresholds[:, others], np.tile(per_period.thresholds[0, others], (3, 1)),
                               rtol=0, atol=1e-12)
    assert result.normalised[2, :, k].tolist() == pytest.approx(
        [min(seven_value(city, 2020, k) / a_2019, 1.0) for city in FIVE], abs=1e-12)
    assert (result.normalised[2, :, k] > 0).all() and (result.normalised[0, :, k] == 0).all()
    # and it says so, naming the indicator and both years
    assert [(f.code, f.base_year, f.used_year) for f in result.fallbacks] == [("N4", 2018, 2019)]
    assert len(result.warnings) == 1 and all(s in result.warnings[0] for s in ("N4", "2018", "2019"))
    # per period the year's scores need no fallback; only its growth run, fixed to 2018 (issue 18), does,
    # and the warning says it is about growth. Fixed to a year in which N4 has a threshold, nothing to say
    assert per_period.fallbacks == [] and [(f.code, f.used_year) for f in per_period.growth_fallbacks] == [("N4", 2019)]
    assert len(per_period.warnings) == 1 and per_period.warnings[0].startswith("增速计算（按 2018 年固定阈值）")
    assert method.compute(p, SEVEN, Settings(base_year=2019)).warnings == []
    # the same rule for the alternatives, whose base-year spread is nil too
    minmax = method.compute(p, SEVEN, Settings(base_year=2018, normalisation="minmax"))
    assert [(f.code, f.used_year) for f in minmax.fallbacks] == [("N4", 2019)]
    assert minmax.normalised[2, :, k].tolist() == pytest.approx([1.0] * 5)  # 2020 above 2019's maximum: capped


def test_a_gap_blocks_only_its_own_year():
    p = seven_panel({("B", 2019, "N2")})
    result = method.compute(p, SEVEN)  # refused by default, yet 2018 and 2020 compute
    complete = method.compute(seven_panel(), SEVEN)
    for year in (2018, 2020):  # thresholds per period: the same figures as with no gap at all
        assert [(r["city"], r["composite"], r["rank"]) for r in result.table(year)] == [
            (r["city"], r["composite"], r["rank"]) for r in complete.table(year)]
    assert list(result.blocked) == [2019]
    with pytest.raises(method.MissingValues) as refused:
        result.table(2019)
    assert refused.value.cells == [("B", 2019, "N2")] and "B 2019 年 N2" in str(refused.value)
    assert "其他年份" in str(refused.value)
    assert np.isnan(result.average[1]) and np.isnan(result.growth[2]).all()  # no 2019 to grow from
    # sensitivity of another year is not blocked either; of 2019 it is
    assert analysis.sensitivity(p, SEVEN, Settings(), [2020], draws=20)[2020].cities == FIVE
    with pytest.raises(method.MissingValues):
        analysis.sensitivity(p, SEVEN, Settings(), [2019], draws=20)
    # a fixed base year with a gap blocks every year: they are all normalised by it
    with pytest.raises(method.MissingValues, match="基期"):
        method.compute(p, SEVEN, Settings(base_year=2019))
    assert method.compute(p, SEVEN, Settings(base_year=2018)).table(2020)
