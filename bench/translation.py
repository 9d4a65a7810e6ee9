"""Translation on bible-en-fr: copying, a plain torch.nn.Transformer, attncoach uniform and with the length curriculum, the KV cache.

One script, one split, one tokenizer, one test set for every arm. For each seed, interleaved:

1. **attncoach, uniform**: the shipped `configs/bible-en-fr.yaml` through the real CLI
   (`python -m attncoach train --config ... train.seed=S`) in a subprocess;
2. **plain**: a `torch.nn.Transformer` encoder-decoder written here, of the same size (dim, layers
   per stack, heads, FFN width, dropout, activation, pre-/post-LN from the run's resolved config),
   with learned position embeddings and output scores tied to the shared embedding table, the run's
   own subword tokenizer (`model/source_tokenizer.json`), its split (`split_pairs` with the run's
   seed) and its training pairs (those within the run's `max_length`); AdamW with the same LR,
   betas, weight decay (matrices only), gradient clipping, label smoothing, batch size and
   length-bucketed batches; trained for the uniform run's `train_seconds`, with the LR warmup and
   decay spread over that wall-clock instead of over steps; greedy decoding written here;
3. **attncoach, length curriculum**: the same config with `curriculum.scheduler=competence
   curriculum.scorer=length`;

and the **copy** baseline (the English source as its own "translation"). Test BLEU and chrF with
sacrebleu (`corpus_scores`): greedy for every arm, beam 4 for attncoach. Then the curriculum's
efficiency (the training examples the curriculum run had seen at its first evaluation whose val
BLEU reached the uniform run's final val BLEU, over the uniform run's final examples), and the KV
cache: greedy decoding of the first seed's uniform model with and without the cache, every
sentence forced to exactly 64 target tokens (the model's end-of-sentence id is set to -1 for the
timing, so no row ever stops early: each step does exactly the work of a real step), at batch 1
and batch 32, repeated, median.

    python bench/translation.py                 # seed 0: two attncoach runs (about 15 minutes each on 2 cores),
                                                # the plain loop for as long, decoding, the cache (about 50 minutes)
    python bench/translation.py --seeds 0 1 2   # about 2.5 hours
    python bench/translation.py --quick         # 20 steps on the first 3,000 verse pairs; proves the script works
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import Tensor, nn

import attncoach
from attncoach.data.parallel import Pair, load_parallel_builtin, read_parallel, split_pairs
from attncoach.data.seq_tokenizer import BOS_ID, EOS_ID, PAD_ID
from attncoach.data.tokenizer import load_tokenizer
from attncoach.models.seq2seq import encode_sources, pad_ids
from attncoach.tasks.translation_metrics import corpus_scores

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conditions import conditions, save, summary  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "configs/bible-en-fr.yaml"
CORPUS = "bible-en-fr"
CURRICULUM = ["curriculum.scheduler=competence", "curriculum.scorer=length"]
COMMON = ["log.tensorboard=false"]
QUICK_PAIRS = 3000  # --quick: the corpus's first verse pairs, written to a TSV that every arm reads
# --quick: a few steps; max_length as the full corpus's (72) so that the positions hold 64 decoded tokens
QUICK = [
    "train.max_steps=20",
    "train.eval_every=10",
    "data.val_translations=20",
    "data.max_length=72",
    "log.report=false",
]
CACHE_TOKENS = 64
DECAYS = {
    "linear": lambda p: 1.0 - p,
    "cosine": lambda p: 0.5 * (1.0 + math.cos(math.pi * p)),
    "constant": lambda p: 1.0,
}


# ----------------------------------------------------------------------------- attncoach arms
def attncoach_train(out: Path, extra: list[str]) -> dict:
    """Train through the CLI in a subprocess; the run's metrics.json, with the process's wall-clock added."""
    command = [sys.executable, "-m", "attncoach", "train", "--quiet", "--config", CONFIG, f"output_dir={out}"]
    start = time.perf_counter()
    proc = subprocess.run([*command, *COMMON, *extra], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"attncoach train failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}")
    return {**json.loads((out / "metrics.json").read_text()), "wall_seconds": round(wall, 1)}


def attncoach_row(metrics: dict) -> dict:
    """The figures of one attncoach run: test scores greedy and beam, its cost, its coach's LR."""
    test = metrics["test"]
    return {
        "bleu": test["bleu"],
        "chrf": test["chrf"],
        "bleu_beam": test["bleu_beam"],
        "chrf_beam": test["chrf_beam"],
        "val_bleu_final": metrics["history"][-1]["val_bleu"],
        "train_seconds": metrics["train_seconds"],
        "eval_seconds": metrics["eval_seconds"],
        "wall_seconds": metrics["wall_seconds"],
        "steps": metrics["steps"],
        "examples_seen": metrics["examples_seen"],
        "tokens_seen": metrics["tokens_seen"],
        "best_step": metrics["best_step"],
        "stop_reason": metrics["stop_reason"],
        "coach_lr_scale": metrics.get("coach", {}).get("knobs", {}).get("lr_scale"),
        "history": [
            {k: h[k] for k in ("step", "examples_seen", "seconds", "val_bleu", "val_chrf")} for h in metrics["history"]
        ],
        "bleu_signature": test["bleu_signature"],
    }


