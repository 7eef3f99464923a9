"""Browser tests: the app served on a free port, driven by headless Chromium through Playwright.

The browser is the system's (Debian's `chromium`, or CHROMIUM_PATH): Playwright's own browser download
is never used. Without a browser (or without Playwright) these tests are skipped, except with CI=true,
where that is a failure, as for PostgreSQL. They run on both databases like every other DB test:
each journey takes a few seconds.

The served app is a second app on the test database with CSRF on (a real browser submits the forms) and
no SERVER_NAME (the browser asks for 127.0.0.1:<port>). Each test gets the demo data (`seed demo`),
and the `db` fixture empties the tables afterwards. Screenshots go to test-artifacts/screenshots/<database>/.
"""
from __future__ import annotations

import os
import re
import shutil
import threading
from pathlib import Path

import pytest

from tests.conftest import make_app

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
DEMO_PASSWORD = "demo1234"
PHONE = {"width": 360, "height": 740}
# Console messages that are not the page's fault: the browser's own favicon request.
IGNORED_CONSOLE = re.compile(r"favicon\.ico")


def pytest_collection_modifyitems(config, items):
    """The journeys run on both databases; checks of how pages look (modules with SQLITE_ONLY = True),
    which no database changes, run once, on SQLite, to keep the suite's time down."""
    deselected = [
        item for item in items
        if getattr(getattr(item, "module", None), "SQLITE_ONLY", False)
        and getattr(item, "callspec", None) and item.callspec.params.get("database_url") == "postgresql"
    ]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item not in deselected]


def _browser_path() -> str | None:
    for candidate in (os.environ.get("CHROMIUM_PATH"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


def _unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"Browser tests are required in CI: {reason}")
    pytest.skip(reason)


def playwright_api():
    """playwright.sync_api, for the test modules: without it their tests are skipped (outside CI)."""
    try:
        from playwright import sync_api
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("Playwright is not installed (pip install -e '.[test]')", allow_module_level=True)
    return sync_api


@pytest.fixture(scope="session")
def browser():
    sync_playwright = playwright_api().sync_playwright
    path = _browser_path()
    if path is None:
        _unavailable("no Chromium found (apt-get install chromium, or set CHROMIUM_PATH)")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=path, headless=True)
        yield instance
        instance.close()


