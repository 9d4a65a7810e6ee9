"""A throwaway Ray cluster for the tests of ``attncoach tune --backend ray --address``.

``ray start --head --block`` runs in its own process group with 2 CPUs, no dashboard and no usage
statistics, at a free port on loopback; the test connects with ``--address 127.0.0.1:PORT``. The
cluster is stopped by signalling that process group (the head and every process it started), never
with ``ray stop``, which would stop any other Ray on the machine too.

Ray 2.5x clusters authenticate with a token when one exists: :func:`ray_env` gives the head and
its clients the same throwaway token (``RAY_AUTH_MODE=token``, ``RAY_AUTH_TOKEN``), so nothing is
written to ``~/.ray``, and a ``PYTHONPATH`` that makes the workers import this attncoach.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import attncoach

SRC = Path(attncoach.__file__).resolve().parents[1]


def ray_env() -> dict[str, str]:
    """The environment of a Ray head, its workers and the drivers that connect to it."""
    return {
        "PYTHONPATH": os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p),
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def ray_head(env: dict[str, str], cpus: int = 2) -> Iterator[str]:
    """A Ray head on loopback for the ``with`` block; yields its address ``127.0.0.1:PORT``."""
    port = free_port()
    ray = Path(sys.executable).with_name("ray")
    argv = [str(ray), "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1"]
    argv += [f"--num-cpus={cpus}", "--include-dashboard=false", "--disable-usage-stats"]
    head = subprocess.Popen(
        argv,
        env={**os.environ, **env, "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"},  # SIGTERM: stop now, no 30 s drain
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: stopped as one below
    )
    try:
        _wait_for(port, head)
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()
        with contextlib.suppress(ProcessLookupError):  # a worker that outlived the head
            os.killpg(head.pid, signal.SIGKILL)


def _wait_for(port: int, head: subprocess.Popen, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"ray start --head exited with status {head.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"the Ray head did not listen on port {port} within {seconds:.0f} s")
