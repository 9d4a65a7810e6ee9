"""The report page: one self-contained HTML file (inline CSS and SVG, no script, no network).

Example:
    >>> write_report(["runs/tweets"])                                   # doctest: +SKIP
    PosixPath('runs/tweets/report.html')
    >>> write_report(["runs/a", "runs/b"], Path("compare.html"))        # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path

from attncoach import __version__
from attncoach.atomicfile import atomic_write_text
from attncoach.errors import AttncoachError
from attncoach.report import sections
from attncoach.report.runfiles import RunFiles, read_run

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1180px; padding: 0 20px 40px; color: #222; }
h1 { font-size: 22px; margin: 18px 0 4px; } h2 { font-size: 18px; border-bottom: 1px solid #ddd; padding-top: 8px; }
h3 { font-size: 15px; margin: 14px 0 4px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } table.examples td:first-child { max-width: 560px; }
.note { color: #666; font-style: italic; } .missing { background: #fff6e0; border: 1px solid #f0d090; padding: 4px 12px; }
.grid, .heads { display: flex; flex-wrap: wrap; gap: 6px; align-items: flex-start; }
svg.chart { background: #fff; margin: 6px 4px; } svg .title { font-size: 13px; font-weight: 600; }
svg .tick, svg .legend, svg .label { font-size: 10.5px; fill: #444; } svg .value { font-size: 10px; }
svg .grid { stroke: #eee; } svg .axis { stroke: #999; } svg .series { stroke-width: 1.8; } svg .front { stroke-width: 1.5; }
svg .event { stroke: #d62728; stroke-dasharray: 3 3; } svg .cell { stroke: #fff; stroke-width: 0.5; }
.text { font-family: ui-monospace, monospace; font-size: 12px; background: #f7f7f7; padding: 4px 8px; }
nav a { margin-right: 10px; } pre { background: #f7f7f7; padding: 8px; overflow-x: auto; font-size: 12px; }
"""


def page(title: str, body: str) -> str:
    """A whole HTML document around ``body``."""
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n"
        f'<p class="note">written by attncoach {__version__}</p>\n</body></html>\n'
    )


def run_sections(files: RunFiles, prefix: str, samples: Sequence[str] | None = None) -> str:
    """Every section of one run."""
    parts = [
        sections.summary_section(files, prefix),
        sections.curves_section(files, prefix),
        sections.evaluation_section(files, prefix),
        sections.coach_section(files, prefix),
        sections.knobs_section(files, prefix),
        sections.curriculum_section(files, prefix),
        sections.attention_section(files, prefix, samples),
        sections.subnets_section(files, prefix),
        sections.config_section(files, prefix),
    ]
    return "\n".join(parts)


def default_output(runs: Sequence[str | Path]) -> Path:
    """``RUN/report.html`` for one run; several need ``--out``.

    Raises:
        AttncoachError: several runs.
    """
    if len(runs) != 1:
        raise AttncoachError("a report of several runs needs --out FILE.html (it belongs to none of them)")
    return Path(runs[0]) / "report.html"


def check_output(out: Path) -> None:
    """Refuse an output that is no ``.html`` file in an existing folder (so no run file is ever replaced)."""
    if out.suffix.lower() != ".html":
        raise AttncoachError(f"--out {out} must end in .html")
    if out.is_dir():
        raise AttncoachError(f"--out {out} is a directory; give a file name")
    if not out.parent.is_dir():
        raise AttncoachError(f"output folder does not exist: {out.parent}")


def write_report(runs: Sequence[str | Path], out: Path | None = None, samples: Sequence[str] | None = None) -> Path:
    """Write the report of one or several runs to ``out`` (atomically) and return its path.

    Args:
        runs: run directories; a run killed early gives a report of what it holds.
        out: an ``.html`` file; None = ``RUN/report.html`` for one run.
        samples: inputs to draw attention maps on (texts, or item histories); None = a few
            test examples of each run.

    Raises:
        AttncoachError: a path that is not a run, a bad output path, no runs.
    """
    if not runs:
        raise AttncoachError("give at least one run directory")
    read = [read_run(path) for path in runs]  # a path that is no run is refused first
    out = default_output(runs) if out is None else Path(out)
    check_output(out)
    names = [f.name for f in read]
    title = "attncoach report: " + ", ".join(names)
    parts = [f"<h1>{escape(title)}</h1>"]
    if len(read) > 1:
        links = " ".join(f'<a href="#r{i}-summary">{escape(n)}</a>' for i, n in enumerate(names))
        parts += [f"<nav>{links}</nav>", sections.comparison_section(read)]
    for i, files in enumerate(read):
        if len(read) > 1:
            parts.append(f'<h1 id="r{i}">{escape(files.name)}</h1>')
        parts.append(run_sections(files, f"r{i}", samples))
    atomic_write_text(out, page(title, "\n".join(parts)))
    return out
