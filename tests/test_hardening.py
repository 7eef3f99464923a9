"""Refusals found in review: each answers 4xx with a reason and changes nothing."""
from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.factories import PASSWORD, claim_one, make_campaign, make_citizen, make_world
from voucher.api import auth
from voucher.api.models import Partner
from voucher.core.clock import local_today, utcnow
from voucher.core.errors import ClaimLimitReached, InvalidTransition, ReleaseNotOpen
from voucher.counter.redemption import redeem, reverse
from voucher.merchants import terminals
from voucher.merchants.models import Redemption
from voucher.reports.consistency import verify_ledger
from voucher.vouchers import closing, lottery, releases
from voucher.vouchers.models import Voucher
from voucher.vouchers.services import claim


def signed(client, body: dict, nonce: str, *, signature: str | None = None, timestamp: str | None = None):
    raw = json.dumps(body).encode()
    timestamp = timestamp or str(int(time.time()))
    sig = signature or auth.signature(auth.partner_secret("pk_h"), "POST", "/api/v1/channel/claims", timestamp, nonce,
                                      raw)
    return client.post("/api/v1/channel/claims", data=raw, content_type="application/json", headers={
        "X-Partner-Key": "pk_h", "X-Timestamp": timestamp, "X-Nonce": nonce, "X-Signature": sig})


def test_a_refused_signed_request_cannot_be_replayed_later(client, db):
    world = make_world()
    campaign, _ = make_campaign(world, quantity=1)
    db.session.add(Partner(name="渠道", key_id="pk_h"))
    later = releases.create_release(campaign, name="晚场", quantity=2, per_person_limit=1,
                                    opens_at=utcnow() - timedelta(minutes=1), actor=world.maker)
    db.session.commit()
    body = {"release_id": later.id, "citizen": {"phone": "13811112222"}}
    assert signed(client, body, "n-1").status_code == 409  # not open yet
    releases.open_release(later.id, world.maker)
    db.session.commit()
    response = signed(client, body, "n-1")
    assert response.status_code == 401 and "随机数已使用" in response.get_json()["errors"][0]["message"]
    assert db.session.scalar(select(func.count(Voucher.id)).where(Voucher.citizen_id.is_not(None))) == 0


@pytest.mark.parametrize("headers", [
    {"X-Signature": "é" * 64},
    {"X-Timestamp": "²"},
    {"X-Timestamp": "9" * 5000},
])
def test_odd_signature_headers_are_refused_not_crashed(client, db, headers):
    world = make_world()
    _, release = make_campaign(world, quantity=1)
    db.session.add(Partner(name="渠道", key_id="pk_h"))
    db.session.commit()
    response = signed(client, {"release_id": release.id, "citizen": {"phone": "13811112222"}}, uuid.uuid4().hex,
                      signature=headers.get("X-Signature"), timestamp=headers.get("X-Timestamp"))
    assert response.status_code == 401


def test_non_ascii_tokens_and_huge_numbers_are_4xx(client, db, app):
    world = make_world()
    _, release = make_campaign(world, quantity=2)
    voucher = claim_one(release, make_citizen())
    _, token = terminals.issue_terminal_token(world.cashier.store_id, "A", world.manager.id)
    db.session.commit()
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "k"}
    forged = f"LYGV1.dev1.{voucher.code}.签名"
    assert client.post("/api/v1/redemptions", json={"code": forged, "order_amount_fen": 100_00},
                       headers=headers).status_code == 422
    assert client.post("/api/v1/redemptions", json={"code": voucher.code, "order_amount_fen": 10**20},
                       headers=headers).status_code == 422
    assert client.get("/api/v1/redemptions/99999999999999999999", headers=headers).status_code == 404
    assert client.get("/c/releases/99999999999999999999/lottery").status_code == 404
    client.post("/login", data={"username": "cashier", "password": PASSWORD})
    assert client.post("/counter", data={"code": forged, "order_amount": "150"}).status_code == 422
    response = client.post("/counter", data={"code": voucher.code, "order_amount": "150", "idempotency_key": "x" * 100})
    assert response.status_code == 422
    assert db.session.scalar(select(func.count(Redemption.id))) == 0


def test_out_of_range_form_values_are_refused(client, db):
    world = make_world()
    campaign, _ = make_campaign(world, quantity=1)
    client.post("/login", data={"username": "maker", "password": PASSWORD})
    response = client.post(f"/campaigns/{campaign.id}/releases", data={
        "name": "远古", "quantity": "1", "per_person_limit": "1", "opens_at": "0001-01-01T00:00"})
    assert response.status_code == 422 and "2000 年到 2100 年" in response.get_data(as_text=True)


def test_no_reversal_after_the_campaign_closed(db):
    world = make_world()
    campaign, release = make_campaign(world, quantity=2)
    voucher = claim_one(release, make_citizen())
    result = redeem(voucher.code, 150_00, world.cashier)
    db.session.commit()
    closing.close_campaign(campaign.id, world.approver, "到期")
    db.session.commit()
    with pytest.raises(InvalidTransition, match="活动已结束"):
        reverse(result.redemption.id, reason="误操作", cashier=world.cashier)
    db.session.rollback()
    assert verify_ledger() == []


def test_lottery_entry_respects_the_campaign_wide_limit(db):
    world = make_world()
    campaign, release = make_campaign(world, quantity=3, per_person_limit=1)
    campaign.per_person_limit = 1
    db.session.commit()
    citizen = make_citizen()
    claim_one(release, citizen)
    draw_round = releases.create_release(campaign, name="摇号", quantity=2, per_person_limit=1,
                                         opens_at=utcnow() - timedelta(minutes=1), actor=world.maker, mode="lottery")
    releases.open_release(draw_round.id, world.maker)
    db.session.commit()
    with pytest.raises(ClaimLimitReached, match="本活动每人限领"):
        lottery.enter(draw_round.id, citizen)


def test_no_claims_after_the_campaign_ended(db):
    world = make_world()
    _, release = make_campaign(world, quantity=2, valid_until=local_today() + timedelta(days=3))
    with pytest.raises(ReleaseNotOpen, match="已过有效期"):
        claim(release.id, make_citizen(), now=utcnow() + timedelta(days=5))


def test_flask_users_create_makes_a_staff_account_without_the_password_on_the_command_line(app, db):
    from sqlalchemy import select

    from voucher.accounts.models import User

    runner = app.test_cli_runner()
    made = runner.invoke(args=["users", "create", "first_admin", "--role", "admin", "--name", "系统管理员"],
                         env={"NEW_USER_PASSWORD": "a-long-enough-secret"})
    assert made.exit_code == 0 and "已创建用户 first_admin（系统管理员）" in made.output
    user = db.session.scalar(select(User).where(User.username == "first_admin"))
    assert user.role == "admin" and user.check_password("a-long-enough-secret")
    assert "a-long-enough-secret" not in user.password_hash
    prompted = runner.invoke(args=["users", "create", "auditor2", "--role", "auditor"], input="short\nshort\n")
    assert prompted.exit_code == 2 and "密码至少需要 10 位" in prompted.output
    again = runner.invoke(args=["users", "create", "first_admin", "--role", "admin"], env={"NEW_USER_PASSWORD": "x" * 12})
    assert again.exit_code == 2 and "用户名 first_admin 已存在" in again.output
    cashier = runner.invoke(args=["users", "create", "c1", "--role", "cashier"], env={"NEW_USER_PASSWORD": "x" * 12})
    assert cashier.exit_code == 2  # a cashier belongs to a store: added on the merchant's pages
