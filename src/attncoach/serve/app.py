"""The HTTP API of ``attncoach serve``: a FastAPI app over a :class:`~attncoach.serve.served.ServedModel`.

| endpoint | what |
|---|---|
| ``POST /v1/predict`` | ``{"texts": [...]}`` -> labels and probabilities; ``{"users": [...]}`` or ``{"histories": [[...]]}`` (+ ``"k"``) -> top-k items; ``"budget_ms"`` or ``"subnet"`` choose the sub-net |
| ``GET /v1/model`` | task, labels or items, members with their measured latencies, versions, limits |
| ``GET /healthz`` | 200 while the process answers |
| ``GET /readyz`` | 200 once the model is loaded and warm, 503 before and while shutting down; ``worker``: the answering process |
| ``GET /metrics`` | Prometheus metrics (:mod:`attncoach.serve.metrics`) |
| ``GET /openapi.json`` | the schema (:mod:`attncoach.serve.schemas`) |

Every error is a JSON body ``{"error": "one line"}``: 400 a body that is not UTF-8, 401 no or a
wrong API key, 413 over a limit (body bytes, texts per request, characters per text), 422
malformed JSON, wrong types or values, 503 a full queue (with ``Retry-After``). A bad request
never reaches the model, and the next request is answered as usual.

Concurrent predict requests are gathered by a :class:`~attncoach.serve.batching.MicroBatcher`
and answered by :func:`~attncoach.serve.answer.answer_batch` in one inference thread.

Example:
    >>> app = create_app(load_served("runs/tweets"), ServeSettings(max_batch=64))  # doctest: +SKIP
    >>> uvicorn.run(app, host="127.0.0.1", port=8000)                             # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from attncoach.errors import AttncoachError
from attncoach.serve.answer import Answer, Ask, answer_batch
from attncoach.serve.batching import MicroBatcher, QueueFull, Stopped
from attncoach.serve.metrics import ServeMetrics
from attncoach.serve.schemas import ERRORS, Health, ModelDescription, PredictResponse, Readiness, predict_request_model
from attncoach.serve.served import SERVED_TASKS, ServedModel
from attncoach.serve.settings import ServeSettings

log = logging.getLogger("attncoach")

TASKS = SERVED_TASKS  # the tasks the server answers
# What each member answers before the server says ready: two lengths, so that the member measures the
# fixed cost of its forward passes (attncoach.models.passes) now rather than in a request.
WARM_UP_TEXTS = ("warm up", "warm up the model with a longer text")
_TOO_LONG = ("too_long", "string_too_long")  # pydantic error types of an input over a limit: 413


class RequestProblem(Exception):
    """A request the server refuses: the HTTP status, one line, and extra headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers


def create_app(served: ServedModel, settings: ServeSettings | None = None) -> Any:
    """The FastAPI app answering with ``served`` (see the module doc).

    The app's lifespan starts the micro-batcher, warms the model up and then reports ready;
    at shutdown it answers every request already queued before it ends.
    """
    from fastapi import FastAPI

    from attncoach import __version__

    settings = settings or ServeSettings()
    if served.task not in TASKS:
        raise AttncoachError(f"attncoach serve answers {' and '.join(TASKS)} models, not {served.task}")
    metrics = ServeMetrics()
    batcher = MicroBatcher(
        lambda asks: answer_batch(served, asks),
        max_batch=settings.max_batch,
        max_wait_ms=settings.max_wait_ms,
        queue_size=settings.queue,
        on_batch=metrics.batch_rows.observe,
        on_depth=metrics.queue_depth.set,  # a value, not a function: several workers' values are summed from files
    )
    status = {"ready": False, "reason": "loading"}

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        batcher.start()
        status["reason"] = "warming up"
        await _warm_up(batcher, served)
        status.update(ready=True, reason=None)
        yield
        status.update(ready=False, reason="shutting down")
        await batcher.stop()
        metrics.close()
        log.info("stopped: every accepted request was answered")

    app = FastAPI(
        title="attncoach serve",
        version=__version__,
        description="Predictions from a trained attncoach model; an elastic model answers each request with "
        "the largest sub-net that meets its latency budget.",
        lifespan=lifespan,
    )
    app.add_middleware(_Gate, metrics=metrics, api_key=settings.api_key, max_body_bytes=settings.max_body_bytes)
    _add_error_handlers(app)
    _add_routes(app, served, settings, metrics, batcher, status)
    return app


