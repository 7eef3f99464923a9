"""Scheduled jobs: each schedule slot runs once across processes, failures roll back and are retried
with backoff, the product's jobs do their work, and the CLI, admin page and readiness probe."""
from __future__ import annotations

import logging
import re
import threading
import time as wall
from datetime import date, datetime, time, timedelta, timezone

import pytest
from sqlalchemy import func, select, text, update

from tests.factories import PASSWORD, claim_one, make_campaign, make_citizen, make_world
from voucher.accounts.models import User
from voucher.analytics.models import DailyStat
from voucher.campaigns.models import Release
from voucher.core import audit
from voucher.core.audit import AuditEntry
from voucher.core.clock import LOCAL_TZ, local_today, utcnow
from voucher.core.db import db as _db
from voucher.counter.redemption import redeem, reverse
from voucher.jobs import registry, runner
from voucher.jobs.models import JobRun, SchedulerHeartbeat
from voucher.jobs.registry import Schedule, daily, every
from voucher.ledger.models import AccountKind, EntryKind, JournalEntry
from voucher.ledger.services import campaign_balances
from voucher.reports.consistency import verify_ledger
from voucher.vouchers import releases
from voucher.vouchers.models import Voucher, VoucherStatus


def local(year, month, day, hour=0, minute=0) -> datetime:
    """A Beijing wall-clock time as the naive UTC the runner takes."""
    return at_local(date(year, month, day), hour, minute)


def at_local(day: date, hour: int, minute: int) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=LOCAL_TZ).astimezone(timezone.utc).replace(tzinfo=None)


def marker_count(action: str) -> int:
    return _db.session.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.action == action))


def write_marker(action: str) -> None:
    """A job's visible effect: one audit row, in the job's transaction."""
    audit.record(action, JobRun(), actor_label="system")


def runs_of(job: str) -> list[JobRun]:
    _db.session.expire_all()
    return list(_db.session.scalars(select(JobRun).where(JobRun.job == job).order_by(JobRun.id)))


def in_threads(app, count: int, work, apps: list | None = None) -> list:
    """work(i) in `count` threads with their own app contexts (as separate processes would have their
    own sessions; thread i uses apps[i % len(apps)] if given), released together by a barrier; each
    outcome or the unexpected error."""
    _db.session.commit()  # on SQLite the test's open transaction would hold the write lock
    barrier = threading.Barrier(count)
    outcomes: list = [None] * count

    def worker(i: int) -> None:
        with (apps[i % len(apps)] if apps else app).app_context():
            try:
                barrier.wait()
                outcomes[i] = work(i)
            except Exception as error:  # noqa: BLE001 - shown by the test
                _db.session.rollback()
                outcomes[i] = f"unexpected: {error!r}"
            finally:
                _db.session.remove()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes


# Schedules --------------------------------------------------------------------------------------


def test_slots_follow_beijing_time():
    nightly = daily(0, 30)
    assert nightly.due_slot(local(2026, 11, 24, 0, 29)) == "2026-11-23"  # not yet: yesterday's slot is the due one
    assert nightly.due_slot(local(2026, 11, 24, 0, 30)) == "2026-11-24"
    assert nightly.due_slot(local(2026, 11, 24, 23, 59)) == "2026-11-24"
    assert nightly.run_time("2026-11-24", local(2026, 11, 24, 9, 0)) == local(2026, 11, 24, 0, 30)
    five = every(5)
    assert five.due_slot(local(2026, 11, 24, 10, 9)) == "2026-11-24T10:05"
    assert five.due_slot(local(2026, 11, 24, 10, 10)) == "2026-11-24T10:10"
    assert five.run_time("2026-11-24T10:05", local(2026, 11, 24, 10, 9)) == local(2026, 11, 24, 10, 9)
    assert every(60).due_slot(local(2026, 11, 24, 10, 59)) == "2026-11-24T10:00"
    assert (nightly.label, every(1).label, every(60).label, five.label) == ("每天 00:30", "每分钟", "每小时", "每 5 分钟")
    with pytest.raises(ValueError):
        Schedule(daily_at=time(1), every_minutes=5)
    with pytest.raises(ValueError):
        every(7)  # must divide the day, or slots would drift across midnight


