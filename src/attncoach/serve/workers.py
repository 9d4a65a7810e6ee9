"""Several server processes on one port: ``attncoach serve --workers N`` (N > 1).

The parent checks everything first (settings, API key, address, that the model loads), binds the
port, and hands it to uvicorn's process supervisor, which starts N workers: fresh interpreters
(spawned) that accept connections on that one socket. A worker reads what to serve from the
environment variable :data:`WORKER_ENV` (JSON written by the parent; it names the variable that
holds the API key, never the key itself), loads its own model with its own micro-batcher, and
runs torch on its share of the cores. ``/readyz`` answers for the worker that took the
connection (its process id in ``worker``); ``/metrics`` sums every worker (prometheus-client's
multiprocess mode in a private directory the parent creates and removes, see
:mod:`attncoach.serve.metrics`).

On SIGTERM or SIGINT the parent sends SIGTERM to every worker; each stops accepting, answers the
requests it has accepted, and exits; the parent returns once all of them are gone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from attncoach.errors import AttncoachError
from attncoach.serve.settings import ServeSettings

log = logging.getLogger("attncoach")

WORKER_ENV = "ATTNCOACH_SERVE_WORKER"  # the worker's plan, JSON (see WorkerPlan)
_STARTUP_FAILURE = 3  # uvicorn's exit status of a worker that could not start


@dataclass(frozen=True)
class WorkerPlan:
    """What every worker serves and how, passed from the parent as JSON in :data:`WORKER_ENV`.

    Attributes:
        path: the run, model or family directory.
        runtime: ``torch`` or ``onnx``.
        settings: the :class:`ServeSettings` fields but the API key.
        api_key_env: the environment variable holding the API key (None: no key).
        threads: torch threads of each worker.
        quiet: log warnings only.
    """

    path: str
    runtime: str
    settings: dict[str, Any]
    api_key_env: str | None
    threads: int
    quiet: bool = False

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_environment(cls) -> WorkerPlan:
        """The plan the parent left in :data:`WORKER_ENV`."""
        text = os.environ.get(WORKER_ENV)
        if not text:
            raise AttncoachError(f"{WORKER_ENV} is not set: workers are started by attncoach serve --workers N")
        return cls(**json.loads(text))

    def serve_settings(self) -> ServeSettings:
        """The settings, with the API key read from :attr:`api_key_env`."""
        key = None if self.api_key_env is None else os.environ.get(self.api_key_env) or None
        if self.api_key_env is not None and key is None:
            raise AttncoachError(f"the environment variable {self.api_key_env} is not set or empty")
        return ServeSettings(**self.settings, api_key=key)


def plan_settings(settings: ServeSettings) -> dict[str, Any]:
    """The fields of ``settings`` a plan carries (all but the API key)."""
    return {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings) if f.name != "api_key"}


def worker_threads(workers: int, cores: int | None = None) -> int:
    """Torch threads per worker by default: the cores this process may use, shared out, at least 1.

    Example:
        >>> worker_threads(2, cores=16)
        8
        >>> worker_threads(4, cores=2)
        1
    """
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // workers)


def run_workers(plan: WorkerPlan, workers: int) -> None:
    """Serve ``plan`` with ``workers`` processes on one port until SIGTERM or SIGINT (see the module doc).

    Raises:
        AttncoachError: the port cannot be bound, or a worker could not start (the log says why).
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    settings = plan.serve_settings()
    config = uvicorn.Config(
        f"{__name__}:worker_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level="warning" if plan.quiet else "info",
        access_log=False,
        timeout_graceful_shutdown=None,  # answer every accepted request, however long it takes
    )
    with _worker_environment(plan), _signal_handlers_restored():
        try:
            listening = config.bind_socket()
        except SystemExit:  # uvicorn exits this way when it cannot bind (it has logged why)
            raise AttncoachError(f"cannot listen on {settings.host}:{settings.port}") from None
        try:
            supervisor = Multiprocess(config, sockets=[listening])
            supervisor.run()
        finally:
            listening.close()
    failed = [process.pid for process in supervisor.processes if process.exitcode == _STARTUP_FAILURE]
    if failed:
        raise AttncoachError(f"{len(failed)} worker(s) could not start (the log above says why); the server stopped")


def worker_app() -> Any:
    """The app of one worker: uvicorn calls this factory in each worker process."""
    import torch

    from attncoach.serve.app import create_app
    from attncoach.serve.served import load_served

    plan = WorkerPlan.from_environment()
    _log_to_stderr(plan.quiet)
    torch.set_num_threads(plan.threads)
    settings = plan.serve_settings()
    served = load_served(plan.path, plan.runtime, batch_sizes=(1, settings.max_batch))
    log.info("worker %d: %s with %d torch thread(s)", os.getpid(), served.task, torch.get_num_threads())
    return create_app(served, settings)


@contextlib.contextmanager
def _worker_environment(plan: WorkerPlan) -> Iterator[str]:
    """The workers' environment: their plan, and a private metrics directory (removed after)."""
    directory = tempfile.mkdtemp(prefix="attncoach-metrics-")
    values = {WORKER_ENV: plan.to_json(), "PROMETHEUS_MULTIPROC_DIR": directory}
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield directory
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def _signal_handlers_restored() -> Iterator[None]:
    """uvicorn's supervisor takes over the signals it handles; give the previous handlers back after."""
    from uvicorn.supervisors.multiprocess import SIGNALS

    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)


def _log_to_stderr(quiet: bool) -> None:
    """A worker's attncoach log lines go to stderr, as the parent's do when not on a terminal."""
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(logging.WARNING if quiet else logging.INFO)
