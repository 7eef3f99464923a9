"""A citizen's own vouchers, as the phone pages under /c/ show them: the list, one voucher and whether
its QR code may be shown, what each voucher was used for, and the stores that take it.

Every function takes the signed-in citizen's id and reads only that citizen's vouchers: someone
else's voucher is NotFound, the same answer as a voucher that does not exist, so ids cannot be probed.
Read-only: nothing here changes a row.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import selectinload

from voucher.campaigns.models import Campaign, CampaignStatus, campaign_merchants
from voucher.core.clock import utcnow
from voucher.core.db import db
from voucher.core.errors import NotFound
from voucher.core.paging import Page, page_of
from voucher.core.reference import CATEGORIES, DISTRICTS
from voucher.core.typed_text import clean
from voucher.merchants.models import Merchant, MerchantStatus, Redemption, Store
from voucher.vouchers.models import Voucher, VoucherStatus

#: rows per page of the store list and the usage history (a phone screen's worth, or two)
PAGE_SIZE = 20
#: the longest store search taken (a store name is at most 120 characters; nobody types that)
MAX_SEARCH = 40


class VoucherState(str, enum.Enum):
    """What the citizen can do with a voucher now, which decides whether its QR code is shown."""

    USABLE = "usable"
    NOT_YET = "not_yet"  # claimed, its validity starts later
    PAUSED = "paused"  # its campaign is paused: the counter refuses it until the bureau resumes it
    USED = "used"
    EXPIRED = "expired"  # expired or withdrawn, or past its validity and not yet marked by the nightly job

    @property
    def label(self) -> str:
        return {"usable": "可使用", "not_yet": "未到使用时间", "paused": "活动暂停", "used": "已使用",
                "expired": "已过期"}[self.value]

    @property
    def shows_qr(self) -> bool:
        """A QR code only for a voucher that can still be used: never for a used or expired one."""
        return self in (VoucherState.USABLE, VoucherState.NOT_YET)


def state_of(voucher: Voucher, now: datetime) -> VoucherState:
    status = voucher.status_enum
    if status is VoucherStatus.REDEEMED:
        return VoucherState.USED
    if status is not VoucherStatus.CLAIMED or (voucher.valid_until is not None and now > voucher.valid_until):
        return VoucherState.EXPIRED
    if voucher.campaign.status != CampaignStatus.ACTIVE.value:
        # a closed campaign has expired its claimed vouchers already; paused is the one left
        return VoucherState.EXPIRED if voucher.campaign.status == CampaignStatus.CLOSED.value else VoucherState.PAUSED
    if voucher.valid_from is not None and now < voucher.valid_from:
        return VoucherState.NOT_YET
    return VoucherState.USABLE


@dataclass(frozen=True)
class Usage:
    """One use of a voucher at a store (a redemption), as its citizen sees it: no cashier, no merchant's books."""

    voucher_id: int
    campaign_name: str
    redeemed_at: datetime
    store_name: str
    district: str
    order_amount_fen: int
    subsidy_fen: int
    #: a cashier undid it (撤销核销): the voucher was usable again
    reversed_at: datetime | None

    @property
    def paid_fen(self) -> int:
        return self.order_amount_fen - self.subsidy_fen


@dataclass(frozen=True)
class Card:
    voucher: Voucher
    state: VoucherState
    #: the redemption that used it (for a used voucher)
    usage: Usage | None = None


@dataclass(frozen=True)
class VoucherPage:
    card: Card
    #: every use of the voucher, newest first, an undone one included
    usages: list[Usage]


@dataclass(frozen=True)
class StoreRow:
    name: str
    merchant_name: str
    category: str
    district: str
    address: str


@dataclass(frozen=True)
class StoreList:
    voucher: Voucher
    #: the choices of the filters: the campaign's districts and categories (all of the city's if it names none)
    districts: list[str]
    categories: list[str]
    page: Page[StoreRow]
    #: what was wrong with the filters, if anything: the list is then the unfiltered first page
    problem: str | None = None


_USAGE: Select = (
    select(Redemption.voucher_id, Campaign.name, Redemption.created_at, Store.name, Store.district,
           Redemption.order_amount_fen, Redemption.subsidy_fen, Redemption.reversed_at)
    .join(Voucher, Voucher.id == Redemption.voucher_id)
    .join(Campaign, Campaign.id == Redemption.campaign_id)
    .join(Store, Store.id == Redemption.store_id)
    .order_by(Redemption.created_at.desc(), Redemption.id.desc())
)
_ORDER = [VoucherState.USABLE, VoucherState.NOT_YET, VoucherState.PAUSED, VoucherState.USED, VoucherState.EXPIRED]


