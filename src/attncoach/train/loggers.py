"""Loggers: the experiment trackers a run writes its scalars, summary and figures to.

A tracker backend is a small registered class with three methods (:class:`Logger`):
``log_scalars`` (tags ``group/name`` at a step), ``log_summary`` (the flattened resolved
config and the final metrics, once at the end) and ``log_image`` (a figure as an RGB array).
``log.backends`` picks them by name: ``tensorboard`` (the default; ``RUN/tb``), ``wandb``
(Weights & Biases in offline mode, ``RUN/wandb``; ``wandb sync`` uploads it later) and
``mlflow`` (a local file store ``RUN/mlruns``, or ``log.mlflow_uri``). Each library but
TensorBoard's is an optional extra, imported only inside its backend.

The recipe holds one :class:`LoggerCallback` that fans out to the chosen backends: every
group of scalars the recipe and its callbacks log (``train/``, ``val/``, ``test/``,
``coach/``), then at the end the summary and the figures of :mod:`attncoach.train.figures`.
A backend that fails (a full disk, a broken library) is dropped with one warning; training
goes on. Only the main process logs: :func:`make_loggers` is the one place that decides.

Example:
    >>> @register_logger("printing")
    ... class PrintingLogger(Logger):
    ...     def log_scalars(self, step, values):
    ...         print(step, values)
    ...     def log_summary(self, params, metrics):
    ...         print(metrics)
    ...     def log_image(self, tag, image, step):
    ...         print(tag, image.shape)
    >>> PrintingLogger(RunDir("runs/x"), LogConfig()).log_scalars(20, {"train/loss": 0.5})
    20 {'train/loss': 0.5}
    >>> del LOGGERS["printing"]
"""

from __future__ import annotations

import abc
import importlib.util
import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from attncoach.atomicfile import atomic_write_json
from attncoach.config import LogConfig, RunConfig, to_dict
from attncoach.errors import AttncoachError
from attncoach.rundir import RunDir
from attncoach.train.callbacks import Callback

log = logging.getLogger("attncoach")

Param = int | float | str | bool


class Logger(abc.ABC):
    """One experiment tracker a run writes to.

    Args:
        run: the run directory (a backend keeps its files inside it).
        cfg: the ``log`` section of the run's config.
        run_id: the tracker's own id of this run when it is resumed (None for a new run).

    Attributes:
        name: the registered name (``log.backends``).
        extra: the pip extra of attncoach that installs its library (None: always installed).
        module: the library it imports, checked before training starts.
        run_id: the tracker's id of this run, kept in ``RUN/loggers.json`` for a resume.
    """

    name: ClassVar[str] = ""
    extra: ClassVar[str | None] = None
    module: ClassVar[str | None] = None

    def __init__(self, run: RunDir, cfg: LogConfig, run_id: str | None = None):
        self.run, self.cfg, self.run_id = run, cfg, run_id

    @abc.abstractmethod
    def log_scalars(self, step: int, values: dict[str, float]) -> None:
        """Scalars tagged ``group/name`` (``train/loss``) at optimizer step ``step``."""

    @abc.abstractmethod
    def log_summary(self, params: dict[str, Param], metrics: dict[str, float]) -> None:
        """Once at the end: the flattened resolved config and the final metrics (``test/macro_f1``)."""

    @abc.abstractmethod
    def log_image(self, tag: str, image: np.ndarray, step: int) -> None:
        """A figure as an RGB image, ``(H, W, 3)`` uint8."""

    def close(self) -> None:
        """Flush and release the tracker's files (also after a failed run)."""


LOGGERS: dict[str, type[Logger]] = {}


def register_logger(name: str, extra: str | None = None, module: str | None = None) -> Callable[[type], type]:
    """Class decorator: make a backend available as ``log.backends: [name]``."""

    def add(cls: type[Logger]) -> type[Logger]:
        cls.name, cls.extra, cls.module = name, extra, module
        LOGGERS[name] = cls
        return cls

    return add


@register_logger("tensorboard")
class TensorBoardLogger(Logger):
    """TensorBoard event files in ``RUN/tb``; the summary goes to the HParams tab."""

    def __init__(self, run: RunDir, cfg: LogConfig, run_id: str | None = None):
        super().__init__(run, cfg, run_id)
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run.tb))

    def log_scalars(self, step: int, values: dict[str, float]) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def log_summary(self, params: dict[str, Param], metrics: dict[str, float]) -> None:
        from torch.utils.tensorboard.summary import hparams

        shown = {k: str(v) if isinstance(v, bool) else v for k, v in params.items()}  # else TensorBoard shows 0/1
        for summary in hparams(shown, {f"final/{k}": v for k, v in metrics.items()}):  # experiment, session start/end
            self.writer.file_writer.add_summary(summary)
        for tag, value in metrics.items():  # the HParams tab reads the metrics from these scalars
            self.writer.add_scalar(f"final/{tag}", value, 0)

    def log_image(self, tag: str, image: np.ndarray, step: int) -> None:
        self.writer.add_image(tag, image, step, dataformats="HWC")

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


