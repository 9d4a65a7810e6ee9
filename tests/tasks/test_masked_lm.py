"""Task masked_lm: BERT masking (rate, 80/10/10, determinism), the loss at masked positions only, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attncoach.errors import AttncoachError
from attncoach.tasks import TASKS
from attncoach.tasks.masked_lm import IGNORED, Masking, TextSplit
from attncoach.train.settings import load_run_config
from tinydata import tiny_masked_lm_overrides, write_texts

VOCAB = 100  # ids 0..4 are [PAD], [UNK], [CLS], [SEP], [MASK]; 5.. are ordinary
MASK_ID, CLS_ID, SEP_ID, UNK_ID = 4, 2, 3, 1


def _split(texts: int = 400, length: int = 40, fixed: bool = False, seed: int = 0) -> TextSplit:
    """Texts of ``length - 4`` to ``length`` tokens ([CLS] and [SEP] included), with an [UNK] every 7 tokens."""
    rng = np.random.default_rng(1)
    ordinary = np.ones(VOCAB, dtype=bool)
    ordinary[:5] = False
    ids = []
    for i in range(texts):
        body = rng.integers(5, VOCAB, size=length - 2 - i % 5)
        body[3::7] = UNK_ID  # an unknown token now and then: special, never masked
        ids.append(np.concatenate([[CLS_ID], body, [SEP_ID]]).astype(np.int64))
    masking = Masking(0.15, seed, MASK_ID, ordinary, fixed)
    return TextSplit(ids, [f"text {i}" for i in range(texts)], list(range(1, texts + 1)), masking)


def _chosen(batch: dict) -> torch.Tensor:
    return batch["mlm_labels"] != IGNORED


def test_masking_rate_and_the_80_10_10_split_on_a_big_batch():
    split = _split()
    batch = split.batch(list(range(len(split))))
    chosen = _chosen(batch)
    original = batch["mlm_labels"][chosen]
    ordinary = torch.as_tensor(split.masking.ordinary)
    ids = torch.nn.utils.rnn.pad_sequence([torch.as_tensor(x) for x in split.ids], batch_first=True)
    maskable = ordinary[ids] & batch["attention_mask"]
    assert chosen.sum() / maskable.sum() == pytest.approx(0.15, abs=0.01)
    inputs = batch["input_ids"][chosen]
    masked = (inputs == MASK_ID).float().mean()
    kept = (inputs == original).float().mean()
    swapped = ((inputs != MASK_ID) & (inputs != original)).float().mean()
    assert masked == pytest.approx(0.8, abs=0.03)
    assert kept == pytest.approx(0.1, abs=0.03)  # a random replacement can draw the original (1 in 95)
    assert swapped == pytest.approx(0.1, abs=0.03)
    assert ordinary[inputs[inputs != MASK_ID]].all()  # random replacements are ordinary tokens
    assert (batch["input_ids"][~chosen] == ids[~chosen]).all()  # nothing else changes


def test_every_text_has_a_masked_token_and_no_special_is_ever_masked():
    split = _split(texts=50, length=7)  # 1 to 5 ordinary tokens: 0.15 of them rounds to 0, yet one is masked
    batch = split.batch(list(range(50)))
    chosen = _chosen(batch)
    assert (chosen.sum(dim=1) >= 1).all()
    targets = batch["mlm_labels"][chosen]
    assert not torch.isin(targets, torch.tensor([0, UNK_ID, CLS_ID, SEP_ID, MASK_ID])).any()
    assert not chosen[:, 0].any()  # [CLS]
    lengths = batch["attention_mask"].sum(dim=1)
    assert not chosen[torch.arange(50), lengths - 1].any()  # [SEP]
    assert not (chosen & ~batch["attention_mask"]).any()  # padding


def test_masks_are_a_function_of_the_seed_and_the_batch_indices():
    split = _split(texts=64)
    a, b = split.batch([3, 7, 9, 20]), split.batch([3, 7, 9, 20])
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = split.batch([3, 7, 9, 21])  # another batch composition: other masks for the same texts
    assert not torch.equal(a["mlm_labels"][:3], other["mlm_labels"][:3])
    reseeded = _split(texts=64, seed=1).batch([3, 7, 9, 20])
    assert not torch.equal(a["mlm_labels"], reseeded["mlm_labels"])
    assert torch.equal(a["labels"], torch.tensor([3, 7, 9, 20]))
    # a subset (data pruning) keeps each text's identity, so its masks are the same
    subset = split.subset([3, 7, 9, 20]).batch([0, 1, 2, 3])
    assert all(torch.equal(a[k], subset[k]) for k in a)


def test_evaluation_masks_are_fixed_per_text_whatever_the_batch():
    split = _split(texts=64, fixed=True)
    alone = split.batch([9])
    together = split.batch([2, 9, 40])
    width = alone["mlm_labels"].shape[1]
    assert torch.equal(alone["mlm_labels"][0], together["mlm_labels"][1, :width])
    assert torch.equal(alone["input_ids"][0], together["input_ids"][1, :width])


@pytest.fixture
def built(tmp_path):
    cfg = load_run_config(None, tiny_masked_lm_overrides(write_texts(tmp_path / "texts.txt"), tmp_path / "run"))
    task = TASKS["masked_lm"]()
    torch.manual_seed(0)
    data = task.build(cfg)
    return cfg, task, data, data.new_model(cfg.model).eval()


def test_the_loss_is_the_cross_entropy_at_the_masked_positions_only(built):
    cfg, task, data, model = built
    batch = data.splits["train"].batch([0, 1, 2, 3, 4])
    out = task.step(model, batch)
    logits = model(batch["input_ids"], batch["attention_mask"])  # (B, T, V)
    chosen = _chosen(batch)
    expected = F.cross_entropy(logits[chosen], batch["mlm_labels"][chosen])
    torch.testing.assert_close(out.loss, expected)
    per_text = [F.cross_entropy(logits[i][chosen[i]], batch["mlm_labels"][i][chosen[i]]) for i in range(5)]
    torch.testing.assert_close(out.losses, torch.stack(per_text).detach())
    # the logits of unmasked positions do not enter the loss: nothing flows back to them
    hidden = model.encoder(batch["input_ids"], batch["attention_mask"]).detach().requires_grad_()
    loss = F.cross_entropy(model.token_logits(hidden)[chosen], batch["mlm_labels"][chosen])
    loss.backward()
    assert hidden.grad[~chosen].abs().sum() == 0 and hidden.grad[chosen].abs().sum() > 0


def test_correct_and_predicted_say_whether_every_masked_token_was_guessed(built):
    cfg, task, data, model = built
    batch = data.splits["train"].batch([5, 6, 7])
    out = task.step(model, batch)
    assert torch.equal(out.predicted, torch.where(out.correct, batch["labels"], torch.full_like(batch["labels"], -1)))


def test_evaluation_gives_masked_accuracy_loss_and_perplexity(built):
    cfg, task, data, model = built
    metrics = task.evaluate(model, data.splits["test"], data, batch_size=5)
    assert metrics["n"] == len(data.splits["test"]) and metrics["masked_tokens"] >= metrics["n"]
    assert 0 <= metrics["masked_accuracy"] <= 1
    assert metrics["perplexity"] == pytest.approx(np.exp(metrics["loss"]))
    again = task.evaluate(model, data.splits["test"], data, batch_size=64)  # other batches, the same masks
    assert again["masked_accuracy"] == metrics["masked_accuracy"] and again["masked_tokens"] == metrics["masked_tokens"]
    assert again["loss"] == pytest.approx(metrics["loss"])


def test_a_file_of_the_same_texts_in_other_formats_gives_the_same_splits(tmp_path):
    texts = write_texts(tmp_path / "texts.txt").read_text().splitlines()
    jsonl = tmp_path / "texts.jsonl"
    jsonl.write_text("".join(f'{{"body": "{t}"}}\n' for t in texts + texts[:5]))  # duplicates are removed
    task = TASKS["masked_lm"]()
    base = tiny_masked_lm_overrides(tmp_path / "texts.txt", tmp_path / "run")
    plain = task.build(load_run_config(None, base))
    other = task.build(load_run_config(None, [*base, f"data.path={jsonl}", "data.text_column=body"]))
    for name in ("train", "val", "test"):
        assert plain.splits[name].texts == other.splits[name].texts
    assert other.stats["texts_read"] == len(texts)
    train = other.splits["train"]  # text i of the corpus ends with "#i" and is on line i + 1 (its first occurrence)
    assert all(text.endswith(f"#{line - 1}") for text, line in zip(train.texts, train.lines))


@pytest.mark.parametrize("content", ["", "\n\n   \n"])
def test_a_file_without_text_is_refused(tmp_path, content):
    empty = tmp_path / "empty.txt"
    empty.write_text(content)
    cfg = load_run_config(None, tiny_masked_lm_overrides(empty, tmp_path / "run"))
    with pytest.raises(AttncoachError, match="no text in"):
        TASKS["masked_lm"]().build(cfg)


@pytest.mark.parametrize("value", [0, 1, -0.1, 1.5])
def test_a_mask_probability_outside_0_1_is_refused(value):
    with pytest.raises(AttncoachError, match=r"data.mask_probability' must be in \(0, 1\)"):
        load_run_config(None, ["task=masked_lm", f"data.mask_probability={value}"])


def test_mask_probability_belongs_to_masked_lm():
    with pytest.raises(AttncoachError, match="mask_probability"):
        load_run_config(None, ["data.mask_probability=0.2"])  # text_classification would ignore it
