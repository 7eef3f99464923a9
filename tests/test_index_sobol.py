"""ICDI-EC (issue 18): the variance-based split of rank uncertainty by source. Pure computation."""
from __future__ import annotations

import numpy as np
import pytest

from tests.test_index_growth_outliers import CAT, demo_panel
from voucher.info_consumption_index import analysis, method
from voucher.info_consumption_index.method import Panel, Settings


def test_the_estimators_on_a_function_with_known_indices():
    """Y = 4 X1 + 2 X2 + 0 X3, X uniform: V_i = a_i^2 / 12, so S = ST = (16, 4, 0) / 20, no interaction."""
    rng = np.random.default_rng(1)
    A, B = rng.random((20000, 3)), rng.random((20000, 3))
    firsts, totals, _, _ = analysis.sobol_indices(lambda X: 4 * X[:, 0] + 2 * X[:, 1], A, B)
    assert firsts == pytest.approx([0.8, 0.2, 0.0], abs=0.02)
    assert totals == pytest.approx([0.8, 0.2, 0.0], abs=0.02)
    # an interaction only: Y = X1 X2 centred; first orders small, totals large
    firsts, totals, _, _ = analysis.sobol_indices(lambda X: (X[:, 0] - 0.5) * (X[:, 1] - 0.5), A, B)
    assert abs(firsts[0]) < 0.05 and totals[0] == pytest.approx(1.0, abs=0.05)


def test_split_of_the_demo_ranking_by_source():
    split = analysis.sobol_split(demo_panel(), CAT, Settings(), 2020)
    by_source = {key: (first, total) for key, _, first, total in split.sources}
    assert list(by_source) == ["weights", "method", "std", "cap", "missing", "base_year"]
    assert split.runs == analysis.SOBOL_DEFAULT_N * 8
    # no value is missing in the demo: the imputation cannot matter; the sd type hardly does
    assert by_source["missing"] == (0.0, 0.0)
    assert by_source["std"][1] < 0.01
    # weights, method and base year each move ranks
    for key in ("weights", "method", "base_year"):
        assert by_source[key][1] > 0.2, key
    assert split.sentence().startswith("排名的不确定性主要来自")
    assert "标准差口径" in split.sentence() and "几乎不影响排名" in split.sentence()
    assert len(split.cities) == 27 and (split.low_rank <= split.high_rank).all()
    # the same seed gives the same split
    again = analysis.sobol_split(demo_panel(), CAT, Settings(), 2020)
    assert again.sources == split.sources


def test_a_gap_brings_the_imputation_in_as_a_source():
    panel = demo_panel()
    values = panel.values.copy()
    k = CAT.codes.index("D1")
    values[2, :8, k] = np.nan  # eight cities without D1 in 2020: median and previous year differ
    gappy = Panel(panel.cities, panel.years, values)
    split = analysis.sobol_split(gappy, CAT, Settings(missing="median"), 2020, n=2048)
    levels = analysis.source_levels(gappy, CAT, Settings(missing="median"), 2020)
    assert "中位数" in levels["missing"] and "上一年" in levels["missing"]
    assert dict((key, total) for key, _, _, total in split.sources)["missing"] > 0
    with pytest.raises(method.MethodError):
        analysis.sobol_split(gappy, CAT, Settings(), 2030)
