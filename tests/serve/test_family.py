"""load_family: a family directory served through the ServedModel seam, and damaged families."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from attncoach.cli import main
from attncoach.errors import AttncoachError
from attncoach.serve.family import FAMILY_FILE, FamilyModel, load_family, member_name
from attncoach.serve.served import load_served
from tinydata import make_interactions, tiny_next_item_overrides, tiny_overrides, write_corpus


@pytest.fixture(scope="module")
def families(tmp_path_factory) -> dict[str, Path]:
    """An int8 text-classification family and a float32 next-item family of tiny runs."""

    root = tmp_path_factory.mktemp("families")
    corpus = write_corpus(root / "tiny.csv")
    assert main(["train", "--quiet", *tiny_overrides(corpus, root / "clf", 20), "model.layers=2"]) == 0
    inter = make_interactions(root / "inter.tsv")
    assert main(["train", "--quiet", *tiny_next_item_overrides(inter, root / "rec", 40)]) == 0
    widths = ["--widths", "1", "0.5", "--depths", "1", "0.5"]
    for name, extra in (("clf", ["--quantize", "int8"]), ("rec", [])):
        assert main(["export", "--quiet", str(root / name), "--family", *widths, *extra, "--out", str(root / f"{name}-family")]) == 0  # fmt: skip
    return {"clf": root / "clf-family", "rec": root / "rec-family"}


def test_a_classification_family_serves_every_member(families):
    served = load_family(families["clf"])
    assert served.task == "text_classification"
    names = [m.name for m in served.members]
    assert names[0] == "full" and set(names) == {"full", "w0.5", "d0.5", "w0.5-d0.5"}
    assert all(m.runtime == "int8" and set(m.latency_ms) == {1, 32} and m.parameters > 0 for m in served.members)
    for name in names:
        [answer] = served.predict(["great thanks"], name)
        assert set(answer["probabilities"]) == {"negative", "neutral", "positive"}
    about = served.describe()
    assert about["labels"] == ["negative", "neutral", "positive"] and about["model_format_version"] == 4
    source = json.loads((families["clf"].parent / "clf" / "model" / "calibration.json").read_text())
    assert about["calibration"] == source  # every member keeps the run's temperature
    for name in names:
        assert json.loads((families["clf"] / "members" / name / "calibration.json").read_text()) == source
    assert [m["name"] for m in about["members"]] == names and about["source"] == str(families["clf"])
    assert about["members"][0]["latency_ms"]["1"] == served.members[0].latency_ms[1]
    json.dumps(about)  # JSON-ready
    with pytest.raises(AttncoachError, match="unknown member 'w0.1'; this model serves: full"):
        served.predict(["x"], "w0.1")
    with pytest.raises(AttncoachError, match="cannot recommend items"):
        served.recommend(["u0"], None, 3, "full")


def test_a_next_item_family_recommends_with_every_member(families):
    served = load_family(families["rec"])
    assert served.task == "next_item" and all(m.runtime == "torch" for m in served.members)
    assert served.describe()["items"] == 30
    for member in served.members:
        [items] = served.recommend(["u0"], None, 3, member.name)
        assert len(items) == 3 and {"item", "score"} == set(items[0])
        assert len(served.recommend(None, [["i3", "i4", "i5"]], 2, member.name)[0]) == 2
    with pytest.raises(AttncoachError, match="unknown user"):
        served.recommend(["nobody"], None, 3, "full")
    with pytest.raises(AttncoachError, match="cannot predict labels"):
        served.predict(["x"], "full")


def test_a_damaged_family_is_one_clear_error(families, tmp_path):
    family = tmp_path / "family"
    shutil.copytree(families["clf"], family)
    with pytest.raises(AttncoachError, match="is not a model family \\(no family.json\\)"):
        load_family(tmp_path)
    manifest = json.loads((family / FAMILY_FILE).read_text())
    cases = [
        ("{oops", "is not valid JSON"),
        (json.dumps({**manifest, "format_version": 99}), "newer attncoach"),
        (json.dumps({**manifest, "members": []}), "is damaged (ValueError: no members)"),
        (json.dumps({**manifest, "members": [{**manifest["members"][0], "latency_ms": {"32": 1.0}}]}), "no latency at batch 1"),
        (json.dumps({**manifest, "members": [{"name": "x"}]}), "is damaged (KeyError"),
    ]  # fmt: skip
    for text, words in cases:
        (family / FAMILY_FILE).write_text(text)
        with pytest.raises(AttncoachError) as err:
            load_family(family)
        assert words in str(err.value) and "\n" not in str(err.value), (words, err.value)
    (family / FAMILY_FILE).write_text(json.dumps(manifest))
    shutil.rmtree(family / "members" / "w0.5")
    with pytest.raises(AttncoachError, match="lacks its member 'w0.5'"):
        load_family(family)


def test_member_names_say_what_is_kept():
    assert [member_name(w, d) for w, d in [(1, 1), (0.5, 1), (1, 0.5), (0.25, 0.5)]] == [
        "full",
        "w0.5",
        "d0.5",
        "w0.25-d0.5",
    ]


def test_load_served_serves_a_family_directory_in_its_members_runtimes(families):
    served = load_served(families["clf"])  # what attncoach serve DIR loads
    assert isinstance(served, FamilyModel) and {m.runtime for m in served.members} == {"int8"}
    [answer] = served.predict(["great thanks"], "w0.5")
    assert answer["label"] in {"negative", "neutral", "positive"}
    with pytest.raises(AttncoachError, match="--runtime onnx: the family .* holds int8 members"):
        load_served(families["clf"], runtime="onnx")
