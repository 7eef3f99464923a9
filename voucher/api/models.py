from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from voucher.core.db import Model, created_at, intpk


class Partner(Model):
    """A channel partner (the city app, a bank) that claims vouchers for verified citizens.

    Its signing secret is derived from PARTNER_MASTER_KEY and the key id, so no secret is stored;
    deactivating the partner, or giving it a new key id, retires the old secret.
    """

    __tablename__ = "partners"

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(80))
    key_id: Mapped[str] = mapped_column(String(40), unique=True)
    is_active_partner: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[created_at]


class PartnerNonce(Model):
    """Nonces seen inside the replay window: a signed request is accepted once."""

    __tablename__ = "partner_nonces"
    __table_args__ = (UniqueConstraint("partner_id", "nonce"),)

    id: Mapped[intpk]
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    nonce: Mapped[str] = mapped_column(String(64))
    seen_at: Mapped[datetime] = mapped_column(DateTime, index=True)
