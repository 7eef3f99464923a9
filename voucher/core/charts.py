"""Small server-side SVG charts for every page that draws one: no script, no CDN, readable at a glance,
Chinese labels.

Each function returns markup for an inline <svg> with a <title> (read by screen readers) and its
numbers printed on the marks, so the chart never hides a figure the table would show. Bars, floor and
excess, and a line for leverage; radar, lines, distribution and rank intervals for the index.

Readable at the width the pages show them (1366 px screens): an SVG scales to its box, so a chart is
drawn in the units it is shown in. One across the page is WIDTH wide (shown wider, so larger); one of the
two in a row of `.chart-grid` is HALF wide, the width of that box, so its text is drawn at the size it is
read, never under SMALL (13 px). Line charts have a y-axis with ticks and its unit, start at zero (the
chart says so when one does not), and say when there is a single point rather than drawing a lone dot.
Labels that could collide are measured (estimated: a CJK character is one em, other characters 0.62)
and shortened or moved apart.
"""
from __future__ import annotations

import math
from typing import Any

from markupsafe import Markup, escape

WIDTH = 640
#: one of two charts side by side in .chart-grid: the box's inner width on a 1366 px screen
HALF = 500
FONT = 14
#: the smallest text a chart draws
SMALL = 13
BAR = 22
GAP = 10
LABEL_WIDTH = 150
COLOURS = ("#1f5fa8", "#9ec3ea")
PEER = "#c0504d"
MUTED = "#999"
AXIS = "#666"
GRID = "#e3e6ea"


def svg(height: float, title: str, body: str, width: int = WIDTH) -> Markup:
    return Markup(
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height:g}" width="100%" '
        f'xmlns="http://www.w3.org/2000/svg" font-size="{FONT}"><title>{escape(title)}</title>{body}</svg>'
    )


def text_width(text: str, size: float = FONT) -> float:
    """An estimate of the drawn width: CJK and full-width characters one em, the others 0.62 em."""
    return sum(size if ord(ch) >= 0x2E80 else size * 0.62 for ch in text)


def fit(text: str, room: float, size: float = FONT) -> str:
    """The text, shortened with an ellipsis where it would be wider than `room`."""
    if text_width(text, size) <= room:
        return text
    while text and text_width(text + "…", size) > room:
        text = text[:-1]
    return text + "…"


def _label(x: float, y: float, text: str, room: float, size: float = FONT, anchor: str = "end") -> str:
    """A label that fits its room; shortened, it keeps the whole text as its tooltip."""
    shown = fit(text, room, size)
    tip = f"<title>{escape(text)}</title>" if shown != text else ""
    size_attr = f' font-size="{size}"' if size != FONT else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{size_attr}>{tip}{escape(shown)}</text>'


def _with_unit(text: str, unit: str) -> str:
    return f"{text} {unit}" if unit else text


# Axes -----------------------------------------------------------------------------------------------


def ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round values (1, 2, 2.5 or 5 times a power of ten apart) from at or below `low` to at or above `high`."""
    if high <= low:
        high = low + (abs(low) or 1)
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * (1 - 1e-9))
    first = math.floor(low / step + 1e-9) * step
    last = math.ceil(high / step - 1e-9) * step
    return [first + i * step for i in range(int(round((last - first) / step)) + 1)]


def tick_text(value: float, step: float) -> str:
    """A tick's value with as many decimals as the step needs, thousands grouped."""
    decimals = 0
    while decimals < 6 and abs(step * 10 ** decimals - round(step * 10 ** decimals)) > 1e-6:
        decimals += 1
    return f"{value + 0.0:,.{decimals}f}"  # + 0.0: no "-0"


