"""The main screens pass axe-core's WCAG 2.x A and AA rules: labels, contrast, names of buttons and links,
language, headings, target size (axe-core is vendored in tests/browser/vendor, MPL-2.0)."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from tests.browser.conftest import (
    PHONE,
    claim_demo_voucher,
    record_long_changes,
    redeem_demo_voucher,
    settle_and_pay_demo,
    sign_in,
)
from voucher.campaigns.models import Campaign

# What a page looks like does not depend on the database: these run on SQLite only (see conftest.py).
SQLITE_ONLY = True
AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text(encoding="utf-8")
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
RUN = """async (tags) => {
  const results = await axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']});
  return {passes: results.passes.length, violations: results.violations.map(v => `${v.id} (${v.impact}): ${v.help}\\n` +
    v.nodes.slice(0, 5).map(n => `    ${n.target.join(' ')}: ${n.failureSummary.replace(/\\n/g, ' ')}`).join('\\n'))};
}"""


def _campaign_path(db, name_part: str) -> str:
    campaign_id = db.session.scalar(select(Campaign.id).where(Campaign.name.contains(name_part)))
    db.session.rollback()
    return f"/campaigns/{campaign_id}"


def _citizen(page, phone: str = "13812345678") -> None:
    page.goto("/c/login")
    page.get_by_label("手机号码").fill(phone)
    page.get_by_role("button", name="获取验证码").click()
    page.get_by_label("短信验证码").fill(page.locator(".dev-code").inner_text())
    page.get_by_role("button", name="验证并继续").click()
    page.wait_for_url("**/c/")


def _counter_after_a_scan(page, db) -> None:
    token = claim_demo_voucher(db)
    sign_in(page, "cashier")
    page.goto("/counter")
    page.keyboard.type(token)
    page.keyboard.press("Enter")
    page.keyboard.type("150")
    page.keyboard.press("Enter")
    page.locator("section.result.ok").wait_for()


def _counter_refusal(page, db) -> None:
    sign_in(page, "cashier")
    page.goto("/counter")
    page.keyboard.type("ABCD-EFGH-JKM")
    page.keyboard.press("Enter")
    page.keyboard.type("150")
    page.keyboard.press("Enter")
    page.locator("section.result.fail").wait_for()


def _otp_step(page, db) -> None:
    page.goto("/c/login")
    page.get_by_label("手机号码").fill("13812345678")
    page.get_by_role("button", name="获取验证码").click()
    page.locator(".dev-code").wait_for()


def _my_vouchers(page, db) -> None:
    _citizen(page)
    page.locator("section.voucher-offer", has_text="演示第一期").filter(has_text="第一轮") \
        .get_by_role("button", name="立即领取").click()
    page.wait_for_url("**/c/vouchers")


def _voucher(page, db) -> None:
    """One voucher's own page, its QR code large."""
    _my_vouchers(page, db)
    page.locator("li.voucher-card.state-usable a.card-link").click()
    page.locator("img.qr").evaluate("img => img.decode()")


def _used_voucher(page, db) -> None:
    """A used voucher's page (no QR code; when, where and how much), in the large-text mode."""
    _citizen(page, "13900002222")  # redeem_demo_voucher's citizen: their voucher was used at the counter
    page.get_by_role("button", name="大字模式").click()
    page.locator("html.large-text").wait_for()
    page.goto("/c/vouchers")
    page.locator("li.voucher-card.state-used a.card-link").click()
    page.locator(".usage-list").wait_for()


def _history(page, db) -> None:
    _citizen(page, "13900002222")
    page.goto("/c/history")


def _stores(page, db) -> None:
    _voucher(page, db)
    page.get_by_role("link", name="查看适用门店").click()
    page.get_by_label("区县").select_option("海州区")
    page.get_by_role("button", name="查找").click()
    page.locator(".store-list").wait_for()


def _signed_in_login(page, db) -> None:
    """The sign-in page of a signed-in citizen: how to change number."""
    _citizen(page)
    page.goto("/c/login")


def _audit_log(page, db) -> None:
    """The audit log with changes marked and long values, one raw record unfolded, and its page links."""
    record_long_changes(db)
    sign_in(page, "auditor")
    page.goto("/reports/audit")
    page.locator("details.raw summary").first.click()


def _audit_log_page_2(page, db) -> None:
    """The audit log's second page: the page links, the current one marked."""
    sign_in(page, "auditor")
    page.goto("/reports/audit?page=2")
    page.get_by_role("navigation", name="分页").first.locator("[aria-current=page]").wait_for()


