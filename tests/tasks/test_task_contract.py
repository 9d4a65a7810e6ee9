"""The Task contract, checked on every registered task: what the recipe and the pillars rely on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attncoach.config import RunConfig
from attncoach.tasks import TASKS, StepOut, Task, task_keys
from attncoach.train.settings import load_run_config
from tinydata import (
    make_corpus,
    make_interactions,
    make_parallel,
    tiny_image_overrides,
    tiny_masked_lm_overrides,
    tiny_next_item_overrides,
    tiny_overrides,
    tiny_translation_overrides,
    write_texts,
)


def _config(name: str, tmp_path) -> RunConfig:
    if name == "text_classification":
        path = tmp_path / "tiny.csv"
        path.write_text("text,label\n" + "\n".join(f"{t},{label}" for t, label in make_corpus()) + "\n")
        return load_run_config(None, tiny_overrides(path, tmp_path / "run"))
    if name == "next_item":
        path = make_interactions(tmp_path / "inter.tsv")
        return load_run_config(None, tiny_next_item_overrides(path, tmp_path / "run"))
    if name == "translation":
        path = make_parallel(tmp_path / "pairs.tsv")
        return load_run_config(None, tiny_translation_overrides(path, tmp_path / "run"))
    if name == "image_classification":
        return load_run_config(None, tiny_image_overrides(tmp_path / "run"))
    if name == "masked_lm":
        return load_run_config(None, tiny_masked_lm_overrides(write_texts(tmp_path / "texts.txt"), tmp_path / "run"))
    raise AssertionError(f"task {name} has no tiny config in this test: add one")


@pytest.fixture(params=sorted(TASKS))
def built(request, tmp_path):
    name = request.param
    cfg = _config(name, tmp_path)
    task = TASKS[name]()
    torch.manual_seed(0)
    data = task.build(cfg)
    model = data.new_model(cfg.model)
    return name, cfg, task, data, model


def test_every_task_declares_its_metrics_and_at_most_three_methods():
    for name, cls in TASKS.items():
        assert cls.name == name and cls.primary and cls.tracked[0] == cls.primary, name
        assert cls.corpus, name
        own = {k for k, v in vars(cls).items() if callable(v) and not k.startswith("_")}
        assert own <= {"build", "step", "evaluate"}, (name, own)
        assert issubclass(cls, Task)


def test_task_keys_are_real_config_keys_with_defaults():
    defaults = RunConfig()
    for key in task_keys():
        section, name = key.split(".")
        assert hasattr(getattr(defaults, section), name), key


def test_task_data_fits_the_recipe(built, tmp_path):
    name, cfg, task, data, model = built
    train = data.splits["train"]
    assert set(data.splits) == {"train", "val", "test"}
    assert len(data.strata) == len(train) == len(train.ids) == len(train.labels) == len(train.texts)
    assert len(train.lines) == len(train) and (train.lengths <= data.max_length).all()
    assert max(train.labels) < len(data.label_names)
    assert data.chance_loss is None or data.chance_loss > 0
    half = train.subset(np.arange(0, len(train), 2))
    assert len(half) == (len(train) + 1) // 2 and half.texts[1] == train.texts[2]
    for split in data.splits.values():
        batch = split.batch(list(range(min(5, len(split)))))
        inputs, mask = batch["input_ids"], batch["attention_mask"]
        assert inputs.shape[0] == mask.shape[0] and mask.shape[1] <= data.max_length
        if not inputs.is_floating_point():  # token ids, one per position; images are (B, C, H, W) pixels
            assert inputs.shape == mask.shape


def test_step_gives_the_loss_and_per_example_outcomes(built):
    name, cfg, task, data, model = built
    batch = data.splits["train"].batch([0, 1, 2, 3])
    out = task.step(model, batch)
    assert isinstance(out, StepOut)
    assert out.loss.dim() == 0 and out.loss.requires_grad and torch.isfinite(out.loss)
    assert out.losses.shape == (4,) and not out.losses.requires_grad and (out.losses >= 0).all()
    assert out.correct.shape == (4,) and out.correct.dtype == torch.bool
    assert out.predicted is not None and out.predicted.shape == (4,)
    assert out.hidden is not None and out.mask is not None and out.hidden.shape[:2] == out.mask.shape
    out.loss.backward()
    assert any(p.grad is not None for p in model.parameters())
    # a sub-net gives outputs of the same shape (distillation matches them)
    from attncoach.elastic.space import subnet_for

    model.set_subnet(subnet_for(model.encoder.config, 0.5, 0.5))
    small = task.step(model, batch)
    model.set_subnet(None)
    assert small.outputs.shape == out.outputs.shape


def test_a_task_with_class_probabilities_gives_class_logits_and_gold_labels(built):
    name, cfg, task, data, model = built
    if not task.class_probabilities:  # a ranking task: train.calibrate leaves it alone
        return
    batch = data.splits["val"].batch([0, 1, 2])
    out = task.step(model, batch)
    assert out.outputs.shape == (3, len(data.label_names)) and batch["labels"].shape == (3,)
    gold = torch.nn.functional.cross_entropy(out.outputs.float(), batch["labels"], reduction="none")
    torch.testing.assert_close(gold, out.losses)  # the outputs are the logits of the gold labels' softmax


def test_evaluate_reports_loss_and_the_tracked_metrics(built):
    name, cfg, task, data, model = built
    metrics = task.evaluate(model, data.splits["val"], data, batch_size=7)
    assert "loss" in metrics and np.isfinite(metrics["loss"])
    for key in task.tracked:
        assert 0.0 <= metrics[key] <= 1.0, (name, key)
    again = task.evaluate(model, data.splits["val"], data, batch_size=64)
    assert again[task.primary] == pytest.approx(metrics[task.primary])  # batching does not change metrics


def test_saved_files_rebuild_the_same_data(built, tmp_path):
    name, cfg, task, data, model = built
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    data.save(model_dir)
    rebuilt = task.build(cfg, model_dir=model_dir)
    for split in ("train", "val", "test"):
        a, b = data.splits[split], rebuilt.splits[split]
        assert len(a) == len(b)
        assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a.ids, b.ids))
    assert rebuilt.label_names == data.label_names and rebuilt.max_length == data.max_length
