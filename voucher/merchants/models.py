from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from voucher.core.db import created_at, db, fen, intpk

CATEGORIES = ["餐饮", "零售", "汽车", "家电家居", "文旅", "体育", "影院", "农产品", "托育", "家政", "信息消费"]
DISTRICTS = ["海州区", "连云区", "赣榆区", "东海县", "灌云县", "灌南县", "经济技术开发区", "徐圩新区", "云台山景区"]


class Merchant(db.Model):
    __tablename__ = "merchants"
    __table_args__ = (CheckConstraint("status IN ('pending', 'approved', 'suspended')", name="status_known"),)

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(120))
    #: 统一社会信用代码 (GB 32100-2015)
    uscc: Mapped[str] = mapped_column(String(18), unique=True)
    #: 行业类别
    category: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(16), default="approved")
    created_at: Mapped[created_at]

    stores: Mapped[list[Store]] = relationship(back_populates="merchant", order_by="Store.id")


class Store(db.Model):
    """A shop (门店) with its counter; a cashier redeems for exactly one store."""

    __tablename__ = "stores"

    id: Mapped[intpk]
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    #: 区县/功能板块 where the store trades
    district: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(String(200), default="")

    merchant: Mapped[Merchant] = relationship(back_populates="stores")


class Redemption(db.Model):
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
    )

    id: Mapped[intpk]
    voucher_id: Mapped[int] = mapped_column(ForeignKey("vouchers.id"), index=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    cashier_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    #: the whole order (driven consumption)
    order_amount_fen: Mapped[fen]
    #: the discount granted (paid by the campaign)
    subsidy_fen: Mapped[fen]
    #: a retried request with the same key returns this redemption and changes nothing
    idempotency_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[created_at]
    reversed_at: Mapped[datetime | None] = mapped_column(DateTime)

    voucher = relationship("Voucher")
    store = relationship("Store")
    merchant = relationship("Merchant")

    @property
    def paid_by_citizen_fen(self) -> int:
        return self.order_amount_fen - self.subsidy_fen
