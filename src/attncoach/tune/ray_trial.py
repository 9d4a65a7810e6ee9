"""One trial of ``attncoach tune --backend ray``: a coached run that hands its checkpoints to Ray Tune.

What runs inside a Ray worker. The trial's run directory is ``OUT/trial-NNNN`` (NNNN: the Ray
trial's index). :class:`RayReporter`, a recipe callback, reports each checkpoint the recipe writes
(after an evaluation, by default) to Ray with the val metric of the latest evaluation; the
report blocks until Ray says go on, so a segment of training ends at every checkpoint. A Ray
checkpoint (:func:`pack_checkpoint`) is the whole recipe checkpoint (weights, optimizer, RNG,
trainer state, the coach's and the curriculum's state), the best weights so far and the
curriculum's difficulty scores.

When Ray starts a trial from a checkpoint (:func:`adopt_checkpoint`) it is one of two things:

- the trial's own (a retry after a failure, a PBT pause, ``tune`` run again after a kill): the run
  directory gets that checkpoint back and resumes from it, exactly;
- another trial's (a PBT exploit): the run continues from the donor's checkpoint, all of it (the
  coach's state too, unless ``tune.pbt_coach_state`` is false: then the trial keeps its own coach),
  under the explored config, which Ray perturbed from the donor's. A perturbed value is what the
  coach starts from again: a new ``train.lr`` rescales every parameter group's base LR by
  new / old, and the coach's LR scale (what it has learned) multiplies it as before; a new
  ``train.weight_decay`` or ``model.dropout`` rescales the coach's adapted value by the same ratio
  (without the coach it simply applies). The run directory's ``config.yaml`` becomes the explored
  config, and ``exploits.jsonl`` in it gets one line per exploit (step, donor, coach state, values).

When Ray starts a trial without a checkpoint although its run directory holds one (``tune`` was
stopped after the trial's report but before Ray saved its experiment's state), the trial resumes
from its own latest checkpoint (:func:`has_own_checkpoint`) instead of starting over.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attncoach.atomicfile import atomic_write_text
from attncoach.config import RunConfig, to_dict
from attncoach.errors import AttncoachError
from attncoach.rundir import RunDir
from attncoach.train.callbacks import Callback
from attncoach.train.checkpoint import CheckpointStore
from attncoach.train.settings import load_run_config
from attncoach.tune.space import Dimension

COACH_KEY = "coach"  # the coach's entry in a checkpoint's state.json (attncoach.train.callbacks.CoachCallback)
_RECIPE_FILES = ("model.safetensors", "optimizer.pt", "rng.pt", "state.json", "manifest.json")
_BEST = "best.safetensors"  # the run's best weights so far (model/model.safetensors)
_MARK = "trial.json"  # whose checkpoint it is: {"run_dir", "step"}


@dataclass(frozen=True)
class TrialPlan:
    """What every trial of one Ray experiment shares (sent to the workers).

    Attributes:
        config: the base YAML config, absolute (None: defaults).
        overrides: the overrides of every trial (the user's, the trial length, absolute data paths).
        space: the searched dimensions.
        out: the study's directory, absolute.
        primary: the task's primary metric (reported as ``val_<primary>``).
        coach_state: a PBT exploit copies the donor's coach state (``tune.pbt_coach_state``).
        clip: keep explored values inside their ranges (PBT perturbs by factors).
        report_last: report the run's last checkpoint too (not for PBT: an exploit there would only copy the
            donor's finished run).
    """

    config: str | None
    overrides: tuple[str, ...]
    space: tuple[Dimension, ...]
    out: str
    primary: str
    coach_state: bool = True
    clip: bool = False
    report_last: bool = True

    def run_dir(self, number: int) -> RunDir:
        return RunDir(Path(self.out) / f"trial-{number:04d}")

    def trial_config(self, values: dict[str, Any], run: RunDir) -> RunConfig:
        """The trial's config: the base config with this trial's values of the space."""
        chosen = [d.override(self.clipped(d, values[d.key])) for d in self.space]
        return load_run_config(self.config, [*self.overrides, *chosen, f"output_dir={run.path}"])

    def clipped(self, d: Dimension, value: Any) -> Any:
        if not self.clip or d.kind == "choice":
            return value
        value = min(max(value, d.values[0]), d.values[1])
        return int(round(value)) if d.kind == "int" else float(value)


def trial_number(trial_id: str) -> int:
    """The index of a Ray trial from its id (``5f3a2_00003`` -> 3)."""
    return int(trial_id.rsplit("_", 1)[-1])


def run_trial(config: dict[str, Any], plan: TrialPlan) -> None:
    """Ray's trainable: one coached attncoach run, resumed from the checkpoint Ray hands over, if any."""
    import torch
    from ray import tune

    from attncoach.train.recipe import Recipe

    run = plan.run_dir(trial_number(tune.get_context().get_trial_id()))
    cfg = plan.trial_config(config, run)
    if not cfg.train.threads:  # one trial per CPU Ray gave it, not all of the machine's
        torch.set_num_threads(max(1, int(tune.get_context().get_trial_resources().required_resources.get("CPU", 1))))
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as path:
            adopt_checkpoint(Path(path), run, cfg, plan.coach_state)
        resume = True
    else:
        resume = has_own_checkpoint(run)
        if not resume:  # never started, or stopped before its first checkpoint: nothing to keep
            if run.path.exists():
                shutil.rmtree(run.path)
            run.check_new()
    Recipe(cfg, run, resume=resume, quiet=True, callbacks=[RayReporter(plan.primary, plan.report_last)]).run()


def has_own_checkpoint(run: RunDir) -> bool:
    """Whether the trial's run directory holds a checkpoint that Ray did not hand back.

    Ray saves its experiment's state now and then, so a ``tune`` stopped between a trial's report
    and the next save restarts that trial without its latest checkpoint, although the run directory
    has it: the trial then resumes from its own checkpoint instead of starting over.
    """
    if not run.is_run():
        return False
    try:
        return CheckpointStore(run.checkpoints).latest() is not None
    except AttncoachError:  # a damaged pointer: nothing to resume from
        return False


class RayReporter(Callback):
    """Reports each checkpoint of the run to Ray Tune with the latest evaluation; Ray may stop or exploit there.

    Reported: ``step``, ``evaluation`` (evaluations so far: ASHA's and PBT's clock), ``val_<primary>``
    (the latest evaluation; ``-inf`` when its val loss was not finite) and ``examples_seen``.
    """

    def __init__(self, primary: str, report_last: bool = True) -> None:
        self.primary, self.report_last = primary, report_last

    def on_checkpoint(self, recipe: Any, path: Path) -> None:
        from ray import tune

        s = recipe.state
        if not s.history:  # no evaluation yet: nothing to rank the trial by
            return
        if not self.report_last and (s.step >= recipe.total_steps or s.stopped_early):
            return
        value = s.history[-1].get(f"val_{self.primary}")
        metrics = {
            "step": s.step,
            "evaluation": len(s.history),
            f"val_{self.primary}": -math.inf if value is None else float(value),
            "examples_seen": s.examples_seen,
        }
        with tempfile.TemporaryDirectory(prefix=".ray-checkpoint-", dir=recipe.run_dir.path) as tmp:
            pack_checkpoint(path, recipe.run_dir, Path(tmp), s.step)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))  # Ray copies it to its storage


