"""Lists that scale (issue 17): the campaign and merchant lists search and page on the server, with
the count of what the filters select, and drafts can be deleted (audited) so test drafts do not stay
in every list and report."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, insert, select

from tests.factories import PASSWORD, make_campaign, make_world
from tests.test_campaign_editor import cinema_form
from tests.test_public_application import application as merchant_application
from voucher.campaigns.models import Campaign, FundingSource, Measure, VoucherProduct
from voucher.core.audit import AuditEntry
from voucher.core.clock import local_today
from voucher.merchants.models import Merchant


def login(client, username):
    client.post("/logout")
    assert client.post("/login", data={"username": username, "password": PASSWORD}).status_code == 302


def _bulk_campaigns(db, world, count: int) -> None:
    """`count` drafts in one statement: the list's paging, not the editor, is under test."""
    measure_id = db.session.scalar(select(Measure.id).where(Measure.number == 12))
    today = local_today()
    db.session.execute(insert(Campaign), [
        {"measure_id": measure_id, "name": f"批量草稿{n:04d}" + ("（观影）" if n % 10 == 0 else ""), "status": "draft",
         "instrument": "voucher", "categories": [], "districts": [], "valid_from": today,
         "valid_until": today + timedelta(days=30), "created_by_id": world.maker.id}
        for n in range(count)])
    db.session.commit()


def test_the_campaign_list_pages_and_searches_thousands_of_campaigns(client, db):
    world = make_world()
    _bulk_campaigns(db, world, 2400)
    login(client, "approver")
    first = client.get("/campaigns").get_data(as_text=True)
    assert "共 2,400 条" in first and "第 1–50 条" in first and "批量草稿2399" in first and "批量草稿2349" not in first
    assert 'aria-label="第 48 页"' in first and "下一页" in first
    last = client.get("/campaigns?page=48").get_data(as_text=True)
    assert "第 2,351–2,400 条" in last and "批量草稿0000" in last and "下一页" not in last
    assert "第 2,351–2,400 条" in client.get("/campaigns?page=999").get_data(as_text=True)  # past the end: the last
    assert client.get("/campaigns?page=abc").status_code == 200  # a typo is the first page, not an error
    # Search by words of the name (server side, with the count), combined with the status; links keep both.
    found = client.get("/campaigns?q=观影&status=draft").get_data(as_text=True)
    assert "共 240 条" in found and "批量草稿2390（观影）" in found and "批量草稿2399" not in found
    assert "q=%E8%A7%82%E5%BD%B1" in found and "status=draft" in found
    assert "没有符合条件的活动" in client.get("/campaigns?q=100%25").get_data(as_text=True)  # % is a character
    assert "共 2,400 条" in client.get("/campaigns?status=bogus").get_data(as_text=True)  # unknown: ignored


def test_a_maker_deletes_a_draft_and_nothing_else(client, db):
    world = make_world()
    login(client, "maker")
    client.post("/campaigns/new", data=cinema_form(db, name="测试草稿请删除"))
    draft = db.session.scalar(select(Campaign).where(Campaign.name == "测试草稿请删除"))
    page = client.get(f"/campaigns/{draft.id}").get_data(as_text=True)
    assert "删除草稿" in page and 'data-confirm="删除草稿「测试草稿请删除」' in page
    for username in ("approver", "finance", "auditor"):
        login(client, username)
        assert client.post(f"/campaigns/{draft.id}/delete").status_code == 403
    login(client, "maker")
    done = client.post(f"/campaigns/{draft.id}/delete", follow_redirects=True)
    assert "草稿「测试草稿请删除」已删除" in done.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Campaign, draft.id) is None
    assert db.session.scalar(select(func.count(FundingSource.id)).where(FundingSource.campaign_id == draft.id)) == 0
    assert db.session.scalar(select(func.count(VoucherProduct.id)).where(VoucherProduct.campaign_id == draft.id)) == 0
    deleted = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "campaign.delete"))
    assert deleted.before["name"] == "测试草稿请删除" and deleted.actor_id == world.maker.id
    again = client.post(f"/campaigns/{draft.id}/delete", follow_redirects=True)  # a double click: already gone
    assert again.status_code == 200 and "找不到该活动" in again.get_data(as_text=True)

    active, _ = make_campaign(world)
    refused = client.post(f"/campaigns/{active.id}/delete", follow_redirects=True)
    assert "只有草稿可以删除" in refused.get_data(as_text=True)
    assert db.session.get(Campaign, active.id) is not None


def test_the_merchant_list_pages_and_searches(client, db):
    world = make_world()
    existing = db.session.scalar(select(func.count(Merchant.id)))
    db.session.execute(insert(Merchant), [
        {"name": f"批量商户{n:04d}", "uscc": f"91320700BULK{n:06d}", "category": "餐饮", "status": "approved",
         "size_class": "small"} for n in range(1200)])
    db.session.commit()
    login(client, "approver")
    first = client.get("/merchants").get_data(as_text=True)
    assert f"共 {1200 + existing:,} 条" in first and "批量商户1199" in first
    found = client.get("/merchants?q=批量商户00").get_data(as_text=True)
    assert "共 100 条" in found and "批量商户0099" in found and "批量商户0100" not in found
    by_code = client.get("/merchants?q=91320700bulk000007").get_data(as_text=True)  # a USCC, any case
    assert "共 1 条" in by_code and "批量商户0007" in by_code
    assert "没有符合条件的商户" in client.get("/merchants?status=pending").get_data(as_text=True)
    assert world.merchant.name in client.get(f"/merchants?q={world.merchant.name}").get_data(as_text=True)


def test_the_approver_sees_how_much_waits_in_the_navigation(client, db):
    make_world()
    login(client, "maker")
    client.post("/campaigns/new", data=cinema_form(db, name="待审批的观影券"))
    submitted = db.session.scalar(select(Campaign).where(Campaign.name == "待审批的观影券"))
    client.post(f"/campaigns/{submitted.id}/submit")
    assert 'class="count"' not in client.get("/campaigns").get_data(as_text=True)  # the maker approves nothing
    client.post("/logout")
    client.post("/merchants/apply", data=merchant_application(40, "waiting40"))
    login(client, "approver")
    nav = client.get("/campaigns").get_data(as_text=True)
    assert '待审批 <span class="count" aria-label="2 项">2</span>' in nav
    client.post(f"/campaigns/{submitted.id}/approve")
    assert '<span class="count" aria-label="1 项">1</span>' in client.get("/campaigns").get_data(as_text=True)