class _YAxis:
    """A y-axis over [low, high] with round ticks: zero-based unless told otherwise, which it then says."""

    def __init__(self, values: list[float], unit: str, zero_based: bool = True):
        low, high = min(values), max(values)
        if zero_based:
            low, high = min(low, 0.0), max(high, 0.0)
        self.ticks = ticks(low, high)
        self.low, self.high = self.ticks[0], self.ticks[-1]
        step = self.ticks[1] - self.ticks[0]
        self.labels = [tick_text(t, step) for t in self.ticks]
        self.unit = unit
        #: the axis does not start at zero: it says so (a reader assumes it does)
        self.broken = self.low > 0 or self.high < 0
        self.width = max(text_width(label, SMALL) for label in self.labels) + 14

    def y(self, value: float, top: float, bottom: float) -> float:
        return bottom - (bottom - top) * (value - self.low) / ((self.high - self.low) or 1)

    def draw(self, left: float, right: float, top: float, bottom: float, chart_width: int) -> str:
        parts = []
        for tick, label in zip(self.ticks, self.labels):
            y = self.y(tick, top, bottom)
            parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="{GRID}"/>'
                         f'<line x1="{left - 5}" y1="{y:.1f}" x2="{left}" y2="{y:.1f}" stroke="{AXIS}"/>'
                         f'<text x="{left - 8}" y="{y + 4.5:.1f}" text-anchor="end" font-size="{SMALL}">{label}</text>')
        parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="{AXIS}"/>'
                     f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="{AXIS}"/>')
        if self.unit:
            parts.append(_label(4, 16, f"单位：{self.unit}", chart_width / 2 - 8, SMALL, "start"))
        if self.broken:
            # a zigzag on the axis and the words: the scale is cut, small moves look large
            parts.append(f'<path d="M{left - 6},{bottom - 10} l12,-4 m-12,10 l12,-4" stroke="{AXIS}" fill="none"/>'
                         f'<text x="{chart_width - 4}" y="16" text-anchor="end" font-size="{SMALL}">'
                         f'纵轴不从 0 开始（从 {self.labels[0]} 起）</text>')
        return "".join(parts)


# The leverage page ----------------------------------------------------------------------------------


def bars(items: list[tuple[str, float | None]], title: str, fmt: str = "{:.2f}", unit: str = "",
         width: int = WIDTH) -> Markup:
    """Horizontal bars, one per item, its value (and unit) at its end; None is drawn as no bar and labelled —."""
    texts = ["—" if v is None else _with_unit(fmt.format(v), unit) for _, v in items]
    values = [v for _, v in items if v is not None]
    top = max(values, default=0) or 1
    room = max((text_width(t) for t in texts), default=0) + 12
    span = width - LABEL_WIDTH - room
    parts = []
    for i, ((label, value), text) in enumerate(zip(items, texts)):
        y = i * (BAR + GAP)
        bar = 0 if value is None else max(1, int(span * max(value, 0) / top))
        parts.append(
            _label(LABEL_WIDTH - 8, y + BAR - 6, label, LABEL_WIDTH - 12)
            + f'<rect x="{LABEL_WIDTH}" y="{y}" width="{bar}" height="{BAR}" fill="{COLOURS[0]}"/>'
            f'<text x="{LABEL_WIDTH + bar + 6}" y="{y + BAR - 6}">{escape(text)}</text>'
        )
    return svg(max(1, len(items)) * (BAR + GAP), title, "".join(parts), width)


def floor_and_excess(items: list[tuple[str, float | None, float | None]], title: str, unit: str = "",
                     width: int = WIDTH) -> Markup:
    """Stacked bars: the mechanical floor, then the excess above it (a negative excess draws none)."""
    texts = ["—" if floor is None else _with_unit(f"{floor:.2f} {'+' if (excess or 0) >= 0 else '−'} {abs(excess or 0):.2f}", unit)
             for _, floor, excess in items]
    totals = [(f or 0) + max(e or 0, 0) for _, f, e in items]
    top = max(totals, default=0) or 1
    room = max((text_width(t) for t in texts), default=0) + 12
    span = width - LABEL_WIDTH - room
    parts = [
        f'<rect x="{LABEL_WIDTH}" y="2" width="14" height="14" fill="{COLOURS[1]}"/>'
        f'<text x="{LABEL_WIDTH + 20}" y="15">机制下限</text>'
        f'<rect x="{LABEL_WIDTH + 110}" y="2" width="14" height="14" fill="{COLOURS[0]}"/>'
        f'<text x="{LABEL_WIDTH + 130}" y="15">超出下限</text>'
    ]
    for i, ((label, floor, excess), text) in enumerate(zip(items, texts)):
        y = 28 + i * (BAR + GAP)
        floor_width = int(span * (floor or 0) / top)
        excess_width = int(span * max(excess or 0, 0) / top)
        parts.append(
            _label(LABEL_WIDTH - 8, y + BAR - 6, label, LABEL_WIDTH - 12)
            + f'<rect x="{LABEL_WIDTH}" y="{y}" width="{floor_width}" height="{BAR}" fill="{COLOURS[1]}"/>'
            f'<rect x="{LABEL_WIDTH + floor_width}" y="{y}" width="{excess_width}" height="{BAR}" fill="{COLOURS[0]}"/>'
            f'<text x="{LABEL_WIDTH + floor_width + excess_width + 6}" y="{y + BAR - 6}">{escape(text)}</text>'
        )
    return svg(28 + max(1, len(items)) * (BAR + GAP), title, "".join(parts), width)


