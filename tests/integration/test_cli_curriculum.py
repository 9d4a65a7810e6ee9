"""Curriculum schedulers, pruning and the learning record through the real CLI, on a tiny corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attncoach.cli import main
from tinydata import rewind_to_first_checkpoint, tiny_overrides, without_times


def _train(tiny_csv: Path, out: Path, *extra: str, steps: int = 60) -> dict:
    assert main(["train", "--quiet", *tiny_overrides(tiny_csv, out, steps), *extra]) == 0
    return json.loads((out / "metrics.json").read_text())


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("scheduler", ["uniform", "competence", "anti", "self_paced", "leitner"])
def test_each_scheduler_trains_and_keeps_a_learning_record(tiny_csv, tmp_path, scheduler):
    out = tmp_path / scheduler
    metrics = _train(tiny_csv, out, f"curriculum.scheduler={scheduler}", "curriculum.start=0.3")
    assert metrics["curriculum"]["scheduler"] == scheduler
    assert metrics["test"]["macro_f1"] > 0.5, "the tiny corpus is learnable whatever the order"
    rows = _rows(out)
    assert len(rows) == metrics["curriculum"]["training_examples"] > 0
    assert sum(r["seen"] for r in rows) == metrics["examples_seen"] > 0.8 * 60 * 16
    assert all(r["correct"] <= r["seen"] and r["forgetting"] <= r["seen"] for r in rows)
    if scheduler == "leitner":
        assert all("box" in r for r in rows) and any(r["box"] > 0 for r in rows)
    if scheduler == "self_paced":
        assert metrics["examples_scored"] > 0, "the current model's losses were measured"
    if scheduler in ("competence", "anti"):
        assert "rarity" in rows[0], "the difficulty score (the default scorer) is in the record"


def test_competence_curriculum_starts_with_short_examples(tiny_csv, tmp_path):
    out = tmp_path / "run"
    _train(
        tiny_csv, out, "curriculum.scheduler=competence", "curriculum.scorer=length", "curriculum.start=0.2", steps=2
    )  # round 0 only
    rows = _rows(out)
    for label in {r["label"] for r in rows}:
        lengths = sorted(r["length"] for r in rows if r["label"] == label)
        limit = lengths[int(0.2 * len(lengths)) - 1]
        assert all(r["length"] <= limit for r in rows if r["label"] == label and r["seen"]), label
    assert sum(r["seen"] for r in rows) == 32


@pytest.mark.parametrize("scheduler", ["competence", "self_paced", "leitner"])
def test_resume_continues_the_same_schedule(tiny_csv, tmp_path, scheduler):
    out = tmp_path / "run"
    extra = (
        f"curriculum.scheduler={scheduler}",
        "curriculum.start=0.3",
        "curriculum.scorer=el2n",
        "curriculum.probe_epochs=0.5",
        "train.checkpoint_every=20",
    )
    reference = _train(tiny_csv, out, *extra)
    record = (out / "examples.jsonl").read_text()
    rewind_to_first_checkpoint(out)
    assert main(["train", "--quiet", "--resume", str(out)]) == 0
    resumed = json.loads((out / "metrics.json").read_text())
    assert without_times(resumed) == without_times(reference)
    assert (out / "examples.jsonl").read_text() == record


def test_pruning_keeps_the_chosen_fraction_and_a_resume_reuses_the_scores(tiny_csv, tmp_path, capsys):
    out = tmp_path / "run"
    metrics = _train(
        tiny_csv,
        out,
        "curriculum.keep_fraction=0.5",
        "curriculum.prune_by=el2n",
        "curriculum.probe_epochs=1",
        "train.checkpoint_every=20",
    )
    full = len(json.loads((out / "difficulty.json").read_text())["scores"]["el2n"])
    difficulty = json.loads((out / "difficulty.json").read_text())
    kept = difficulty["kept"]
    assert len(kept) == metrics["curriculum"]["training_examples"] == round(0.5 * full)
    el2n = difficulty["scores"]["el2n"]
    assert min(el2n[i] for i in kept) >= max(el2n[i] for i in range(full) if i not in set(kept)), "the hardest kept"
    assert metrics["examples_scored"] >= full, "the probe's work is counted"
    assert len(_rows(out)) == len(kept)
    before = (out / "difficulty.json").read_bytes()
    rewind_to_first_checkpoint(out)
    capsys.readouterr()
    assert main(["train", "--resume", str(out)]) == 0
    assert "probe run" not in capsys.readouterr().err, "a resumed run reads difficulty.json, no new probe"
    assert (out / "difficulty.json").read_bytes() == before
    assert without_times(json.loads((out / "metrics.json").read_text())) == without_times(metrics)


def test_random_pruning_and_easiest_end(tiny_csv, tmp_path):
    out = tmp_path / "run"
    metrics = _train(
        tiny_csv, out, "curriculum.keep_fraction=0.6", "curriculum.prune_by=length", "curriculum.keep=easiest", steps=20
    )
    difficulty = json.loads((out / "difficulty.json").read_text())
    lengths, kept = difficulty["scores"]["length"], set(difficulty["kept"])
    assert max(lengths[i] for i in kept) <= min(lengths[i] for i in range(len(lengths)) if i not in kept)
    assert metrics["examples_scored"] == 0, "a static scorer needs no probe"


def test_curriculum_works_with_the_coach_and_elastic_training(tiny_csv, tmp_path):
    out = tmp_path / "run"
    metrics = _train(
        tiny_csv,
        out,
        "curriculum.scheduler=leitner",
        "coach.enabled=true",
        "elastic.enabled=true",
        "elastic.depths=[1.0]",
        steps=40,
    )
    assert sum(metrics["coach"]["decisions"].values()) >= 1 and "elastic" in metrics
    decisions = [json.loads(line) for line in (out / "coach.jsonl").read_text().splitlines()]
    undone = next(d["step"] for d in decisions if d["policy"] == "lr_probe" and d["knob"] == "rollback")
    # the LR probe's steps are undone by the coach and not recorded
    assert sum(r["seen"] for r in _rows(out)) == metrics["examples_seen"] - undone * 16


def test_examples_command_lists_hardest_suspect_and_unforgettable(tiny_csv, tmp_path, capsys):
    out = tmp_path / "run"
    _train(tiny_csv, out, steps=80)
    capsys.readouterr()
    assert main(["examples", str(out)]) == 0
    text = capsys.readouterr().out
    assert "learning record" in text and "forgotten at least once" in text
    for flag in ("--hardest", "--suspect", "--unforgettable"):
        assert main(["examples", str(out), flag, "3", "--json"]) == 0
        listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert len(listed) <= 3
        if flag == "--hardest":
            assert len(listed) == 3 and listed[0]["mean_loss"] >= listed[-1]["mean_loss"]
        if flag == "--unforgettable":
            assert listed and all(r["forgetting"] == 0 and r["learned"] for r in listed)
    assert main(["examples", str(out), "--hardest", "2"]) == 0
    assert "hardest" in capsys.readouterr().out


def test_examples_command_refuses_bad_input_with_one_line(tiny_csv, tmp_path, capsys):
    assert main(["examples", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.strip().startswith("error: run directory not found")
    out = tmp_path / "run"
    _train(tiny_csv, out, steps=10)
    assert main(["examples", str(out), "--suspect", "0"]) == 2
    (out / "examples.jsonl").write_text("garbage\n")
    assert main(["examples", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "not valid JSON" in err[-1]


@pytest.mark.parametrize(
    "override, words",
    [
        ("curriculum.scorer=difficultyness", ("curriculum.scorer", "el2n")),
        ("curriculum.scheduler=spaced", ("curriculum.scheduler", "leitner")),
        ("curriculum.pacing=cubic", ("curriculum.pacing", "sqrt")),
        ("curriculum.keep_fraction=0", ("curriculum.keep_fraction", "(0, 1]")),
        ("curriculum.keep_fraction=1.5", ("curriculum.keep_fraction",)),
        ("curriculum.keep=middle", ("curriculum.keep",)),
        ("curriculum.horizon=9", ("curriculum.horizon", "longer than the run")),
        ("curriculum.skip_hardest=0.5", ("curriculum.skip_hardest",)),
    ],
)
def test_bad_curriculum_config_is_one_line_and_leaves_nothing(tiny_csv, tmp_path, capsys, override, words):
    out = tmp_path / "out"
    args = [a for a in tiny_overrides(tiny_csv, out) if not a.startswith("train.max_steps")]
    assert main(["train", "--quiet", *args, "train.epochs=2", "curriculum.scheduler=competence", override]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and all(w in err[0] for w in words), err
    assert not out.exists()


def test_horizon_longer_than_a_max_steps_run_is_refused_before_anything_is_written(tiny_csv, tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        main(
            [
                "train",
                "--quiet",
                *tiny_overrides(tiny_csv, out, 10),
                "curriculum.scheduler=competence",
                "curriculum.horizon=5",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "curriculum.horizon" in err[0] and "longer than the run" in err[0]
    assert not out.exists()


def test_a_damaged_difficulty_file_stops_a_resume_with_one_line(tiny_csv, tmp_path, capsys):
    out = tmp_path / "run"
    _train(tiny_csv, out, "curriculum.scheduler=competence", "curriculum.scorer=length", "train.checkpoint_every=20")
    rewind_to_first_checkpoint(out)
    (out / "difficulty.json").write_text('{"scores": {"length": [1, 2]}}')
    capsys.readouterr()
    assert main(["train", "--quiet", "--resume", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "difficulty.json" in err[0]
    assert not (out / "metrics.json").exists()


def test_pruning_can_skip_the_very_hardest_first(tiny_csv, tmp_path):
    out = tmp_path / "run"
    _train(
        tiny_csv,
        out,
        "curriculum.keep_fraction=0.5",
        "curriculum.prune_by=length",
        "curriculum.skip_hardest=0.25",
        steps=10,
    )
    difficulty = json.loads((out / "difficulty.json").read_text())
    lengths, kept = difficulty["scores"]["length"], difficulty["kept"]
    ranked = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    skipped, expected = ranked[: round(0.25 * len(lengths))], ranked[round(0.25 * len(lengths)) :][: len(kept)]
    assert sorted(kept) == sorted(expected) and not set(kept) & set(skipped)


def test_a_checkpoint_from_before_the_curriculum_resumes_a_uniform_run(tiny_csv, tmp_path, capsys):
    import hashlib

    out = tmp_path / "run"
    reference = _train(tiny_csv, out, "train.checkpoint_every=20")
    rewind_to_first_checkpoint(out)
    first = sorted((out / "checkpoints").glob("step-*"))[0]
    state = json.loads((first / "state.json").read_text())
    del state["curriculum"]  # what older versions wrote
    (first / "state.json").write_text(json.dumps(state))
    manifest = json.loads((first / "manifest.json").read_text())
    data = (first / "state.json").read_bytes()
    manifest["state.json"] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (first / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main(["train", "--resume", str(out)]) == 0
    assert "predates the learning record" in capsys.readouterr().err
    resumed = json.loads((out / "metrics.json").read_text())
    assert resumed["test"] == reference["test"], "the uniform order does not depend on the missing state"
    resumed_from = int(first.name.split("-")[1])
    assert sum(r["seen"] for r in _rows(out)) == reference["examples_seen"] - resumed_from * 16