def efficiency(uniform: dict, curriculum: dict) -> dict:
    """Examples the curriculum run had seen when its val BLEU first reached uniform's final one, over uniform's."""
    target = uniform["history"][-1]["val_bleu"]
    examples = uniform["history"][-1]["examples_seen"]
    reached = next((h for h in curriculum["history"] if h["val_bleu"] is not None and h["val_bleu"] >= target), None)
    return {
        "uniform_final_val_bleu": target,
        "uniform_final_examples": examples,
        "curriculum_step": None if reached is None else reached["step"],
        "curriculum_examples": None if reached is None else reached["examples_seen"],
        "ratio": None if reached is None else round(reached["examples_seen"] / examples, 4),
        "evaluations_at": [h["examples_seen"] for h in curriculum["history"]],
    }


# ----------------------------------------------------------------------------- the run's data
@dataclass
class RunData:
    """What an attncoach run trained and tested on, rebuilt from its directory for the other arms."""

    cfg: dict
    tokenizer: Any
    max_length: int
    train_sources: list[np.ndarray]  # token ids ending with </s>
    train_targets: list[np.ndarray]  # token ids, no specials
    test_pairs: list[Pair]
    test_sources: list[np.ndarray]  # cut to max_length, still ending with </s>


def read_pairs(data: dict) -> list[Pair]:
    if data["path"] is not None:
        pairs, _ = read_parallel(
            data["path"], data["format"], data["encoding"], data["source_column"], data["target_column"]
        )
        return pairs
    return load_parallel_builtin(data["builtin"] or CORPUS)


def run_splits(run: Path) -> tuple[dict, dict[str, list[Pair]]]:
    """The run's resolved config and its split of the pairs (its seed)."""
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    data = cfg["data"]
    return cfg, split_pairs(read_pairs(data), data["val_fraction"], data["test_fraction"], cfg["train"]["seed"])


def run_data(run: Path) -> RunData:
    """The run's split, its tokenizer, and its training pairs (those within its max_length)."""
    cfg, splits = run_splits(run)
    if not cfg["data"]["shared_vocabulary"]:
        raise SystemExit("the plain baseline ties one embedding table to both sides: keep data.shared_vocabulary true")
    max_length = json.loads((run / "data_stats.json").read_text())["max_length"]
    tokenizer = load_tokenizer(run / "model" / "source_tokenizer.json")
    sources = [
        np.append(np.asarray(e.ids, dtype=np.int64), EOS_ID)
        for e in tokenizer.encode_batch([p.source for p in splits["train"]])
    ]
    targets = [np.asarray(e.ids, dtype=np.int64) for e in tokenizer.encode_batch([p.target for p in splits["train"]])]
    keep = [i for i, (s, t) in enumerate(zip(sources, targets)) if max(len(s), len(t) + 1) <= max_length]
    test_sources, _ = encode_sources(tokenizer, [p.source for p in splits["test"]], max_length, EOS_ID)
    return RunData(
        cfg, tokenizer, max_length, [sources[i] for i in keep], [targets[i] for i in keep], splits["test"], test_sources
    )