def _staff(username: str, path):
    def open_screen(page, db) -> None:
        sign_in(page, username)
        page.goto(path(db) if callable(path) else path)

    return open_screen


def _new_terminal_token(page, db) -> None:
    sign_in(page, "manager")
    page.goto("/merchant/staff")
    page.get_by_role("button", name="签发").click()
    page.get_by_role("button", name="复制令牌").wait_for()


def _temporary_password(page, db) -> None:
    sign_in(page, "manager")
    page.goto("/merchant/staff")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("row").filter(has_text="cashier").get_by_role("button", name="重置密码").click()
    page.get_by_role("heading", name="已重置密码").wait_for()


SCREENS = {
    "home": lambda page, db: page.goto("/"),
    "login": lambda page, db: page.goto("/login"),
    "dashboard": _staff("finance", "/dashboard"),
    "dashboard-sorted": _staff("auditor", "/dashboard?sort=leverage"),
    "dashboard-phone": _staff("finance", "/dashboard"),
    "campaign-form": _staff("maker", "/campaigns/new"),
    "campaign-detail": _staff("maker", lambda db: _campaign_path(db, "演示第一期")),
    "campaign-detail-pending": _staff("approver", lambda db: _campaign_path(db, "待审批")),
    "approvals": _staff("approver", "/approvals"),
    "counter": _counter_after_a_scan,
    "counter-refusal": _counter_refusal,
    "citizen-home": lambda page, db: _citizen(page),
    "citizen-one-time-code": _otp_step,
    "my-vouchers": _my_vouchers,
    "voucher-qr": _voucher,
    "voucher-used-large-text": _used_voucher,
    "citizen-history": _history,
    "citizen-stores": _stores,
    "citizen-change-number": _signed_in_login,
    "budget-report": _staff("finance", "/reports/budget"),
    "leverage": _staff("finance", "/analytics/leverage"),
    "change-password": _staff("finance", "/account/password"),
    "user-management": _staff("admin", "/admin/users"),
    "merchant-redemptions": _staff("manager", "/merchant/redemptions"),
    "merchant-redemptions-phone": _staff("manager", "/merchant/redemptions?status=paid"),
    "cashier-redemptions-phone": _staff("cashier", "/merchant/redemptions"),
    "merchant-statement": _staff("manager", "/merchant/statement"),
    "merchant-statement-phone": _staff("manager", "/merchant/statement"),
    "merchant-staff-new-token": _new_terminal_token,
    "merchant-staff-new-token-phone": _new_terminal_token,
    "cashier-temporary-password": _temporary_password,
    "merchant-apply": lambda page, db: page.goto("/merchants/apply"),
    "merchant-application-status": lambda page, db: page.goto("/merchants/apply/status"),
    "campaign-list": _staff("approver", "/campaigns?q=消费券"),
    "merchant-list": _staff("approver", "/merchants"),
    "settlement-batches": _staff("finance", "/finance/settlement"),
    "month-end-close": _staff("admin", "/finance/periods"),
    "audit-log": _audit_log,
    "audit-log-page-2": _audit_log_page_2,
}
PHONE_SCREENS = {"counter", "counter-refusal", "citizen-home", "citizen-one-time-code", "my-vouchers",
                 "merchant-redemptions-phone", "cashier-redemptions-phone", "merchant-statement-phone",
                 "merchant-staff-new-token-phone", "dashboard-phone", "voucher-qr",
                 "voucher-used-large-text", "citizen-history", "citizen-stores", "citizen-change-number",
                 "merchant-application-status"}
#: the merchant portal's screens get its figures: a paid batch, a redemption waiting, another merchant's
PORTAL_SCREENS = {name for name in SCREENS if name.startswith(("merchant-", "cashier-"))}


@pytest.mark.parametrize("screen", SCREENS)
def test_screen_passes_axe(screen, demo, new_page, shots):
    if screen in PORTAL_SCREENS:
        settle_and_pay_demo(demo)
    else:
        redeem_demo_voucher(demo)  # figures on the dashboards, a row at the counter
    options = dict(viewport=PHONE, is_mobile=True, has_touch=True) if screen in PHONE_SCREENS else {}
    page = new_page(**options)
    SCREENS[screen](page, demo)
    page.wait_for_load_state()
    assert page.title()
    # Evaluated through the DevTools protocol, not a <script> tag: the Content Security Policy allows no inline script.
    page.evaluate(AXE + "\n;0")
    found = page.evaluate(RUN, TAGS)
    shots(page, "screen")
    assert found["passes"]  # axe did run its rules
    violations = found["violations"]
    assert not violations, f"{screen} ({page.url}):\n" + "\n".join(violations)
