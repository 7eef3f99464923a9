from __future__ import annotations

import enum

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from voucher.core.db import Model, created_at, fen, intpk
from voucher.core.enum_check import one_of


class AccountKind(str, enum.Enum):
    """Per campaign and funding source. Amounts are signed: + increases the account.

    FUNDING is the funder's side of every funding entry, so its balance is minus what was funded
    (never positive); the other four are never negative, and all five of a source sum to zero.
    """

    FUNDING = "funding"
    AVAILABLE = "available"
    RESERVED = "reserved"
    SPENT = "spent"
    SETTLED = "settled"

    @property
    def label(self) -> str:
        return {
            "funding": "资金来源",
            "available": "可用",
            "reserved": "已预留",
            "spent": "已核销待结算",
            "settled": "已结算",
        }[self.value]


class EntryKind(str, enum.Enum):
    FUNDING = "funding"  # funding -> available, when a campaign is approved
    RELEASE_RESERVE = "release_reserve"  # available -> reserved, when a release opens
    REDEMPTION = "redemption"  # reserved -> spent
    REVERSAL = "reversal"  # spent -> reserved
    EXPIRY = "expiry"  # reserved -> available
    SETTLEMENT = "settlement"  # spent -> settled
    BUDGET_CHANGE = "budget_change"  # funding <-> available, after approval
    WITHDRAWAL = "withdrawal"  # reserved -> available: unclaimed vouchers of a closed release
    CLOSE_RETURN = "close_return"  # available -> funding: a closed campaign's unused money
    GRANT_APPROVAL = "grant_approval"  # available -> reserved: an approved grant awaiting payout
    GRANT_PAYOUT = "grant_payout"  # reserved -> settled: the grant paid to the applicant
    LOTTERY_RETURN = "lottery_return"  # reserved -> available: vouchers of a lottery nobody won


class LedgerAccount(Model):
    __tablename__ = "ledger_accounts"
    __table_args__ = (
        UniqueConstraint("funding_source_id", "kind"),
        one_of("kind", AccountKind, name="kind_known"),
    )

    id: Mapped[intpk]
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    funding_source_id: Mapped[int] = mapped_column(ForeignKey("funding_sources.id"))
    kind: Mapped[str] = mapped_column(String(16))
    #: the funding source's co-funding share, fixed at approval: a redemption splits by it
    share: Mapped[int] = mapped_column(default=1, server_default="1")


class JournalEntry(Model):
    """One balanced movement of money: its postings sum to zero."""

    __tablename__ = "journal_entries"
    __table_args__ = (Index("ix_journal_entries_ref", "ref_type", "ref_id"),)

    id: Mapped[intpk]
    kind: Mapped[str] = mapped_column(String(24))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    memo: Mapped[str] = mapped_column(String(200), default="")
    #: what caused it (a release, a redemption...), for tracing money back to its reason
    ref_type: Mapped[str | None] = mapped_column(String(40))
    ref_id: Mapped[int | None]
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[created_at]

    postings: Mapped[list[Posting]] = relationship(back_populates="entry")


class Posting(Model):
    __tablename__ = "postings"
    __table_args__ = (CheckConstraint("amount_fen <> 0", name="amount_nonzero"),)

    id: Mapped[intpk]
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entries.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"), index=True)
    amount_fen: Mapped[fen]

    entry: Mapped[JournalEntry] = relationship(back_populates="postings")
