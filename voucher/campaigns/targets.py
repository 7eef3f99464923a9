"""Progress towards the measures' non-monetary targets, recorded with evidence."""
from __future__ import annotations

from sqlalchemy import func, select

from voucher.accounts.models import User
from voucher.campaigns.models import MeasureTarget, TargetProgress
from voucher.core import audit
from voucher.core.db import db
from voucher.core.errors import InvalidInput, NotFound
from voucher.core.reference import DISTRICTS


def record_progress(
    target_id: int, *, quantity: int, description: str, evidence: str, district: str | None, actor: User
) -> TargetProgress:
    target = db.session.get(MeasureTarget, target_id)
    if target is None:
        raise NotFound("找不到该目标")
    if not quantity:
        raise InvalidInput("数量不能为 0（更正时可填负数）")
    if not description.strip():
        raise InvalidInput("请填写进展说明，例如评定的集聚区名称")
    if not evidence.strip():
        raise InvalidInput("请填写佐证材料（文件编号、链接或现场照片说明）")
    if district and district not in DISTRICTS:
        raise InvalidInput("区县不正确")
    achieved = achieved_by_target([target_id]).get(target_id, 0)
    if achieved + quantity < 0:
        raise InvalidInput(f"更正后累计完成数不能为负（当前累计 {achieved}）")
    progress = TargetProgress(
        target_id=target_id, quantity=quantity, description=description.strip(), evidence=evidence.strip(),
        district=district or None, recorded_by_id=actor.id,
    )
    db.session.add(progress)
    db.session.flush()  # the audit entry needs the new id
    audit.record("target.progress", progress, actor=actor,
                 after={"target_id": target_id, "quantity": quantity, "description": progress.description})
    return progress


def achieved_by_target(target_ids: list[int] | None = None, district: str | None = None) -> dict[int, int]:
    query = select(TargetProgress.target_id, func.sum(TargetProgress.quantity)).group_by(TargetProgress.target_id)
    if target_ids is not None:
        query = query.where(TargetProgress.target_id.in_(target_ids))
    if district:
        query = query.where(TargetProgress.district == district)
    return {target_id: int(total) for target_id, total in db.session.execute(query)}
