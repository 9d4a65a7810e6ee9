"""The JSON bodies of the server's endpoints, as pydantic models: FastAPI validates requests and
writes ``/openapi.json`` from them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class PredictRequest(BaseModel):
    """``POST /v1/predict``: texts for a text classifier; users or histories for a next-item model."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {"texts": ["my card was charged twice"]},
                {"texts": ["the flight was late again", "thanks, great service"], "budget_ms": 5},
                {"texts": ["where is my refund"], "subnet": "w0.5-d0.5"},
                {"users": ["196"], "k": 5},
                {"histories": [["242", "302", "377"]], "k": 10},
            ]
        },
    )

    texts: list[str] | None = Field(None, description="texts to classify (text_classification)")
    users: list[str] | None = Field(None, description="users the model knows (next_item)")
    histories: list[list[str]] | None = Field(None, description="item histories, oldest first (next_item)")
    k: int | None = Field(None, ge=1, description="items per user or history (next_item; default 10)")
    budget_ms: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="milliseconds of model time for the batch: the largest sub-net measured within it answers",
    )
    subnet: str | None = Field(None, min_length=1, description="the sub-net to answer with, by name (GET /v1/model)")


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
