"""Risk flags: unusual patterns are flagged for a reviewer, never blocked; a re-scan changes nothing."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from tests.factories import PASSWORD, make_campaign, make_citizen, make_world
from voucher.core.clock import LOCAL_TZ, local_today
from voucher.counter import risk
from voucher.counter.redemption import redeem
from voucher.merchants.models import RiskFlag
from voucher.settlement.batches import open_flags_by_merchant
from voucher.vouchers.services import claim


def at_local(day, hour, minute=0) -> datetime:
    """A naive-UTC instant for a local (Beijing) wall-clock time."""
    local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=LOCAL_TZ)
    return local.astimezone(timezone.utc).replace(tzinfo=None)


def redeem_many(db, world, release, orders, *, citizen=None, when):
    for i, amount in enumerate(orders):
        person = citizen or make_citizen(uuid.uuid4().hex)
        voucher = claim(release.id, person, now=when(i) - timedelta(minutes=1))
        redeem(voucher.code, amount, world.cashier, now=when(i))
        db.session.commit()


@pytest.fixture
def shop(db):
    world = make_world()
    day = local_today() - timedelta(days=1)
    _, release = make_campaign(world, quantity=60, per_person_limit=5, valid_from=day - timedelta(days=20))
    return world, release, day


def kinds(db, day):
    return {f.kind for f in db.session.scalars(select(RiskFlag).where(RiskFlag.day == day))}


def test_a_quiet_normal_day_raises_nothing(db, shop):
    world, release, day = shop
    redeem_many(db, world, release, [130_00, 210_00, 180_00], when=lambda i: at_local(day, 12, i))
    assert risk.scan(day) == [] and kinds(db, day) == set()


def test_each_pattern_is_flagged_once(db, shop, client):
    world, release, day = shop
    # 25 redemptions in a day with no history: far above the norm; all just above the 100-yuan threshold.
    redeem_many(db, world, release, [100_00 + i for i in range(22)], when=lambda i: at_local(day, 10, i))
    repeat = make_citizen("rep")
    redeem_many(db, world, release, [300_00, 300_00, 300_00], citizen=repeat, when=lambda i: at_local(day, 14, i))
    flags = risk.scan(day)
    db.session.commit()
    assert {f.kind for f in flags} == {"velocity", "repeat_citizen", "threshold_cluster"}
    velocity = next(f for f in flags if f.kind == "velocity")
    assert velocity.detail["redemptions"] == 25
    # A re-scan adds nothing; a late-night redemption the next day is its own flag.
    assert risk.scan(day) == []
    next_day = day + timedelta(days=1)
    redeem_many(db, world, release, [150_00], when=lambda i: at_local(next_day, 2, 30))
    assert {f.kind for f in risk.scan(next_day)} == {"off_hours"}
    db.session.commit()
    # Nothing was blocked: every redemption went through.
    assert db.session.scalar(select(func.count()).select_from(RiskFlag)) == 4
    # A reviewer clears a flag with a conclusion; an empty one is refused.
    client.post("/login", data={"username": "approver", "password": PASSWORD})
    page = client.get("/risk").get_data(as_text=True)
    assert "订单金额集中在门槛附近" in page and "同一市民反复核销" in page
    client.post(f"/risk/{velocity.id}/clear", data={"reason": ""})
    db.session.expire_all()
    assert db.session.get(RiskFlag, velocity.id).status == "open"
    client.post(f"/risk/{velocity.id}/clear", data={"reason": "店庆促销，客流属实"})
    db.session.expire_all()
    assert db.session.get(RiskFlag, velocity.id).status == "cleared"
    assert open_flags_by_merchant() == {world.merchant.id: 3}


def test_cli_scan(app, db, shop):
    world, release, day = shop
    redeem_many(db, world, release, [150_00], when=lambda i: at_local(day, 3, 0))
    result = app.test_cli_runner().invoke(args=["risk", "scan", "--date", day.isoformat()])
    assert result.exit_code == 0 and "新增 1 条" in result.output and "非营业时间核销" in result.output
    bad = app.test_cli_runner().invoke(args=["risk", "scan", "--date", "2026-13-01"])
    assert bad.exit_code == 2
