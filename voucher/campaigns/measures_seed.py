"""Load the twenty measures from seed/measures.toml (data, not code). Re-running updates in place."""
from __future__ import annotations

import tomllib
from pathlib import Path

from sqlalchemy import select

from voucher.campaigns.models import Measure, MeasureMoneyLine, MeasureTarget, TargetProgress
from voucher.core.db import db

_MONEY_LINE_KEYS = {"label", "amount_yuan", "instrument", "funding_kind", "status"}


def load_measures(path: Path) -> int:
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    numbers = sorted(m["number"] for m in data["measures"])
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f"{path}: measure numbers must run 1..N without gaps, got {numbers}")
    for item in data["measures"]:
        measure = db.session.scalar(select(Measure).where(Measure.number == item["number"]))
        if measure is None:
            measure = Measure(number=item["number"])
            db.session.add(measure)
        measure.title = item["title"]
        measure.short_title = item["short_title"]
        measure.responsible_units = list(item.get("responsible_units", []))
        measure.text = item.get("text", "")
        policy = data.get("policy", {})
        measure.term_from = policy.get("issued_on")
        measure.term_until = policy.get("short_term_until") if item.get("short_term") else None
        db.session.flush()  # the lines below need the measure id
        _sync_money_lines(measure, item.get("money_lines", []))
        _sync_targets(measure, item.get("targets", []))
    return len(data["measures"])


def _sync_money_lines(measure: Measure, lines: list[dict]) -> None:
    """Update the measure's money lines in place, by position (nothing refers to them by id)."""
    existing = list(db.session.scalars(
        select(MeasureMoneyLine).where(MeasureMoneyLine.measure_id == measure.id).order_by(MeasureMoneyLine.position)
    ))
    for position, line in enumerate(lines):
        row = existing[position] if position < len(existing) else MeasureMoneyLine(measure_id=measure.id)
        row.position = position
        row.label = line["label"]
        row.amount_fen = int(line["amount_yuan"]) * 100
        row.instrument = line["instrument"]
        row.funding_kind = line["funding_kind"]
        row.status = line["status"]
        row.details = {k: v for k, v in line.items() if k not in _MONEY_LINE_KEYS}
        db.session.add(row)
    for row in existing[len(lines):]:
        db.session.delete(row)


def _sync_targets(measure: Measure, targets: list[dict]) -> None:
    """Update targets in place, by position: recorded progress refers to them and must keep its target."""
    existing = list(db.session.scalars(
        select(MeasureTarget).where(MeasureTarget.measure_id == measure.id).order_by(MeasureTarget.position)
    ))
    for position, target in enumerate(targets):
        row = existing[position] if position < len(existing) else MeasureTarget(measure_id=measure.id)
        row.position = position
        row.label = target["label"]
        row.target = int(target["target"])
        row.unit = target["unit"]
        row.comparison = target.get("comparison", ">=")
        db.session.add(row)
    for row in existing[len(targets):]:
        if db.session.scalar(select(TargetProgress.id).where(TargetProgress.target_id == row.id).limit(1)):
            raise ValueError(f"措施 {measure.number} 的目标「{row.label}」已有进展记录，不能从种子数据中删除")
        db.session.delete(row)
