"""Small server-side SVG charts for every page that draws one: no script, no CDN, readable at a glance,
Chinese labels.

Each function returns markup for an inline <svg> with a <title> (read by screen readers) and its
numbers printed on the marks, so the chart never hides a figure the table would show. Bars, floor and
excess, and a line for leverage; radar, lines, distribution and rank intervals for the index.
"""
from __future__ import annotations

import math
from typing import Any

from markupsafe import Markup, escape

WIDTH = 640
BAR = 22
GAP = 10
LABEL_WIDTH = 150
COLOURS = ("#1f5fa8", "#9ec3ea")


def svg(height: int, title: str, body: str) -> Markup:
    return Markup(
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" width="100%" '
        f'xmlns="http://www.w3.org/2000/svg" font-size="13"><title>{escape(title)}</title>{body}</svg>'
    )


def bars(items: list[tuple[str, float | None]], title: str, fmt: str = "{:.2f}") -> Markup:
    """Horizontal bars, one per item; None is drawn as no bar and labelled —."""
    values = [v for _, v in items if v is not None]
    top = max(values, default=0) or 1
    span = WIDTH - LABEL_WIDTH - 70
    parts = []
    for i, (label, value) in enumerate(items):
        y = i * (BAR + GAP)
        width = 0 if value is None else max(1, int(span * value / top))
        parts.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{y + BAR - 6}" text-anchor="end">{escape(label[:14])}</text>'
            f'<rect x="{LABEL_WIDTH}" y="{y}" width="{width}" height="{BAR}" fill="{COLOURS[0]}"/>'
            f'<text x="{LABEL_WIDTH + width + 6}" y="{y + BAR - 6}">{"—" if value is None else fmt.format(value)}</text>'
        )
    return svg(max(1, len(items)) * (BAR + GAP), title, "".join(parts))


def floor_and_excess(items: list[tuple[str, float | None, float | None]], title: str) -> Markup:
    """Stacked bars: the mechanical floor, then the excess above it (a negative excess draws none)."""
    totals = [(f or 0) + max(e or 0, 0) for _, f, e in items]
    top = max(totals, default=0) or 1
    span = WIDTH - LABEL_WIDTH - 110
    parts = [
        f'<rect x="{LABEL_WIDTH}" y="0" width="12" height="12" fill="{COLOURS[1]}"/>'
        f'<text x="{LABEL_WIDTH + 18}" y="11">机制下限</text>'
        f'<rect x="{LABEL_WIDTH + 100}" y="0" width="12" height="12" fill="{COLOURS[0]}"/>'
        f'<text x="{LABEL_WIDTH + 118}" y="11">超出下限</text>'
    ]
    for i, (label, floor, excess) in enumerate(items):
        y = 24 + i * (BAR + GAP)
        floor_width = int(span * (floor or 0) / top)
        excess_width = int(span * max(excess or 0, 0) / top)
        text = "—" if floor is None else f"{floor:.2f} + {excess:.2f}"
        parts.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{y + BAR - 6}" text-anchor="end">{escape(label[:14])}</text>'
            f'<rect x="{LABEL_WIDTH}" y="{y}" width="{floor_width}" height="{BAR}" fill="{COLOURS[1]}"/>'
            f'<rect x="{LABEL_WIDTH + floor_width}" y="{y}" width="{excess_width}" height="{BAR}" fill="{COLOURS[0]}"/>'
            f'<text x="{LABEL_WIDTH + floor_width + excess_width + 6}" y="{y + BAR - 6}">{text}</text>'
        )
    return svg(24 + max(1, len(items)) * (BAR + GAP), title, "".join(parts))


def line(points: list[tuple[str, float | None]], title: str) -> Markup:
    """A line over time (labels are dates, in order); the first and last labels and the peak are named."""
    known = [(i, v) for i, (_, v) in enumerate(points) if v is not None]
    height, left, bottom = 220, 50, 190
    if not known:
        return svg(40, title, '<text x="10" y="24">暂无数据</text>')
    top = max(v for _, v in known) or 1
    step = (WIDTH - left - 20) / max(1, len(points) - 1)
    xy = [(left + i * step, bottom - (bottom - 20) * v / top) for i, v in known]
    path = " ".join(f"{'M' if n == 0 else 'L'}{x:.1f},{y:.1f}" for n, (x, y) in enumerate(xy))
    peak_index, peak = max(known, key=lambda item: item[1])
    body = (
        f'<line x1="{left}" y1="{bottom}" x2="{WIDTH - 10}" y2="{bottom}" stroke="#999"/>'
        f'<path d="{path}" fill="none" stroke="{COLOURS[0]}" stroke-width="2"/>'
        + "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{COLOURS[0]}"/>' for x, y in xy)
        + f'<text x="{left}" y="{bottom + 20}">{escape(points[0][0])}</text>'
        f'<text x="{WIDTH - 10}" y="{bottom + 20}" text-anchor="end">{escape(points[-1][0])}</text>'
        f'<text x="{left + peak_index * step:.1f}" y="{bottom - (bottom - 20) * peak / top - 8:.1f}" '
        f'text-anchor="middle">{peak:.2f}</text>'
    )
    return svg(height, title, body)


