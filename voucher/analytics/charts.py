"""Small server-side SVG charts: no script, no CDN, readable at a glance, Chinese labels.

Each function returns markup for an inline <svg> with a <title> (read by screen readers) and its
numbers printed on the marks, so the chart never hides a figure the table would show.
"""
from __future__ import annotations

from markupsafe import Markup, escape

WIDTH = 640
BAR = 22
GAP = 10
LABEL_WIDTH = 150
COLOURS = ("#1f5fa8", "#9ec3ea")


def _svg(height: int, title: str, body: str) -> Markup:
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
    return _svg(max(1, len(items)) * (BAR + GAP), title, "".join(parts))


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
    return _svg(24 + max(1, len(items)) * (BAR + GAP), title, "".join(parts))


def line(points: list[tuple[str, float | None]], title: str) -> Markup:
    """A line over time (labels are dates, in order); the first and last labels and the peak are named."""
    known = [(i, v) for i, (_, v) in enumerate(points) if v is not None]
    height, left, bottom = 220, 50, 190
    if not known:
        return _svg(40, title, '<text x="10" y="24">暂无数据</text>')
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
    return _svg(height, title, body)
