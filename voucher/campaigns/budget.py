"""Budget changes after approval, funder statements. Closing a campaign (its vouchers withdrawn, its unused
money back to the funders) is vouchers/closing.py."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from voucher.accounts.models import User
from voucher.campaigns.models import BudgetChange, BudgetChangeKind, Campaign, CampaignStatus, FundingSource
from voucher.campaigns.services import lock_campaigns
from voucher.core import audit
from voucher.core.clock import utcnow
from voucher.core.db import db
from voucher.core.errors import BudgetExhausted, InvalidInput, InvalidTransition, MakerCheckerViolation, NotFound
from voucher.core.money import format_yuan
from voucher.ledger import services as ledger
from voucher.ledger.models import AccountKind, EntryKind

_FUNDED = (CampaignStatus.ACTIVE, CampaignStatus.PAUSED)


def request_change(
    campaign_id: int,
    *,
    kind: str,
    funding_source_id: int,
    amount_fen: int,
    reason: str,
    actor: User,
    target_funding_source_id: int | None = None,
) -> BudgetChange:
    """Record a requested top-up, cut or move; nothing moves until another person approves it."""
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound("找不到该活动")
    if campaign.status_enum not in _FUNDED:
        raise InvalidTransition("只有进行中或暂停的活动可以调整预算")
    try:
        change_kind = BudgetChangeKind(kind)
    except ValueError:
        raise InvalidInput("请选择调整类型") from None
    source = db.session.get(FundingSource, funding_source_id)
    if source is None or source.campaign_id != campaign.id or source.status != "in_hand":
        raise InvalidInput("请选择本活动已到位的资金来源")
    if amount_fen <= 0:
        raise InvalidInput("调整金额必须大于 0")
    if not reason.strip():
        raise InvalidInput("请填写调整原因")
    if change_kind is BudgetChangeKind.MOVE:
        target = db.session.get(FundingSource, target_funding_source_id) if target_funding_source_id else None
        if target is None or target.status != "in_hand" or target.campaign_id == campaign.id:
            raise InvalidInput("请选择接收调剂资金的其他活动的已到位资金来源")
        if target.campaign.status_enum not in _FUNDED:
            raise InvalidInput("接收调剂资金的活动须为进行中或暂停状态")
    else:
        target_funding_source_id = None
    change = BudgetChange(
        campaign_id=campaign.id, funding_source_id=source.id, kind=change_kind.value, amount_fen=amount_fen,
        target_funding_source_id=target_funding_source_id, reason=reason.strip(), requested_by_id=actor.id,
    )
    db.session.add(change)
    db.session.flush()  # the audit entry needs the new id
    audit.record(
        "budget_change.request", change, actor=actor,
        after={"kind": change.kind, "amount_fen": amount_fen, "source_id": source.id,
               "target_source_id": target_funding_source_id, "reason": change.reason},
    )
    return change


def decide_change(change_id: int, actor: User, *, approve: bool, note: str = "") -> BudgetChange:
    """Approve or reject a requested change. Every campaign it touches is locked first (ascending ids,
    docs/concurrency.md), and only then are the request and the funding sources read: a top-up or
    another move approved at the same moment waits instead of being overwritten."""
    change = db.session.get(BudgetChange, change_id)
    if change is None:
        raise NotFound("找不到该预算调整申请")
    if change.requested_by_id == actor.id:
        raise MakerCheckerViolation()
    target_campaign_id = None
    if change.target_funding_source_id is not None:
        target_campaign_id = db.session.scalar(
            select(FundingSource.campaign_id).where(FundingSource.id == change.target_funding_source_id)
        )
    locked = lock_campaigns([change.campaign_id] + ([target_campaign_id] if target_campaign_id else []))
    campaign = locked[change.campaign_id]
    change = db.session.scalar(
        select(BudgetChange).where(BudgetChange.id == change_id).with_for_update().execution_options(populate_existing=True)
    )
    assert change is not None  # found above, and a budget change is never deleted
    if change.status != "pending":
        raise InvalidTransition("该申请已处理")
    if not approve and not note.strip():
        raise InvalidInput("驳回时请填写原因")
    change.status = "approved" if approve else "rejected"
    change.decided_by_id = actor.id
    change.decided_at = utcnow()
    change.decision_note = note.strip() or None
    if approve:
        if campaign.status_enum not in _FUNDED:
            raise InvalidTransition("活动已不在进行中或暂停状态，不能调整预算")
        if change.kind_enum is BudgetChangeKind.TOP_UP:
            _fund(change.funding_source_id, change.amount_fen, change, actor)
        else:
            _defund(change.funding_source_id, change.amount_fen, change, actor)
            if change.kind_enum is BudgetChangeKind.MOVE:
                # a move names its target (CHECK move_has_target), whose campaign was read and locked above
                assert change.target_funding_source_id is not None and target_campaign_id is not None
                if locked[target_campaign_id].status_enum not in _FUNDED:
                    raise InvalidTransition("接收调剂资金的活动已不在进行中或暂停状态")
                _fund(change.target_funding_source_id, change.amount_fen, change, actor)
    audit.record(
        "budget_change.approve" if approve else "budget_change.reject", change, actor=actor,
        before={"status": "pending"}, after={"status": change.status, "note": change.decision_note},
    )
    return change


def locked_source(source_id: int) -> FundingSource:
    """A funding source read fresh under its campaign's lock (never an earlier, stale copy)."""
    source = db.session.scalar(
        select(FundingSource).where(FundingSource.id == source_id).with_for_update()
        .execution_options(populate_existing=True)
    )
    if source is None:
        raise NotFound("找不到该资金来源")
    return source