def line(points: list[tuple[str, float | None]], title: str, unit: str = "倍", fmt: str = "{:.2f}",
         width: int = WIDTH, what: str = "天") -> Markup:
    """A line over time (labels are dates, in order) on a zero-based y-axis with ticks and its unit; the
    first and last dates and the peak are named. A single point is drawn with its value and a note that
    one `what` (天: day) is not a trend."""
    known = [(i, v) for i, (_, v) in enumerate(points) if v is not None]
    if not known:
        return svg(40, title, '<text x="10" y="24">暂无数据</text>', width)
    axis = _YAxis([v for _, v in known], unit)
    height, top, bottom = 250, 44, 206
    left, right = max(44.0, axis.width), width - 16
    inner = 14  # the first and last points stand off the axes
    single = len(points) == 1
    step = 0.0 if single else (right - left - 2 * inner) / (len(points) - 1)

    def x(i: int) -> float:
        return (left + right) / 2 if single else left + inner + i * step

    xy = [(x(i), axis.y(v, top, bottom), v) for i, v in known]
    parts = [axis.draw(left, right, top, bottom, width)]
    if len(xy) > 1:
        path = " ".join(f"{'M' if n == 0 else 'L'}{px:.1f},{py:.1f}" for n, (px, py, _) in enumerate(xy))
        parts.append(f'<path d="{path}" fill="none" stroke="{COLOURS[0]}" stroke-width="2"/>')
    dots = len(xy) <= 62  # beyond two months of days the dots would merge into the line
    for (px, py, v), (i, _) in zip(xy, known):
        if dots or len(xy) == 1:
            parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="{5 if len(xy) == 1 else 3}" fill="{COLOURS[0]}">'
                         f'<title>{escape(points[i][0])}：{escape(_with_unit(fmt.format(v), unit))}</title></circle>')
    # the dates under the axis: one under a single point, else the first and last (and the middle, with room)
    date_y = bottom + 20
    if single:
        parts.append(f'<text x="{x(0):.1f}" y="{date_y}" text-anchor="middle">{escape(points[0][0])}</text>')
    else:
        parts.append(f'<text x="{x(0):.1f}" y="{date_y}" text-anchor="start">{escape(points[0][0])}</text>'
                     f'<text x="{x(len(points) - 1):.1f}" y="{date_y}" text-anchor="end">{escape(points[-1][0])}</text>')
        middle = (len(points) - 1) // 2
        label_room = max(text_width(points[k][0]) for k in (0, middle, len(points) - 1)) * 3 + 40
        if len(points) >= 5 and right - left >= label_room:
            parts.append(f'<text x="{x(middle):.1f}" y="{date_y}" text-anchor="middle">{escape(points[middle][0])}</text>')
    # the value over the peak (over the only point), kept inside the chart
    peak_x, peak_y, peak = max(xy, key=lambda item: item[2])
    text = _with_unit(fmt.format(peak), unit) if len(xy) == 1 else f"最高 {fmt.format(peak)}"
    half = text_width(text) / 2
    anchor_x = min(max(peak_x, left + half + 4), right - half)
    parts.append(f'<text x="{anchor_x:.1f}" y="{peak_y - 10:.1f}" text-anchor="middle" font-weight="600">'
                 f'{escape(text)}</text>')
    if single:
        parts.append(f'<text x="{(left + right) / 2:.1f}" y="{height - 6}" text-anchor="middle" font-size="{SMALL}" '
                     f'fill="#555">仅 1 {what}数据，不足以显示走势</text>')
    return svg(height, title, "".join(parts), width)


