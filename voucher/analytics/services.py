"""The bureau dashboard's figures, per campaign. Read-only."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import case, func, select

from voucher.campaigns.models import Campaign
from voucher.core.db import db
from voucher.ledger.models import AccountKind
from voucher.ledger.services import campaign_balances
from voucher.merchants.models import Redemption
from voucher.vouchers.models import Voucher, VoucherStatus


@dataclass(frozen=True)
class CampaignFigures:
    campaign: Campaign
    budget_fen: int
    available_fen: int
    reserved_fen: int
    spent_fen: int
    settled_fen: int
    vouchers_claimed: int
    vouchers_redeemed: int
    #: face value of the vouchers claimed (the city's "issued")
    issued_fen: int
    #: discount granted in live (not reversed) redemptions
    subsidy_paid_fen: int
    #: order amounts of the transactions in which vouchers were redeemed (gross)
    driven_fen: int

    @property
    def leverage_on_issued(self) -> Decimal | None:
        return ratio(self.driven_fen, self.issued_fen)


def ratio(numerator: int, denominator: int) -> Decimal | None:
    """A ratio of two fen amounts to two decimals (exact decimal arithmetic, no float)."""
    if not denominator:
        return None
    return (Decimal(numerator) / Decimal(denominator)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def campaign_figures(campaigns: list[Campaign]) -> list[CampaignFigures]:
    ids = [c.id for c in campaigns]
    balances = campaign_balances(ids)
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
                budget_fen=campaign.budget_fen,
                available_fen=by_kind[AccountKind.AVAILABLE],
                reserved_fen=by_kind[AccountKind.RESERVED],
                spent_fen=by_kind[AccountKind.SPENT],
                settled_fen=by_kind[AccountKind.SETTLED],
                vouchers_claimed=int(vouchers.claimed) if vouchers else 0,
                vouchers_redeemed=int(vouchers.redeemed) if vouchers else 0,
                issued_fen=int(vouchers.issued) if vouchers else 0,
                subsidy_paid_fen=int(redemptions.subsidy) if redemptions else 0,
                driven_fen=int(redemptions.driven) if redemptions else 0,
            )
        )
    return figures
