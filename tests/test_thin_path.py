"""The walking skeleton's thin path, end to end through the pages, as the four users would walk it."""
from __future__ import annotations

import io
import re
from datetime import timedelta

import zxingcpp
from PIL import Image
from sqlalchemy import func, select

from tests.factories import PASSWORD, make_world
from voucher.campaigns.models import Campaign, Measure
from voucher.core.clock import local_today
from voucher.reports.consistency import verify_ledger
from voucher.vouchers import tokens
from voucher.vouchers.models import Voucher


def login(client, username):
    client.post("/logout")
    response = client.post("/login", data={"username": username, "password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)


def test_campaign_to_counter(client, db, app):
    make_world()
    measure_1 = db.session.scalar(select(Measure.id).where(Measure.number == 1))
    today = local_today()

    # 1. The maker creates a campaign under measure 1 with 满100减20 and submits it.
    login(client, "maker")
    response = client.post("/campaigns/new", data={
        "measure_id": measure_1, "name": "市区餐饮零售消费券", "instrument": "voucher",
        "sources-0-kind": "municipal_finance", "sources-0-name": "市财政", "sources-0-amount": "10,000,000",
        "sources-0-status": "in_hand", "sources-0-share": "1", "face_value": "20", "threshold": "100",
        "categories": ["餐饮", "零售"], "districts": ["海州区", "连云区"],
        "valid_from": today.isoformat(), "valid_until": (today + timedelta(days=30)).isoformat(),
    })
    assert response.status_code == 302
    campaign_id = db.session.scalar(select(Campaign.id))
    assert client.post(f"/campaigns/{campaign_id}/submit").status_code == 302

    # The maker cannot approve (not even by posting directly): the role is checked on the server.
    assert client.post(f"/campaigns/{campaign_id}/approve").status_code == 403

    # An approver (not the maker) approves; the budget is funded in the ledger.
    login(client, "approver")
    assert "市区餐饮零售消费券" in client.get("/approvals").get_data(as_text=True)
    assert client.post(f"/campaigns/{campaign_id}/approve").status_code == 302
    page = client.get(f"/campaigns/{campaign_id}").get_data(as_text=True)
    assert "进行中" in page and "10,000,000.00 元" in page

    # The maker schedules a round of 500 and opens it.
    login(client, "maker")
    opens = (today - timedelta(days=1)).isoformat() + "T08:00"
    response = client.post(f"/campaigns/{campaign_id}/releases", data={
        "name": "第一轮", "quantity": "500", "per_person_limit": "1", "opens_at": opens})
    assert response.status_code == 302
    release_id = db.session.get(Campaign, campaign_id).releases[0].id
    assert client.post(f"/releases/{release_id}/open").status_code == 302
    assert db.session.scalar(select(func.count(Voucher.id)).where(Voucher.release_id == release_id)) == 500

    # 2. A citizen identifies with a phone number and a one-time code, claims, and sees the QR.
    citizen = app.test_client()
    page = citizen.post("/c/login", data={"p-phone": "138 1234 5678"}).get_data(as_text=True)
    code = re.search(r'class="dev-code">(\d{6})<', page).group(1)
    response = citizen.post("/c/login", data={"c-phone": "13812345678", "c-code": code})
    assert response.status_code == 302
    assert "剩余" in citizen.get("/c/").get_data(as_text=True)
    response = citizen.post(f"/c/releases/{release_id}/claim")
    assert response.status_code == 302
    mine = citizen.get("/c/vouchers").get_data(as_text=True)
    voucher = db.session.scalar(select(Voucher).where(Voucher.citizen_id.is_not(None)))
    display = "-".join(voucher.code[i:i + 4] for i in range(0, 11, 4))
    assert display in mine and "满100减20" in mine
    assert "13812345678" not in mine

    qr = citizen.get(f"/c/vouchers/{voucher.id}/qr.png")
    assert qr.status_code == 200 and qr.mimetype == "image/png"
    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(qr.data)))
    token = decoded[0].text
    assert tokens.verify(token, app.config["QR_SIGNING_KEYS"]) == voucher.code
    assert "1381234" not in token  # no personal data in the payload

    # 3. The cashier scans it against a 150-yuan order: 20 off, shown in large type.
    login(client, "cashier")
    page = client.get("/counter").get_data(as_text=True)
    assert "autofocus" in page
    response = client.post("/counter", data={"code": token, "order_amount": "150", "idempotency_key": "k1"})
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "核销成功" in page and "优惠 ¥20.00" in page and "¥130.00" in page

    # 4. The dashboard shows the city's budget, the vouchers, driven consumption and leverage, with units.
    login(client, "finance")
    page = client.get("/dashboard").get_data(as_text=True)
    for label, expected in (("到位预算", "10,000,000.00 元"), ("领取", "1 张"), ("发放面值", "20.00 元"),
                            ("核销笔数", "1 笔"), ("拉动消费", "150.00 元"), ("杠杆率（按发放）", "7.50 倍")):
        figure, unit = expected.split(" ")
        assert f"<dt>{label}</dt><dd><strong>{figure}</strong> {unit}</dd>" in page, label
    assert verify_ledger() == []
