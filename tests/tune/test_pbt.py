"""StrictPopulationBasedTraining: Ray's PBT ranking, with a tie never exploited."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

pytest.importorskip("ray.tune", reason="Ray Tune is not installed: pip install 'attncoach[ray]'")

from ray.tune.schedulers import PopulationBasedTraining  # noqa: E402

from attncoach.tune.pbt import StrictPopulationBasedTraining  # noqa: E402


class Member:
    def __init__(self, name: str) -> None:
        self.name = name

    def is_finished(self) -> bool:
        return False


def _ranked(cls: type, scores: dict[str, float]) -> tuple[list[str], list[str]]:
    pbt = cls(time_attr="evaluation", metric="val", mode="max", hyperparam_mutations={"lr": [1.0, 2.0]})
    pbt._trial_state = {Member(name): SimpleNamespace(last_score=score) for name, score in scores.items()}
    lower, upper = pbt._quantiles()
    return [t.name for t in lower], [t.name for t in upper]


def test_a_tie_is_not_exploited_where_rays_pbt_would():
    assert _ranked(PopulationBasedTraining, {"a": 0.5, "b": 0.5}) in ((["a"], ["b"]), (["b"], ["a"]))
    assert _ranked(StrictPopulationBasedTraining, {"a": 0.5, "b": 0.5})[0] == []


def test_a_worse_member_is_exploited_as_by_rays_pbt():
    scores = {"a": 0.4, "b": 0.9, "c": 0.6, "d": 0.7, "e": 0.9}
    assert _ranked(StrictPopulationBasedTraining, scores) == _ranked(PopulationBasedTraining, scores)
    lower, upper = _ranked(StrictPopulationBasedTraining, scores)  # a quarter of 5, rounded up: 2 each
    assert sorted(lower) == ["a", "c"] and sorted(upper) == ["b", "e"]
    ties = {"a": 0.4, "b": 0.9, "c": 0.9, "d": 0.9, "e": 0.9}  # Ray's lower quarter: a and a 0.9 member
    assert len(_ranked(PopulationBasedTraining, ties)[0]) == 2
    assert _ranked(StrictPopulationBasedTraining, ties)[0] == ["a"]


def test_too_few_scores_rank_nothing():
    assert _ranked(StrictPopulationBasedTraining, {"a": 0.5}) == ([], [])
