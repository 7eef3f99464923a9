from __future__ import annotations

import enum
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, CheckConstraint, DateTime, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from voucher.core.db import Model, created_at, fen, intpk
from voucher.core.enum_check import one_of
from voucher.core.field_crypto import EncryptedString

if TYPE_CHECKING:
    from voucher.vouchers.models import Voucher


class MerchantStatus(str, enum.Enum):
    PENDING = "pending"  # applied, waiting for the bureau
    APPROVED = "approved"
    REJECTED = "rejected"
    SUSPENDED = "suspended"


class SizeClass(str, enum.Enum):
    """企业规模 (the leverage breakdown "by merchant size" groups by it)."""

    MICRO = "micro"
    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"


MERCHANT_STATUS_LABELS = {"pending": "待审核", "approved": "已入驻", "rejected": "已驳回", "suspended": "已暂停"}
SIZE_CLASS_LABELS = {"micro": "微型", "small": "小型", "medium": "中型", "large": "大型"}
#: what a settlement account number's ciphertext is bound to (voucher/core/field_crypto.py)
BANK_ACCOUNT_PURPOSE = "merchants.bank_account_no"
CONTACT_PHONE_PURPOSE = "merchants.contact_phone"


class Merchant(Model):
    """A business that redeems vouchers; it applies, and takes part once the bureau approves it."""

    __tablename__ = "merchants"
    __table_args__ = (
        one_of("status", MerchantStatus, name="status_known"),
        one_of("size_class", SizeClass, name="size_class_known"),
    )

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(120))
    #: 统一社会信用代码 (GB 32100-2015)
    uscc: Mapped[str] = mapped_column(String(18), unique=True)
    #: 行业类别
    category: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(16), default=MerchantStatus.APPROVED.value)
    #: 企业规模
    size_class: Mapped[str] = mapped_column(
        String(12), default=SizeClass.SMALL.value, server_default=SizeClass.SMALL.value
    )
    #: the settlement bank account payouts go to
    bank_account_name: Mapped[str | None] = mapped_column(String(120))
    bank_name: Mapped[str | None] = mapped_column(String(120))
    #: encrypted at rest (the plain number has at most 34 digits); shown masked (core/masking.py) except
    #: in the payout file the bank imports
    bank_account_no: Mapped[str | None] = mapped_column(EncryptedString(BANK_ACCOUNT_PURPOSE, 255))
    #: the applicant's contact phone (联系电话): with the USCC it opens the application's status page;
    #: encrypted at rest, shown masked to the bureau
    contact_phone: Mapped[str | None] = mapped_column(EncryptedString(CONTACT_PHONE_PURPOSE, 255))
    # use_alter: users also point at merchants; the cycle is created after both tables.
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", use_alter=True))
    decision_note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[created_at]

    @property
    def status_label(self) -> str:
        return MERCHANT_STATUS_LABELS[self.status]

    @property
    def size_class_label(self) -> str:
        return SIZE_CLASS_LABELS[self.size_class]

    stores: Mapped[list[Store]] = relationship(back_populates="merchant", order_by="Store.id")


class Store(Model):
    """A shop (门店) with its counter; a cashier redeems for exactly one store."""

    __tablename__ = "stores"

    id: Mapped[intpk]
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    #: 区县/功能板块 where the store trades
    district: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(String(200), default="")

    merchant: Mapped[Merchant] = relationship(back_populates="stores")


class Redemption(Model):
    """A voucher used against an order at a store (核销)."""

    __tablename__ = "redemptions"
    __table_args__ = (
        CheckConstraint("order_amount_fen > 0", name="order_amount_positive"),
        CheckConstraint("subsidy_fen > 0 AND subsidy_fen <= order_amount_fen", name="subsidy_within_order"),
        Index("ix_redemptions_campaign", "campaign_id"),
        # A voucher is redeemed at most once at a time; a reversed redemption stays on record.
        Index(
            "uq_redemptions_voucher_live",
            "voucher_id",
            unique=True,
            sqlite_where=text("reversed_at IS NULL"),
            postgresql_where=text("reversed_at IS NULL"),
        ),
        Index("ix_redemptions_store_created", "store_id", "created_at"),
        # The leverage page reads the days after its pre-aggregation live (voucher/analytics/rollup.py).
        Index("ix_redemptions_created_at", "created_at"),
        # A retry carries the same key from the same store; another store's key is another request.
        UniqueConstraint("store_id", "idempotency_key"),
        CheckConstraint("cashier_id IS NOT NULL OR terminal_id IS NOT NULL", name="has_actor"),
        CheckConstraint("(reversed_at IS NULL) = (reversal_reason IS NULL)", name="reversal_has_reason"),
    )

    id: Mapped[intpk]
    voucher_id: Mapped[int] = mapped_column(ForeignKey("vouchers.id"), index=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    #: the cashier at the counter page, or
    cashier_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: the store's terminal that called the API
    terminal_id: Mapped[int | None] = mapped_column(ForeignKey("store_terminals.id"))
    #: the whole order (driven consumption)
    order_amount_fen: Mapped[fen]
    #: the discount granted (paid by the campaign)
    subsidy_fen: Mapped[fen]
    #: a retried request with the same key returns this redemption and changes nothing
    idempotency_key: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[created_at]
    #: a reversal (撤销核销) sets these; the row is never deleted
    reversed_at: Mapped[datetime | None] = mapped_column(DateTime)
    reversal_reason: Mapped[str | None] = mapped_column(String(200))
    reversed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    voucher: Mapped[Voucher] = relationship("Voucher")
    store: Mapped[Store] = relationship("Store")
    merchant: Mapped[Merchant] = relationship("Merchant")

    @property
    def paid_by_citizen_fen(self) -> int:
        return self.order_amount_fen - self.subsidy_fen


class StoreTerminal(Model):
    """A store's POS terminal with an API token; only the token's SHA-256 is kept."""

    __tablename__ = "store_terminals"

    id: Mapped[intpk]
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), index=True)
    label: Mapped[str] = mapped_column(String(80))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: the first characters of the token, to tell tokens apart on screen
    token_prefix: Mapped[str] = mapped_column(String(12))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[created_at]
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)

    store: Mapped[Store] = relationship()


class RiskKind(str, enum.Enum):
    VELOCITY = "velocity"
    REPEAT_CITIZEN = "repeat_citizen"
    THRESHOLD_CLUSTER = "threshold_cluster"
    OFF_HOURS = "off_hours"

    @property
    def label(self) -> str:
        return {"velocity": "核销量异常偏高", "repeat_citizen": "同一市民反复核销", "threshold_cluster": "订单金额集中在门槛附近",
                "off_hours": "非营业时间核销"}[self.value]


class RiskFlag(Model):
    """A pattern for a reviewer to look at; settlement holds the merchant while a flag is open."""

    __tablename__ = "risk_flags"
    __table_args__ = (UniqueConstraint("merchant_id", "kind", "day"),)

    id: Mapped[intpk]
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    #: the local calendar day the pattern was seen on
    day: Mapped[date]
    #: the figures behind the flag, for the reviewer
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(12), default="open")
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime)
    review_note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[created_at]

    merchant: Mapped[Merchant] = relationship()

    @property
    def kind_enum(self) -> RiskKind:
        return RiskKind(self.kind)