def pack_checkpoint(recipe_checkpoint: Path, run: RunDir, dest: Path, step: int) -> None:
    """Fill ``dest`` with a Ray checkpoint of ``run`` at ``step``: the recipe checkpoint, best weights, scores."""
    for name in _RECIPE_FILES:
        shutil.copy2(recipe_checkpoint / name, dest / name)
    best = run.model / "model.safetensors"
    if best.is_file():
        shutil.copy2(best, dest / _BEST)
    difficulty = run.path / "difficulty.json"
    if difficulty.is_file():
        shutil.copy2(difficulty, dest / difficulty.name)
    (dest / _MARK).write_text(json.dumps({"run_dir": str(run.path.resolve()), "step": step}), encoding="utf-8")


def adopt_checkpoint(src: Path, run: RunDir, cfg: RunConfig, coach_state: bool = True) -> dict[str, Any] | None:
    """Make the Ray checkpoint ``src`` the latest checkpoint of ``run``, ready for ``Recipe(resume=True)``.

    Args:
        src: a directory :func:`pack_checkpoint` filled (this trial's, or a PBT donor's).
        run: the trial's run directory.
        cfg: the trial's config now (a PBT exploit: the explored one).
        coach_state: on an exploit, take the donor's coach state (else keep the trial's own).

    Returns:
        The exploit's record (also appended to ``run/exploits.jsonl``), or None for the trial's own checkpoint.

    Raises:
        AttncoachError: the checkpoint is damaged, or the trial's run directory is missing.
    """
    try:
        mark = json.loads((src / _MARK).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise AttncoachError(f"Ray checkpoint {src} is not an attncoach trial's checkpoint") from None
    store = CheckpointStore(run.checkpoints, keep=cfg.train.keep_checkpoints)
    checkpoint = store.load(src)  # checks every file against its manifest
    if not run.is_run():
        raise AttncoachError(f"cannot resume trial {run.path}: it holds no run (config.yaml is missing)")
    donor = Path(mark["run_dir"])
    record = None
    optimizer, state = checkpoint.optimizer, checkpoint.state
    if donor != run.path.resolve():
        record = _exploit(donor, run, store, cfg, optimizer, state, coach_state, int(mark["step"]))
    for old in store.kept():
        shutil.rmtree(old)
    store.save(int(mark["step"]), checkpoint.model, optimizer, checkpoint.rng, state)
    if (src / _BEST).is_file():
        _copy_atomic(src / _BEST, run.model / "model.safetensors")
    if (src / "difficulty.json").is_file():
        _copy_atomic(src / "difficulty.json", run.path / "difficulty.json")
    if record is not None:
        with open(run.path / "exploits.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
    return record


def _exploit(
    donor: Path,
    run: RunDir,
    store: CheckpointStore,
    cfg: RunConfig,
    optimizer: dict[str, Any],
    state: dict[str, Any],
    coach_state: bool,
    step: int,
) -> dict[str, Any]:
    """Turn the donor's optimizer and state into this trial's under ``cfg`` (in place); the exploit's record."""
    donor_config = state["config"]
    _rescale_optimizer(optimizer, donor_config, cfg)
    kept = "donor"
    if COACH_KEY in state and not coach_state:
        own = store.load_latest()
        if own is not None and COACH_KEY in own.state:
            state[COACH_KEY] = own.state[COACH_KEY]
            donor_config = own.state["config"]
            kept = "own"
        else:
            kept = "donor (the trial had no coach state of its own yet)"
    if COACH_KEY in state:
        _rescale_coach(state[COACH_KEY], donor_config, cfg)
    state["config"] = to_dict(cfg)
    settings = to_dict(cfg)
    import yaml

    atomic_write_text(run.config, yaml.safe_dump(settings, sort_keys=False))
    return {
        "step": step,
        "donor": str(donor),
        "coach_state": kept,
        "lr": cfg.train.lr,
        "weight_decay": cfg.train.weight_decay,
        "dropout": cfg.model.dropout,
    }


def _ratio(new: float, old: float) -> float:
    return new / old if old > 0 else 1.0  # a zero (weight decay, dropout) scales nothing: it stays as it was


def _rescale_optimizer(optimizer: dict[str, Any], old: dict[str, Any], cfg: RunConfig) -> None:
    """Every group's base LR by new/old ``train.lr``; the decayed groups' weight decay by new/old."""
    lr = _ratio(cfg.train.lr, old["train"]["lr"])
    decay = _ratio(cfg.train.weight_decay, old["train"]["weight_decay"])
    for group in optimizer["param_groups"]:
        group["base_lr"] *= lr
        group["lr"] *= lr
        if group["weight_decay"] > 0:
            group["weight_decay"] *= decay


def _rescale_coach(entry: dict[str, Any], old: dict[str, Any], cfg: RunConfig) -> None:
    """The coach's absolute knobs (weight decay, dropout) by new/old; its LR scale is relative and stays."""
    decay = _ratio(cfg.train.weight_decay, old["train"]["weight_decay"])
    dropout = _ratio(cfg.model.dropout, old["model"]["dropout"])
    for part in ("knobs", "initial"):
        knobs = entry["coach"][part]
        knobs["weight_decay"] *= decay
        knobs["dropout"] = min(knobs["dropout"] * dropout, 0.9)


def _copy_atomic(src: Path, dest: Path) -> None:
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)
