"""The ledger's own invariants (docs/design.md §4 Money and the ledger): every entry balances, and every
account's balance has its kind's sign. The checks that compare the ledger with the domains' records
(vouchers, redemptions, grants, settlement batches) sit above the domains, in reports/consistency.py."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from voucher.core.db import db
from voucher.core.money import format_yuan
from voucher.ledger.models import AccountKind, LedgerAccount, Posting
from voucher.ledger.services import balances, campaign_balances


@dataclass(frozen=True)
class LedgerReads:
    """The ledger as every check of one verification run sees it. Each balance is a sum over every
    posting, so a run reads them once (read_ledger) and hands them to each check, the domains' too."""

    accounts: dict[int, LedgerAccount]
    balances: dict[int, int]
    campaign_balances: dict[int, dict[AccountKind, int]]


def read_ledger(session: Session) -> LedgerReads:
    return LedgerReads(
        accounts={a.id: a for a in session.scalars(select(LedgerAccount))},
        balances=balances(session=session),
        # not the defaultdict: a lookup by one check must not add a campaign that the next would then list
        campaign_balances=dict(campaign_balances(session=session)),
    )


def verify_postings(session: Session | None = None, ledger: LedgerReads | None = None) -> list[str]:
    """One Chinese line per broken invariant of the ledger itself; an empty list means it holds. Pass a
    core.db.consistent_reads() session when others may be writing: each check is its own statement."""
    problems: list[str] = []
    session = session or db.session()
    ledger = ledger or read_ledger(session)

    unbalanced = session.execute(
        select(Posting.entry_id, func.sum(Posting.amount_fen))
        .group_by(Posting.entry_id)
        .having(func.sum(Posting.amount_fen) != 0)
    ).all()
    for entry_id, total in unbalanced:
        problems.append(f"分录 #{entry_id} 借贷不平衡：差额 {format_yuan(int(total))} 元")

    for account_id, balance in ledger.balances.items():
        account = ledger.accounts.get(account_id)
        if account is None:
            problems.append(f"过账指向不存在的账户 #{account_id}")
            continue
        if account.kind == AccountKind.FUNDING.value and balance > 0:
            problems.append(f"账户 #{account_id}（资金来源）余额为正：{format_yuan(balance)} 元")
        if account.kind != AccountKind.FUNDING.value and balance < 0:
            problems.append(f"账户 #{account_id}（{AccountKind(account.kind).label}）余额为负：{format_yuan(balance)} 元")

    for campaign_id, by_kind in ledger.campaign_balances.items():
        total = sum(by_kind.values())
        if total != 0:
            problems.append(f"活动 #{campaign_id} 各账户合计 {format_yuan(total)} 元，应为 0（资金来源与去向不相等）")
    return problems