def lorenz(curve: list[tuple[float, float]], title: str, marks: list[tuple[float, str]] | None = None,
           width: int = HALF) -> Markup:
    """A concentration (Lorenz) curve: the share of the amount (y) held by the smallest share of merchants
    (x), both 0-100 %, against the diagonal of perfect equality. `marks` names points on the curve:
    (share of merchants, text), such as the top 10 % (x = 0.9) and what they hold."""
    if not curve:
        return svg(40, title, '<text x="10" y="24">暂无数据</text>', width)
    height, top, bottom = 360, 30, 300
    left, right = 56.0, width - 20.0

    def x(share: float) -> float:
        return left + (right - left) * share

    def y(share: float) -> float:
        return bottom - (bottom - top) * share

    parts = []
    for k in range(6):
        share = k / 5
        parts.append(f'<line x1="{left}" y1="{y(share):.1f}" x2="{right}" y2="{y(share):.1f}" stroke="{GRID}"/>'
                     f'<text x="{left - 8}" y="{y(share) + 4.5:.1f}" text-anchor="end" font-size="{SMALL}">{k * 20}%</text>'
                     f'<text x="{x(share):.1f}" y="{bottom + 18}" text-anchor="middle" font-size="{SMALL}">{k * 20}%</text>')
    parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="{AXIS}"/>'
                 f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="{AXIS}"/>'
                 f'<line x1="{x(0):.1f}" y1="{y(0):.1f}" x2="{x(1):.1f}" y2="{y(1):.1f}" stroke="{MUTED}" '
                 f'stroke-dasharray="6 4"/>'
                 f'<text x="{x(0.5) - 6:.1f}" y="{y(0.5) - 8:.1f}" text-anchor="end" font-size="{SMALL}" fill="#555">'
                 f'完全平均</text>')
    path = " ".join(f"{'M' if n == 0 else 'L'}{x(a):.1f},{y(b):.1f}" for n, (a, b) in enumerate(curve))
    parts.append(f'<path d="{path}" fill="none" stroke="{COLOURS[0]}" stroke-width="2.5"/>')
    for share, text in marks or []:
        held = _on_curve(curve, share)
        px, py = x(share), y(held)
        parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="4" fill="{PEER}"><title>{escape(text)}</title></circle>'
                     + _label(px - 8, py - 10, text, px - left - 8, SMALL))
    parts.append(_label(4, 16, "纵轴：金额累计占比", width / 2, SMALL, "start")
                 + f'<text x="{right:.1f}" y="{height - 12}" text-anchor="end" font-size="{SMALL}">'
                 f'横轴：商户累计占比（按金额从小到大）</text>')
    return svg(height, title, "".join(parts), width)


def _on_curve(curve: list[tuple[float, float]], share: float) -> float:
    """The curve's height at `share` of merchants, between its two nearest points."""
    for (a0, b0), (a1, b1) in zip(curve, curve[1:]):
        if a0 <= share <= a1:
            return b0 if a1 == a0 else b0 + (b1 - b0) * (share - a0) / (a1 - a0)
    return curve[-1][1]


# The index pages ------------------------------------------------------------------------------------


