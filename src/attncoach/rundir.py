"""The run directory contract: where a run keeps its files, and how to find a model.

```
RUN/
  config.yaml      resolved configuration
  sources.json     size and SHA-256 of each data source file (see attncoach.data.fingerprint)
  model/           model.safetensors, model_config.json and the task's files (TASK_FILES); calibration.json (train.calibrate)
  metrics.json     written when the run finishes
  tb/              TensorBoard event files
  scalars.jsonl    every logged scalar, one {"step", "group", "values"} per line (attncoach.train.history)
  coach.jsonl      the coach's decisions with their reasons, when the coach is on
  wandb/, mlruns/  the W&B offline run and the MLflow file store, when log.backends names them
  loggers.json     the trackers' own ids of this run (W&B, MLflow), for a resume
  checkpoints/     resumable state (see attncoach.train.checkpoint)
  examples.jsonl   the per-example learning record (see attncoach.curriculum.record)
  difficulty.json  difficulty scores and the examples kept by pruning, when the curriculum uses them
  report.html      the one-file report (attncoach.report), written when the run ends (log.report)
  subnets.json     optional: `attncoach subnets RUN --out RUN/subnets.json` (the report charts it)
  robustness.json  written by `attncoach robustness RUN` (attncoach.eval.robustness)
```
"""

from __future__ import annotations

import json
from pathlib import Path

from attncoach.errors import AttncoachError

MODEL_FILES = ("model.safetensors", "model_config.json")  # of every model directory
# The files of each task's model directory besides MODEL_FILES (attncoach.models.saved writes and reads them).
TASK_FILES = {
    "text_classification": ("tokenizer.json", "labels.json"),
    "next_item": ("items.json", "users.json"),
    "translation": ("source_tokenizer.json", "target_tokenizer.json", "decoding.json"),
    "image_classification": ("labels.json",),
    "masked_lm": ("tokenizer.json",),
}


class RunDir:
    """Paths of one run directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    config = property(lambda self: self.path / "config.yaml")
    model = property(lambda self: self.path / "model")
    metrics = property(lambda self: self.path / "metrics.json")
    tb = property(lambda self: self.path / "tb")
    checkpoints = property(lambda self: self.path / "checkpoints")
    examples = property(lambda self: self.path / "examples.jsonl")
    sources = property(lambda self: self.path / "sources.json")
    scalars = property(lambda self: self.path / "scalars.jsonl")
    coach_log = property(lambda self: self.path / "coach.jsonl")
    report = property(lambda self: self.path / "report.html")
    subnets = property(lambda self: self.path / "subnets.json")
    robustness = property(lambda self: self.path / "robustness.json")

    def is_run(self) -> bool:
        """Whether the directory holds an attncoach run (it has a config.yaml)."""
        return self.config.is_file()

    def check_new(self) -> None:
        """Refuse a directory that holds a run or anything else already, or cannot be made (before any work)."""
        blocker = next((p for p in self.path.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            raise AttncoachError(f"output_dir {self.path} cannot be made: {blocker} is a file, not a directory")
        if self.path.exists():
            if not self.path.is_dir():
                raise AttncoachError(f"output_dir {self.path} exists and is not a directory")
            if self.is_run():
                raise AttncoachError(
                    f"output_dir {self.path} already holds a run; "
                    f"continue it with --resume {self.path} or choose another output_dir"
                )
            if any(self.path.iterdir()):
                raise AttncoachError(f"output_dir {self.path} is not empty; choose a new or empty directory")

    def create(self) -> None:
        """Make the directory for a new run; refuse one that holds anything already."""
        self.check_new()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self.model.mkdir(exist_ok=True)
        except OSError as exc:
            raise AttncoachError(f"cannot make output_dir {self.path}: {exc.strerror}") from None

    @classmethod
    def existing(cls, path: str | Path) -> RunDir:
        """An existing run directory, or a clear error."""
        run = cls(path)
        if not run.path.exists():
            raise AttncoachError(f"run directory not found: {run.path}")
        if not run.is_run():
            raise AttncoachError(f"{run.path} is not an attncoach run directory (no config.yaml)")
        return run


def resolve_model_dir(path: str | Path) -> Path:
    """The model directory named by ``path``: a model directory itself or a run directory.

    Raises:
        AttncoachError: the path does not exist or holds no complete model.
    """
    path = Path(path)
    if not path.exists():
        raise AttncoachError(f"not found: {path}")
    for candidate in (path, path / "model"):
        if (candidate / "model_config.json").is_file():
            needed = (*MODEL_FILES, *TASK_FILES.get(_task_of(candidate), ()))
            missing = [f for f in needed if not (candidate / f).is_file()]
            if missing:
                raise AttncoachError(f"model directory {candidate} is incomplete: missing {', '.join(missing)}")
            return candidate
    if RunDir(path).is_run():
        raise AttncoachError(f"run {path} has no saved model yet (train it, or --resume it)")
    raise AttncoachError(f"{path} is not a run or model directory (no model_config.json)")


def _task_of(model_dir: Path) -> str:
    """The task named in ``model_config.json`` (text_classification when it names none or cannot be read)."""
    try:
        config = json.loads((model_dir / "model_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return "text_classification"  # the loader reports the damaged file
    task = config.get("task", "text_classification") if isinstance(config, dict) else None
    return task if isinstance(task, str) else "text_classification"