def test_the_product_jobs_are_registered():
    names = {job.name for job in registry.jobs()}
    assert {"open_releases", "expire_vouchers", "prune_nonces", "risk_scan", "daily_stats"} <= names
    assert registry.get("expire_vouchers").schedule.daily_at == time(0, 30)
    assert registry.get("open_releases").schedule.every_minutes == 1


# Once per slot across instances -----------------------------------------------------------------


def test_two_schedulers_on_one_database_run_each_slot_once(app, db, database_url):
    """Two app instances (two engines, as two servers would have), two threads each, tick at the same
    instant: each (job, slot) has one run, and a round due to open is opened once, with one
    reservation posting (PostgreSQL is the case that matters)."""
    from tests.conftest import make_app

    other_server = make_app(database_url)
    world = make_world()
    campaign, _ = make_campaign(world, quantity=5)
    due = releases.create_release(campaign, name="第二轮", quantity=7, per_person_limit=1,
                                  opens_at=utcnow() - timedelta(minutes=2), actor=world.maker)
    db.session.commit()
    due_id = due.id
    now = utcnow()

    try:
        outcomes = in_threads(app, 4, lambda i: runner.tick(now), apps=[app, other_server])
    finally:
        with other_server.app_context():
            _db.engine.dispose()

    assert not any(isinstance(o, str) for o in outcomes), outcomes
    ran = sorted(o.job for result in outcomes for o in result)
    assert ran == sorted(job.name for job in registry.jobs())  # every job ran, each in one instance only
    slots = db.session.execute(select(JobRun.job, JobRun.slot, func.count(JobRun.id)).group_by(JobRun.job, JobRun.slot)).all()
    assert len(slots) == len(registry.jobs()) and all(count == 1 for _, _, count in slots)
    assert {run.status for run in db.session.scalars(select(JobRun))} == {"succeeded"}

    assert db.session.get(Release, due_id).status == "open"
    reservations = db.session.scalar(
        select(func.count(JournalEntry.id)).where(JournalEntry.kind == EntryKind.RELEASE_RESERVE.value,
                                                  JournalEntry.ref_type == "release", JournalEntry.ref_id == due_id)
    )
    assert reservations == 1
    assert db.session.scalar(select(func.count(Voucher.id)).where(Voucher.release_id == due_id)) == 7
    assert verify_ledger() == []

    assert runner.tick(now) == []  # the slots are taken: another tick at the same time does nothing
    assert db.session.scalar(select(func.count(SchedulerHeartbeat.holder))) == 1  # one process (host:pid)


def test_many_instances_claim_a_counter_job_once(app, db, only_jobs):
    calls = []

    def count(now):
        calls.append(now)
        write_marker("test.counted")
        return {"n": 1}

    only_jobs(("counter", "计数", every(5), count))
    now = utcnow()
    outcomes = in_threads(app, 8, lambda i: runner.tick(now))
    assert sum(len(o) for o in outcomes) == 1, outcomes
    assert len(calls) == 1 and marker_count("test.counted") == 1
    assert len(runs_of("counter")) == 1


# Failure, retry with backoff, rollback ----------------------------------------------------------


def test_a_failing_job_rolls_back_is_recorded_and_retried_after_the_backoff(db, only_jobs, caplog, monkeypatch):
    attempts = []

    def flaky(now):
        attempts.append(now)
        write_marker("test.half_done")  # written, then the job fails: it must not stay
        if len(attempts) == 1:
            raise RuntimeError("bank file not ready")
        return {"done": True}

    # The test app's migrations ran alembic's fileConfig, which disables loggers that existed before.
    monkeypatch.setattr(logging.getLogger(runner.__name__), "disabled", False)
    only_jobs(("flaky", "会失败一次", daily(0, 0), flaky))
    now = local(2027, 3, 17, 9, 0)  # the retry two minutes later must fall in the same daily slot
    [outcome] = runner.tick(now)
    assert outcome.status == "failed" and outcome.error == "RuntimeError: bank file not ready"
    [run] = runs_of("flaky")
    assert (run.status, run.attempts, run.error) == ("failed", 1, "RuntimeError: bank file not ready")
    assert run.status_label == "失败"
    assert timedelta(minutes=1) <= run.next_attempt_at - now < timedelta(minutes=1, seconds=5)
    assert marker_count("test.half_done") == 0  # the half-done work was rolled back
    assert "job flaky" in caplog.text and "bank file not ready" in caplog.text

    assert runner.tick(now + timedelta(seconds=30)) == []  # the backoff has not passed
    assert len(attempts) == 1

    [retry] = runner.tick(now + timedelta(minutes=2))
    assert (retry.status, retry.attempts, retry.summary) == ("succeeded", 2, {"done": True})
    [run] = runs_of("flaky")  # the same run, not a new slot
    assert (run.status, run.attempts, run.error, run.next_attempt_at) == ("succeeded", 2, None, None)
    assert marker_count("test.half_done") == 1
    assert attempts[0] == attempts[1]  # a retry works on its slot's time, like the first attempt


