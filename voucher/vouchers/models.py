from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, String, UniqueConstraint, literal_column, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from voucher.core.db import Model, created_at, fen, intpk
from voucher.core.enum_check import one_of, sql_list

if TYPE_CHECKING:
    from voucher.campaigns.models import Campaign, Release


class VoucherStatus(str, enum.Enum):
    AVAILABLE = "available"  # minted with its release, waiting for a claimant
    CLAIMED = "claimed"
    REDEEMED = "redeemed"
    EXPIRED = "expired"  # claimed, never used; its money went back to available
    WITHDRAWN = "withdrawn"  # never claimed; pulled back when its release or campaign closed

    @property
    def label(self) -> str:
        return {
            "available": "待领取", "claimed": "未使用", "redeemed": "已核销", "expired": "已过期", "withdrawn": "已收回",
        }[self.value]


class Citizen(Model):
    """A citizen, known only by a keyed hash of a verified phone number; the number is never stored."""

    __tablename__ = "citizens"

    id: Mapped[intpk]
    identity_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[created_at]


class Voucher(Model):
    """One voucher, minted when its release opens (its face value is already reserved in the ledger)."""

    __tablename__ = "vouchers"
    __table_args__ = (
        CheckConstraint("face_value_fen > 0", name="face_value_positive"),
        one_of("status", VoucherStatus, name="status_known"),
        CheckConstraint(
            f"(status IN {sql_list(VoucherStatus.AVAILABLE, VoucherStatus.WITHDRAWN)}) = (citizen_id IS NULL)",
            name="claimed_has_citizen",
        ),
        # The per-person limit holds under concurrency: the k-th claim of a citizen in a release takes
        # slot k, and two claims racing for the same slot cannot both commit.
        UniqueConstraint("release_id", "citizen_id", "claim_slot"),
        Index("ix_vouchers_release_status", "release_id", "status"),
        # The leverage page reads the claims after its pre-aggregation live (voucher/analytics/rollup.py).
        Index("ix_vouchers_claimed_at", "claimed_at"),
        # Claims take the lowest free voucher of a release. Without this index PostgreSQL walks the
        # primary key past every voucher already claimed, so each claim got slower as the release filled.
        Index(
            "ix_vouchers_release_available",
            "release_id",
            "id",
            sqlite_where=text("status = 'available'"),
            postgresql_where=text("status = 'available'"),
        ),
    )

    id: Mapped[intpk]
    #: the typeable code (also inside the signed QR token)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    face_value_fen: Mapped[fen]
    status: Mapped[str] = mapped_column(String(16), default=VoucherStatus.AVAILABLE.value)
    citizen_id: Mapped[int | None] = mapped_column(ForeignKey("citizens.id"), index=True)
    claim_slot: Mapped[int | None]
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime)
    #: usable from / until (UTC), fixed at claim from the campaign's validity
    valid_from: Mapped[datetime | None] = mapped_column(DateTime)
    valid_until: Mapped[datetime | None] = mapped_column(DateTime)
    redeemed_at: Mapped[datetime | None] = mapped_column(DateTime)

    release: Mapped[Release] = relationship("Release")
    campaign: Mapped[Campaign] = relationship("Campaign")

    @property
    def status_enum(self) -> VoucherStatus:
        return VoucherStatus(self.status)


#: "The voucher is free", as the partial index ix_vouchers_release_available states it: the status is a
#: constant in the SQL, never a bound parameter. psycopg runs a statement as a prepared one after five runs,
#: and PostgreSQL's generic plan for `status = $2` cannot prove the index's predicate: it walked the primary
#: key past every other voucher instead, the claim's most frequent statement slowing as the table grew.
FREE = Voucher.status == literal_column(f"'{VoucherStatus.AVAILABLE.value}'")


class OneTimeCode(Model):
    """A sign-in code sent to a phone; stored hashed, short-lived, with an attempt counter."""

    __tablename__ = "one_time_codes"

    id: Mapped[intpk]
    identity_hash: Mapped[str] = mapped_column(String(64), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(default=0)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[created_at]