# The index pages ------------------------------------------------------------------------------------

PEER = "#c0504d"
MUTED = "#999"


def radar(axes: list[str], series: list[tuple[str, list[float]]], title: str, size: int = 360) -> Markup:
    """A radar of scores on 0-1 (one polygon per series, the first filled); each axis labelled with the
    first series' value."""
    n = len(axes)
    if n < 3:
        return svg(40, title, '<text x="10" y="24">维度不足，无法绘制雷达图</text>')
    width = size + 200  # room for the axis labels either side
    cx, cy, r = width / 2, size / 2 + 20, size / 2 - 30
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
        lx, ly = point(i, 1.13)
        anchor = "middle" if abs(lx - cx) < 10 else ("start" if lx > cx else "end")
        value = series[0][1][i] if series else 0
        parts.append(f'<line x1="{cx}" y1="{cy}" x2="{x:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="{lx:.1f}" y="{ly + 4:.1f}" text-anchor="{anchor}" font-size="12">'
                     f'{escape(label)} {value:.2f}</text>')
    for s, (name, values) in enumerate(series):
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in (point(i, v) for i, v in enumerate(values)))
        fill = f'fill="{colours[s % 3]}" fill-opacity="0.25"' if s == 0 else 'fill="none"'
        dash = '' if s == 0 else ' stroke-dasharray="5,3"'
        parts.append(f'<polygon points="{pts}" {fill} stroke="{colours[s % 3]}" stroke-width="2"{dash}/>')
        parts.append(f'<rect x="4" y="{4 + s * 18}" width="12" height="12" fill="{colours[s % 3]}"/>'
                     f'<text x="22" y="{15 + s * 18}">{escape(name)}</text>')
    return Markup(
        f'<svg class="chart" role="img" viewBox="0 0 {width} {size + 40}" width="100%" '
        f'xmlns="http://www.w3.org/2000/svg" font-size="13"><title>{escape(title)}</title>{"".join(parts)}</svg>'
    )


def lines(labels: list[str], series: list[tuple[str, list[float | None]]], title: str, fmt: str = "{:.3f}",
          zero_based: bool = True) -> Markup:
    """Several lines over the same labels (years), named with their last value at the right end; the
    scale starts at zero unless told otherwise (for small moves, such as a what-if curve)."""
    known = [v for _, values in series for v in values if v is not None]
    if not known or not labels:
        return svg(40, title, '<text x="10" y="24">暂无数据</text>')
    height, left, bottom, top_pad = 240, 84, 200, 40
    low, high = (min(known + [0.0]) if zero_based else min(known)), max(known) or 1
    span = (high - low) or 1
    step = (WIDTH - left - 190) / max(1, len(labels) - 1)
    colours = (COLOURS[0], PEER, "#6a9f3a", "#8064a2", "#f79646")
    parts = [f'<line x1="{left}" y1="{bottom}" x2="{WIDTH - 180}" y2="{bottom}" stroke="{MUTED}"/>'
             f'<text x="{left - 6}" y="{bottom + 4}" text-anchor="end" font-size="11">{fmt.format(low)}</text>'
             f'<text x="{left - 6}" y="{top_pad + 4}" text-anchor="end" font-size="11">{fmt.format(high)}</text>']
    for i, label in enumerate(labels):
        parts.append(f'<text x="{left + i * step:.1f}" y="{bottom + 18}" text-anchor="middle">{escape(label)}</text>')
    ends: list[list[Any]] = []  # [label y, name, colour, value]; y is moved below
    for s, (name, values) in enumerate(series):
        colour = colours[s % len(colours)]
        xy = [(left + i * step, bottom - (bottom - top_pad) * (v - low) / span, v)
              for i, v in enumerate(values) if v is not None]
        if not xy:
            continue
        path = " ".join(f"{'M' if n == 0 else 'L'}{x:.1f},{y:.1f}" for n, (x, y, _) in enumerate(xy))
        parts.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y, v in xy:
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>'
                         f'<title>{escape(name)} {fmt.format(v)}</title>')
        ends.append([xy[-1][1], name, colour, xy[-1][2]])
    ends.sort()
    for n in range(1, len(ends)):  # keep the end labels at least a line apart
        ends[n][0] = max(ends[n][0], ends[n - 1][0] + 14)
    for y, name, colour, v in ends:
        parts.append(f'<text x="{WIDTH - 172}" y="{y + 4:.1f}" fill="{colour}" font-size="12">{escape(name)} {fmt.format(v)}</text>')
    return svg(height, title, "".join(parts))


