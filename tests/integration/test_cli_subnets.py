"""eval and predict on a sub-net: --width/--depth or --subnet FILE, and their bad inputs."""

from __future__ import annotations

import json

import pytest

from attncoach.cli import main
from attncoach.elastic.space import subnet_for
from attncoach.errors import AttncoachError
from attncoach.models.encoder import EncoderConfig


def test_subnet_for_keeps_fractions_and_spreads_layers():
    cfg = EncoderConfig(vocab_size=10, dim=16, layers=6, heads=4, ffn_dim=32)
    sub = subnet_for(cfg, width=0.25, depth=0.5)
    assert sub.layers == (0, 2, 5) and sub.heads == (1,) * 6 and sub.ffn == (8,) * 6
    assert subnet_for(cfg, 1.0, 1.0).layers == tuple(range(6))
    assert subnet_for(cfg, 0.01, 0.01).layers == (0,)
    for width, depth in ((0, 1), (1.5, 1), (1, -0.5)):
        with pytest.raises(AttncoachError, match="outside"):
            subnet_for(cfg, width, depth)


def test_eval_and_predict_on_a_subnet(run, tmp_path, capsys):
    capsys.readouterr()
    assert main(["eval", str(run), "--json"]) == 0
    full = json.loads(capsys.readouterr().out)
    assert main(["eval", str(run), "--json", "--width", "0.5", "--depth", "0.5"]) == 0
    half = json.loads(capsys.readouterr().out)
    assert half["subnet"] == "layers=0,3 heads=1,1,1,1 ffn=16,16,16,16"
    assert half["n"] == full["n"] and 0 <= half["macro_f1"] <= 1

    path = tmp_path / "sub.json"
    path.write_text(json.dumps({"layers": [0, 3], "heads": [1, 1, 1, 1], "ffn": [16, 16, 16, 16]}))
    assert main(["eval", str(run), "--json", "--subnet", str(path)]) == 0
    from_file = json.loads(capsys.readouterr().out)
    assert from_file["confusion"] == half["confusion"]  # the same sub-net, named two ways

    assert main(["predict", str(run), "happy thanks", "--width", "0.5"]) == 0
    assert json.loads(capsys.readouterr().out)["label"] in {"negative", "neutral", "positive"}


@pytest.mark.parametrize(
    "content, words",
    [
        ('{"layers": [0, 9]}', "out of range"),
        ('{"heads": [1, 1]}', "one value per layer"),
        ('{"layers": []}', "at least one layer"),
        ('{"depth": 2}', "unknown"),
        ("[1, 2]", "must hold an object"),
        ("{nope", "not valid JSON"),
    ],
)
def test_bad_subnets_are_refused(run, tmp_path, capsys, content, words):
    path = tmp_path / "bad.json"
    path.write_text(content)
    assert main(["eval", str(run), "--subnet", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and words in err, err


def test_bad_subnet_options(run, tmp_path, capsys):
    for argv, words in (
        (["--width", "0"], "outside"),
        (["--depth", "1.5"], "outside"),
        (["--width", "0.5", "--subnet", "x.json"], "not both"),
        (["--subnet", str(tmp_path / "none.json")], "not found"),
    ):
        assert main(["eval", str(run), *argv]) == 2
        assert words in capsys.readouterr().err
