"""The indicator catalogue as data: the default (docs/design.md §7 ICDI-EC), versions, and their approval.

An administrator drafts a new version (names, units, groups, first-level weights, optionally unequal
third-level weights); a different administrator or bureau approver approves it, which retires the
version in force. Computations record the version they used, so old results stay explainable.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from voucher.core import audit
from voucher.core.audit import AuditEntry
from voucher.core.clock import utcnow
from voucher.core.db import db
from voucher.core.errors import InvalidInput, InvalidTransition, MakerCheckerViolation, NotFound
from voucher.info_consumption_index import method
from voucher.info_consumption_index.models import (
    VERSION_TRANSITIONS,
    CatalogueIndicator,
    CatalogueVersion,
    VersionStatus,
)

#: (code, first level, second level, name, unit, kind): the report's table 2, in its order. The migration
#: f2c6a8e0b4d7 inserts the same rows as version 1 (a copy, so the migration never changes with the code).
DEFAULT_INDICATORS: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("D1", "demand", "消费者购买力", "人均可支配收入", "元", "numeric"),
    ("D2", "demand", "信息通信需求", "平均每户每月上网流量（DOU）", "MB", "numeric"),
    ("D3", "demand", "消费者数字技能", "人均网络零售额", "元", "numeric"),
    ("S1", "supply", "通信服务发展水平", "人均基础电信业务收入", "元", "numeric"),
    ("S2", "supply", "软件服务发展水平", "人均软件和信息技术服务业务收入", "元", "numeric"),
    ("S3", "supply", "电子制造发展水平", "人均电子信息制造业收入", "元", "numeric"),
    ("S4", "supply", "公共服务发展水平", "社区医院及一级以上医疗机构电子病历普及率", "%", "share"),
    ("S5", "supply", "公共服务发展水平", "学校多媒体教室普及率", "%", "share"),
    ("S6", "supply", "公共服务发展水平", "城市重点公共区域视频监控覆盖率", "%", "share"),
    ("S7", "supply", "公共服务发展水平", "政务数据“上云”覆盖率", "%", "share"),
    ("S8", "supply", "公共服务发展水平", "国家级工业互联网平台和工业大数据服务平台数量", "个", "numeric"),
    ("S9", "supply", "企业科技创新实力", "“上云上平台”企业数量", "个", "numeric"),
    ("S10", "supply", "企业科技创新实力", "新增专精特新“小巨人”企业数量", "个", "numeric"),
    ("S11", "supply", "信息消费引导水平", "信息消费项目专项资金额度", "元", "numeric"),
    ("S12", "supply", "信息消费引导水平", "新增新型信息消费示范项目", "个", "numeric"),
    ("S13", "supply", "信息消费引导水平", "新增信息消费体验中心（馆）数量", "个", "numeric"),
    ("E1", "environment", "网络支撑能力", "100M及以上宽带接入用户占比", "%", "share"),
    ("E2", "environment", "网络支撑能力", "三大运营商平均宽带接入速率", "Mbps", "numeric"),
    ("E3", "environment", "网络支撑能力", "5G基站建设数量", "万个", "numeric"),
    ("E4", "environment", "网络支撑能力", "参与5G技术试验和产业布局企业数量", "个", "numeric"),
    ("E5", "environment", "网络支撑能力", "行政村通光纤覆盖水平", "%", "share"),
    ("E6", "environment", "网络支撑能力", "移动宽带覆盖水平", "%", "share"),
    ("E7", "environment", "其他支撑能力", "人均快递业务量", "件", "numeric"),
)
#: the Delphi first-level weights of the report's appendix
DEFAULT_FIRST_WEIGHTS = {"demand": 0.15, "supply": 0.55, "environment": 0.30}


def default_catalogue() -> method.Catalogue:
    firsts = [row[1] for row in DEFAULT_INDICATORS]
    weights = method.equal_within_first(DEFAULT_FIRST_WEIGHTS, firsts)
    return method.Catalogue(tuple(
        method.Indicator(code, name, unit, kind, first, second, w)
        for (code, first, second, name, unit, kind), w in zip(DEFAULT_INDICATORS, weights)
    ), version=1)


def install_default_catalogue() -> CatalogueVersion:
    """Version 1 as the migration installs it; for a database emptied by hand (and the tests)."""
    existing = active_version()
    if existing is not None:
        return existing
    number = (db.session.scalar(select(func.max(CatalogueVersion.version))) or 0) + 1
    version = CatalogueVersion(version=number, status=VersionStatus.ACTIVE.value, note="默认指标目录与权重（中国信通院 2022 报告表 2 及附录）")
    for position, ind in enumerate(default_catalogue().indicators, start=1):
        version.indicators.append(_row(position, ind))
    db.session.add(version)
    db.session.flush()  # the caller reads its id
    return version


def _row(position: int, ind: method.Indicator) -> CatalogueIndicator:
    return CatalogueIndicator(position=position, code=ind.code, name=ind.name, unit=ind.unit, kind=ind.kind,
                              first_level=ind.first, second_level=ind.second, weight=ind.weight)


def active_version() -> CatalogueVersion | None:
    return db.session.scalar(select(CatalogueVersion).where(CatalogueVersion.status == VersionStatus.ACTIVE.value))


def versions() -> list[CatalogueVersion]:
    return list(db.session.scalars(select(CatalogueVersion).order_by(CatalogueVersion.version.desc())))


def get_version(version_id: int) -> CatalogueVersion:
    found = db.session.get(CatalogueVersion, version_id)
    if found is None:
        raise NotFound("找不到该指标目录版本")
    return found


def as_method(version: CatalogueVersion) -> method.Catalogue:
    return method.Catalogue(tuple(
        method.Indicator(i.code, i.name, i.unit, i.kind, i.first_level, i.second_level, i.weight)
        for i in version.indicators
    ), version=version.version)


def require_active() -> CatalogueVersion:
    version = active_version()
    if version is None:
        raise NotFound("尚无生效的指标目录：请先执行数据库迁移（flask db upgrade），它会写入默认目录与权重")
    return version


# Editing: draft -> pending approval -> active ---------------------------------------------------------


@dataclass
class IndicatorEdit:
    code: str
    name: str
    unit: str
    second_level: str
    #: relative weight within its first-level indicator; equal weights (the report's rule) if all are 1
    relative_weight: float = 1.0
    #: share or numeric (None: unchanged)
    kind: str | None = None


def draft_from(base: CatalogueVersion, actor) -> CatalogueVersion:
    """A new draft version copying `base`."""
    if db.session.scalar(select(CatalogueVersion.id).where(CatalogueVersion.status.in_(
            (VersionStatus.DRAFT.value, VersionStatus.PENDING_APPROVAL.value, VersionStatus.REJECTED.value)))) is not None:
        raise InvalidTransition("已有一个草稿、被退回或待审批的指标目录版本，请先处理它")
    number = (db.session.scalar(select(func.max(CatalogueVersion.version))) or 0) + 1
    draft = CatalogueVersion(version=number, status=VersionStatus.DRAFT.value, created_by_id=actor.id,
                             note=f"基于第 {base.version} 版修改")
    for i in base.indicators:
        draft.indicators.append(CatalogueIndicator(
            position=i.position, code=i.code, name=i.name, unit=i.unit, kind=i.kind, first_level=i.first_level,
            second_level=i.second_level, weight=i.weight))
    db.session.add(draft)
    db.session.flush()  # the audit entry and the redirect need its id
    audit.record("index.catalogue.draft", draft, actor=actor, after={"version": number, "base": base.version})
    return draft


def update_draft(draft: CatalogueVersion, first_weights: dict[str, float], edits: list[IndicatorEdit],
                 note: str, actor) -> None:
    """Set the first-level weights (in percent or as fractions: they must sum to 100 % or 1) and each
    indicator's name, unit, group and relative weight within its first level."""
    if draft.status_enum not in (VersionStatus.DRAFT, VersionStatus.REJECTED):
        raise InvalidTransition("只有草稿或被退回的版本可以修改")
    total = sum(first_weights.values())
    if total <= 0:
        raise InvalidInput("一级指标权重合计必须大于 0")
    if abs(total - 100) < 1e-6:
        first_weights = {k: v / 100 for k, v in first_weights.items()}
    elif abs(total - 1) > 1e-6:
        raise InvalidInput(f"一级指标权重合计应为 100%，现为 {total:g}")
    if any(v < 0 for v in first_weights.values()):
        raise InvalidInput("权重不能为负数")
    by_code = {e.code: e for e in edits}
    problems = []
    for i in draft.indicators:
        e = by_code.get(i.code)
        if e is None:
            continue
        if not e.name.strip() or not e.unit.strip() or not e.second_level.strip():
            problems.append(f"{i.code}：名称、单位和二级指标都不能为空")
        if not e.relative_weight >= 0:
            problems.append(f"{i.code}：相对权重不能为负数")
        if e.kind is not None and e.kind not in method.KINDS:
            problems.append(f"{i.code}：类型只能是占比类或数值类")
    if problems:
        raise InvalidInput("；".join(problems))
    before = {i.code: [i.name, i.unit, i.kind, i.second_level, round(i.weight, 6)] for i in draft.indicators}
    for first in method.FIRST_LEVELS:
        members = [i for i in draft.indicators if i.first_level == first]
        relative = [by_code[i.code].relative_weight if i.code in by_code else 1.0 for i in members]
        if sum(relative) <= 0:
            raise InvalidInput(f"{method.FIRST_LEVEL_LABELS[first]}下的相对权重不能全为 0")
        for i, r in zip(members, relative):
            i.weight = first_weights[first] * r / sum(relative)
            if i.code in by_code:
                e = by_code[i.code]
                i.name, i.unit, i.second_level = e.name.strip(), e.unit.strip(), e.second_level.strip()
                i.kind = e.kind or i.kind
    as_method(draft)  # the pure checks (weights sum to 1, kinds, levels)
    draft.note = note.strip() or draft.note
    audit.record("index.catalogue.edit", draft, actor=actor, before=before,
                 after={i.code: [i.name, i.unit, i.kind, i.second_level, round(i.weight, 6)] for i in draft.indicators})


