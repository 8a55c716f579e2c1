"""Server-rendered SVG charts (no charting library, no JavaScript).

Pure: numbers in, SVG text out. Every mark carries its value in ``data-*`` attributes and
a ``<title>`` (a tooltip, read by screen readers), series differ by marker shape as well
as colour, and the page puts the same numbers in a table beside each chart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 40, 44
# dark enough for 3:1 against white (WCAG for graphics), told apart by shape too
PALETTE = ("#1f5fa8", "#b3461b", "#2e7d32", "#6a1b9a", "#7a5c00", "#00707a")
SHAPES = ("circle", "square", "triangle", "diamond")
QUERY_KINDS = (("aggregate", "#1f5fa8", "from aggregates"), ("mixed", "#6a1b9a", "mixed"),
               ("base", "#b3461b", "from base tables"))  # fmt: skip


@dataclass(frozen=True)
class Point:
    at: datetime
    seconds: float
    label: str  # what the point's tooltip says it is (a batch)


def nice_step(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 x 10^k at or above ``value``."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        candidate = step * 10**exponent
        if candidate >= value * (1 - 1e-9):
            return float(candidate)
    return float(10 ** (exponent + 1))


def axis(maximum: float, *, whole: bool = False, ticks: int = 4) -> tuple[float, float]:
    """(top, step) of an axis from 0 showing ``maximum`` with about ``ticks`` steps; a
    ``whole`` axis (counts) never steps by less than 1."""
    step = nice_step(maximum / ticks) if maximum > 0 else 1.0
    if whole:
        step = max(1.0, math.ceil(step))
    top = max(step, math.ceil(maximum / step - 1e-9) * step)
    return float(top), float(step)


def _num(value: float) -> str:
    return f"{value:.1f}"


def _label(value: float) -> str:
    return f"{value:g}" if value < 1000 else f"{value:,.0f}"


def _frame(title: str, description: str, body: list[str], chart_id: str) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="100%" role="img" class="chart" id="{chart_id}" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc">'
        f'<title id="{chart_id}-title">{escape(title)}</title>'
        f'<desc id="{chart_id}-desc">{escape(description)}</desc>'
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>'
    )
    return Markup(head + "".join(body) + "</svg>")


def _y_axis(top: float, step: float, unit: str) -> list[str]:
    parts = []
    plot_h = HEIGHT - TOP - BOTTOM
    for i in range(round(top / step) + 1):
        value = step * i
        y = TOP + plot_h - plot_h * value / top
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{_num(y)}" y2="{_num(y)}" '
            f'stroke="#d0d0d0" stroke-width="1"/>'
            f'<text x="{LEFT - 6}" y="{_num(y + 4)}" text-anchor="end" font-size="12" '
            f'fill="#333333">{escape(_label(value))}</text>'
        )
    parts.append(
        f'<text x="14" y="{TOP + plot_h / 2:.1f}" font-size="12" fill="#333333" '
        f'text-anchor="middle" transform="rotate(-90 14 {TOP + plot_h / 2:.1f})">'
        f"{escape(unit)}</text>"
    )
    return parts


def _marker(shape: str, x: float, y: float, color: str, attrs: str = "", inner: str = "") -> str:
    """One marker element of ``shape`` centred on (x, y)."""
    if shape == "square":
        tag = "rect"
        geometry = f'x="{_num(x - 4)}" y="{_num(y - 4)}" width="8" height="8"'
    elif shape in ("triangle", "diamond"):
        tag = "polygon"
        corners = ([(x, y - 5), (x - 5, y + 4), (x + 5, y + 4)] if shape == "triangle"
                   else [(x, y - 5), (x + 5, y), (x, y + 5), (x - 5, y)])  # fmt: skip
        geometry = 'points="' + " ".join(f"{_num(a)},{_num(b)}" for a, b in corners) + '"'
    else:
        tag = "circle"
        geometry = f'cx="{_num(x)}" cy="{_num(y)}" r="4.5"'
    return f'<{tag} {geometry} fill="{color}" {attrs}>{inner}</{tag}>'


def _legend(entries: Sequence[tuple[str, str, str]]) -> list[str]:
    """One row of (label, colour, shape) keys above the plot."""
    parts, x = [], LEFT
    for label, color, shape in entries:
        parts.append(_marker(shape, x + 5, 18, color, 'aria-hidden="true"'))
        text = escape(label)
        parts.append(f'<text x="{x + 14}" y="22" font-size="12" fill="#1a1a1a">{text}</text>')
        x += 28 + 7 * len(label)
    return parts


def build_durations(series: Mapping[str, Sequence[Point]], *, days: int) -> Markup:
    """Build duration (seconds) over time, one line and marker shape per cube."""
    chart_id = "chart-builds"
    title = f"Build durations over the last {days} days, per cube"
    points = [p for pts in series.values() for p in pts]
    if not points:
        body = [f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" font-size="14" '
                f'fill="#333333">No build finished in the last {days} days.</text>']  # fmt: skip
        return _frame(title, "No data.", body, chart_id)
    start = min(p.at for p in points).timestamp()
    end = max(p.at for p in points).timestamp()
    if end - start < 60:
        start, end = start - 1800, end + 1800
    top, step = axis(max(p.seconds for p in points))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x_of(moment: datetime) -> float:
        return LEFT + plot_w * (moment.timestamp() - start) / (end - start)

    def y_of(seconds: float) -> float:
        return TOP + plot_h - plot_h * seconds / top

    body = _y_axis(top, step, "seconds")
    for i in range(5):
        moment = datetime.fromtimestamp(start + (end - start) * i / 4, tz=points[0].at.tzinfo)
        x = LEFT + plot_w * i / 4
        anchor = "start" if i == 0 else "end" if i == 4 else "middle"
        body.append(
            f'<text x="{_num(x)}" y="{HEIGHT - BOTTOM + 18}" font-size="12" '
            f'text-anchor="{anchor}" fill="#333333">{moment:%m-%d %H:%M}</text>'
        )
    legend = []
    for index, (cube, pts) in enumerate(series.items()):
        color, shape = PALETTE[index % len(PALETTE)], SHAPES[index % len(SHAPES)]
        legend.append((cube, color, shape))
        ordered = sorted(pts, key=lambda p: p.at)
        line = " ".join(f"{_num(x_of(p.at))},{_num(y_of(p.seconds))}" for p in ordered)
        body.append(f'<g class="series" data-cube="{escape(cube)}">')
        if len(ordered) > 1:
            body.append(f'<polyline points="{line}" fill="none" stroke="{color}" '
                        f'stroke-width="2"/>')  # fmt: skip
        for p in ordered:
            tip = f"{cube}: {p.seconds:.2f} s at {p.at:%Y-%m-%d %H:%M:%S} UTC ({p.label})"
            attrs = f'class="point" data-seconds="{p.seconds:.3f}" data-at="{p.at.isoformat()}"'
            inner = f"<title>{escape(tip)}</title>"
            body.append(_marker(shape, x_of(p.at), y_of(p.seconds), color, attrs, inner))
        body.append("</g>")
    body.extend(_legend(legend))
    description = (f"{len(points)} builds of {len(series)} cubes; the longest took "
                   f"{max(p.seconds for p in points):.2f} s.")  # fmt: skip
    return _frame(title, description, body, chart_id)


def queries_per_day(days: Sequence[date], counts: Mapping[str, Sequence[int]]) -> Markup:
    """Stacked bars per day: queries answered from aggregates, mixed, from base tables."""
    chart_id = "chart-queries"
    title = f"Queries per day over the last {len(days)} days, by what answered them"
    totals = [sum(counts.get(kind, [0] * len(days))[i] for kind, _c, _l in QUERY_KINDS)
              for i in range(len(days))]  # fmt: skip
    top, step = axis(max(totals, default=0), whole=True)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(days))
    bar = max(2.0, slot * 0.7)
    body = _y_axis(top, step, "queries")
    for i, day in enumerate(days):
        x = LEFT + slot * i + (slot - bar) / 2
        base_y = TOP + plot_h
        for kind, color, label in QUERY_KINDS:
            value = counts.get(kind, [0] * len(days))[i]
            if value <= 0:
                continue
            height = plot_h * value / top
            base_y -= height
            tip = f"{day:%Y-%m-%d}: {value} {label}"
            body.append(
                f'<rect class="bar" x="{_num(x)}" y="{_num(base_y)}" width="{_num(bar)}" '
                f'height="{_num(height)}" fill="{color}" data-day="{day.isoformat()}" '
                f'data-kind="{kind}" data-count="{value}"><title>{escape(tip)}</title></rect>'
            )
        if len(days) <= 16 or i % 2 == 0:
            body.append(f'<text x="{_num(x + bar / 2)}" y="{HEIGHT - BOTTOM + 18}" '
                        f'font-size="11" text-anchor="middle" fill="#333333">'
                        f"{day:%m-%d}</text>")  # fmt: skip
    body.extend(_legend([(label, color, "square") for _k, color, label in QUERY_KINDS]))
    if not any(totals):
        body.append(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" '
                    f'font-size="14" fill="#333333">No query in these days.</text>')  # fmt: skip
    served = sum(counts.get("aggregate", [])) + sum(counts.get("mixed", []))
    description = f"{sum(totals)} queries, {served} of them answered (partly) from aggregates."
    return _frame(title, description, body, chart_id)