# ----------------------------------------------------------------------------- the plain baseline
class PlainTransformer(nn.Module):
    """torch.nn.Transformer with one word + learned position embedding (LayerNorm, dropout) for both sides
    and output scores tied to the word embeddings."""

    def __init__(self, vocab: int, max_position: int, model: dict, encoder_layers: int) -> None:
        super().__init__()
        dim = model["dim"]
        self.word = nn.Embedding(vocab, dim, padding_idx=PAD_ID)
        self.position = nn.Embedding(max_position, dim)
        self.embed_norm = nn.LayerNorm(dim)
        self.embed_dropout = nn.Dropout(model["dropout"])
        with warnings.catch_warnings():  # nested tensors are off with norm_first: torch says so once
            warnings.simplefilter("ignore")
            self.transformer = nn.Transformer(
                d_model=dim,
                nhead=model["heads"],
                num_encoder_layers=encoder_layers,
                num_decoder_layers=model["layers"] - encoder_layers,
                dim_feedforward=model["ffn_dim"],
                dropout=model["dropout"],
                activation=model["activation"],
                batch_first=True,
                norm_first=model["norm_first"],
            )
        for table in (self.word, self.position):
            nn.init.normal_(table.weight, std=0.02)
        with torch.no_grad():
            self.word.weight[PAD_ID].zero_()

    def embed(self, ids: Tensor) -> Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        return self.embed_dropout(self.embed_norm(self.word(ids) + self.position(positions)))  # (B, T, D)

    def encode(self, source: Tensor) -> Tensor:
        return self.transformer.encoder(self.embed(source), src_key_padding_mask=source == PAD_ID)

    def decode(self, target_in: Tensor, memory: Tensor, source: Tensor) -> Tensor:
        length = target_in.shape[1]
        causal = torch.triu(torch.ones(length, length, dtype=torch.bool, device=target_in.device), diagonal=1)
        return self.transformer.decoder(
            self.embed(target_in),
            memory,
            tgt_mask=causal,
            tgt_is_causal=True,
            tgt_key_padding_mask=target_in == PAD_ID,
            memory_key_padding_mask=source == PAD_ID,
        )  # (B, T, D)

    def logits(self, hidden: Tensor) -> Tensor:
        return F.linear(hidden, self.word.weight)


