"""``attncoach tune --backend ray``: many coached runs, one per trial, scheduled by Ray Tune (ASHA, PBT or FIFO).

attncoach schedules nothing itself: Ray samples each trial's values of ``tune.space`` at random
(seeded by ``train.seed``), runs the trials on a local Ray (``ray.init()`` over this machine's
CPUs) or on a cluster (``--address HOST:PORT`` of a ``ray start --head``), and decides from what
each run reports at its checkpoints (:mod:`attncoach.tune.ray_trial`), by ``tune.scheduler``:

- ``asha`` (default): asynchronous successive halving stops a trial whose val metric trails the
  others' at the same number of evaluations (``tune.warmup_evaluations`` before the first cut);
- ``pbt``: population-based training, population ``--trials``: every ``tune.perturbation_interval``
  evaluations a trial in the bottom half continues from a top-half trial's checkpoint (weights,
  optimizer, coach and curriculum state: the whole recipe checkpoint, the coach's state only if
  ``tune.pbt_coach_state``), with the donor's values perturbed (x0.8, x1.2, or resampled); only the
  keys of :data:`PERTURBABLE` may be searched, as a perturbed value must fit the running model;
- ``fifo``: every trial runs to its end.

Every trial is an ordinary attncoach run in ``OUT/trial-NNNN``; Ray's experiment (its checkpoints,
results, errors) is in ``OUT/ray``. A failed trial is run again from its last checkpoint (up to
``tune.retries`` times); a killed ``tune`` resumes from ``OUT/ray`` when the same command runs again.

Example:
    >>> result = tune_ray(TuneRequest(config="configs/tweets-sentiment.yaml", trials=4, out=Path("runs/pbt")))  # doctest: +SKIP
    >>> result["best"]["run_dir"]                                                                                # doctest: +SKIP
    '/home/me/runs/pbt/trial-0002'
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
import math
import os
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from attncoach.atomicfile import atomic_write_json
from attncoach.config import RunConfig
from attncoach.errors import AttncoachError
from attncoach.train.settings import absolute_paths
from attncoach.tune.ray_trial import TrialPlan, run_trial, trial_number
from attncoach.tune.space import Dimension
from attncoach.tune.study import (
    SETTINGS_FILE,
    TuneRequest,
    _best_fields,
    _claim_out,
    _short,
    checked_start,
    write_outcome,
)

EXPERIMENT = "ray"  # Ray's experiment directory under --out
TRIALS_FILE = "ray_trials.json"  # the number of trials the experiment in --out was started with
# The keys PBT may perturb while a run goes on: each takes effect on the running model (attncoach.tune.ray_trial).
PERTURBABLE = ("train.lr", "train.weight_decay", "model.dropout", "train.grad_clip", "train.label_smoothing")
_ASHA_MAX_EVALUATIONS = 10_000  # ASHA's max_t: more evaluations than any trial makes (trials end on their own)


def require_ray() -> Any:
    """The ``ray`` module (Tune included), or one line saying how to install it."""
    if importlib.util.find_spec("ray") is None or importlib.util.find_spec("ray.tune") is None:
        raise AttncoachError("attncoach tune --backend ray needs Ray Tune: pip install 'attncoach[ray]'")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # before ray is imported: nothing leaves the machine
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray

    return ray


def check_scheduler(base: RunConfig, space: list[Dimension]) -> str:
    """The Ray scheduler named by ``tune.scheduler``; refuses PBT keys without PBT and unperturbable PBT keys."""
    u = base.tune
    if u.objective != "metric":
        raise AttncoachError(
            f"tune.objective {u.objective} (two objectives, NSGA-II) runs on --backend optuna; Ray Tune maximises "
            "the val metric"
        )
    if u.sampler != "tpe":
        raise AttncoachError(f"tune.sampler {u.sampler} is Optuna's; --backend ray draws the values at random")
    scheduler = u.scheduler or "asha"
    if scheduler != "pbt":
        for key in ("perturbation_interval", "pbt_coach_state"):
            if getattr(u, key) is not None:
                raise AttncoachError(f"tune.{key} is for tune.scheduler pbt (this study's scheduler is {scheduler})")
        return scheduler
    for d in space:
        if d.key not in PERTURBABLE:
            raise AttncoachError(
                f"tune.space['{d.key}']: PBT cannot perturb {d.key} while a run goes on (the checkpoint would not "
                f"fit); PBT searches {', '.join(PERTURBABLE)}; use tune.scheduler asha or fifo for {d.key}"
            )
    return scheduler


def refuse_ray_keys(base: RunConfig) -> None:
    """``--backend optuna`` refuses the Ray-only keys of ``tune`` (one line)."""
    for key in ("scheduler", "perturbation_interval", "pbt_coach_state"):
        if getattr(base.tune, key) is not None:
            raise AttncoachError(f"tune.{key} is for --backend ray; Optuna prunes with tune.pruner")


def tune_ray(request: TuneRequest, address: str | None = None, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) the Ray Tune experiment in ``request.out``; returns ``tune.json``'s content.

    Args:
        request: what ``attncoach tune`` was asked (``storage`` must be None: Ray keeps its own in ``out``).
        address: a Ray cluster's ``HOST:PORT`` (or ``auto``); None starts a local Ray.
        echo: where progress lines go.

    Raises:
        AttncoachError: a bad config or space, an unreachable address, a study of another config in ``out``.
    """
    ray = require_ray()
    base, space, primary = checked_start(request)
    scheduler = check_scheduler(base, space)
    out = request.out.resolve()
    experiment = out / EXPERIMENT
    if (out / "study.db").exists() or ((out / SETTINGS_FILE).exists() and not (out / TRIALS_FILE).exists()):
        raise AttncoachError(f"--out {out} holds an Optuna study; give --backend ray a new --out")
    _check_trials(out, request.trials)
    if address is not None:
        _check_reachable(address)
    new = not out.exists()
    _claim_out(out, base)
    atomic_write_json(out / TRIALS_FILE, {"trials": request.trials})  # marks a Ray study
    try:
        started = _connect(ray, address)
    except AttncoachError:
        if new:  # nothing of a study that never started is left behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    try:
        plan = _plan(request, base, space, primary, out, scheduler)
        resumed = _can_restore(experiment)
        how = "resuming" if resumed else "starting"
        echo(
            f"{how} Ray Tune experiment {experiment}: {request.trials} trials, {scheduler} scheduler, maximising val "
            f"{primary}; runs in {out}"
        )
        tuner = _tuner(ray, plan, base, request, scheduler, experiment, echo, resumed)
        tuner.fit()
        result = summarise(ray, experiment, space, primary, request, scheduler, address)
    finally:
        if started:
            ray.shutdown()
    return _write_outcome(result, request, base, primary, out, echo)


