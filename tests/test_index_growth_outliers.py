"""ICDI-EC (issue 18): growth on a fixed base year while the year's ranking keeps its own thresholds, and the
optional outlier treatment. Pure computation: no database."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from voucher.cli import SEED_DIR
from voucher.info_consumption_index import method
from voucher.info_consumption_index.catalogue import default_catalogue
from voucher.info_consumption_index.method import Panel, Settings

CAT = default_catalogue()


def demo_panel() -> Panel:
    with open(SEED_DIR / "index_demo.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return Panel.from_records([(r["city"], int(r["year"]), code, float(r[code])) for r in rows for code in CAT.codes],
                              CAT.codes)


def raised(panel: Panel, factor: float, years=None) -> Panel:
    """Every numeric indicator multiplied by factor in `years` (all years if None)."""
    values = panel.values.copy()
    rows = range(len(panel.years)) if years is None else [panel.years.index(y) for y in years]
    for t in rows:
        values[t][:, ~CAT.is_share] *= factor
    return Panel(panel.cities, panel.years, values)


def test_a_common_rise_now_raises_the_reported_average_growth():
    """Per-period thresholds rise with the cities: before issue 18 the average and its growth stayed put
    (0.5680 -> 0.5680, 6.6 % -> 6.6 %) when every city's numeric indicators rose 30 % in the last year."""
    panel = demo_panel()
    before = method.compute(panel, CAT)
    after = method.compute(raised(panel, 1.3, [2020]), CAT)
    # the year's own scores, for the year's ranking, do not move: they are relative to that year's cities
    assert after.average[-1] == pytest.approx(before.average[-1], abs=1e-12)
    assert (after.rank == before.rank).all()
    # growth stands on the 2018 thresholds, and so it rises
    assert before.growth_base_year == after.growth_base_year == 2018
    assert after.fixed_average[-1] > before.fixed_average[-1] + 0.03
    assert after.average_annual_growth > before.average_annual_growth + 0.02
    assert after.growth_label == "增速按 2018 年固定阈值计算"
    assert after.ranking_label == "当年排名用，各年阈值不同、不可跨年比较"


def test_per_period_growth_is_the_fixed_base_runs_growth():
    panel = demo_panel()
    per_period = method.compute(panel, CAT)
    fixed = method.compute(panel, CAT, Settings(base_year=2018))
    np.testing.assert_allclose(per_period.fixed_composite, fixed.composite, atol=1e-15)
    np.testing.assert_allclose(per_period.growth[1:], fixed.growth[1:], atol=1e-15)
    assert per_period.average_annual_growth == pytest.approx(fixed.average_annual_growth, abs=1e-15)
    assert fixed.growth[1, 0] == pytest.approx(fixed.composite[1, 0] / fixed.composite[0, 0] - 1, abs=1e-12)
    # the base-year fallback of the growth run (E3 is 0 everywhere in 2018) is said, tied to the growth
    assert any(w.startswith("增速计算（按 2018 年固定阈值）") and "E3" in w for w in per_period.warnings)
    # a chosen base year is the growth base, and its composite is comparable across years
    assert method.compute(panel, CAT, Settings(base_year=2019)).growth_base_year == 2019


def test_the_growth_base_is_the_first_year_that_computes():
    panel = demo_panel()
    values = panel.values.copy()
    values[0, 3, 5] = np.nan  # one cell missing in 2018: 2018 is left out, 2019 becomes the base
    result = method.compute(Panel(panel.cities, panel.years, values), CAT)
    assert 2018 in result.blocked and result.growth_base_year == 2019
    fixed = method.compute(Panel(panel.cities, panel.years, values), CAT, Settings(base_year=2019))
    np.testing.assert_allclose(result.fixed_average[1:], fixed.average[1:], atol=1e-15)


def test_callers_that_read_only_composites_skip_the_growth_run():
    panel = demo_panel()
    quick = method.compute(panel, CAT, growth=False)
    full = method.compute(panel, CAT)
    np.testing.assert_array_equal(quick.composite, full.composite)
    assert np.isnan(quick.growth).all() and quick.average_annual_growth is None


