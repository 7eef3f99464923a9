from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from flask_login import UserMixin
from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from voucher.core.clock import utcnow
from voucher.core.db import Model, created_at, intpk
from voucher.core.enum_check import one_of
from voucher.core.field_crypto import EncryptedString
from voucher.core.permissions import Role

if TYPE_CHECKING:
    from voucher.merchants.models import Merchant, Store


class User(UserMixin, Model):
    __tablename__ = "users"
    __table_args__ = (
        one_of("role", Role, name="role_known"),
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
    #: set by an administrator's reset (or `flask users reset-password`): every page sends the user to
    #: 修改密码 until they have chosen a password of their own
    is_password_temporary: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: when the password was last set (UTC); null for accounts made before this was kept
    password_changed_at: Mapped[datetime | None] = mapped_column(DateTime)
    #: the TOTP secret of two-factor sign-in (accounts/two_factor.py), once enrolled; null without it.
    #: Encrypted at rest: whoever reads a backup of this table must not be able to make codes.
    totp_secret: Mapped[str | None] = mapped_column(EncryptedString("users.totp_secret", 255))
    #: a secret shown as a QR code but not yet confirmed with a code from the authenticator app
    totp_pending_secret: Mapped[str | None] = mapped_column(EncryptedString("users.totp_pending_secret", 255))
    #: when two-factor sign-in was switched on (UTC)
    totp_enabled_at: Mapped[datetime | None] = mapped_column(DateTime)
    #: the 30-second step of the last code accepted: a code is good once, even within its window
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[created_at]

    merchant: Mapped[Merchant | None] = relationship("Merchant", foreign_keys=[merchant_id])
    store: Mapped[Store | None] = relationship("Store", foreign_keys=[store_id])

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
        self.password_changed_at = utcnow()

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    def has_role(self, *roles: Role) -> bool:
        return self.role in {r.value for r in roles}


#: why a staff session ended (user_sessions.end_reason)
SESSION_END_REASONS = (
    "sign_out",  # the user pressed 退出
    "idle",  # no request for longer than STAFF_SESSION_IDLE_MINUTES
    "expired",  # older than STAFF_SESSION_LIFETIME_HOURS, however busy
    "password_changed",  # the user changed the password (their other sessions end)
    "password_reset",  # an administrator or the command line set a new password
    "signed_out_everywhere",  # an administrator's 全部下线
    "deactivated",  # the account was switched off
    "two_factor_reset",  # an administrator reset the user's two-factor sign-in (a lost phone)
)


class UserSession(Model):
    """A staff sign-in, kept on the server. The signed session cookie carries only a random token whose
    SHA-256 digest is stored here; every request looks the token up, so a copy of the cookie stops
    working as soon as the session ends (sign-out, idle or absolute timeout, password change or reset,
    deactivation, an administrator's 全部下线)."""

    __tablename__ = "user_sessions"
    __table_args__ = (
        one_of("end_reason", SESSION_END_REASONS, name="end_reason_known", nullable=True),
        CheckConstraint("(ended_at IS NULL) = (end_reason IS NULL)", name="ended_with_reason"),
    )

    id: Mapped[intpk]
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    #: SHA-256 (hex) of the token in the cookie; the token itself is never stored
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    #: signed in at (UTC); the absolute lifetime counts from here
    created_at: Mapped[created_at]
    #: the last request seen (UTC), written at most once a minute; the idle timeout counts from here
    last_seen_at: Mapped[datetime] = mapped_column(DateTime)
    #: when the session ended (UTC); null while it is open
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)
    #: one of SESSION_END_REASONS
    end_reason: Mapped[str | None] = mapped_column(String(32))

    user: Mapped[User] = relationship(User)


class RecoveryCode(Model):
    """A one-time recovery code of two-factor sign-in, for a lost phone. Only its SHA-256 is kept: the
    codes are random (50 bits each), so a slow hash would add nothing but time."""

    __tablename__ = "recovery_codes"
    __table_args__ = (UniqueConstraint("user_id", "code_digest"),)

    id: Mapped[intpk]
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    code_digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[created_at]
    #: when it was used to sign in (UTC); a used code is refused
    used_at: Mapped[datetime | None] = mapped_column(DateTime)
