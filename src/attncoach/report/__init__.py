"""The one-file HTML report of one or several runs, and attention maps.

``attncoach report RUN [RUN ...] [--out FILE.html]`` and the end of every training run
(``log.report: true``) write it: run summary and config, learning curves, the coach's
decisions and knob trajectories, curriculum progress and the hardest and suspect examples,
attention heatmaps, the test confusion matrix (or the task's own metrics), the sub-nets'
quality against their cost, and, for several runs, their differences.

Modules: :mod:`~attncoach.report.svg` (charts as SVG text), :mod:`~attncoach.report.runfiles`
(what a run holds, read leniently), :mod:`~attncoach.report.sections` (one function per
section), :mod:`~attncoach.report.attention` (attention maps as HTML or PNG),
:mod:`~attncoach.report.page` (the page and :func:`write_report`).

This package sits below ``attncoach.train`` in the layers (it reads runs and needs nothing of
training), so the recipe writes a finished run's report itself.
"""

from attncoach.report.page import write_report

__all__ = ["write_report"]
