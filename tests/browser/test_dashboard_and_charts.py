"""The dashboard and the charts on a 1366 px screen, as drawn: the city's totals above the campaigns, a
header that sorts, and chart text of at least 13 px that never overlaps or runs out of its chart."""
from __future__ import annotations

from tests.browser.conftest import playwright_api, redeem_demo_voucher, sign_in

# What a page looks like does not depend on the database: these run on SQLite only (see conftest.py).
SQLITE_ONLY = True
SCREEN = {"width": 1366, "height": 768}
MIN_TEXT_PX = 13

#: per chart: its title, the smallest text as rendered (font size x the scale of its viewBox), the pairs of
#: texts whose boxes overlap, and the texts that run past the chart's edge
MEASURE_CHARTS = """() => Array.from(document.querySelectorAll('svg.chart')).map(svg => {
  const frame = svg.getBoundingClientRect();
  const scale = frame.width / svg.viewBox.baseVal.width;
  const texts = Array.from(svg.querySelectorAll(':scope > text')).filter(t => t.textContent.trim());
  const boxes = texts.map(t => ({text: t.textContent, box: t.getBoundingClientRect(),
                                 px: parseFloat(getComputedStyle(t).fontSize) * scale}));
  const slack = 2;
  const overlaps = [], outside = [];
  boxes.forEach((a, i) => {
    if (a.box.left < frame.left - 1 || a.box.right > frame.right + 1 || a.box.top < frame.top - 1
        || a.box.bottom > frame.bottom + 1) outside.push(a.text);
    boxes.slice(i + 1).forEach(b => {
      if (a.box.left < b.box.right - slack && b.box.left < a.box.right - slack
          && a.box.top < b.box.bottom - slack && b.box.top < a.box.bottom - slack) overlaps.push(a.text + ' | ' + b.text);
    });
  });
  return {title: svg.querySelector('title').textContent, texts: boxes.length,
          smallest: Math.min(...boxes.map(b => b.px)), overlaps, outside};
})"""


def check_charts(page, expected: int) -> list[dict]:
    charts = page.evaluate(MEASURE_CHARTS)
    assert len(charts) == expected, [c["title"] for c in charts]
    for chart in charts:
        if chart["texts"]:
            assert chart["smallest"] >= MIN_TEXT_PX, chart
        assert not chart["overlaps"], chart
        assert not chart["outside"], chart
    return charts


def test_the_dashboard_puts_the_city_first_and_sorts_by_a_header(demo, new_page, shots):
    expect = playwright_api().expect
    redeem_demo_voucher(demo)
    page = new_page(viewport=SCREEN)
    sign_in(page, "finance")
    page.goto("/dashboard")
    shots(page, "dashboard")
    totals = page.locator("dl.totals")
    # the demo's week of history (33 redemptions) and today's order of 150
    expect(totals.locator("div", has_text="核销笔数")).to_contain_text("34 笔")
    expect(totals.locator("div", has_text="核销金额")).to_contain_text("680.00 元")
    expect(totals.locator("div", has_text="杠杆率（按发放）")).to_contain_text("9.93 倍")
    # the totals sit above the table, within the first screen
    assert totals.bounding_box()["y"] + totals.bounding_box()["height"] < SCREEN["height"]
    # the whole page is a little over two screens, not a stack of seventeen cards (4,347 px before)
    assert page.evaluate("document.documentElement.scrollHeight") < 2200
    page.get_by_role("link", name="拉动消费（元）").click()
    page.wait_for_url("**/dashboard?sort=-driven")
    header = page.get_by_role("columnheader", name="拉动消费（元）")
    expect(header).to_have_attribute("aria-sort", "descending")
    expect(page.locator("table.dashboard-table tbody tr").first).to_contain_text("演示第一期")
    page.get_by_role("link", name="拉动消费（元）").click()
    page.wait_for_url("**/dashboard?sort=driven")
    expect(header).to_have_attribute("aria-sort", "ascending")
    shots(page, "dashboard-sorted")


def test_the_leverage_charts_are_readable_with_an_axis_and_its_unit(demo, new_page, shots):
    """A chart of a single day says so (tests/test_leverage.py draws one); the demo has eight days."""
    expect = playwright_api().expect
    redeem_demo_voucher(demo)  # today's order, after the demo's week of history
    page = new_page(viewport=SCREEN)
    sign_in(page, "finance")
    page.goto("/analytics/leverage")
    shots(page, "leverage")
    charts = check_charts(page, 4)
    assert all(chart["texts"] for chart in charts)
    over_time = page.locator("svg.chart", has_text="按日杠杆率")
    expect(over_time).to_contain_text("单位：倍")
    expect(over_time).not_to_contain_text("仅 1 天数据")
    # (driven 8,143.00 - subsidy 680.00) / 680.00 = 10.975 (shown to two places): a multiple, never a percentage
    expect(page.locator(".card", has_text="市民自付倍数")).to_contain_text("10.97 倍")


def test_the_index_charts_are_readable(demo, new_page, shots):
    from seed import index_demo
    from voucher.cli import SEED_DIR

    index_demo.load_demo(SEED_DIR / "index_demo.csv")  # as `flask seed demo` does
    demo.session.commit()
    page = new_page(viewport=SCREEN)
    sign_in(page, "finance")
    for path, count in (("/index", 1), ("/index/cities/连云港", 3), ("/index/indicators?code=S11", 3),
                        ("/index/what-if", 1)):
        page.goto(path)
        check_charts(page, count)
    shots(page, "what-if")
