"""Small SVG charts written as text: line charts, scatter plots, heatmaps and event strips.

Every chart is one ``<svg class="chart" id="...">`` element with its data drawn as shapes
(``path``, ``circle``, ``rect``, ``line``) and a ``<title>`` on each point or cell, so a page
that holds it needs no script and no network. Values that are None or not finite are gaps.

Example:
    >>> svg = line_chart("loss", [Series("train", [0, 10, 20], [2.0, 1.1, 0.7])], title="loss")
    >>> svg.startswith('<svg class="chart" id="loss"') and "<path" in svg
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")
_MARGIN = (44, 16, 30, 58)  # top, right, bottom, left


@dataclass
class Series:
    """One line of a :func:`line_chart`: ``ys[i]`` at ``xs[i]``; ``steps`` draws it as a staircase."""

    name: str
    xs: Sequence[float]
    ys: Sequence[float | None]
    steps: bool = False


@dataclass
class Point:
    """One point of a :func:`scatter_chart`; a ``highlight`` point is drawn filled and labelled."""

    x: float
    y: float
    label: str = ""
    highlight: bool = False


@dataclass
class _Frame:
    """The plot area of a chart and the data ranges it maps."""

    width: int
    height: int
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    margin: tuple[int, int, int, int] = field(default=_MARGIN)

    def x(self, value: float) -> float:
        top, right, bottom, left = self.margin
        lo, hi = self.x_range
        return left + (value - lo) / (hi - lo) * (self.width - left - right)

    def y(self, value: float) -> float:
        top, right, bottom, left = self.margin
        lo, hi = self.y_range
        return self.height - bottom - (value - lo) / (hi - lo) * (self.height - top - bottom)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering ``[lo, hi]``.

    Example:
        >>> nice_ticks(0, 0.93)
        [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    """
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(lo / step) * step
    return [round(first + i * step, 12) for i in range(int(math.ceil((hi - first) / step - 1e-9)) + 1)]


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _label(value: float) -> str:
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.1e}"
    return f"{value:.4g}"


def _padded(lo: float, hi: float) -> tuple[float, float]:
    if hi > lo:
        return lo, hi
    pad = abs(lo) * 0.05 or 1.0
    return lo - pad, hi + pad


def _open(chart_id: str, width: int, height: int, title: str) -> list[str]:
    return [
        f'<svg class="chart" id="{escape(chart_id)}" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<text class="title" x="{width / 2:.1f}" y="18" text-anchor="middle">{escape(title)}</text>',
    ]


