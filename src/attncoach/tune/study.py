"""``attncoach tune --backend optuna``: many coached runs, one per trial, searched and pruned by Optuna.

attncoach schedules nothing itself: Optuna samples each trial's values of ``tune.space`` (TPE,
random or CMA-ES), keeps the study in its storage and decides pruning (the median rule) from the
val metric each run reports at its periodic evaluations, through a recipe callback
(:class:`PruningCallback`). Every trial is an ordinary attncoach run, coach included, in its
own directory ``OUT/trial-NNNN``: ``attncoach eval``, ``report`` and ``export`` work on it.

The study lives in SQLite at ``OUT/study.db`` unless ``--storage`` says otherwise (a PostgreSQL
URL for several machines, ``memory`` for none). Trials write a heartbeat to a database storage; a
trial whose process was killed goes stale after ``tune.grace_seconds`` and is run again (up to
``tune.retries`` times) by the next trial to start, resuming its run directory from its last
checkpoint. So a killed ``tune`` resumes when the same command runs again, and two processes
given the same ``--storage`` and ``--study`` share one study.

Example:
    >>> result = tune(TuneRequest(config="configs/tweets-sentiment.yaml", trials=24, out=Path("runs/tune")))  # doctest: +SKIP
    >>> result["best"]["run_dir"]                                                                              # doctest: +SKIP
    'runs/tune/trial-0017'
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import re
import shutil
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attncoach.atomicfile import atomic_write_json, atomic_write_text
from attncoach.config import RunConfig, to_dict
from attncoach.errors import AttncoachError
from attncoach.rundir import RunDir
from attncoach.tasks import TASKS
from attncoach.train.callbacks import Callback
from attncoach.train.settings import load_run_config
from attncoach.tune.space import Dimension, check_space, parse_space, suggest

log = logging.getLogger("attncoach")

SETTINGS_FILE = "tune_config.json"  # the config the study in OUT was started with (a resume must match)


@dataclass
class TuneRequest:
    """What ``attncoach tune`` was asked.

    Attributes:
        config: the base YAML config (``None``: defaults plus ``overrides``); its ``tune`` section
            holds the space.
        overrides: ``section.key=value`` strings applied to every trial.
        trials: finished trials (complete or pruned) the study should hold when ``tune`` ends.
        out: the directory of the study: trial runs, ``tune.json``, ``best.yaml``, ``study.db``.
        storage: an SQLAlchemy URL, ``memory``, or ``None`` (SQLite in ``out``).
        study: the study's name; ``None`` = ``out``'s name.
        retrain_best: retrain the best configuration at the config's full length afterwards.
        retrain_seeds: the seeds of those runs (``None``: the config's seed).
        quiet: no progress bars (one line per trial is still printed).
    """

    config: str | None
    trials: int
    out: Path
    overrides: list[str] = field(default_factory=list)
    storage: str | None = None
    study: str | None = None
    retrain_best: bool = False
    retrain_seeds: list[int] | None = None
    quiet: bool = False


class PruningCallback(Callback):
    """Reports the val metric of each evaluation to the trial; stops the run when Optuna's pruner says so.

    Args:
        trial: the Optuna trial of this run.
        metric: the reported val metric (the task's primary one).
        warmup: evaluations before the pruner is asked.
    """

    def __init__(self, trial: Any, metric: str, warmup: int) -> None:
        self.trial, self.metric, self.warmup = trial, metric, warmup
        self.evaluations = 0
        self.pruned_at: int | None = None

    def after_eval(self, recipe: Any, metrics: dict[str, Any], score: float) -> str | None:
        value = metrics.get(self.metric)
        if value is None or not math.isfinite(value):
            return None
        step = recipe.state.step
        self.evaluations += 1
        self.trial.report(float(value), step)
        if self.evaluations <= self.warmup or not self.trial.should_prune():
            return None
        self.pruned_at = step
        return (
            f"pruned by the tuner: val {self.metric} {value:.4f} at step {step} is below the median of earlier trials"
        )


def require_optuna() -> Any:
    """The ``optuna`` module, or one line saying how to install it."""
    if importlib.util.find_spec("optuna") is None:
        raise AttncoachError("attncoach tune --backend optuna needs optuna: pip install 'attncoach[tune]'")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # attncoach prints one line per trial itself
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def tune(request: TuneRequest, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) the study until it holds ``request.trials`` finished trials; returns ``tune.json``'s content.

    Raises:
        AttncoachError: a bad config or space, an unreachable storage, a study of another config in ``out``.
    """
    optuna = require_optuna()
    base, space, primary = checked_start(request)
    out = request.out
    name = request.study or out.resolve().name
    new = not out.exists()
    _claim_out(out, base)
    try:
        study = _open_study(optuna, _storage(optuna, request, base.tune), name, base)
    except AttncoachError:
        if new:  # nothing of a study that never opened is left behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    _warn_startup(base, request.trials, echo)
    requeue_interrupted(optuna, study, base.tune.retries, echo)
    done = _finished(optuna, study)
    if done >= request.trials:
        echo(f"study {name} already holds {done} finished trials (--trials {request.trials}): nothing to run")
    else:
        echo(
            f"study {name}: {done} of {request.trials} trials finished; {base.tune.sampler} sampler, "
            f"{base.tune.pruner} pruner, maximising val {primary}{_latency_goal(base.tune)}; runs in {out}"
        )
        trial_runner = _TrialRunner(optuna, request, base, space, primary, echo)
        stopper = _Stopper(optuna, request.trials, echo)
        study.optimize(trial_runner, callbacks=[stopper], gc_after_trial=True)
    result = summarise(optuna, study, space, primary, name, request, base.tune)
    return write_outcome(result, request, base, primary, out, echo)


def checked_start(request: TuneRequest) -> tuple[RunConfig, list[Dimension], str]:
    """The base config, its search space checked key by key, and the task's primary metric (every backend's start).

    Raises:
        AttncoachError: fewer than one trial, a bad config, an empty or malformed space, a key no config has.
    """
    if request.trials < 1:
        raise AttncoachError(f"--trials must be at least 1, got {request.trials}")
    base = _base_config(request)
    space = parse_space(base.tune.space)
    check_space(space, lambda extra: load_run_config(request.config, [*request.overrides, *extra]))
    return base, space, TASKS[base.task].primary


def write_outcome(
    result: dict[str, Any],
    request: TuneRequest,
    base: RunConfig,
    primary: str,
    out: Path,
    echo: Callable[[str], None],
) -> dict[str, Any]:
    """``tune.json`` and ``best.yaml``, and the best configuration retrained on request (every backend's end).

    Raises:
        AttncoachError: no trial completed, or none is within ``tune.max_latency_ms`` (``tune.json`` is written).
    """
    name = result["study"]
    if result["best"] is None:
        atomic_write_json(out / "tune.json", result)
        fastest = min((t["latency_ms"] for t in result["trials"] if t.get("latency_ms") is not None), default=None)
        if fastest is not None:
            raise AttncoachError(
                f"no trial of study {name} is within tune.max_latency_ms {base.tune.max_latency_ms:g} "
                f"(the fastest: {fastest:.2f} ms); see the Pareto front in {out}/tune.json"
            )
        errors = [t["error"] for t in result["trials"] if "error" in t]
        first = f"; the first error: {errors[0]}" if errors else ""
        raise AttncoachError(
            f"no trial of study {name} completed ({len(result['trials'])} ran{first}); see {out}/tune.json"
        )
    atomic_write_text(out / "best.yaml", _best_config(Path(result["best"]["run_dir"])))
    result["best"]["config"] = str(out / "best.yaml")
    atomic_write_json(out / "tune.json", result)
    if request.retrain_best:
        full_steps = base.train.max_steps  # the config's own length, not tune.trial_steps
        result["retrained"] = retrain_best(request, out / "best.yaml", full_steps, primary, echo)
        atomic_write_json(out / "tune.json", result)
    return result


def _latency_goal(u: Any) -> str:
    if u.objective == "metric":
        return ""
    subnet = " ".join(f"{k} {v:g}" for k, v in (u.latency_subnet or {}).items()) or "the whole model"
    return f" and minimising the latency at batch {u.latency_batch} (of {subnet})"


class _Stopper:
    """Stops the study once it holds ``trials`` finished trials (this process's or another's), or once this
    process has seen ``trials`` failures in a row (a space where every run fails would otherwise never end)."""

    def __init__(self, optuna: Any, trials: int, echo: Callable[[str], None]) -> None:
        self.optuna, self.trials, self.echo = optuna, trials, echo
        self.failures_in_a_row = 0

    def __call__(self, study: Any, trial: Any) -> None:
        if _finished(self.optuna, study) >= self.trials:
            study.stop()
            return
        failed = trial.state == self.optuna.trial.TrialState.FAIL
        self.failures_in_a_row = self.failures_in_a_row + 1 if failed else 0
        if self.failures_in_a_row >= max(3, self.trials):
            self.echo(f"stopping: the last {self.failures_in_a_row} trials failed (see their errors in tune.json)")
            study.stop()


def _base_config(request: TuneRequest) -> RunConfig:
    for item in request.overrides:
        if item.split("=", 1)[0].strip() == "output_dir":
            raise AttncoachError("each trial has its own output_dir under --out; drop the output_dir override")
    return load_run_config(request.config, request.overrides)


def _comparable(cfg: RunConfig) -> dict[str, Any]:
    settings = to_dict(cfg)
    settings.pop("output_dir", None)
    settings["tune"].pop("max_latency_ms", None)  # it picks the best of the trials; it changes none of them
    return settings


def _claim_out(out: Path, base: RunConfig) -> None:
    """Make ``out``, or check that the study in it was started with the same config (a resume)."""
    saved = out / SETTINGS_FILE
    mine = {"config": _comparable(base)}
    _wait_for_a_claim(out, saved)
    if saved.is_file():
        try:
            theirs = json.loads(saved.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise AttncoachError(f"{saved} is damaged: it should hold the config the study started with") from None
        if theirs.get("config") != mine["config"]:
            changed = _changed_keys(theirs.get("config", {}), mine["config"])
            raise AttncoachError(
                f"{out} holds a study of another config (changed: {', '.join(changed[:4]) or 'the layout'}); "
                "resume it with the same config and overrides, or give a new --out"
            )
        return
    if out.exists() and (not out.is_dir() or any(p.name != "study.db" for p in out.iterdir())):
        raise AttncoachError(f"--out {out} exists and holds something other than a study; choose a new directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AttncoachError(f"cannot make --out {out}: {exc.strerror or exc}") from None
    atomic_write_json(saved, mine)


def _wait_for_a_claim(out: Path, saved: Path, seconds: float = 10.0) -> None:
    """Another process sharing the study may be claiming ``out`` this instant (its settings file still being
    written): wait for the file rather than take the half-made directory for someone else's."""
    deadline = time.monotonic() + seconds
    while not saved.is_file() and out.is_dir() and time.monotonic() < deadline:
        names = [p.name for p in out.iterdir()]
        if not any(name.startswith(f".{SETTINGS_FILE}.tmp") for name in names):
            return
        time.sleep(0.05)


def _changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict) and key != "space":
            keys += _changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys


def redact(url: str) -> str:
    """A storage URL without its password: ``postgresql://user:***@host/db``."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def _storage(optuna: Any, request: TuneRequest, u: Any) -> Any:
    """The study's storage: in memory, or a database with heartbeats (stale trials retried)."""
    if request.storage == "memory":
        return optuna.storages.InMemoryStorage()
    url = request.storage or f"sqlite:///{(request.out / 'study.db').resolve()}"
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 60}  # two processes on one SQLite file wait for each other's writes
    elif url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None:
        # SQLAlchemy 2.1 reads postgresql:// with psycopg 3 (postgresql+psycopg2:// names the older driver)
        raise AttncoachError(f"storage {redact(url)} needs the psycopg driver: pip install 'attncoach[tune]'")
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=kwargs,
                heartbeat_interval=max(1, u.grace_seconds // 6),  # a live trial beats several times per grace period
                grace_period=u.grace_seconds,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=u.retries),
            )
        except Exception as exc:  # SQLAlchemy's errors: a bad URL, a server that does not answer, a wrong password
            if _schema_race(str(exc)) and attempt < 4:  # two processes made the new database's tables at once
                time.sleep(0.5)
                continue
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise AttncoachError(f"cannot open the study storage {redact(url)}: {first[:300]}") from None
    raise AssertionError("unreachable")


def _schema_race(message: str) -> bool:
    """Whether a storage error is another process creating the same new database's tables at the same time."""
    races = ("already exists", "UNIQUE constraint failed", "duplicate key value violates unique constraint")
    return any(words in message for words in races)


def _open_study(optuna: Any, storage: Any, name: str, base: RunConfig) -> Any:
    u, seed = base.tune, base.train.seed
    if u.sampler == "tpe":
        sampler = optuna.samplers.TPESampler(n_startup_trials=u.startup_trials, seed=seed)
    elif u.sampler == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    elif u.sampler == "nsga2":  # one generation = startup_trials trials; the first is random
        sampler = optuna.samplers.NSGAIISampler(population_size=max(2, u.startup_trials), seed=seed)
    else:
        if importlib.util.find_spec("cmaes") is None:
            raise AttncoachError("tune.sampler cmaes needs the cmaes package: pip install cmaes")
        sampler = optuna.samplers.CmaEsSampler(n_startup_trials=u.startup_trials, seed=seed)
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=u.startup_trials)
        if u.pruner == "median"
        else optuna.pruners.NopPruner()
    )
    directions = ["maximize", "minimize"] if u.objective == "metric_latency" else ["maximize"]
    try:
        study = optuna.create_study(
            study_name=name, storage=storage, sampler=sampler, pruner=pruner, directions=directions, load_if_exists=True
        )
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AttncoachError(f"cannot open study {name}: {first[:300]}") from None
    if [d.name.lower() for d in study.directions] != directions:
        theirs = ", ".join(d.name.lower() for d in study.directions)
        raise AttncoachError(
            f"study {name} in this storage has the directions ({theirs}); tune.objective {u.objective} "
            f"needs ({', '.join(directions)}): give another --study"
        )
    return study


