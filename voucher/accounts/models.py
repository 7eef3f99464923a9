from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import CheckConstraint, DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from voucher.core.db import created_at, db, intpk
from voucher.core.permissions import Role

ROLE_VALUES = tuple(r.value for r in Role)


class User(UserMixin, db.Model):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(f"role IN {ROLE_VALUES!r}", name="role_known"),
        # A cashier belongs to exactly one store; a merchant manager to one merchant.
        CheckConstraint("role <> 'cashier' OR store_id IS NOT NULL", name="cashier_has_store"),
        CheckConstraint("role <> 'merchant_manager' OR merchant_id IS NOT NULL", name="manager_has_merchant"),
    )

    id: Mapped[intpk]
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(32))
    #: the merchant a merchant manager or cashier works for
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"), index=True)
    #: the store (counter) a cashier works at
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"), index=True)
    is_active_account: Mapped[bool] = mapped_column(default=True)
    #: consecutive failed sign-ins; reset on success
    failed_logins: Mapped[int] = mapped_column(default=0)
    #: sign-in refused until then (UTC)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[created_at]

    merchant = relationship("Merchant", foreign_keys=[merchant_id])
    store = relationship("Store", foreign_keys=[store_id])

    @property
    def is_active(self) -> bool:  # Flask-Login
        return self.is_active_account

    @property
    def role_enum(self) -> Role:
        return Role(self.role)

    def set_password(self, password: str) -> None:
        from flask import current_app

        # scrypt by default; the test suite configures a cheaper method to stay fast.
        self.password_hash = generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    def has_role(self, *roles: Role) -> bool:
        return self.role in {r.value for r in roles}
