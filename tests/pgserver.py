"""A throwaway PostgreSQL server on loopback for the tests that need one (``attncoach tune --storage postgresql://``).

The server binaries come from the machine: Debian's ``postgresql`` package, which ``.ci/run``
installs when ``pg_ctl`` is missing. The cluster lives in a temporary directory, listens on
127.0.0.1 at a free port with trust authentication, and is stopped (and its directory removed)
when the test is done. ``initdb`` refuses to run as root, so as root the server runs as the
``postgres`` user the package creates.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


def server_binaries() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or None when PostgreSQL is not installed."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)  # Debian's, newest first
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for folder in candidates:
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def postgres_server(database: str = "studies") -> Iterator[str]:
    """Start a server, create ``database``, yield its SQLAlchemy URL; stop the server afterwards.

    Raises:
        RuntimeError: PostgreSQL is not installed, or the server did not start (with its log).
    """
    binaries = server_binaries()
    if binaries is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql; .ci/run does it)")
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    root = Path(tempfile.mkdtemp(prefix="attncoach-pg-"))
    root.chmod(0o777)  # the postgres user writes the cluster, the socket and the log here
    data, log = root / "data", root / "server.log"
    port = _free_port()
    try:
        subprocess.run(
            [*prefix, str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
        )
        options = f"-h 127.0.0.1 -p {port} -k {root}"
        started = subprocess.run(
            [*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "start"],
            capture_output=True,
            text=True,
        )
        if started.returncode != 0:
            raise RuntimeError(f"PostgreSQL did not start: {started.stderr} {log.read_text() if log.exists() else ''}")
        try:
            subprocess.run(
                [str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", database],
                check=True,
                capture_output=True,
            )
            yield f"postgresql://postgres@127.0.0.1:{port}/{database}"
        finally:
            subprocess.run(
                [*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
