"""Small inline SVG charts for the HTML report.

Hand-written SVG rather than matplotlib: a few kilobytes per chart, crisp at any zoom, styled
by the page's own fonts, and with a tooltip per bar. No scripts, so the report needs no server.
"""

from __future__ import annotations

import dataclasses
import html
import math
from collections.abc import Callable, Sequence

import numpy as np

WIDTH, HEIGHT = 560, 240
_MARGIN_LEFT, _MARGIN_RIGHT, _MARGIN_TOP, _MARGIN_BOTTOM = 48, 16, 16, 44
_PLOT_WIDTH = WIDTH - _MARGIN_LEFT - _MARGIN_RIGHT
_PLOT_HEIGHT = HEIGHT - _MARGIN_TOP - _MARGIN_BOTTOM
_BASELINE = _MARGIN_TOP + _PLOT_HEIGHT  # y of the x axis (count 0)
AXIS_COLOUR = "#9aa3af"
GRID_COLOUR = "#e5e7eb"
TEXT_COLOUR = "#4b5563"


def nice_step(maximum: float, ticks: int = 4) -> float:
    """A round tick step (1, 2 or 5 times a power of ten) giving about ``ticks`` ticks."""
    if maximum <= 0:
        return 1.0
    raw = maximum / ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return float(factor * power)
    return float(10 * power)


@dataclasses.dataclass(frozen=True)
class _Axes:
    """Where x values and y counts land in the SVG, for x in [low, high] and y in [0, top]."""

    low: float
    high: float
    top: float

    def x_of(self, value: float) -> float:
        return _MARGIN_LEFT + (value - self.low) / (self.high - self.low) * _PLOT_WIDTH

    def y_of(self, count: float) -> float:
        return _MARGIN_TOP + _PLOT_HEIGHT - count / self.top * _PLOT_HEIGHT


def histogram_svg(
    values: Sequence[float] | np.ndarray,
    *,
    bins: int = 20,
    value_range: tuple[float, float] = (0.0, 1.0),
    x_label: str,
    colour_of_bin: Callable[[float, float], str],
    tick_format: Callable[[float], str] = lambda value: f"{value:g}",
    marker: float | None = None,
    marker_label: str = "",
    unit: str = "images",
) -> str:
    """An SVG histogram of ``values``.

    Args:
        values: the numbers to count (NaN ignored).
        bins: number of equal-width bins over ``value_range``.
        value_range: (low, high) of the x axis; values outside are clipped into the end bins.
        x_label: axis title under the x axis.
        colour_of_bin: (bin start, bin end) -> CSS colour of that bar.
        tick_format: how x tick values are written.
        marker: optional x value drawn as a dashed vertical line (e.g. the blur threshold).
        marker_label: text next to the marker line.
        unit: what is counted, for the tooltips.

    Returns:
        An ``<svg>`` element as a string, with a ``<title>`` tooltip per bar.
    """
    data = np.asarray(values, dtype=np.float64)
    data = data[~np.isnan(data)]
    low, high = value_range
    counts, edges = np.histogram(np.clip(data, low, high), bins=bins, range=value_range)
    # Counts are whole numbers: never a tick step below 1.
    step = max(1.0, nice_step(float(counts.max()) if counts.size else 0.0))
    top = max(step, math.ceil((counts.max() if counts.size else 0) / step) * step)
    axes = _Axes(low, high, top)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
             f'role="img" class="chart" font-size="11" fill="{TEXT_COLOUR}">']
    parts += _grid_and_y_ticks(axes, step)
    for count, start, end in zip(counts, edges[:-1], edges[1:], strict=True):
        tip = f"{tick_format(start)} to {tick_format(end)}: {int(count):,} {unit}"
        parts.append(_bar(axes, count, start, end, colour_of_bin(start, end), tip))
    parts += _x_axis(axes, tick_format, x_label)
    if marker is not None and low <= marker <= high:
        parts += _marker_line(axes, marker, marker_label)
    parts.append("</svg>")
    return "".join(parts)


def _grid_and_y_ticks(axes: _Axes, step: float) -> list[str]:
    """A horizontal grid line and a count label every ``step``, from 0 to the top."""
    parts = []
    tick = 0.0
    while tick <= axes.top + 1e-9:
        y = axes.y_of(tick)
        parts.append(f'<line x1="{_MARGIN_LEFT}" x2="{WIDTH - _MARGIN_RIGHT}" y1="{y:.1f}" '
                     f'y2="{y:.1f}" stroke="{GRID_COLOUR}"/>')
        parts.append(f'<text x="{_MARGIN_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f'{int(tick):,}</text>')
        tick += step
    return parts


def _bar(axes: _Axes, count: float, start: float, end: float, colour: str, tip: str) -> str:
    """One bar from the baseline up to ``count``, 1 px clear of its neighbours, with a tooltip."""
    gap = 1.0
    x0, x1 = axes.x_of(start) + gap, axes.x_of(end) - gap
    y = axes.y_of(count)
    return (f'<rect x="{x0:.1f}" y="{y:.1f}" width="{max(0.5, x1 - x0):.1f}" '
            f'height="{_BASELINE - y:.1f}" rx="1.5" '
            f'fill="{colour}"><title>{html.escape(tip)}</title></rect>')


def _x_axis(axes: _Axes, tick_format: Callable[[float], str], x_label: str) -> list[str]:
    """The baseline, five x tick labels from low to high, and the axis title."""
    parts = [f'<line x1="{_MARGIN_LEFT}" x2="{WIDTH - _MARGIN_RIGHT}" y1="{_BASELINE}" '
             f'y2="{_BASELINE}" stroke="{AXIS_COLOUR}"/>']
    for value in np.linspace(axes.low, axes.high, 5):
        parts.append(f'<text x="{axes.x_of(value):.1f}" y="{_BASELINE + 16}" '
                     f'text-anchor="middle">{html.escape(tick_format(value))}</text>')
    parts.append(f'<text x="{_MARGIN_LEFT + _PLOT_WIDTH / 2:.1f}" y="{HEIGHT - 6}" '
                 f'text-anchor="middle" font-weight="600">{html.escape(x_label)}</text>')
    return parts


def _marker_line(axes: _Axes, marker: float, marker_label: str) -> list[str]:
    """A dashed vertical line at ``marker``, labelled on the side with more room."""
    x = axes.x_of(marker)
    anchor = "end" if marker > (axes.low + axes.high) / 2 else "start"
    offset = -5 if anchor == "end" else 5
    return [f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{_MARGIN_TOP}" y2="{_BASELINE}" '
            f'stroke="#111827" stroke-dasharray="4 3" stroke-width="1.2"/>',
            f'<text x="{x + offset:.1f}" y="{_MARGIN_TOP + 10}" '
            f'text-anchor="{anchor}" fill="#111827">{html.escape(marker_label)}</text>']