def radar(axes: list[str], series: list[tuple[str, list[float]]], title: str, size: int = 260,
          margin: int = 120) -> Markup:
    """A radar of scores on 0-1 (one polygon per series, the first filled); each axis labelled with its
    name and, beneath, the first series' value. `margin` on either side holds the labels."""
    n = len(axes)
    if n < 3:
        return svg(40, title, '<text x="10" y="24">维度不足，无法绘制雷达图</text>', size + 2 * margin)
    width = size + 2 * margin
    top = 18 * len(series) + 40  # the legend, then room for the top label's two lines
    cx, cy, r = width / 2, top + size / 2, size / 2
    colours = (COLOURS[0], PEER, "#6a9f3a")

    def point(i: int, v: float) -> tuple[float, float]:
        angle = -math.pi / 2 + 2 * math.pi * i / n
        v = max(0.0, min(1.0, v))
        return cx + r * v * math.cos(angle), cy + r * v * math.sin(angle)

    parts = []
    for ring in (0.25, 0.5, 0.75, 1.0):
        ring_points = " ".join(f"{x:.1f},{y:.1f}" for x, y in (point(i, ring) for i in range(n)))
        parts.append(f'<polygon points="{ring_points}" fill="none" stroke="#ddd"/>')
    for i, label in enumerate(axes):
        x, y = point(i, 1.0)
        lx, ly = point(i, 1.1)
        anchor = "middle" if abs(lx - cx) < 10 else ("start" if lx > cx else "end")
        room = width - 8 if anchor == "middle" else (width - lx - 4 if anchor == "start" else lx - 4)
        value = series[0][1][i] if series else 0
        # above the centre the two lines go up from the axis' end, below it down, beside it around it
        first = ly - 20 if ly < cy - r * 0.5 else (ly + 12 if ly > cy + r * 0.5 else ly - 3)
        parts.append(f'<line x1="{cx}" y1="{cy}" x2="{x:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                     + _label(lx, first, label, room, SMALL, anchor)
                     + f'<text x="{lx:.1f}" y="{first + 16:.1f}" text-anchor="{anchor}" font-size="{SMALL}" '
                       f'font-weight="600">{value:.2f}</text>')
    for s, (name, values) in enumerate(series):
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in (point(i, v) for i, v in enumerate(values)))
        fill = f'fill="{colours[s % 3]}" fill-opacity="0.25"' if s == 0 else 'fill="none"'
        dash = '' if s == 0 else ' stroke-dasharray="5,3"'
        parts.append(f'<polygon points="{pts}" {fill} stroke="{colours[s % 3]}" stroke-width="2"{dash}/>')
        parts.append(f'<rect x="4" y="{4 + s * 18}" width="12" height="12" fill="{colours[s % 3]}"/>'
                     f'<text x="22" y="{15 + s * 18}">{escape(name)}</text>')
    return svg(top + size + 60, title, "".join(parts), width)


def lines(labels: list[str], series: list[tuple[str, list[float | None]]], title: str, fmt: str = "{:.3f}",
          zero_based: bool = True, unit: str = "", point_labels: bool = False, width: int = WIDTH) -> Markup:
    """Several lines over the same labels (years), named with their last value at the right end, on a
    y-axis with ticks and `unit`. The axis starts at zero; with zero_based=False it fits the data and says
    that it does not start at 0. `point_labels` prints every point's value (for a single short series)."""
    known = [v for _, values in series for v in values if v is not None]
    if not known or not labels:
        return svg(40, title, '<text x="10" y="24">暂无数据</text>', width)
    axis = _YAxis(known, unit, zero_based)
    height, top, bottom = 260, 48, 220
    colours = (COLOURS[0], PEER, "#6a9f3a", "#8064a2", "#f79646")
    ends: list[list[Any]] = []  # [label y, name, colour, value]; y is moved below
    drawn = []
    for s, (name, values) in enumerate(series):
        xy = [(i, v) for i, v in enumerate(values) if v is not None]
        if xy:
            drawn.append((name, colours[s % len(colours)], xy))
    end_room = min(max(text_width(f"{name} {fmt.format(xy[-1][1])}", SMALL) for name, _, xy in drawn) + 16,
                   width * 0.4)
    left, right = max(44.0, axis.width), width - end_room
    inner = 24
    step = (right - left - 2 * inner) / max(1, len(labels) - 1)

    def x(i: int) -> float:
        return (left + right) / 2 if len(labels) == 1 else left + inner + i * step

    parts = [axis.draw(left, right, top, bottom, width)]
    label_every = max(1, math.ceil((max(text_width(label) for label in labels) + 8) / (step or 1)))
    for i, label in enumerate(labels):
        if i % label_every == 0 or i == len(labels) - 1:
            parts.append(f'<text x="{x(i):.1f}" y="{bottom + 20}" text-anchor="middle">{escape(label)}</text>')
    for name, colour, xy in drawn:
        points = [(x(i), axis.y(v, top, bottom), v) for i, v in xy]
        path = " ".join(f"{'M' if n == 0 else 'L'}{px:.1f},{py:.1f}" for n, (px, py, _) in enumerate(points))
        parts.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for px, py, v in points:
            parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}">'
                         f'<title>{escape(name)} {fmt.format(v)}</title></circle>')
        if point_labels:
            # every value over its point but the last (the end label names it); skipped where they would touch
            every = max(1, math.ceil((text_width(fmt.format(known[0])) + 8) / (step or 1)))
            for n, (px, py, v) in enumerate(points[:-1]):
                if n % every == 0:
                    parts.append(f'<text x="{px:.1f}" y="{py - 10:.1f}" text-anchor="middle" font-size="{SMALL}">'
                                 f'{fmt.format(v)}</text>')
        ends.append([points[-1][1], name, colour, points[-1][2]])
    ends.sort()
    for n in range(1, len(ends)):  # keep the end labels at least a line apart
        ends[n][0] = max(ends[n][0], ends[n - 1][0] + 17)
    for y, name, colour, v in ends:
        parts.append(f'<text x="{right + 8:.1f}" y="{y + 4.5:.1f}" fill="{colour}" font-size="{SMALL}">'
                     f'{escape(name)} {fmt.format(v)}</text>')
    height = max(height, int(ends[-1][0]) + 12)
    return svg(height, title, "".join(parts), width)