def _warn_startup(base: RunConfig, trials: int, echo: Callable[[str], None]) -> None:
    u = base.tune
    if u.sampler in ("tpe", "cmaes") and trials <= u.startup_trials:
        echo(
            f"note: {u.sampler} models the space only after tune.startup_trials ({u.startup_trials}) random trials; "
            f"with --trials {trials} every trial is random"
        )


def _finished(optuna: Any, study: Any) -> int:
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


class _TrialRunner:
    """The objective: one coached run per trial, pruned through :class:`PruningCallback`."""

    def __init__(
        self,
        optuna: Any,
        request: TuneRequest,
        base: RunConfig,
        space: list[Dimension],
        primary: str,
        echo: Callable[[str], None],
    ) -> None:
        self.optuna, self.request, self.base, self.space = optuna, request, base, space
        self.primary, self.echo = primary, echo

    def __call__(self, trial: Any) -> float:
        from attncoach.train.recipe import Recipe

        values = suggest(trial, self.space)
        shown = ", ".join(f"{key}={_short(value)}" for key, value in values.items())
        earlier = self._earlier(trial)
        run, resume = self._run_dir(trial.number, earlier)
        trial.set_user_attr("run_dir", str(run.path))
        again = f" (trial {earlier[0]} again{', resumed' if resume else ''})" if earlier is not None else ""
        self.echo(f"trial {trial.number}{again}: {shown}")
        if resume:
            cfg = load_run_config(run.config)
        else:
            extra = [d.override(values[d.key]) for d in self.space]
            steps = [f"train.max_steps={self.base.tune.trial_steps}"] if self.base.tune.trial_steps else []
            cfg = load_run_config(
                self.request.config, [*self.request.overrides, *extra, *steps, f"output_dir={run.path}"]
            )
            run.check_new()
        pruning = PruningCallback(trial, self.primary, self.base.tune.warmup_evaluations)
        callbacks = [pruning] if self.base.tune.objective == "metric" else []  # Optuna prunes one objective only
        started = time.perf_counter()
        latency = None
        try:
            recipe = Recipe(cfg, run, resume=resume, quiet=self.request.quiet, callbacks=callbacks)
            metrics = recipe.run()
            value, test = float(metrics["val"][self.primary]), float(metrics["test"][self.primary])
            if self.base.tune.objective == "metric_latency":
                value, test, latency = measure_objectives(recipe, self.base.tune, self.primary)
        except AttncoachError as exc:  # e.g. a configuration that diverges: a failed trial, the study goes on
            trial.set_user_attr("error", str(exc))
            self.echo(f"trial {trial.number} failed: {exc}")
            return math.nan if self.base.tune.objective == "metric" else (math.nan, math.nan)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: Optuna fails the trial; the next tune resumes its run
            trial.set_user_attr("interrupted", True)
            raise
        trial.set_user_attr("test", test)
        if latency is not None:
            trial.set_user_attr("latency_ms", latency)
        trial.set_user_attr("steps", int(metrics["steps"]))
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 1))
        trial.set_user_attr("examples_seen", int(metrics.get("examples_seen", 0)))
        trial.set_user_attr("stop_reason", metrics.get("stop_reason"))
        verdict = f"pruned at step {pruning.pruned_at}" if pruning.pruned_at is not None else "complete"
        measured = "" if latency is None else f", {latency:.2f} ms at batch {self.base.tune.latency_batch}"
        self.echo(
            f"trial {trial.number} {verdict}: val {self.primary} {value:.4f}{measured} ({metrics['steps']} steps, "
            f"{time.perf_counter() - started:.0f} s) -> {run.path}"
        )
        if pruning.pruned_at is not None:
            raise self.optuna.TrialPruned(f"pruned at step {pruning.pruned_at}")
        return value if latency is None else (value, latency)

    def _earlier(self, trial: Any) -> tuple[int, str | None] | None:
        """The trial this one runs again (its number and run directory): one that was interrupted, or one whose
        process was killed (its heartbeat went stale); ``None`` for a new trial."""
        if "resume_of" in trial.user_attrs:
            return trial.user_attrs["resume_of"], trial.user_attrs.get("resume_dir")
        trials = trial.study.get_trials(deepcopy=False)  # frozen, by number: the retry marks live in system attrs
        retried = self.optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(trials[trial.number])
        if retried is None:
            return None
        original = trials[retried]
        return retried, original.user_attrs.get("run_dir")

    def _run_dir(self, number: int, earlier: tuple[int, str | None] | None) -> tuple[RunDir, bool]:
        """The trial's run directory, and whether it resumes an earlier trial's run from its checkpoint."""
        if earlier is not None and earlier[1] is not None:
            run = RunDir(earlier[1])
            has_checkpoint = run.checkpoints.is_dir() and any(run.checkpoints.iterdir())
            if run.is_run() and has_checkpoint and not run.metrics.is_file():
                return run, True
        return RunDir(self.request.out / f"trial-{number:04d}"), False


