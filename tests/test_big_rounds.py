"""Big rounds in the background (voucher/jobs/background.py): a release of many vouchers, or a lottery of
many entries, is only started by the page; the job runner does the work in steps, each committed with
its progress, and a job interrupted half way resumes without minting or reserving twice.

The threshold and the chunk are lowered through the app's config, so a "big" round here is ten vouchers.
"""
from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.factories import PASSWORD, make_campaign, make_citizen, make_world
from voucher.campaigns.models import LotteryEntry, Release
from voucher.core.clock import utcnow
from voucher.core.errors import InvalidTransition
from voucher.jobs import background, runner
from voucher.jobs.models import JobRun
from voucher.ledger.models import AccountKind, JournalEntry
from voucher.ledger.services import campaign_balances
from voucher.reports.consistency import verify_ledger
from voucher.vouchers import closing, lottery, releases
from voucher.vouchers.models import Voucher

FACE = 20_00
BIG = 10


@pytest.fixture
def small_threshold(app, monkeypatch):
    monkeypatch.setitem(app.config, "BACKGROUND_ROUND_THRESHOLD", 5)
    monkeypatch.setitem(app.config, "BACKGROUND_MINT_CHUNK", 4)


@pytest.fixture
def interrupt():
    """Make a background job fail right after its first committed step of real work (done > 0)."""
    def listener(run_id: int, done: int) -> None:
        if done > 0:
            raise RuntimeError("模拟中断：进程在第一批之后退出")

    background.after_step.append(listener)
    yield listener
    if listener in background.after_step:
        background.after_step.remove(listener)


def sign_in(client, username: str) -> None:
    assert client.post("/login", data={"username": username, "password": PASSWORD}).status_code == 302


def big_release(db, world, campaign, quantity: int = BIG, mode: str = "first_come") -> int:
    release = releases.create_release(
        campaign, name=f"大场次{quantity}{mode}", quantity=quantity, per_person_limit=1,
        opens_at=utcnow() - timedelta(minutes=1), actor=world.maker, mode=mode,
    )
    db.session.commit()
    return release.id


def minted(release_id: int) -> int:
    return releases.minted(release_id)


def reserve_postings(db, release_id: int) -> int:
    return db.session.scalar(select(func.count(JournalEntry.id)).where(
        JournalEntry.ref_type == "release", JournalEntry.ref_id == release_id, JournalEntry.kind == "release_reserve"))


def reserved(campaign_id: int) -> int:
    return campaign_balances([campaign_id])[campaign_id][AccountKind.RESERVED]


def job_json(client, release_id: int) -> dict:
    response = client.get(f"/releases/{release_id}/job")
    assert response.status_code == 200, response.status_code
    return response.get_json()["data"]


def test_a_big_release_opened_from_the_page_starts_a_job_which_opens_it_exactly_once(client, db, small_threshold):
    world = make_world()
    campaign, first = make_campaign(world, quantity=3)  # below the threshold: opened in the request, as before
    assert first.status == "open" and minted(first.id) == 3
    release_id = big_release(db, world, campaign)
    sign_in(client, "maker")

    response = client.post(f"/releases/{release_id}/open", follow_redirects=True)
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "已开始在后台开放场次（共 10 张券）" in page
    # Only started: nothing reserved, nothing minted; the page shows the queued job and reloads itself.
    db.session.expire_all()
    assert db.session.get(Release, release_id).status == "scheduled"
    assert minted(release_id) == 0 and reserve_postings(db, release_id) == 0
    assert "排队中" in page and "0/10" in page and 'http-equiv="refresh"' in page
    assert re.findall(r"<script(?![^>]*\bsrc=)", page) == []  # no inline script: the CSP allows none
    status = job_json(client, release_id)
    assert (status["state"], status["state_label"], status["done"], status["total"], status["percent"]) == (
        "queued", "排队中", 0, BIG, 0)

    outcomes = background.run_pending()
    assert [o.status for o in outcomes] == ["succeeded"]
    db.session.expire_all()
    release = db.session.get(Release, release_id)
    assert release.status == "open" and release.opened_at is not None
    assert minted(release_id) == BIG
    assert len(set(db.session.scalars(select(Voucher.code).where(Voucher.release_id == release_id)))) == BIG
    assert reserve_postings(db, release_id) == 1
    assert reserved(campaign.id) == (3 + BIG) * FACE
    assert verify_ledger() == []
    status = job_json(client, release_id)
    assert status["state"] == "succeeded" and status["state_label"] == "已完成"
    assert (status["done"], status["total"], status["percent"]) == (BIG, BIG, 100)
    page = client.get(f"/campaigns/{campaign.id}").get_data(as_text=True)
    assert 'http-equiv="refresh"' not in page and "领取中" in page

    # Nothing left to run, and the release cannot be opened again.
    assert background.run_pending() == []
    response = client.post(f"/releases/{release_id}/open")
    assert response.status_code == 409 and minted(release_id) == BIG


