"""Running the app with uvicorn until SIGTERM or SIGINT, then shutting down gracefully.

On the first SIGTERM or SIGINT the server stops accepting connections, answers every request it
has accepted (queued ones included), and returns; :func:`run_server` then returns normally, so
``attncoach serve`` exits with status 0. A second SIGINT forces uvicorn to exit at once.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import signal
import socket
import threading
from collections.abc import Iterator

from attncoach.errors import AttncoachError
from attncoach.serve.served import ServedModel
from attncoach.serve.settings import ServeSettings

log = logging.getLogger("attncoach")


def run_server(served: ServedModel, settings: ServeSettings, log_level: str = "info") -> None:
    """Serve ``served`` on ``settings.host:settings.port`` until SIGTERM or SIGINT.

    Raises:
        AttncoachError: the address cannot be listened on (in use, or not an address of this machine).
    """
    import uvicorn

    from attncoach.serve.app import create_app

    check_address(settings.host, settings.port)
    config = uvicorn.Config(
        create_app(served, settings),
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=None,  # answer every accepted request, however long it takes
    )
    server = uvicorn.Server(config)
    with _signals_end_quietly():
        try:
            server.run()
        except SystemExit:  # uvicorn exits this way when it cannot start (it has logged why)
            raise AttncoachError(f"the server could not start on {settings.host}:{settings.port}") from None


def check_address(host: str, port: int) -> None:
    """Refuse an address that cannot be listened on, with one line, before anything starts.

    Raises:
        AttncoachError: the port is in use, or the host is not an address of this machine.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise AttncoachError(f"--host {host}: not an address ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise AttncoachError(f"port {port} on {host} is in use: choose another with --port") from None
            raise AttncoachError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


@contextlib.contextmanager
def _signals_end_quietly() -> Iterator[None]:
    """While serving, SIGTERM and SIGINT do nothing outside uvicorn's own handlers.

    uvicorn handles both while it runs; after a graceful shutdown it raises the signal again for
    the handlers it found, which would end the process with 130 or 143 (see attncoach.cli).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda signum, frame: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