def _check_trials(out: Path, trials: int) -> None:
    saved = out / TRIALS_FILE
    if not saved.is_file():
        return
    try:
        before = json.loads(saved.read_text(encoding="utf-8"))["trials"]
    except (OSError, ValueError, KeyError, TypeError):
        raise AttncoachError(f"{saved} is damaged: it should hold the number of trials of the experiment") from None
    if before != trials:
        raise AttncoachError(
            f"{out} holds a Ray experiment of {before} trials; run it again with --trials {before} to resume it, "
            "or give a new --out"
        )


def _check_reachable(address: str) -> None:
    """One line, at once, for a ``HOST:PORT`` that nothing listens on (Ray itself would retry for a minute)."""
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise AttncoachError(f"--address {address} must be HOST:PORT of a Ray head (ray start --head --port PORT)")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise AttncoachError(
            f"the Ray cluster at {address} does not answer ({exc.strerror or exc}); start it with "
            "ray start --head, or leave --address out for a local Ray"
        ) from None


def _connect(ray: Any, address: str | None) -> bool:
    """Join the cluster at ``address`` or start a local Ray (quiet, no dashboard); whether this call started it."""
    logging.getLogger("ray").setLevel(logging.ERROR)
    for name in ("ray.tune", "ray.train", "ray.air"):  # a trial's error: one line of ours, the rest in tune.json
        logging.getLogger(name).setLevel(logging.CRITICAL)
    if ray.is_initialized():  # a caller (a test, a notebook) connected already
        return False
    options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False}
    try:
        if address is None:
            ray.init(address="local", num_cpus=os.cpu_count() or 1, **options)  # a new Ray, not one found running
        else:
            ray.init(address=address, **options)
    except Exception as exc:  # ConnectionError, a version mismatch, a timeout: one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        hint = ""
        if address is not None and "RAY_AUTH_MODE" not in os.environ:
            hint = " (a cluster with token authentication needs RAY_AUTH_MODE=token and its token here too)"
        raise AttncoachError(f"cannot connect to {where}: {first[:300]}{hint}") from None
    return True


def _plan(
    request: TuneRequest, base: RunConfig, space: list[Dimension], primary: str, out: Path, scheduler: str
) -> TrialPlan:
    """What the workers need: absolute paths everywhere (a trial's working directory is Ray's, not ours)."""
    pinned = copy.deepcopy(base)
    absolute_paths(pinned)
    paths = [f"data.path={json.dumps(pinned.data.path)}"] if pinned.data.path is not None else []
    if pinned.model.backbone != base.model.backbone:
        paths.append(f"model.backbone={json.dumps(pinned.model.backbone)}")
    steps = [f"train.max_steps={base.tune.trial_steps}"] if base.tune.trial_steps else []
    return TrialPlan(
        config=str(Path(request.config).resolve()) if request.config else None,
        overrides=(*request.overrides, *paths, *steps),
        space=tuple(space),
        out=str(out),
        primary=primary,
        coach_state=base.tune.pbt_coach_state is not False,
        clip=scheduler == "pbt",
        report_last=scheduler != "pbt",
    )