def cards(citizen_id: int) -> list[Card]:
    """The citizen's vouchers, those that can be used first, then the newest claim first."""
    now = utcnow()
    vouchers = db.session.scalars(
        select(Voucher).where(Voucher.citizen_id == citizen_id)
        .options(selectinload(Voucher.campaign).selectinload(Campaign.product))
        .order_by(Voucher.claimed_at.desc(), Voucher.id.desc())
    ).all()
    used = {u.voucher_id: u for u in _usages(_USAGE.where(
        Voucher.citizen_id == citizen_id, Voucher.status == VoucherStatus.REDEEMED.value,
        Redemption.reversed_at.is_(None)))}
    found = [Card(v, state_of(v, now), used.get(v.id)) for v in vouchers]
    return sorted(found, key=lambda card: _ORDER.index(card.state))  # stable: newest first within a state


def own_voucher(citizen_id: int, voucher_id: int) -> Voucher:
    voucher = db.session.get(Voucher, voucher_id)
    if voucher is None or voucher.citizen_id != citizen_id:
        raise NotFound("找不到该消费券")
    return voucher


def voucher_page(citizen_id: int, voucher_id: int) -> VoucherPage:
    voucher = own_voucher(citizen_id, voucher_id)
    usages = _usages(_USAGE.where(Redemption.voucher_id == voucher.id))
    live = next((u for u in usages if u.reversed_at is None), None)
    state = state_of(voucher, utcnow())
    return VoucherPage(Card(voucher, state, live if state is VoucherState.USED else None), usages)


def qr_voucher(citizen_id: int, voucher_id: int) -> Voucher:
    """The voucher whose QR code is asked for: the citizen's own, and one that can still be used."""
    voucher = own_voucher(citizen_id, voucher_id)
    if not state_of(voucher, utcnow()).shows_qr:
        raise NotFound("该消费券已使用或已失效，不再显示二维码")
    return voucher


def history(citizen_id: int, number: int) -> Page[Usage]:
    """Every use of the citizen's vouchers, newest first, a page at a time."""
    page = page_of(_USAGE.where(Voucher.citizen_id == citizen_id), number, PAGE_SIZE, scalars=False)
    return Page([Usage(*row) for row in page.items], page.number, page.size, page.total)


def stores(citizen_id: int, voucher_id: int, *, district: str = "", category: str = "", text: str = "",
           number: int = 1) -> StoreList:
    """The stores where the voucher can be used, by the campaign's rules as the counter applies them
    (counter/redemption.py): an approved merchant, of the campaign's categories, in its districts, and
    among its named merchants if it names any. Filtered by district, category and words of the store's
    or the merchant's name; a page at a time. A filter the voucher cannot have (a district outside the
    campaign's, a search too long) is not an error page: the list comes unfiltered, with `problem`."""
    voucher = own_voucher(citizen_id, voucher_id)
    campaign = voucher.campaign
    districts = list(campaign.districts or DISTRICTS)
    categories = list(campaign.categories or CATEGORIES)
    problem = None
    if district and district not in districts:
        problem = f"本券不能在「{district[:20]}」使用，请从列表中选择区县"
    elif category and category not in categories:
        problem = f"本券不适用于「{category[:20]}」行业，请从列表中选择行业"
    elif len(text) > MAX_SEARCH:
        problem = f"搜索内容不能超过 {MAX_SEARCH} 个字"
    if problem:
        district = category = text = ""
        number = 1
    query = _eligible_stores(campaign)
    if district:
        query = query.where(Store.district == district)
    if category:
        query = query.where(Merchant.category == category)
    # Each word (full-width folded, as typed) must be in the store's name or its merchant's.
    for word in filter(None, (clean(w) for w in text.split())):
        query = query.where(or_(Store.name.contains(word, autoescape=True),
                                Merchant.name.contains(word, autoescape=True)))
    page = page_of(query, number, PAGE_SIZE, scalars=False)
    return StoreList(voucher, districts, categories,
                     Page([StoreRow(*row) for row in page.items], page.number, page.size, page.total), problem)


def _eligible_stores(campaign: Campaign) -> Select:
    query = (
        select(Store.name, Merchant.name, Merchant.category, Store.district, Store.address)
        .join(Merchant, Merchant.id == Store.merchant_id)
        .where(Merchant.status == MerchantStatus.APPROVED.value)
        .order_by(Store.district, Store.name, Store.id)
    )
    if campaign.categories:
        query = query.where(Merchant.category.in_(campaign.categories))
    if campaign.districts:
        query = query.where(Store.district.in_(campaign.districts))
    named = select(campaign_merchants.c.merchant_id).where(campaign_merchants.c.campaign_id == campaign.id)
    # no named merchants: any merchant that fits the rules
    return query.where(or_(~named.exists(), Merchant.id.in_(named)))


def _usages(query: Select) -> list[Usage]:
    return [Usage(*row) for row in db.session.execute(query).all()]
