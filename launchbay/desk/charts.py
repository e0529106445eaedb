"""Timelines drawn as inline SVG on the server: no charting script, nothing fetched at run time.

Each point is a circle with its value in a tooltip (`<title>`), so a person can read a number off
the chart and a test can count what was drawn. Values are formatted here; every text is escaped.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from html import escape

from launchbay.desk.timeline import Chart, Line

WIDTH, HEIGHT = 640, 190
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 34

COLOURS = {"candidate": "#d9480f", "shadow": "#9c36b5", "stable": "#1c7ed6", "weight": "#2b8a3e"}


def number(value: float, unit: str = "") -> str:
    """A value as people read it: 12.3 ms, 2.5%, 0.0123."""
    if unit == "%":
        return f"{value:.0f}%"
    if unit == "ms":
        return f"{value:.1f} ms"
    return f"{value:.3g}"


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t).strftime("%H:%M:%S")


def svg(chart: Chart) -> str:
    """The chart as an `<svg>` element (an empty chart says that it has no data yet)."""
    points = [p for line in chart.lines for p in line.points]
    head = (
        f'<svg class="chart" data-chart="{escape(chart.key)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(chart.title)}" xmlns="http://www.w3.org/2000/svg">'
    )
    if not points:
        return (
            head
            + f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" class="empty">'
            + "no data yet</text></svg>"
        )
    t0 = min(t for t, _ in points)
    t1 = max(max(t for t, _ in points), t0 + 1.0)
    highest = max(v for _, v in points)
    # A limit far above every value would squash the lines flat at the bottom: say it instead.
    shown_limit = chart.limit is not None and chart.limit <= 3 * highest
    top = max(highest, chart.limit or 0.0) if shown_limit else highest
    top = 100.0 if chart.unit == "%" else (top * 1.15 if top > 0 else 1.0)

    def x(t: float) -> float:
        return LEFT + (t - t0) / (t1 - t0) * (WIDTH - LEFT - RIGHT)

    def y(v: float) -> float:
        return TOP + (1 - min(v, top) / top) * (HEIGHT - TOP - BOTTOM)

    parts = [head]
    for i in range(5):  # grid and y labels
        v = top * i / 4
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>')
        parts.append(
            f'<text class="tick" x="{LEFT - 4}" y="{y(v) + 4:.1f}" text-anchor="end">'
            f"{escape(number(v, chart.unit))}</text>"
        )
    for i in range(4):  # time labels
        t = t0 + (t1 - t0) * i / 3
        parts.append(
            f'<text class="tick" x="{x(t):.1f}" y="{HEIGHT - 14}" '
            f'text-anchor="{("start", "middle", "middle", "end")[i]}">{_clock(t)}</text>'
        )
    if chart.limit is not None and not shown_limit:
        label = f"limit {number(chart.limit, chart.unit)} (above the chart)"
        parts.append(
            f'<text class="tick limit-label" x="{WIDTH - RIGHT}" y="{TOP + 8}" text-anchor="end">'
            f"{escape(label)}</text>"
        )
    elif chart.limit is not None:
        ly = y(chart.limit)
        parts.append(f'<line class="limit" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{ly:.1f}" y2="{ly:.1f}"/>')
        label = f"limit {number(chart.limit, chart.unit)}"
        parts.append(
            f'<text class="tick limit-label" x="{WIDTH - RIGHT}" y="{ly - 3:.1f}" text-anchor="end">'
            f"{escape(label)}</text>"
        )
    for line in chart.lines:
        parts.append(_line(line, chart.unit, x, y))
    parts.append(_legend(chart.lines))
    parts.append("</svg>")
    return "".join(parts)


def _line(line: Line, unit: str, x: Callable[[float], float], y: Callable[[float], float]) -> str:
    colour = COLOURS.get(line.kind, "#495057")
    coords: list[str] = []
    for i, (t, v) in enumerate(line.points):
        if line.step and i:
            coords.append(f"{x(t):.1f},{y(line.points[i - 1][1]):.1f}")
        coords.append(f"{x(t):.1f},{y(v):.1f}")
    dash = ' stroke-dasharray="5 3"' if line.kind == "shadow" else ""
    out = [
        f'<g class="series" data-label="{escape(line.label)}">'
        f'<polyline fill="none" stroke="{colour}" stroke-width="1.8"{dash} points="{" ".join(coords)}"/>'
    ]
    for t, v in line.points if not line.step else line.points[:-1]:
        tip = f"{line.label} {_clock(t)}: {number(v, unit)}"
        out.append(
            f'<circle class="pt" cx="{x(t):.1f}" cy="{y(v):.1f}" r="2.2" fill="{colour}">'
            f"<title>{escape(tip)}</title></circle>"
        )
    out.append("</g>")
    return "".join(out)


def _legend(lines: list[Line]) -> str:
    out, offset = ['<g class="legend">'], LEFT
    for line in lines:
        colour = COLOURS.get(line.kind, "#495057")
        out.append(f'<rect x="{offset}" y="{HEIGHT - 9}" width="10" height="4" fill="{colour}"/>')
        out.append(f'<text class="tick" x="{offset + 14}" y="{HEIGHT - 4}">{escape(line.label)}</text>')
        offset += 24 + 7 * len(line.label)
    out.append("</g>")
    return "".join(out)
