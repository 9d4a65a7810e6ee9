"""A run's integrity: its data source is fingerprinted, a damaged checkpoint falls back, files get the umask's mode."""

from __future__ import annotations

import hashlib
import json
import os
import random
import stat
from pathlib import Path

import pytest

from attncoach.cli import main
from clicheck import digest, refused
from tinydata import tiny_overrides, without_times


def _train(data: Path, out: Path, steps: int = 20) -> dict:
    assert main(["train", "--quiet", *tiny_overrides(data, out, steps), "model.layers=2"]) == 0
    return json.loads((out / "metrics.json").read_text())


def _shuffle_rows(path: Path) -> None:
    header, *rows = path.read_bytes().splitlines(keepends=True)
    random.Random(1).shuffle(rows)
    path.write_bytes(header + b"".join(rows))


def test_a_run_records_the_fingerprint_of_its_data(tiny_csv, tmp_path):
    out = tmp_path / "run"
    _train(tiny_csv, out)
    recorded = json.loads((out / "sources.json").read_text())
    assert recorded == {
        "format": "attncoach.sources",
        "files": [
            {
                "path": str(tiny_csv.resolve()),
                "bytes": tiny_csv.stat().st_size,
                "sha256": hashlib.sha256(tiny_csv.read_bytes()).hexdigest(),
            }
        ],
    }


def test_a_changed_source_is_refused_by_eval_subnets_search_and_resume(tiny_csv, tmp_path, capsys):
    out = tmp_path / "run"
    _train(tiny_csv, out)
    original = tiny_csv.read_bytes()
    (out / "metrics.json").unlink()  # interrupted, for --resume
    before = digest(out)

    _shuffle_rows(tiny_csv)  # same rows, same size, other order: other splits
    assert tiny_csv.stat().st_size == len(original)
    capsys.readouterr()
    line = refused(
        capsys,
        ["eval", str(out)],
        *(str(tiny_csv), "has changed since run", "SHA-256", "eval RUN --data FILE"),
        one_line=True,
    )
    assert f"same {len(original):,} bytes" in line
    refused(capsys, ["subnets", str(out)], str(tiny_csv), "has changed", one_line=True)
    refused(capsys, ["search", str(out), "--max-params", "1e9"], str(tiny_csv), "has changed", one_line=True)
    refused(
        capsys,
        ["train", "--quiet", "--resume", str(out)],
        str(tiny_csv),
        "has changed",
        "start a new run",
        one_line=True,
    )

    tiny_csv.write_bytes(original + b"one more row love great,positive\r\n")
    refused(capsys, ["eval", str(out)], f"{len(original):,} -> {len(original) + 34:,} bytes", one_line=True)
    assert digest(out) == before, "a refused command must leave the run as it was"

    assert main(["eval", str(out), "--data", str(tiny_csv), "--json"]) == 0  # another file: scored, not refused
    assert json.loads(capsys.readouterr().out)["n"] == 241

    tiny_csv.write_bytes(original)  # put back: everything works again
    assert main(["train", "--quiet", "--resume", str(out)]) == 0
    assert main(["eval", str(out), "--json"]) == 0


def test_a_run_without_fingerprints_still_evaluates_and_resumes_with_a_warning(tiny_csv, tmp_path, capsys):
    out = tmp_path / "run"
    metrics = _train(tiny_csv, out)
    (out / "sources.json").unlink()  # as a run written before sources.json existed
    capsys.readouterr()
    assert main(["eval", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["macro_f1"] == pytest.approx(metrics["test"]["macro_f1"])
    assert "records no fingerprint" in captured.err
    (out / "metrics.json").unlink()
    assert main(["train", "--quiet", "--resume", str(out)]) == 0
    assert "records no fingerprint" in capsys.readouterr().err
    assert not (out / "sources.json").exists()  # never invented from today's file


def test_a_damaged_latest_checkpoint_falls_back_to_the_older_one(tiny_csv, tmp_path, capsys):
    out = tmp_path / "run"
    reference = _train(tiny_csv, out)  # checkpoints at steps 10 and 20
    assert sorted(p.name for p in (out / "checkpoints").glob("step-*")) == ["step-00000010", "step-00000020"]
    (out / "metrics.json").unlink()
    weights = out / "checkpoints/step-00000020/model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\x00" * 8)
    capsys.readouterr()
    assert main(["train", "--quiet", "--resume", str(out)]) == 0
    err = capsys.readouterr().err
    assert "step-00000020" in err and "corrupted" in err and "older checkpoint step-00000010" in err, err
    resumed = json.loads((out / "metrics.json").read_text())
    assert without_times(resumed) == without_times(reference)  # replayed from step 10: the same run


def test_every_checkpoint_damaged_is_one_line_and_exit_2(tiny_csv, tmp_path, capsys):
    out = tmp_path / "run"
    _train(tiny_csv, out)
    (out / "metrics.json").unlink()
    for step in ("step-00000010", "step-00000020"):
        state = out / "checkpoints" / step / "state.json"
        state.write_bytes(state.read_bytes()[:10])
    before = digest(out)
    refused(
        capsys,
        ["train", "--quiet", "--resume", str(out)],
        "no checkpoint of",
        "step-00000010",
        "step-00000020",
        one_line=True,
    )
    assert digest(out) == before


def test_weights_get_the_permissions_of_the_other_run_files(tiny_csv, tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "run"
        _train(tiny_csv, out)
    finally:
        os.umask(old)

    def mode(rel: str) -> int:
        return stat.S_IMODE((out / rel).stat().st_mode)

    assert mode("model/model.safetensors") == mode("config.yaml") == mode("model/labels.json") == 0o644
    assert mode("checkpoints/step-00000020/model.safetensors") == mode("checkpoints/step-00000020/state.json")