def distribution(items: list[tuple[str, float]], title: str, highlight: str | None = None,
                 marks: list[tuple[str, float]] | None = None, fmt: str = "{:,.2f}", width: int = HALF) -> Markup:
    """Horizontal bars, one per city (sorted by the caller), the highlighted city in another colour, and
    vertical marks (median, threshold) across all bars."""
    bar, gap = 18, 4
    label_width = max((text_width(label, SMALL) for label, _ in items), default=40) + 10
    values = [v for _, v in items] + [v for _, v in (marks or [])]
    top = max(values, default=0) or 1
    room = max((text_width(fmt.format(v), SMALL) for _, v in items), default=0) + 10
    span = width - label_width - room
    head = 6 + 17 * len(marks or [])  # one line per mark's label above the bars
    parts = []
    for i, (label, value) in enumerate(items):
        y = head + i * (bar + gap)
        bar_width = max(1, int(span * value / top)) if value > 0 else 0
        colour = PEER if label == highlight else COLOURS[0]
        parts.append(f'<text x="{label_width - 6}" y="{y + bar - 4}" text-anchor="end" font-size="{SMALL}">{escape(label)}</text>'
                     f'<rect x="{label_width}" y="{y}" width="{bar_width}" height="{bar}" fill="{colour}"/>'
                     f'<text x="{label_width + bar_width + 4}" y="{y + bar - 4}" font-size="{SMALL}">{fmt.format(value)}</text>')
    bottom = head + len(items) * (bar + gap)
    for n, (name, value) in enumerate(marks or []):
        x = label_width + span * value / top
        text = f"{name} {fmt.format(value)}"
        half = text_width(text, SMALL) / 2
        text_x = min(max(x, half + 2), width - half - 2)
        parts.append(f'<line x1="{x:.1f}" y1="{head - 4}" x2="{x:.1f}" y2="{bottom}" stroke="{MUTED if n else PEER}" '
                     f'stroke-dasharray="4,3"/><text x="{text_x:.1f}" y="{15 + 17 * n}" text-anchor="middle" '
                     f'font-size="{SMALL}">{escape(text)}</text>')
    return svg(bottom + 6, title, "".join(parts), width)


