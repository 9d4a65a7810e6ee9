"""tune.space: parsing, checking against the config, and suggesting values from an Optuna trial."""

from __future__ import annotations

import pytest

from attncoach.errors import AttncoachError
from attncoach.train.settings import load_run_config
from attncoach.tune.space import check_space, parse_space, suggest


def test_every_kind_parses_in_the_order_written():
    space = parse_space(
        {
            "train.lr": {"log_uniform": [1e-4, 1e-2]},
            "train.weight_decay": {"uniform": [0, 0.1]},
            "model.layers": {"int": [1, 3]},
            "curriculum.scheduler": {"choice": ["uniform", "competence"]},
        }
    )
    assert [(d.key, d.kind) for d in space] == [
        ("train.lr", "log_uniform"),
        ("train.weight_decay", "uniform"),
        ("model.layers", "int"),
        ("curriculum.scheduler", "choice"),
    ]
    assert space[1].values == (0.0, 0.1) and space[2].values == (1, 3)
    assert (
        space[0].override(0.001) == "train.lr=0.001"
        and space[3].override("uniform") == 'curriculum.scheduler="uniform"'
    )
    assert (
        space[0].describe() == "log_uniform [0.0001, 0.01]"
        and space[3].describe() == 'choice {"uniform", "competence"}'
    )


@pytest.mark.parametrize(
    "raw, words",
    [
        (None, "no search space"),
        ({}, "no search space"),
        (["train.lr"], "must map config keys"),
        ({"train.lr": [1e-4, 1e-2]}, "must be one of"),
        ({"train.lr": {"log_uniform": [1e-4, 1e-2], "int": [1, 2]}}, "must be one of"),
        ({"train.lr": {"normal": [0, 1]}}, "unknown range kind 'normal'"),
        ({"train.lr": {"uniform": [0.1]}}, "needs [low, high]"),
        ({"train.lr": {"uniform": [0.2, 0.1]}}, "low < high"),
        ({"train.lr": {"uniform": ["a", 0.1]}}, "two numbers"),
        ({"train.lr": {"log_uniform": [0, 0.1]}}, "low > 0"),
        ({"model.layers": {"int": [1, 2.5]}}, "two integers"),
        ({"model.layers": {"choice": []}}, "needs a list"),
        ({"model.layers": {"choice": [2, 2]}}, "repeat"),
        ({"elastic.widths": {"choice": [[0.5, 1.0], [1.0]]}}, "single values"),
        ({"output_dir": {"choice": ["a", "b"]}}, "cannot be searched"),
        ({"tune.trial_steps": {"int": [1, 2]}}, "cannot be searched"),
        ({"lr": {"uniform": [0.1, 0.2]}}, "section.key"),
    ],
)
def test_a_malformed_space_is_one_line_naming_the_key(raw, words):
    with pytest.raises(AttncoachError) as err:
        parse_space(raw)
    assert words in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "raw, words",
    [
        ({"train.lrr": {"uniform": [0.001, 0.01]}}, "unknown config key 'train.lrr' (did you mean 'train.lr'?)"),
        ({"model.layers": {"int": [0, 2]}}, "tune.space['model.layers'] = 0: config key 'model.layers'"),
        ({"model.pooling": {"choice": ["mean", "attention"]}}, "= 'attention'"),
    ],
)
def test_a_key_or_value_the_config_refuses_is_refused_before_any_trial(raw, words):
    with pytest.raises(AttncoachError) as err:
        check_space(parse_space(raw), lambda extra: load_run_config(None, extra))
    assert words in str(err.value)


def test_suggest_draws_each_kind_within_its_range():
    optuna = pytest.importorskip("optuna")
    space = parse_space(
        {
            "train.lr": {"log_uniform": [1e-4, 1e-2]},
            "model.layers": {"int": [1, 3]},
            "model.pooling": {"choice": ["mean", "cls"]},
        }
    )
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(10):
        values = suggest(study.ask(), space)
        assert 1e-4 <= values["train.lr"] <= 1e-2
        assert values["model.layers"] in (1, 2, 3) and values["model.pooling"] in ("mean", "cls")
        load_run_config(None, [d.override(values[d.key]) for d in space])  # every draw is a valid config