def test_starting_twice_gives_one_job_and_a_definite_answer(client, db, small_threshold):
    world = make_world()
    campaign, _ = make_campaign(world, quantity=3)
    release_id = big_release(db, world, campaign)
    sign_in(client, "maker")
    assert client.post(f"/releases/{release_id}/open").status_code == 302
    second = client.post(f"/releases/{release_id}/open")  # a double click, or a colleague
    assert second.status_code == 409
    assert "已在进行" in second.get_data(as_text=True)
    assert db.session.scalar(select(func.count(JobRun.id)).where(JobRun.job == "open_release")) == 1
    # The scheduled opening, finding the release due, does not start another one either.
    outcome = runner.run_now("open_releases")
    assert outcome.ok and release_id not in outcome.summary["opened"]
    assert db.session.scalar(select(func.count(JobRun.id)).where(JobRun.job == "open_release")) == 1
    background.run_pending()
    assert minted(release_id) == BIG and reserve_postings(db, release_id) == 1 and verify_ledger() == []


def test_two_starts_at_the_same_moment_start_one_job(app, db, small_threshold):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers: nothing to race")
    world = make_world()
    campaign, _ = make_campaign(world, quantity=3)
    release_id = big_release(db, world, campaign)
    maker_id = world.maker.id
    barrier = threading.Barrier(2)
    answers: list[str] = []

    def start() -> None:
        from voucher.accounts.models import User
        from voucher.core.db import db as thread_db
        from voucher.web import in_transaction

        with app.app_context():
            actor = thread_db.session.get(User, maker_id)
            barrier.wait()
            try:
                in_transaction(lambda: background.request_open(release_id, actor))
                answers.append("started")
            except background.AlreadyRunning:
                answers.append("already")
            finally:
                thread_db.session.remove()

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == ["already", "started"]
    assert db.session.scalar(select(func.count(JobRun.id)).where(JobRun.job == "open_release")) == 1


