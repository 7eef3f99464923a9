"""Whole-system consistency: the ledger against the domains' own records (docs/design.md §4 Money and
the ledger). Each funded source holds its approved amount; reserved money is the unspent face value of
vouchers plus approved grants; spent and settled money is the standing redemptions plus paid grants;
settled money is the paid batches; a voucher's status agrees with its redemption.

It reads every domain, so it sits above them (the ledger itself checks only its own postings:
ledger/verify.py). The month-end close runs it through the hook the ledger offers
(ledger.closing.register_check), registered when the app is made.
"""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from voucher.campaigns.models import (
    Campaign,
    CampaignStatus,
    FundingSource,
    GrantApplication,
    GrantStatus,
    Release,
    ReleaseStatus,
)
from voucher.core.db import db
from voucher.core.money import format_yuan
from voucher.ledger.models import AccountKind
from voucher.ledger.verify import LedgerReads, read_ledger, verify_postings
from voucher.merchants.models import Redemption
from voucher.settlement.models import BatchStatus, SettlementBatch, SettlementItem
from voucher.vouchers.models import Voucher, VoucherStatus


def verify_ledger(session: Session | None = None) -> list[str]:
    """The ledger's own invariants and its agreement with the domains: one Chinese line per broken
    invariant, an empty list when all hold (`flask ledger verify`, the month-end close)."""
    session = session or db.session()
    ledger = read_ledger(session)
    return verify_postings(session, ledger) + verify_against_domains(session, ledger)


def verify_against_domains(session: Session, ledger: LedgerReads) -> list[str]:
    """Where the ledger (as read_ledger read it, in the same session) and the domains' records disagree
    (one line each)."""
    problems: list[str] = []
    accounts, account_balances, by_campaign = ledger.accounts, ledger.balances, ledger.campaign_balances

    # Each funded source holds exactly its approved amount, less what went back at closing.
    funded_statuses = {CampaignStatus.ACTIVE.value, CampaignStatus.PAUSED.value, CampaignStatus.CLOSED.value}
    for source in session.scalars(
        select(FundingSource).join(Campaign).where(Campaign.status.in_(funded_statuses), FundingSource.status == "in_hand")
    ):
        funding_ids = [a.id for a in accounts.values() if a.funding_source_id == source.id and a.kind == "funding"]
        funded = -sum(account_balances.get(i, 0) for i in funding_ids)
        expected = source.amount_fen - source.returned_fen
        if funded != expected:
            problems.append(
                f"活动 #{source.campaign_id} 资金来源「{source.name}」入账 {format_yuan(funded)} 元，"
                f"应为 {format_yuan(expected)} 元"
            )

    # The money matches the vouchers: reserved = unspent face value, spent + settled = net redemptions.
    reserved_by_vouchers = dict(
        session.execute(
            select(Voucher.campaign_id, func.sum(Voucher.face_value_fen))
            .where(Voucher.status.in_([VoucherStatus.AVAILABLE.value, VoucherStatus.CLAIMED.value]))
            .group_by(Voucher.campaign_id)
        ).all()
    )
    redeemed_by_redemptions = dict(
        session.execute(
            select(Redemption.campaign_id, func.sum(Redemption.subsidy_fen))
            .where(Redemption.reversed_at.is_(None))
            .group_by(Redemption.campaign_id)
        ).all()
    )
    grant_rows = session.execute(
        select(GrantApplication.campaign_id, GrantApplication.status, func.sum(GrantApplication.approved_fen))
        .where(GrantApplication.status.in_([GrantStatus.APPROVED.value, GrantStatus.PAID.value]))
        .group_by(GrantApplication.campaign_id, GrantApplication.status)
    ).all()
    grants_reserved: dict[int, int] = {}
    grants_paid: dict[int, int] = {}
    for c, s, t in grant_rows:  # approved or paid, each with its amount (CHECK approved_has_amount)
        assert t is not None
        (grants_reserved if s == GrantStatus.APPROVED.value else grants_paid)[c] = int(t)
    # A release being opened in the background (OPENING) reserved its whole quantity before its vouchers
    # are all minted: what is still to be minted is reserved too (jobs/background.py).
    to_mint: dict[int, int] = {}
    for release in session.scalars(select(Release).where(Release.status == ReleaseStatus.OPENING.value)):
        minted = session.execute(select(func.count(Voucher.id)).where(Voucher.release_id == release.id)).scalar_one()
        face = release.campaign.product.face_value_fen if release.campaign.product else 0
        to_mint[release.campaign_id] = to_mint.get(release.campaign_id, 0) + (release.quantity - minted) * face
    for campaign_id, by_kind in by_campaign.items():
        expected_reserved = (int(reserved_by_vouchers.get(campaign_id) or 0) + grants_reserved.get(campaign_id, 0)
                             + to_mint.get(campaign_id, 0))
        if by_kind[AccountKind.RESERVED] != expected_reserved:
            problems.append(
                f"活动 #{campaign_id} 已预留 {format_yuan(by_kind[AccountKind.RESERVED])} 元，"
                f"与未使用券面值及已批准未拨付补贴合计 {format_yuan(expected_reserved)} 元不符"
            )
        expected_spent = int(redeemed_by_redemptions.get(campaign_id) or 0) + grants_paid.get(campaign_id, 0)
        actual_spent = by_kind[AccountKind.SPENT] + by_kind[AccountKind.SETTLED]
        if actual_spent != expected_spent:
            problems.append(
                f"活动 #{campaign_id} 已核销与已结算合计 {format_yuan(actual_spent)} 元，"
                f"与核销补贴及已拨付补贴合计 {format_yuan(expected_spent)} 元不符"
            )

    # Settled money is exactly what finance confirmed as paid: paid batches plus paid grants.
    paid_batches = dict(
        session.execute(
            select(SettlementBatch.campaign_id, func.sum(SettlementBatch.amount_fen))
            .where(SettlementBatch.status == BatchStatus.PAID.value).group_by(SettlementBatch.campaign_id)
        ).all()
    )
    for campaign_id, by_kind in by_campaign.items():
        expected_settled = int(paid_batches.get(campaign_id) or 0) + grants_paid.get(campaign_id, 0)
        if by_kind[AccountKind.SETTLED] != expected_settled:
            problems.append(
                f"活动 #{campaign_id} 已结算 {format_yuan(by_kind[AccountKind.SETTLED])} 元，"
                f"与已确认支付的结算批次及补贴合计 {format_yuan(expected_settled)} 元不符"
            )
    # A redemption is settled at most once, and only while it stands.
    for (redemption_id,) in session.execute(
        select(SettlementItem.redemption_id).join(Redemption, Redemption.id == SettlementItem.redemption_id)
        .where(Redemption.reversed_at.is_not(None))
    ):
        problems.append(f"核销 #{redemption_id} 已撤销却在结算批次中")

    # A voucher is redeemed at most once, and its status says so.
    mismatched = session.scalars(
        select(Voucher.code)
        .outerjoin(Redemption, (Redemption.voucher_id == Voucher.id) & Redemption.reversed_at.is_(None))
        .where((Voucher.status == VoucherStatus.REDEEMED.value) != Redemption.id.is_not(None))
    ).all()
    for code in mismatched:
        problems.append(f"券 {code} 的状态与核销记录不一致")
    return problems