def search_space(tune: Any, space: list[Dimension]) -> dict[str, Any]:
    """Ray's domains for the dimensions of ``tune.space``."""
    domains = {}
    for d in space:
        if d.kind == "log_uniform":
            domains[d.key] = tune.loguniform(*d.values)
        elif d.kind == "uniform":
            domains[d.key] = tune.uniform(*d.values)
        elif d.kind == "int":
            domains[d.key] = tune.randint(d.values[0], d.values[1] + 1)  # Ray's upper end is exclusive
        else:
            domains[d.key] = tune.choice(list(d.values))
    return domains


def _scheduler(tune: Any, base: RunConfig, space: list[Dimension], primary: str, scheduler: str) -> Any:
    u, metric = base.tune, f"val_{primary}"
    if scheduler == "asha":
        return tune.schedulers.ASHAScheduler(
            time_attr="evaluation",
            metric=metric,
            mode="max",
            max_t=_ASHA_MAX_EVALUATIONS,
            grace_period=max(1, u.warmup_evaluations),
            reduction_factor=3,
        )
    if scheduler == "pbt":
        from attncoach.tune.pbt import StrictPopulationBasedTraining  # Ray's PBT, never exploiting a tie

        return StrictPopulationBasedTraining(
            time_attr="evaluation",
            metric=metric,
            mode="max",
            perturbation_interval=u.perturbation_interval or 2,
            hyperparam_mutations=search_space(tune, space),
            # asynchronous: a member compares itself with the others' latest scores when it reaches an interval.
            # Synchronous PBT waits at each interval for every member still running, and Ray checks that
            # barrier only when a result arrives: a member the coach ends between two intervals left the
            # others paused there for good.
            synch=False,
            log_config=False,
        )
    return tune.schedulers.FIFOScheduler()


def _tuner(
    ray: Any,
    plan: TrialPlan,
    base: RunConfig,
    request: TuneRequest,
    scheduler: str,
    experiment: Path,
    echo: Callable[[str], None],
    resumed: bool,
) -> Any:
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    cpus = base.train.threads or 1
    trainable = tune.with_resources(tune.with_parameters(run_trial, plan=plan), {"cpu": cpus})
    if resumed:
        return tune.Tuner.restore(str(experiment), trainable, resume_unfinished=True, resume_errored=True)
    return tune.Tuner(
        trainable,
        param_space=search_space(tune, list(plan.space)),
        tune_config=tune.TuneConfig(
            num_samples=request.trials,
            scheduler=_scheduler(tune, base, list(plan.space), plan.primary, scheduler),
            search_alg=BasicVariantGenerator(random_state=base.train.seed),
            reuse_actors=True,  # a paused or stopped trial's process runs the next one: no new start-up
        ),
        run_config=tune.RunConfig(
            name=EXPERIMENT,
            storage_path=str(experiment.parent),
            failure_config=tune.FailureConfig(max_failures=base.tune.retries),
            # PBT clones a donor's latest checkpoint, which must not be deleted under it
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None if scheduler == "pbt" else 2),
            verbose=0,
            callbacks=[_progress(tune, plan.primary, echo)],
        ),
    )


def _can_restore(experiment: Path) -> bool:
    from ray import tune

    return experiment.is_dir() and tune.Tuner.can_restore(str(experiment))


def _progress(tune: Any, primary: str, echo: Callable[[str], None]) -> Any:
    """A Tune callback printing one line per trial event (start, evaluation reported, retry, end, error).

    Ray pickles it with the experiment; ``echo`` is left out (it is this process's, and may not pickle): a
    restored experiment prints with :func:`_print_line`.
    """

    class Progress(tune.Callback):
        def __init__(self, primary: str, echo: Callable[[str], None]) -> None:  # no closure: nothing of ours pickled
            self.primary, self.echo = primary, echo

        def __getstate__(self) -> dict[str, Any]:
            return {"primary": self.primary}

        def __setstate__(self, state: dict[str, Any]) -> None:
            self.primary, self.echo = state["primary"], _print_line

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            shown = ", ".join(f"{key}={_short(value)}" for key, value in trial.config.items())
            self.echo(f"trial {trial_number(trial.trial_id)}: {shown}")

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            value = result.get(f"val_{self.primary}")
            shown = "-" if value is None or not math.isfinite(value) else f"{value:.4f}"
            self.echo(f"trial {trial_number(trial.trial_id)}: step {result.get('step')}, val {self.primary} {shown}")

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.echo(f"trial {trial_number(trial.trial_id)} ended")

        def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.echo(
                f"trial {trial_number(trial.trial_id)} failed: it runs again, from its last checkpoint if it has one"
            )

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.echo(f"trial {trial_number(trial.trial_id)} failed (see {trial.path})")

    return Progress(primary, echo)