def rank_intervals(rows: list[dict], title: str, highlight: str | None = None) -> Markup:
    """Per city a bar from the 5th to the 95th percentile rank, a dot at the median, a tick at the
    rank with the catalogue's weights. Rank 1 is on the left."""
    if not rows:
        return svg(40, title, '<text x="10" y="24">暂无数据</text>')
    n = max(int(max(r["high"] for r in rows)), len(rows))
    bar, gap = 16, 5
    label_width = max(text_width(r["city"], SMALL) for r in rows) + 10
    span = WIDTH - label_width - 30
    head = 26

    def x(rank: float) -> float:
        return label_width + span * (rank - 1) / max(1, n - 1)

    parts = [f'<text x="{label_width}" y="15" font-size="{SMALL}">第 1 名</text>'
             f'<text x="{WIDTH - 30}" y="15" text-anchor="end" font-size="{SMALL}">第 {n} 名</text>']
    for i, r in enumerate(rows):
        y = head + i * (bar + gap)
        colour = PEER if r["city"] == highlight else COLOURS[0]
        parts.append(
            f'<text x="{label_width - 6}" y="{y + bar - 3}" text-anchor="end" font-size="{SMALL}">{escape(r["city"])}</text>'
            f'<line x1="{x(r["low"]):.1f}" y1="{y + bar / 2}" x2="{x(r["high"]):.1f}" y2="{y + bar / 2}" '
            f'stroke="{colour}" stroke-width="6" stroke-opacity="0.45"/>'
            f'<circle cx="{x(r["median"]):.1f}" cy="{y + bar / 2}" r="4" fill="{colour}"/>'
            f'<line x1="{x(r["rank"]):.1f}" y1="{y}" x2="{x(r["rank"]):.1f}" y2="{y + bar}" stroke="#000"/>'
        )
    return svg(head + len(rows) * (bar + gap), title, "".join(parts))


def estimates(rows: list[tuple[str, float | None, float | None, float | None]], title: str,
              fmt: str = "{:+.2f}") -> Markup:
    """A forest plot: per row a dot at the estimate and a bar over its 95 % interval, against a line at
    zero, the figure printed at the right; a row without an estimate says so."""
    if not rows:
        return svg(40, title, '<text x="10" y="24">暂无数据</text>')
    bar, gap, head = 16, 6, 24
    label_width = max(text_width(label, SMALL) for label, *_ in rows) + 12
    value_width = 70
    span = WIDTH - label_width - value_width - 10
    known = [v for _, value, low, high in rows for v in (value, low, high) if v is not None]
    low_end, high_end = min(known + [0.0]), max(known + [0.0])
    steps = ticks(low_end, high_end, 4)
    low_end, high_end = steps[0], steps[-1]

    def x(value: float) -> float:
        return label_width + span * (value - low_end) / ((high_end - low_end) or 1)

    step = steps[1] - steps[0] if len(steps) > 1 else 1
    parts = [f'<text x="{x(t):.1f}" y="14" text-anchor="middle" font-size="{SMALL}">{tick_text(t, step)}</text>'
             f'<line x1="{x(t):.1f}" y1="{head - 4}" x2="{x(t):.1f}" y2="{head + len(rows) * (bar + gap)}" '
             f'stroke="{GRID}"/>' for t in steps]
    parts.append(f'<line x1="{x(0):.1f}" y1="{head - 4}" x2="{x(0):.1f}" y2="{head + len(rows) * (bar + gap)}" '
                 f'stroke="{AXIS}"/>')
    for i, (label, value, low, high) in enumerate(rows):
        y = head + i * (bar + gap)
        parts.append(_label(label_width - 6, y + bar - 3, label, label_width - 8, SMALL))
        if value is None:
            parts.append(f'<text x="{label_width + 4}" y="{y + bar - 3}" font-size="{SMALL}" fill="{MUTED}">无估计</text>')
            continue
        if low is not None and high is not None:
            parts.append(f'<line x1="{x(low):.1f}" y1="{y + bar / 2}" x2="{x(high):.1f}" y2="{y + bar / 2}" '
                         f'stroke="{COLOURS[0]}" stroke-width="5" stroke-opacity="0.45"/>')
        parts.append(f'<circle cx="{x(value):.1f}" cy="{y + bar / 2}" r="4" fill="{COLOURS[0]}"/>'
                     f'<text x="{WIDTH - 6}" y="{y + bar - 3}" text-anchor="end" font-size="{SMALL}">'
                     f'{escape(fmt.format(value))}</text>')
    return svg(head + len(rows) * (bar + gap) + 4, title, "".join(parts))
