"""Load the twenty measures from seed/measures.toml (data, not code). Re-running updates in place."""
from __future__ import annotations

import tomllib
from pathlib import Path

from sqlalchemy import delete, select

from voucher.campaigns.models import Measure, MeasureMoneyLine, MeasureTarget
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
        db.session.execute(delete(MeasureMoneyLine).where(MeasureMoneyLine.measure_id == measure.id))
        db.session.execute(delete(MeasureTarget).where(MeasureTarget.measure_id == measure.id))
        for position, line in enumerate(item.get("money_lines", [])):
            db.session.add(
                MeasureMoneyLine(
                    measure_id=measure.id,
                    position=position,
                    label=line["label"],
                    amount_fen=int(line["amount_yuan"]) * 100,
                    instrument=line["instrument"],
                    funding_kind=line["funding_kind"],
                    status=line["status"],
                    details={k: v for k, v in line.items() if k not in _MONEY_LINE_KEYS},
                )
            )
        for position, target in enumerate(item.get("targets", [])):
            db.session.add(
                MeasureTarget(
                    measure_id=measure.id,
                    position=position,
                    label=target["label"],
                    target=int(target["target"]),
                    unit=target["unit"],
                    comparison=target.get("comparison", ">="),
                )
            )
    return len(data["measures"])
