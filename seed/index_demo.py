"""示意数据 (illustrative): synthetic ICDI-EC values for the 26 demonstration cities of the report's
table 1 and Lianyungang, 2018-2020, in seed/index_demo.csv. NOT official statistics.

Calibrated to the report's published figures: the 2020 cross-city means of D1 (47,416 yuan), D2 (11.43 GB,
written 11,430 MB), D3 (18,041), S2 (15,665), S3 (19,260), E1 (90.5 %), E5 (100 %), the 2019 -> 2020 growth
the report gives for them, the 5G stations (380,600 in all in 2020, +221.8 %), and the average composite
0.500 (2018) -> 0.568 (2020) under the report's method (per-year dispersion tuned by bisection). Cities
differ by a fixed latent strength plus per-indicator noise, all from one seed, so the file is reproducible:

    .venv/bin/python -m seed.index_demo > seed/index_demo.csv
"""
from __future__ import annotations

import csv
import io
import sys

import numpy as np

from voucher.info_consumption_index import method
from voucher.info_consumption_index.catalogue import default_catalogue
from voucher.info_consumption_index.models import DEMO_FILE_NAME

SEED = 20220301
YEARS = (2018, 2019, 2020)
NOTE = "示意数据（合成，按中国信通院报告 2020 年均值校准），非官方统计"
FILE_NAME = DEMO_FILE_NAME  # the pages label a batch of this name as illustrative
#: table 1 of the report, then the home city; the number is a rough latent strength (illustrative)
CITIES = {
    "北京": 1.7, "天津": 0.6, "上海": 1.7, "杭州": 1.4, "广州": 1.3, "福州": 0.4, "郑州": 0.4, "苏州": 1.2,
    "南京": 1.1, "无锡": 0.9, "宁波": 0.8, "成都": 0.8, "昆明": -0.1, "济南": 0.5, "佛山": 0.6, "温州": 0.1,
    "贵阳": 0.0, "株洲": -0.5, "蚌埠": -0.7, "湖州": 0.0, "徐州": -0.2, "泸州": -0.8, "赣州": -0.9, "莆田": -0.6,
    "大连": 0.3, "合肥": 0.6, "连云港": -0.6,
}
#: numeric indicators: mean per year (2018, 2019, 2020), relative dispersion, integer counts?
NUMERIC = {
    "D1": ((41_857, 45_205, 47_416), 0.25, False),
    "D2": ((6_560, 8_659, 11_430), 0.30, False),
    "D3": ((13_950, 16_124, 18_041), 0.55, False),
    "S1": ((1_480, 1_540, 1_610), 0.30, False),
    "S2": ((12_300, 14_000, 15_665), 0.95, False),
    "S3": ((17_500, 18_320, 19_260), 0.85, False),
    "S8": ((2, 3, 4), 0.80, True),
    "S9": ((8_000, 12_000, 16_000), 0.70, True),
    "S10": ((5, 10, 20), 0.80, True),
    "S11": ((100_000_000, 120_000_000, 150_000_000), 0.80, False),
    "S12": ((1, 2, 3), 0.70, True),
    "S13": ((1, 2, 3), 0.70, True),
    "E2": ((60, 100, 150), 0.20, False),
    "E3": ((0.0, 0.455, 1.464), 0.75, False),
    "E4": ((5, 20, 40), 0.70, True),
    "E7": ((80, 100, 130), 0.60, False),
}
#: share indicators: mean per year in percent, spread in points
SHARES = {
    "S4": ((75, 82, 88), 8), "S5": ((85, 89, 93), 5), "S6": ((88, 92, 95), 4), "S7": ((70, 80, 88), 9),
    "E1": ((70, 83.9, 90.5), 6), "E5": ((98, 99.5, 100), 1.2), "E6": ((97, 98.5, 99.5), 1),
}
TARGET_AVERAGE = {2018: 0.500, 2019: 0.500 * (0.568 / 0.500) ** 0.5, 2020: 0.568}


def _shares(mean: float, spread: float, signal: np.ndarray) -> np.ndarray:
    """Values around `mean` (clipped to 100) whose mean is `mean` to 1e-9 (a shift found by bisection)."""
    low, high = -100.0, 100.0
    for _ in range(200):
        shift = (low + high) / 2
        values = np.clip(mean + shift + spread * signal, 0, 100)
        low, high = (shift, high) if values.mean() < mean else (low, shift)
    return np.clip(mean + (low + high) / 2 + spread * signal, 0, 100)


def generate(seed: int = SEED) -> list[dict]:
    rng = np.random.default_rng(seed)
    catalogue = default_catalogue()
    names = list(CITIES)
    strength = np.array(list(CITIES.values()))
    strength = (strength - strength.mean()) / strength.std()
    noise = {code: rng.normal(size=len(names)) for code in catalogue.codes}
    yearly = {(code, y): rng.normal(scale=0.25, size=len(names)) for code in catalogue.codes for y in YEARS}

    def year_values(t: int, scale: float) -> dict[str, np.ndarray]:
        year = YEARS[t]
        out = {}
        for code, (means, sigma, counts) in NUMERIC.items():
            s = sigma * scale
            z = 0.75 * strength + 0.6 * noise[code] + yearly[(code, year)]
            raw = np.exp(s * z)
            values = means[t] * raw / raw.mean()  # the mean exactly as published
            out[code] = np.round(values) if counts else np.round(values, 2)
        for code, (means, spread) in SHARES.items():
            signal = 0.7 * strength + 0.5 * noise[code] + yearly[(code, year)]
            out[code] = np.round(_shares(means[t], spread, signal), 4) if means[t] < 100 else np.full(len(names), 100.0)
        return out

    rows = []
    for t, year in enumerate(YEARS):
        low, high = 0.05, 4.0
        for _ in range(60):  # more dispersion -> higher thresholds -> lower composite
            scale = (low + high) / 2
            values = year_values(t, scale)
            panel = method.Panel(names, [year], np.array([[values[c] for c in catalogue.codes]]).transpose(0, 2, 1))
            average = method.compute(panel, catalogue).average[0]
            low, high = (scale, high) if average > TARGET_AVERAGE[year] else (low, scale)
        values = year_values(t, (low + high) / 2)
        for n, city in enumerate(names):
            rows.append({"city": city, "year": year, **{c: float(values[c][n]) for c in catalogue.codes}, "note": NOTE})
    return rows


def _number(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".")


def as_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    codes = default_catalogue().codes
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["city", "year", *codes, "note"])
    for row in rows:
        writer.writerow([row["city"], row["year"], *(_number(row[c]) for c in codes),
                         row["note"]])
    return out.getvalue()


def load_demo(path) -> int:
    """Import the illustrative file once (when no official value exists yet); returns the cells imported."""
    from sqlalchemy import select

    from voucher.core.db import db
    from voucher.info_consumption_index import catalogue, importing
    from voucher.info_consumption_index.models import IndexValue

    if db.session.scalar(select(IndexValue.id).limit(1)) is not None:
        return 0
    version = catalogue.active_version() or catalogue.install_default_catalogue()
    return importing.import_file(path.read_bytes(), FILE_NAME, catalogue.as_method(version)).cells


if __name__ == "__main__":  # pragma: no cover - regenerates the seed file
    sys.stdout.write(as_csv(generate()))
