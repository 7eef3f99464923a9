"""Budget execution as of any date, by measure, campaign, funder and district, read from the ledger.

Every money figure is a sum of postings dated before the end of the chosen local day, so the report
for a past date does not move when later postings arrive, and its totals tie out to the ledger.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, fields
from datetime import date

from sqlalchemy import func, select

from voucher.campaigns.models import Campaign, FundingSource, Measure
from voucher.core.clock import local_day_end_utc
from voucher.core.db import reads
from voucher.ledger import services as ledger
from voucher.ledger.models import AccountKind, EntryKind
from voucher.merchants.models import Redemption, Store
from voucher.settlement.models import BatchStatus, SettlementBatch, SettlementItem

#: money that went back from reserved to available: vouchers expired, withdrawn, or a lottery's leftovers
_UNUSED_RETURNS = (EntryKind.EXPIRY, EntryKind.WITHDRAWAL, EntryKind.LOTTERY_RETURN)


@dataclass
class Figures:
    planned_in_hand: int = 0
    planned_sought: int = 0
    funded: int = 0
    reserved: int = 0
    spent: int = 0
    settled: int = 0
    expired: int = 0
    returned: int = 0
    available: int = 0

    def add(self, other: Figures) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


COLUMNS = {
    "planned_in_hand": "活动预算（资金已落实）", "planned_sought": "活动预算（资金争取中）", "funded": "已到位", "reserved": "已预留",
    "spent": "已核销待结算", "settled": "已结算", "expired": "过期与收回", "returned": "退回出资方", "available": "可用余额",
}


@dataclass
class Row:
    label: str
    figures: Figures = field(default_factory=Figures)


@dataclass
class BudgetReport:
    as_of: date
    by_source: list[Row]
    by_campaign: list[Row]
    by_measure: list[Row]
    by_funder: list[Row]
    #: spent and settled by the district of the redeeming store (vouchers only)
    by_district: list[Row]
    total: Figures


def budget_execution(as_of: date) -> BudgetReport:
    cutoff = local_day_end_utc(as_of)
    sources = reads().execute(
        select(FundingSource, Campaign.name, Measure.number, Measure.short_title)
        .join(Campaign, Campaign.id == FundingSource.campaign_id).join(Measure, Measure.id == Campaign.measure_id)
        # Planned money is money committed: campaigns approved by then (running, paused or closed since).
        # Drafts, rejected and pending campaigns are proposals, not plans (they inflated measure 1 to 10亿).
        .where(Campaign.approved_at.is_not(None), Campaign.approved_at < cutoff)
        .order_by(Measure.number, Campaign.id, FundingSource.id)
    ).all()

    balances = ledger.source_balances_as_of(cutoff)

    # Movements: what flowed back to available from unused vouchers, and back to the funder at closing.
    unused = ledger.movements((AccountKind.AVAILABLE,), per="funding_source", entry_kinds=_UNUSED_RETURNS,
                              before=cutoff)
    closings = ledger.movements((AccountKind.FUNDING,), per="funding_source", entry_kinds=(EntryKind.CLOSE_RETURN,),
                                before=cutoff)

    by_source: list[Row] = []
    campaigns: dict[int, Row] = {}
    measures: dict[int, Row] = {}
    funders: dict[str, Row] = {}
    total = Figures()
    for source, campaign_name, measure_number, measure_title in sources:
        balance, expired, returned = balances[source.id], unused.get(source.id, 0), closings.get(source.id, 0)
        figures = Figures(
            planned_in_hand=source.amount_fen if source.status == "in_hand" else 0,
            planned_sought=source.amount_fen if source.status != "in_hand" else 0,
            # funding is a source account: it goes negative as money arrives and back up when returned
            funded=-balance[AccountKind.FUNDING] + returned,
            reserved=balance[AccountKind.RESERVED],
            spent=balance[AccountKind.SPENT],
            settled=balance[AccountKind.SETTLED],
            expired=expired,
            returned=returned,
            available=balance[AccountKind.AVAILABLE],
        )
        by_source.append(Row(f"{campaign_name} · {source.name}", figures))
        campaigns.setdefault(source.campaign_id, Row(campaign_name)).figures.add(figures)
        measures.setdefault(measure_number, Row(f"措施{measure_number}：{measure_title}")).figures.add(figures)
        funders.setdefault(source.name, Row(source.name)).figures.add(figures)
        total.add(figures)

    return BudgetReport(
        as_of=as_of, by_source=by_source, by_campaign=list(campaigns.values()),
        by_measure=[measures[k] for k in sorted(measures)], by_funder=sorted(funders.values(), key=lambda r: r.label),
        by_district=_by_district(cutoff), total=total,
    )


def _by_district(cutoff) -> list[Row]:
    """Voucher subsidy by the redeeming store's district: spent (net of reversals made before the
    cutoff) and, of it, settled (in batches paid before the cutoff)."""
    live = (Redemption.reversed_at.is_(None)) | (Redemption.reversed_at >= cutoff)
    spent = reads().execute(
        select(Store.district, func.sum(Redemption.subsidy_fen))
        .join(Store, Store.id == Redemption.store_id)
        .where(Redemption.created_at < cutoff, live).group_by(Store.district)
    ).all()
    settled = reads().execute(
        select(Store.district, func.sum(SettlementItem.amount_fen))
        .join(SettlementBatch, SettlementBatch.id == SettlementItem.batch_id)
        .join(Redemption, Redemption.id == SettlementItem.redemption_id)
        .join(Store, Store.id == Redemption.store_id)
        .where(SettlementBatch.status == BatchStatus.PAID.value, SettlementBatch.paid_at < cutoff)
        .group_by(Store.district)
    ).all()
    rows: dict[str, Row] = defaultdict(lambda: Row(""))
    paid = {d: int(v) for d, v in settled}
    for district, amount in spent:
        row = rows[district]
        row.label = district
        row.figures.settled = paid.get(district, 0)
        row.figures.spent = int(amount) - row.figures.settled
    return sorted(rows.values(), key=lambda r: r.label)