def measure_objectives(recipe: Any, u: Any, primary: str) -> tuple[float, float, float]:
    """The val and test ``primary`` metric of ``tune.latency_subnet`` of a finished run's best model, and its latency.

    The latency is milliseconds per forward pass of a batch of ``tune.latency_batch`` real val examples
    (:func:`attncoach.elastic.measure.measure_latency`, with the torch threads of the trial).

    Raises:
        AttncoachError: the model has no elastic encoder to take a sub-net of.
    """
    from attncoach.elastic.measure import measure_latency
    from attncoach.elastic.space import subnet_for

    model, splits = recipe.model, recipe.data.splits
    encoder = getattr(model, "encoder", None)
    if not hasattr(model, "set_subnet") or not hasattr(encoder, "config"):
        raise AttncoachError(
            f"tune.objective metric_latency needs a model with an elastic encoder; {recipe.task.name} has none"
        )
    subnet = None if u.latency_subnet is None else subnet_for(encoder.config, **u.latency_subnet)
    model.set_subnet(subnet)
    try:
        val, test = (float(recipe.evaluate(splits[name])[primary]) for name in ("val", "test"))
        latency = measure_latency(model, splits["val"], u.latency_batch)
    finally:
        model.set_subnet(None)
    return val, test, round(latency, 4)