def _accounts_of(source: FundingSource) -> dict[AccountKind, int]:
    return next(s.ids for s in ledger.source_accounts(source.campaign_id) if s.source_id == source.id)


def _fund(source_id: int, amount: int, change: BudgetChange, actor: User) -> None:
    source = locked_source(source_id)
    accounts = _accounts_of(source)
    source.amount_fen += amount
    ledger.post(
        EntryKind.BUDGET_CHANGE.value, source.campaign_id,
        [(accounts[AccountKind.FUNDING], -amount), (accounts[AccountKind.AVAILABLE], amount)],
        memo=f"预算{change.kind_enum.label}：{source.name}", ref=("budget_change", change.id), actor_id=actor.id,
    )


def _defund(source_id: int, amount: int, change: BudgetChange, actor: User) -> None:
    """Only available money can leave: what is reserved for vouchers or spent stays where it is."""
    source = locked_source(source_id)
    accounts = _accounts_of(source)
    available = ledger.balances({accounts[AccountKind.AVAILABLE]}).get(accounts[AccountKind.AVAILABLE], 0)
    if amount > available:
        raise BudgetExhausted(
            f"核减后预算将低于已预留和已核销的金额：「{source.name}」当前可用 {format_yuan(available)} 元，"
            f"最多可核减 {format_yuan(available)} 元"
        )
    source.amount_fen -= amount
    ledger.post(
        EntryKind.BUDGET_CHANGE.value, source.campaign_id,
        [(accounts[AccountKind.AVAILABLE], -amount), (accounts[AccountKind.FUNDING], amount)],
        memo=f"预算{change.kind_enum.label}：{source.name}", ref=("budget_change", change.id), actor_id=actor.id,
    )


@dataclass(frozen=True)
class StatementLine:
    entry_id: int
    at: object
    kind: str
    memo: str
    account_kind: AccountKind
    amount_fen: int


@dataclass(frozen=True)
class FunderStatement:
    source: FundingSource
    balances: dict[AccountKind, int]
    lines: list[StatementLine]

    @property
    def funded_fen(self) -> int:
        return -self.balances[AccountKind.FUNDING]


def funder_statement(source_id: int) -> FunderStatement:
    """One funder's money in one campaign: balances per account and every posting, oldest first."""
    source = db.session.get(FundingSource, source_id)
    if source is None:
        raise NotFound("找不到该资金来源")
    balances = {kind: 0 for kind in AccountKind}
    lines = []
    for line in ledger.source_lines(source_id):
        balances[line.account_kind] += line.amount_fen
        lines.append(StatementLine(*line))
    return FunderStatement(source, balances, lines)
