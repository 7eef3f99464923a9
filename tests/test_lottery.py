"""Lottery rounds (commit and reveal): the commitment is public before the draw, the seed after it, and
anyone can recompute the winners from the public page alone."""
from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.factories import make_campaign, make_citizen, make_world
from voucher.campaigns.models import LotteryEntry, Release
from voucher.core.clock import utcnow
from voucher.core.errors import ClaimLimitReached, InvalidTransition, ReleaseNotOpen
from voucher.ledger.models import AccountKind
from voucher.ledger.services import campaign_balances
from voucher.reports.consistency import verify_ledger
from voucher.vouchers import lottery, releases
from voucher.vouchers.models import Voucher
from voucher.vouchers.services import claim

FACE = 20_00


def balances(campaign_id: int) -> dict[AccountKind, int]:
    return dict(campaign_balances([campaign_id])[campaign_id])


def lottery_round(db, world, campaign, quantity: int = 3) -> Release:
    release = releases.create_release(
        campaign, name="摇号", quantity=quantity, per_person_limit=1, opens_at=utcnow() - timedelta(minutes=1),
        actor=world.maker, mode="lottery",
    )
    releases.open_release(release.id, world.maker)
    db.session.commit()
    return release


def published(page: str) -> dict:
    """What an outsider reads off the public page."""
    def numbers(text: str) -> list[int]:
        return [int(n) for n in re.findall(r"\d+", text)]

    commitment = re.search(r"承诺值</dt>\s*<dd>\s*<code[^>]*>\s*([0-9a-f]{64})\s*</code>", page)
    seed = re.search(r"种子</dt>\s*<dd>\s*<code[^>]*>\s*([0-9a-f]+)\s*</code>", page)
    winners = re.search(r"中签编号（(\d+)）</h2>\s*<p[^>]*>([^<]*)</p>", page)
    entries = re.search(r"全部报名编号</h2>\s*<p[^>]*>([^<]*)</p>", page)
    return {
        "commitment": commitment.group(1) if commitment else None,
        "seed": seed.group(1) if seed else None,
        "winners": numbers(winners.group(2)) if winners else None,
        "winner_count": int(winners.group(1)) if winners else None,
        "entries": numbers(entries.group(1)) if entries else [],
    }


def my_winners(seed: str, entry_numbers: list[int], quantity: int) -> set[int]:
    """The published rule, written independently of the product: rank by SHA-256("seed:n") in hex."""
    digests = {n: hashlib.sha256(f"{seed}:{n}".encode("utf-8")).hexdigest() for n in entry_numbers}
    return set(sorted(entry_numbers, key=lambda n: (digests[n], n))[:quantity])


def test_draw_is_verifiable_from_the_public_page(client, db):
    world = make_world()
    campaign, first_come = make_campaign(world, quantity=5)
    release = lottery_round(db, world, campaign)
    release_id, seed, commitment = release.id, release.seed, release.seed_commitment
    assert release.mode == "lottery" and release.status == "open"
    assert commitment == hashlib.sha256(seed.encode()).hexdigest()
    assert balances(campaign.id)[AccountKind.RESERVED] == (5 + 3) * FACE

    # Before the draw, anyone (no login) sees the commitment but not the seed.
    response = client.get(f"/c/releases/{release_id}/lottery")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert commitment in page and "开奖后公布" in page
    assert seed not in page
    assert published(page)["seed"] is None
    # A first-come round has no lottery page.
    assert client.get(f"/c/releases/{first_come.id}/lottery").status_code == 404

    citizens = [make_citizen(str(i)) for i in range(1, 9)]
    for citizen in citizens:
        lottery.enter(release_id, citizen)
    db.session.commit()
    with pytest.raises(ClaimLimitReached):
        lottery.enter(release_id, citizens[0])
    db.session.rollback()
    assert db.session.scalar(select(func.count(LotteryEntry.id)).where(LotteryEntry.release_id == release_id)) == 8
    # Entering is the only way in: a first-come claim on a lottery round is refused.
    with pytest.raises(ReleaseNotOpen) as refused:
        claim(release_id, citizens[0])
    assert "摇号" in refused.value.message
    db.session.rollback()
    # Nor can a first-come round be entered.
    with pytest.raises(ReleaseNotOpen):
        lottery.enter(first_come.id, citizens[0])
    db.session.rollback()
    assert db.session.scalar(select(func.count(Voucher.id)).where(Voucher.citizen_id.is_not(None))) == 0

    chosen = lottery.draw(release_id, world.approver)
    db.session.commit()
    assert len(chosen) == 3

    # Exactly three winners, each holding one claimed voucher of this round; the others hold none.
    entries = {e.id: e for e in db.session.scalars(select(LotteryEntry).where(LotteryEntry.release_id == release_id))}
    won = db.session.scalars(select(Voucher).where(Voucher.release_id == release_id, Voucher.citizen_id.is_not(None))).all()
    assert len(won) == 3
    assert all(v.status == "claimed" and v.claimed_at is not None for v in won)
    holders = [v.citizen_id for v in won]
    assert len(set(holders)) == 3
    winner_citizens = {entries[n].citizen_id for n in chosen}
    assert set(holders) == winner_citizens
    assert {n for n, e in entries.items() if e.won} == set(chosen)
    for citizen in citizens:
        held = db.session.scalar(select(func.count(Voucher.id)).where(Voucher.citizen_id == citizen.id))
        assert held == (1 if citizen.id in winner_citizens else 0)
    release = db.session.get(Release, release_id)
    assert release.status == "closed" and release.drawn_at is not None

    # The public page now shows the seed. Re-verify from the page alone.
    page = client.get(f"/c/releases/{release_id}/lottery").get_data(as_text=True)
    public = published(page)
    assert public["seed"] == seed
    assert public["commitment"] == commitment
    assert hashlib.sha256(public["seed"].encode()).hexdigest() == public["commitment"]
    assert sorted(public["entries"]) == sorted(entries)
    assert public["winner_count"] == 3
    recomputed = my_winners(public["seed"], public["entries"], 3)
    assert recomputed == set(public["winners"])
    assert recomputed == {n for n, e in entries.items() if e.citizen_id in set(holders)}

    # Drawing twice is refused and changes nothing.
    with pytest.raises(InvalidTransition):
        lottery.draw(release_id, world.approver)
    db.session.rollback()
    assert db.session.scalar(select(func.count(Voucher.id)).where(
        Voucher.release_id == release_id, Voucher.citizen_id.is_not(None))) == 3
    # The money stays reserved for the vouchers given out; nothing came back.
    assert balances(campaign.id)[AccountKind.RESERVED] == (5 + 3) * FACE
    assert verify_ledger() == []


