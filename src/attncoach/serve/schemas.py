"""The JSON bodies of the server's endpoints, as pydantic models: FastAPI validates requests and
writes ``/openapi.json`` from them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model

_EXAMPLES = {
    "text_classification": [
        {"texts": ["my card was charged twice"]},
        {"texts": ["the flight was late again", "thanks, great service"], "budget_ms": 5},
    ],
    "next_item": [{"users": ["196"], "k": 5}, {"histories": [["242", "302", "377"]], "k": 10}],
}


def predict_request_model(
    task: str, members: Sequence[str], max_rows: int, max_chars: int, items: int | None = None
) -> type[BaseModel]:
    """The body of ``POST /v1/predict`` for one served model: its task's fields, its members, its limits.

    A text classifier takes ``texts``; a next-item model ``users`` or ``histories`` and ``k``. Both
    take ``budget_ms`` or ``subnet`` (one of ``members``). Unknown fields and wrong types are
    refused (strict), and the limits are part of the schema: at most ``max_rows`` rows of at most
    ``max_chars`` characters, each with something besides white space.
    """
    text = Annotated[str, StringConstraints(min_length=1, max_length=max_chars, pattern=r"\S")]

    def rows(item: Any, what: str) -> Any:
        return Annotated[list[item], Field(min_length=1, max_length=max_rows, description=what)]

    fields: dict[str, Any] = {
        "budget_ms": (
            float | None,
            Field(
                None,
                gt=0,
                allow_inf_nan=False,
                description="milliseconds of model time for the batch: the largest sub-net measured within it answers",
            ),
        ),
        "subnet": (
            Literal[tuple(members)] | None,
            Field(None, description="the sub-net to answer with (GET /v1/model); with budget_ms, says if it meets it"),
        ),
    }
    if task == "text_classification":
        fields["texts"] = (rows(text, "texts to classify"), ...)
    else:
        history = Annotated[list[text], Field(min_length=1)]
        fields["users"] = (rows(text, "users the model knows") | None, None)
        fields["histories"] = (rows(history, "item histories, oldest first") | None, None)
        top = 10 if items is None else min(10, items)
        fields["k"] = (int, Field(top, ge=1, le=items, description=f"items per user or history (default {top})"))
    config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": _EXAMPLES.get(task, [])})
    name = "TextsRequest" if task == "text_classification" else "RecommendRequest"
    return create_model(name, __config__=config, __doc__=f"POST /v1/predict for a {task} model.", **fields)


class LabelPrediction(BaseModel):
    """The predicted label of one text and the probability of every label."""

    label: str
    probabilities: dict[str, float]


class ItemScore(BaseModel):
    """A recommended item and its score (higher is more likely next)."""

    item: str
    score: float


class PredictResponse(BaseModel):
    """The answer: one row per text, user or history, and the sub-net that gave it."""

    member: str = Field(description="the sub-net that answered")
    batch_size: int = Field(description="rows in the model run this request was part of")
    estimated_ms: float = Field(description="the member's measured latency at that batch size, milliseconds")
    budget_ms: float | None = Field(None, description="the budget asked for")
    budget_met: bool | None = Field(None, description="whether a member met the budget (false: the smallest answered)")
    predictions: list[LabelPrediction] | None = Field(None, description="text_classification: one per text")
    recommendations: list[list[ItemScore]] | None = Field(
        None, description="next_item: the top-k items per user or history, best first"
    )


class ErrorBody(BaseModel):
    """Every error: one line saying what is wrong."""

    error: str


class Health(BaseModel):
    """``GET /healthz``: the process answers."""

    status: str = "ok"


class Readiness(BaseModel):
    """``GET /readyz``: whether the model is loaded and warm (503 while not)."""

    ready: bool
    reason: str | None = None
    worker: int | None = None  # the process id of the worker that answered (attncoach serve --workers N)


class ModelDescription(BaseModel):
    """``GET /v1/model``: task, labels or items, members with their measured latencies, versions."""

    model_config = ConfigDict(extra="allow")

    task: str
    members: list[dict[str, Any]]


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (400, "a body that is not UTF-8"),
        (401, "no API key or a wrong one"),
        (413, "over a limit: body size, texts per request, or text length"),
        (422, "malformed JSON, wrong types, empty texts, an unknown sub-net, a bad budget"),
        (503, "the queue is full (see Retry-After) or the server is shutting down"),
    )
}
