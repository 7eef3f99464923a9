"""ICDI-EC at scale: 300 cities x 10 years, the index and its full sensitivity, timed.

    .venv/bin/python benchmarks/index_sensitivity.py [--cities 300] [--years 10] [--draws 1000]

Full sensitivity per year: 1,000 Dirichlet draws of the weights under each of the five normalisation x
aggregation combinations (5,000 rankings of every city per year), plus leaving each of the 23 indicators
out. The data are synthetic (lognormal numeric indicators, shares near their ceilings), with a few
missing cells imputed by the cross-city median, to exercise the whole path. Pure numpy: no database.
Target: under 10 s on the 2-core development machine.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voucher.info_consumption_index import analysis, method  # noqa: E402
from voucher.info_consumption_index.catalogue import default_catalogue  # noqa: E402


def synthetic_panel(cities: int, years: int, seed: int = 7) -> method.Panel:
    rng = np.random.default_rng(seed)
    cat = default_catalogue()
    strength = rng.normal(size=cities)
    values = np.empty((years, cities, len(cat.codes)))
    for k, ind in enumerate(cat.indicators):
        noise = rng.normal(size=cities)
        for t in range(years):
            z = 0.7 * strength + 0.5 * noise + rng.normal(scale=0.2, size=cities)
            if ind.kind == "share":
                values[t, :, k] = np.clip(80 + 1.5 * t + 8 * z, 0, 100)
            else:
                values[t, :, k] = 1000 * (1.06 ** t) * np.exp(0.8 * z)
    holes = rng.choice(values.size, size=values.size // 2000, replace=False)  # 0.05 % missing
    values.reshape(-1)[holes] = np.nan
    return method.Panel([f"城市{n:03d}" for n in range(cities)], list(range(2011, 2011 + years)), values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cities", type=int, default=300)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--draws", type=int, default=analysis.DEFAULT_DRAWS)
    args = parser.parse_args()

    cat = default_catalogue()
    panel = synthetic_panel(args.cities, args.years)
    settings = method.Settings(missing="median")
    print(f"ICDI-EC benchmark: {args.cities} cities x {args.years} years x {len(cat.codes)} indicators, "
          f"{int(np.isnan(panel.values).sum())} missing cells imputed (median); {os.cpu_count()} CPU(s)")

    started = time.perf_counter()
    result = method.compute(panel, cat, settings)
    computed = time.perf_counter()
    variants = [method.Settings(missing="median", normalisation=n, aggregation=a) for n, a in analysis.COMBINATIONS]
    variants += [method.Settings(missing="median", std="population"), method.Settings(missing="median", cap=False),
                 method.Settings(missing="median", base_year=panel.years[0])]
    for variant in variants:
        method.compute(panel, cat, variant)
    settings_done = time.perf_counter()
    sensitivity = analysis.sensitivity(panel, cat, settings, draws=args.draws)
    finished = time.perf_counter()
    # the pages' many-call analyses: short boards recompute the index once per indicator below the median
    for city in panel.cities[:10]:
        analysis.short_boards(result, panel, city, panel.years[-1], limit=None)
    boards_done = time.perf_counter()
    split = analysis.sobol_split(panel, cat, settings, panel.years[-1])
    split_done = time.perf_counter()

    rankings = args.years * len(analysis.COMBINATIONS) * args.draws
    print(f"  index, report method, all years:          {computed - started:7.3f} s")
    print(f"  {len(variants)} alternative settings, all years:      {settings_done - computed:7.3f} s")
    print(f"  sensitivity, all years ({rankings:,} rankings + {args.years * len(cat.codes)} leave-one-out): "
          f"{finished - settings_done:7.3f} s")
    print(f"  short boards of 10 cities, last year:      {boards_done - finished:7.3f} s")
    print(f"  variance split of rank uncertainty, last year ({split.runs:,} rankings): {split_done - boards_done:7.3f} s")
    total = split_done - started
    print(f"  total:                                    {total:7.3f} s   (target < 10 s: {'met' if total < 10 else 'NOT met'})")

    last = panel.years[-1]
    s = sensitivity[last]
    widths = s.high_rank - s.low_rank
    growth = result.average_annual_growth
    print(f"  {last}: average index {result.average[-1]:.3f}; average annual growth "
          f"{'-' if growth is None else f'{growth * 100:.1f}'} % ({result.growth_label})")
    print(f"  {last}: 90 % rank interval width median {np.median(widths):.0f}, max {widths.max():.0f} ranks; "
          f"most influential indicator when left out: {s.leave_one_out[0].code} "
          f"(mean rank shift {s.leave_one_out[0].mean_shift:.2f})")
    print(f"  {last}: total effects " + ", ".join(f"{key} {total:.2f}" for key, _, _, total in split.sources))


if __name__ == "__main__":
    main()