@register_logger("wandb", extra="wandb", module="wandb")
class WandbLogger(Logger):
    """Weights & Biases in offline mode: the run is written under ``RUN/wandb`` and never uploaded
    nor logged in; ``wandb sync RUN/wandb/offline-run-*`` uploads it later. The x axis of every
    chart is ``trainer/step`` (a resumed run goes back to its checkpoint's step)."""

    def __init__(self, run: RunDir, cfg: LogConfig, run_id: str | None = None):
        super().__init__(run, cfg, run_id)
        import wandb

        settings = wandb.Settings(mode="offline", silent=True, console="off", disable_git=True, disable_code=True)
        self.wandb = wandb
        self.handle = wandb.init(
            dir=str(run.path),
            project=cfg.project,
            name=run.path.name,
            id=run_id,
            resume="allow" if run_id else None,
            settings=settings,
            reinit="create_new",
        )
        self.run_id = self.handle.id
        self.handle.define_metric("trainer/step")
        self.handle.define_metric("*", step_metric="trainer/step")

    def log_scalars(self, step: int, values: dict[str, float]) -> None:
        self.handle.log({**values, "trainer/step": step})

    def log_summary(self, params: dict[str, Param], metrics: dict[str, float]) -> None:
        self.handle.config.update(params, allow_val_change=True)
        self.handle.summary.update({f"final/{k}": v for k, v in metrics.items()})

    def log_image(self, tag: str, image: np.ndarray, step: int) -> None:
        self.handle.log({tag: self.wandb.Image(image), "trainer/step": step})

    def close(self) -> None:
        self.handle.finish()
        if self.wandb.run is None:  # no other W&B run in this process: wait until the run file is written
            self.wandb.teardown()  # finish() returns before wandb-core has flushed the .wandb file


