"""The campaign side's figures for the index: what this system knows about the home city's year.

- S11 信息消费项目专项资金额度: money executed by the campaigns tagged as information consumption (the
  tag on the campaign, requested by one person and approved by another, or any campaign under measure
  17, 信息消费), read from the ledger: subsidy paid
  in redemptions net of reversals, and grants paid, dated in the year (postings into the spent and
  settled accounts; a settlement moves spent to settled and nets to zero).
- voucher-driven consumption in the information-consumption merchant category: the order amounts of
  the year's unreversed redemptions at merchants of that category, from any campaign. No indicator of
  the catalogue measures it; it is published beside S11 as context.

Publishing stores S11 as the home city's campaign-fed value with its provenance (which campaigns, how
much each, when computed). An official S11 imported later overrides it in every computation; both
stay visible. Amounts stay integer fen here; the index value is in yuan, as the catalogue's unit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, or_, select

from voucher.campaigns.models import Campaign, Measure
from voucher.core import audit
from voucher.core.clock import local_day_end_utc, local_day_start_utc, utcnow
from voucher.core.db import db
from voucher.core.errors import InvalidInput, InvalidTransition, MakerCheckerViolation, NotFound
from voucher.core.money import to_yuan
from voucher.info_consumption_index.models import IndexValue, ValueSource
from voucher.ledger import services as ledger
from voucher.ledger.models import AccountKind
from voucher.merchants.models import Merchant, Redemption

FEED_CODE = "S11"
INFORMATION_CATEGORY = "信息消费"
INFORMATION_MEASURE = 17


@dataclass
class CampaignMoney:
    campaign_id: int
    name: str
    executed_fen: int


@dataclass
class FeedFigures:
    city: str
    year: int
    campaigns: list[CampaignMoney] = field(default_factory=list)
    driven_fen: int = 0
    redemptions: int = 0

    @property
    def executed_fen(self) -> int:
        return sum(c.executed_fen for c in self.campaigns)


def _year_bounds(year: int):
    return local_day_start_utc(date(year, 1, 1)), local_day_end_utc(date(year, 12, 31))


def tagged_campaigns() -> list[Campaign]:
    return list(db.session.scalars(
        select(Campaign).join(Measure, Measure.id == Campaign.measure_id)
        .where(or_(Campaign.is_information_consumption.is_(True), Measure.number == INFORMATION_MEASURE))
        .order_by(Campaign.id)
    ))


def figures(city: str, year: int) -> FeedFigures:
    start, end = _year_bounds(year)
    result = FeedFigures(city, year)
    campaigns = tagged_campaigns()
    if campaigns:
        executed = ledger.movements((AccountKind.SPENT, AccountKind.SETTLED), per="campaign",
                                    campaign_ids=[c.id for c in campaigns], since=start, until=end)
        result.campaigns = [CampaignMoney(c.id, c.name, executed.get(c.id, 0)) for c in campaigns]
    driven, count = db.session.execute(
        select(func.coalesce(func.sum(Redemption.order_amount_fen), 0), func.count(Redemption.id))
        .join(Merchant, Merchant.id == Redemption.merchant_id)
        .where(Merchant.category == INFORMATION_CATEGORY, Redemption.reversed_at.is_(None),
               Redemption.created_at >= start, Redemption.created_at <= end)
    ).one()
    result.driven_fen, result.redemptions = int(driven), int(count)
    return result


def publish(city: str, year: int, actor=None) -> IndexValue:
    """Store (or refresh) the campaign-fed S11 of `city` and `year`, with its provenance."""
    found = figures(city, year)
    provenance = {
        "computed_at": utcnow().isoformat(timespec="seconds"),
        "rule": "标记为信息消费的活动及措施十七下活动：年度内核销补贴（扣除撤销）与补贴申报拨付，取自账本",
        "campaigns": [{"id": c.campaign_id, "name": c.name, "executed_fen": c.executed_fen} for c in found.campaigns],
        "executed_fen": found.executed_fen,
        "driven_consumption_fen": found.driven_fen,
        "driven_category": INFORMATION_CATEGORY,
        "redemptions": found.redemptions,
    }
    row = db.session.scalar(select(IndexValue).where(
        IndexValue.city == city, IndexValue.year == year, IndexValue.code == FEED_CODE,
        IndexValue.source == ValueSource.CAMPAIGN_FEED.value))
    before = None if row is None else {"value": row.value}
    if row is None:
        row = IndexValue(city=city, year=year, code=FEED_CODE, source=ValueSource.CAMPAIGN_FEED.value, value=0.0)
        db.session.add(row)
    # The catalogue's unit is yuan, and an indicator's value is a float like every other index input: the
    # exact fen stay in the provenance. A year can net below zero (a redemption of 31 December reversed on
    # 1 January): nothing was executed that year, so zero, not a value the index refuses.
    row.value = float(to_yuan(max(found.executed_fen, 0)))
    row.provenance = provenance
    row.updated_by_id = getattr(actor, "id", None)
    row.updated_at = utcnow()
    db.session.flush()  # the audit entry names its id
    audit.record("index.feed.publish", row, actor=actor, actor_label=None if actor else "system", before=before,
                 after={"city": city, "year": year, "value": row.value, "campaigns": len(found.campaigns)})
    return row


@dataclass
class FeedView:
    city: str
    year: int
    fed: IndexValue | None
    official: IndexValue | None

    @property
    def used(self) -> str | None:
        if self.official is not None:
            return ValueSource.OFFICIAL.value
        return None if self.fed is None else ValueSource.CAMPAIGN_FEED.value


def feed_views(city: str) -> list[FeedView]:
    """Every year with a campaign-fed or official S11 for `city`: both values, and which one counts."""
    rows = db.session.scalars(select(IndexValue).where(IndexValue.city == city, IndexValue.code == FEED_CODE))
    by_year: dict[int, FeedView] = {}
    for row in rows:
        view = by_year.setdefault(row.year, FeedView(city, row.year, None, None))
        if row.source == ValueSource.OFFICIAL.value:
            view.official = row
        else:
            view.fed = row
    return [by_year[y] for y in sorted(by_year)]


def _locked_campaign(campaign_id: int) -> Campaign:
    campaign = db.session.scalar(select(Campaign).where(Campaign.id == campaign_id).with_for_update()
                                 .execution_options(populate_existing=True))
    if campaign is None:
        raise NotFound("找不到该活动")
    return campaign


def request_tag(campaign_id: int, tagged: bool, actor) -> Campaign:
    """A maker asks to tag (or untag) a campaign as information consumption; nothing counts in S11 until
    another person approves (decide_tag). One request at a time per campaign."""
    campaign = _locked_campaign(campaign_id)
    if campaign.info_tag_requested is not None:
        raise InvalidTransition(f"活动“{campaign.name}”已有待审批的信息消费标记申请")
    if campaign.is_information_consumption == tagged:
        raise InvalidTransition(f"活动“{campaign.name}”已{'标记' if tagged else '未标记'}为信息消费活动")
    campaign.info_tag_requested, campaign.info_tag_requested_by_id = tagged, actor.id
    audit.record("campaign.tag_information_consumption.request", campaign, actor=actor,
                 before={"is_information_consumption": campaign.is_information_consumption},
                 after={"info_tag_requested": tagged})
    return campaign


def decide_tag(campaign_id: int, approve: bool, actor, reason: str = "") -> Campaign:
    """A second person approves (the tag changes) or rejects (it stays) a pending request; never its maker."""
    campaign = _locked_campaign(campaign_id)
    requested = campaign.info_tag_requested
    if requested is None:
        raise InvalidTransition(f"活动“{campaign.name}”没有待审批的信息消费标记申请")
    if actor.id == campaign.info_tag_requested_by_id:
        raise MakerCheckerViolation()
    if not approve and not reason.strip():
        raise InvalidInput("请填写驳回原因")
    before = campaign.is_information_consumption
    maker_id = campaign.info_tag_requested_by_id
    if approve:
        campaign.is_information_consumption = requested
    campaign.info_tag_requested, campaign.info_tag_requested_by_id = None, None
    audit.record("campaign.tag_information_consumption" if approve else "campaign.tag_information_consumption.reject",
                 campaign, actor=actor, before={"is_information_consumption": before},
                 after={"is_information_consumption": campaign.is_information_consumption, "info_tag_requested": requested,
                        "info_tag_requested_by_id": maker_id, **({} if approve else {"reason": reason.strip()})})
    return campaign


def pending_tags() -> list[Campaign]:
    return list(db.session.scalars(select(Campaign).where(Campaign.info_tag_requested.is_not(None))
                                   .order_by(Campaign.id)))
