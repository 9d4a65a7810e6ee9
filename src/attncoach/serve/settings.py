"""What ``attncoach serve`` is set to: where it listens, its limits, its micro-batching and its API key."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from attncoach.errors import AttncoachError


@dataclass(frozen=True)
class ServeSettings:
    """Settings of the server (each is a flag of ``attncoach serve``: ``max_batch`` is ``--max-batch``).

    Attributes:
        host: the address to listen on (``127.0.0.1``: this machine only).
        port: the TCP port.
        api_key: when set, ``/v1/*`` needs it as ``X-API-Key`` or ``Authorization: Bearer``.
        max_batch: rows (texts, users or histories) gathered into one model run.
        max_wait_ms: how long a request waits for others to share its batch.
        queue: requests that may wait for the model; one more gets 503 with ``Retry-After``.
        max_texts: texts (or users, or histories) in one request; more is 413.
        max_text_chars: characters of one text; more is 413.
        max_body_bytes: bytes of one request body; more is 413.
        retry_after_s: the ``Retry-After`` of a 503.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = field(default=None, repr=False)
    max_batch: int = 32
    max_wait_ms: float = 5.0
    queue: int = 256
    max_texts: int = 256
    max_text_chars: int = 5000
    max_body_bytes: int = 1_000_000
    retry_after_s: int = 1

    def __post_init__(self) -> None:
        at_least = {"port": 0, "max_batch": 1, "queue": 1, "max_texts": 1, "max_text_chars": 1, "max_body_bytes": 1}
        for name, low in {**at_least, "retry_after_s": 1}.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise AttncoachError(f"--{_flag(name)} must be an integer of at least {low}, not {value!r}")
        if self.port > 65535:
            raise AttncoachError(f"--port must be at most 65535, not {self.port}")
        if not (
            isinstance(self.max_wait_ms, (int, float)) and math.isfinite(self.max_wait_ms) and self.max_wait_ms >= 0
        ):
            raise AttncoachError(f"--max-wait-ms must be a number of at least 0, not {self.max_wait_ms!r}")
        if self.api_key is not None and not self.api_key:
            raise AttncoachError("the API key is empty")

    def shown(self) -> dict[str, object]:
        """The settings without the API key (whether one is set instead), for logs and /v1/model."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "api_key"}
        return {**values, "api_key": self.api_key is not None}


def _flag(name: str) -> str:
    return name.replace("_", "-")
