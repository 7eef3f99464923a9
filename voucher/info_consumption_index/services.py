"""From the database to the pure computation and back: the effective values (official over campaign-fed),
a computation with the active catalogue, and its record."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from flask import current_app
from sqlalchemy import select

from voucher.core import audit
from voucher.core.db import db
from voucher.info_consumption_index import catalogue as catalogue_service
from voucher.info_consumption_index import method
from voucher.info_consumption_index.models import CatalogueVersion, IndexComputation, IndexValue, ValueSource

DEFAULT_HOME_CITY = "连云港"


def home_city() -> str:
    return current_app.config.get("INDEX_HOME_CITY", DEFAULT_HOME_CITY)


@dataclass
class Data:
    version: CatalogueVersion
    catalogue: method.Catalogue
    panel: method.Panel
    #: (city, year, code) -> the source of the value the computation uses
    sources: dict[tuple[str, int, str], str]
    #: (city, year, code) -> every stored value, official and campaign-fed, for display
    all_values: dict[tuple[str, int, str], dict[str, IndexValue]]


def load(version: CatalogueVersion | None = None) -> Data:
    version = version or catalogue_service.require_active()
    cat = catalogue_service.as_method(version)
    codes = set(cat.codes)
    stored: dict[tuple[str, int, str], dict[str, IndexValue]] = {}
    for value in db.session.scalars(select(IndexValue).where(IndexValue.code.in_(codes))):
        stored.setdefault((value.city, value.year, value.code), {})[value.source] = value
    # A city-year is assessed when it has official values: the campaign side's S11 alone (published
    # before the year's statistics exist) does not put a city into a year's ranking.
    assessed = {(city, year) for (city, year, _), by_source in stored.items() if ValueSource.OFFICIAL.value in by_source}
    records, sources = [], {}
    for key, by_source in stored.items():
        if key[:2] not in assessed:
            continue
        chosen = by_source.get(ValueSource.OFFICIAL.value) or by_source[ValueSource.CAMPAIGN_FEED.value]
        records.append((*key, chosen.value))
        sources[key] = chosen.source
    return Data(version, cat, method.Panel.from_records(records, cat.codes), sources, stored)


def compute(data: Data, settings: method.Settings) -> method.Result:
    return method.compute(data.panel, data.catalogue, settings)


def record(result: method.Result, version: CatalogueVersion, actor=None) -> IndexComputation:
    """Keep a computation with the catalogue version and settings it used, and its headline results."""
    results: dict[str, dict] = {}
    for year in result.years:
        if year in result.blocked:  # left out: the record says which cells kept it out
            results[str(year)] = {"average": None, "rows": [], "missing": [list(cell) for cell in result.blocked[year]]}
            continue
        t = result.year_index(year)
        results[str(year)] = {
            "average": None if np.isnan(result.average[t]) else round(float(result.average[t]), 12),
            "rows": result.table(year),
            "warnings": result.warnings,
            # growth stands on fixed thresholds, not on the year's own (method.Result.growth)
            "growth_base_year": result.growth_base_year,
            "fixed_average": None if result.fixed_average is None or np.isnan(result.fixed_average[t])
            else round(float(result.fixed_average[t]), 12),
        }
    row = IndexComputation(catalogue_version_id=version.id, settings=result.settings.as_dict(), years=result.years,
                           results=results, computed_by_id=getattr(actor, "id", None))
    db.session.add(row)
    db.session.flush()  # the audit entry names its id
    audit.record("index.compute", row, actor=actor, actor_label=None if actor else "cli",
                 after={"catalogue_version": version.version, "settings": result.settings.as_dict()})
    return row


def computations(limit: int = 20) -> list[IndexComputation]:
    return list(db.session.scalars(select(IndexComputation).order_by(IndexComputation.id.desc()).limit(limit)))
