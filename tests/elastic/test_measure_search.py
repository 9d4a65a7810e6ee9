"""Sub-net measurement, the Pareto front, and the budget search (exhaustive and evolutionary)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from attncoach.data.batching import EncodedSplit
from attncoach.elastic.measure import (
    Candidate,
    Judge,
    active_parameters,
    evaluate_subnets,
    measure_latency,
    pareto_front,
)
from attncoach.elastic.search import (
    Budget,
    Genome,
    all_candidates,
    count_candidates,
    evolve,
    search_space,
    uniform_grid,
)
from attncoach.elastic.search import search as search_judged
from attncoach.elastic.space import ElasticSpace, subnet_for
from attncoach.errors import AttncoachError
from attncoach.models.classifier import TextClassifier
from attncoach.models.encoder import EncoderConfig
from attncoach.tasks.text_classification import evaluate_ids


def _init_wide(module: torch.nn.Module) -> None:
    # Larger weights than BERT's init, so that sub-nets of an untrained model disagree.
    if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)):
        torch.nn.init.normal_(module.weight, std=0.3)


@pytest.fixture
def clf() -> SimpleNamespace:
    """An untrained 4-layer classifier whose val labels are its own full-model predictions."""
    torch.manual_seed(0)
    config = EncoderConfig(vocab_size=40, dim=16, layers=4, heads=4, ffn_dim=32, dropout=0.0, attention_dropout=0.0)
    model = TextClassifier(config, num_labels=3, head_dropout=0.0)
    model.apply(_init_wide)
    model.eval()
    return SimpleNamespace(model=model, labels=["a", "b", "c"], device=torch.device("cpu"), space=None)


@pytest.fixture
def split(clf) -> SimpleNamespace:
    rng = np.random.default_rng(0)
    ids = [[1, *rng.integers(2, 40, int(rng.integers(3, 10))).tolist()] for _ in range(48)]
    from attncoach.models.saved import predict_logits

    labels = predict_logits(clf.model, ids, 16, clf.device).argmax(-1).numpy()
    return EncodedSplit(ids, labels, [""] * len(ids))


def _judge(clf, split) -> Judge:
    evaluate = lambda s: evaluate_ids(clf.model, s.ids, s.labels, clf.labels, 256, clf.device)  # noqa: E731
    return Judge(clf.model, split, evaluate, ("macro_f1", "accuracy"))


def search(clf, split, budget, space=None, **options):
    """The budget search on ``clf`` judged by macro-F1 on ``split`` (the default space unless given)."""
    return search_judged(_judge(clf, split), budget, space if space is not None else search_space(clf), **options)


def test_pareto_front_on_hand_made_rows():
    rows = [
        {"macro_f1": 0.90, "latency_ms_b32": 10.0, "parameters": 100},  # best quality: front
        {"macro_f1": 0.80, "latency_ms_b32": 12.0, "parameters": 100},  # dominated by row 0
        {"macro_f1": 0.70, "latency_ms_b32": 2.0, "parameters": 50},  # fastest and smallest: front
        {"macro_f1": 0.70, "latency_ms_b32": 2.0, "parameters": 60},  # dominated by row 2 (bigger)
        {"macro_f1": 0.75, "latency_ms_b32": 5.0, "parameters": 40},  # smallest of all: front
        {"macro_f1": 0.90, "latency_ms_b32": 10.0, "parameters": 100},  # equal to row 0: not dominated
    ]
    assert pareto_front(rows) == [True, False, True, False, True, True]
    assert pareto_front(rows, costs=("parameters",)) == [True, False, False, False, True, True]
    assert pareto_front([]) == []


def test_latency_is_positive_and_smaller_subnets_have_fewer_parameters(clf, split):
    ms = measure_latency(clf.model, split.ids, batch_size=4, repeats=2, warmup=1, batches=2)
    assert ms > 0 and math.isfinite(ms)
    assert measure_latency(clf.model, split.ids[:1], batch_size=3, repeats=1) > 0  # cycles through few ids
    full = active_parameters(clf.model)
    clf.model.set_subnet(subnet_for(clf.model.encoder.config, 0.5, 0.5))
    assert active_parameters(clf.model)[0] < full[0] and active_parameters(clf.model)[1] < full[1]


def test_evaluate_subnets_rows_and_restores_the_model(clf, split):
    candidates = uniform_grid(ElasticSpace(widths=(0.5, 1.0), depths=(0.5, 1.0)), clf.model.encoder.config)
    rows = evaluate_subnets(_judge(clf, split), candidates, batch_sizes=(1, 4), repeats=1)
    assert [r["name"] for r in rows] == ["w0.50 d0.50", "w1.00 d0.50", "w0.50 d1.00", "w1.00 d1.00"]
    full = rows[-1]
    assert full["macro_f1"] == 1.0 and full["layers"] == 4 and full["heads"] == 16 and full["ffn"] == 128
    assert all(r["latency_ms_b1"] > 0 and r["latency_ms_b4"] > 0 for r in rows)
    assert rows[0]["parameters"] < rows[1]["parameters"] < full["parameters"]
    assert clf.model.subnet.layers is None  # the full model again


def test_candidates_of_a_per_layer_space():
    config = EncoderConfig(vocab_size=10, dim=8, layers=2, heads=2, ffn_dim=8)
    space = ElasticSpace(widths=(0.5, 1.0), depths=(0.5, 1.0), per_layer=True)
    assert count_candidates(space, config) == 2 + 4
    names = [c.name for c in all_candidates(space, config)]
    assert names == ["w0.50 d0.50", "w1.00 d0.50", "w0.50 d1.00", "w0.50/1.00 d1.00", "w1.00/0.50 d1.00", "w1.00 d1.00"]
    mixed = Genome(1.0, (1.0, 0.5)).candidate(config).subnet
    assert mixed.layers == (0, 1) and mixed.heads == (2, 1) and mixed.ffn == (8, 4)
    assert Genome(1.0, (0.5, 0.5)).candidate(config) == Genome(1.0, (0.5,)).candidate(config)
    separate = ElasticSpace(widths=(0.5, 1.0), depths=(1.0,), ffn_widths=(0.25, 1.0))
    assert [c.name for c in uniform_grid(separate, config)] == [
        "w0.50 f0.25 d1.00",
        "w0.50 f1.00 d1.00",
        "w1.00 f0.25 d1.00",
        "w1.00 f1.00 d1.00",
    ]


def test_exhaustive_search_matches_brute_force(clf, split):
    space = ElasticSpace(widths=(0.25, 0.5, 0.75, 1.0), depths=(0.5, 0.75, 1.0))
    config = clf.model.encoder.config
    brute = []
    for candidate in all_candidates(space, config):
        clf.model.set_subnet(candidate.subnet)
        f1 = evaluate_ids(clf.model, split.ids, split.labels, clf.labels, 64, clf.device)["macro_f1"]
        brute.append((candidate, f1, active_parameters(clf.model)[1]))
    clf.model.set_subnet(None)
    budget = sorted(params for _, _, params in brute)[len(brute) // 2]
    best_f1 = max(f1 for _, f1, params in brute if params <= budget)

    result = search(clf, split, Budget(max_params=budget), space=space, repeats=1)
    assert result["search"] == "exhaustive"
    assert result["macro_f1"] == pytest.approx(best_f1) and result["parameters"] <= budget
    assert result["candidates_evaluated"] == sum(params <= budget for _, _, params in brute)
    assert result["latency_ms"] > 0 and result["predicted_latency_ms"] >= 0
    assert result["width_only"]["subnet"]["layers"] == [0, 1, 2, 3]  # depth 1.0
    assert result["depth_only"]["subnet"]["heads"] == [4, 4, 4, 4]  # width 1.0
    assert result["depth_only"]["parameters"] <= budget and result["width_only"]["parameters"] <= budget
    assert clf.model.subnet.layers is None


def test_evolutionary_search_is_seeded_and_respects_the_budget():
    config = EncoderConfig(vocab_size=10, dim=16, layers=6, heads=4, ffn_dim=16)
    space = ElasticSpace(widths=(0.25, 0.5, 0.75, 1.0), depths=(0.5, 1.0), per_layer=True)
    assert count_candidates(space, config) > 64

    def fitness(candidate: Candidate) -> float:  # cheap stand-in for val F1: more kept heads is better
        sub = candidate.subnet
        heads = sum(sub.heads[i] for i in sub.layers)
        return -math.inf if heads > 12 else heads + 0.01 * sum(sub.ffn[i] for i in sub.layers)

    first = evolve(space, config, fitness, seed=3)
    again = evolve(space, config, fitness, seed=3)
    assert [(c.name, f) for c, f in first.values()] == [(c.name, f) for c, f in again.values()]
    best, score = max(first.values(), key=lambda item: item[1])
    assert score > -math.inf and sum(best.subnet.heads[i] for i in best.subnet.layers) <= 12
    assert len(first) > 16  # it explored beyond the first generation


def test_search_on_a_per_layer_space_is_deterministic(clf, split):
    clf.space = ElasticSpace(widths=(0.25, 0.5, 0.75, 1.0), depths=(0.5, 1.0), per_layer=True)
    config = clf.model.encoder.config
    budget = Budget(max_params=(active_parameters(clf.model)[1] * 3) // 4)
    one = search(clf, split, budget, seed=1, repeats=1)
    two = search(clf, split, budget, seed=1, repeats=1)
    assert one["search"] == "evolutionary" and count_candidates(clf.space, config) > 64
    assert one["name"] == two["name"] and one["macro_f1"] == two["macro_f1"]
    assert one["parameters"] <= budget.max_params


@pytest.mark.parametrize("fitness_examples", [None, 8])
def test_evolutionary_search_is_never_worse_than_the_uniform_baselines(clf, split, fitness_examples):
    clf.space = ElasticSpace(widths=(0.25, 0.5, 0.75, 1.0), depths=(0.5, 1.0), ffn_widths=(0.25, 1.0), per_layer=True)
    budget = Budget(max_params=(active_parameters(clf.model)[1] * 2) // 3)
    result = search(clf, split, budget, seed=0, repeats=1, fitness_examples=fitness_examples)
    assert result["search"] == "evolutionary"
    for baseline in ("width_only", "depth_only"):
        if result[baseline] is not None:
            assert result["macro_f1"] >= result[baseline]["macro_f1"], baseline


def test_impossible_budgets_name_the_closest_subnet(clf, split):
    with pytest.raises(AttncoachError, match=r"no sub-net meets 10 parameters: the smallest, w0.25 d0.50, has"):
        search(clf, split, Budget(max_params=10), repeats=1)
    with pytest.raises(AttncoachError, match=r"no sub-net meets 1e-06 ms at batch 1: the fastest, .* takes .* ms"):
        search(clf, split, Budget(max_latency_ms=1e-6), repeats=1)


def test_a_generous_latency_budget_picks_the_best_subnet(clf, split):
    result = search(clf, split, Budget(max_latency_ms=1e4, batch=2), space=ElasticSpace(widths=(0.5, 1.0)), repeats=1)
    assert result["macro_f1"] == 1.0 and result["latency_ms"] <= 1e4  # the full model predicts its own labels
    assert result["budget"] == {"max_latency_ms": 1e4, "max_params": None, "batch": 2}


def test_both_budgets_apply(clf, split):
    space = ElasticSpace(widths=(0.25, 0.5, 1.0), depths=(0.5, 1.0))
    full = active_parameters(clf.model)[1]
    budget = Budget(max_latency_ms=1e4, max_params=full // 2, batch=2)
    result = search(clf, split, budget, space=space, repeats=1)
    assert result["parameters"] <= full // 2 and result["latency_ms"] <= 1e4
    assert result["budget"] == {"max_latency_ms": 1e4, "max_params": full // 2, "batch": 2}
    assert str(budget) == f"{full // 2:,} parameters and 10000 ms at batch 2"
    for baseline in ("width_only", "depth_only"):
        assert result[baseline] is None or result[baseline]["parameters"] <= full // 2
    # a parameter budget every sub-net meets does not lift the latency budget
    with pytest.raises(AttncoachError, match=r"no sub-net meets .* parameters and 1e-06 ms at batch 1: the fastest"):
        search(clf, split, Budget(max_latency_ms=1e-6, max_params=10 * full), space=space, repeats=1)
    with pytest.raises(AttncoachError, match=r"no sub-net meets 10 parameters and 10000 ms at batch 1: the smallest"):
        search(clf, split, Budget(max_latency_ms=1e4, max_params=10), space=space, repeats=1)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({}, "give a budget"),
        ({"max_latency_ms": 1.0, "max_params": 0}, "positive"),
        ({"max_params": 0}, "positive"),
        ({"max_latency_ms": -1.0}, "positive"),
        ({"max_latency_ms": float("nan")}, "positive"),
        ({"max_latency_ms": 1.0, "batch": 0}, "at least 1"),
    ],
)
def test_bad_budgets(kwargs, words):
    with pytest.raises(AttncoachError, match=words):
        Budget(**kwargs)