def test_a_job_interrupted_after_its_first_chunk_resumes_and_ends_exact(client, db, small_threshold, interrupt):
    world = make_world()
    campaign, _ = make_campaign(world, quantity=3)
    release_id = big_release(db, world, campaign)
    sign_in(client, "maker")
    assert client.post(f"/releases/{release_id}/open").status_code == 302

    [outcome] = background.run_pending()
    assert outcome.status == "failed" and "模拟中断" in outcome.error
    db.session.expire_all()
    # Reserved once, the first chunk minted and kept; nobody can claim from it meanwhile.
    assert db.session.get(Release, release_id).status == "opening"
    assert minted(release_id) == 4 and reserve_postings(db, release_id) == 1
    assert reserved(campaign.id) == (3 + BIG) * FACE
    assert verify_ledger() == []  # what is still to be minted counts as reserved
    status = job_json(client, release_id)
    assert (status["state"], status["state_label"], status["done"], status["total"]) == ("failed", "失败", 4, BIG)
    assert "模拟中断" in status["error"] and status["retry_at"]
    page = client.get(f"/campaigns/{campaign.id}").get_data(as_text=True)
    assert "失败原因" in page and "模拟中断" in page and "4/10（40%）" in page
    # The campaign cannot be closed with money reserved for vouchers not yet minted.
    with pytest.raises(InvalidTransition, match="正在后台生成消费券"):
        closing.close_campaign(campaign.id, world.approver, "测试")
    db.session.rollback()

    # Retried from the page at once (the crash is over): it resumes from the fifth voucher.
    background.after_step.remove(interrupt)
    response = client.post(f"/releases/{release_id}/open")
    assert response.status_code == 302
    run = background.find(background.OPEN_RELEASE, release_id)
    assert run.status == "queued" and run.attempts == 2
    [outcome] = background.run_pending()
    assert outcome.status == "succeeded"
    db.session.expire_all()
    assert db.session.get(Release, release_id).status == "open"
    assert minted(release_id) == BIG and reserve_postings(db, release_id) == 1
    assert reserved(campaign.id) == (3 + BIG) * FACE
    assert verify_ledger() == []


def test_a_failed_job_is_retried_by_the_clock_after_its_backoff(db, small_threshold, interrupt, only_jobs):
    world = make_world()
    campaign, _ = make_campaign(world, quantity=3)
    release_id = big_release(db, world, campaign)
    now = utcnow()
    background.request_open(release_id, world.maker, now)
    db.session.commit()
    only_jobs()  # the clock with no scheduled jobs: only the background ones
    [outcome] = runner.tick(now)
    assert outcome.status == "failed"
    background.after_step.remove(interrupt)
    assert runner.tick(now + timedelta(seconds=30)) == []  # not yet due
    [outcome] = runner.tick(now + runner.BACKOFF[0] + timedelta(minutes=1))
    assert outcome.status == "succeeded" and outcome.attempts == 2
    assert minted(release_id) == BIG and reserve_postings(db, release_id) == 1 and verify_ledger() == []


def test_a_big_lottery_opens_and_draws_in_the_background(client, db, small_threshold):
    world = make_world()
    campaign, _ = make_campaign(world, quantity=3)
    release_id = big_release(db, world, campaign, quantity=8, mode="lottery")
    sign_in(client, "approver")
    assert client.post(f"/releases/{release_id}/open").status_code == 302
    background.run_pending()
    citizens = [make_citizen(f"L{i}") for i in range(6)]
    for citizen in citizens:
        lottery.enter(release_id, citizen)
    db.session.commit()

    response = client.post(f"/releases/{release_id}/draw", follow_redirects=True)
    assert "已开始在后台开奖（共 6 条报名）" in response.get_data(as_text=True)
    assert job_json(client, release_id)["job"] == "draw_lottery"
    assert db.session.get(Release, release_id).status == "open"  # entries still come in until the job starts
    second = client.post(f"/releases/{release_id}/draw")
    assert second.status_code == 409 and "已在进行" in second.get_data(as_text=True)

    [outcome] = background.run_pending()
    assert outcome.status == "succeeded" and outcome.summary == {"entries": 6, "winners": 6}
    db.session.expire_all()
    release = db.session.get(Release, release_id)
    assert release.status == "closed" and release.drawn_at is not None
    numbers = list(db.session.scalars(select(LotteryEntry.id).where(LotteryEntry.release_id == release_id)))
    won = set(db.session.scalars(select(LotteryEntry.id).where(LotteryEntry.release_id == release_id,
                                                               LotteryEntry.won.is_(True))))
    assert won == set(lottery.winners(release.seed, numbers, 8))
    claimed = db.session.execute(select(Voucher.citizen_id, Voucher.status).where(Voucher.release_id == release_id)).all()
    assert sorted(c for c, s in claimed if s == "claimed") == sorted(c.id for c in citizens)
    assert sum(1 for _, s in claimed if s == "withdrawn") == 2
    assert reserved(campaign.id) == (3 + 6) * FACE  # the two vouchers nobody won went back
    assert verify_ledger() == []
    status = job_json(client, release_id)
    assert (status["state"], status["done"], status["total"]) == ("succeeded", 6, 6)


