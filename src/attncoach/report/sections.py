"""The sections of a report, each a function from what a run holds to an HTML fragment.

A section never fails on a run that lacks its data: it says what is missing instead. Chart
ids start with the run's prefix (``r0-``, ``r1-``...), so several runs fit on one page.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from typing import Any

import yaml

from attncoach.curriculum.record import rank, summary
from attncoach.report.runfiles import RunFiles
from attncoach.report.svg import Point, Series, bar_chart, event_strip, heatmap, line_chart, scatter_chart

_TRAIN_KNOBS = ("lr", "lr_scale", "batch")  # knobs logged with the training loss (train group)
_NOT_KNOBS = ("rollback", "stop")  # coach decisions whose value is a step, not a knob's value


def section(section_id: str, title: str, body: str) -> str:
    """A titled ``<section>`` of the page."""
    return f'<section id="{escape(section_id)}"><h2>{escape(title)}</h2>\n{body}\n</section>'


def note(text: str) -> str:
    """A line saying what is missing or why a part is empty."""
    return f'<p class="note">{escape(text)}</p>'


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], css: str = "") -> str:
    """An HTML table of plain values (numbers formatted, everything escaped)."""
    head = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(fmt(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def pairs(rows: Sequence[tuple[str, Any]], css: str = "summary") -> str:
    """A two-column table of names and values."""
    body = "".join(f"<tr><th>{escape(name)}</th><td>{escape(fmt(value))}</td></tr>" for name, value in rows)
    return f'<table class="{css}"><tbody>{body}</tbody></table>'


def fmt(value: Any) -> str:
    """A value as a table shows it: floats to 4 significant digits, None as a dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def _chart(make: Any, *args: Any, **kwargs: Any) -> str:
    """A chart, or a note when there is nothing to draw."""
    try:
        return make(*args, **kwargs)
    except ValueError as exc:
        return note(str(exc).split(": ", 1)[-1])


def primary_of(files: RunFiles) -> str:
    """The run's primary metric (from metrics.json, else the task's usual one)."""
    if files.metrics and isinstance(files.metrics.get("primary"), str):
        return files.metrics["primary"]
    return "ndcg@10" if files.task == "next_item" else "macro_f1"


# ---------------------------------------------------------------- summary and config
def summary_section(files: RunFiles, prefix: str) -> str:
    m = files.metrics or {}
    primary = primary_of(files)
    test = m.get("test") if isinstance(m.get("test"), dict) else {}
    rows = [
        ("run", str(files.run.path)),
        ("task", files.task),
        (f"test {primary}", test.get(primary)),
        ("steps", m.get("steps", _last_step(files))),
        ("epochs", m.get("epochs")),
        ("best step", m.get("best_step")),
        ("train seconds", m.get("train_seconds")),
        ("examples seen", m.get("examples_seen")),
        ("stopped early", m.get("stop_reason") if m.get("stopped_early") else (False if m else None)),
    ]
    body = pairs(rows)
    if files.missing:
        items = "".join(f"<li>{escape(line)}</li>" for line in files.missing)
        body += f'<div class="missing"><p>Missing from this run, so parts below are empty:</p><ul>{items}</ul></div>'
    return section(f"{prefix}-summary", "Run summary", body)


def config_section(files: RunFiles, prefix: str) -> str:
    text = yaml.safe_dump(files.config, sort_keys=False, default_flow_style=None)
    return section(
        f"{prefix}-config",
        "Resolved config",
        f"<details><summary>config.yaml</summary><pre>{escape(text)}</pre></details>",
    )


def _last_step(files: RunFiles) -> int | None:
    return max((e["step"] for e in files.scalars), default=None)


