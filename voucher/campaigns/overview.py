"""The policy overview: each of the twenty measures with its money and targets. Read-only."""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from voucher.campaigns.models import Campaign, Measure, MeasureTarget
from voucher.campaigns.targets import achieved_by_target
from voucher.core.db import db
from voucher.ledger.models import AccountKind
from voucher.ledger.services import campaign_balances


@dataclass
class TargetLine:
    target: MeasureTarget
    achieved: int

    @property
    def met(self) -> bool:
        return self.achieved >= self.target.target


@dataclass
class MeasureLine:
    measure: Measure
    planned_in_hand_fen: int = 0
    planned_sought_fen: int = 0
    campaigns: int = 0
    #: money actually put into campaigns (approved budgets, after changes, less what went back)
    funded_fen: int = 0
    reserved_fen: int = 0
    #: redeemed or paid out (spent + settled)
    spent_fen: int = 0
    #: still available to release
    remaining_fen: int = 0
    targets: list[TargetLine] = field(default_factory=list)


@dataclass
class Overview:
    lines: list[MeasureLine]
    units: list[str]

    @property
    def totals(self) -> MeasureLine:
        total = MeasureLine(measure=None)  # type: ignore[arg-type]
        for line in self.lines:
            for name in ("planned_in_hand_fen", "planned_sought_fen", "campaigns", "funded_fen", "reserved_fen",
                         "spent_fen", "remaining_fen"):
                setattr(total, name, getattr(total, name) + getattr(line, name))
        return total


def policy_overview(unit: str | None = None, district: str | None = None) -> Overview:
    """All measures (or those a responsible unit shares), with campaigns limited to those serving
    `district` (a campaign for all districts serves every district)."""
    measures = db.session.scalars(select(Measure).order_by(Measure.number)).all()
    units = sorted({u for m in measures for u in m.responsible_units})
    if unit:
        measures = [m for m in measures if unit in m.responsible_units]
    # Approved campaigns only (running, paused or closed): a pending one has committed nothing yet.
    campaigns = db.session.scalars(select(Campaign).where(Campaign.approved_at.is_not(None))).all()
    if district:
        campaigns = [c for c in campaigns if not c.districts or district in c.districts]
    balances = campaign_balances([c.id for c in campaigns])
    achieved = achieved_by_target(district=district)
    lines = {m.id: MeasureLine(measure=m) for m in measures}
    for m in measures:
        line = lines[m.id]
        line.planned_in_hand_fen, line.planned_sought_fen = m.planned_in_hand_fen, m.planned_sought_fen
        line.targets = [TargetLine(t, achieved.get(t.id, 0)) for t in m.targets]
    for campaign in campaigns:
        if campaign.measure_id not in lines:
            continue
        line = lines[campaign.measure_id]
        by_kind = balances.get(campaign.id)
        line.campaigns += 1
        if by_kind:
            line.funded_fen += -by_kind[AccountKind.FUNDING]
            line.reserved_fen += by_kind[AccountKind.RESERVED]
            line.spent_fen += by_kind[AccountKind.SPENT] + by_kind[AccountKind.SETTLED]
            line.remaining_fen += by_kind[AccountKind.AVAILABLE]
    return Overview(lines=list(lines.values()), units=units)
