"""An audit record's before and after as a reader sees them: named fields, amounts in yuan, coded values in
words, what changed set apart from what did not. For the audit page and its exports."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from voucher.core.clock import LOCAL_TZ, to_local
from voucher.core.money import format_yuan
from voucher.reports.audit_names import NESTED_TYPES, field_name, value_name

#: an ISO timestamp as audit.row() writes a datetime (naive: UTC, as every time the app keeps)
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
#: a value recorded as null (not set), as against a field the record does not carry (the page's muted —)
EMPTY = "（空）"


@dataclass(frozen=True)
class FieldChange:
    key: str
    label: str
    #: the value as text; None when that side of the record does not carry the field
    before: str | None
    after: str | None
    #: both sides carry the field, with different values
    changed: bool

    @property
    def same(self) -> bool:
        return self.before is not None and self.after is not None and not self.changed


@dataclass(frozen=True)
class Diff:
    #: the fields that changed, then those only one side records, each in the record's order
    shown: list[FieldChange]
    #: the fields both sides record with the same value (named on the page, not spelt out)
    unchanged: list[FieldChange]
    #: the record has a state before the change (most have only the state after; a deletion only before)
    has_before: bool
    has_after: bool = True

    def text(self) -> str:
        """The diff as lines of text (an export's cell): 状态：待审批 → 进行中."""
        lines = []
        for field in self.shown:
            if field.changed:
                lines.append(f"{field.label}：{field.before} → {field.after}")
            elif field.after is not None:
                lines.append(f"{field.label}：{field.after}")
            else:
                lines.append(f"{field.label}（变更前）：{field.before}")
        if self.unchanged:
            lines.append("未变更：" + "、".join(f.label for f in self.unchanged))
        return "\n".join(lines)


def diff(object_type: str | None, before: dict[str, Any] | None, after: dict[str, Any] | None) -> Diff:
    old, new = before or {}, after or {}
    shown: list[FieldChange] = []
    unchanged: list[FieldChange] = []
    for key in [*new, *(k for k in old if k not in new)]:
        field = FieldChange(
            key=key, label=field_name(key, object_type),
            before=value_text(key, old[key], object_type) if key in old else None,
            after=value_text(key, new[key], object_type) if key in new else None,
            changed=key in old and key in new and old[key] != new[key],
        )
        (unchanged if field.same else shown).append(field)
    shown.sort(key=lambda field: not field.changed)  # what changed first, then the record's order
    return Diff(shown, unchanged, has_before=before is not None, has_after=after is not None)


def value_text(key: str, value: Any, object_type: str | None = None) -> str:
    """One recorded value in words: yuan for *_fen, percent for *_bp, labels for coded values."""
    if value is None:
        return EMPTY
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, int) and key.endswith("_fen"):
        return f"{format_yuan(value)} 元"
    if isinstance(value, int) and key.endswith("_bp"):
        whole, hundredths = divmod(value, 100)
        return f"{whole}.{hundredths:02d}".rstrip("0").rstrip(".") + "%"
    if isinstance(value, str):
        if _TIMESTAMP.match(value):
            return _local_time(value)
        return value_name(key, value, object_type)
    if isinstance(value, dict):
        inner = NESTED_TYPES.get(key, object_type)
        return "，".join(f"{field_name(k, inner)}：{value_text(k, v, inner)}" for k, v in value.items()) or "（空）"
    if isinstance(value, list):
        if not value:
            return "（无）"
        items = [value_text(key, item, object_type) for item in value]
        if any(isinstance(item, dict) for item in value):
            return "；".join(f"（{item}）" for item in items)
        return "、".join(items)
    return str(value)


def _local_time(text: str) -> str:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    local = moment.astimezone(LOCAL_TZ) if moment.tzinfo is not None else to_local(moment)
    return f"{local:%Y-%m-%d %H:%M:%S}"
