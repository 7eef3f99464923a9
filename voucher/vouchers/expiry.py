"""Expiry: claimed vouchers past their validity become expired, and their money goes back to available."""
from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import select, update

from voucher.campaigns.services import lock_campaign
from voucher.core import audit
from voucher.core.db import db
from voucher.ledger import services as ledger
from voucher.ledger.models import AccountKind, EntryKind
from voucher.vouchers.models import Voucher, VoucherStatus


def expire_vouchers(now: datetime) -> dict[int, int]:
    """Expire every claimed voucher whose valid_until is before `now`; returns {campaign id: count}.

    One campaign at a time under its row lock, the lock closing a campaign takes, so the two never
    count the same vouchers. The ledger moves exactly the vouchers the UPDATE changed: a voucher
    redeemed meanwhile keeps its status and its money.
    """
    campaign_ids = db.session.scalars(
        select(Voucher.campaign_id)
        .where(Voucher.status == VoucherStatus.CLAIMED.value, Voucher.valid_until < now)
        .distinct()
        .order_by(Voucher.campaign_id)
    ).all()
    expired: dict[int, int] = {}
    for campaign_id in campaign_ids:
        campaign = lock_campaign(campaign_id)
        faces = Counter(
            db.session.scalars(
                update(Voucher)
                .where(Voucher.campaign_id == campaign_id, Voucher.status == VoucherStatus.CLAIMED.value,
                       Voucher.valid_until < now)
                .values(status=VoucherStatus.EXPIRED.value)
                .returning(Voucher.face_value_fen)
                .execution_options(synchronize_session=False)
            ).all()
        )
        if not faces:
            continue
        sources = ledger.source_accounts(campaign_id)
        for face, count in sorted(faces.items()):
            ledger.post(
                EntryKind.EXPIRY.value, campaign_id,
                ledger.voucher_lines(sources, AccountKind.RESERVED, AccountKind.AVAILABLE, face, count),
                memo=f"券到期未使用：{count} 张", ref=("campaign", campaign_id),
            )
        count = sum(faces.values())
        audit.record(
            "voucher.expire", campaign, actor_label="system",
            after={"expired": count, "returned_fen": sum(face * n for face, n in faces.items()), "before": now},
        )
        expired[campaign_id] = count
    return expired