def _add_routes(
    app: Any,
    served: ServedModel,
    settings: ServeSettings,
    metrics: ServeMetrics,
    batcher: MicroBatcher,
    status: dict[str, Any],
) -> None:
    from fastapi import Response
    from fastapi.responses import JSONResponse

    names = [m.name for m in served.members]
    guarded = _security(settings.api_key is not None)

    async def predict(body: Any) -> Any:
        ask = checked_ask(body)
        metrics.in_flight.inc()
        try:
            answer = await batcher.submit(ask, len(ask.rows))
        except QueueFull as exc:
            raise RequestProblem(503, f"{exc}; retry later", {"Retry-After": str(settings.retry_after_s)}) from None
        except Stopped as exc:
            raise RequestProblem(503, str(exc), {"Retry-After": str(settings.retry_after_s)}) from None
        except AttncoachError as exc:
            raise RequestProblem(422, str(exc)) from None
        finally:
            metrics.in_flight.dec()
        metrics.members.labels(answer.choice.member).inc()
        if answer.choice.budget_met is False:
            metrics.budget_missed.inc()
        return JSONResponse(_response_body(ask, answer))

    # The body's model is made for this served model (its task, members, limits), so FastAPI
    # needs the class itself as the annotation, not the name this module's annotations hold.
    items = served.describe().get("items") if served.task == "next_item" else None
    request_model = predict_request_model(served.task, names, settings.max_texts, settings.max_text_chars, items)
    predict.__annotations__ = {"body": request_model, "return": Any}
    app.post(
        "/v1/predict",
        response_model=PredictResponse,
        response_model_exclude_none=True,
        responses=ERRORS,
        dependencies=guarded,
        summary="Predict labels for texts, or the next items for users or histories",
    )(predict)

    @app.get("/v1/model", response_model=ModelDescription, dependencies=guarded, summary="The model and its sub-nets")
    async def model() -> Any:
        return JSONResponse({**served.describe(), "serving": settings.shown()})

    @app.get("/healthz", response_model=Health, summary="Whether the process answers")
    async def healthz() -> Any:
        return {"status": "ok"}

    @app.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}}, summary="Ready to predict")
    async def readyz() -> Any:
        body = {**status, "worker": os.getpid()}
        return JSONResponse(body, status_code=200 if status["ready"] else 503)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Any:
        content, media_type = metrics.exposition()
        return Response(content, media_type=media_type)


def checked_ask(body: Any) -> Ask:
    """The validated body as an :class:`Ask`, or a :class:`RequestProblem` (422) for what its schema cannot say."""
    if hasattr(body, "texts"):
        return Ask("texts", body.texts, budget_ms=body.budget_ms, subnet=body.subnet)
    if (body.users is None) == (body.histories is None):
        raise RequestProblem(422, 'give either users or histories: {"users": ["..."]} or {"histories": [["..."]]}')
    kind = "users" if body.users is not None else "histories"
    return Ask(kind, getattr(body, kind), body.k, body.budget_ms, body.subnet)


def _response_body(ask: Ask, answer: Answer) -> dict[str, Any]:
    body: dict[str, Any] = {
        "member": answer.choice.member,
        "batch_size": answer.batch_size,
        "estimated_ms": round(answer.choice.estimated_ms, 4),
    }
    if ask.budget_ms is not None:
        body.update(budget_ms=ask.budget_ms, budget_met=answer.choice.budget_met)
    body["predictions" if ask.kind == "texts" else "recommendations"] = answer.rows
    return body


async def _warm_up(batcher: MicroBatcher, served: ServedModel) -> None:
    """Predictions through the whole path (tokenizer, batcher, thread) before the server says ready.

    Each member answers two texts of different lengths, so that it measures the cost of a forward pass
    (:func:`attncoach.models.passes.pass_overhead`) now rather than during a request. A next-item model
    has no input that is valid for every model; its load-time measurement warmed it.
    """
    if served.task == "text_classification":
        for member in served.members:
            await batcher.submit(Ask("texts", list(WARM_UP_TEXTS), subnet=member.name), len(WARM_UP_TEXTS))


def _security(required: bool) -> list[Any]:
    """The API key schemes, declared in the OpenAPI schema when a key is required (the gate checks them)."""
    if not required:
        return []
    from fastapi import Security
    from fastapi.security import APIKeyHeader, HTTPBearer

    return [Security(APIKeyHeader(name="X-API-Key", auto_error=False)), Security(HTTPBearer(auto_error=False))]


