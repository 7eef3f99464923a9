"""Who benefits (受益结构): how the subsidy paid and the driven consumption are spread across merchants,
by merchant size class and by district, per resident of each district (issue 18).

The amounts are the leverage page's gross figures, grouped differently: the standing (not reversed)
redemptions of the selection (`leverage.standing_redemptions`, the same joins and dates), so the totals
here equal that page's subsidy paid and driven consumption to the fen. Driven consumption is the whole
order in which a voucher was redeemed (gross, not what the voucher caused).

One aggregate per merchant and store district (GROUP BY on the database, a few rows per merchant), then
the merchants' totals sorted in Python: at city scale that is tens of thousands of rows, never the
redemptions themselves. The rollup's facts carry no merchant, so this is read live.

Concentration: the top 1 % and 10 % of merchants (at least one; the count rounded up) ranked by the
amount itself, their share and count; the Gini coefficient over the merchants that redeemed (0: all
equal, towards 1: one takes all), exact from integer totals; the Lorenz (concentration) curve.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from voucher.accounts.models import User
from voucher.analytics.leverage import LeverageFilter, standing_redemptions
from voucher.analytics.models import DistrictPopulation
from voucher.core import audit
from voucher.core.clock import utcnow
from voucher.core.db import db
from voucher.core.errors import InvalidInput
from voucher.core.reference import DISTRICTS
from voucher.merchants.models import SIZE_CLASS_LABELS, Merchant, Redemption, Store

#: the shares of the largest merchants the page names
TOP_SHARES = (0.01, 0.10)
#: the most points a Lorenz curve keeps (evenly spaced over the merchants, each exactly on the curve)
CURVE_POINTS = 200
#: the years a population figure can be for
POPULATION_YEARS = range(1949, 2101)
#: more people than any district of the city could have: a longer number is a typo
MAX_RESIDENTS = 100_000_000


def gini(amounts: Sequence[int]) -> float | None:
    """The Gini coefficient of non-negative amounts: 2·Σ i·xᵢ ÷ (n·Σx) − (n+1)/n over xᵢ ascending,
    in integers until the one division. None for no amounts or a zero total."""
    values = sorted(int(a) for a in amounts)
    n, total = len(values), sum(values)
    if n == 0 or total == 0:
        return None
    weighted = sum(i * x for i, x in enumerate(values, start=1))
    return (2 * weighted - (n + 1) * total) / (n * total)


def top_count(n: int, share: float) -> int:
    """How many merchants are the top `share` of n: rounded up, at least one (none of none)."""
    return 0 if n == 0 else max(1, math.ceil(n * share - 1e-9))


def lorenz(amounts: Sequence[int], points: int = CURVE_POINTS) -> list[tuple[float, float]]:
    """(share of merchants, share of the amount) from the smallest up, from (0, 0) to (1, 1): every
    merchant's point when there are few, else `points` of them evenly spaced (each exactly on the curve)."""
    values = sorted(int(a) for a in amounts)
    n, total = len(values), sum(values)
    if n == 0 or total == 0:
        return []
    cumulative = [0]
    for value in values:
        cumulative.append(cumulative[-1] + value)
    steps = range(n + 1) if n <= points else sorted({round(k * n / points) for k in range(points + 1)})
    return [(i / n, cumulative[i] / total) for i in steps]


@dataclass
class Concentration:
    """One amount (subsidy or driven consumption) over the merchants that redeemed."""
    total_fen: int
    merchants: int
    #: (share of merchants named, merchants in it, their amount)
    top: list[tuple[float, int, int]]
    gini: float | None
    curve: list[tuple[float, float]]

    @staticmethod
    def of(amounts: Sequence[int]) -> Concentration:
        ranked = sorted((int(a) for a in amounts), reverse=True)
        top = [(share, k, sum(ranked[:k])) for share in TOP_SHARES for k in [top_count(len(ranked), share)]]
        return Concentration(sum(ranked), len(ranked), top, gini(ranked), lorenz(ranked))

    def share(self, amount_fen: int) -> float | None:
        return amount_fen / self.total_fen if self.total_fen else None


@dataclass
class Group:
    """The merchants of one size class or the redemptions at one district's stores."""
    label: str
    merchants: int = 0
    subsidy_fen: int = 0
    driven_fen: int = 0
    #: a district's latest population figure, if one is held
    population: DistrictPopulation | None = None


@dataclass
class Benefit:
    subsidy: Concentration
    driven: Concentration
    by_size: list[Group] = field(default_factory=list)
    by_district: list[Group] = field(default_factory=list)

    def subsidy_share(self, group: Group) -> float | None:
        return self.subsidy.share(group.subsidy_fen)

    def driven_share(self, group: Group) -> float | None:
        return self.driven.share(group.driven_fen)