# ---------------------------------------------------------------- learning curves
def curves_section(files: RunFiles, prefix: str) -> str:
    loss, metrics = _loss_series(files), _metric_series(files)
    rollbacks = [
        float(d["step"])
        for d in files.decisions
        if d.get("knob") == "rollback" and isinstance(d.get("step"), (int, float))
    ]
    title = "loss (dashed: the coach rolled back)" if rollbacks else "loss"
    body = _chart(line_chart, f"{prefix}-loss", loss, title=title, y_label="loss", events=rollbacks)
    body += _chart(line_chart, f"{prefix}-val-metrics", metrics, title="val metrics", y_label="")
    return section(f"{prefix}-curves", "Learning curves", f'<div class="grid">{body}</div>')


def _loss_series(files: RunFiles) -> list[Series]:
    if files.scalars:
        out = [Series("train loss", *files.series("train", "loss")), Series("val loss", *files.series("val", "loss"))]
        if "loss_smallest" in files.names("train"):
            out.append(Series("train loss (smallest sub-net)", *files.series("train", "loss_smallest")))
        return out
    history = _history(files)
    return [Series("val loss", [h["step"] for h in history], [h.get("val_loss") for h in history])]


def _metric_series(files: RunFiles) -> list[Series]:
    if files.scalars:
        names = [n for n in files.names("val") if n != "loss" and not n.startswith("attention_entropy")]
        return [Series(f"val {n}", *files.series("val", n)) for n in names]
    history = _history(files)
    keys = [k for k in (history[0] if history else {}) if k.startswith("val_") and k not in ("val_loss",)]
    return [Series(k.replace("_", " ", 1), [h["step"] for h in history], [h.get(k) for h in history]) for k in keys]


def _history(files: RunFiles) -> list[dict[str, Any]]:
    history = (files.metrics or {}).get("history")
    return (
        [h for h in history if isinstance(h, dict) and isinstance(h.get("step"), int)]
        if isinstance(history, list)
        else []
    )


# ---------------------------------------------------------------- coach and knobs
def coach_section(files: RunFiles, prefix: str) -> str:
    if not files.section("coach").get("enabled", True):
        return section(
            f"{prefix}-coach", "Coach decisions", note("the coach was off in this run (coach.enabled: false)")
        )
    decisions = [d for d in files.decisions if isinstance(d.get("step"), (int, float))]
    if not decisions:
        return section(
            f"{prefix}-coach", "Coach decisions", note("the coach took no decision (coach.jsonl is empty or absent)")
        )
    events = [(float(d["step"]), f"{d.get('policy', '?')}: {d.get('knob', '?')}", _decision_text(d)) for d in decisions]
    x_max = float((files.metrics or {}).get("steps") or _last_step(files) or max(e[0] for e in events))
    body = _chart(event_strip, f"{prefix}-coach-timeline", events, title="decisions over training", x_max=x_max)
    rows = [(d["step"], d.get("policy"), d.get("knob"), d.get("old"), d.get("new"), d.get("reason")) for d in decisions]
    body += table(("step", "policy", "knob", "old", "new", "reason"), rows, "decisions")
    return section(f"{prefix}-coach", "Coach decisions", body)


def _decision_text(d: dict[str, Any]) -> str:
    return f"{d.get('knob')} {fmt(d.get('old'))} → {fmt(d.get('new'))}: {d.get('reason', '')}"


def knobs_section(files: RunFiles, prefix: str) -> str:
    charts = []
    for name in _TRAIN_KNOBS:
        steps, values = files.series("train", name)
        if any(v is not None for v in values):
            charts.append(
                _chart(line_chart, f"{prefix}-knob-{name}", [Series(name, steps, values)], title=name, height=200)
            )
    for name in files.names("coach"):
        if name in _NOT_KNOBS or name in _TRAIN_KNOBS:
            continue
        steps, values = files.series("coach", name)
        start = _knob_start(files, name)
        if start is not None:
            steps, values = [0, *steps], [start, *values]
        series = [Series(name, steps, values, steps=True)]
        charts.append(_chart(line_chart, f"{prefix}-knob-{name}", series, title=f"{name} (coach)", height=200))
    if not charts:
        return section(f"{prefix}-knobs", "Knob trajectories", note("no knob was logged (no scalars.jsonl)"))
    return section(f"{prefix}-knobs", "Knob trajectories", '<div class="grid">' + "".join(charts) + "</div>")