def test_retries_back_off_and_stop_after_the_last_attempt(db, only_jobs):
    calls = []

    def broken(now):
        calls.append(now)
        raise ValueError("always")

    only_jobs(("broken", "总是失败", daily(0, 0), broken))
    # Half an hour after the slot, so that the retries (1 + 5 + 30 minutes) and the two quiet hours
    # after them stay inside the same daily slot, whatever the machine's time of day.
    now = local(2027, 3, 17, 0, 30)
    runner.tick(now)
    waits = []
    for _ in range(5):
        [run] = runs_of("broken")
        if run.next_attempt_at is None:
            break
        waits.append(round((run.next_attempt_at - run.finished_at).total_seconds() / 60))
        now = run.next_attempt_at
        runner.tick(now)
    assert waits == [1, 5, 30]
    [run] = runs_of("broken")
    assert (run.status, run.attempts, run.next_attempt_at) == ("failed", runner.MAX_ATTEMPTS, None)
    assert len(calls) == runner.MAX_ATTEMPTS
    runner.tick(now + timedelta(hours=2))
    assert len(calls) == runner.MAX_ATTEMPTS


def test_a_retry_is_claimed_by_one_instance_only(app, db, only_jobs):
    calls = []

    def job(now):
        calls.append(now)
        write_marker("test.retried")
        return {}

    only_jobs(("retry_me", "重试", daily(0, 0), job))
    now = utcnow()
    slot = daily(0, 0).due_slot(now)
    db.session.add(JobRun(job="retry_me", slot=slot, status="failed", attempts=1, started_at=now - timedelta(minutes=3),
                          finished_at=now - timedelta(minutes=3), next_attempt_at=now - timedelta(minutes=1),
                          error="RuntimeError: x", holder="other:1"))
    db.session.commit()

    outcomes = in_threads(app, 8, lambda i: runner.tick(now))
    assert sum(len(o) for o in outcomes) == 1, outcomes
    assert len(calls) == 1 and marker_count("test.retried") == 1
    [run] = runs_of("retry_me")
    assert (run.status, run.attempts) == ("succeeded", 2)


def test_two_instances_that_both_saw_a_retry_due_cannot_both_take_it(app, db):
    now = utcnow()
    db.session.add(JobRun(job="retry_me", slot="2026-11-24", status="failed", attempts=1, started_at=now,
                          next_attempt_at=now - timedelta(seconds=1), error="RuntimeError: x", holder="other:1"))
    db.session.commit()
    run_id = runs_of("retry_me")[0].id

    taken = in_threads(app, 8, lambda i: runner.claim_retry(run_id, now))

    assert sorted(taken, key=str) == [2] + [None] * 7, taken
    assert runner.claim_retry(run_id, now) is None  # running now: not due again
    [run] = runs_of("retry_me")
    assert (run.status, run.attempts, run.next_attempt_at) == ("running", 2, None)


def test_a_run_whose_process_died_is_retried_and_the_late_process_cannot_commit(db, only_jobs):
    calls = []

    def job(now):
        calls.append(now)
        write_marker("test.lease")
        return {}

    only_jobs(("lease", "租约", daily(0, 0), job))
    now = utcnow()
    slot = daily(0, 0).due_slot(now)
    db.session.add(JobRun(job="lease", slot=slot, status="running", attempts=1,
                          started_at=now - runner.RUNNING_TIMEOUT - timedelta(minutes=1), holder="gone:1"))
    db.session.commit()
    run_id = runs_of("lease")[0].id

    [outcome] = runner.tick(now)  # marked failed (stale) and retried at once
    assert (outcome.status, outcome.attempts) == ("succeeded", 2)
    assert marker_count("test.lease") == 1

    # The first process wakes up and finishes attempt 1: its work must not commit.
    late = runner._execute(registry.get("lease"), run_id, slot, 1, now)
    assert late.status == "lost"
    assert marker_count("test.lease") == 1
    [run] = runs_of("lease")
    assert (run.status, run.attempts) == ("succeeded", 2)


