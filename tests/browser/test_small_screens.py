"""The counter, the merchant portal, the dashboard and the citizen's pages on a 360 px wide phone: nothing
scrolls sideways, and every button, input, button-like link, the citizen's header links and the voucher cards
are touch targets of at least 44 x 44 CSS px, in the ordinary size and in the large-text mode (大字模式). The
audit log on the office's smallest screen, a 1366 x 768 laptop: long recorded values wrap, nothing scrolls
sideways."""
from __future__ import annotations

from tests.browser.conftest import (
    PHONE,
    record_long_changes,
    redeem_demo_voucher,
    settle_and_pay_demo,
    sign_in,
    sign_out,
)

# What a page looks like does not depend on the database: these run on SQLite only (see conftest.py).
SQLITE_ONLY = True
MIN_TARGET = 44
LAPTOP = {"width": 1366, "height": 768}
SIDEWAYS = "() => ({scroll: document.scrollingElement.scrollWidth, inner: window.innerWidth})"

MEASURE = """() => {
  const small = [];
  const targets = 'button, input:not([type=hidden]), select, textarea, a.btn, .citizen-bar a, a.card-link, a.back-link, .pager a';
  for (const el of document.querySelectorAll(targets)) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;  // not displayed
    if (box.width < %(min)d || box.height < %(min)d) {
      small.push(`${el.outerHTML.slice(0, 90)}: ${Math.round(box.width)} x ${Math.round(box.height)}`);
    }
  }
  return {width: document.documentElement.scrollWidth, small};
}""" % {"min": MIN_TARGET}


def check(page, shots, name: str) -> None:
    shots(page, name)
    found = page.evaluate(MEASURE)
    assert found["width"] <= PHONE["width"], f"{name}: the page is {found['width']} px wide"
    assert not found["small"], f"{name}: touch targets under {MIN_TARGET} px:\n" + "\n".join(found["small"])


def test_citizen_pages_fit_a_360px_phone(demo, new_page, shots):
    page = new_page(viewport=PHONE, is_mobile=True, has_touch=True)
    page.goto("/c/")
    check(page, shots, "offers")
    page.get_by_role("link", name="手机号验证后领取").tap()
    page.wait_for_url("**/c/login")
    check(page, shots, "phone")
    page.get_by_label("手机号码").fill("13812345678")
    page.get_by_role("button", name="获取验证码").tap()
    page.locator(".dev-code").wait_for()
    check(page, shots, "one-time-code")
    page.get_by_label("短信验证码").fill(page.locator(".dev-code").inner_text())
    page.get_by_role("button", name="验证并继续").tap()
    page.wait_for_url("**/c/")
    check(page, shots, "offers-signed-in")
    page.locator("section.voucher-offer", has_text="演示第一期").filter(has_text="第一轮") \
        .get_by_role("button", name="立即领取").tap()
    page.wait_for_url("**/c/vouchers")
    _used_voucher_of(demo, "13812345678")
    page.reload()
    check(page, shots, "my-vouchers")
    page.locator("li.voucher-card.state-usable a.card-link").tap()
    page.wait_for_url("**/c/vouchers/*")
    page.locator("img.qr").evaluate("img => img.decode()")
    assert page.locator("img.qr").bounding_box()["width"] >= 280, page.locator("img.qr").bounding_box()
    check(page, shots, "voucher-qr")
    page.get_by_role("link", name="查看适用门店").tap()
    page.wait_for_url("**/stores")
    check(page, shots, "stores")
    page.goto("/c/history")
    check(page, shots, "history")
    page.goto("/c/login")
    check(page, shots, "change-number")

    # 大字模式: the same pages with the larger type still fit, and their targets grow.
    page.get_by_role("button", name="大字模式").tap()
    page.locator("html.large-text").wait_for()
    check(page, shots, "change-number-large-text")
    for path, name in (("/c/", "offers"), ("/c/vouchers", "my-vouchers"), ("/c/history", "history")):
        page.goto(path)
        check(page, shots, f"{name}-large-text")
    page.goto("/c/vouchers")
    page.locator("li.voucher-card.state-usable a.card-link").tap()
    page.locator("img.qr").evaluate("img => img.decode()")
    check(page, shots, "voucher-qr-large-text")
    page.get_by_role("link", name="查看适用门店").tap()
    page.wait_for_url("**/stores")
    check(page, shots, "stores-large-text")


