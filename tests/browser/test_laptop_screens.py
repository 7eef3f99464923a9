"""The staff pages on an office laptop (1280 px, the narrowest in the bureau's offices): nothing scrolls
sideways, whatever the role. A walk-through found 待审批 with a campaign name one character a line and
its buttons past the edge, and 数据看板 1,424 px wide."""
from __future__ import annotations

import pytest

from tests.browser.conftest import redeem_demo_voucher, sign_in, sign_out

# What a page looks like does not depend on the database: these run on SQLite only (see conftest.py).
SQLITE_ONLY = True
LAPTOP = {"width": 1280, "height": 800}

PAGES = {
    "approver": ["/approvals", "/campaigns", "/merchants", "/dashboard"],
    "finance": ["/dashboard", "/analytics/leverage", "/reports/budget", "/finance/settlement", "/finance/periods",
                "/admin/jobs", "/reports/audit", "/reports/vouchers"],
    "manager": ["/merchant/redemptions", "/merchant/statement", "/merchant/staff"],
    "maker": ["/campaigns/new", "/measures"],
}


@pytest.mark.parametrize("role", PAGES)
def test_staff_pages_fit_a_1280px_laptop(role, demo, new_page, shots):
    redeem_demo_voucher(demo)
    page = new_page(viewport=LAPTOP)
    sign_in(page, role)
    wide = {}
    for path in PAGES[role]:
        assert page.goto(path).status == 200, path
        page.wait_for_load_state()
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > LAPTOP["width"]:
            wide[path] = width
            shots(page, path.strip("/").replace("/", "-"))
    sign_out(page)
    assert wide == {}, f"pages wider than {LAPTOP['width']} px: {wide}"
