"""A small, learnable labelled corpus and the overrides of a tiny run, for tests."""

from __future__ import annotations

import csv
import random
from pathlib import Path

SENTIMENT_WORDS = {
    "positive": ["love", "great", "happy", "excellent", "thanks", "wonderful", "best", "enjoyed"],
    "negative": ["hate", "awful", "terrible", "broken", "worst", "rude", "late", "angry"],
    "neutral": ["today", "meeting", "platform", "schedule", "tuesday", "update", "office", "report"],
}
FILLER_WORDS = ["the", "flight", "phone", "service", "my", "this", "was", "is", "at", "a", "our", "new", "and"]


def make_corpus(n: int = 240, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` short texts whose label is told by the words they contain (plus filler)."""
    rng = random.Random(seed)
    rows = []
    labels = sorted(SENTIMENT_WORDS)
    for i in range(n):
        label = labels[i % 3]
        words = rng.sample(FILLER_WORDS, 4) + rng.sample(SENTIMENT_WORDS[label], 2)
        rng.shuffle(words)
        rows.append((" ".join(words) + f" #{i}", label))
    return rows


def write_corpus(path: Path, n: int = 240) -> Path:
    """:func:`make_corpus` written to ``path`` as a CSV with columns text,label."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([("text", "label"), *make_corpus(n)])
    return path


def tiny_overrides(data: Path, out: Path, steps: int = 60) -> list[str]:
    """Overrides for a run of a tiny model that takes about a second."""
    return [
        f"data.path={data}",
        f"output_dir={out}",
        "data.vocab_size=200",
        "data.min_frequency=1",
        "model.dim=16",
        "model.heads=2",
        "model.layers=1",
        "model.ffn_dim=32",
        "train.batch_size=16",
        f"train.max_steps={steps}",
        "train.eval_every=10",
        "train.lr=5e-3",
        "train.early_stopping_patience=null",
        "train.threads=1",
        "log.every=5",
        "coach.enabled=false",
    ]  # a plain run: tests of the coach turn it on


def write_texts(path: Path, n: int = 240) -> Path:
    """The texts of :func:`make_corpus`, one per line (unlabelled: what ``attncoach pretrain`` reads)."""
    path.write_text("\n".join(text for text, _ in make_corpus(n)) + "\n", encoding="utf-8")
    return path


def tiny_masked_lm_overrides(data: Path, out: Path, steps: int = 40) -> list[str]:
    """Overrides for a tiny masked_lm (pretraining) run of about a second on a text file."""
    return [
        "task=masked_lm",
        *(o for o in tiny_overrides(data, out, steps) if not o.startswith("model.layers")),
        "model.layers=2",
        "train.lr=1e-2",
    ]


def rewind_to_first_checkpoint(out: Path) -> None:
    """Make a finished run look interrupted after its first checkpoint: no metrics, latest = the oldest."""
    import json

    (out / "metrics.json").unlink()
    first = sorted((out / "checkpoints").glob("step-*"))[0]
    pointer = {"latest": first.name, "step": int(first.name.split("-")[1])}
    (out / "checkpoints" / "latest.json").write_text(json.dumps(pointer))


def without_times(metrics: dict) -> dict:
    """metrics.json without wall-clock figures (``*_seconds`` keys, ``seconds`` in each history entry)."""
    out = {k: v for k, v in metrics.items() if not k.endswith("_seconds")}
    if "history" in out:
        out["history"] = [{k: v for k, v in h.items() if k != "seconds"} for h in out["history"]]
    return out


def make_interactions(path: Path, users: int = 48, items: int = 30, per_user: int = 14, seed: int = 0) -> Path:
    """A learnable interactions TSV (user_id, item_id, timestamp): each user walks the items in
    steps of 1 or 2 from a random start, so the next item follows from the last ones."""
    rng = random.Random(seed)
    lines = ["user_id\titem_id\ttimestamp"]
    for user in range(users):
        item, stride = rng.randrange(items), 1 + user % 2
        for t in range(per_user):
            lines.append(f"u{user}\ti{item}\t{1_000_000 + 100 * user + t}")
            item = (item + stride) % items
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tiny_next_item_overrides(data: Path, out: Path, steps: int = 60) -> list[str]:
    """Overrides for a tiny next_item run of about a second."""
    return [
        "task=next_item",
        f"data.path={data}",
        f"output_dir={out}",
        "data.max_length=8",
        "data.negatives=10",
        "model.dim=16",
        "model.heads=2",
        "model.layers=2",
        "model.ffn_dim=32",
        "model.dropout=0.0",
        "model.attention_dropout=0.0",
        "train.batch_size=16",
        f"train.max_steps={steps}",
        "train.eval_every=10",
        "train.lr=1e-2",
        "train.early_stopping_patience=null",
        "train.threads=1",
        "log.every=5",
        "coach.enabled=false",
    ]


def kill_once_checkpointed(args: list[str], out: Path, step: int) -> None:
    """Start ``args`` (a training process), SIGKILL it once its latest checkpoint reaches ``step``."""
    import json
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    pointer = out / "checkpoints" / "latest.json"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            if json.loads(pointer.read_text())["step"] >= step:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"


_EN_FR = {
    "the": "le",
    "cat": "chat",
    "dog": "chien",
    "sees": "voit",
    "eats": "mange",
    "bird": "oiseau",
    "red": "rouge",
    "small": "petit",
    "house": "maison",
    "near": "pres",
    "big": "grand",
    "fish": "poisson",
}


def make_parallel(path: Path, pairs: int = 240, seed: int = 0) -> Path:
    """A learnable parallel TSV (source, target): each English word has one French word, in the same order."""
    rng = random.Random(seed)
    words = sorted(_EN_FR)
    lines = ["source\ttarget"]
    for _ in range(pairs):
        sentence = [rng.choice(words) for _ in range(rng.randint(3, 6))]
        lines.append(" ".join(sentence) + "\t" + " ".join(_EN_FR[w] for w in sentence))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tiny_translation_overrides(data: Path, out: Path, steps: int = 200) -> list[str]:
    """Overrides for a tiny translation run of a few seconds."""
    return [
        "task=translation",
        f"data.path={data}",
        f"output_dir={out}",
        "data.vocab_size=200",
        "data.min_frequency=1",
        "data.val_fraction=0.1",
        "data.test_fraction=0.1",
        "model.dim=32",
        "model.heads=2",
        "model.layers=4",
        "model.ffn_dim=64",
        "model.dropout=0.0",
        "model.attention_dropout=0.0",
        "model.beam_size=2",
        "train.batch_size=16",
        f"train.max_steps={steps}",
        "train.eval_every=50",
        "train.lr=3e-3",
        "train.schedule=constant",  # the word alignment is found late: a decaying LR stalls this tiny run
        "train.bucket_size=1",
        "train.early_stopping_patience=null",
        "train.threads=1",
        "log.every=10",
        "coach.enabled=false",
    ]


def tiny_image_overrides(out: Path, steps: int = 150, data: Path | None = None) -> list[str]:
    """Overrides for a tiny ViT on the built-in 8x8 digits (or the image folder ``data``): about a second."""
    return [
        "task=image_classification",
        "data.builtin=digits" if data is None else f"data.path={data}",
        f"output_dir={out}",
        "model.dim=32",
        "model.heads=2",
        "model.layers=2",
        "model.ffn_dim=64",
        "model.patch_size=4",
        "model.dropout=0.0",
        "model.attention_dropout=0.0",
        "train.batch_size=32",
        f"train.max_steps={steps}",
        "train.eval_every=25",
        "train.lr=5e-3",
        "train.early_stopping_patience=null",
        "train.threads=1",
        "log.every=5",
        "coach.enabled=false",
    ]


def write_image_folder(root: Path, classes: int = 2, per_class: int = 6, size: int = 8, mode: str = "L") -> Path:
    """An image folder (one sub-folder per class) of PNGs: class k is a bright band at row k, plus noise."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for k in range(classes):
        (root / f"class{k}").mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 60, size=(size, size)).astype(np.uint8)
            pixels[(2 * k) % size] = 255
            image = Image.fromarray(pixels, mode="L")
            image.convert(mode).save(root / f"class{k}" / f"{i:03d}.png")
    return root
