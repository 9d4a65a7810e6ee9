"""attncoach serve through the real CLI: a server process on a free loopback port, its graceful
shutdown on SIGTERM and SIGINT, and the setups it refuses with one line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from clicheck import refused  # noqa: E402
from liveserver import free_port, metric  # noqa: E402

KEY_VAR = "ATTNCOACH_TEST_SERVE_KEY"


def _start(run: Path, port: int, *extra: str, tmp: Path | None = None) -> subprocess.Popen:
    args = [sys.executable, "-m", "attncoach", "serve", str(run), "--port", str(port), "--threads", "1", *extra]
    env = {**os.environ, KEY_VAR: "k-123", **({"TMPDIR": str(tmp)} if tmp else {})}
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)


def _wait_ready(proc: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        try:
            if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("the server did not become ready")


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_serve_finishes_the_request_in_flight_and_exits_0(run, stop_signal):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # a long gathering window holds the request in flight while the signal arrives
    proc = _start(run, port, "--max-wait-ms", "1500", "--api-key-env", KEY_VAR)
    try:
        _wait_ready(proc, url)
        with httpx.Client(base_url=url, headers={"X-API-Key": "k-123"}, timeout=60) as client:
            assert client.get("/v1/model").json()["members"][0]["name"] == "full"
            with ThreadPoolExecutor(1) as pool:
                pending = pool.submit(client.post, "/v1/predict", json={"texts": ["love great thanks"]})
                deadline = time.monotonic() + 30
                while metric(client.get("/metrics").text, "attncoach_predict_in_flight") != 1:
                    assert time.monotonic() < deadline and not pending.done(), "the request never got in flight"
                    time.sleep(0.02)
                proc.send_signal(stop_signal)
                response = pending.result()
        assert response.status_code == 200, response.text
        assert response.json()["predictions"][0]["label"] in {"negative", "neutral", "positive"}
        assert proc.wait(timeout=60) == 0
        err = proc.stderr.read()
        assert "stopped: every accepted request was answered" in err and "Traceback" not in err, err
        with pytest.raises(httpx.ConnectError):
            httpx.get(url + "/healthz", timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _ready_workers(proc: subprocess.Popen, url: str, workers: int) -> tuple[set[int], int]:
    """The process ids of the ready workers, once ``workers`` of them answered /readyz (each on a new
    connection), and how many /readyz answers that took."""
    seen: set[int] = set()
    answers = 0
    deadline = time.monotonic() + 120
    while len(seen) < workers:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, f"only workers {seen} became ready"
        try:
            response = httpx.get(url + "/readyz", timeout=5)
        except httpx.TransportError:
            time.sleep(0.1)
            continue
        answers += 1
        if response.status_code == 200:
            seen.add(response.json()["worker"])
        else:
            time.sleep(0.05)
    return seen, answers


def test_serve_with_two_workers_shares_the_port_sums_metrics_and_stops_on_sigterm(run, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = _start(run, port, "--workers", "2", tmp=tmp)
    try:
        pids, readyz_answers = _ready_workers(proc, url, 2)

        def metric_dirs() -> list[Path]:
            return [p for p in tmp.iterdir() if p.name.startswith("attncoach-metrics-")]

        assert len(metric_dirs()) == 1  # the workers' metric files, in a directory of this server's
        sent = 24
        with ThreadPoolExecutor(4) as pool:  # a new connection per request: the workers share them out
            responses = list(
                pool.map(lambda i: httpx.post(url + "/v1/predict", json={"texts": [f"love {i}"]}), range(sent))
            )
        assert [r.status_code for r in responses] == [200] * sent
        text = httpx.get(url + "/metrics").text
        # counters are summed over both workers: every request counts once, whichever worker answered it
        assert metric(text, "attncoach_requests_total", route="/v1/predict", status="200") == sent
        assert metric(text, "attncoach_request_seconds_count", route="/v1/predict") == sent
        readyz = metric(text, "attncoach_requests_total", route="/readyz", status="200")
        readyz += metric(text, "attncoach_requests_total", route="/readyz", status="503")
        assert readyz == readyz_answers  # answered by both workers (two process ids seen)
        assert metric(text, "attncoach_member_requests_total", member="full") == sent
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        err = proc.stderr.read()
        assert err.count("stopped: every accepted request was answered") == 2 and "Traceback" not in err, err
        assert metric_dirs() == []  # removed
        for pid in pids:  # every worker is gone
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_refuses_bad_setups_with_one_line(run, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(KEY_VAR, raising=False)
    serve = ["serve", str(run), "--port", str(free_port())]
    refused(capsys, [*serve, "--workers", "0"], "--workers must be at least 1, not 0", one_line=True)
    refused(capsys, [*serve, "--workers", "2", "--threads", "0"], "--threads must be at least 1")
    refused(capsys, [*serve, "--api-key-env", KEY_VAR], f"the environment variable {KEY_VAR} is not set or empty")
    refused(capsys, [*serve, "--max-batch", "0"], "--max-batch must be an integer of at least 1")
    refused(capsys, [*serve, "--max-wait-ms", "-1"], "--max-wait-ms must be a number of at least 0")
    refused(capsys, [*serve, "--runtime", "onnx"], "--runtime onnx serves an exported ONNX family")
    refused(capsys, ["serve", str(tmp_path / "nowhere")], "not found")
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "model_config.json").write_text("{nope")
    for name in ("model.safetensors", "tokenizer.json", "labels.json"):
        (damaged / name).write_text("")
    refused(capsys, ["serve", str(damaged), "--port", str(free_port())], "model_config.json is not valid JSON")
    # with workers, the parent loads the model first: the same line, before any worker starts
    workers = ["serve", str(damaged), "--port", str(free_port()), "--workers", "2"]
    refused(capsys, workers, "model_config.json is not valid JSON")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        refused(capsys, ["serve", str(run), "--port", str(port)], f"port {port} on 127.0.0.1 is in use", one_line=True)


def test_serve_without_the_extra_says_what_to_install(run, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fastapi" else real(name, *a))
    refused(capsys, ["serve", str(run)], "attncoach serve needs fastapi: pip install 'attncoach[serve]'", one_line=True)
