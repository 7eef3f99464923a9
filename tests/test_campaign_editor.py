"""The campaign editor, through the pages, as the bureau maker uses it: every refusal is answered 422
with the exact Chinese reason on the page and saves nothing; a valid campaign is saved as a draft,
editable while it is a draft and frozen once submitted."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.conftest import TEST_TODAY
from tests.factories import PASSWORD, make_world
from voucher.campaigns.models import Campaign, Measure
from voucher.core.clock import local_today


def login(client, username):
    client.post("/logout")
    response = client.post("/login", data={"username": username, "password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)


def measure_id(db, number: int) -> int:
    return db.session.scalar(select(Measure.id).where(Measure.number == number))


def campaign_count(db) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count(Campaign.id)))


def cinema_form(db, **overrides) -> dict:
    """The measure-12 cinema campaign: 市财政 500,000 (share 2) + 合作影院 250,000 (share 1), 无门槛 30 元."""
    today = local_today()
    data = {
        "measure_id": measure_id(db, 12), "name": "优惠观影消费券", "instrument": "voucher",
        "sources-0-kind": "municipal_finance", "sources-0-name": "市财政", "sources-0-amount": "500,000",
        "sources-0-status": "in_hand", "sources-0-share": "2",
        "sources-1-kind": "enterprise", "sources-1-name": "合作影院", "sources-1-amount": "250,000",
        "sources-1-status": "in_hand", "sources-1-share": "1",
        "face_value": "30", "threshold": "0",
        "valid_from": today.isoformat(), "valid_until": (today + timedelta(days=30)).isoformat(),
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


TODAY = TEST_TODAY  # the suite's clock, not the machine's (see tests/conftest.py)

BAD_INPUT = [
    pytest.param(
        {"face_value": "30", "threshold": "20"},
        "使用门槛（20.00 元）不能低于券面额（30.00 元）；无门槛券请把门槛填 0",
        id="threshold-below-face",
    ),
    pytest.param(
        {"sources-0-amount": "600,000", "sources-1-amount": "150,000"},
        "各出资方金额与出资比例 2:1 不一致：按合计 750,000.00 元，应为 市财政 500,000.00 / 合作影院 250,000.00 元",
        id="amounts-not-in-share-ratio",
    ),
    pytest.param(
        {"sources-2-kind": "provincial_fund", "sources-2-name": "省级补助", "sources-2-amount": "100,000",
         "sources-2-status": "sought", "sources-2-share": "1"},
        "争取中的资金「省级补助」尚未到位，不能参与补贴分摊（出资比例请填 0）",
        id="sought-source-with-share",
    ),
    pytest.param(
        {"planned_quantity": "30000"},
        "预算不足：计划发放 30,000 张 × 30.00 元 = 900,000.00 元，超过已到位预算 750,000.00 元",
        id="planned-quantity-over-budget",
    ),
    pytest.param(
        {"valid_from": "2022-09-01", "valid_until": "2022-10-31"},
        "有效期不能早于政策施行日期 2022-09-05",
        id="before-policy-date",
    ),
    pytest.param(
        {"valid_from": (TODAY + timedelta(days=10)).isoformat(), "valid_until": (TODAY + timedelta(days=9)).isoformat()},
        "有效期结束日期不能早于开始日期",
        id="until-before-from",
    ),
    pytest.param(
        {"usable_from": "22:00", "usable_until": "10:00"},
        "每日可用时段的开始时间应早于结束时间",
        id="usable-hours-reversed",
    ),
    pytest.param(
        {"sources-0-amount": "12.345"},
        "金额格式不正确：请输入不超过两位小数的元金额，例如 100 或 99.50",
        id="bad-money-string",
    ),
]


@pytest.mark.parametrize("overrides, message", BAD_INPUT)
def test_bad_input_is_refused_with_its_reason_and_saves_nothing(client, db, overrides, message):
    make_world()
    login(client, "maker")
    response = client.post("/campaigns/new", data=cinema_form(db, **overrides))
    page = response.get_data(as_text=True)
    assert response.status_code == 422, page
    assert message in page
    assert campaign_count(db) == 0


def test_the_valid_form_itself_is_accepted(client, db):
    """The baseline of the refusals above: without the bad field, the same form saves."""
    make_world()
    login(client, "maker")
    response = client.post("/campaigns/new", data=cinema_form(db))
    assert response.status_code == 302, response.get_data(as_text=True)
    assert campaign_count(db) == 1


def test_cofunded_draft_is_editable_until_submitted(client, db):
    make_world()
    login(client, "maker")
    response = client.post("/campaigns/new", data=cinema_form(db))
    assert response.status_code == 302, response.get_data(as_text=True)
    campaign = db.session.scalar(select(Campaign))
    assert campaign.status == "draft"
    assert campaign.measure.number == 12
    assert [(s.kind, s.name, s.amount_fen, s.status, s.share) for s in campaign.funding_sources] == [
        ("municipal_finance", "市财政", 500_000_00, "in_hand", 2),
        ("enterprise", "合作影院", 250_000_00, "in_hand", 1),
    ]
    assert (campaign.product.kind, campaign.product.face_value_fen, campaign.product.threshold_fen) == ("fixed", 30_00, 0)
    assert campaign.budget_fen == 750_000_00
    campaign_id = campaign.id

    # The draft's edit page is prefilled from what was saved.
    page = client.get(f"/campaigns/{campaign_id}/edit")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "合作影院" in text and "250000.00" in text and "500000.00" in text

    # Editing a draft saves the change.
    response = client.post(
        f"/campaigns/{campaign_id}/edit", data=cinema_form(db, name="优惠观影消费券（第一期）", face_value="25")
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    db.session.expire_all()
    campaign = db.session.get(Campaign, campaign_id)
    assert campaign.name == "优惠观影消费券（第一期）"
    assert campaign.product.face_value_fen == 25_00
    assert len(campaign.funding_sources) == 2
    assert campaign_count(db) == 1

    # A bad edit is refused like a bad new campaign, and leaves the draft as it was.
    response = client.post(f"/campaigns/{campaign_id}/edit", data=cinema_form(db, name="改坏了", threshold="20"))
    assert response.status_code == 422
    assert "不能低于券面额" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Campaign, campaign_id).name == "优惠观影消费券（第一期）"

    # Once submitted, the edit page sends the maker back with a message, and a POST changes nothing.
    assert client.post(f"/campaigns/{campaign_id}/submit").status_code == 302
    response = client.get(f"/campaigns/{campaign_id}/edit")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/campaigns/{campaign_id}")
    assert "只有草稿状态的活动可以修改" in client.get(response.headers["Location"]).get_data(as_text=True)

    response = client.post(
        f"/campaigns/{campaign_id}/edit",
        data=cinema_form(db, name="提交后偷偷改名", face_value="50", **{"sources-0-amount": "1,000,000",
                                                                  "sources-1-amount": "500,000"}),
    )
    assert response.status_code == 302
    db.session.expire_all()
    campaign = db.session.get(Campaign, campaign_id)
    assert campaign.status == "pending_approval"
    assert campaign.name == "优惠观影消费券（第一期）"
    assert campaign.product.face_value_fen == 25_00
    assert [s.amount_fen for s in campaign.funding_sources] == [500_000_00, 250_000_00]


def test_approver_cannot_create_campaigns(client, db):
    make_world()
    login(client, "approver")
    assert client.get("/campaigns/new").status_code == 403
    assert client.post("/campaigns/new", data=cinema_form(db)).status_code == 403
    assert campaign_count(db) == 0
