"""attncoach export: a sub-net saved as a standalone model, used by eval and predict, and bad inputs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from attncoach.cli import main


def _checksums(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_exported_model_evaluates_like_the_masked_subnet(run, tiny_csv, tmp_path, capsys):
    out = tmp_path / "half"
    capsys.readouterr()
    assert main(["export", str(run), "--width", "0.5", "--depth", "0.5", "--out", str(out)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("exported sub-net layers=0,3 heads=1,1,1,1 ffn=16,16,16,16") and str(out) in line
    config = json.loads((out / "model_config.json").read_text())
    assert config["model"]["encoder"]["layer_heads"] == [1, 1] and "elastic" not in config
    assert config["exported_from"]["named_by"] == "--width 0.5 --depth 0.5"
    assert (out / "model.safetensors").stat().st_size < (run / "model" / "model.safetensors").stat().st_size

    assert main(["eval", str(out), "--data", str(tiny_csv), "--json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert main(["eval", str(run), "--data", str(tiny_csv), "--json", "--width", "0.5", "--depth", "0.5"]) == 0
    masked = json.loads(capsys.readouterr().out)
    assert exported["confusion"] == masked["confusion"] and exported["n"] == 240

    assert main(["predict", str(out), "happy thanks"]) == 0
    assert json.loads(capsys.readouterr().out)["label"] in {"negative", "neutral", "positive"}
    assert main(["eval", str(out)]) == 2  # a bare model directory has no test split
    assert "give --data FILE" in capsys.readouterr().err


def test_bad_exports_are_refused_and_leave_nothing(run, tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("keep me")
    (tmp_path / "big.json").write_text(json.dumps({"heads": [3, 1, 1, 1]}))  # the model has 2 heads
    cases = [
        ([str(run), "--out", "OUT"], "export needs a sub-net (--width/--depth or --subnet), --quantize int8, --onnx"),
        ([str(run), "--width", "0", "--out", "OUT"], "outside (0, 1]"),
        ([str(run), "--subnet", str(tmp_path / "big.json"), "--out", "OUT"], "does not match the model"),
        ([str(run), "--width", "0.5", "--out", str(tmp_path / "taken")], "is not empty"),
        ([str(run), "--width", "0.5", "--out", str(tmp_path / "big.json" / "OUT")], "which is a file"),
        ([str(tmp_path / "nope"), "--width", "0.5", "--out", "OUT"], "not found"),
    ]
    before = _checksums(tmp_path)
    for argv, words in cases:
        argv = [str(tmp_path / "small") if a == "OUT" else a for a in argv]
        assert main(["export", *argv]) == 2, argv
        errors = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
        assert len(errors) == 1 and errors[0].startswith("error: ") and words in errors[0], errors
        assert _checksums(tmp_path) == before
        assert not (tmp_path / "small").exists()


def test_widths_outside_the_trained_space_are_refused(run, tmp_path, capsys):
    config_path = run / "model" / "model_config.json"
    config = json.loads(config_path.read_text())
    config["elastic"] = {"widths": [0.5, 1.0], "depths": [0.5, 1.0], "ffn_widths": None, "per_layer": False}
    config_path.write_text(json.dumps(config))
    out = tmp_path / "small"
    assert main(["export", str(run), "--width", "0.25", "--out", str(out)]) == 2
    assert "outside the trained space" in capsys.readouterr().err and not out.exists()
    assert main(["eval", str(run), "--width", "1", "--depth", "0.25"]) == 2
    assert "outside the trained space" in capsys.readouterr().err
    assert main(["export", str(run), "--width", "0.5", "--out", str(out)]) == 0
    assert "elastic" not in json.loads((out / "model_config.json").read_text())
