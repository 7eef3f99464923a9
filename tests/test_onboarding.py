"""Merchant onboarding: apply, the bureau decides, the manager runs its own cashiers and terminals."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select, text

from tests.factories import PASSWORD, claim_one, make_campaign, make_citizen, make_world
from voucher.accounts.models import User
from voucher.core.audit import AuditEntry
from voucher.core.uscc import check_char
from voucher.merchants.models import Merchant, StoreTerminal
from voucher.vouchers import tokens

USCC = "91320706MA2NEW001" + check_char("91320706MA2NEW001")


def application(**overrides):
    data = {
        "name": "港城新开张餐厅", "uscc": USCC, "category": "餐饮",
        "stores-0-name": "新开张（解放路店）", "stores-0-district": "海州区", "stores-0-address": "解放路 1 号",
        "bank_account_name": "连云港港城新开张餐厅", "bank_name": "中国银行连云港分行",
        "bank_account_no": "6216 6100 0001 2345 678", "manager_username": "newshop",
        "manager_display_name": "王店长", "manager_password": "shop-pass-99", "contact_phone": "13800138000",
    }
    data.update(overrides)
    return data


def login(client, username, password=PASSWORD):
    client.post("/logout")
    return client.post("/login", data={"username": username, "password": password})


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"uscc": USCC[:-1] + ("0" if USCC[-1] != "0" else "1")}, "统一社会信用代码不正确"),
        ({"uscc": "91320706MA2NEW00"}, "统一社会信用代码不正确"),
        ({"stores-0-name": ""}, "请至少填写一个门店"),
        ({"stores-0-district": "南京市"}, "区县不正确"),
        ({"bank_account_no": "12ab"}, "结算账号应为 8 到 34 位数字"),
        ({"manager_password": "short"}, "密码至少需要 10 位"),
    ],
)
def test_bad_applications_are_refused_and_create_nothing(client, db, overrides, message):
    response = client.post("/merchants/apply", data=application(**overrides))
    assert response.status_code == 422 and message in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count(Merchant.id))) == 0
    assert db.session.scalar(select(func.count(User.id))) == 0


def test_application_waits_for_the_bureau_then_the_manager_runs_the_shop(client, db, app):
    world = make_world()
    response = client.post("/merchants/apply", data=application())
    assert response.status_code == 200 and "申请已提交" in response.get_data(as_text=True)
    merchant = db.session.scalar(select(Merchant).where(Merchant.uscc == USCC))
    assert merchant.status == "pending" and merchant.bank_account_no == "6216610000012345678"
    # At rest, in the audit log and on the bureau's page, never the whole number.
    stored = db.session.scalar(text("SELECT bank_account_no FROM merchants WHERE id = :id"), {"id": merchant.id})
    assert stored.startswith("v1.") and "6216610000012345678" not in stored
    audited = db.session.execute(select(AuditEntry.before, AuditEntry.after)).all()
    assert audited and "6216610000012345678" not in str(audited)
    # A second application with the same code is refused.
    again = client.post("/merchants/apply", data=application(manager_username="other"))
    assert again.status_code == 422 and "已申请或已入驻" in again.get_data(as_text=True)

    # Until approved the manager cannot sign in.
    assert login(client, "newshop", "shop-pass-99").status_code == 401
    # The maker may not decide; the approver may.
    login(client, "maker")
    assert client.post(f"/merchants/{merchant.id}/approve").status_code == 403
    login(client, "approver")
    pending = client.get("/merchants?status=pending").get_data(as_text=True)
    assert "港城新开张餐厅" in pending and "6216 **** **** 5678" in pending and "6216610000012345678" not in pending
    assert client.post(f"/merchants/{merchant.id}/approve").status_code == 302
    db.session.expire_all()
    assert db.session.get(Merchant, merchant.id).status == "approved"

    assert login(client, "newshop", "shop-pass-99").status_code == 302
    store = merchant.stores[0]
    # A cashier for another merchant's store is refused, and nothing is created.
    other_store = world.cashier.store_id
    response = client.post("/merchant/cashiers", data={"store_id": other_store, "username": "sneaky",
                                                        "password": "pass-word-1"})
    assert response.status_code == 403 and "只能管理本商户的门店" in response.get_data(as_text=True)
    assert db.session.scalar(select(User.id).where(User.username == "sneaky")) is None
    response = client.post("/merchant/cashiers", data={"store_id": store.id, "username": "newcashier",
                                                        "display_name": "小新", "password": "pass-word-1"})
    assert response.status_code == 302
    cashier = db.session.scalar(select(User).where(User.username == "newcashier"))
    assert cashier.store_id == store.id and cashier.role == "cashier"

    # A terminal token is shown once, works on the API, and stops working when revoked.
    page = client.post("/merchant/terminals", data={"store_id": store.id, "label": "一号机"}).get_data(as_text=True)
    token = re.search(r"(st_[A-Za-z0-9_-]{20,})", page).group(1)
    assert token not in client.get("/merchant/staff").get_data(as_text=True)
    terminal = db.session.scalar(select(StoreTerminal))
    assert terminal.token_hash != token and token not in terminal.token_hash
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "t1"}
    _, release = make_campaign(world, quantity=3)
    voucher = claim_one(release, make_citizen())
    qr = tokens.sign(voucher.code, app.config["QR_SIGNING_KEYS"], app.config["QR_ACTIVE_KEY_ID"])
    api = app.test_client()
    assert api.post("/api/v1/redemptions", json={"code": qr, "order_amount_fen": 100_00}, headers=headers).status_code == 201
    assert client.post(f"/merchant/terminals/{terminal.id}/revoke").status_code == 302
    response = api.post("/api/v1/redemptions", json={"code": qr, "order_amount_fen": 100_00},
                        headers={**headers, "Idempotency-Key": "t2"})
    assert response.status_code == 401


def test_rejection_needs_and_keeps_a_reason(client, db):
    make_world()
    client.post("/merchants/apply", data=application())
    merchant = db.session.scalar(select(Merchant).where(Merchant.uscc == USCC))
    login(client, "approver")
    client.post(f"/merchants/{merchant.id}/reject", data={"reason": ""})
    db.session.expire_all()
    assert db.session.get(Merchant, merchant.id).status == "pending"
    client.post(f"/merchants/{merchant.id}/reject", data={"reason": "营业执照经营范围不含餐饮"})
    db.session.expire_all()
    rejected = db.session.get(Merchant, merchant.id)
    assert rejected.status == "rejected" and rejected.decision_note == "营业执照经营范围不含餐饮"
    assert "营业执照经营范围不含餐饮" in client.get("/merchants").get_data(as_text=True)
    assert login(client, "newshop", "shop-pass-99").status_code == 401


def test_manager_cannot_touch_another_merchants_cashier(client, db):
    world = make_world()
    login(client, "manager")
    response = client.post(f"/merchant/cashiers/{world.cashier_car.id}/deactivate")
    assert response.status_code == 403
    db.session.expire_all()
    assert db.session.get(User, world.cashier_car.id).is_active_account is True
    assert client.post(f"/merchant/cashiers/{world.cashier.id}/deactivate").status_code == 302
    db.session.expire_all()
    assert db.session.get(User, world.cashier.id).is_active_account is False
    assert login(client, "cashier").status_code == 401