def _knob_start(files: RunFiles, knob: str) -> float | None:
    coach = (files.metrics or {}).get("coach")
    start = coach.get("knobs", {}).get(knob, {}).get("start") if isinstance(coach, dict) else None
    return float(start) if isinstance(start, (int, float)) else None


# ---------------------------------------------------------------- curriculum and examples
def curriculum_section(files: RunFiles, prefix: str) -> str:
    scheduler = files.section("curriculum").get("scheduler", "uniform")
    names = files.names("curriculum")
    if names:
        series = [Series(n.replace("_", " "), *files.series("curriculum", n), steps=True) for n in names]
        title = "Leitner box sizes" if any(n.startswith("box_") for n in names) else "curriculum progress"
        body = _chart(
            line_chart, f"{prefix}-curriculum", series, title=title, y_label="examples" if "box" in title else ""
        )
    else:
        body = note(
            f"scheduler {scheduler}: every example once per round, nothing to pace"
            if scheduler == "uniform"
            else "no curriculum progress was logged (a run from before it was)"
        )
    if files.examples is None:
        return section(
            f"{prefix}-curriculum", "Curriculum and examples", body + note("no learning record (examples.jsonl)")
        )
    counts = summary(files.examples)
    shown = [(k.replace("_", " "), v) for k, v in counts.items() if k != "boxes"]
    body += "<h3>learning record</h3>" + pairs(shown)
    for how, title in (
        ("hardest", "hardest (highest mean loss)"),
        ("suspect", "suspect: most likely mislabelled (lowest area under the margin)"),
    ):
        top = rank(files.examples, how, 8)
        body += f"<h3>{escape(title)}</h3>"
        if not top:
            body += note(f"no {how} examples")
            continue
        rows = [
            (r.get("text"), r.get("label"), r.get("predicted"), r.get("p_label"), r.get("seen"), r.get("mean_loss"))
            for r in top
        ]
        body += table(("text", "label", "predicted", "p(label)", "seen", "mean loss"), rows, "examples")
    return section(f"{prefix}-curriculum", "Curriculum and examples", body)