def test_a_run_still_within_its_timeout_is_left_alone(db, only_jobs):
    only_jobs(("busy", "运行中", daily(0, 0), lambda now: {}))
    now = utcnow()
    db.session.add(JobRun(job="busy", slot=daily(0, 0).due_slot(now), status="running", attempts=1,
                          started_at=now - timedelta(minutes=5), holder="alive:1"))
    db.session.commit()
    assert runner.tick(now) == []
    assert runs_of("busy")[0].status == "running"


def test_a_database_error_is_stored_without_its_values(db, only_jobs):
    def bad_sql(now):
        _db.session.execute(text("SELECT :phone FROM no_such_table"), {"phone": "13800138000"})
        return {}

    only_jobs(("bad_sql", "坏语句", daily(0, 0), bad_sql))
    [outcome] = runner.tick(utcnow())
    assert outcome.status == "failed"
    assert outcome.error.startswith(("ProgrammingError", "OperationalError"))
    assert "13800138000" not in outcome.error  # no SQL text or bound values in the stored error


# Hand runs ---------------------------------------------------------------------------------------


def test_run_now_is_a_separate_manual_run_that_is_not_retried(db, only_jobs):
    world = make_world()
    only_jobs(("nightly", "夜间", daily(0, 0), lambda now: {"ok": 1}),
              ("fails", "失败", daily(0, 0), lambda now: 1 / 0))
    first, second = runner.run_now("nightly", actor=world.admin), runner.run_now("nightly")
    assert first.ok and second.ok and first.slot != second.slot and first.slot.startswith("manual-")
    failed = runner.run_now("fails")
    assert failed.status == "failed" and failed.error.startswith("ZeroDivisionError")
    assert runs_of("fails")[0].next_attempt_at is None  # whoever ran it by hand sees the error
    labels = db.session.scalars(select(AuditEntry.actor_label).where(AuditEntry.action == "job.run_now")
                                .order_by(AuditEntry.id)).all()
    assert labels == ["admin", "system", "system"]
    # A hand run does not take the scheduled slot.
    assert [o.job for o in runner.tick(utcnow())] == ["nightly", "fails"]


# The product's jobs ------------------------------------------------------------------------------


def test_open_releases_opens_due_rounds_only_and_one_failure_does_not_block_the_others(db):
    world = make_world()
    # 1,020 yuan of 20-yuan vouchers: the first round takes 10, leaving room for 41.
    campaign, _ = make_campaign(world, budget_fen=1_020_00, quantity=10)
    now = utcnow()

    def round_(name, quantity, opens_at):
        return releases.create_release(campaign, name=name, quantity=quantity, per_person_limit=1, opens_at=opens_at,
                                       actor=world.maker).id

    too_big = round_("第二轮", 45, now - timedelta(minutes=10))
    fits = round_("第三轮", 40, now - timedelta(minutes=5))
    future = round_("第四轮", 1, now + timedelta(hours=1))
    db.session.commit()

    outcome = runner.run_now("open_releases", now=now)
    assert outcome.ok, outcome
    assert outcome.summary["opened"] == [fits]
    assert list(outcome.summary["failed"]) == [str(too_big)] and "不足" in outcome.summary["failed"][str(too_big)]
    db.session.expire_all()
    statuses = {r.id: r.status for r in db.session.scalars(select(Release).where(Release.campaign_id == campaign.id))}
    assert (statuses[too_big], statuses[fits], statuses[future]) == ("scheduled", "open", "scheduled")
    assert campaign_balances([campaign.id])[campaign.id][AccountKind.RESERVED] == 50 * 20_00
    assert verify_ledger() == []

    # An hour later the future round opens, and nothing opens twice.
    later = runner.run_now("open_releases", now=now + timedelta(hours=1, minutes=1))
    assert later.summary["opened"] == [future]
    assert db.session.scalar(
        select(func.count(JournalEntry.id)).where(JournalEntry.kind == EntryKind.RELEASE_RESERVE.value)
    ) == 3


