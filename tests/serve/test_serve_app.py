"""The HTTP API of attncoach serve, on a real uvicorn server (in a thread, on a free loopback port).

Real tiny models: an elastic text classifier (its sub-net grid is the family) and a next-item
model. A stand-in model whose predict waits for the test makes the queue, the gathering of
concurrent requests and the graceful shutdown deterministic.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from attncoach.cli import main  # noqa: E402
from attncoach.serve.app import WARM_UP_TEXTS, create_app  # noqa: E402
from attncoach.serve.budget import choose_member  # noqa: E402
from attncoach.serve.served import MemberInfo, load_served  # noqa: E402
from attncoach.serve.settings import ServeSettings  # noqa: E402
from liveserver import LiveServer, metric  # noqa: E402
from tinydata import make_interactions, tiny_next_item_overrides, tiny_overrides, write_corpus  # noqa: E402

KEY = "s3cret-key"
LIMITS = ServeSettings(api_key=KEY, max_texts=4, max_text_chars=60, max_body_bytes=2000, max_batch=8)


@pytest.fixture(scope="module")
def elastic_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("elastic")
    data = write_corpus(folder / "tiny.csv")
    out = folder / "run"
    keep = [a for a in tiny_overrides(data, out, 40) if not a.startswith(("model.layers", "model.heads"))]
    extra = ["model.layers=2", "model.heads=4", "elastic.enabled=true", "elastic.widths=[0.25, 0.5, 1.0]"]
    assert main(["train", "--quiet", *keep, *extra]) == 0
    return out


@pytest.fixture(scope="module")
def text_server(elastic_run):
    served = load_served(elastic_run, batch_sizes=(1, LIMITS.max_batch), repeats=2)
    with LiveServer(create_app(served, LIMITS)) as server:
        with httpx.Client(base_url=server.url, headers={"X-API-Key": KEY}, timeout=60) as client:
            yield client


@pytest.fixture(scope="module")
def next_item_client(tmp_path_factory):
    folder = tmp_path_factory.mktemp("next")
    inter = make_interactions(folder / "inter.tsv")
    assert main(["train", "--quiet", *tiny_next_item_overrides(inter, folder / "run", 30)]) == 0
    served = load_served(folder / "run", batch_sizes=(1, 4), repeats=2)
    with LiveServer(create_app(served, ServeSettings(max_batch=4))) as server:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            yield client


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and "\n" not in body["error"], body
    return body["error"]


# ---------------------------------------------------------------- text classification
def test_predict_texts(text_server):
    response = text_server.post("/v1/predict", json={"texts": ["love great thanks", "hate awful worst"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["member"] == "full" and body["batch_size"] >= 2 and body["estimated_ms"] > 0
    assert [p["label"] for p in body["predictions"]] == ["positive", "negative"]
    for prediction in body["predictions"]:
        assert set(prediction["probabilities"]) == {"negative", "neutral", "positive"}
        assert sum(prediction["probabilities"].values()) == pytest.approx(1, abs=1e-4)
    assert "budget_met" not in body  # no budget asked for


def test_probabilities_are_calibrated_by_the_model_s_temperature(text_server, elastic_run):
    import torch

    from attncoach.data.tokenizer import encode_texts
    from attncoach.models.saved import load_model, predict_logits

    calibration = json.loads((elastic_run / "model" / "calibration.json").read_text())
    assert text_server.get("/v1/model").json()["calibration"] == calibration
    texts = ["love great thanks", "meeting today office"]
    body = text_server.post("/v1/predict", json={"texts": texts, "subnet": "full"}).json()
    names = ("negative", "neutral", "positive")
    served = torch.tensor([[row["probabilities"][name] for name in names] for row in body["predictions"]])
    clf = load_model(elastic_run / "model")
    logits = predict_logits(clf.model, encode_texts(clf.tokenizer, texts, clf.max_length), 8, clf.device)
    calibrated = torch.softmax(logits / calibration["temperature"], -1)
    torch.testing.assert_close(served, calibrated, atol=1e-5, rtol=0)
    assert (served - torch.softmax(logits, -1)).abs().max() > 1e-3  # not the raw softmax


def test_health_ready_model_and_openapi(text_server):
    assert text_server.get("/healthz").json() == {"status": "ok"}
    assert text_server.get("/readyz").json()["ready"] is True
    model = text_server.get("/v1/model").json()
    assert model["task"] == "text_classification" and model["labels"] == ["negative", "neutral", "positive"]
    names = [m["name"] for m in model["members"]]
    assert names[0] == "full" and len(names) == len(set(names)) >= 4 and "w0.25-d0.5" in names
    params = [m["parameters"] for m in model["members"]]
    assert params == sorted(params, reverse=True)  # largest first
    for member in model["members"]:
        assert set(member["latency_ms"]) == {"1", "8"} and member["runtime"] == "torch"
    assert model["elastic"]["widths"] == [0.25, 0.5, 1.0] and model["model_format_version"] == 3
    assert model["serving"]["api_key"] is True and "s3cret" not in str(model)
    schema = text_server.get("/openapi.json").json()
    request = schema["components"]["schemas"]["TextsRequest"]
    assert set(request["properties"]) == {"texts", "budget_ms", "subnet"} and request["required"] == ["texts"]
    assert request["properties"]["texts"]["maxItems"] == 4  # the limits are part of the schema
    assert request["properties"]["texts"]["items"]["maxLength"] == 60
    assert names == request["properties"]["subnet"]["anyOf"][0]["enum"]
    assert {"401", "413", "422", "503"} <= set(schema["paths"]["/v1/predict"]["post"]["responses"])


def test_budget_chooses_the_largest_member_that_fits(text_server):
    members = [
        MemberInfo(m["name"], m["parameters"], {int(b): ms for b, ms in m["latency_ms"].items()}, m["runtime"])
        for m in text_server.get("/v1/model").json()["members"]
    ]

    def ask(**extra: Any) -> dict[str, Any]:
        response = text_server.post("/v1/predict", json={"texts": ["happy today"], **extra})
        assert response.status_code == 200, response.text
        return response.json()

    roomy = ask(budget_ms=1e6)
    assert (roomy["member"], roomy["budget_met"], roomy["budget_ms"]) == ("full", True, 1e6)
    tight = ask(budget_ms=1e-9)
    assert (tight["member"], tight["budget_met"]) == (members[-1].name, False)  # the smallest, saying so
    for member in members:  # a budget of exactly each member's latency: the rule of attncoach.serve.budget
        budget = member.latency_ms[1]
        body = ask(budget_ms=budget)
        expected = choose_member(members, body["batch_size"], budget_ms=budget)
        assert (body["member"], body["budget_met"]) == (expected.member, True)
    named = ask(subnet="w0.25-d0.5")
    assert named["member"] == "w0.25-d0.5" and "budget_met" not in named
    assert len(named["predictions"]) == 1
    named_over = ask(subnet="full", budget_ms=1e-9)  # a named member answers; the budget is only reported
    assert (named_over["member"], named_over["budget_met"]) == ("full", False)
    metrics = text_server.get("/metrics").text
    assert metric(metrics, "attncoach_member_requests_total", member="w0.25-d0.5") >= 1
    assert metric(metrics, "attncoach_budget_missed_total") >= 1


@pytest.mark.parametrize(
    "body, status, words",
    [
        ({"texts": ["a"] * 5}, 413, "texts: 5 in one request; the limit is 4"),
        ({"texts": ["x" * 61]}, 413, "texts[0]: 61 characters long; the limit is 60"),
        ({"texts": ["ok " * 700]}, 413, "over the limit of 2000 bytes"),
        ({"texts": []}, 422, "texts: empty: send at least one"),
        ({"texts": ["fine", "   "]}, 422, "texts[1]: empty (white space only)"),
        ({"texts": "one text"}, 422, "texts: Input should be a valid list"),
        ({"texts": [1, 2]}, 422, "texts[0]: Input should be a valid string"),
        ({"texts": ["a"], "budget_ms": -5}, 422, "budget_ms: Input should be greater than 0"),
        ({"texts": ["a"], "budget_ms": "fast"}, 422, "budget_ms: Input should be a valid number"),
        ({"texts": ["a"], "subnet": "w0.3"}, 422, "subnet: Input should be 'full', 'w0.5', "),
        ({"texts": ["a"], "budgetms": 3}, 422, "budgetms: Extra inputs are not permitted"),
        ({"texts": ["a"], "k": 3}, 422, "k: Extra inputs are not permitted"),
        ({"users": ["u1"]}, 422, "texts: Field required (and 1 more)"),
        ([1, 2], 422, "the body must be a JSON object"),
    ],
)
def test_bad_requests_get_a_json_error_and_the_next_request_is_answered(text_server, body, status, words):
    assert words in _error(text_server.post("/v1/predict", json=body), status)
    assert text_server.post("/v1/predict", json={"texts": ["fine"]}).status_code == 200


@pytest.mark.parametrize(
    "content, status, words",
    [
        (b'{"texts": ["unclosed"', 422, "the body is not valid JSON"),
        (b"", 422, "the body must be a JSON object"),
        (b'{"texts": ["caf\xe9"]}', 400, "the request body is not UTF-8 (byte 15)"),
        (b"\xff\xfe\x00garbage", 400, "not UTF-8"),
        (b'{"texts": ["a"], "budget_ms": NaN}', 422, "budget_ms"),
    ],
)
def test_malformed_bodies(text_server, content, status, words):
    response = text_server.post("/v1/predict", content=content, headers={"Content-Type": "application/json"})
    assert words in _error(response, status)
    assert text_server.post("/v1/predict", json={"texts": ["fine"]}).status_code == 200


def test_a_form_content_type_is_read_as_json(text_server):
    # curl -d '{"texts": [...]}' sends Content-Type application/x-www-form-urlencoded
    response = text_server.post(
        "/v1/predict", content=b'{"texts": ["thanks"]}', headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 200 and len(response.json()["predictions"]) == 1


def test_api_key(text_server):
    url = str(text_server.base_url)
    with httpx.Client(base_url=url, timeout=60) as anonymous:
        assert "API key" in _error(anonymous.post("/v1/predict", json={"texts": ["a"]}), 401)
        assert anonymous.post("/v1/predict", json={"texts": ["a"]}).headers["www-authenticate"] == "Bearer"
        _error(anonymous.get("/v1/model"), 401)
        _error(anonymous.post("/v1/predict", json={"texts": ["a"]}, headers={"X-API-Key": KEY + "x"}), 401)
        _error(
            anonymous.post("/v1/predict", content=b"{bad json", headers={"X-API-Key": "nope"}), 401
        )  # before parsing
        bearer = anonymous.post("/v1/predict", json={"texts": ["a"]}, headers={"Authorization": f"Bearer {KEY}"})
        assert bearer.status_code == 200
        assert anonymous.post("/v1/predict", json={"texts": ["a"]}, headers={"X-API-Key": KEY}).status_code == 200
        for open_path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):  # probes and scrapers need no key
            assert anonymous.get(open_path).status_code == 200, open_path


def test_metrics_count_requests_by_status(text_server):
    before = text_server.get("/metrics").text
    text_server.post("/v1/predict", json={"texts": ["a", "b", "c"]})
    text_server.post("/v1/predict", json={"texts": []})
    after = text_server.get("/metrics").text
    for status in ("200", "422"):
        counted = metric(after, "attncoach_requests_total", route="/v1/predict", status=status)
        assert counted == metric(before, "attncoach_requests_total", route="/v1/predict", status=status) + 1
    assert metric(after, "attncoach_batch_rows_count") > metric(before, "attncoach_batch_rows_count")
    assert metric(after, "attncoach_request_seconds_count", route="/v1/predict") >= 2
    assert metric(after, "attncoach_member_requests_total", member="full") >= 1
    assert metric(after, "attncoach_queue_depth") == 0


# ---------------------------------------------------------------- next_item
def test_next_item_users_and_histories(next_item_client):
    model = next_item_client.get("/v1/model").json()
    assert model["task"] == "next_item" and model["items"] == 30 and [m["name"] for m in model["members"]] == ["full"]
    users = next_item_client.post("/v1/predict", json={"users": ["u0", "u1"], "k": 3}).json()
    assert users["member"] == "full" and [len(items) for items in users["recommendations"]] == [3, 3]
    first = users["recommendations"][0]
    assert [x["score"] for x in first] == sorted((x["score"] for x in first), reverse=True)
    histories = next_item_client.post("/v1/predict", json={"histories": [["i3", "i4", "i5"]]}).json()
    assert len(histories["recommendations"][0]) == 10  # k defaults to 10
    assert not {"i3", "i4", "i5"} & {x["item"] for x in histories["recommendations"][0]}  # seen items left out
    budget = next_item_client.post("/v1/predict", json={"users": ["u0"], "budget_ms": 1e-9, "k": 1}).json()
    assert (budget["member"], budget["budget_met"]) == ("full", False)


@pytest.mark.parametrize(
    "body, status, words",
    [
        ({"users": ["nobody"]}, 422, "unknown user 'nobody'"),
        ({"histories": [["x1", "x2"]]}, 422, "none of the history's items is known"),
        ({"histories": [[]]}, 422, "histories[0]: empty: send at least one"),
        ({"users": ["u0"], "k": 31}, 422, "k: Input should be less than or equal to 30"),
        ({"users": ["u0"], "k": 0}, 422, "k: Input should be greater than or equal to 1"),
        ({"users": [5]}, 422, "users[0]: Input should be a valid string"),
        ({}, 422, "give either users or histories"),
        ({"texts": ["a"]}, 422, "texts: Extra inputs are not permitted"),
        ({"users": ["u0"], "histories": [["i1"]]}, 422, "give either users or histories"),
    ],
)
def test_next_item_bad_requests(next_item_client, body, status, words):
    assert words in _error(next_item_client.post("/v1/predict", json=body), status)
    assert next_item_client.post("/v1/predict", json={"users": ["u0"]}).status_code == 200


def test_one_bad_user_fails_alone_in_a_shared_batch(next_item_client):
    with ThreadPoolExecutor(4) as pool:
        bodies = [{"users": ["u1"]}, {"users": ["nobody"]}, {"users": ["u2"], "k": 2}, {"users": ["u3"]}]
        responses = list(pool.map(lambda b: next_item_client.post("/v1/predict", json=b), bodies))
    assert [r.status_code for r in responses] == [200, 422, 200, 200]
    assert len(responses[2].json()["recommendations"][0]) == 2


# ---------------------------------------------------------------- queue, batching, shutdown
class GatedModel:
    """A stand-in ServedModel whose predict waits until the test releases it; it echoes each text as its label."""

    task = "text_classification"
    members = [MemberInfo("full", 100, {1: 1.0, 8: 2.0}, "torch"), MemberInfo("small", 10, {1: 0.5, 8: 1.0}, "torch")]

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls: list[tuple[list[str], str]] = []
        self.warmed: list[str] = []

    def describe(self) -> dict[str, Any]:
        return {"task": self.task, "members": [m.name for m in self.members]}

    def predict(self, texts: list[str], member: str) -> list[dict[str, Any]]:
        if tuple(texts) == WARM_UP_TEXTS:
            self.warmed.append(member)
        else:
            self.calls.append((list(texts), member))
            self.entered.set()
            assert self.release.wait(60)
        return [{"label": text, "probabilities": {text: 1.0}} for text in texts]

    def recommend(self, *args: Any) -> Any:
        raise AssertionError("not a next_item model")


def _wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_full_queue_is_503_and_waiting_requests_share_one_batch():
    model = GatedModel()
    settings = ServeSettings(max_batch=8, max_wait_ms=0, queue=3, retry_after_s=2)
    with LiveServer(create_app(model, settings)) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        with ThreadPoolExecutor(4) as pool:
            first = pool.submit(client.post, "/v1/predict", json={"texts": ["first"]})
            assert model.entered.wait(30)  # the worker runs "first" and waits
            queued = []
            for depth, body in enumerate(
                ({"texts": ["a", "b"]}, {"texts": ["c"], "subnet": "small"}, {"texts": ["d"]}), 1
            ):
                queued.append(pool.submit(client.post, "/v1/predict", json=body))
                _wait_for(
                    lambda d=depth: metric(client.get("/metrics").text, "attncoach_queue_depth") == d, "the queue"
                )
            full = client.post("/v1/predict", json={"texts": ["one too many"]})
            assert "queue is full" in _error(full, 503) and full.headers["retry-after"] == "2"
            model.release.set()
            answers = [f.result().json() for f in (first, *queued)]
        assert [[p["label"] for p in a["predictions"]] for a in answers] == [["first"], ["a", "b"], ["c"], ["d"]]
        assert [a["batch_size"] for a in answers] == [1, 4, 4, 4]  # the three waiting requests: one batch
        assert [a["member"] for a in answers] == ["full", "full", "small", "full"]
        # one run per member within the batch, the rows of each request kept together
        assert model.calls[1:] == [(["a", "b", "d"], "full"), (["c"], "small")]
        assert model.warmed == ["full", "small"]  # every member answered before the server said ready
        assert client.post("/v1/predict", json={"texts": ["after"]}).status_code == 200


def test_graceful_shutdown_finishes_the_request_in_flight():
    model = GatedModel()
    server = LiveServer(create_app(model, ServeSettings(max_wait_ms=0)))
    with server, httpx.Client(base_url=server.url, timeout=60) as client:
        with ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(client.post, "/v1/predict", json={"texts": ["in flight"]})
            assert model.entered.wait(30)
            server.stop()  # what uvicorn does on SIGTERM / SIGINT
            time.sleep(0.2)  # give the server a moment to stop accepting; the request is still held
            assert not in_flight.done() and server.thread.is_alive()
            model.release.set()
            response = in_flight.result()
        assert response.status_code == 200 and response.json()["predictions"][0]["label"] == "in flight"
        server.thread.join(timeout=30)
        assert not server.thread.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/healthz", timeout=5)
