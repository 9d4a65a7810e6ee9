"""Loading a run's configuration with every check: types and ranges (``attncoach.config``), then the choices
that name registered implementations (tasks, sub-net samplers, coach policies, curriculum scorers...).

The configuration module is the ground floor and imports none of the pillars, so the checks
against their registries live here, one floor above them.

Example:
    >>> cfg = load_run_config(None, ["curriculum.scheduler=leitner"])
    >>> cfg.curriculum.scheduler
    'leitner'
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from pathlib import Path
from typing import Any, Optional

from attncoach.config import RunConfig, check_key, load_config
from attncoach.errors import AttncoachError


def load_run_config(path: Optional[str | Path], overrides: list[str] | None = None) -> RunConfig:
    """:func:`attncoach.config.load_config`, then :func:`check_registries`."""
    cfg = load_config(path, overrides)
    check_registries(cfg)
    return cfg


def default_output_dir(cfg: RunConfig) -> str:
    """A new directory ``runs/<data>-<YYYYmmdd-HHMMSS>`` (the built-in corpus or the data file's name),
    claimed for this run: it is created empty, atomically, so that two runs started in the same
    second get two directories (the second one ``...-HHMMSS-2``).

    A run whose set-up fails before it writes anything gives the directory back
    (:func:`release_output_dir`), so a refused run leaves nothing behind.
    """
    from attncoach.tasks import TASKS

    name = cfg.data.builtin or (Path(cfg.data.path).stem if cfg.data.path else TASKS[cfg.task].corpus)
    stem = Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    parent_existed = stem.parent.is_dir()
    for number in itertools.count(1):
        path = stem if number == 1 else stem.with_name(f"{stem.name}-{number}")
        try:
            path.mkdir(parents=True, exist_ok=False)  # atomic: exactly one process creates it
        except FileExistsError:
            continue
        except OSError as exc:
            raise AttncoachError(f"cannot create the run directory {path}: {exc.strerror or exc}") from None
        _CLAIMED[path.absolute()] = parent_existed
        return str(path)


def claim_output_dir(cfg: RunConfig) -> str:
    """A new run's directory: ``output_dir``, refused if it holds anything, or a fresh default one
    (:func:`default_output_dir`). The directory itself is created once the data is ready, so a data
    error leaves nothing behind."""
    from attncoach.rundir import RunDir

    path = cfg.output_dir if cfg.output_dir is not None else default_output_dir(cfg)
    RunDir(path).check_new()
    return path


_CLAIMED: dict[Path, bool] = {}  # run directories default_output_dir created -> whether runs/ existed before


def release_output_dir(path: str | Path) -> None:
    """Remove a directory that :func:`default_output_dir` claimed, if it is still empty (and ``runs/``
    with it when the claim created that too); any other directory is left alone."""
    path = Path(path).absolute()
    if path not in _CLAIMED:
        return
    parent_existed = _CLAIMED.pop(path)
    with contextlib.suppress(OSError):  # no longer empty, or already gone: keep what is there
        path.rmdir()
        if not parent_existed:
            path.parent.rmdir()


def absolute_paths(cfg: RunConfig) -> None:
    """Make the keys that name files absolute, in place, so that the saved ``config.yaml`` works
    from any directory (``eval``, ``subnets``, ``search``, ``--resume``).

    ``data.path`` and ``output_dir`` are taken relative to the current directory, and so is
    ``model.backbone`` when it names an existing local directory (not ``scratch``, a packaged
    backbone such as ``minilm`` or a hub id). Symbolic links are kept as they are.

    Example:
        >>> cfg = RunConfig(); cfg.data.path = "my.csv"
        >>> absolute_paths(cfg); Path(cfg.data.path).is_absolute()
        True
    """
    from attncoach.models.pretrained import local_backbone_dir

    if cfg.data.path is not None:
        cfg.data.path = os.path.abspath(cfg.data.path)
    if cfg.output_dir is not None:
        cfg.output_dir = os.path.abspath(cfg.output_dir)
    local = local_backbone_dir(cfg.model.backbone)
    if local is not None:
        cfg.model.backbone = os.path.abspath(local)


def check_registries(cfg: RunConfig) -> None:
    """Refuse a choice that no registered implementation has, naming the key."""
    from attncoach.tasks import TASKS

    if cfg.task not in TASKS:
        raise AttncoachError(f"config key 'task' must be one of {', '.join(sorted(TASKS))}, got {cfg.task!r}")
    _check_task_keys(cfg)
    _check_elastic(cfg)
    _check_coach(cfg)
    _check_curriculum(cfg)
    _check_label_noise(cfg)
    _check_noisy_label_switches(cfg)
    _check_robust(cfg)
    _check_augment(cfg)
    _check_log(cfg)


def _check_robust(cfg: RunConfig) -> None:
    """Adversarial training needs a task whose inputs go through an embedding table."""
    from attncoach.tasks import TASKS

    if cfg.robust.method != "none" and not TASKS[cfg.task].embedded_inputs:
        raise AttncoachError(
            f"config key 'robust.method' {cfg.robust.method} perturbs input embeddings, and task {cfg.task} "
            "has none: set robust.method: none"
        )


def _check_label_noise(cfg: RunConfig) -> None:
    """Injected label noise and the noisy-label switches need a task whose examples have class labels."""
    from attncoach.data.noise import NOISE_KINDS
    from attncoach.tasks import TASKS

    noise, c = cfg.data.label_noise, cfg.curriculum
    used = [key for key, on in (("data.label_noise", noise is not None), *noisy_label_switches(c)) if on]
    for key in used:
        check_key(
            TASKS[cfg.task].class_probabilities,
            key,
            f"needs training examples with class labels, and task {cfg.task} has none: remove it",
        )
    if noise is not None:
        check_key(
            noise.kind in NOISE_KINDS,
            "data.label_noise.kind",
            f"must be one of {', '.join(NOISE_KINDS)}, got {noise.kind!r}",
        )


def noisy_label_switches(c: Any) -> list[tuple[str, bool]]:
    """The curriculum's noisy-label switches (config key, whether it is on)."""
    return [("curriculum.suspects", c.suspects is not None), ("curriculum.small_loss", c.small_loss is not None)]


def _check_noisy_label_switches(cfg: RunConfig) -> None:
    from attncoach.curriculum.mislabel import SUSPICION_SCORES

    c = cfg.curriculum
    if c.suspects is not None:
        s = c.suspects
        check_key(
            s.after_epochs > 0,
            "curriculum.suspects.after_epochs",
            "must be positive (the learning record needs a warm-up to find suspects)",
        )
        check_key(0 < s.fraction < 1, "curriculum.suspects.fraction", f"must be in (0, 1), got {s.fraction:g}")
        check_key(
            s.action in ("drop", "downweight"),
            "curriculum.suspects.action",
            f"must be one of drop, downweight, got {s.action!r}",
        )
        check_key(0 < s.weight < 1, "curriculum.suspects.weight", f"must be in (0, 1), got {s.weight:g}")
        check_key(
            s.score in SUSPICION_SCORES,
            "curriculum.suspects.score",
            f"must be one of {', '.join(SUSPICION_SCORES)}, got {s.score!r}",
        )
        check_key(
            c.record, "curriculum.suspects", "chooses suspects from the learning record: set curriculum.record: true"
        )
    if c.small_loss is not None:
        m = c.small_loss
        check_key(
            0 < m.forget_rate < 1,
            "curriculum.small_loss.forget_rate",
            f"must be in (0, 1), got {m.forget_rate:g}",
        )
        check_key(m.ramp_epochs >= 0, "curriculum.small_loss.ramp_epochs", "must be 0 or more")


def _check_log(cfg: RunConfig) -> None:
    from attncoach.train.loggers import check_backends

    check_backends(cfg.log)  # unknown names; a missing library is refused when training starts


def _check_augment(cfg: RunConfig) -> None:
    """Augmentation perturbs raw training texts: a task whose examples are not texts refuses it."""
    from attncoach.tasks import TASKS

    check_key(
        cfg.augment.p == 0 or TASKS[cfg.task].trains_on_texts,
        "augment.p",
        f"must be 0 for task {cfg.task}: augmentation perturbs training texts, and its examples are not texts",
    )


def _check_task_keys(cfg: RunConfig) -> None:
    """A key that only other tasks read, set to a non-default value, is refused (it would be ignored)."""
    from attncoach.tasks import TASKS, task_keys

    defaults = RunConfig()
    mine = TASKS[cfg.task].keys
    for key, owners in sorted(task_keys().items()):
        if key in mine:
            continue
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value != getattr(getattr(defaults, section), name):
            raise AttncoachError(
                f"config key '{key}' belongs to task {', '.join(sorted(owners))}, not {cfg.task}: remove it"
            )


def _check_elastic(cfg: RunConfig) -> None:
    from attncoach.elastic.supernet import SUBNET_SAMPLERS, space_of

    e = cfg.elastic
    space_of(e)  # refuses bad fractions, naming the key
    check_key(
        e.sampler in SUBNET_SAMPLERS,
        "elastic.sampler",
        f"must be one of {', '.join(SUBNET_SAMPLERS)}, got {e.sampler!r}",
    )
    check_key(e.random_subnets >= 0, "elastic.random_subnets", "must be at least 0")
    check_key(e.temperature > 0, "elastic.temperature", "must be positive")
    check_key(e.hidden_weight >= 0, "elastic.hidden_weight", "must be non-negative")
    check_key(e.rewire_batches >= 1, "elastic.rewire_batches", "must be at least 1")


def _check_coach(cfg: RunConfig) -> None:
    from attncoach.tasks import TASKS

    target = cfg.train.target
    if target is not None:
        tracked = TASKS[cfg.task].tracked
        check_key(
            target.metric in tracked,
            "train.target.metric",
            f"must be one of {', '.join(tracked)} for task {cfg.task}, got {target.metric!r}",
        )
        check_key(0 < target.value <= 1, "train.target.value", "must be in (0, 1]")
    check_key(cfg.coach.noise_every >= 1, "coach.noise_every", "must be at least 1")
    if cfg.coach.enabled or cfg.coach.policies is not None:
        from attncoach.coach.coach import build_policies

        build_policies(cfg.coach.policies)  # unknown names, parameters, bounds: refused before training


def _check_scorers_fit_the_task(cfg: RunConfig) -> None:
    """A scorer that reads token ids is refused for a task whose inputs are no token ids (images)."""
    from attncoach.curriculum.difficulty import SCORERS
    from attncoach.curriculum.samplers import SCHEDULERS
    from attncoach.tasks import TASKS

    c = cfg.curriculum
    used = [("scorer", c.scorer)] if SCHEDULERS[c.scheduler].needs_scores else []
    used += [("prune_by", c.prune_by)] if c.keep_fraction < 1 else []
    for key, name in used:
        check_key(
            not SCORERS[name].reads_token_ids or TASKS[cfg.task].embedded_inputs,
            f"curriculum.{key}",
            f"{name} reads token ids, and the inputs of task {cfg.task} are none: choose loss, el2n, forgetting or random",
        )


def _check_curriculum(cfg: RunConfig) -> None:
    from attncoach.curriculum.difficulty import SCORERS
    from attncoach.curriculum.pacing import PACINGS
    from attncoach.curriculum.samplers import SCHEDULERS

    c = cfg.curriculum
    for key, registry in (("scheduler", SCHEDULERS), ("scorer", SCORERS), ("prune_by", SCORERS), ("pacing", PACINGS)):
        value = getattr(c, key)
        check_key(value in registry, f"curriculum.{key}", f"must be one of {', '.join(registry)}, got {value!r}")
    check_key(0 < c.start <= 1, "curriculum.start", "must be in (0, 1]")
    check_key(c.pacing_steps >= 1, "curriculum.pacing_steps", "must be at least 1")
    check_key(c.boxes >= 1, "curriculum.boxes", "must be at least 1")
    check_key(0 <= c.refresh <= 1, "curriculum.refresh", "must be in [0, 1]")
    check_key(0 < c.keep_fraction <= 1, "curriculum.keep_fraction", f"must be in (0, 1], got {c.keep_fraction:g}")
    check_key(
        0 <= c.skip_hardest < 1 and c.skip_hardest + c.keep_fraction <= 1,
        "curriculum.skip_hardest",
        "must be in [0, 1) and leave room for curriculum.keep_fraction (their sum at most 1)",
    )
    check_key(c.probe_epochs > 0, "curriculum.probe_epochs", "must be positive")
    check_key(c.probe_passes >= 1, "curriculum.probe_passes", "must be at least 1")
    _check_scorers_fit_the_task(cfg)
    uses_forgetting = "forgetting" in (c.scorer, c.prune_by)
    check_key(
        c.probe_passes >= 2 or not uses_forgetting,
        "curriculum.probe_passes",
        "must be at least 2 for the forgetting scorer (it counts flips between passes)",
    )
    if c.horizon is not None:
        check_key(c.horizon > 0, "curriculum.horizon", "must be positive (epochs of examples seen)")
        if cfg.train.max_steps is None:
            check_key(
                c.horizon <= cfg.train.epochs,
                "curriculum.horizon",
                f"({c.horizon:g} epochs) is longer than the run (train.epochs {cfg.train.epochs:g})",
            )