def test_a_round_that_fails_halfway_leaves_nothing_and_the_others_open(db, monkeypatch):
    from voucher.core.errors import BudgetExhausted
    from voucher.jobs import tasks

    world = make_world()
    campaign, _ = make_campaign(world, quantity=5)
    now = utcnow()
    broken, fine = (releases.create_release(campaign, name=name, quantity=3, per_person_limit=1, actor=world.maker,
                                            opens_at=now - timedelta(minutes=1)).id for name in ("第二轮", "第三轮"))
    db.session.commit()
    real_open = tasks.open_release

    def open_then_fail(release_id, actor=None, now=None):
        opened = real_open(release_id, actor=actor, now=now)  # reserved and minted...
        if release_id == broken:
            raise BudgetExhausted("模拟：开放到一半失败")  # ...then fails
        return opened

    monkeypatch.setattr(tasks, "open_release", open_then_fail)
    outcome = runner.run_now("open_releases", now=now)

    assert outcome.ok and outcome.summary == {"opened": [fine], "failed": {str(broken): "模拟：开放到一半失败"}}
    db.session.expire_all()
    assert db.session.get(Release, broken).status == "scheduled"
    assert db.session.scalar(select(func.count(Voucher.id)).where(Voucher.release_id == broken)) == 0
    assert db.session.scalar(select(func.count(JournalEntry.id)).where(JournalEntry.ref_type == "release",
                                                                       JournalEntry.ref_id == broken)) == 0
    assert db.session.get(Release, fine).status == "open"
    assert verify_ledger() == []


def test_expire_vouchers_returns_the_money_of_unused_vouchers(db):
    world = make_world()
    campaign, release = make_campaign(world, quantity=10)
    stale, fresh, used = (claim_one(release, make_citizen(tag)) for tag in "abc")
    redeem(used.code, 150_00, world.cashier)
    db.session.commit()
    now = utcnow()
    db.session.execute(update(Voucher).where(Voucher.id.in_([stale.id, used.id])).values(valid_until=now - timedelta(hours=1)))
    db.session.commit()
    before = campaign_balances([campaign.id])[campaign.id]

    outcome = runner.run_now("expire_vouchers", now=now)

    assert outcome.ok and outcome.summary == {"expired": 1, "campaigns": 1}
    db.session.expire_all()
    assert db.session.get(Voucher, stale.id).status == VoucherStatus.EXPIRED.value
    assert db.session.get(Voucher, fresh.id).status == VoucherStatus.CLAIMED.value
    assert db.session.get(Voucher, used.id).status == VoucherStatus.REDEEMED.value
    after = campaign_balances([campaign.id])[campaign.id]
    assert after[AccountKind.RESERVED] == before[AccountKind.RESERVED] - 20_00
    assert after[AccountKind.AVAILABLE] == before[AccountKind.AVAILABLE] + 20_00
    assert after[AccountKind.SPENT] == before[AccountKind.SPENT]
    assert verify_ledger() == []
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "voucher.expire"))
    assert entry.object_id == campaign.id and entry.after["expired"] == 1 and entry.after["returned_fen"] == 20_00

    again = runner.run_now("expire_vouchers", now=now)  # nothing left to expire: no second return
    assert again.summary == {"expired": 0, "campaigns": 0}
    assert campaign_balances([campaign.id])[campaign.id] == after


def test_expire_vouchers_splits_the_return_across_co_funders(db):
    from voucher.campaigns.services import SourceInput

    world = make_world()
    campaign, release = make_campaign(world, quantity=4, sources=[
        SourceInput("municipal_finance", "市财政", 600_00, share=2), SourceInput("bank", "合作银行", 300_00, share=1)])
    voucher = claim_one(release, make_citizen())
    db.session.execute(update(Voucher).where(Voucher.id == voucher.id).values(valid_until=utcnow() - timedelta(minutes=1)))
    db.session.commit()
    assert runner.run_now("expire_vouchers").summary["expired"] == 1
    assert verify_ledger() == []