@pytest.fixture(scope="session")
def live_server(app, database_url):
    """The app served in a background thread; yields its base URL."""
    from werkzeug.serving import make_server

    # Rate limits off: every test signs in again from 127.0.0.1 (the limits have tests of their own).
    served = make_app(database_url, WTF_CSRF_ENABLED=True, SERVER_NAME=None, RATELIMIT_ENABLED=False)
    server = make_server("127.0.0.1", 0, served, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    with served.app_context():
        from voucher.core.db import db

        db.engine.dispose()


@pytest.fixture
def demo(db):
    """The demo data of `flask seed demo` (accounts with password demo1234, an open round, ...)."""
    from seed.demo import load_demo
    from voucher.cli import SEED_DIR

    load_demo(SEED_DIR / "demo.toml")
    db.session.commit()  # and no transaction left open: on SQLite it would hold the write lock
    return db


class Shots:
    """Numbered artefacts of one test: test-artifacts/screenshots/<database>/<test>-01-<name>.png.
    A test's files from an earlier run are removed first."""

    def __init__(self, folder: Path, prefix: str):
        self.folder, self.prefix, self.count = folder, prefix, 0
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob(f"{prefix}-[0-9][0-9]-*"):
            old.unlink()

    def next_path(self, name: str) -> Path:
        self.count += 1
        return self.folder / f"{self.prefix}-{self.count:02d}-{name}"

    def __call__(self, page, name: str) -> Path:
        path = self.next_path(f"{name}.png")
        page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def shots(request, database_url) -> Shots:
    database = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    callspec = getattr(request.node, "callspec", None)
    params = [str(v) for k, v in (callspec.params.items() if callspec else ()) if k != "database_url"]
    name = "-".join([request.node.originalname.removeprefix("test_"), *params])
    return Shots(ARTIFACTS / database, re.sub(r"[^\w.-]+", "_", name))


@pytest.fixture
def new_page(browser, live_server):
    """Opens pages in fresh contexts (a context is a separate browser profile: its own cookies).

    Console errors and uncaught script errors fail the test: a script refused by the Content Security
    Policy or an image that did not load shows up there."""
    contexts, problems = [], []

    def open_page(**options):
        context = browser.new_context(base_url=live_server, locale="zh-CN", accept_downloads=True, **options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.on("console", lambda message: _is_problem(page, message) and problems.append(f"{page.url}: {message.text}"))
        page.on("pageerror", lambda error: problems.append(f"{page.url}: {error}"))
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert not problems, "errors in the browser console:\n" + "\n".join(problems)


def _is_problem(page, message) -> bool:
    if message.type != "error" or IGNORED_CONSOLE.search(message.text + str(message.location)):
        return False
    # A page that itself answers 403 or 422 is logged too; the tests check those statuses themselves.
    return not (message.location.get("url") == page.url and "responded with a status" in message.text)


def sign_in(page, username: str, password: str = DEMO_PASSWORD) -> None:
    expect = playwright_api().expect
    page.goto("/login")
    page.get_by_label("用户名", exact=True).fill(username)
    page.get_by_label("密码", exact=True).fill(password)
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("button", name="退出"), f"{username} could not sign in").to_be_visible()


def sign_out(page) -> None:
    expect = playwright_api().expect
    page.get_by_role("button", name="退出").click()
    expect(page.get_by_role("heading", name="登录")).to_be_visible()


def nav(page, name: str) -> None:
    """Follows a link of the main navigation (by its words; 待审批 may carry a count: "待审批 2 项")."""
    link = re.compile(rf"^{re.escape(name)}( \d+ 项)?$")
    page.get_by_role("navigation", name="主导航").get_by_role("link", name=link).click()
    page.wait_for_load_state()


def claim_demo_voucher(db, phone: str = "13900001111") -> str:
    """A voucher of the demo's open round 第一轮 (满100减20, 餐饮/零售) claimed by a citizen: the text of its QR.
    (The campaign's other first-come release, 上周体验场, is the demo's history, all claimed.)"""
    from sqlalchemy import select

    from voucher.campaigns.models import Campaign, Release
    from voucher.vouchers import citizens, services

    release_id = db.session.scalar(
        select(Release.id).join(Campaign).where(Campaign.name.contains("演示第一期"), Release.name == "第一轮")
    )
    voucher = services.claim(release_id, citizens.citizen_for(phone))
    token = services.qr_token(voucher)
    db.session.commit()
    return token


def redeem_demo_voucher(db, phone: str = "13900002222") -> None:
    """A demo voucher redeemed for 150 yuan at the demo cashier's restaurant."""
    from sqlalchemy import select

    from voucher.accounts.models import User
    from voucher.counter.redemption import redeem

    token = claim_demo_voucher(db, phone)
    redeem(token, 150_00, db.session.scalar(select(User).where(User.username == "cashier")))
    db.session.commit()


def settle_and_pay_demo(db) -> None:
    """The merchant portal's figures: a demo redemption yesterday, settled and paid through the bank (a
    payout file, the bank's statement, the matched line confirmed), one today not settled yet, and one at
    another merchant (苏果便民超市) that the demo manager must never see. Moves the clock a day on (the
    `clock` fixture puts it back)."""
    from datetime import timedelta

    from sqlalchemy import select

    from tests.factories import pay_through_bank
    from voucher.accounts.models import User
    from voucher.core.clock import set_clock, to_local, utcnow
    from voucher.counter.redemption import redeem
    from voucher.settlement import batches

    redeem_demo_voucher(db, "13900003333")
    redeemed_on = to_local(utcnow()).date()
    set_clock(utcnow() + timedelta(days=1, hours=1))
    finance = db.session.scalar(select(User).where(User.username == "finance"))
    built = batches.build_batches(redeemed_on, finance)
    pay_through_bank(built.batches, finance)
    db.session.commit()
    redeem_demo_voucher(db, "13900004444")
    market = db.session.scalar(select(User).where(User.username == "cashier_market"))
    redeem(claim_demo_voucher(db, "13900005555"), 234_00, market)
    db.session.commit()


def record_long_changes(db) -> None:
    """Audit records with long values that cannot break at a space (a bank file's name, its SHA-256, a
    bank serial), before and after, as a bank statement's import and a line's resolution record them."""
    from voucher.core import audit
    from voucher.core.clock import utcnow

    file_name = "2027年3月招商银行连云港分行商户结算对账单_" + "CMB_SETTLEMENT_STATEMENT_EXPORT_" * 3 + "v2.xlsx"
    serial = "CMB20270316" + "0123456789" * 5
    for action, object_type, before, after in (
        ("reconciliation.import", "bank_statements", None, {
            "file_name": file_name, "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "lines": 1280, "skipped": 3, "total_fen": 123_456_789_01, "mapping": "招商银行（CMB）标准格式",
            "matched": 1270, "amount_mismatch": 4, "unmatched_line": 6, "skipped_rows": 2, "non_payout": 12}),
        ("reconciliation.resolve_line", "bank_statement_lines",
         {"match_status": "amount_mismatch", "serial": serial, "reference": "JS20270316" + "M000123F000045" * 4},
         {"match_status": "amount_mismatch", "serial": serial + "R", "amount_fen": 1_500_00,
          "reference": "JS20270316" + "M000123F000045" * 4,
          "resolution": "银行已确认差额为手续费，由商户自行承担，" * 6}),
    ):
        audit.write(audit.signed({"at": utcnow(), "actor_id": None, "actor_label": "finance", "action": action,
                                  "object_type": object_type, "object_id": 1, "before": before, "after": after}))
    db.session.commit()