def distribution(items: list[tuple[str, float]], title: str, highlight: str | None = None,
                 marks: list[tuple[str, float]] | None = None, fmt: str = "{:,.2f}") -> Markup:
    """Horizontal bars, one per city (sorted by the caller), the highlighted city in another colour, and
    vertical marks (median, threshold) across all bars."""
    bar, gap, label_width = 16, 4, 80
    values = [v for _, v in items] + [v for _, v in (marks or [])]
    top = max(values, default=0) or 1
    span = WIDTH - label_width - 90
    head = 12 + 13 * len(marks or [])  # one line per mark's label above the bars
    parts = []
    for i, (label, value) in enumerate(items):
        y = head + i * (bar + gap)
        width = max(1, int(span * value / top)) if value > 0 else 0
        colour = PEER if label == highlight else COLOURS[0]
        parts.append(f'<text x="{label_width - 6}" y="{y + bar - 3}" text-anchor="end" font-size="12">{escape(label)}</text>'
                     f'<rect x="{label_width}" y="{y}" width="{width}" height="{bar}" fill="{colour}"/>'
                     f'<text x="{label_width + width + 4}" y="{y + bar - 3}" font-size="11">{fmt.format(value)}</text>')
    bottom = head + len(items) * (bar + gap)
    for n, (name, value) in enumerate(marks or []):
        x = label_width + span * value / top
        parts.append(f'<line x1="{x:.1f}" y1="{head - 4}" x2="{x:.1f}" y2="{bottom}" stroke="{MUTED if n else PEER}" '
                     f'stroke-dasharray="4,3"/><text x="{x:.1f}" y="{11 + 13 * n}" text-anchor="middle" '
                     f'font-size="11">{escape(name)} {fmt.format(value)}</text>')
    return svg(bottom + 6, title, "".join(parts))


def rank_intervals(rows: list[dict], title: str, highlight: str | None = None) -> Markup:
    """Per city a bar from the 5th to the 95th percentile rank, a dot at the median, a tick at the
    rank with the catalogue's weights. Rank 1 is on the left."""
    if not rows:
        return svg(40, title, '<text x="10" y="24">暂无数据</text>')
    n = max(int(max(r["high"] for r in rows)), len(rows))
    bar, gap, label_width = 14, 5, 80
    span = WIDTH - label_width - 30
    head = 24

    def x(rank: float) -> float:
        return label_width + span * (rank - 1) / max(1, n - 1)

    parts = [f'<text x="{label_width}" y="14" font-size="11">第 1 名</text>'
             f'<text x="{WIDTH - 30}" y="14" text-anchor="end" font-size="11">第 {n} 名</text>']
    for i, r in enumerate(rows):
        y = head + i * (bar + gap)
        colour = PEER if r["city"] == highlight else COLOURS[0]
        parts.append(
            f'<text x="{label_width - 6}" y="{y + bar - 3}" text-anchor="end" font-size="12">{escape(r["city"])}</text>'
            f'<line x1="{x(r["low"]):.1f}" y1="{y + bar / 2}" x2="{x(r["high"]):.1f}" y2="{y + bar / 2}" '
            f'stroke="{colour}" stroke-width="6" stroke-opacity="0.45"/>'
            f'<circle cx="{x(r["median"]):.1f}" cy="{y + bar / 2}" r="4" fill="{colour}"/>'
            f'<line x1="{x(r["rank"]):.1f}" y1="{y}" x2="{x(r["rank"]):.1f}" y2="{y + bar}" stroke="#000"/>'
        )
    return svg(head + len(rows) * (bar + gap), title, "".join(parts))