def requeue_interrupted(optuna: Any, study: Any, retries: int, echo: Callable[[str], None]) -> None:
    """Queue again each trial stopped by Ctrl-C or SIGTERM (Optuna failed it), with its values, to resume its run.

    A trial is queued once (the queued trial names it in ``requeued_from``), and at most ``retries``
    times along a chain of interruptions.
    """
    trials = study.get_trials(deepcopy=False)
    taken = {t.user_attrs.get("requeued_from") for t in trials}
    for t in trials:
        if t.state != optuna.trial.TrialState.FAIL or not t.user_attrs.get("interrupted") or t.number in taken:
            continue
        depth = t.user_attrs.get("retry_depth", 0) + 1
        if depth > retries:
            continue
        origin = t.user_attrs.get("resume_of", t.number)
        study.enqueue_trial(
            t.params,
            user_attrs={
                "resume_of": origin,
                "requeued_from": t.number,
                "resume_dir": t.user_attrs.get("run_dir"),
                "retry_depth": depth,
            },
            skip_if_exists=False,
        )
        echo(f"trial {t.number} was interrupted: it runs again, from its last checkpoint")


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else json.dumps(value)


def summarise(
    optuna: Any, study: Any, space: list[Dimension], primary: str, name: str, request: TuneRequest, u: Any
) -> dict:
    """``tune.json``: every trial (state, values, val and test metric, cost, run directory) and the best one.

    With ``tune.objective: metric_latency`` each trial has its ``latency_ms`` and whether it is on the
    Pareto front (``pareto``); the best is the best val metric within ``tune.max_latency_ms`` (if given).
    """
    rows = []
    for t in study.get_trials(deepcopy=False):
        rows.append(
            {
                "number": t.number,
                "state": t.state.name.lower(),
                "params": {d.key: t.params[d.key] for d in space if d.key in t.params},
                f"val_{primary}": t.values[0] if t.state == optuna.trial.TrialState.COMPLETE else _last(t),
                f"test_{primary}": t.user_attrs.get("test"),
                **({"latency_ms": t.user_attrs.get("latency_ms")} if u.objective == "metric_latency" else {}),
                "steps": t.user_attrs.get("steps"),
                "examples_seen": t.user_attrs.get("examples_seen"),
                "seconds": t.user_attrs.get("seconds"),
                "run_dir": t.user_attrs.get("run_dir"),
                **({"error": t.user_attrs["error"]} if "error" in t.user_attrs else {}),
            }
        )
    complete = [r for r in rows if r["state"] == "complete" and r[f"val_{primary}"] is not None]
    objectives: dict[str, Any] = {}
    if u.objective == "metric_latency":
        front = {t.number for t in study.best_trials}
        for row in rows:
            row["pareto"] = row["number"] in front
        if u.max_latency_ms is not None:  # the best is the best val metric within the latency budget
            complete = [r for r in complete if r["latency_ms"] <= u.max_latency_ms]
        objectives = {
            "objectives": [f"val {primary}", "latency_ms"],
            "directions": ["maximize", "minimize"],
            "latency": {"subnet": u.latency_subnet or "full", "batch": u.latency_batch, "max_ms": u.max_latency_ms},
        }
    # equal val metrics: the faster trial (a Pareto trial) is the best
    best = max(complete, key=lambda r: (r[f"val_{primary}"], -(r.get("latency_ms") or 0.0)), default=None)
    storage = "memory" if request.storage == "memory" else redact(request.storage or str(request.out / "study.db"))
    return {
        "study": name,
        "storage": storage,
        "metric": f"val {primary}",
        "direction": "maximize",
        **objectives,
        "space": {d.key: d.describe() for d in space},
        "trials": rows,
        "counts": {s: sum(r["state"] == s for r in rows) for s in ("complete", "pruned", "fail", "running", "waiting")},
        "examples_seen": sum(r["examples_seen"] or 0 for r in rows),
        "best": None if best is None else _best_fields(best, primary),
    }