def test_daily_stats_snapshot_a_hand_computed_day(db):
    world = make_world()
    campaign, release = make_campaign(world, quantity=10)  # 20 yuan off orders of 100 yuan or more
    quiet, _ = make_campaign(world, quantity=3, name="没有活动的活动")
    a, b, c = (claim_one(release, make_citizen(tag)) for tag in "abc")
    first = redeem(a.code, 150_00, world.cashier).redemption.id
    redeem(b.code, 120_00, world.cashier)
    db.session.commit()
    reverse(first, reason="收银员操作失误", cashier=world.cashier)
    db.session.commit()
    today = local_today()
    tonight = at_local(today + timedelta(days=1), 0, 45)

    outcome = runner.run_now("daily_stats", now=tonight)

    assert outcome.summary == {"day": today.isoformat(), "campaigns": 1}
    rows = db.session.scalars(select(DailyStat)).all()
    assert [(r.campaign_id, r.day, r.vouchers_claimed, r.vouchers_redeemed, r.subsidy_fen, r.driven_fen,
             r.redemptions_reversed) for r in rows] == [(campaign.id, today, 3, 1, 20_00, 120_00, 1)]
    assert quiet.id not in {r.campaign_id for r in rows}

    redeem(c.code, 200_00, world.cashier)  # a late redemption the same day; the re-run replaces the row
    db.session.commit()
    runner.run_now("daily_stats", now=tonight)
    db.session.expire_all()
    rows = db.session.scalars(select(DailyStat)).all()
    assert [(r.vouchers_redeemed, r.subsidy_fen, r.driven_fen) for r in rows] == [(2, 40_00, 320_00)]


def test_the_nightly_jobs_work_on_the_previous_day_even_when_retried_later(db, only_jobs):
    seen = []
    only_jobs(("stats", "统计", daily(0, 45), lambda now: seen.append(now) or {}))
    at = local(2026, 11, 25, 9, 0)  # the morning after: the slot of the 25th, scheduled for 00:45
    runner.tick(at)
    assert seen == [local(2026, 11, 25, 0, 45)]


# CLI ---------------------------------------------------------------------------------------------


def test_cli_runs_lists_and_ticks_jobs(app, db, only_jobs):
    only_jobs(("hello", "问候", daily(0, 0), lambda now: {"greeted": 3}),
              ("fails", "失败", daily(0, 0), lambda now: 1 / 0))
    db.session.commit()
    cli = app.test_cli_runner()

    result = cli.invoke(args=["jobs", "run", "hello"])
    assert result.exit_code == 0 and "运行完成" in result.output and "greeted" in result.output
    result = cli.invoke(args=["jobs", "run", "fails"])
    assert result.exit_code == 1 and "ZeroDivisionError" in result.output
    assert cli.invoke(args=["jobs", "run", "nope"]).exit_code == 2

    listing = cli.invoke(args=["jobs", "list"])
    assert listing.exit_code == 0 and "hello" in listing.output and "成功" in listing.output and "失败" in listing.output

    ticked = cli.invoke(args=["jobs", "tick"])
    assert ticked.exit_code == 1  # the scheduled slot of "fails" failed
    assert "hello" in ticked.output and "succeeded" in ticked.output
    assert len(runs_of("hello")) == 2  # the hand run and the scheduled slot


# Admin page --------------------------------------------------------------------------------------


def login(client, username):
    client.post("/logout")
    return client.post("/login", data={"username": username, "password": PASSWORD})


def test_jobs_page_is_for_admin_and_finance(client, db):
    make_world()
    assert client.get("/admin/jobs").status_code == 302
    got = {}
    for role in ("maker", "approver", "finance", "auditor", "admin", "manager", "cashier"):
        login(client, role)
        got[role] = (client.get("/admin/jobs").status_code, client.post("/admin/jobs/daily_stats/run").status_code)
    assert got == {role: ((200, 303) if role in ("admin", "finance") else (403, 403)) for role in got}


def test_jobs_page_shows_runs_and_runs_a_job_now(client, db, only_jobs):
    only_jobs(("hello", "问候任务", every(5), lambda now: {"greeted": 3}),
              ("fails", "失败任务", daily(0, 0), lambda now: 1 / 0))
    make_world()
    login(client, "admin")
    page = client.get("/admin/jobs").get_data(as_text=True)
    assert "问候任务" in page and "每 5 分钟" in page and "尚未运行" in page and "立即运行" in page
    assert not re.search(r"<script(?![^>]*\bsrc=)", page)  # no inline script: the CSP forbids it

    response = client.post("/admin/jobs/hello/run", follow_redirects=True)
    text = response.get_data(as_text=True)
    assert "「问候任务」已运行完成：greeted 3" in text and "成功" in text
    response = client.post("/admin/jobs/fails/run", follow_redirects=True)
    text = response.get_data(as_text=True)
    assert "「失败任务」运行失败：ZeroDivisionError" in text and "不再重试" in text
    assert client.post("/admin/jobs/nope/run").status_code == 404
    admin_id = db.session.scalar(select(User.id).where(User.username == "admin"))
    assert db.session.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.action == "job.run_now",
                                                                      AuditEntry.actor_id == admin_id)) == 2