def test_the_job_status_follows_the_campaign_page_roles(client, db, small_threshold):
    world = make_world()
    campaign, first = make_campaign(world, quantity=3)
    release_id = big_release(db, world, campaign)
    background.request_open(release_id, world.maker)
    db.session.commit()

    assert re.search(r"/login", client.get(f"/releases/{release_id}/job").headers.get("Location", ""))
    for username in ("maker", "approver", "finance", "auditor"):
        sign_in(client, username)
        assert job_json(client, release_id)["state"] == "queued", username
        client.post("/logout")
    for username in ("manager", "cashier"):
        sign_in(client, username)
        assert client.get(f"/releases/{release_id}/job").status_code == 403, username
        assert client.get(f"/campaigns/{campaign.id}").status_code == 403, username
        client.post("/logout")
    # Starting is for the bureau's makers and approvers only, as opening was.
    sign_in(client, "auditor")
    assert client.post(f"/releases/{release_id}/open").status_code == 403
    client.post("/logout")
    sign_in(client, "finance")
    assert client.get(f"/releases/{first.id}/job").status_code == 404  # opened in its request: no job
    assert client.get("/releases/999999/job").status_code == 404


def test_long_commands_print_their_progress_on_stderr_and_keep_stdout(app, db, tmp_path):
    world = make_world()
    make_campaign(world, quantity=3)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["leverage", "refresh", "--full"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("汇总至 ") and "[" not in result.stdout  # the line scripts read, alone
    lines = result.stderr.splitlines()
    assert lines[0].startswith("[  0%] 杠杆率预聚合：领取汇总") and lines[-1].startswith("[100%] 杠杆率预聚合：完成")
    assert runner.invoke(args=["leverage", "refresh"]).stderr == ""  # the nightly increment stays quiet

    good = tmp_path / "good.csv"
    good.write_bytes(f"统一社会信用代码,日期,销售额（元）\n{world.merchant.uscc},2026-10-01,1\n".encode())
    result = runner.invoke(args=["leverage", "import-baselines", str(good)])
    assert result.exit_code == 0 and result.stdout.startswith("已导入 1 行")
    assert "[100%] 导入销售额基线：完成" in result.stderr


def test_a_job_refused_before_it_reserved_can_be_started_again(client, db, small_threshold):
    from voucher.campaigns import services as campaigns

    world = make_world()
    campaign, _ = make_campaign(world, quantity=3)
    release_id = big_release(db, world, campaign)
    sign_in(client, "maker")
    assert client.post(f"/releases/{release_id}/open").status_code == 302
    campaigns.pause(campaign.id, world.approver)  # paused after the start, before the job ran
    db.session.commit()
    [outcome] = background.run_pending()
    assert outcome.status == "failed" and outcome.error == "活动不在进行中，不能开放场次"
    db.session.expire_all()
    assert db.session.get(Release, release_id).status == "scheduled" and reserve_postings(db, release_id) == 0
    assert "活动不在进行中" in client.get(f"/campaigns/{campaign.id}").get_data(as_text=True)

    campaigns.resume(campaign.id, world.approver)
    db.session.commit()
    assert client.post(f"/releases/{release_id}/open").status_code == 302
    [outcome] = background.run_pending()
    assert outcome.status == "succeeded" and outcome.attempts == 2
    assert minted(release_id) == BIG and reserve_postings(db, release_id) == 1 and verify_ledger() == []