def _used_voucher_of(db, phone: str) -> None:
    """A voucher of another demo campaign (交通银行社区商圈消费券, 餐饮/零售) for the citizen, redeemed at
    the demo cashier's restaurant: the list then has a used card, the history a row."""
    from sqlalchemy import select

    from voucher.accounts.models import User
    from voucher.campaigns.models import Campaign, Release
    from voucher.counter.redemption import redeem
    from voucher.vouchers import citizens, services

    release_id = db.session.scalar(select(Release.id).join(Campaign).where(Campaign.name.contains("（10 元券）")))
    voucher = services.claim(release_id, citizens.citizen_for(phone))
    redeem(voucher.code, 80_00, db.session.scalar(select(User).where(User.username == "cashier")))
    db.session.commit()


def test_counter_fits_a_360px_phone(demo, new_page, shots):
    redeem_demo_voucher(demo)  # a row with its reversal form
    page = new_page(viewport=PHONE, is_mobile=True, has_touch=True)
    sign_in(page, "cashier")
    page.goto("/counter")
    check(page, shots, "counter")
    page.get_by_label("券码（扫码或输入）").fill("ABCD-EFGH-JKM")
    page.get_by_label("订单金额（元）").fill("150")
    page.get_by_role("button", name="确认核销").tap()
    page.locator("section.result").wait_for()
    check(page, shots, "counter-refused")


def test_merchant_portal_fits_a_360px_phone(demo, new_page, shots):
    settle_and_pay_demo(demo)  # rows on every page: paid, waiting, and a batch with its bank serial
    page = new_page(viewport=PHONE, is_mobile=True, has_touch=True)
    sign_in(page, "manager")
    page.goto("/merchant/redemptions")
    check(page, shots, "manager-redemptions")
    page.goto("/merchant/redemptions?status=paid")
    check(page, shots, "manager-redemptions-filtered")
    page.goto("/merchant/statement")
    page.get_by_text("T0000000").first.wait_for()
    check(page, shots, "statement")
    page.goto("/merchant/staff")
    page.get_by_role("button", name="签发").tap()
    page.get_by_role("button", name="复制令牌").wait_for()
    check(page, shots, "staff-new-token")
    sign_out(page)
    sign_in(page, "cashier")
    page.goto("/merchant/redemptions")
    check(page, shots, "cashier-redemptions")


def test_dashboard_fits_a_360px_phone(demo, new_page, shots):
    """The totals one to a line, each campaign a block of labelled figures, and a sort form instead of the
    table's headers (hidden on a phone)."""
    redeem_demo_voucher(demo)  # figures that are not all zero
    page = new_page(viewport=PHONE, is_mobile=True, has_touch=True)
    sign_in(page, "finance")
    page.goto("/dashboard")
    check(page, shots, "dashboard")
    page.get_by_role("combobox", name="排序").select_option("-driven")
    page.get_by_role("button", name="排序").tap()
    page.wait_for_url("**/dashboard?sort=-driven")
    first = page.locator("table.dashboard-table tbody tr").first
    assert "演示第一期" in first.inner_text()
    # the demo's week of history and today's order of 150, labelled by CSS on a phone
    assert first.locator('td[data-label="拉动消费（元）"]').inner_text() == "8,143.00"
    check(page, shots, "dashboard-sorted")


def test_the_audit_log_fits_a_1366px_laptop_with_long_values(demo, new_page, shots):
    record_long_changes(demo)
    page = new_page(viewport=LAPTOP)
    sign_in(page, "auditor")
    page.goto("/reports/audit")
    page.get_by_role("row").filter(has_text="CMB20270316").first.wait_for()  # the bank line's long serial
    shots(page, "audit-long-values")
    found = page.evaluate(SIDEWAYS)
    assert found["scroll"] <= found["inner"], f"the audit log is {found['scroll']} px wide at {found['inner']} px"
    for summary in page.locator("details.raw summary").all()[:5]:  # the raw records, unfolded, wrap too
        summary.click()
    shots(page, "audit-raw-records")
    found = page.evaluate(SIDEWAYS)
    assert found["scroll"] <= found["inner"], f"with raw records open: {found['scroll']} px wide at {found['inner']} px"