# ---------------------------------------------------------------- evaluation
def evaluation_section(files: RunFiles, prefix: str) -> str:
    test = (files.metrics or {}).get("test")
    if not isinstance(test, dict):
        return section(
            f"{prefix}-evaluation",
            "Test evaluation",
            note("no test metrics: metrics.json is missing (the run did not finish)"),
        )
    if isinstance(test.get("confusion"), list) and isinstance(test.get("labels"), list):
        return section(f"{prefix}-evaluation", "Test evaluation", _classification(test, prefix))
    numbers = [(k, v) for k, v in test.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    val = (files.metrics or {}).get("val") or {}
    rows = [(k, val.get(k), v) for k, v in numbers]
    body = table(("metric", "val", "test"), rows, "metrics")
    ranks = [k for k, v in numbers if k not in ("loss", "n") and 0 <= v <= 1]
    if ranks:
        series = [("val", [val.get(k) for k in ranks]), ("test", [test.get(k) for k in ranks])]
        body += _chart(
            bar_chart, f"{prefix}-test-metrics", ranks, series, title="ranking metrics", width=max(640, 90 * len(ranks))
        )
    return section(f"{prefix}-evaluation", "Test evaluation", body)


def _classification(test: dict[str, Any], prefix: str) -> str:
    labels = [str(x) for x in test["labels"]]
    body = _chart(
        heatmap,
        f"{prefix}-confusion",
        test["confusion"],
        labels,
        labels,
        title="confusion (rows: gold, columns: predicted)",
        cell=max(22, min(48, 480 // max(1, len(labels)))),
        show_values=len(labels) <= 12,
    )
    per_class = test.get("per_class") or {}
    rows = [
        (name, c.get("precision"), c.get("recall"), c.get("f1"), c.get("support"))
        for name, c in per_class.items()
        if isinstance(c, dict)
    ]
    body += table(("class", "precision", "recall", "F1", "support"), rows, "metrics")
    body += table(
        ("accuracy", "macro-F1", "examples"), [(test.get("accuracy"), test.get("macro_f1"), test.get("n"))], "metrics"
    )
    return body


# ---------------------------------------------------------------- sub-nets
def subnets_section(files: RunFiles, prefix: str) -> str:
    title = "Sub-nets: quality vs cost"
    if not files.section("elastic").get("enabled", False):
        return section(
            f"{prefix}-subnets", title, note("not an elastic run (elastic.enabled: false): one model, no sub-nets")
        )
    primary = primary_of(files)
    if files.subnets and isinstance(files.subnets.get("rows"), list):
        return section(f"{prefix}-subnets", title, _measured_subnets(files.subnets, primary, prefix))
    elastic = (files.metrics or {}).get("elastic")
    if not isinstance(elastic, dict):
        return section(f"{prefix}-subnets", title, note("no sub-net results yet (metrics.json is missing)"))
    val = (files.metrics or {}).get("val") or {}
    smallest = elastic.get("val_smallest") or {}
    points = [
        Point(float(elastic.get("full_parameters", 0)), val.get(primary), "full model", True),
        Point(
            float(elastic.get("smallest_parameters", 0)),
            smallest.get(primary),
            f"smallest ({elastic.get('smallest')})",
            True,
        ),
    ]
    body = _chart(
        scatter_chart,
        f"{prefix}-subnets",
        points,
        title=f"val {primary} vs encoder parameters",
        x_label="encoder parameters",
        y_label=f"val {primary}",
    )
    body += note(
        f"latency of every sub-net: attncoach subnets {files.run.path} --out {files.run.subnets}, then attncoach report again"
    )
    return section(f"{prefix}-subnets", title, body)


def _measured_subnets(subnets: dict[str, Any], primary: str, prefix: str) -> str:
    costs = subnets.get("pareto_costs") or []
    latency = next((c for c in costs if str(c).startswith("latency_ms")), None)
    rows = [r for r in subnets["rows"] if isinstance(r, dict)]
    if latency is None and rows:
        latency = next((k for k in rows[0] if str(k).startswith("latency_ms")), "parameters")
    points = [Point(r.get(latency), r.get(primary), str(r.get("name", "")), bool(r.get("pareto"))) for r in rows]
    body = _chart(
        scatter_chart,
        f"{prefix}-subnets",
        points,
        title=f"val {primary} vs {latency} (Pareto front joined)",
        x_label=str(latency),
        y_label=f"val {primary}",
    )
    shown = [(r.get("name"), r.get("parameters"), r.get(latency), r.get(primary), r.get("pareto")) for r in rows]
    return body + table(("sub-net", "parameters", latency, f"val {primary}", "Pareto"), shown, "metrics")


# ---------------------------------------------------------------- several runs
def comparison_section(runs: Sequence[RunFiles]) -> str:
    """Several runs side by side: their headline numbers, the val curve of each, their config differences."""
    primary = primary_of(runs[0])
    rows = []
    for files in runs:
        m = files.metrics or {}
        test = m.get("test") if isinstance(m.get("test"), dict) else {}
        rows.append((files.name, files.task, test.get(primary), m.get("steps"), m.get("train_seconds")))
    body = table(("run", "task", f"test {primary}", "steps", "train seconds"), rows, "metrics")
    series = [Series(f.name, *f.series("val", primary)) for f in runs]
    body += _chart(line_chart, "compare-val", series, title=f"val {primary} of each run", y_label=primary)
    diffs = config_differences([f.config for f in runs])
    if diffs:
        body += "<h3>Config differences</h3>" + table(
            ("key", *(f.name for f in runs)), [(k, *v) for k, v in diffs], "diff"
        )
    else:
        body += note("the runs have the same config (apart from output_dir)")
    return section("compare", "Runs side by side", body)


def config_differences(configs: Sequence[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
    """The dotted keys whose values differ between configs (absent = None), ``output_dir`` left out.

    Example:
        >>> config_differences([{"train": {"lr": 0.001, "seed": 0}}, {"train": {"lr": 0.003, "seed": 0}}])
        [('train.lr', [0.001, 0.003])]
    """
    flat = [_flatten(c) for c in configs]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    out = []
    for key in keys:
        values = [f.get(key) for f in flat]
        if key != "output_dir" and any(v != values[0] for v in values):
            out.append((key, values))
    return out


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


# ---------------------------------------------------------------- attention
def attention_section(files: RunFiles, prefix: str, samples: Sequence[str] | None, count: int = 2) -> str:
    """Per-head attention heatmaps of the saved model on a few inputs: ``samples`` (texts, or item
    histories of a next-item run), else a few test examples, else a few training examples."""
    from attncoach.errors import AttncoachError
    from attncoach.models.saved import load_model
    from attncoach.report.attention import attention_grid, pick
    from attncoach.rundir import resolve_model_dir

    title = "Attention per head"
    try:
        predictor = load_model(resolve_model_dir(files.run.path))
    except AttncoachError as exc:
        return section(f"{prefix}-attention", title, note(f"no attention maps: {exc}"))
    chosen, source = _attention_inputs(files, predictor, samples, count)
    if not chosen:
        return section(f"{prefix}-attention", title, note("no input to show attention on"))
    body = note(f"rows: the token attending (query); columns: the token attended to (key); {source}")
    for number, (tokens, maps) in enumerate(short_maps(predictor, chosen, count)):
        body += f'<p class="text">{escape(" ".join(tokens))}</p>'
        body += attention_grid(f"{prefix}-attention-{number}", tokens, pick(maps, None, None))
    return section(f"{prefix}-attention", title, body)


def short_maps(predictor: Any, inputs: Sequence[str], count: int, most: int = 16) -> list[tuple[list[str], Any]]:
    """The maps of the first ``count`` inputs of at most ``most`` tokens (a bigger heatmap is unreadable
    and heavy), else of the shortest ones."""
    from attncoach.errors import AttncoachError

    maps = []
    for text in inputs:
        try:
            maps.append(predictor.attention(text))
        except AttncoachError:
            continue
        if sum(len(tokens) <= most for tokens, _ in maps) == count:
            break
    fitting = [m for m in maps if len(m[0]) <= most]
    return (fitting or sorted(maps, key=lambda m: len(m[0])))[:count]


def _attention_inputs(
    files: RunFiles, predictor: Any, samples: Sequence[str] | None, count: int
) -> tuple[list[str], str]:
    if samples:
        return short_texts([s for s in samples if isinstance(s, str)], 20), "test examples"
    if files.task == "next_item":
        users = list(predictor.users)[:count]
        histories = [" ".join(predictor.history_of(u)[-12:]) for u in users]
        return histories, "the last 12 items of the first users' histories"
    texts = _test_texts(files)
    if texts:
        return short_texts(texts, 20), "test examples"
    training = [str(r.get("text")) for r in files.examples or [] if r.get("text")]
    return short_texts(training, 20), "training examples (the test split could not be rebuilt)"


def short_texts(texts: Sequence[str], count: int) -> list[str]:
    """The first ``count`` texts of 4 to 14 words, else the first ones: candidates for attention maps."""
    fitting = [t for t in texts if 4 <= len(t.split()) <= 14]
    return (fitting or list(texts))[:count]


def _test_texts(files: RunFiles) -> list[str]:
    """The run's test texts, rebuilt from its data as ``attncoach eval`` does; empty when that fails."""
    from attncoach.config import load_config
    from attncoach.errors import AttncoachError
    from attncoach.tasks import TASKS

    try:
        cfg = load_config(files.run.config)
        data = TASKS[cfg.task]().build(cfg, model_dir=files.run.model)
    except (AttncoachError, OSError, KeyError, ValueError):
        return []
    return list(getattr(data.splits["test"], "texts", []))
