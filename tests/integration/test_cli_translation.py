"""Task translation through the real CLI: train -> eval -> translate -> resume after kill -> subnets -> export."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import attncoach
from attncoach.cli import main
from tinydata import kill_once_checkpointed, make_parallel, tiny_translation_overrides, without_times


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    return make_parallel(tmp_path_factory.mktemp("parallel") / "pairs.tsv")


@pytest.fixture(scope="module")
def trained(pairs, tmp_path_factory) -> Path:
    """A tiny translation run that has learnt the word-for-word mapping."""
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main(["train", "--quiet", *tiny_translation_overrides(pairs, out, 500)]) == 0
    return out


@pytest.fixture(scope="module")
def supernet(pairs, tmp_path_factory) -> Path:
    """A short elastic run with the coach and the length curriculum: sub-nets of both stacks."""
    out = tmp_path_factory.mktemp("runs") / "elastic"
    elastic = ["elastic.enabled=true", "elastic.widths=[0.5,1.0]", "elastic.depths=[0.5,1.0]"]
    pillars = ["coach.enabled=true", "curriculum.scheduler=competence", "curriculum.scorer=length"]
    assert main(["train", "--quiet", *tiny_translation_overrides(pairs, out, 60), *elastic, *pillars]) == 0
    return out


def test_the_coach_and_the_length_curriculum_run_unchanged(supernet):
    metrics = json.loads((supernet / "metrics.json").read_text())
    assert metrics["curriculum"]["scheduler"] == "competence"
    assert {"bleu", "chrf"} <= set(metrics["elastic"]["test_smallest"])
    decisions = [json.loads(line) for line in (supernet / "coach.jsonl").read_text().splitlines()]
    assert decisions and all(d["reason"] for d in decisions)
    difficulty = json.loads((supernet / "difficulty.json").read_text())
    assert "length" in json.dumps(difficulty)


def _copy_bleu(pairs: Path) -> float:
    """BLEU of copying the source: the baseline a translation must beat."""
    from attncoach.tasks.translation_metrics import corpus_scores

    rows = [line.split("\t") for line in pairs.read_text(encoding="utf-8").splitlines()[1:]]
    return corpus_scores([s for s, _ in rows], [t for _, t in rows])["bleu"]


def test_train_eval_translate(trained, pairs, capsys):
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["task"] == "translation" and metrics["primary"] == "bleu"
    test = metrics["test"]
    assert {"bleu", "chrf", "bleu_beam", "chrf_beam", "bleu_signature", "loss", "token_accuracy"} <= set(test)
    assert "nrefs:1" in test["bleu_signature"]
    # a word-for-word mapping: far above copying the source
    assert test["bleu"] >= 60 > _copy_bleu(pairs) + 50, test
    model = trained / "model"
    names = {p.name for p in model.iterdir()}
    assert {"source_tokenizer.json", "target_tokenizer.json", "decoding.json", "model.safetensors"} <= names
    assert not (model / "calibration.json").exists()  # no class probabilities to calibrate
    assert (trained / "examples.jsonl").is_file()
    capsys.readouterr()

    assert main(["eval", str(trained), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["bleu"] == pytest.approx(test["bleu"])

    assert main(["translate", str(trained), "the cat sees the dog", "--beam", "1"]) == 0
    assert capsys.readouterr().out.strip() == "le chat voit le chien"
    translator = attncoach.load(trained)
    assert translator.translate(["the big fish"], beam=3) == ["le grand poisson"]


def test_translate_files_and_bad_input(trained, tmp_path, capsys):
    source = tmp_path / "in.txt"
    source.write_text("the red bird\nthe small house near the dog\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert main(["translate", str(trained), "--input", str(source), "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in rows] == ["the red bird", "the small house near the dog"]
    assert rows[0]["translation"] == "le rouge oiseau"
    run = str(trained)
    cases = [
        (["translate", run, "x", "--beam", "0"], "--beam must be at least 1"),
        (["translate", run], "give either sentences to translate or --input FILE"),
        (["translate", run, "--input", str(source), "--output", str(out)], "already exists"),
        (["predict", run, "some text"], "use attncoach translate"),
        (["translate", run, "x", "--width", "1.5"], "outside (0, 1]"),
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)


def test_a_long_source_is_cut_with_a_warning(trained, caplog):
    translator = attncoach.load(trained)
    long = " ".join(["the cat"] * 200)
    assert len(translator.translate(long, beam=1)) == 1
    assert "longer than the model's" in caplog.text


def test_subnets_and_export(supernet, tmp_path, capsys):
    run = str(supernet)
    assert main(["subnets", run, "--batch-sizes", "1", "--out", str(tmp_path / "subnets.json")]) == 0
    table = json.loads((tmp_path / "subnets.json").read_text())
    assert table["metrics"] == ["bleu", "chrf"] and len(table["rows"]) == 4
    assert all(0 <= row["bleu"] <= 100 for row in table["rows"])
    capsys.readouterr()
    assert main(["search", run, "--max-params", "1e9", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"] == ["bleu", "chrf"]

    out = tmp_path / "half"
    assert main(["export", run, "--width", "0.5", "--out", str(out)]) == 0
    capsys.readouterr()
    sentence = "the dog eats the small fish"
    assert main(["translate", str(out), sentence]) == 0
    exported = capsys.readouterr().out
    assert main(["translate", run, "--width", "0.5", sentence]) == 0
    assert capsys.readouterr().out == exported

    assert main(["export", run, "--quantize", "int8", "--out", str(tmp_path / "int8")]) == 0
    printed = capsys.readouterr().out
    assert "greedy translations identical" in printed and "bleu" in printed, printed
    report = json.loads((tmp_path / "int8" / "parity.json").read_text())
    assert report["metric"] == "bleu" and report["exported"][0]["quantization"] == "int8"
    assert main(["translate", str(tmp_path / "int8"), sentence]) == 0


def test_onnx_and_serving_are_refused_in_one_line(trained, tmp_path, capsys):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    run = str(trained)
    for argv, message in [
        (["export", run, "--onnx", "--out", str(tmp_path / "onnx")], "ONNX export knows the tasks"),
        (["serve", run, "--port", str(port)], "attncoach serve answers text_classification and next_item"),
    ]:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "onnx").exists()


def test_resume_after_kill_gives_the_same_metrics(pairs, tmp_path):
    steps = 120
    reference = tmp_path / "ref"
    assert main(["train", "--quiet", *tiny_translation_overrides(pairs, reference, steps)]) == 0
    out = tmp_path / "killed"
    args = [
        sys.executable,
        "-m",
        "attncoach",
        "train",
        "--quiet",
        *tiny_translation_overrides(pairs, out, steps),
        "train.checkpoint_every=7",
    ]
    kill_once_checkpointed(args, out, 30)
    assert not (out / "metrics.json").exists()
    assert main(["train", "--quiet", "--resume", str(out)]) == 0
    resumed = json.loads((out / "metrics.json").read_text())
    assert without_times(resumed) == without_times(json.loads((reference / "metrics.json").read_text()))


@pytest.mark.parametrize(
    "extra, message",
    [
        (["model.beam_size=0"], "model.beam_size"),
        (["model.encoder_layers=4"], "config key 'model.encoder_layers' must leave the decoder a layer"),
        (["data.subword=wordpiece"], "data.subword"),
        (["data.text_column=body"], "belongs to task masked_lm, text_classification"),
        (["robust.method=fgm"], "robust.method"),
    ],
)
def test_bad_settings_are_refused(pairs, tmp_path, capsys, extra, message):
    out = tmp_path / "run"
    assert main(["train", "--quiet", *tiny_translation_overrides(pairs, out, 5), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert not out.exists()


@pytest.mark.parametrize(
    "content, message",
    [
        ("source\ttarget\n\tle chat\nthe cat\t\n", "no usable sentence pairs"),
        ("", "has no rows"),
        ("source\tcible\nthe cat\tle chat\n", "no column 'target'"),
    ],
)
def test_bad_parallel_files(tmp_path, capsys, content, message):
    path = tmp_path / "bad.tsv"
    path.write_text(content, encoding="utf-8")
    out = tmp_path / "run"
    assert main(["train", "--quiet", *tiny_translation_overrides(path, out, 5)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert not out.exists()
