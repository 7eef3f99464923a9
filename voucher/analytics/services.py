"""The bureau dashboard's figures: the city's totals, then each campaign's. Read-only."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import case, func, select

from voucher.analytics.leverage import Cohort, cohorts_by_campaign
from voucher.campaigns.models import Campaign, CampaignStatus, Instrument
from voucher.core.db import db
from voucher.ledger.models import AccountKind, EntryKind, JournalEntry, LedgerAccount, Posting
from voucher.ledger.services import campaign_balances
from voucher.merchants.models import Redemption
from voucher.vouchers.models import Voucher, VoucherStatus


@dataclass(frozen=True)
class Amounts:
    """The figures that add up across campaigns: the city's totals are the sums of the campaigns' rows."""

    #: money that arrived in the ledger (approval and budget changes), as the budget report's 已到位
    funded_fen: int = 0
    vouchers_claimed: int = 0
    #: face value of the vouchers claimed (the city's "issued")
    issued_fen: int = 0
    #: live (not reversed) redemptions, one voucher each
    redemptions: int = 0
    #: face value of the vouchers in live redemptions
    redeemed_face_fen: int = 0
    #: discount granted in live (not reversed) redemptions
    subsidy_paid_fen: int = 0
    #: order amounts of the transactions in which vouchers were redeemed (gross)
    driven_fen: int = 0
    #: the claim cohort behind 核销率: the vouchers claimed and what became of them (docs/leverage.md)
    cohort: Cohort = field(default_factory=Cohort)

    @property
    def leverage_on_issued(self) -> Decimal | None:
        return ratio(self.driven_fen, self.issued_fen)

    @property
    def redemption_rate(self) -> float | None:
        """核销率（按张数）, the leverage page's: the cohort's vouchers redeemed over those claimed."""
        return self.cohort.redemption_rate

    @property
    def redemption_rate_money(self) -> float | None:
        """核销率（按金额）, the leverage page's: subsidy paid on the cohort's vouchers over their face value."""
        return self.cohort.redemption_rate_money


@dataclass(frozen=True)
class CampaignFigures(Amounts):
    campaign: Campaign | None = None
    budget_fen: int = 0
    available_fen: int = 0
    reserved_fen: int = 0
    spent_fen: int = 0
    settled_fen: int = 0
    vouchers_redeemed: int = 0

    @property
    def has_vouchers(self) -> bool:
        """A grant campaign (补贴申报) pays applicants, not vouchers: its voucher figures are not zeros but n/a."""
        return self.campaign is None or self.campaign.instrument != Instrument.GRANT.value


def ratio(numerator: int, denominator: int, places: str = "0.01") -> Decimal | None:
    """A ratio of two whole amounts to `places` (two decimals by default; exact decimal arithmetic, no float)."""
    if not denominator:
        return None
    return (Decimal(numerator) / Decimal(denominator)).quantize(Decimal(places), rounding=ROUND_HALF_UP)


def _funded(ids: list[int]) -> dict[int, int]:
    """Per campaign, the money that arrived: the funding accounts' (negative) balance, plus what went back
    to the funders at closing (it had arrived before), as reports/budget.py counts 已到位."""
    rows = db.session.execute(
        select(
            LedgerAccount.campaign_id,
            func.coalesce(func.sum(Posting.amount_fen), 0),
            func.coalesce(func.sum(case((JournalEntry.kind == EntryKind.CLOSE_RETURN.value, Posting.amount_fen),
                                        else_=0)), 0),
        )
        .join(Posting, Posting.account_id == LedgerAccount.id)
        .join(JournalEntry, JournalEntry.id == Posting.entry_id)
        .where(LedgerAccount.campaign_id.in_(ids), LedgerAccount.kind == AccountKind.FUNDING.value)
        .group_by(LedgerAccount.campaign_id)
    )
    return {campaign_id: -int(balance) + int(returned) for campaign_id, balance, returned in rows}


def campaign_figures(campaigns: list[Campaign]) -> list[CampaignFigures]:
    ids = [c.id for c in campaigns]
    balances = campaign_balances(ids)
    funded = _funded(ids)
    cohorts = cohorts_by_campaign(ids)
    claimed_statuses = [VoucherStatus.CLAIMED.value, VoucherStatus.REDEEMED.value, VoucherStatus.EXPIRED.value]
    voucher_rows = {
        row.campaign_id: row
        for row in db.session.execute(
            select(
                Voucher.campaign_id,
                func.count(Voucher.id).label("claimed"),
                func.coalesce(func.sum(Voucher.face_value_fen), 0).label("issued"),
                func.coalesce(func.sum(case((Voucher.status == VoucherStatus.REDEEMED.value, 1), else_=0)), 0).label(
                    "redeemed"
                ),
                # A voucher is redeemed exactly while it has a standing redemption: the face value of the live
                # redemptions without joining them to their vouchers (at city scale the join cost ~2 s).
                func.coalesce(func.sum(case((Voucher.status == VoucherStatus.REDEEMED.value, Voucher.face_value_fen),
                                            else_=0)), 0).label("face"),
            )
            .where(Voucher.campaign_id.in_(ids), Voucher.status.in_(claimed_statuses))
            .group_by(Voucher.campaign_id)
        )
    }
    redemption_rows = {
        row.campaign_id: row
        for row in db.session.execute(
            select(
                Redemption.campaign_id,
                func.count(Redemption.id).label("live"),
                func.coalesce(func.sum(Redemption.subsidy_fen), 0).label("subsidy"),
                func.coalesce(func.sum(Redemption.order_amount_fen), 0).label("driven"),
            )
            .where(Redemption.campaign_id.in_(ids), Redemption.reversed_at.is_(None))
            .group_by(Redemption.campaign_id)
        )
    }
    figures = []
    for campaign in campaigns:
        by_kind = balances.get(campaign.id) or {k: 0 for k in AccountKind}
        vouchers = voucher_rows.get(campaign.id)
        redemptions = redemption_rows.get(campaign.id)
        figures.append(
            CampaignFigures(
                campaign=campaign,
                funded_fen=funded.get(campaign.id, 0),
                budget_fen=campaign.budget_fen,
                available_fen=by_kind[AccountKind.AVAILABLE],
                reserved_fen=by_kind[AccountKind.RESERVED],
                spent_fen=by_kind[AccountKind.SPENT],
                settled_fen=by_kind[AccountKind.SETTLED],
                vouchers_claimed=int(vouchers.claimed) if vouchers else 0,
                vouchers_redeemed=int(vouchers.redeemed) if vouchers else 0,
                issued_fen=int(vouchers.issued) if vouchers else 0,
                redemptions=int(redemptions.live) if redemptions else 0,
                redeemed_face_fen=int(vouchers.face) if vouchers else 0,
                subsidy_paid_fen=int(redemptions.subsidy) if redemptions else 0,
                driven_fen=int(redemptions.driven) if redemptions else 0,
                cohort=cohorts.get(campaign.id, Cohort()),
            )
        )
    return figures


def total(rows: list[CampaignFigures]) -> Amounts:
    """The sum of the rows, figure by figure; the ratios are the totals' own (not an average of the rows')."""
    cohort = Cohort()
    for row in rows:
        cohort.add(row.cohort)
    return Amounts(**{f.name: sum(getattr(row, f.name) for row in rows) for f in fields(Amounts) if f.name != "cohort"},
                   cohort=cohort)


# The dashboard -------------------------------------------------------------------------------------

#: the `sort` query parameter's whitelist: column -> the value it sorts by (a leading "-" sorts descending)
SORT_KEYS: dict[str, Callable[[CampaignFigures], object]] = {
    "name": lambda f: f.campaign.name if f.campaign else "",
    "funded": lambda f: f.funded_fen,
    "claimed": lambda f: f.vouchers_claimed,
    "issued": lambda f: f.issued_fen,
    "redemptions": lambda f: f.redemptions,
    "redeemed": lambda f: f.redeemed_face_fen,
    "subsidy": lambda f: f.subsidy_paid_fen,
    "driven": lambda f: f.driven_fen,
    "leverage": lambda f: f.leverage_on_issued,
    "rate": lambda f: f.redemption_rate,
    "rate_money": lambda f: f.redemption_rate_money,
}
#: the biggest campaigns first
DEFAULT_SORT = ("funded", True)
PER_PAGE = 20


@dataclass(frozen=True)
class Dashboard:
    totals: Amounts
    #: campaigns counted in the totals (every campaign but drafts)
    campaigns: int
    #: this page's rows, in the chosen order
    rows: list[CampaignFigures]
    sort: str
    descending: bool
    page: int
    pages: int
    #: the first row's number on this page (1-based)
    first: int


def parse_sort(text: str | None) -> tuple[str, bool]:
    """`funded` or `-funded` -> (key, descending); anything not in the whitelist -> the default order."""
    text = (text or "").strip()
    key, descending = (text[1:], True) if text.startswith("-") else (text, False)
    return (key, descending) if key in SORT_KEYS else DEFAULT_SORT


def sort_rows(rows: list[CampaignFigures], key: str, descending: bool) -> list[CampaignFigures]:
    """Ordered by one column; rows without a value (no leverage before any claim) last either way, and
    equal values by campaign number."""
    value = SORT_KEYS[key]
    by_id = sorted(rows, key=lambda f: f.campaign.id if f.campaign else 0)
    known = [f for f in by_id if value(f) is not None]
    unknown = [f for f in by_id if value(f) is None]
    return sorted(known, key=value, reverse=descending) + unknown  # type: ignore[arg-type]


def dashboard(sort: str | None = None, page: int | None = None) -> Dashboard:
    """The city's totals over every campaign but drafts, and one page of the campaigns in the chosen order.
    An unknown sort is the default order; a page past the last is the last."""
    campaigns = db.session.scalars(
        select(Campaign).where(Campaign.status != CampaignStatus.DRAFT.value).order_by(Campaign.id)
    ).all()
    rows = campaign_figures(list(campaigns))
    key, descending = parse_sort(sort)
    pages = max(1, math.ceil(len(rows) / PER_PAGE))
    page = min(max(page or 1, 1), pages)
    start = (page - 1) * PER_PAGE
    return Dashboard(
        totals=total(rows), campaigns=len(rows), rows=sort_rows(rows, key, descending)[start:start + PER_PAGE],
        sort=key, descending=descending, page=page, pages=pages, first=start + 1,
    )