def _add_error_handlers(app: Any) -> None:
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    @app.exception_handler(RequestProblem)
    async def problem(request: Any, exc: RequestProblem) -> Any:
        return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Any, exc: RequestValidationError) -> Any:
        errors = list(exc.errors())
        over = [e for e in errors if e.get("type") in _TOO_LONG]
        return JSONResponse({"error": validation_line(over or errors)}, status_code=413 if over else 422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Any, exc: HTTPException) -> Any:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def internal(request: Any, exc: Exception) -> Any:
        log.exception("internal error answering %s %s", request.method, request.url.path)
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); see the server log"}, status_code=500)


def validation_line(errors: list[dict[str, Any]]) -> str:
    """One line for pydantic's validation errors of a request body (the first error, and how many more).

    Example:
        >>> validation_line([{"type": "string_type", "loc": ("body", "texts", 0), "msg": "Input should be a valid string"}])
        'texts[0]: Input should be a valid string'
        >>> validation_line([{"type": "too_long", "loc": ("body", "texts"), "msg": "...",
        ...                   "ctx": {"max_length": 4, "actual_length": 5}}])
        'texts: 5 in one request; the limit is 4'
    """
    if not errors:
        return "invalid request"
    first = errors[0]
    kind, ctx = first.get("type"), first.get("ctx") or {}
    loc = [part for part in first.get("loc", ()) if part != "body"]
    if kind == "json_invalid":
        return f"the body is not valid JSON: {ctx.get('error', 'JSON decode error')}"
    if not loc:
        return 'the body must be a JSON object, e.g. {"texts": ["..."]}'
    where = str(loc[0]) + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:])
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {_error_text(kind, ctx, first)}{more}"


def _error_text(kind: str | None, ctx: dict[str, Any], error: dict[str, Any]) -> str:
    """What is wrong with one value: our words for limits and empty values, else pydantic's."""
    if kind == "too_long":
        return f"{ctx.get('actual_length', 'too many')} in one request; the limit is {ctx.get('max_length')}"
    if kind == "string_too_long":
        value = error.get("input")
        size = f"{len(value)} characters" if isinstance(value, str) else "too"
        return f"{size} long; the limit is {ctx.get('max_length')} characters"
    empty = {
        "too_short": "empty: send at least one",
        "string_too_short": "empty",
        "string_pattern_mismatch": "empty (white space only)",
    }
    return empty.get(kind or "", error.get("msg", "invalid"))


class _Gate:
    """ASGI middleware before every route: counts requests for the metrics, checks the API key of
    ``/v1/*`` and the size and encoding of request bodies (before the body is parsed)."""

    def __init__(self, app: Any, metrics: ServeMetrics, api_key: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.api_key = None if api_key is None else api_key.encode("utf-8")
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_and_note(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self._guarded(scope, receive, send_and_note)
        finally:
            self.metrics.observe_request(scope["path"], status[0], time.perf_counter() - start)

    async def _guarded(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if self.api_key is not None and not self._authorized(headers):
            await _refuse(
                scope,
                send,
                401,
                "an API key is required: X-API-Key or Authorization: Bearer",
                {"WWW-Authenticate": "Bearer"},
            )
            return
        if scope["method"] == "POST":
            body = await self._body(headers, receive)
            if body is None:
                await _refuse(scope, send, 413, f"the request body is over the limit of {self.max_body_bytes} bytes")
                return
            try:
                body.decode("utf-8")
            except UnicodeDecodeError as exc:
                await _refuse(scope, send, 400, f"the request body is not UTF-8 (byte {exc.start}): send JSON in UTF-8")
                return
            receive = _replay(body, receive)
            # The body is JSON whatever its Content-Type says (curl -d sends a form's type).
            kept = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            scope = {**scope, "headers": [*kept, (b"content-type", b"application/json")]}
        await self.app(scope, receive, send)

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        """Whether X-API-Key or a Bearer token is the key (compared in constant time)."""
        given = [headers.get(b"x-api-key", b"")]
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        if scheme.lower() == b"bearer":
            given.append(token.strip())
        return any(hmac.compare_digest(value, self.api_key) for value in given)

    async def _body(self, headers: dict[bytes, bytes], receive: Callable) -> bytes | None:
        """The whole body, or None once it is over the limit (by its Content-Length, or as it arrives)."""
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            return None
        parts, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            parts.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(parts)


def _replay(body: bytes, receive: Callable) -> Callable:
    """An ASGI ``receive`` that gives ``body`` (already read) once, then what ``receive`` gives (a disconnect)."""
    sent = False

    async def replayed() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _refuse(
    scope: dict[str, Any], send: Callable, status: int, message: str, headers: dict[str, str] | None = None
) -> None:
    from starlette.responses import JSONResponse

    async def no_body() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    await JSONResponse({"error": message}, status_code=status, headers=headers)(scope, no_body, send)
