"""Does a campaign fit the money its measure planned? What an approver sees before approving, and the
rule `services.approve` applies: going past the plan needs a reason, which is kept (issue 14, point 9:
a 10亿 campaign under measure 1, planned at 1,000万, was approved with one click).

The figures use the definitions the reports use, so the approver's numbers tie out to 政策措施 and 预算执行:
- planned: the measure's money lines from seed/measures.toml, in hand and sought (`Measure.planned_fen`);
- committed: the in-hand budgets of the measure's campaigns that were approved (approved_at set: running,
  paused or closed), as 活动预算（资金已落实） counts them in reports/budget.py and the overview counts campaigns;
- this campaign: its in-hand budget (`Campaign.budget_fen`), what approval funds in the ledger.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from voucher.campaigns.models import Campaign, FundingSource, Measure
from voucher.core.db import db
from voucher.core.errors import PlanOverrideRequired
from voucher.core.forms import reason_text
from voucher.core.money import format_yuan

#: the override reason is kept with the campaign (String(200)) and shown wherever it is approved
REASON_MAX_CHARS = 200


@dataclass(frozen=True)
class PlanCheck:
    measure: Measure
    #: the measure's planned money (in hand and sought); 0 when the policy lists none or leaves it open
    planned_fen: int
    planned_sought_fen: int
    #: in-hand budgets of the measure's other approved campaigns, and how many there are
    committed_fen: int
    committed_campaigns: int
    #: this campaign's in-hand budget
    budget_fen: int

    @property
    def has_plan(self) -> bool:
        return self.planned_fen > 0

    @property
    def total_fen(self) -> int:
        """批准后合计: what the measure's approved campaigns would hold with this one."""
        return self.committed_fen + self.budget_fen

    @property
    def remaining_fen(self) -> int:
        """剩余 (positive) or 超出 (negative) against the plan."""
        return self.planned_fen - self.total_fen

    @property
    def exceeds(self) -> bool:
        return self.has_plan and self.total_fen > self.planned_fen

    @property
    def needs_override(self) -> bool:
        # A measure the policy plans no money for (住房消费, 信息消费, or only lines with open totals such as
        # 节能家电补贴) is no free pass: every yuan approved there is beyond any plan, and a maker could
        # otherwise file a 10亿 campaign under such a measure to avoid the check. So the approver records
        # on what authority (a 财政局 reply, a council decision) the money is committed, as for an excess.
        return self.exceeds or not self.has_plan

    def refusal(self) -> str:
        """Why approving without a reason is refused, with the figures the approver needs."""
        name = f"措施{self.measure.number}「{self.measure.short_title}」"
        if not self.has_plan:
            return f"{name}未列计划资金，无法核对本活动预算 {format_yuan(self.budget_fen)} 元是否在计划之内：请填写超计划批准理由后再批准"
        return (
            f"批准后{name}的活动资金合计 {format_yuan(self.total_fen)} 元（已落实 {format_yuan(self.committed_fen)} 元 + "
            f"本活动 {format_yuan(self.budget_fen)} 元），超出计划资金 {format_yuan(self.planned_fen)} 元 "
            f"{format_yuan(-self.remaining_fen)} 元：请填写超计划批准理由后再批准"
        )

    def as_audit(self) -> dict:
        return {
            "measure_number": self.measure.number, "planned_fen": self.planned_fen,
            "committed_fen": self.committed_fen, "budget_fen": self.budget_fen, "total_fen": self.total_fen,
            "has_plan": self.has_plan, "exceeds": self.exceeds,
        }


def assess(campaign: Campaign) -> PlanCheck:
    """The campaign against its measure's plan, as of now. A read: `services.approve` calls it under the
    measure's plan lock, so what it counts as committed cannot change before the approval commits."""
    measure = campaign.measure
    # An aggregate query, not the ORM's loaded objects: under the lock it must see what other approvals
    # committed a moment ago (a fresh statement reads fresh data at READ COMMITTED), not cached rows.
    committed_fen, committed_campaigns = db.session.execute(
        select(func.coalesce(func.sum(FundingSource.amount_fen), 0), func.count(func.distinct(Campaign.id)))
        .join(Campaign, Campaign.id == FundingSource.campaign_id)
        .where(
            Campaign.measure_id == measure.id, Campaign.id != campaign.id, Campaign.approved_at.is_not(None),
            FundingSource.status == "in_hand",
        )
    ).one()
    return PlanCheck(
        measure=measure, planned_fen=measure.planned_fen, planned_sought_fen=measure.planned_sought_fen,
        committed_fen=int(committed_fen), committed_campaigns=int(committed_campaigns),
        budget_fen=campaign.budget_fen,
    )


def override_reason(check: PlanCheck, text: str | None) -> str | None:
    """The reason to keep for an approval past the plan; refuse one that needs a reason and has none.
    A campaign that fits keeps none, even if a reason was typed (nothing was overridden)."""
    if not check.needs_override:
        return None
    return reason_text(text, missing=PlanOverrideRequired(check.refusal()), label="超计划批准理由",
                       limit=REASON_MAX_CHARS)