def bucketed_batches(lengths: np.ndarray, batch_size: int, bucket: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch: shuffle, sort windows of ``batch_size * bucket`` by length, cut into batches, shuffle the batches."""
    order = rng.permutation(len(lengths))
    batches = []
    for start in range(0, len(order), batch_size * bucket):
        window = order[start : start + batch_size * bucket]
        window = window[np.argsort(lengths[window], kind="stable")]
        batches += [window[i : i + batch_size] for i in range(0, len(window), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def plain_optimizer(model: nn.Module, train: dict) -> torch.optim.AdamW:
    """AdamW; weight decay on the weight matrices only (not on embeddings, norms and biases)."""
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and n not in ("word.weight", "position.weight")]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and n not in ("word.weight", "position.weight"))]
    groups = [{"params": decay, "weight_decay": train["weight_decay"]}, {"params": rest, "weight_decay": 0.0}]
    try:
        return torch.optim.AdamW(groups, lr=train["lr"], betas=tuple(train["betas"]), fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, lr=train["lr"], betas=tuple(train["betas"]))


def time_lr_factor(fraction: float, warmup: float, schedule: str) -> float:
    """The LR multiplier at ``fraction`` of the wall-clock budget: linear warmup over ``warmup``, then the decay."""
    if fraction < warmup:
        return max(fraction / warmup, 1e-3)
    return DECAYS[schedule](min(1.0, (fraction - warmup) / max(1e-9, 1.0 - warmup)))


def train_plain(data: RunData, seconds: float, device: torch.device, seed: int) -> tuple[PlainTransformer, dict]:
    """Train the plain model for ``seconds`` of wall-clock (model built and data on hand before the clock starts)."""
    model_cfg, train = data.cfg["model"], data.cfg["train"]
    torch.manual_seed(seed)
    encoder_layers = model_cfg["encoder_layers"] or max(1, model_cfg["layers"] // 2)
    model = PlainTransformer(data.tokenizer.get_vocab_size(), data.max_length, model_cfg, encoder_layers).to(device)
    optimizer = plain_optimizer(model, train)
    bf16 = device.type == "cuda" and train["precision"] in ("auto", "bf16") and torch.cuda.is_bf16_supported()
    lengths = np.fromiter((len(s) for s in data.train_sources), dtype=np.int64)
    rng = np.random.default_rng(seed)
    steps = examples = tokens = 0
    model.train()
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for index in bucketed_batches(lengths, train["batch_size"], train["bucket_size"], rng):
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
            for group in optimizer.param_groups:
                group["lr"] = train["lr"] * time_lr_factor(elapsed / seconds, train["warmup_ratio"], train["schedule"])
            loss, count = plain_step(model, data, index, device, train["label_smoothing"], bf16)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), train["grad_clip"])
            optimizer.step()
            steps, examples, tokens = steps + 1, examples + len(index), tokens + count
    if device.type == "cuda":
        torch.cuda.synchronize()
    spent = time.perf_counter() - start
    return model, {
        "steps": steps,
        "examples_seen": examples,
        "target_tokens_seen": tokens,
        "train_seconds": round(spent, 3),
    }


def plain_step(
    model: PlainTransformer, data: RunData, index: np.ndarray, device: torch.device, smoothing: float, bf16: bool
) -> tuple[Tensor, int]:
    """Teacher-forced, label-smoothed cross-entropy over the batch's real target tokens."""
    source = pad_ids([data.train_sources[i] for i in index]).to(device)
    target_in = pad_ids([np.concatenate([[BOS_ID], data.train_targets[i]]) for i in index]).to(device)
    target_out = pad_ids([np.append(data.train_targets[i], EOS_ID) for i in index]).to(device)
    mask = target_in != PAD_ID
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        hidden = model.decode(target_in, model.encode(source), source)
        logits = model.logits(hidden[mask]).float()  # (N, V): only the real target positions
    return F.cross_entropy(logits, target_out[mask], label_smoothing=smoothing), int(mask.sum())


@torch.inference_mode()
def greedy_plain(
    model: PlainTransformer, sources: list[np.ndarray], tokenizer: Any, max_position: int, batch: int
) -> list[str]:
    """Greedy translations in input order: the decoder re-reads the whole prefix at every step (no cache)."""
    model.eval()
    device = next(model.parameters()).device
    out = [""] * len(sources)
    order = np.argsort([len(s) for s in sources], kind="stable")
    for start in range(0, len(order), batch):
        index = order[start : start + batch]
        source = pad_ids([sources[i] for i in index]).to(device)
        limit = min(2 * int((source != PAD_ID).sum(dim=1).max()) + 10, max_position - 1)  # as attncoach's generate
        memory = model.encode(source)
        tokens = torch.full((len(index), 1), BOS_ID, dtype=torch.long, device=device)
        done = torch.zeros(len(index), dtype=torch.bool, device=device)
        for _ in range(limit):
            best = model.logits(model.decode(tokens, memory, source)[:, -1]).argmax(-1).masked_fill(done, EOS_ID)
            tokens = torch.cat([tokens, best[:, None]], dim=1)
            done |= best == EOS_ID
            if bool(done.all()):
                break
        for i, row in zip(index, tokens[:, 1:].tolist()):
            out[i] = tokenizer.decode(row[: row.index(EOS_ID)] if EOS_ID in row else row, skip_special_tokens=True)
    return out


def plain_row(data: RunData, seconds: float, device: torch.device, seed: int) -> dict:
    model, cost = train_plain(data, seconds, device, seed)
    start = time.perf_counter()
    hypotheses = greedy_plain(
        model, data.test_sources, data.tokenizer, data.max_length, data.cfg["train"]["eval_batch_size"]
    )
    scores = corpus_scores(hypotheses, [p.target for p in data.test_pairs])
    return {
        "bleu": scores["bleu"],
        "chrf": scores["chrf"],
        **cost,
        "budget_seconds": seconds,
        "decode_seconds": round(time.perf_counter() - start, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
        "example": {
            "source": data.test_pairs[0].source,
            "plain": hypotheses[0],
            "reference": data.test_pairs[0].target,
        },
    }


# ----------------------------------------------------------------------------- the KV cache
def kv_cache(run: Path, device: str, repeats: int, single_sentences: int) -> dict:
    """Greedy decoding sentences/s of the trained model, exactly 64 target tokens each, with and without the cache."""
    translator = attncoach.load(run, device=device)
    model = translator.model
    if model.encoder.config.max_position - 1 < CACHE_TOKENS:
        raise SystemExit(
            f"the model's positions hold {model.encoder.config.max_position - 1} target tokens, not {CACHE_TOKENS}"
        )
    texts = [p.source for p in run_splits(run)[1]["test"][:32]]
    ids, _ = encode_sources(translator.source_tokenizer, texts, translator.max_length, model.eos_id)
    model.eos_id = -1  # no token ever ends a row: every step is a real decoding step, all 64 of them
    settings = {"batch_1": [ids[i : i + 1] for i in range(single_sentences)], "batch_32": [ids]}
    seconds: dict[str, dict[str, list[float]]] = {name: {"cache": [], "no_cache": []} for name in settings}
    for rep in range(repeats + 1):  # the first round warms up and is not kept
        for name, batches in settings.items():
            for use_cache in (True, False):
                took = timed_generate(model, batches, use_cache, device)
                if rep > 0:
                    seconds[name]["cache" if use_cache else "no_cache"].append(took)
    sentences = {"batch_1": single_sentences, "batch_32": len(ids)}
    out: dict[str, Any] = {"target_tokens": CACHE_TOKENS, "repeats": repeats, "device": device}
    for name, both in seconds.items():
        rate = {k: summary([sentences[name] / s for s in v]) for k, v in both.items()}
        out[name] = {
            "sentences": sentences[name],
            "sentences_per_s": rate,
            "tokens_per_s": {k: round(CACHE_TOKENS * v["median"], 1) for k, v in rate.items()},
            "speedup": round(rate["cache"]["median"] / rate["no_cache"]["median"], 3),
        }
    return out


def timed_generate(model: Any, batches: list[list[np.ndarray]], use_cache: bool, device: str) -> float:
    start = time.perf_counter()
    for rows in batches:
        source = pad_ids(rows).to(device)
        out = model.generate(source, source != PAD_ID, max_length=CACHE_TOKENS, use_cache=use_cache)
        if any(len(tokens) != CACHE_TOKENS for tokens in out):
            raise SystemExit(f"a translation stopped before {CACHE_TOKENS} tokens: the timing would not be fair")
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


# ----------------------------------------------------------------------------- the benchmark
def quick_corpus(tmp: Path) -> Path:
    """The corpus's first QUICK_PAIRS pairs as a TSV with a header (--quick)."""
    path = tmp / "bible-quick.tsv"
    rows = [f"{p.source}\t{p.target}" for p in load_parallel_builtin(CORPUS)[:QUICK_PAIRS]]
    path.write_text("source\ttarget\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def one_seed(seed: int, budget: list[str], device: torch.device, tmp: Path) -> dict:
    """Uniform, then plain for as long as uniform trained, then the curriculum; the copy baseline; efficiency."""
    uniform_run, curriculum_run = tmp / f"uniform-{seed}", tmp / f"curriculum-{seed}"
    uniform = attncoach_row(attncoach_train(uniform_run, [f"train.seed={seed}", *budget]))
    print(f"seed {seed} uniform: test BLEU {uniform['bleu']:.2f} ({uniform['train_seconds']:.0f} s)", flush=True)
    data = run_data(uniform_run)
    plain = plain_row(data, uniform["train_seconds"], device, seed)
    print(f"seed {seed} plain: test BLEU {plain['bleu']:.2f} ({plain['steps']} steps)", flush=True)
    curriculum = attncoach_row(attncoach_train(curriculum_run, [f"train.seed={seed}", *budget, *CURRICULUM]))
    print(
        f"seed {seed} curriculum: test BLEU {curriculum['bleu']:.2f} ({curriculum['train_seconds']:.0f} s)", flush=True
    )
    copy = corpus_scores([p.source for p in data.test_pairs], [p.target for p in data.test_pairs])
    return {
        "seed": seed,
        "test_pairs": len(data.test_pairs),
        "training_pairs": len(data.train_sources),
        "max_length": data.max_length,
        "copy": {"bleu": copy["bleu"], "chrf": copy["chrf"]},
        "plain": plain,
        "uniform": uniform,
        "curriculum": curriculum,
        "efficiency": efficiency(uniform, curriculum),
    }


def settings(run: Path, budget: list[str], device: torch.device) -> dict:
    """Both sides' settings, from the first uniform run's resolved config."""
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    model = {
        k: cfg["model"][k]
        for k in ("dim", "layers", "encoder_layers", "heads", "ffn_dim", "dropout", "activation", "norm_first")
    }
    keys = (
        "max_steps",
        "batch_size",
        "lr",
        "betas",
        "weight_decay",
        "warmup_ratio",
        "schedule",
        "label_smoothing",
        "grad_clip",
        "bucket_size",
        "threads",
        "eval_every",
    )
    train = {k: cfg["train"][k] for k in keys}
    return {
        "config": CONFIG,
        "model": model,
        "data": {
            k: cfg["data"][k]
            for k in (
                "builtin",
                "path",
                "subword",
                "vocab_size",
                "shared_vocabulary",
                "val_fraction",
                "test_fraction",
                "val_translations",
            )
        },
        "attncoach": {
            "overrides": [*COMMON, *budget],
            "curriculum_overrides": CURRICULUM,
            "train": train,
            "coach": cfg["coach"],
            "decoding": {"beam_size": cfg["model"]["beam_size"], "length_penalty": cfg["model"]["length_penalty"]},
        },
        "plain": {
            "module": "torch.nn.Transformer (batch_first, norm_first as the model), one word + learned position "
            "embedding with LayerNorm and dropout for both sides, tied output",
            "optimizer": "AdamW, weight decay on weight matrices only, fused where available",
            "train": {k: train[k] for k in keys if k not in ("max_steps", "eval_every", "threads")},
            "schedule": "warmup and decay over the wall-clock budget (fraction of the uniform run's train_seconds)",
            "batches": "shuffled windows of batch_size x bucket_size sorted by source length, batches shuffled",
            "budget": "the uniform run's train_seconds (its evaluations included; the plain loop evaluates nothing while training)",
            "decoding": "greedy, the whole prefix re-decoded each step, at most 2 x source length + 10 tokens",
            "device": str(device),
            "torch_threads": torch.get_num_threads(),
        },
    }


def summarise(runs: list[dict]) -> dict:
    out: dict[str, Any] = {}
    for arm in ("copy", "plain", "uniform", "curriculum"):
        keys = ("bleu", "chrf", "bleu_beam", "chrf_beam") if arm in ("uniform", "curriculum") else ("bleu", "chrf")
        out[arm] = {k: summary([r[arm][k] for r in runs]) for k in keys}
    ratios = [r["efficiency"]["ratio"] for r in runs]
    out["efficiency_ratio"] = None if None in ratios else summary(ratios)
    out["bleu_uniform_minus_plain"] = summary([r["uniform"]["bleu"] - r["plain"]["bleu"] for r in runs])
    return out


def goals(result: dict) -> dict:
    s, cache = result["summary"], result["kv_cache"]
    ratio = s["efficiency_ratio"]
    return {
        "attncoach_bleu_ge_plain": s["bleu_uniform_minus_plain"]["median"] >= 0,
        "curriculum_examples_ratio_le_0.7": ratio is not None and ratio["median"] <= 0.7,
        "kv_cache_speedup_ge_3_batch_1": cache["batch_1"]["speedup"] >= 3,
        "kv_cache_speedup_ge_3_batch_32": cache["batch_32"]["speedup"] >= 3,
    }


def print_table(result: dict) -> None:
    print(
        f"\n{'seed':>4}  {'arm':<11} {'BLEU':>6} {'chrF':>6} {'BLEU b4':>8} {'chrF b4':>8} {'train s':>8} {'steps':>6}"
    )
    for run in result["runs"]:
        for arm in ("copy", "plain", "uniform", "curriculum"):
            row = run[arm]
            beam = f"{row['bleu_beam']:>8.2f} {row['chrf_beam']:>8.2f}" if "bleu_beam" in row else f"{'-':>8} {'-':>8}"
            cost = f"{row['train_seconds']:>8.0f} {row['steps']:>6}" if "steps" in row else f"{'-':>8} {'-':>6}"
            print(f"{run['seed']:>4}  {arm:<11} {row['bleu']:>6.2f} {row['chrf']:>6.2f} {beam} {cost}")
        e = run["efficiency"]
        reached = (
            "not reached"
            if e["ratio"] is None
            else f"{e['ratio']:.3f} ({e['curriculum_examples']} / {e['uniform_final_examples']})"
        )
        print(f"      curriculum examples to uniform's final val BLEU {e['uniform_final_val_bleu']:.2f}: {reached}")
    for name in ("batch_1", "batch_32"):
        c = result["kv_cache"][name]
        rate = c["sentences_per_s"]
        print(
            f"KV cache {name}: {rate['cache']['median']:.2f} vs {rate['no_cache']['median']:.2f} sentences/s "
            f"({CACHE_TOKENS} tokens each): x{c['speedup']:.2f}"
        )
    print("goals:", result["goals"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--cache-repeats", type=int, default=5)
    parser.add_argument("--cache-single", type=int, default=16, help="sentences decoded one at a time (batch 1)")
    parser.add_argument("--quick", action="store_true", help="20 steps on 3,000 pairs; proves the script works")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # attncoach's train.device auto
    measured_under = conditions(device.type)
    if args.quick:
        args.seeds, args.cache_repeats, args.cache_single = args.seeds[:1], 1, 2
    with tempfile.TemporaryDirectory() as tmp:
        budget = [*QUICK, f"data.path={quick_corpus(Path(tmp))}", "data.builtin=null"] if args.quick else []
        runs = [one_seed(seed, budget, device, Path(tmp)) for seed in args.seeds]
        first = Path(tmp) / f"uniform-{args.seeds[0]}"
        cache = kv_cache(first, device.type, args.cache_repeats, args.cache_single)
        result = {
            "benchmark": "translation",
            "conditions": measured_under,
            "quick": args.quick,
            "corpus": f"{CORPUS} (first {QUICK_PAIRS} pairs)" if args.quick else CORPUS,
            "seeds": args.seeds,
            "settings": settings(first, budget, device),
            "runs": runs,
            "kv_cache": cache,
        }
    result["summary"] = summarise(runs)
    result["goals"] = goals(result)
    print_table(result)
    save("translation", result, quick=args.quick)


if __name__ == "__main__":
    main()