def test_fewer_entrants_than_vouchers_returns_the_unwon_money(db):
    world = make_world()
    campaign, _ = make_campaign(world, quantity=5)
    release = lottery_round(db, world, campaign, quantity=3)
    release_id = release.id
    a, b = make_citizen("a"), make_citizen("b")
    lottery.enter(release_id, a)
    lottery.enter(release_id, b)
    db.session.commit()
    before = balances(campaign.id)

    chosen = lottery.draw(release_id, world.approver)
    db.session.commit()
    assert len(chosen) == 2

    vouchers = db.session.scalars(select(Voucher).where(Voucher.release_id == release_id)).all()
    assert sorted(v.status for v in vouchers) == ["claimed", "claimed", "withdrawn"]
    assert {v.citizen_id for v in vouchers if v.status == "claimed"} == {a.id, b.id}
    withdrawn = next(v for v in vouchers if v.status == "withdrawn")
    assert withdrawn.citizen_id is None

    after = balances(campaign.id)
    assert after[AccountKind.RESERVED] == before[AccountKind.RESERVED] - FACE
    assert after[AccountKind.AVAILABLE] == before[AccountKind.AVAILABLE] + FACE
    assert after[AccountKind.SPENT] == before[AccountKind.SPENT] == 0
    assert verify_ledger() == []

    with pytest.raises(InvalidTransition):
        lottery.draw(release_id, world.approver)
    db.session.rollback()
    assert balances(campaign.id) == after


def test_citizen_enters_through_the_page(client, db, app):
    world = make_world()
    campaign, _ = make_campaign(world, quantity=5)
    release = lottery_round(db, world, campaign)
    release_id = release.id

    citizen = app.test_client()
    page = citizen.post("/c/login", data={"p-phone": "138 1234 5678"}).get_data(as_text=True)
    code = re.search(r'class="dev-code">(\d{6})<', page).group(1)
    assert citizen.post("/c/login", data={"c-phone": "13812345678", "c-code": code}).status_code == 302

    home = citizen.get("/c/").get_data(as_text=True)
    assert "报名摇号" in home and "已报名 0 人" in home and "已报名，" not in home
    assert f"/c/releases/{release_id}/enter" in home

    response = citizen.post(f"/c/releases/{release_id}/enter")
    assert response.status_code == 302
    db.session.rollback()
    entry = db.session.scalar(select(LotteryEntry).where(LotteryEntry.release_id == release_id))
    assert entry is not None
    home = citizen.get("/c/").get_data(as_text=True)
    assert "已报名" in home and f"已报名，报名编号 #{entry.id}" in home and "已报名 1 人" in home
    assert "报名摇号" not in home

    # A second entry through the page is refused; still one entry.
    response = citizen.post(f"/c/releases/{release_id}/enter", follow_redirects=True)
    assert "每人限报一次" in response.get_data(as_text=True)
    db.session.rollback()
    assert db.session.scalar(select(func.count(LotteryEntry.id))) == 1


