"""The SVG charts: real numbers in, shapes at the right places out."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import pytest

from attncoach.report.svg import Point, Series, bar_chart, event_strip, heatmap, line_chart, nice_ticks, scatter_chart

NS = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg" and root.get("class") == "chart"
    return root


def _coords(d: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in re.findall(r"[ML]([-\d.]+),([-\d.]+)", d)]


def test_line_chart_maps_values_to_positions():
    svg = line_chart("loss", [Series("train", [0, 10, 20], [2.0, 1.0, 0.5])], title="loss", width=400, height=200)
    root = _parse(svg)
    assert root.get("id") == "loss"
    (path,) = root.iter(f"{NS}path")
    points = _coords(path.get("d"))
    assert len(points) == 3
    xs, ys = zip(*points)
    assert xs[0] < xs[1] < xs[2] and xs[2] - xs[1] == pytest.approx(xs[1] - xs[0])  # equal steps, equal spacing
    assert ys[0] < ys[1] < ys[2]  # a falling loss goes down the page (SVG y grows downwards)
    assert (ys[2] - ys[1]) / (ys[1] - ys[0]) == pytest.approx(0.5)  # 1.0 -> 0.5 is half of 2.0 -> 1.0
    assert len(list(root.iter(f"{NS}circle"))) == 3  # few points: each marked


def test_line_chart_breaks_at_gaps_and_draws_staircases():
    root = _parse(line_chart("c", [Series("a", [0, 1, 2, 3], [1.0, None, math.nan, 2.0])], title="gaps"))
    (path,) = root.iter(f"{NS}path")
    assert path.get("d").count("M") == 2  # the gap (None, NaN) starts a new sub-path
    root = _parse(line_chart("s", [Series("lr", [0, 10], [1.0, 0.5], steps=True)], title="stairs"))
    (path,) = root.iter(f"{NS}path")
    assert "H" in path.get("d")  # horizontal runs between changes


def test_line_chart_with_nothing_to_draw_is_refused():
    with pytest.raises(ValueError, match="no finite point"):
        line_chart("empty", [Series("a", [1, 2], [None, math.inf])], title="empty")


def test_heatmap_has_one_cell_per_value_shaded_by_value():
    root = _parse(heatmap("cm", [[8, 0], [2, 6]], ["neg", "pos"], ["neg", "pos"], title="confusion", show_values=True))
    cells = [r for r in root.iter(f"{NS}rect") if r.get("class") == "cell"]
    assert len(cells) == 4
    darkest = min(cells, key=lambda r: int(r.get("fill")[1:3], 16))
    assert "neg → neg: 8" in darkest.find(f"{NS}title").text
    assert [t.text for t in root.iter(f"{NS}text") if t.get("class") == "value"] == ["8", "0", "2", "6"]
    with pytest.raises(ValueError):
        heatmap("bad", [[1, 2]], ["a", "b"], ["x", "y"], title="wrong labels")


def test_scatter_joins_the_highlighted_points_in_x_order():
    points = [Point(3.0, 0.9, "full", True), Point(1.0, 0.7, "small", True), Point(2.0, 0.6, "other")]
    root = _parse(scatter_chart("sub", points, title="front", x_label="ms", y_label="f1"))
    circles = list(root.iter(f"{NS}circle"))
    assert len(circles) == 3 and sum(c.get("fill") != "white" for c in circles) == 2
    front = next(p for p in root.iter(f"{NS}path") if p.get("class") == "front")
    (x1, _), (x2, _) = _coords(front.get("d"))
    assert x1 < x2


def test_event_strip_puts_each_kind_on_its_row():
    events = [(1.0, "lr_probe: lr_scale", "up"), (7.0, "lr_probe: rollback", "back"), (30.0, "lr_probe: lr_scale", "x")]
    root = _parse(event_strip("coach", events, title="decisions", x_max=60))
    marks = [r for r in root.iter(f"{NS}rect") if r.get("class") == "mark"]
    assert len(marks) == 3
    assert marks[0].get("y") == marks[2].get("y") != marks[1].get("y")
    assert float(marks[0].get("x")) < float(marks[1].get("x")) < float(marks[2].get("x"))


def test_nice_ticks_cover_the_range_with_round_steps():
    assert nice_ticks(0, 0.93)[0] == 0 and nice_ticks(0, 0.93)[-1] >= 0.93
    ticks = nice_ticks(13, 487)
    assert ticks[0] <= 13 and ticks[-1] >= 487 and len({round(b - a, 9) for a, b in zip(ticks, ticks[1:])}) == 1


def test_bar_chart_bars_rise_from_zero_in_proportion():
    root = _parse(bar_chart("m", ["hr@10", "ndcg@10"], [("val", [0.8, 0.4]), ("test", [0.6, None])], title="ranking"))
    bars = [r for r in root.iter(f"{NS}rect") if r.get("class") == "bar"]
    assert len(bars) == 3  # the missing test ndcg@10 has no bar
    heights = [float(b.get("height")) for b in bars]
    assert heights[0] / heights[1] == pytest.approx(0.8 / 0.6, rel=1e-2)  # val hr@10, test hr@10
    assert heights[2] / heights[0] == pytest.approx(0.5, rel=1e-2)
    bottoms = {round(float(b.get("y")) + float(b.get("height")), 1) for b in bars}
    assert len(bottoms) == 1  # one baseline: 0
