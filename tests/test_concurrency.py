"""Invariants under concurrent requests: one redemption per voucher, no over-issue, per-person limits.

Each worker is its own transaction on its own connection, released together by a barrier. Runs on both
backends; PostgreSQL is the one that matters (SQLite serialises writers by design).
"""
from __future__ import annotations

import threading
from collections import Counter

from sqlalchemy import func, select

from tests.factories import claim_one, make_campaign, make_citizen, make_world
from voucher.core.db import db as _db
from voucher.core.errors import DomainError
from voucher.counter.redemption import redeem
from voucher.merchants import terminals
from voucher.merchants.models import Redemption
from voucher.reports.consistency import verify_ledger
from voucher.vouchers.models import Citizen, Voucher
from voucher.vouchers.services import claim, claim_by_phone


def _commit_after(work):
    result = work()
    _db.session.commit()
    return result


def run_at_once(app, works: list, transaction=_commit_after) -> list:
    """Run each work() in its own thread and transaction (`transaction(work)` commits it), all released
    together by a barrier; each outcome is the work's result, a domain error's code, or "unexpected: ..."
    (what a person would have got as a 500)."""
    # End the test's own transaction first: on SQLite every transaction holds the write lock.
    _db.session.commit()
    barrier = threading.Barrier(len(works))
    outcomes: list = [None] * len(works)

    def worker(i: int) -> None:
        with app.app_context():
            barrier.wait()
            try:
                outcomes[i] = transaction(works[i])
            except DomainError as error:
                _db.session.rollback()
                outcomes[i] = error.code
            except Exception as error:  # noqa: BLE001 - recorded so the test shows it
                _db.session.rollback()
                outcomes[i] = f"unexpected: {error!r}"
            finally:
                _db.session.remove()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(works))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes


def run_concurrently(app, count: int, work) -> list:
    """Run work(i) in `count` threads at once; return each outcome (see run_at_once)."""
    return run_at_once(app, [lambda i=i: work(i) for i in range(count)])


def test_one_voucher_many_counters(app, db):
    world = make_world()
    _, release = make_campaign(world, quantity=5)
    voucher = claim_one(release, make_citizen())
    cashier_id, code = world.cashier.id, voucher.code

    def work(i):
        from voucher.accounts.models import User

        return redeem(code, 100_00 + i, _db.session.get(User, cashier_id), idempotency_key=f"k{i}").redemption.id

    outcomes = run_concurrently(app, 16, work)
    kinds = Counter("ok" if isinstance(o, int) else o for o in outcomes)
    assert kinds == {"ok": 1, "voucher_already_redeemed": 15}, outcomes
    assert db.session.scalar(select(func.count(Redemption.id))) == 1
    assert verify_ledger() == []


def test_retries_with_one_key_redeem_once(app, db):
    world = make_world()
    _, release = make_campaign(world, quantity=5)
    voucher = claim_one(release, make_citizen())
    cashier_id, code = world.cashier.id, voucher.code

    def work(i):
        from voucher.accounts.models import User

        return redeem(code, 100_00, _db.session.get(User, cashier_id), idempotency_key="same").redemption.id

    outcomes = run_concurrently(app, 8, work)
    assert len(set(outcomes)) == 1 and isinstance(outcomes[0], int), outcomes
    assert db.session.scalar(select(func.count(Redemption.id))) == 1
    assert verify_ledger() == []


def test_flash_crowd_never_over_issues(app, db):
    world = make_world()
    _, release = make_campaign(world, quantity=10)
    citizen_ids = [make_citizen(f"{i:02d}").id for i in range(40)]
    release_id = release.id

    def work(i):
        return claim(release_id, _db.session.get(Citizen, citizen_ids[i])).id

    outcomes = run_concurrently(app, 40, work)
    kinds = Counter("won" if isinstance(o, int) else o for o in outcomes)
    assert kinds == {"won": 10, "sold_out": 30}, outcomes
    assert len(set(o for o in outcomes if isinstance(o, int))) == 10
    claimed = db.session.scalar(select(func.count(Voucher.id)).where(Voucher.citizen_id.is_not(None)))
    assert claimed == 10
    assert verify_ledger() == []