def _move(version: CatalogueVersion, to: VersionStatus) -> None:
    if to not in VERSION_TRANSITIONS[version.status_enum]:
        raise InvalidTransition(f"指标目录第 {version.version} 版当前为“{version.status_enum.label}”，不能改为“{to.label}”")
    version.status = to.value


def submit(version: CatalogueVersion, actor) -> None:
    _move(version, VersionStatus.PENDING_APPROVAL)
    version.submitted_by_id = actor.id
    version.rejection_reason = None
    audit.record("index.catalogue.submit", version, actor=actor, after={"version": version.version})


def approve(version: CatalogueVersion, actor) -> None:
    # Whoever drafted, edited or submitted the version cannot approve it: the edits are in the audit log.
    editors = set(db.session.scalars(select(AuditEntry.actor_id).where(
        AuditEntry.action == "index.catalogue.edit", AuditEntry.object_type == CatalogueVersion.__tablename__,
        AuditEntry.object_id == version.id)))
    if actor.id in editors | {version.created_by_id, version.submitted_by_id}:
        raise MakerCheckerViolation()
    if version.status_enum is not VersionStatus.PENDING_APPROVAL:
        _move(version, VersionStatus.ACTIVE)  # refused with its reason
    # Retire the version in force first: the unique index admits one active version at a time.
    current = db.session.scalar(select(CatalogueVersion).where(
        CatalogueVersion.status == VersionStatus.ACTIVE.value, CatalogueVersion.id != version.id).with_for_update())
    if current is not None:
        _move(current, VersionStatus.RETIRED)
        db.session.flush()
    _move(version, VersionStatus.ACTIVE)
    version.approved_by_id, version.approved_at = actor.id, utcnow()
    audit.record("index.catalogue.approve", version, actor=actor,
                 after={"version": version.version, "retired": current.version if current else None})


def reject(version: CatalogueVersion, reason: str, actor) -> None:
    if not reason.strip():
        raise InvalidInput("请填写退回原因")
    if actor.id in (version.created_by_id, version.submitted_by_id):
        raise MakerCheckerViolation()
    _move(version, VersionStatus.REJECTED)
    version.rejection_reason = reason.strip()
    audit.record("index.catalogue.reject", version, actor=actor, after={"reason": version.rejection_reason})