# The campaign-wide per-person limit (每人限领) and lottery rounds. The rule: a pending entry does not
# count towards the limit (a first-come claim is not refused because of it), entering is refused to a
# citizen who already holds the limit, and the draw passes over an entrant who holds it by then, giving
# the voucher to the next entrant in the drawn order.

def limited_campaign(db, world, *, first_come: int = 5):
    """A campaign with 每人限领 1 across all its rounds, and an open first-come round."""
    campaign, first_round = make_campaign(world, quantity=first_come)
    campaign.per_person_limit = 1
    db.session.commit()
    return campaign, first_round


def named_lottery_round(db, world, campaign, name: str, quantity: int = 1) -> Release:
    release = releases.create_release(
        campaign, name=name, quantity=quantity, per_person_limit=1, opens_at=utcnow() - timedelta(minutes=1),
        actor=world.maker, mode="lottery",
    )
    releases.open_release(release.id, world.maker)
    db.session.commit()
    return release


def drawn_order(seed: str, entry_numbers) -> list[int]:
    """The published ranking, written independently of the product."""
    return sorted(entry_numbers, key=lambda n: (hashlib.sha256(f"{seed}:{n}".encode()).hexdigest(), n))


def held_by(citizen_id: int, campaign_id: int) -> int:
    """Vouchers of the campaign the citizen holds, whatever their state (what the limit counts)."""
    from voucher.core.db import db as session_db

    return session_db.session.scalar(select(func.count(Voucher.id)).where(
        Voucher.citizen_id == citizen_id, Voucher.campaign_id == campaign_id))


def test_a_pending_entry_does_not_block_a_first_come_claim_but_entering_at_the_limit_is_refused(db):
    world = make_world()
    campaign, first_round = limited_campaign(db, world)
    draw_a = named_lottery_round(db, world, campaign, "摇号一")
    draw_b = named_lottery_round(db, world, campaign, "摇号二")
    citizen = make_citizen("p")
    lottery.enter(draw_a.id, citizen)
    db.session.commit()
    # The entry is only a chance: the citizen may still claim first-come while waiting for the draw.
    claim(first_round.id, citizen)
    db.session.commit()
    assert held_by(citizen.id, campaign.id) == 1
    # Holding the limit, they can neither enter another lottery round nor claim again.
    with pytest.raises(ClaimLimitReached, match="本活动每人限领"):
        lottery.enter(draw_b.id, citizen)
    db.session.rollback()
    with pytest.raises(ClaimLimitReached, match="本活动每人限领"):
        claim(first_round.id, citizen)
    db.session.rollback()
    assert held_by(citizen.id, campaign.id) == 1


def test_draw_passes_over_an_entrant_who_claimed_first_come_meanwhile(client, db):
    from voucher.core.audit import AuditEntry

    world = make_world()
    campaign, first_round = limited_campaign(db, world)
    release = lottery_round(db, world, campaign, quantity=1)
    release_id, seed = release.id, release.seed
    citizens = [make_citizen(tag) for tag in "xyz"]
    numbers = {lottery.enter(release_id, c).id: c.id for c in citizens}
    db.session.commit()
    order = drawn_order(seed, list(numbers))
    first, second = order[0], order[1]
    # The entrant the seed ranks first takes a first-come voucher before the draw.
    claim(first_round.id, db.session.get(type(citizens[0]), numbers[first]))
    db.session.commit()
    reserved_before = balances(campaign.id)[AccountKind.RESERVED]

    chosen = lottery.draw(release_id, world.approver)
    db.session.commit()

    # The prize went to the next entrant in the drawn order; the first keeps only their first-come voucher.
    assert chosen == [second]
    assert held_by(numbers[first], campaign.id) == 1
    assert db.session.scalar(select(Voucher.citizen_id).where(Voucher.release_id == release_id)) == numbers[second]
    entries = {e.id: e for e in db.session.scalars(select(LotteryEntry).where(LotteryEntry.release_id == release_id))}
    assert entries[first].won is False and entries[second].won is True
    assert not entries[order[2]].won
    # The entry passed over is on record with its reason, and the published rule reproduces the result.
    passed = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "lottery.pass_over")).all()
    assert [(a.object_type, a.object_id, a.after["reason"]) for a in passed] == [("lottery_entries", first, "已达活动每人限领")]
    assert lottery.winners(seed, list(numbers), 1, {first}) == chosen
    assert my_winners(seed, [n for n in numbers if n != first], 1) == set(chosen)
    # The public page says so: the rule names the passing over, and lists the number passed over.
    page = client.get(f"/c/releases/{release_id}/lottery").get_data(as_text=True)
    assert "名额依次顺延给排在其后的报名者" in page and "前 1 名中签" not in page
    assert re.search(r'顺延编号（1）</h2>.*?<p class="wrap" id="passed-over">(\d+)</p>', page, re.S).group(1) == str(first)
    # Every voucher of the round was given out: no money came back.
    assert balances(campaign.id)[AccountKind.RESERVED] == reserved_before
    assert verify_ledger() == []
    for citizen_id in numbers.values():
        assert held_by(citizen_id, campaign.id) <= 1