def test_per_person_limit_holds_under_concurrency(app, db):
    world = make_world()
    _, release = make_campaign(world, quantity=50, per_person_limit=2)
    citizen_id = make_citizen().id
    release_id = release.id

    def work(_):
        return claim(release_id, _db.session.get(Citizen, citizen_id)).id

    outcomes = run_concurrently(app, 12, work)
    kinds = Counter("won" if isinstance(o, int) else o for o in outcomes)
    assert kinds == {"won": 2, "claim_limit_reached": 10}, outcomes
    assert db.session.scalar(select(func.count(Voucher.id)).where(Voucher.citizen_id == citizen_id)) == 2


def test_per_person_limit_holds_when_channels_claim_for_one_phone_at_once(app, db):
    """A channel claim relies on the citizen's upsert for the person's lock (it takes no second one):
    twelve claims for one phone number at once, new to the system, still give exactly the limit."""
    world = make_world()
    _, release = make_campaign(world, quantity=50, per_person_limit=2)
    release_id = release.id

    def work(_):
        return claim_by_phone(release_id, "139 1234 5678", actor_label="渠道").id

    outcomes = run_concurrently(app, 12, work)
    kinds = Counter("won" if isinstance(o, int) else o for o in outcomes)
    assert kinds == {"won": 2, "claim_limit_reached": 10}, outcomes
    assert db.session.scalar(select(func.count(Citizen.id))) == 1
    assert db.session.scalar(select(func.count(Voucher.id)).where(Voucher.citizen_id.is_not(None))) == 2


def test_parallel_http_requests_get_definite_answers(app, db):
    """Many parallel requests through the JSON API: claims by signed partner requests, then two
    terminals racing for each voucher. Every answer is definite (never a 500), nothing is over-issued
    or redeemed twice, and the ledger stays clean."""
    import json
    import time
    import uuid

    from voucher.api import auth
    from voucher.api.models import Partner

    world = make_world()
    _, release = make_campaign(world, quantity=8)
    db.session.add(Partner(name="并发测试渠道", key_id="pk_conc"))
    _, token_a = terminals.issue_terminal_token(world.cashier.store_id, "A", world.manager.id)
    _, token_b = terminals.issue_terminal_token(world.cashier.store_id, "B", world.manager.id)
    db.session.commit()
    secret, release_id = auth.partner_secret("pk_conc"), release.id

    def claim_over_http(i):
        body = json.dumps({"release_id": release_id, "citizen": {"phone": f"1360000{i:04d}"}}).encode()
        timestamp, nonce = str(int(time.time())), uuid.uuid4().hex
        signature = auth.signature(secret, "POST", "/api/v1/channel/claims", timestamp, nonce, body)
        response = app.test_client().post("/api/v1/channel/claims", data=body, content_type="application/json",
                                          headers={"X-Partner-Key": "pk_conc", "X-Timestamp": timestamp,
                                                   "X-Nonce": nonce, "X-Signature": signature})
        payload = response.get_json()
        return payload["data"]["voucher"]["qr_token"] if response.status_code == 201 else payload["errors"][0]["code"]

    outcomes = run_concurrently(app, 24, claim_over_http)
    won = [o for o in outcomes if o.startswith("LYGV1.")]
    assert len(won) == 8 and Counter(o for o in outcomes if o not in won) == {"sold_out": 16}, outcomes

    def redeem_over_http(i):
        qr, token = won[i // 2], (token_a, token_b)[i % 2]
        response = app.test_client().post(
            "/api/v1/redemptions", json={"code": qr, "order_amount_fen": 150_00},
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": f"race-{i}"})
        return "ok" if response.status_code == 201 else response.get_json()["errors"][0]["code"]

    outcomes = run_concurrently(app, 16, redeem_over_http)
    assert Counter(outcomes) == {"ok": 8, "voucher_already_redeemed": 8}, outcomes
    assert db.session.scalar(select(func.count(Redemption.id))) == 8
    assert verify_ledger() == []