def test_demo_average_growth_on_the_fixed_base():
    """The figure the pages now show for the illustrative data (tests/test_index_pages.py explains it)."""
    result = method.compute(demo_panel(), CAT)
    assert result.average.tolist() == pytest.approx([0.500, 0.5329, 0.568], abs=5e-4)
    assert result.fixed_average.tolist() == pytest.approx([0.500, 0.6088, 0.7087], abs=5e-4)
    assert result.average_annual_growth == pytest.approx(0.1906, abs=5e-4)


# Outliers -------------------------------------------------------------------------------------------


def ten_city_panel() -> Panel:
    """Ten cities of the demo's 2020, 连云港 among them (issue 18's example had ten)."""
    panel = demo_panel()
    t = panel.years.index(2020)
    keep = list(range(9)) + [panel.cities.index("连云港")]
    values = panel.values[t:t + 1, keep].copy()
    return Panel([panel.cities[c] for c in keep], [2020], values)


def first_place(result) -> str:
    return result.cities[int(np.argmin(np.where(result.rank[0] > 0, result.rank[0], 999)))]


def test_one_outlier_city_no_longer_flips_first_place_when_treated():
    clean = method.compute(ten_city_panel(), CAT)
    leader, other = first_place(clean), "上海"
    assert leader == "北京" and clean.rank[0, clean.cities.index(other)] == 2
    k = CAT.codes.index("D3")
    # ten times the highest D3 for the runner-up: untreated, the threshold (median + 2 sd) jumps, the
    # leader's D3 drops from 1 to a fraction, and the first place flips
    panel = ten_city_panel()
    values = panel.values.copy()
    values[0, panel.cities.index(other), k] = 10 * np.nanmax(values[0, :, k])
    outlier = Panel(panel.cities, panel.years, values)
    untreated = method.compute(outlier, CAT)
    assert first_place(untreated) != leader
    for treatment in ("winsorise", "log"):
        treated = method.compute(outlier, CAT, Settings(outliers=treatment))
        assert first_place(treated) == first_place(method.compute(panel, CAT, Settings(outliers=treatment))) == leader, \
            treatment
        assert any("D3" in line for line in treated.treated)
    winsorised = method.treat_outliers(outlier.values, outlier.present, outlier.years, CAT,
                                       Settings(outliers="winsorise"))[0]
    # the outlier is set to the next value; nobody else's D3 moves
    assert winsorised[0, panel.cities.index(other), k] == np.sort(values[0, :, k])[-2]
    assert int((winsorised[0, :, k] != values[0, :, k]).sum()) == 1


def test_the_outlier_check_is_the_handbooks():
    """|skew| > 2 and kurtosis > 3.5, Excel's SKEW and KURT: a normal-looking set passes, one extreme fails."""
    assert not method.fails_outlier_check(np.array([1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10]))
    assert method.fails_outlier_check(np.array([1.0, 2, 3, 4, 5, 6, 7, 8, 9, 1000]))
    skew, kurt = method._skew_kurtosis(np.array([1.0, 2, 3, 4, 5, 6, 7, 8, 9, 1000]))
    # one extreme among ten: near the limits sqrt(10) = 3.1623 and 10 of the sample-adjusted formulas
    assert skew == pytest.approx(3.1619, abs=1e-4) and kurt == pytest.approx(9.9981, abs=1e-4)


def test_outlier_setting_is_named_and_validated():
    assert dict(Settings(outliers="log").describe())["离群值处理"].startswith("对数变换")
    assert dict(Settings().describe())["离群值处理"] == "不处理（默认）"
    assert not Settings(outliers="winsorise").is_report_method
    with pytest.raises(method.MethodError, match="离群值"):
        Settings(outliers="trim")
    # none leaves everything as the report computes it
    panel = demo_panel()
    np.testing.assert_array_equal(method.compute(panel, CAT).composite,
                                  method.compute(panel, CAT, Settings(outliers="none")).composite)