def test_winning_two_lottery_rounds_gives_one_voucher_under_a_limit_of_one(db):
    world = make_world()
    campaign, _ = limited_campaign(db, world)
    first = named_lottery_round(db, world, campaign, "摇号一", quantity=1)
    second = named_lottery_round(db, world, campaign, "摇号二", quantity=2)
    first_id, second_id = first.id, second.id
    a, b = make_citizen("a"), make_citizen("b")
    # Both enter both rounds: a pending entry does not count, so the second entry is accepted.
    for release_id in (first_id, second_id):
        lottery.enter(release_id, a)
        lottery.enter(release_id, b)
    db.session.commit()

    [won_first] = lottery.draw(first_id, world.approver)
    db.session.commit()
    winner = db.session.get(LotteryEntry, won_first).citizen_id
    loser = b.id if winner == a.id else a.id
    before = balances(campaign.id)

    # Two vouchers, two entrants: the earlier winner is passed over, the other wins, one voucher goes back.
    chosen = lottery.draw(second_id, world.approver)
    db.session.commit()
    assert len(chosen) == 1
    assert db.session.get(LotteryEntry, chosen[0]).citizen_id == loser
    assert held_by(winner, campaign.id) == 1
    assert held_by(loser, campaign.id) == 1
    vouchers = db.session.scalars(select(Voucher).where(Voucher.release_id == second_id)).all()
    assert sorted(v.status for v in vouchers) == ["claimed", "withdrawn"]
    after = balances(campaign.id)
    assert after[AccountKind.RESERVED] == before[AccountKind.RESERVED] - FACE
    assert after[AccountKind.AVAILABLE] == before[AccountKind.AVAILABLE] + FACE
    assert verify_ledger() == []


def test_a_claim_racing_the_draw_never_exceeds_the_limit(app, db):
    """PostgreSQL: the same citizen claims first-come while the draw runs; whichever commits first, the
    other sees it (both take the citizen's row lock), so the citizen ends with exactly one voucher."""
    import time

    from tests.test_concurrency import run_concurrently
    from voucher.accounts.models import User
    from voucher.core.db import db as _db
    from voucher.vouchers.models import Citizen

    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers: nothing to race")
    world = make_world()
    campaign, first_round = limited_campaign(db, world, first_come=50)
    first_round_id, approver_id = first_round.id, world.approver.id
    orders = []
    DELAYS = [(0, 0), (0, 0.01), (0.005, 0), (0.01, 0), (0.02, 0), (0.03, 0), (0.002, 0), (0.015, 0)]  # claim, draw
    for attempt in range(len(DELAYS)):
        release = named_lottery_round(db, world, campaign, f"摇号{attempt + 1}")
        release_id, seed = release.id, release.seed
        numbers = {lottery.enter(release_id, make_citizen(f"{attempt}{tag}")).id: None for tag in "pq"}
        db.session.commit()
        entries = {e.id: e.citizen_id for e in db.session.scalars(
            select(LotteryEntry).where(LotteryEntry.release_id == release_id))}
        assert set(entries) == set(numbers)
        target = entries[drawn_order(seed, list(entries))[0]]  # the entrant the draw reaches first
        other = next(c for c in entries.values() if c != target)

        def work(i, release_id=release_id, target=target, delays=DELAYS[attempt]):
            time.sleep(delays[i])  # vary who takes the citizen's lock first
            if i == 0:
                return claim(first_round_id, _db.session.get(Citizen, target)).id
            return lottery.draw(release_id, _db.session.get(User, approver_id))

        claimed, drawn = run_concurrently(app, 2, work)
        db.session.rollback()
        assert isinstance(drawn, list) and len(drawn) == 1, (claimed, drawn)
        assert claimed == "claim_limit_reached" or isinstance(claimed, int), (claimed, drawn)
        assert held_by(target, campaign.id) == 1, (attempt, claimed, drawn)
        lottery_holder = db.session.scalar(select(Voucher.citizen_id).where(Voucher.release_id == release_id))
        # Either the claim came first and the prize went to the other entrant, or the draw came first.
        assert lottery_holder == (other if isinstance(claimed, int) else target), (claimed, drawn)
        orders.append("claim" if isinstance(claimed, int) else "draw")
    assert verify_ledger() == []
    print("who came first:", orders)