def benefit(f: LeverageFilter = LeverageFilter()) -> Benefit:
    _, subsidy, driven, _ = standing_redemptions(f).selected_columns
    query = (
        standing_redemptions(f)
        .with_only_columns(Redemption.merchant_id, Merchant.size_class, Store.district, subsidy, driven)
        .join(Merchant, Merchant.id == Redemption.merchant_id)
        .join(Store, Store.id == Redemption.store_id)
        .group_by(Redemption.merchant_id, Merchant.size_class, Store.district)
    )
    merchants: dict[int, list] = {}
    districts = {name: Group(name) for name in DISTRICTS}
    district_merchants: dict[str, set[int]] = {}
    for merchant_id, size_class, district, subsidy_fen, driven_fen in db.session.execute(query):
        totals = merchants.setdefault(merchant_id, [size_class, 0, 0])
        totals[1] += int(subsidy_fen)
        totals[2] += int(driven_fen)
        group = districts.setdefault(district, Group(district))
        group.subsidy_fen += int(subsidy_fen)
        group.driven_fen += int(driven_fen)
        district_merchants.setdefault(district, set()).add(merchant_id)
    sizes = {key: Group(label) for key, label in SIZE_CLASS_LABELS.items()}
    for size_class, subsidy_fen, driven_fen in merchants.values():
        group = sizes.setdefault(size_class, Group(size_class))
        group.merchants += 1
        group.subsidy_fen += subsidy_fen
        group.driven_fen += driven_fen
    populations = latest_populations()
    for name, group in districts.items():
        group.merchants = len(district_merchants.get(name, ()))
        group.population = populations.get(name)
    return Benefit(
        subsidy=Concentration.of([t[1] for t in merchants.values()]),
        driven=Concentration.of([t[2] for t in merchants.values()]),
        by_size=list(sizes.values()), by_district=list(districts.values()),
    )


def latest_populations() -> dict[str, DistrictPopulation]:
    """Each district's population of the latest year held."""
    rows = db.session.scalars(select(DistrictPopulation).order_by(DistrictPopulation.year)).all()
    return {row.district: row for row in rows}


def populations() -> list[DistrictPopulation]:
    return list(db.session.scalars(
        select(DistrictPopulation).order_by(DistrictPopulation.district, DistrictPopulation.year.desc())))


@dataclass(frozen=True)
class PopulationInput:
    district: str
    year: int
    residents: int
    source: str


def read_population(district: str | None, year: str | None, residents: str | None,
                    source: str | None) -> PopulationInput:
    """A population figure as typed in the form; InvalidInput, in Chinese, for anything it cannot be."""
    district = (district or "").strip()
    if district not in DISTRICTS:
        raise InvalidInput("请选择区县")
    year_text = (year or "").strip()
    if not year_text.isascii() or not year_text.isdigit() or int(year_text) not in POPULATION_YEARS:
        raise InvalidInput(f"年份应为 {POPULATION_YEARS.start}–{POPULATION_YEARS.stop - 1} 之间的整数")
    count_text = (residents or "").strip().replace(",", "").replace("，", "")
    if not count_text.isascii() or not count_text.isdigit() or not 0 < int(count_text) <= MAX_RESIDENTS:
        raise InvalidInput("常住人口应为正整数（单位：人），例如 812345")
    source_text = " ".join((source or "").split())
    if not source_text:
        raise InvalidInput("请填写数据来源（例如：某年统计年鉴）")
    if len(source_text) > 200:
        raise InvalidInput("数据来源不能超过 200 个字")
    return PopulationInput(district, int(year_text), int(count_text), source_text)


def set_population(data: PopulationInput, actor: User | None, at: datetime | None = None) -> DistrictPopulation:
    """Record (or correct) a district's population for a year, with an audit entry. Flushes, never commits."""
    row = db.session.scalar(select(DistrictPopulation).where(
        DistrictPopulation.district == data.district, DistrictPopulation.year == data.year))
    before = None if row is None else {"residents": row.residents, "source": row.source}
    actor_id = getattr(actor, "id", None)  # read first: it may load the actor, which flushes
    if row is None:
        row = DistrictPopulation(district=data.district, year=data.year)
    row.residents, row.source = data.residents, data.source
    row.updated_by_id, row.updated_at = actor_id, at or utcnow()
    db.session.add(row)
    db.session.flush()  # the id, for the audit entry
    audit.record("district_population.set", row, actor=actor, before=before, at=at, after={
        "district": data.district, "year": data.year, "residents": data.residents, "source": data.source})
    return row