@register_logger("mlflow", extra="mlflow", module="mlflow")
class MlflowLogger(Logger):
    """MLflow: a run of experiment ``log.project`` in the file store ``RUN/mlruns`` (or at
    ``log.mlflow_uri``); params are the flattened config, figures are artifacts ``figures/*.png``."""

    def __init__(self, run: RunDir, cfg: LogConfig, run_id: str | None = None):
        super().__init__(run, cfg, run_id)
        # MLflow 3 keeps its file store working only when asked to; a user's own setting wins
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=cfg.mlflow_uri or (run.path / "mlruns").absolute().as_uri())
        if run_id is None:
            found = self.client.get_experiment_by_name(cfg.project)
            experiment = found.experiment_id if found else self.client.create_experiment(cfg.project)
            self.run_id = self.client.create_run(experiment, run_name=run.path.name).info.run_id
        else:
            self.client.update_run(run_id, status="RUNNING")

    def log_scalars(self, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(tag, float(value), now, step) for tag, value in values.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def log_summary(self, params: dict[str, Param], metrics: dict[str, float]) -> None:
        from mlflow.entities import Param as MlflowParam

        entries = [MlflowParam(k, str(v)) for k, v in params.items()]
        for start in range(0, len(entries), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=entries[start : start + 100])
        self.log_scalars(0, {f"final/{k}": v for k, v in metrics.items()})

    def log_image(self, tag: str, image: np.ndarray, step: int) -> None:
        self.client.log_image(self.run_id, image, artifact_file=f"{tag}.png")

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


def chosen_backends(cfg: LogConfig) -> list[str]:
    """The backends ``log`` turns on.

    ``log.backends`` names them; left unset (null) it is ``[tensorboard]``, as before it
    existed. ``log.tensorboard: false`` (the older key) turns TensorBoard off: with
    ``log.backends`` unset that leaves none, and with TensorBoard listed it is refused.

    Example:
        >>> chosen_backends(LogConfig()), chosen_backends(LogConfig(tensorboard=False))
        (['tensorboard'], [])
        >>> chosen_backends(LogConfig(backends=["wandb", "tensorboard"]))
        ['wandb', 'tensorboard']
    """
    names = ["tensorboard"] if cfg.backends is None else list(cfg.backends)
    if not cfg.tensorboard:
        if cfg.backends is not None and "tensorboard" in names:
            raise AttncoachError("config key 'log.tensorboard' is false but log.backends lists tensorboard: drop one")
        names = [n for n in names if n != "tensorboard"]
    return names


def check_backends(cfg: LogConfig) -> None:
    """Refuse an unknown or repeated backend name (config time), naming the choices."""
    names = chosen_backends(cfg)
    for name in names:
        if name not in LOGGERS:
            raise AttncoachError(f"config key 'log.backends' must list some of {', '.join(LOGGERS)}, got {name!r}")
        if names.count(name) > 1:
            raise AttncoachError(f"config key 'log.backends' lists {name} twice")


def check_installed(cfg: LogConfig) -> None:
    """Refuse a backend whose library is not installed, with the pip line (before training starts)."""
    for name in chosen_backends(cfg):
        backend = LOGGERS[name]
        if backend.module is not None and importlib.util.find_spec(backend.module) is None:
            raise AttncoachError(
                f"log.backends: {name} needs the {backend.module} package: pip install 'attncoach[{backend.extra}]'"
            )


class LoggerCallback(Callback):
    """The recipe's view of the trackers: scalars as they come, the summary and figures at the end.

    A backend whose call raises is closed and dropped with one warning; the run goes on.
    :meth:`log_figure` is the hook for figures from elsewhere (attention heatmaps).
    """

    def __init__(self, backends: list[Logger]):
        self.backends = backends

    def on_log(self, recipe: Any, step: int, group: str, values: dict[str, float]) -> None:
        tagged = {f"{group}/{name}": float(value) for name, value in values.items()}
        self._each("log_scalars", step, tagged)

    def on_finish(self, recipe: Any, metrics: dict[str, Any]) -> None:
        """The hparams summary and the end-of-run figures (:func:`attncoach.train.figures.run_figures`)."""
        from attncoach.train.figures import run_figures

        self._each("log_summary", flat_params(recipe.cfg), final_metrics(metrics))
        for tag, figure in run_figures(recipe, metrics).items():
            self.log_figure(tag, figure, metrics["steps"])

    def log_figure(self, tag: str, figure: Any, step: int) -> None:
        """Send a figure (a matplotlib Figure, or an ``(H, W, 3)`` uint8 array) to every backend."""
        from attncoach.train.figures import to_rgb

        self._each("log_image", tag, to_rgb(figure), step)

    def close(self) -> None:
        for backend in self.backends:
            self._call(backend, "close")
        self.backends = []

    def _each(self, method: str, *args: Any) -> None:
        for backend in list(self.backends):
            if not self._call(backend, method, *args):
                self.backends.remove(backend)
                self._call(backend, "close")

    @staticmethod
    def _call(backend: Logger, method: str, *args: Any) -> bool:
        try:
            getattr(backend, method)(*args)
            return True
        except Exception as exc:  # a tracker never ends the run it watches
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if method != "close":
                log.warning("logger %s failed (%s): it is dropped, training goes on", backend.name, first)
            return False


def make_loggers(cfg: LogConfig, run: RunDir, is_main: bool = True) -> LoggerCallback | None:
    """Start the backends that ``log`` turns on; None when there are none or this is not the main process.

    This is the one place that decides who logs: only the main process (rank 0 of a
    distributed run; today every run has one process). A resumed run goes on with the
    trackers' runs named in ``RUN/loggers.json``; a backend that cannot start is dropped
    with a warning.
    """
    names = chosen_backends(cfg)
    if not names or not is_main:
        return None
    ids = _read_ids(run)
    backends = []
    for name in names:
        try:
            backends.append(LOGGERS[name](run, cfg, ids.get(name)))
        except Exception as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.warning("logger %s could not start (%s): the run goes on without it", name, first)
    ids.update({b.name: b.run_id for b in backends if b.run_id is not None})
    if ids:
        atomic_write_json(_ids_path(run), ids)
    return LoggerCallback(backends) if backends else None


def _ids_path(run: RunDir) -> Any:
    return run.path / "loggers.json"


def _read_ids(run: RunDir) -> dict[str, str]:
    try:
        ids = json.loads(_ids_path(run).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in ids.items() if isinstance(v, str)} if isinstance(ids, dict) else {}


def flat_params(cfg: RunConfig) -> dict[str, Param]:
    """The resolved config as ``section.key`` params: numbers, strings and booleans (lists as JSON, null as "null").

    Example:
        >>> flat_params(RunConfig())["train.batch_size"], flat_params(RunConfig())["train.betas"]
        (32, '[0.9, 0.98]')
    """
    out: dict[str, Param] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}{key}.", inner)
        elif isinstance(value, (bool, int, float, str)):
            out[prefix[:-1]] = value
        else:
            out[prefix[:-1]] = json.dumps(value)

    walk("", to_dict(cfg))
    return out


def final_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The numbers of ``metrics.json`` a tracker's summary shows: every val and test metric, the steps.

    Example:
        >>> final_metrics({"val": {"macro_f1": 0.5, "per_class": {}}, "test": {"macro_f1": 0.4}, "steps": 30})
        {'val/macro_f1': 0.5, 'test/macro_f1': 0.4, 'steps': 30.0}
    """
    out = {
        f"{split}/{k}": float(v)
        for split in ("val", "test")
        for k, v in metrics.get(split, {}).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    for key in ("steps", "best_step", "train_seconds"):
        if key in metrics:
            out[key] = float(metrics[key])
    return out
