"""Voucher statistics per campaign and release: issued, claimed, redeemed, reversed, expired."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import case, func, select

from voucher.campaigns.models import Campaign, Release
from voucher.core.db import reads
from voucher.merchants.models import Redemption
from voucher.vouchers.models import Voucher, VoucherStatus


@dataclass
class RoundFigures:
    campaign: str
    release: str
    issued: int
    claimed: int
    redeemed: int
    reversed: int
    expired: int
    withdrawn: int

    @property
    def redemption_rate(self) -> float | None:
        """Redeemed per claimed voucher (None before any claim); a ratio for display, not money."""
        return self.redeemed / self.claimed if self.claimed else None


def _count(status: VoucherStatus):
    return func.sum(case((Voucher.status == status.value, 1), else_=0))


def voucher_statistics(campaign_id: int | None = None) -> list[RoundFigures]:
    """One row per release. Claimed counts every voucher ever claimed (also those since redeemed or
    expired); reversed counts reversals, a voucher reversed and redeemed again counting in both."""
    session = reads()  # the reports' standby inside report_reads()
    reversed_by_release = dict(session.execute(
        select(Voucher.release_id, func.count(Redemption.id))
        .join(Voucher, Voucher.id == Redemption.voucher_id)
        .where(Redemption.reversed_at.is_not(None)).group_by(Voucher.release_id)
    ).all())
    query = (
        select(Campaign.name, Release.id, Release.name, func.count(Voucher.id), func.count(Voucher.claimed_at),
               _count(VoucherStatus.REDEEMED), _count(VoucherStatus.EXPIRED), _count(VoucherStatus.WITHDRAWN))
        .join(Release, Release.id == Voucher.release_id).join(Campaign, Campaign.id == Release.campaign_id)
        .group_by(Campaign.id, Campaign.name, Release.id, Release.name).order_by(Campaign.id, Release.id)
    )
    if campaign_id is not None:
        query = query.where(Campaign.id == campaign_id)
    return [
        RoundFigures(campaign, round_name, int(issued), int(claimed), int(redeemed or 0),
                     reversed_by_release.get(release_id, 0), int(expired or 0), int(withdrawn or 0))
        for campaign, release_id, round_name, issued, claimed, redeemed, expired, withdrawn in session.execute(query)
    ]
