"""The server's Prometheus metrics (``GET /metrics``), in a registry of their own per app.

| metric | type | labels |
|---|---|---|
| ``attncoach_requests_total`` | counter | ``route``, ``status`` |
| ``attncoach_request_seconds`` | histogram | ``route`` |
| ``attncoach_batch_rows`` | histogram: rows per model run | |
| ``attncoach_member_requests_total`` | counter: requests answered by each sub-net | ``member`` |
| ``attncoach_budget_missed_total`` | counter: budgets no member met | |
| ``attncoach_queue_depth`` | gauge: requests waiting for the model | |
| ``attncoach_predict_in_flight`` | gauge: predict requests being answered | |

With several worker processes (``attncoach serve --workers N``) the parent sets
``PROMETHEUS_MULTIPROC_DIR`` to a private directory before the workers start: prometheus-client
then keeps every value in files there, and each worker's ``/metrics`` sums them over all workers
(counters and histograms over every worker that ran; the gauges over the workers alive now,
prometheus-client's ``livesum``). A worker removes its gauge files when it stops.
"""

from __future__ import annotations

import os

ROUTES = ("/v1/predict", "/v1/model", "/healthz", "/readyz", "/metrics", "/openapi.json", "/docs")
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServeMetrics:
    """The metrics of one app (a registry of its own, so that several apps in one process do not clash).

    Under ``PROMETHEUS_MULTIPROC_DIR`` (several workers) the exposition sums every worker's values.
    """

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        reg = self.registry
        self.requests = Counter(
            "attncoach_requests", "HTTP requests by route and status", ["route", "status"], registry=reg
        )
        self.seconds = Histogram(
            "attncoach_request_seconds", "HTTP request latency", ["route"], buckets=_SECONDS_BUCKETS, registry=reg
        )
        self.batch_rows = Histogram(
            "attncoach_batch_rows", "rows (texts, users, histories) per model run", buckets=_BATCH_BUCKETS, registry=reg
        )
        self.members = Counter(
            "attncoach_member_requests", "requests answered by each sub-net", ["member"], registry=reg
        )
        self.budget_missed = Counter("attncoach_budget_missed", "requests whose budget no sub-net met", registry=reg)
        # livesum: with several workers, the sum over the workers alive now (one worker: its value)
        self.queue_depth = Gauge(
            "attncoach_queue_depth", "requests waiting for the model", registry=reg, multiprocess_mode="livesum"
        )
        self.in_flight = Gauge(
            "attncoach_predict_in_flight", "predict requests being answered", registry=reg, multiprocess_mode="livesum"
        )

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        """Count one HTTP request (paths outside :data:`ROUTES` count as ``other``)."""
        route = path if path in ROUTES else "other"
        self.requests.labels(route, str(status)).inc()
        self.seconds.labels(route).observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        """The text format of every metric, and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        directory = multiprocess_directory()
        if directory is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client.multiprocess import MultiProcessCollector

        every_worker = CollectorRegistry()
        MultiProcessCollector(every_worker, path=directory)
        return generate_latest(every_worker), CONTENT_TYPE_LATEST

    def close(self) -> None:
        """This process stops serving: with several workers, its gauges leave the sums (their files go)."""
        if multiprocess_directory() is not None:
            from prometheus_client.multiprocess import mark_process_dead

            mark_process_dead(os.getpid(), multiprocess_directory())


def multiprocess_directory() -> str | None:
    """The directory prometheus-client keeps the workers' values in (``PROMETHEUS_MULTIPROC_DIR``), or None."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