def test_the_nav_links_to_the_jobs_page_for_admin_and_finance_only(client, db):
    make_world()
    for role, shown in (("finance", True), ("admin", True), ("maker", False), ("auditor", False)):
        login(client, role)
        assert ('href="/admin/jobs"' in client.get("/dashboard").get_data(as_text=True)) is shown, role


# The clock and the readiness probe ---------------------------------------------------------------


def test_the_jobs_page_says_plainly_when_no_clock_runs(client, db, only_jobs):
    """The README's first run once left the scheduler off: a release set to open at 21:24 stayed 待开放
    and the jobs page never said why."""
    only_jobs(("hello", "问候任务", every(5), lambda now: {"greeted": 3}))
    make_world()
    login(client, "finance")
    page = client.get("/admin/jobs").get_data(as_text=True)
    assert "定时任务的时钟未在运行" in page and "从未调度过" in page and "SCHEDULER_ENABLED=1" in page
    runner.tick(utcnow() - timedelta(minutes=10))
    assert "定时任务的时钟未在运行" in client.get("/admin/jobs").get_data(as_text=True)
    runner.tick()
    page = client.get("/admin/jobs").get_data(as_text=True)
    assert "定时任务的时钟未在运行" not in page and "定时任务的时钟正在运行" in page
    assert 'data-confirm="立即运行「问候任务」' in page


def test_a_run_says_what_it_did_in_words(client, db, only_jobs):
    """A walk-through read 「生成结算批次」已运行完成：batches=[...] total_fen=66000 failed={}."""
    only_jobs(("settle", "生成结算批次", daily(2), lambda now: {"opened": [3, 4], "total_fen": 66000, "failed": {}}))
    make_world()
    login(client, "finance")
    done = client.post("/admin/jobs/settle/run", follow_redirects=True).get_data(as_text=True)
    assert "「生成结算批次」已运行完成：开放场次 2 个，金额 660.00 元，未能开放 无" in done
    assert "total_fen" not in done and "opened=" not in done


def test_readyz_wants_a_recent_tick_when_the_scheduler_is_on(client, db, monkeypatch, only_jobs):
    only_jobs()
    assert "scheduler" not in client.get("/readyz").get_json()["checks"]  # off: not checked
    monkeypatch.setitem(client.application.config, "SCHEDULER_ENABLED", True)
    response = client.get("/readyz")
    assert response.status_code == 503 and response.get_json()["checks"]["scheduler"].startswith("stale")
    runner.tick(utcnow() - timedelta(minutes=10))
    assert client.get("/readyz").status_code == 503
    runner.tick()
    response = client.get("/readyz")
    assert response.status_code == 200 and response.get_json()["checks"]["scheduler"] == "ok"


def test_the_scheduler_thread_ticks(app, db, only_jobs):
    from voucher.jobs.scheduler import start_scheduler

    only_jobs(("hello", "问候", every(5), lambda now: {"greeted": 1}))
    db.session.commit()
    scheduler = start_scheduler(app)
    try:
        deadline = wall.monotonic() + 15
        while wall.monotonic() < deadline:
            done = [run.status for run in runs_of("hello")] == ["succeeded"]
            db.session.rollback()  # on SQLite a read transaction holds the write lock the tick needs
            if done:
                break
            wall.sleep(0.1)
    finally:
        scheduler.shutdown(wait=True)
        app.extensions.pop("scheduler", None)
    [run] = runs_of("hello")
    assert run.status == "succeeded"
    assert db.session.scalar(select(func.count(SchedulerHeartbeat.holder))) == 1


def test_the_scheduler_starts_only_when_enabled_and_not_in_a_cli_command(app, monkeypatch):
    from voucher.jobs.scheduler import should_start

    monkeypatch.delenv("FLASK_RUN_FROM_CLI", raising=False)
    monkeypatch.setitem(app.config, "SCHEDULER_ENABLED", False)
    assert should_start(app) is False
    monkeypatch.setitem(app.config, "SCHEDULER_ENABLED", True)
    assert should_start(app) is True  # a WSGI server's process
    monkeypatch.setenv("FLASK_RUN_FROM_CLI", "true")
    assert should_start(app) is False  # e.g. flask db upgrade
