"""Bar charts as inline SVG, drawn by hand: no plotting library, no JavaScript.

WeasyPrint renders inline ``<svg>``; the text stays text (searchable, copyable).
Every label is XML-escaped: chart labels are course titles and other customer data.
"""

from __future__ import annotations

import math
from xml.sax.saxutils import escape

from .model import BarChart

WIDTH = 640
HEIGHT = 200
_LEFT, _RIGHT, _TOP, _BOTTOM = 52, 8, 16, 34
BAR = "#2f5d8a"
GRID = "#d9dee4"
INK = "#4a5561"


def nice_ceiling(value: float) -> tuple[float, float]:
    """A round axis maximum ≥ value and its tick step (1, 2 or 5 × 10^k)."""
    if value <= 0:
        return 1.0, 1.0
    raw_step = value / 4
    magnitude = 10 ** math.floor(math.log10(raw_step))
    for factor in (1, 2, 5, 10):
        step = factor * magnitude
        if step >= raw_step:
            break
    step = max(step, 1.0)  # counts: no fractional ticks
    return math.ceil(value / step) * step, step


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def bar_chart_svg(chart: BarChart) -> str:
    """The chart as an ``<svg>`` element sized to the text width.

    Up to 40 bars every bar gets its label (turned 45° past 12 bars) and its value, so
    the chart says exactly what the table of the Word version says; beyond that, every
    k-th label is shown and values are left to the axis.
    """
    n = len(chart.values)
    top, step = nice_ceiling(max(chart.values, default=0))
    every_label = n <= 40
    turned = n > 12
    bottom = _BOTTOM + (30 if turned else 0)
    height = HEIGHT + (30 if turned else 0)
    plot_w = WIDTH - _LEFT - _RIGHT
    plot_h = height - _TOP - bottom
    label = escape(chart.title, {'"': "&quot;"})
    out = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{label}" '
        f'font-family="DejaVu Sans, Symbola, sans-serif" font-size="10">'
    ]
    ticks = int(round(top / step))
    for k in range(ticks + 1):
        y = _TOP + plot_h - plot_h * k / ticks
        out.append(
            f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{WIDTH - _RIGHT}" y2="{y:.1f}" stroke="{GRID}" '
            f'stroke-width="{1.2 if k == 0 else 0.6}"/>'
        )
        out.append(f'<text x="{_LEFT - 6}" y="{y + 3.5:.1f}" text-anchor="end" fill="{INK}">{_fmt(k * step)}</text>')
    if chart.value_heading:
        cy = _TOP + plot_h / 2
        out.append(
            f'<text x="11" y="{cy:.1f}" transform="rotate(-90 11 {cy:.1f})" text-anchor="middle" '
            f'fill="{INK}" font-size="9">{escape(chart.value_heading)}</text>'
        )
    if n:
        slot = plot_w / n
        bar_w = max(slot * 0.72, 1.0)
        label_every = 1 if every_label else math.ceil(n / 12)
        value_size = 8.5 if n <= 24 else 7
        for i, (text, value) in enumerate(zip(chart.labels, chart.values, strict=True)):
            x = _LEFT + slot * i + (slot - bar_w) / 2
            h = plot_h * value / top if top else 0
            y = _TOP + plot_h - h
            cx = x + bar_w / 2
            if value:
                out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{BAR}"/>')
                if every_label:
                    out.append(
                        f'<text x="{cx:.1f}" y="{y - 3:.1f}" text-anchor="middle" fill="{INK}" '
                        f'font-size="{value_size}">{value}</text>'
                    )
            if i % label_every:
                continue
            ly = _TOP + plot_h + 12
            if turned:
                out.append(
                    f'<text x="{cx + 3:.1f}" y="{ly:.1f}" transform="rotate(-45 {cx + 3:.1f} {ly:.1f})" '
                    f'text-anchor="end" fill="{INK}" font-size="8">{escape(text)}</text>'
                )
            else:
                out.append(
                    f'<text x="{cx:.1f}" y="{ly + 1:.1f}" text-anchor="middle" fill="{INK}" '
                    f'font-size="8.5">{escape(text)}</text>'
                )
    if chart.x_axis:
        out.append(
            f'<text x="{_LEFT + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle" fill="{INK}" '
            f'font-size="9">{escape(chart.x_axis)}</text>'
        )
    out.append("</svg>")
    return "".join(out)