def _print_line(line: str) -> None:
    print(line, flush=True)


def summarise(
    ray: Any,
    experiment: Path,
    space: list[Dimension],
    primary: str,
    request: TuneRequest,
    scheduler: str,
    address: str | None,
) -> dict[str, Any]:
    """``tune.json``: every trial (state, values, val and test metric, cost, run directory) and the best one."""
    from ray import tune

    analysis = tune.ExperimentAnalysis(str(experiment))
    rows = sorted((_row(trial, space, primary, request.out.resolve()) for trial in analysis.trials), key=_number)
    complete = [r for r in rows if r["state"] == "complete" and r[f"val_{primary}"] is not None]
    best = max(complete, key=lambda r: r[f"val_{primary}"], default=None)
    return {
        "study": request.study or request.out.resolve().name,
        "backend": "ray",
        "scheduler": scheduler,
        "address": address or "local",
        "storage": str(experiment),
        "metric": f"val {primary}",
        "direction": "maximize",
        "space": {d.key: d.describe() for d in space},
        "trials": rows,
        "counts": {s: sum(r["state"] == s for r in rows) for s in ("complete", "pruned", "fail", "running", "waiting")},
        "examples_seen": sum(r["examples_seen"] or 0 for r in rows),
        "best": None if best is None else _best_fields(best, primary),
    }


def _number(row: dict[str, Any]) -> int:
    return row["number"]


def _row(trial: Any, space: list[Dimension], primary: str, out: Path) -> dict[str, Any]:
    """One trial: its state from Ray and, once it finished, its numbers from its run's metrics.json."""
    number = trial_number(trial.trial_id)
    run = out / f"trial-{number:04d}"
    metrics_file = run / "metrics.json"
    metrics = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.is_file() else None
    last = trial.last_result or {}
    if trial.status == "ERROR":
        state = "fail"
    elif trial.status == "TERMINATED":
        state = "complete" if metrics is not None else "pruned"  # stopped by ASHA: no best-model evaluation
    else:
        # an interrupted experiment, resumed by the next tune: running = it has reported (and checkpointed)
        state = "running" if last.get("step") is not None else "waiting"
    val = metrics["val"][primary] if metrics else last.get(f"val_{primary}")
    row = {
        "number": number,
        "state": state,
        "params": {d.key: trial.config[d.key] for d in space if d.key in trial.config},
        f"val_{primary}": None if val is None or not math.isfinite(val) else val,
        f"test_{primary}": metrics["test"][primary] if metrics else None,
        "steps": metrics["steps"] if metrics else last.get("step"),
        "examples_seen": metrics["examples_seen"] if metrics else last.get("examples_seen"),
        "seconds": round(last["time_total_s"], 1) if "time_total_s" in last else None,
        "run_dir": str(run) if run.is_dir() else None,
    }
    exploits = run / "exploits.jsonl"
    if exploits.is_file():
        row["exploits"] = len(exploits.read_text(encoding="utf-8").splitlines())
    if state == "fail":
        row["error"] = _error_line(trial)
    return row


def _error_line(trial: Any) -> str:
    """The trial's error in one line: attncoach's own message when it is one, else the exception's last line."""
    try:
        text = str(trial.get_error() or "")
    except Exception:  # an error file that cannot be read: say where it is
        return f"see {trial.path}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    ours = [line for line in lines if "AttncoachError:" in line]
    chosen = ours[-1].split("AttncoachError:", 1)[1].strip() if ours else (lines[-1] if lines else "unknown error")
    return chosen[:300]


def _write_outcome(
    result: dict[str, Any],
    request: TuneRequest,
    base: RunConfig,
    primary: str,
    out: Path,
    echo: Callable[[str], None],
) -> dict[str, Any]:
    """An interrupted experiment is saved and said; a finished one ends as the Optuna backend's (:func:`write_outcome`)."""
    unfinished = result["counts"]["running"] + result["counts"]["waiting"]
    if unfinished:  # Ctrl-C: Ray stopped the experiment, its state is saved
        atomic_write_json(out / "tune.json", result)
        raise AttncoachError(
            f"interrupted with {unfinished} of {len(result['trials'])} trials unfinished; run the same command again "
            "to resume them from their last checkpoints"
        )
    return write_outcome(result, request, base, primary, out, echo)
