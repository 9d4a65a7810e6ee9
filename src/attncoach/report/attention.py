"""Attention maps of one input, drawn per layer and head: as an HTML page of SVG heatmaps, or as a PNG.

``attncoach attention RUN "text"`` and the report's heatmaps both come from here; the weights
come from the predictor's ``attention`` (:mod:`attncoach.models.saved`).

Example:
    >>> tokens, maps = attncoach.load("runs/tweets").attention("the flight was late")  # doctest: +SKIP
    >>> write_attention(Path("attention.html"), "the flight was late", tokens, maps)    # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from attncoach.atomicfile import atomic_write_text, fsync_dir
from attncoach.errors import AttncoachError
from attncoach.report.svg import heatmap

FORMATS = (".html", ".png")


def pick(maps: list[np.ndarray], layer: int | None, head: int | None) -> list[tuple[int, int, np.ndarray]]:
    """``(layer, head, map)`` for the chosen layer and head (None: all of them), both 0-based.

    Raises:
        AttncoachError: a layer or head the model does not have.
    """
    if layer is not None and not 0 <= layer < len(maps):
        raise AttncoachError(f"--layer {layer} is out of range: the model runs layers 0 to {len(maps) - 1}")
    chosen = []
    for index, per_head in enumerate(maps):
        if layer is not None and index != layer:
            continue
        if head is not None and not 0 <= head < per_head.shape[0]:
            raise AttncoachError(f"--head {head} is out of range: layer {index} has heads 0 to {per_head.shape[0] - 1}")
        chosen += [(index, h, per_head[h]) for h in range(per_head.shape[0]) if head is None or h == head]
    return chosen


def attention_grid(prefix: str, tokens: Sequence[str], chosen: list[tuple[int, int, np.ndarray]]) -> str:
    """One row of heatmaps per layer (one heatmap per head, queries down, keys across), as HTML."""
    cell = max(8, min(18, 360 // max(1, len(tokens))))
    rows: dict[int, list[str]] = {}
    for layer, head, weights in chosen:
        chart = heatmap(
            f"{prefix}-l{layer}-h{head}",
            weights.tolist(),
            list(tokens),
            list(tokens),
            title=f"layer {layer} head {head}",
            cell=cell,  # shaded up to the head's own largest weight: a near-uniform head still shows its pattern
            name_cells=False,  # the axes name the tokens
        )
        rows.setdefault(layer, []).append(chart)
    return "\n".join(f'<div class="heads">{"".join(charts)}</div>' for charts in rows.values())


def write_attention(
    out: Path, text: str, tokens: Sequence[str], chosen: list[tuple[int, int, np.ndarray]], source: str = ""
) -> None:
    """Write the maps to ``out``: an HTML page of SVG heatmaps (``.html``) or a matplotlib figure (``.png``).

    Raises:
        AttncoachError: another suffix, or ``.png`` without matplotlib installed.
    """
    if out.suffix.lower() == ".png":
        _write_png(out, tokens, chosen)
        return
    if out.suffix.lower() != ".html":
        raise AttncoachError(f"--out {out} must end in .html or .png")
    from attncoach.report.page import page

    body = f"<p>{escape(source)}</p><p class='text'>{escape(text)}</p>" + attention_grid("attention", tokens, chosen)
    atomic_write_text(out, page("attention maps", body))


def _write_png(out: Path, tokens: Sequence[str], chosen: list[tuple[int, int, np.ndarray]]) -> None:
    try:
        figure = attention_figure(tokens, chosen)
    except ImportError:
        raise AttncoachError("a PNG needs matplotlib: pip install 'attncoach[report]' (or write .html)") from None
    tmp = out.with_name(f".{out.name}.tmp.png")
    try:
        figure.savefig(tmp, dpi=110)
        tmp.replace(out)  # readers see the old file or the new one
        fsync_dir(out.parent)
    finally:
        tmp.unlink(missing_ok=True)


def attention_figure(tokens: Sequence[str], chosen: list[tuple[int, int, np.ndarray]]) -> Any:
    """A matplotlib Figure: one row of heatmaps per layer, one per head (queries down, keys across).

    Raises:
        ImportError: matplotlib is not installed.
    """
    import matplotlib.figure

    layers = sorted({layer for layer, _, _ in chosen})
    heads = max(sum(1 for layer_, _, _ in chosen if layer_ == layer) for layer in layers)
    size = 0.25 * len(tokens) + 1.5
    figure = matplotlib.figure.Figure(figsize=(size * heads, size * len(layers)))
    axes = figure.subplots(len(layers), heads, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    column = dict.fromkeys(layers, 0)
    for layer, head, weights in chosen:
        ax = axes[layers.index(layer)][column[layer]]
        column[layer] += 1
        ax.axis("on")
        ax.imshow(weights, cmap="Blues", vmin=0.0)
        ax.set_title(f"layer {layer} head {head}", fontsize=9)
        ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=7)
        ax.set_yticks(range(len(tokens)), tokens, fontsize=7)
    figure.tight_layout()
    return figure
