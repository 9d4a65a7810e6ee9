"""Ship it: attncoach export --quantize int8 / --onnx / --family with parity, for both tasks, and bad input."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

import attncoach
from attncoach.cli import main
from attncoach.serve.family import load_family
from clicheck import digest, refused
from tinydata import make_interactions, tiny_next_item_overrides

onnx = pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="needs the onnx extra")


def _export(capsys, *argv: str) -> list[str]:
    capsys.readouterr()
    assert main(["export", *argv]) == 0, capsys.readouterr().err
    return capsys.readouterr().out.splitlines()


def test_int8_export_of_a_subnet_reports_parity_and_works_everywhere(run, tiny_csv, tmp_path, capsys):
    out = tmp_path / "int8"
    lines = _export(capsys, str(run), "--width", "0.5", "--depth", "0.5", "--quantize", "int8", "--out", str(out))
    assert lines[0].startswith("exported sub-net layers=0,3") and "as int8" in lines[0]
    assert lines[1].startswith("parity on the test split (24 examples)") and "int8 torch: max |Δ logits|" in lines[2]
    report = json.loads((out / "parity.json").read_text())
    [entry] = report["exported"]
    assert entry["runtime"] == "torch" and entry["quantization"] == "int8"
    assert entry["max_abs_diff"] < 0.05 and entry["label_agreement"] >= 0.9
    assert abs(entry["macro_f1"] - report["reference"]["macro_f1"]) <= 0.05
    assert json.loads((out / "model_config.json").read_text())["quantization"] == "int8"
    # the int8 sub-net is far smaller than the float32 full model's file
    assert (out / "model.safetensors").stat().st_size < 0.3 * (run / "model" / "model.safetensors").stat().st_size

    capsys.readouterr()
    assert main(["eval", str(out), "--data", str(tiny_csv), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 240
    assert main(["predict", str(out), "great thanks", "awful late"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert attncoach.load(out).quantization == "int8"


@onnx
def test_onnx_export_predicts_the_same_with_onnx_runtime(run, tmp_path, capsys):
    out = tmp_path / "onnx"
    lines = _export(capsys, str(run), "--onnx", "--out", str(out))
    assert lines[0].startswith("exported the full model: ") and "model.onnx" in lines[0]
    report = json.loads((out / "parity.json").read_text())
    by_runtime = {e["runtime"]: e for e in report["exported"]}
    assert by_runtime["onnx"]["max_abs_diff"] < 1e-4 and by_runtime["onnx"]["label_agreement"] == 1.0
    texts = ["great thanks for the flight", "awful late service", "meeting on tuesday"]
    answers = {}
    for runtime in ("torch", "onnx"):
        assert main(["predict", str(out), "--runtime", runtime, *texts]) == 0
        answers[runtime] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [a["label"] for a in answers["onnx"]] == [a["label"] for a in answers["torch"]]
    graph = attncoach.load(out, runtime="onnx")
    assert graph.runtime == "onnx" and graph.predict(texts[0])[0]["label"] == answers["torch"][0]["label"]
    refused(capsys, ["predict", str(out), "--runtime", "onnx", "--width", "0.5", "x"], "ONNX graph is one fixed")
    refused(capsys, ["predict", str(run), "--runtime", "onnx", "x"], "has no ONNX graph (model.onnx)")


@onnx
def test_eval_of_an_onnx_export_on_the_runs_test_split_matches_torch(run, tmp_path, capsys):
    out = tmp_path / "onnx"
    _export(capsys, str(run), "--onnx", "--out", str(out))
    metrics = {}
    for runtime, model in (("torch", []), ("onnx", ["--model", str(out)])):
        assert main(["eval", str(run), *model, "--runtime", runtime, "--json"]) == 0
        metrics[runtime] = json.loads(capsys.readouterr().out)
    assert metrics["onnx"]["n"] == metrics["torch"]["n"] > 0
    for name in ("accuracy", "macro_f1", "loss"):
        assert metrics["onnx"][name] == pytest.approx(metrics["torch"][name], abs=1e-5), name
    refused(
        capsys, ["eval", str(run), "--runtime", "onnx"], "has no ONNX graph", f"attncoach export {run / 'model'} --onnx"
    )
    refused(capsys, ["eval", str(out), "--model", str(out)], "--model evaluates a model on a run's test split")


@onnx
def test_next_item_exports_in_int8_and_onnx_with_top_k_parity(tmp_path, capsys):
    inter = make_interactions(tmp_path / "inter.tsv")
    assert main(["train", "--quiet", *tiny_next_item_overrides(inter, tmp_path / "run", 80)]) == 0
    out = tmp_path / "rec"
    lines = _export(capsys, str(tmp_path / "run"), "--quantize", "int8", "--onnx", "--out", str(out))
    assert "top-10 items overlap" in lines[2] and "ndcg@10" in lines[2]
    report = json.loads((out / "parity.json").read_text())
    assert report["compared"] == "scores" and [e["runtime"] for e in report["exported"]] == ["torch", "onnx"]
    for entry in report["exported"]:
        assert entry["quantization"] == "int8" and entry["top10_overlap"] >= 0.8
        assert abs(entry["ndcg@10"] - report["reference"]["ndcg@10"]) <= 0.05
    assert main(["recommend", str(out), "--user", "u0", "-k", "3"]) == 0
    assert len(json.loads(capsys.readouterr().out)["items"]) == 3
    for runtime in ("torch", "onnx"):
        rec = attncoach.load(out, runtime=runtime)
        assert len(rec.recommend(user="u0", k=5)) == 5 and rec.quantization == "int8"
    # float32 in ONNX Runtime recommends what torch does
    graph = tmp_path / "rec-onnx"
    _export(capsys, str(tmp_path / "run"), "--onnx", "--out", str(graph))
    answers = {}
    for runtime, where in (("torch", tmp_path / "run"), ("onnx", graph)):
        assert main(["recommend", str(where), "--runtime", runtime, "--user", "u0", "u1", "-k", "5"]) == 0
        answers[runtime] = [
            [i["item"] for i in json.loads(line)["items"]] for line in capsys.readouterr().out.splitlines()
        ]
    assert answers["onnx"] == answers["torch"] and len(answers["torch"]) == 2
    line = refused(
        capsys, ["recommend", str(tmp_path / "run"), "--runtime", "onnx", "--user", "u0"], "has no ONNX graph"
    )
    assert "attncoach export" in line and "--onnx" in line


def test_a_family_holds_measured_members_with_parity(run, tmp_path, capsys):
    out = tmp_path / "family"
    _export(
        capsys, str(run), "--family", "--widths", "1", "0.5", "--depths", "1", "0.5", "--quantize", "int8",
        "--out", str(out),
    )  # fmt: skip
    manifest = json.loads((out / "family.json").read_text())
    assert manifest["task"] == "text_classification" and manifest["quantization"] == "int8"
    names = [m["name"] for m in manifest["members"]]
    assert names[0] == "full" and sorted(names) == ["d0.5", "full", "w0.5", "w0.5-d0.5"]
    params = [m["parameters"] for m in manifest["members"]]
    assert params == sorted(params, reverse=True)
    for member in manifest["members"]:
        folder = out / member["path"]
        assert {"model.safetensors", "model_config.json", "tokenizer.json", "labels.json"} <= {
            p.name for p in folder.iterdir()
        }
        assert member["runtime"] == "int8" and set(member["latency_ms"]) == {"1", "32"}
        assert member["file_bytes"]["model.safetensors"] == (folder / "model.safetensors").stat().st_size
        assert member["parity"]["exported"][0]["label_agreement"] >= 0.8
    served = load_family(out)
    assert [m.name for m in served.members] == names and served.members[0].latency_ms[1] > 0
    assert served.predict(["great thanks"], "w0.5-d0.5")[0]["label"] in {"negative", "neutral", "positive"}


def test_a_family_of_a_bare_model_directory_skips_parity_and_says_why(run, tmp_path, capsys):
    bare = tmp_path / "bare"
    shutil.copytree(run / "model", bare)
    out = tmp_path / "family"
    lines = _export(capsys, str(bare), "--family", "--widths", "1", "--depths", "1", "0.5", "--out", str(out))
    assert (
        lines[-1]
        == f"parity skipped: {bare} is a bare model directory: there is no run, so no test split to compare on"
    )
    manifest = json.loads((out / "family.json").read_text())
    assert [m["runtime"] for m in manifest["members"]] == ["torch", "torch"]
    assert all(m["parity"] is None for m in manifest["members"]) and manifest["split"] is None
    lines = _export(capsys, str(bare), "--quantize", "int8", "--out", str(tmp_path / "int8"))
    assert lines[-1].startswith("parity skipped: ")
    assert json.loads((tmp_path / "int8" / "parity.json").read_text())["skipped"].endswith(
        "no test split to compare on"
    )


def test_bad_exports_are_one_line_and_write_nothing(run, tmp_path, capsys, monkeypatch):
    _export(capsys, str(run), "--quantize", "int8", "--out", str(tmp_path / "int8"))
    damaged = tmp_path / "damaged"
    shutil.copytree(run / "model", damaged)
    (damaged / "model_config.json").write_text("{not json")
    out = str(tmp_path / "new")
    before = digest(tmp_path)
    cases = [
        (["export", str(tmp_path / "int8"), "--quantize", "int8", "--out", out], "is already an int8 model"),
        (["export", str(run), "--quantize", "int4", "--out", out], "unknown quantization 'int4': choose int8"),
        (["export", str(run), "--widths", "0.5", "--out", out], "--widths and --depths choose the members of --family"),
        (["export", str(run), "--family", "--width", "0.5", "--out", out], "--family exports a grid of sub-nets"),
        (["export", str(run), "--family", "--widths", "1.5", "--out", out], "width 1.5 is outside (0, 1]"),
        (["export", str(run), "--out", out], "export needs a sub-net"),
        (["export", str(damaged), "--quantize", "int8", "--out", out], "is not valid JSON"),
        (["export", str(tmp_path), "--quantize", "int8", "--out", out], "is not a run or model directory"),
        (["predict", str(run), "--runtime", "tensorrt", "x"], "unknown runtime str 'tensorrt': choose torch or onnx"),
        (["predict", str(damaged), "x"], "is not valid JSON"),
    ]
    for argv, words in cases:
        refused(capsys, argv, words)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    line = refused(capsys, ["export", str(run), "--onnx", "--out", out], "pip install 'attncoach[onnx]'")
    assert "onnxruntime" in line
    assert digest(tmp_path) == before and not Path(out).exists()