def _axes(frame: _Frame, x_label: str, y_label: str) -> list[str]:
    """Grid lines, tick labels and axis names; the y ticks also fix the frame's y range."""
    out = []
    top, right, bottom, left = frame.margin
    for tick in nice_ticks(*frame.y_range):
        if frame.y_range[0] - 1e-12 <= tick <= frame.y_range[1] + 1e-12:
            y = frame.y(tick)
            out.append(f'<line class="grid" x1="{left}" x2="{frame.width - right}" y1="{y:.1f}" y2="{y:.1f}"/>')
            out.append(f'<text class="tick" x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{_label(tick)}</text>')
    for tick in nice_ticks(*frame.x_range, count=6):
        if frame.x_range[0] - 1e-12 <= tick <= frame.x_range[1] + 1e-12:
            x = frame.x(tick)
            y = frame.height - bottom
            out.append(f'<text class="tick" x="{x:.1f}" y="{y + 14}" text-anchor="middle">{_label(tick)}</text>')
    axis_y = frame.height - bottom
    out.append(f'<line class="axis" x1="{left}" x2="{frame.width - right}" y1="{axis_y}" y2="{axis_y}"/>')
    out.append(f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{axis_y}"/>')
    out.append(
        f'<text class="label" x="{frame.width - right}" y="{frame.height - 2}" text-anchor="end">'
        f"{escape(x_label)}</text>"
    )
    if y_label:
        out.append(f'<text class="label" x="4" y="{top - 8}">{escape(y_label)}</text>')
    return out


def _legend(names: Sequence[str], width: int) -> list[str]:
    out, x = [], 60.0
    for i, name in enumerate(names):
        color = PALETTE[i % len(PALETTE)]
        out.append(f'<rect class="key" x="{x:.0f}" y="27" width="10" height="10" fill="{color}"/>')
        out.append(f'<text class="legend" x="{x + 14:.0f}" y="36">{escape(name)}</text>')
        x += 24 + 6.5 * len(name)
        if x > width - 60:
            break
    return out


def _path(series: Series, frame: _Frame) -> str:
    """The ``d`` of one series: a new sub-path after each gap; a staircase for ``steps``."""
    parts, drawing, last_y = [], False, None
    for x, y in zip(series.xs, series.ys):
        if not (_finite(x) and _finite(y)):
            drawing = False
            continue
        px, py = frame.x(x), frame.y(y)
        if drawing and series.steps:
            parts.append(f"H{px:.1f}")
        parts.append(f"{'L' if drawing else 'M'}{px:.1f},{py:.1f}")
        drawing, last_y = True, py
    if drawing and series.steps and last_y is not None:
        parts.append(f"H{frame.x(frame.x_range[1]):.1f}")
    return "".join(parts)


def line_chart(
    chart_id: str,
    series: Sequence[Series],
    *,
    title: str,
    x_label: str = "step",
    y_label: str = "",
    width: int = 560,
    height: int = 250,
    events: Sequence[float] = (),
) -> str:
    """Lines over a shared x axis, one colour each, with a legend; ``events`` are dashed vertical marks.

    Raises:
        ValueError: no series holds a finite point (the caller says what is missing instead).
    """
    points = [(x, y) for s in series for x, y in zip(s.xs, s.ys) if _finite(x) and _finite(y)]
    if not points:
        raise ValueError(f"chart {chart_id}: no finite point to draw")
    xs = [x for x, _ in points] + [e for e in events if _finite(e)]
    ys = [y for _, y in points]
    ticks = nice_ticks(min(ys), max(ys)) if max(ys) > min(ys) else list(_padded(min(ys), max(ys)))
    frame = _Frame(width, height, _padded(min(xs), max(xs)), (ticks[0], ticks[-1]))
    out = _open(chart_id, width, height, title) + _axes(frame, x_label, y_label)
    for step in events:
        if _finite(step):
            x = frame.x(step)
            out.append(
                f'<line class="event" x1="{x:.1f}" x2="{x:.1f}" y1="{frame.margin[0]}" '
                f'y2="{height - frame.margin[2]}"><title>step {_label(step)}</title></line>'
            )
    for i, s in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        d = _path(s, frame)
        if d:
            out.append(
                f'<path class="series" d="{d}" stroke="{color}" fill="none"><title>{escape(s.name)}</title></path>'
            )
        alone = [(x, y) for x, y in zip(s.xs, s.ys) if _finite(x) and _finite(y)]
        if len(alone) <= 30:  # few points: mark each, with its value
            for x, y in alone:
                out.append(
                    f'<circle cx="{frame.x(x):.1f}" cy="{frame.y(y):.1f}" r="2.5" fill="{color}">'
                    f"<title>{escape(s.name)}: {_label(y)} at {_label(x)}</title></circle>"
                )
    if len(series) > 1 or series[0].name:
        out += _legend([s.name for s in series], width)
    return "\n".join([*out, "</svg>"])


def scatter_chart(
    chart_id: str,
    points: Sequence[Point],
    *,
    title: str,
    x_label: str,
    y_label: str,
    width: int = 640,
    height: int = 280,
    connect_highlighted: bool = True,
) -> str:
    """Points with their labels on hover; highlighted ones filled, labelled and (by default) joined.

    Raises:
        ValueError: no point is finite.
    """
    shown = [p for p in points if _finite(p.x) and _finite(p.y)]
    if not shown:
        raise ValueError(f"chart {chart_id}: no finite point to draw")
    xs, ys = [p.x for p in shown], [p.y for p in shown]
    x_lo, x_hi = _padded(min(xs), max(xs))
    pad = (x_hi - x_lo) * 0.05
    ticks = nice_ticks(*_padded(min(ys), max(ys)))
    frame = _Frame(width, height, (x_lo - pad, x_hi + pad), (ticks[0], ticks[-1]))
    out = _open(chart_id, width, height, title) + _axes(frame, x_label, y_label)
    front = sorted((p for p in shown if p.highlight), key=lambda p: p.x)
    if connect_highlighted and len(front) > 1:
        d = "".join(f"{'M' if i == 0 else 'L'}{frame.x(p.x):.1f},{frame.y(p.y):.1f}" for i, p in enumerate(front))
        out.append(f'<path class="front" d="{d}" stroke="{PALETTE[1]}" fill="none"/>')
    for p in shown:
        fill = PALETTE[1] if p.highlight else "white"
        out.append(
            f'<circle class="point" cx="{frame.x(p.x):.1f}" cy="{frame.y(p.y):.1f}" r="4" fill="{fill}" '
            f'stroke="{PALETTE[0]}"><title>{escape(p.label)}: {_label(p.y)} at {_label(p.x)}</title></circle>'
        )
        if p.highlight and p.label:
            out.append(
                f'<text class="legend" x="{frame.x(p.x) + 6:.1f}" y="{frame.y(p.y) - 6:.1f}">{escape(p.label)}</text>'
            )
    return "\n".join([*out, "</svg>"])


def bar_chart(
    chart_id: str,
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    title: str,
    y_label: str = "",
    width: int = 640,
    height: int = 250,
) -> str:
    """Grouped bars from 0: one group per category, one bar (colour) per ``(name, values)`` series.

    Raises:
        ValueError: no finite value.
    """
    values = [v for _, vs in series for v in vs if _finite(v)]
    if not values:
        raise ValueError(f"chart {chart_id}: no finite value to draw")
    ticks = nice_ticks(min(0.0, min(values)), max(0.0, max(values)) or 1.0)
    frame = _Frame(width, height, (0, len(categories)), (ticks[0], ticks[-1]))
    out = _open(chart_id, width, height, title)
    top, right, bottom, left = frame.margin
    for tick in ticks:
        y = frame.y(tick)
        out.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text class="tick" x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{_label(tick)}</text>')
    slot = (frame.x(1) - frame.x(0)) * 0.8 / max(1, len(series))
    for i, name in enumerate(categories):
        x0 = frame.x(i) + (frame.x(1) - frame.x(0)) * 0.1
        out.append(
            f'<text class="tick" x="{frame.x(i + 0.5):.1f}" y="{height - bottom + 14}" '
            f'text-anchor="middle">{escape(name)}</text>'
        )
        for j, (series_name, vs) in enumerate(series):
            value = vs[i] if i < len(vs) else None
            if not _finite(value):
                continue
            y, base = frame.y(max(value, 0.0)), frame.y(min(value, 0.0))
            out.append(
                f'<rect class="bar" x="{x0 + j * slot:.1f}" y="{y:.1f}" width="{slot * 0.92:.1f}" '
                f'height="{max(base - y, 0.5):.1f}" fill="{PALETTE[j % len(PALETTE)]}">'
                f"<title>{escape(series_name)} {escape(name)}: {_label(value)}</title></rect>"
            )
    out.append(f'<line class="axis" x1="{left}" x2="{width - right}" y1="{frame.y(0):.1f}" y2="{frame.y(0):.1f}"/>')
    if y_label:
        out.append(f'<text class="label" x="4" y="{top - 8}">{escape(y_label)}</text>')
    out += _legend([name for name, _ in series], width)
    return "\n".join([*out, "</svg>"])


def heatmap(
    chart_id: str,
    matrix: Sequence[Sequence[float]],
    rows: Sequence[str],
    cols: Sequence[str],
    *,
    title: str,
    cell: int = 18,
    show_values: bool = False,
    max_value: float | None = None,
    label_width: int | None = None,
    name_cells: bool = True,
) -> str:
    """A matrix as shaded cells (white = 0, dark blue = ``max_value``), rows and columns labelled.

    Each cell's hover text is ``row → column: value``, or only the value without ``name_cells``
    (a big matrix then weighs half as much).

    Raises:
        ValueError: an empty matrix, or labels that do not fit its shape.
    """
    if not matrix or not matrix[0]:
        raise ValueError(f"chart {chart_id}: an empty matrix")
    if len(rows) != len(matrix) or any(len(r) != len(cols) for r in matrix):
        raise ValueError(f"chart {chart_id}: {len(rows)}x{len(cols)} labels for another shape")
    top_value = max_value or max((v for r in matrix for v in r if _finite(v)), default=1.0) or 1.0
    left = label_width or min(160, 12 + 6 * max(len(r) for r in rows))
    top = 28 + min(90, 6 * max(len(c) for c in cols))
    width = max(left + cell * len(cols) + 8, 24 + 8 * len(title))  # room for the title
    height = top + cell * len(rows) + 6
    out = _open(chart_id, width, height, title)
    for j, name in enumerate(cols):
        x = left + (j + 0.5) * cell
        out.append(
            f'<text class="tick" transform="translate({x + 3:.1f},{top - 4}) rotate(-60)">{escape(name[:16])}</text>'
        )
    for i, (name, values) in enumerate(zip(rows, matrix)):
        y = top + i * cell
        out.append(
            f'<text class="tick" x="{left - 4}" y="{y + cell * 0.7:.1f}" text-anchor="end">{escape(name[:24])}</text>'
        )
        for j, value in enumerate(values):
            hover = f"{escape(name)} → {escape(cols[j])}: " if name_cells else ""
            share = min(1.0, max(0.0, value / top_value)) if _finite(value) else 0.0
            shade = f"#{int(255 - 224 * share):02x}{int(255 - 136 * share):02x}{int(255 - 75 * share):02x}"
            out.append(
                f'<rect class="cell" x="{left + j * cell}" y="{y}" width="{cell}" height="{cell}" fill="{shade}">'
                f"<title>{hover}{_label(value) if _finite(value) else 'n/a'}</title></rect>"
            )
            if show_values and _finite(value):
                ink = "white" if share > 0.6 else "#222"
                out.append(
                    f'<text class="value" x="{left + (j + 0.5) * cell:.1f}" y="{y + cell * 0.65:.1f}" '
                    f'text-anchor="middle" fill="{ink}">{_label(value)}</text>'
                )
    return "\n".join([*out, "</svg>"])


def event_strip(
    chart_id: str,
    events: Sequence[tuple[float, str, str]],
    *,
    title: str,
    x_max: float,
    width: int = 640,
) -> str:
    """Events ``(step, kind, description)`` as marks on one row per kind along the step axis.

    Raises:
        ValueError: no event.
    """
    if not events:
        raise ValueError(f"chart {chart_id}: no event")
    kinds = list(dict.fromkeys(kind for _, kind, _ in events))
    row = 22
    margin = (44, 16, 30, min(200, 12 + 6 * max(len(k) for k in kinds)))
    height = margin[0] + row * len(kinds) + margin[2]
    frame = _Frame(width, height, (0, max(x_max, max(step for step, _, _ in events), 1)), (0, len(kinds)), margin)
    out = _open(chart_id, width, height, title)
    out.append(f'<text class="label" x="{width - margin[1]}" y="{height - 2}" text-anchor="end">step</text>')
    for tick in nice_ticks(*frame.x_range, count=6):
        if tick <= frame.x_range[1]:
            out.append(
                f'<text class="tick" x="{frame.x(tick):.1f}" y="{height - margin[2] + 14}" '
                f'text-anchor="middle">{_label(tick)}</text>'
            )
    for i, kind in enumerate(kinds):
        y = margin[0] + i * row + row / 2
        out.append(f'<text class="tick" x="{margin[3] - 4}" y="{y + 4:.1f}" text-anchor="end">{escape(kind)}</text>')
        out.append(f'<line class="grid" x1="{margin[3]}" x2="{width - margin[1]}" y1="{y:.1f}" y2="{y:.1f}"/>')
    for step, kind, description in events:
        y = margin[0] + kinds.index(kind) * row + row / 2
        color = PALETTE[kinds.index(kind) % len(PALETTE)]
        out.append(
            f'<rect class="mark" x="{frame.x(step) - 3:.1f}" y="{y - 7:.1f}" width="6" height="14" fill="{color}">'
            f"<title>step {_label(step)}: {escape(description)}</title></rect>"
        )
    return "\n".join([*out, "</svg>"])