def _best_fields(row: dict[str, Any], primary: str) -> dict[str, Any]:
    return {
        "number": row["number"],
        "value": row[f"val_{primary}"],
        "test": row[f"test_{primary}"],
        "params": row["params"],
        "run_dir": row["run_dir"],
        **({"latency_ms": row["latency_ms"]} if "latency_ms" in row else {}),
    }


def _last(trial: Any) -> float | None:
    """A pruned trial's last reported val metric."""
    if not trial.intermediate_values:
        return None
    return trial.intermediate_values[max(trial.intermediate_values)]


def _best_config(run_dir: Path) -> str:
    """The best trial's config as a training config (without its output_dir)."""
    import yaml

    settings = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    settings.pop("output_dir", None)
    header = f"# the best trial of attncoach tune: {run_dir}\n"
    return header + yaml.safe_dump(settings, sort_keys=False)


def retrain_best(
    request: TuneRequest, best: Path, full_steps: int | None, primary: str, echo: Callable[[str], None]
) -> dict[str, Any]:
    """The best configuration trained again at ``full_steps`` (``train.max_steps``; None = its epochs), once per seed."""
    import yaml

    from attncoach.train.recipe import Recipe

    settings = yaml.safe_load(best.read_text(encoding="utf-8"))
    seeds = request.retrain_seeds or [settings["train"]["seed"]]
    runs = []
    for seed in seeds:
        run = RunDir(request.out / f"best-seed-{seed}")
        if run.metrics.is_file():  # a resumed tune keeps what it retrained before
            metrics = json.loads(run.metrics.read_text(encoding="utf-8"))
        else:
            overrides = [f"train.seed={seed}", f"train.max_steps={json.dumps(full_steps)}", f"output_dir={run.path}"]
            resume = run.is_run()
            cfg = load_run_config(run.config) if resume else load_run_config(best, overrides)
            if not resume:
                run.check_new()
            echo(f"retraining the best configuration, seed {seed} -> {run.path}")
            metrics = Recipe(cfg, run, resume=resume, quiet=request.quiet).run()
        runs.append({"seed": seed, f"test_{primary}": metrics["test"][primary], "run_dir": str(run.path)})
        echo(f"best configuration, seed {seed}: test {primary} {metrics['test'][primary]:.4f}")
    scores = [r[f"test_{primary}"] for r in runs]
    return {"runs": runs, f"median_test_{primary}": statistics.median(scores)}
