"""Serving: the exported forms (fp32, int8, ONNX, full and smallest), the HTTP server under load, fuzzing.

One script, one machine, one run:

1. **Export forms**, on the main job's model (``configs/tweets-sentiment.yaml``, an elastic
   supernet) and on MiniLM fine-tuned on banking77 as a supernet (``configs/banking77-minilm.yaml``
   with ``elastic.enabled=true``): fp32 full (the run's model), the smallest trained sub-net in fp32,
   int8 full, int8 smallest, ONNX full and ONNX smallest (fp32 graphs), ONNX int8 full and ONNX int8
   smallest (``--quantize int8 --onnx``: the graphs quantised by ONNX Runtime), each built by
   ``attncoach export`` and loaded with ``attncoach.load``. For each: latency p50/p99 and throughput at batch 1 and 32 on the
   real test split's texts (a seeded arrival order, in consecutive batches), timed both as served
   (``predict``: tokenize, the forward passes that cost least for the model as the server's
   micro-batcher runs them, probabilities) and as one forward pass padded to the batch's longest text; the variants
   interleaved in every repetition
   (A B C ... A B C ...) after a warm-up; macro-F1 on the test split; the bytes of the file each
   runtime loads.
2. **The server on loopback** (the MiniLM run): ``attncoach serve`` started as a process on a free
   127.0.0.1 port, with micro-batching (default settings) and without (``--max-batch 1``), and
   ``transformers.pipeline("text-classification")`` behind a plain FastAPI route served by uvicorn
   (the same weights mapped back to a Hugging Face BERT, the same torch threads). 32 keep-alive
   clients send one real test text per request; the three servers take turns, a part of the
   requests each per repetition. The load generator is this script's own (raw asyncio streams
   speaking HTTP/1.1; its ceiling is measured against a stub server in the same run).
3. **Fuzzing** ``/openapi.json`` of the running server with schemathesis (every check; 413, the
   documented answer to a body over a limit, is configured as an accepted answer).

    python bench/serve.py                          # trains both models first (see bench/README.md for the time)
    python bench/serve.py --main-run runs/tweets --minilm-run runs/intents-minilm-elastic   # reuse trained runs
    python bench/serve.py --work-dir /tmp/serve    # keep the runs and exports there (for --main-run / --minilm-run)
    python bench/serve.py --quick                  # a few training steps and requests: proves the script works
"""

import argparse
import asyncio
import contextlib
import gc
import http.client
import json
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conditions import conditions, save, summary  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = {  # name -> (config, overrides that make it the model benchmarked)
    "tweets": ("configs/tweets-sentiment.yaml", []),
    "minilm": ("configs/banking77-minilm.yaml", ["elastic.enabled=true"]),
}
QUICK_TRAIN = {
    "tweets": ["train.max_steps=20"],
    "minilm": ["train.max_steps=3", "train.eval_every=3", "elastic.rewire_batches=2", "elastic.random_subnets=0"],
}
BATCHES = (1, 32)
LEVELS = ("served", "forward")  # predict() as the server calls it; the model's forward pass alone
HOST = "127.0.0.1"
STARTED = time.perf_counter()
# schemathesis' default accepted answers, plus 413: a body, a list or a text over the server's limits
NEGATIVE_ACCEPTED = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]
POSITIVE_ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "413", "429", "5xx"]


# ---------------------------------------------------------------- runs
def say(message: str) -> None:
    """A progress line, stamped with the seconds since the script started."""
    print(f"[{time.perf_counter() - STARTED:5.0f} s] {message}", flush=True)


def attncoach_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "attncoach", *args]


def run_checked(cmd: list[str], what: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}")
    return proc


def train_run(name: str, out: Path, seed: int, quick: bool, minilm_epochs: float | None) -> dict[str, Any]:
    """Train one of MODELS with the real CLI; its run directory is ``out``."""
    config, overrides = MODELS[name]
    extra = list(QUICK_TRAIN[name]) if quick else []
    if name == "minilm" and minilm_epochs is not None and not quick:
        extra.append(f"train.epochs={minilm_epochs:g}")
    cmd = attncoach_command(
        "train", "--quiet", "--config", config, *overrides, f"train.seed={seed}", f"output_dir={out}",
        "log.tensorboard=false", *extra,
    )  # fmt: skip
    say(f"training {name}: {' '.join(cmd[2:])}")
    start = time.perf_counter()
    run_checked(cmd, f"training {name}")
    return {
        "trained_here": True,
        "command": " ".join(["attncoach", *cmd[3:]]),
        "wall_seconds": round(time.perf_counter() - start, 1),
    }


def run_record(run: Path) -> dict[str, Any]:
    """What the run says about itself: its steps, epochs, test macro-F1 (full and smallest), its config."""
    metrics = json.loads((run / "metrics.json").read_text())
    elastic = metrics.get("elastic") or {}
    return {
        "run": str(run),
        "steps": metrics.get("steps"),
        "examples_seen": metrics.get("examples_seen"),
        "train_seconds": metrics.get("train_seconds"),
        "test_macro_f1": metrics["test"]["macro_f1"],
        "test_macro_f1_smallest": (elastic.get("test_smallest") or {}).get("macro_f1"),
        "smallest": elastic.get("smallest"),
        "config": (run / "config.yaml").read_text(),
    }


def check_run(run: Path, name: str) -> Path:
    """A trained elastic run directory (the script needs its test split and its smallest sub-net)."""
    run = Path(run).resolve()
    config_file = run / "model" / "model_config.json"
    if not (run / "config.yaml").is_file() or not config_file.is_file():
        raise SystemExit(f"--{name}-run {run}: not a run directory (it needs config.yaml and model/)")
    if not json.loads(config_file.read_text()).get("elastic"):
        raise SystemExit(f"--{name}-run {run}: the model was not trained elastically (elastic.enabled=true)")
    return run


def test_split(run: Path) -> tuple[list[str], list[str]]:
    """The run's test split as raw texts and gold label names, rebuilt from its config."""
    from attncoach.data.sources import read_examples
    from attncoach.data.splits import dedupe, split_examples
    from attncoach.train.settings import load_run_config

    cfg = load_run_config(run / "config.yaml")
    examples, _ = dedupe(read_examples(cfg.data))
    test = split_examples(
        examples, cfg.data.val_fraction, cfg.data.test_fraction, cfg.train.seed, cfg.data.label_column
    )
    return [e.text for e in test["test"]], [e.label for e in test["test"]]


# ---------------------------------------------------------------- the export forms
@dataclass(frozen=True)
class Variant:
    """One export form: its model directory, the runtime that loads it, the file that runtime reads."""

    name: str
    path: Path
    runtime: str  # "torch" | "onnx"
    weights: str  # "model.safetensors" | "model.onnx"
    built_by: str  # the attncoach command that wrote the directory


def smallest_subnet(run: Path) -> tuple[float, float]:
    """The smallest width and depth the run trained (its elastic space)."""
    space = json.loads((run / "model" / "model_config.json").read_text())["elastic"]
    return min(space["widths"]), min(space["depths"])


def build_variants(run: Path, out: Path, quick: bool) -> tuple[list[Variant], dict[str, Any]]:
    """Export the forms with ``attncoach export`` (6 commands); each directory's parity report.

    Quick mode exports from a copy of the model directory outside the run, so that export skips
    its parity check on the test split (this script scores every form on it anyway).
    """
    source = run
    if quick:
        source = out / "model"
        shutil.copytree(run / "model", source)
    width, depth = smallest_subnet(run)
    smallest = ["--width", f"{width:g}", "--depth", f"{depth:g}"]
    exports = {
        "full-onnx": ["--onnx"],
        "smallest-onnx": [*smallest, "--onnx"],
        "full-int8": ["--quantize", "int8"],
        "smallest-int8": [*smallest, "--quantize", "int8"],
        "full-int8-onnx": ["--quantize", "int8", "--onnx"],
        "smallest-int8-onnx": [*smallest, "--quantize", "int8", "--onnx"],
    }
    commands, parity = {}, {}
    for folder, options in exports.items():
        cmd = attncoach_command("export", str(source), *options, "--out", str(out / folder))
        commands[folder] = " ".join(["attncoach", *cmd[3:]])
        start = time.perf_counter()
        proc = run_checked(cmd, f"attncoach export {' '.join(options)}")
        print(f"  {commands[folder]} ({time.perf_counter() - start:.0f} s)", flush=True)
        for line in proc.stdout.strip().splitlines():
            print(f"    {line}", flush=True)
        parity[folder] = json.loads((out / folder / "parity.json").read_text())
    own = f"attncoach train (the run's own model: {run / 'model'})"
    variants = [
        Variant("fp32_full", run / "model", "torch", "model.safetensors", own),
        Variant("fp32_smallest", out / "smallest-onnx", "torch", "model.safetensors", commands["smallest-onnx"]),
        Variant("int8_full", out / "full-int8", "torch", "model.safetensors", commands["full-int8"]),
        Variant("int8_smallest", out / "smallest-int8", "torch", "model.safetensors", commands["smallest-int8"]),
        Variant("onnx_full", out / "full-onnx", "onnx", "model.onnx", commands["full-onnx"]),
        Variant("onnx_smallest", out / "smallest-onnx", "onnx", "model.onnx", commands["smallest-onnx"]),
        Variant("onnx_int8_full", out / "full-int8-onnx", "onnx", "model.onnx", commands["full-int8-onnx"]),
        Variant("onnx_int8_smallest", out / "smallest-int8-onnx", "onnx", "model.onnx", commands["smallest-int8-onnx"]),
    ]
    return variants, {"smallest": {"width": width, "depth": depth}, "exports": commands, "parity": parity}


def macro_f1(predictor: Any, texts: list[str], gold: list[str]) -> float:
    """Test macro-F1 of a loaded model, computed as the run computes it (classes present in gold)."""
    from attncoach.tasks.metrics import classification_metrics

    index = {label: i for i, label in enumerate(predictor.labels)}
    predicted = [index[p["label"]] for p in predictor.predict(texts)]
    return float(classification_metrics([index[g] for g in gold], predicted, list(predictor.labels))["macro_f1"])


def forward_inputs(predictor: Any, batches: list[list[str]]) -> list[tuple[Any, Any]]:
    """Each batch tokenized and padded to its longest text, for timing one forward pass of it alone."""
    from attncoach.data.batching import collate
    from attncoach.data.tokenizer import encode_texts

    out = []
    for texts in batches:
        batch = collate(encode_texts(predictor.tokenizer, texts, predictor.max_length))
        out.append((batch["input_ids"], batch["attention_mask"]))
    return out


def forward_call(model: Any) -> Callable[[tuple[Any, Any]], Any]:
    return lambda batch: model(*batch)


def timed_calls(call: Callable[[Any], Any], inputs: Sequence[Any]) -> list[float]:
    """Seconds of each call, one input after the other."""
    times = []
    for one in inputs:
        start = time.perf_counter()
        call(one)
        times.append(time.perf_counter() - start)
    return times


def pass_figures(times: list[float], texts: int) -> dict[str, float]:
    ms = np.asarray(times) * 1000
    return {
        "throughput": texts / float(np.sum(times)),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def measure_forms(
    variants: list[Variant], texts: list[str], gold: list[str], args: argparse.Namespace
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Quality, size, and interleaved latency / throughput of every form of one model."""
    import torch

    import attncoach

    rng = np.random.default_rng(args.seed)
    order = [texts[i] for i in rng.permutation(len(texts))]  # arrival order
    batch_texts = {
        1: [[t] for t in order[: args.latency_texts]],
        32: [order[i : i + 32] for i in range(0, (128 if args.quick else len(order)) - 31, 32)],
    }
    quality_texts, quality_gold = texts, gold
    if args.quick:  # a seeded sample of the test split: the quick run only proves the script works
        sample = sorted(rng.choice(len(texts), size=min(args.quality_texts, len(texts)), replace=False))
        quality_texts, quality_gold = [texts[i] for i in sample], [gold[i] for i in sample]
    loaded, rows = {}, {}
    for v in variants:
        predictor = attncoach.load(v.path, runtime=v.runtime)
        loaded[v.name] = predictor
        files = {f.name: f.stat().st_size for f in sorted(v.path.iterdir()) if f.is_file()}
        rows[v.name] = {
            "path": str(v.path),
            "runtime": v.runtime,
            "quantization": predictor.quantization,
            "built_by": v.built_by,
            "file": v.weights,
            "file_bytes": files[v.weights],
            "directory_files": files,
            "test_macro_f1": macro_f1(predictor, quality_texts, quality_gold),
            "test_texts_scored": len(quality_texts),
        }
        print(f"  {v.name}: {files[v.weights] / 1e6:.2f} MB ({v.weights}), test macro-F1 "
              f"{rows[v.name]['test_macro_f1']:.4f}", flush=True)  # fmt: skip
    inputs = {
        (name, level, b): (batch_texts[b] if level == "served" else forward_inputs(p, batch_texts[b]))
        for name, p in loaded.items()
        for level in LEVELS
        for b in BATCHES
    }
    calls = {(name, "served"): p.predict for name, p in loaded.items()}
    calls |= {(name, "forward"): forward_call(p.model) for name, p in loaded.items()}
    passes: dict[tuple[str, str, int], list[dict[str, float]]] = {key: [] for key in inputs}
    names = [v.name for v in variants]
    with torch.inference_mode():
        for rep in range(args.warmup + args.repeats):
            shift = rep % len(names)
            rotated = names[shift:] + names[:shift]  # every form takes every place in turn
            for b in BATCHES:
                for level in LEVELS:
                    for name in rotated:
                        times = timed_calls(calls[name, level], inputs[name, level, b])
                        if rep >= args.warmup:
                            passes[name, level, b].append(pass_figures(times, b * len(times)))
            say(f"  repetition {rep + 1}/{args.warmup + args.repeats}{' (warm-up)' if rep < args.warmup else ''} done")
    for name in names:
        rows[name]["timing"] = {
            level: {
                str(b): {
                    "calls_per_pass": len(inputs[name, level, b]),
                    "texts_per_pass": b * len(inputs[name, level, b]),
                    **{
                        key: summary([p[key] for p in passes[name, level, b]])
                        for key in ("throughput", "p50_ms", "p99_ms")
                    },
                }
                for b in BATCHES
            }
            for level in LEVELS
        }
    ratios = {
        f"{a}/{b}": {
            level: {
                str(size): summary(
                    [x["throughput"] / y["throughput"] for x, y in zip(passes[a, level, size], passes[b, level, size])]
                )
                for size in BATCHES
            }
            for level in LEVELS
        }
        for a, b in (
            ("int8_smallest", "fp32_full"),
            ("onnx_full", "fp32_full"),
            ("onnx_smallest", "fp32_smallest"),
            ("int8_full", "fp32_full"),
            ("fp32_smallest", "fp32_full"),
            ("onnx_int8_smallest", "fp32_full"),
            ("onnx_int8_full", "fp32_full"),
        )
    }
    loaded.clear()
    gc.collect()
    return rows, ratios


def form_goals(rows: dict[str, Any], ratios: dict[str, Any]) -> dict[str, Any]:
    """The issue's goals for one model. Each ratio is measured per repetition (the two forms timed in
    the same repetition), as served and as the forward pass alone; the verdict is the served one."""

    def cell(pair: str, level: str, batch: str, at_least: float) -> dict[str, Any]:
        ratio = ratios[pair][level][batch]
        return {"pair": pair, "level": level, "batch": int(batch), "ratio": ratio, "met": ratio["median"] >= at_least}

    def int8_speed(form: str, runtime: str) -> dict[str, Any]:
        lost = 100 * (rows["fp32_full"]["test_macro_f1"] - rows[form]["test_macro_f1"])
        speed = {f"{level}_b{b}": cell(f"{form}/fp32_full", level, b, 5) for level in LEVELS for b in ("1", "32")}
        return {
            "goal": f"int8 smallest ({runtime}) >= 5x the throughput of fp32 full (served, batch 1 and 32), "
            "<= 2 points of test macro-F1 lost",
            "macro_f1_points_lost": lost,
            "cells": speed,
            "met": lost <= 2 and all(c["met"] for k, c in speed.items() if k.startswith("served")),
        }

    torch_int8 = int8_speed("int8_smallest", "torch")
    lost = torch_int8["macro_f1_points_lost"]
    fraction = rows["int8_smallest"]["file_bytes"] / rows["fp32_full"]["file_bytes"]
    onnx = {
        f"{form}_{level}_b1": cell(f"onnx_{form}/fp32_{form}", level, "1", 1.5)
        for form in ("full", "smallest")
        for level in LEVELS
    }
    return {
        "int8_smallest_throughput": torch_int8,
        # the same goal for the int8 form ONNX Runtime runs (--quantize int8 --onnx): another row, not the goal's
        "onnx_int8_smallest_throughput": int8_speed("onnx_int8_smallest", "ONNX Runtime"),
        "onnx_batch1": {
            "goal": "ONNX Runtime >= 1.5x torch eager at batch 1 (fp32, full and smallest, served)",
            "cells": onnx,
            "met": all(c["met"] for k, c in onnx.items() if "_served_" in k),
        },
        "int8_smallest_bytes": {
            "goal": "int8 smallest's file <= 1/4 of fp32 full's, <= 2 points of test macro-F1 lost",
            "fraction": fraction,
            "macro_f1_points_lost": lost,
            "met": fraction <= 0.25 and lost <= 2,
        },
    }


# ---------------------------------------------------------------- the Hugging Face baseline
def mean_pooled_bert_class() -> type:
    """BERT with attncoach's head (mean pooling over real tokens, dropout, one linear layer).

    transformers' BertForSequenceClassification pools the [CLS] token through a dense + tanh
    layer; the fine-tuned attncoach model pools by the mean, so the baseline keeps the same
    head to give the same predictions (the pooler's one dense layer is all the cost it leaves out).
    """
    import torch
    from transformers import BertModel, BertPreTrainedModel
    from transformers.modeling_outputs import SequenceClassifierOutput

    class MeanPooledBertForSequenceClassification(BertPreTrainedModel):
        def __init__(self, config: Any) -> None:
            super().__init__(config)
            self.num_labels = config.num_labels
            self.bert = BertModel(config, add_pooling_layer=False)
            self.dropout = torch.nn.Dropout(config.hidden_dropout_prob)
            self.classifier = torch.nn.Linear(config.hidden_size, config.num_labels)
            self.post_init()

        def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, **kwargs: Any) -> Any:
            hidden = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state  # (B, T, D)
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)  # (B, D)
            return SequenceClassifierOutput(logits=self.classifier(self.dropout(pooled)))

    return MeanPooledBertForSequenceClassification


def hugging_face_folder(run: Path, out: Path) -> dict[str, Any]:
    """The run's fine-tuned MiniLM written as a Hugging Face folder (config.json, weights, tokenizer).

    The weights are mapped back through attncoach's own BERT mapping
    (``attncoach.models.pretrained.ARCHITECTURES["bert"]``): each encoder tensor goes to the
    checkpoint name(s) it was loaded from, the fused q/k/v projection split in three.
    """
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig

    import attncoach
    from attncoach.models.pretrained import ARCHITECTURES, resolve_backbone
    from attncoach.train.settings import load_run_config

    predictor = attncoach.load(run)
    model, encoder = predictor.model, predictor.model.encoder.config
    if model.head.dense is not None or model.head.pooling_name != "mean":
        raise SystemExit("the baseline maps a mean-pooled head without a hidden layer only")
    mapping = ARCHITECTURES["bert"]
    state: dict[str, torch.Tensor] = {}
    for key, tensor in model.encoder.state_dict().items():
        names = mapping.source_names(key)
        for name, part in zip(names, tensor.chunk(len(names), dim=0)):
            state[f"bert.{name}"] = part.contiguous().clone()
    state["classifier.weight"] = model.head.out.weight.detach().clone()
    state["classifier.bias"] = model.head.out.bias.detach().clone()
    out.mkdir(parents=True)
    save_file(state, str(out / "model.safetensors"))
    BertConfig(
        vocab_size=encoder.vocab_size,
        hidden_size=encoder.dim,
        num_hidden_layers=encoder.layers,
        num_attention_heads=encoder.heads,
        intermediate_size=encoder.ffn_dim,
        max_position_embeddings=encoder.max_position,
        type_vocab_size=encoder.type_vocab_size,
        layer_norm_eps=encoder.layer_norm_eps,
        hidden_act=encoder.activation,
        pad_token_id=encoder.pad_id,
        id2label=dict(enumerate(predictor.labels)),
        label2id={label: i for i, label in enumerate(predictor.labels)},
    ).save_pretrained(out)
    backbone = resolve_backbone(load_run_config(run / "config.yaml").model.backbone)
    copied = []
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (backbone / name).is_file():
            shutil.copy(backbone / name, out / name)
            copied.append(name)
    return {
        "folder": str(out),
        "backbone": str(backbone),
        "tokenizer_files": copied,
        "max_length": predictor.max_length,
    }


def hugging_face_pipeline(folder: Path) -> Any:
    from transformers import AutoTokenizer, pipeline
    from transformers.utils import logging

    # it logs an error that the class is "not supported for text-classification": it runs all the same
    logging.set_verbosity(logging.CRITICAL)
    logging.disable_progress_bar()

    model = mean_pooled_bert_class().from_pretrained(folder).eval()
    return pipeline("text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(folder), device="cpu")


def pipeline_agreement(run: Path, folder: Path, texts: list[str], max_length: int) -> dict[str, Any]:
    """How closely the pipeline over the mapped weights answers like the attncoach model."""
    import attncoach

    ours = attncoach.load(run).predict(texts)
    theirs = hugging_face_pipeline(folder)(texts, top_k=None, truncation=True, max_length=max_length, batch_size=32)
    same, largest = 0, 0.0
    for a, b in zip(ours, theirs):
        scores = {entry["label"]: entry["score"] for entry in b}
        same += a["label"] == max(scores, key=scores.get)
        largest = max(largest, max(abs(p - scores[label]) for label, p in a["probabilities"].items()))
    return {"texts": len(texts), "label_agreement": same / len(texts), "max_abs_probability_diff": largest}


def baseline_server(folder: Path, port: int, threads: int, max_length: int) -> None:
    """What a user writes by hand: the pipeline behind a plain FastAPI route, served by uvicorn."""
    import torch

    torch.set_num_threads(threads)
    import uvicorn
    from fastapi import FastAPI
    from pydantic import BaseModel

    classifier = hugging_face_pipeline(folder)

    class Query(BaseModel):
        texts: list[str]

    app = FastAPI()

    @app.post("/v1/predict")
    def predict(query: Query) -> dict:  # a plain def: FastAPI runs it in its thread pool
        return {"predictions": classifier(query.texts, top_k=None, truncation=True, max_length=max_length)}

    @app.get("/readyz")
    def ready() -> dict:
        return {"ready": True}

    uvicorn.run(app, host=HOST, port=port, log_level="warning", access_log=False)


def stub_server(port: int) -> None:
    """A server that answers every request at once with a fixed JSON body: the load generator's ceiling."""
    body = json.dumps({"predictions": [{"label": "x" * 20, "probabilities": {f"l{i}": 0.01 for i in range(77)}}]})
    reply = (f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n{body}").encode()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(handle, HOST, port)
        async with server:
            await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


# ---------------------------------------------------------------- servers as processes
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def http_get(port: int, path: str, timeout: float = 10) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def http_post(port: int, path: str, body: bytes, timeout: float = 60) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class Server:
    """A server in a child process on 127.0.0.1:port; :meth:`stop` always ends it (SIGTERM, then SIGKILL)."""

    def __init__(self, name: str, argv: list[str], port: int, log: Path, ready_path: str = "/readyz") -> None:
        self.name, self.argv, self.port, self.log, self.ready_path = name, argv, port, log, ready_path
        self.proc: subprocess.Popen | None = None
        self.exit_code: int | None = None
        self.started_in: float | None = None

    def start(self, timeout: float = 600) -> "Server":
        start = time.perf_counter()
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server {self.name} exited with {self.proc.returncode}: {self.log_tail()}")
            with contextlib.suppress(OSError):
                if http_get(self.port, self.ready_path, timeout=2)[0] == 200:
                    self.started_in = time.perf_counter() - start
                    print(f"  {self.name} ready on port {self.port} after {self.started_in:.0f} s", flush=True)
                    return self
            time.sleep(0.25)
        raise SystemExit(f"server {self.name} was not ready within {timeout:.0f} s: {self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None or self.exit_code is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.exit_code = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.exit_code = self.proc.wait()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return ""


# ---------------------------------------------------------------- the load generator
def http_requests(port: int, bodies: list[bytes]) -> list[bytes]:
    head = f"POST /v1/predict HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
    return [f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body for body in bodies]


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body, and whether the server closes the connection after it."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length, chunked, close = 0, False, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value
        elif name == b"connection":
            close = value == b"close"
    if not chunked:
        return status, await reader.readexactly(length), close
    parts = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        parts.append(await reader.readexactly(size + 2))
        if size == 0:
            return status, b"".join(parts), close


async def drive(port: int, requests: list[bytes], count: int, clients: int) -> dict[str, Any]:
    """``count`` requests over ``clients`` keep-alive connections, each client sending its next one
    as soon as its last is answered (a closed loop); every request is the next of ``requests``."""
    latencies: list[float] = []
    statuses: Counter = Counter()
    errors: Counter = Counter()
    numbers = iter(range(count))  # shared by the clients: one event loop, so each number goes once

    async def client() -> None:
        reader = writer = None
        try:
            for number in numbers:
                if writer is None:
                    reader, writer = await asyncio.open_connection(HOST, port)
                start = time.perf_counter()
                try:
                    writer.write(requests[number % len(requests)])
                    status, body, close = await read_response(reader)
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError) as exc:
                    errors[type(exc).__name__] += 1
                    writer.close()
                    reader = writer = None
                    continue
                latencies.append(time.perf_counter() - start)
                statuses[status] += 1
                if status == 200 and b'"predictions"' not in body:
                    errors["no predictions in a 200 answer"] += 1
                if close:
                    writer.close()
                    reader = writer = None
        finally:
            if writer is not None:
                writer.close()

    cpu = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - start
    used = resource.getrusage(resource.RUSAGE_SELF)
    client_cpu = used.ru_utime - cpu.ru_utime + used.ru_stime - cpu.ru_stime
    ms = np.asarray(latencies) * 1000
    failed = sum(n for status, n in statuses.items() if status != 200) + sum(errors.values())
    return {
        "requests": count,
        "answered": len(latencies),
        "errors": failed,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "client_errors": dict(errors),
        "wall_seconds": wall,
        "requests_per_s": len(latencies) / wall,
        "p50_ms": float(np.percentile(ms, 50)) if len(ms) else None,
        "p99_ms": float(np.percentile(ms, 99)) if len(ms) else None,
        "client_cpu_seconds": client_cpu,
        "client_cpu_share": client_cpu / wall,
        "latencies_ms": ms.tolist(),
    }


def put_load(port: int, requests: list[bytes], count: int, clients: int) -> dict[str, Any]:
    return asyncio.run(drive(port, requests, count, clients))


def served_batch_rows(port: int) -> dict[str, float] | None:
    """Rows per model run so far, from attncoach serve's Prometheus metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    status, text = http_get(port, "/metrics")
    if status != 200:
        return None
    values = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            if sample.name in ("attncoach_batch_rows_sum", "attncoach_batch_rows_count"):
                values[sample.name.rsplit("_", 1)[1]] = sample.value
    if not values.get("count"):
        return None
    return {"model_runs": values["count"], "rows": values["sum"], "mean_rows_per_run": values["sum"] / values["count"]}


def server_load(
    run: Path, hf: dict[str, Any], texts: list[str], work: Path, args: argparse.Namespace, threads: int, fuzzing: bool
) -> tuple[dict, dict | None]:
    """attncoach serve with and without micro-batching and the pipeline baseline, each with ``threads``
    torch threads, under the same load; then (``fuzzing``) schemathesis against the first, which must
    still answer afterwards."""
    rng = np.random.default_rng(args.seed)
    bodies = [json.dumps({"texts": [texts[i]]}).encode() for i in rng.permutation(len(texts))]
    threads = str(threads)
    sides = {
        "attncoach_batching": attncoach_command("serve", str(run), "--threads", threads, "--quiet"),
        "attncoach_no_batching": attncoach_command("serve", str(run), "--threads", threads, "--max-batch", "1", "--quiet"),
        "hf_pipeline_fastapi": [
            sys.executable, str(Path(__file__).resolve()), "--baseline-server", hf["folder"], "--threads", threads,
            "--max-length", str(hf["max_length"]),
        ],
    }  # fmt: skip
    if int(threads) >= 2:  # the same cores shared out among worker processes: T // 2 threads each
        sides["attncoach_workers2"] = attncoach_command(
            "serve", str(run), "--workers", "2", "--threads", str(int(threads) // 2), "--quiet"
        )
    per_rep = -(-args.requests // args.repeats)  # every side gets at least --requests in all
    warm = warm_up_requests(args)
    results: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        servers = {}
        for name, argv in sides.items():
            port = free_port()
            server = Server(name, [*argv, "--port", str(port)], port, work / f"{name}-threads{threads}.log")
            stack.callback(server.stop)
            servers[name] = server.start()
        for name, server in servers.items():
            warmed = put_load(server.port, http_requests(server.port, bodies), warm, args.clients)
            print(f"  {name}: warm-up {warm} requests, {warmed['requests_per_s']:.0f} requests/s", flush=True)
        reps: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
        names = list(servers)
        for rep in range(args.repeats):
            for name in names[rep % len(names) :] + names[: rep % len(names)]:  # each side in each place in turn
                port = servers[name].port
                figures = put_load(port, http_requests(port, bodies), per_rep, args.clients)
                reps[name].append(figures)
                print(f"  repetition {rep + 1}/{args.repeats} {name}: {figures['requests_per_s']:.0f} requests/s, "
                      f"p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, errors {figures['errors']}", flush=True)  # fmt: skip
        for name, server in servers.items():
            pooled = np.concatenate([r.pop("latencies_ms") for r in reps[name]])
            ours = name.startswith("attncoach")
            results[name] = {
                "command": " ".join(["attncoach", *server.argv[3:]] if ours else ["python", *server.argv[1:]]),
                "port": server.port,
                "started_in_seconds": server.started_in,
                "requests": sum(r["answered"] for r in reps[name]),
                "errors": sum(r["errors"] for r in reps[name]),
                "requests_per_s": summary([r["requests_per_s"] for r in reps[name]]),
                "p50_ms": float(np.percentile(pooled, 50)),
                "p99_ms": float(np.percentile(pooled, 99)),
                "client_cpu_share": summary([r["client_cpu_share"] for r in reps[name]]),
                "repetitions": reps[name],
                "batch_rows": served_batch_rows(server.port) if ours else None,
            }
        ceiling = generator_ceiling(bodies, max(per_rep, 2000), work, args, stack)
        fuzzed = None
        if fuzzing:
            port = servers["attncoach_batching"].port
            fuzzed = fuzz(port, work, args)
            fuzzed["server"] = results["attncoach_batching"]["command"]
            fuzzed["predict_after_fuzzing_status"] = http_post(port, "/v1/predict", bodies[0])[0]
            fuzzed["readyz_after_fuzzing_status"] = http_get(port, "/readyz")[0]
        for name, server in servers.items():
            server.stop()
            results[name]["exit_code"] = server.exit_code
            results[name]["log_tail"] = server.log_tail(12)
    results["load_generator_ceiling"] = {
        "what": "the same 32-client load generator against a stub server that answers at once (both on this machine)",
        **ceiling,
    }
    return results, fuzzed


def warm_up_requests(args: argparse.Namespace) -> int:
    return max(args.clients, min(args.requests // 10, 500))


def generator_ceiling(
    bodies: list[bytes], count: int, work: Path, args: argparse.Namespace, stack: contextlib.ExitStack
) -> dict[str, Any]:
    """The load generator's requests/s against a stub server that answers at once (both on this machine)."""
    port = free_port()
    stub = Server("stub", [sys.executable, str(Path(__file__).resolve()), "--stub-server", "--port", str(port)], port,
                  work / "stub.log", ready_path="/")  # fmt: skip
    stack.callback(stub.stop)
    stub.start(timeout=60)
    ceiling = put_load(port, http_requests(port, bodies), count, args.clients)
    ceiling.pop("latencies_ms")
    stub.stop()
    return ceiling


def server_goals(results: dict[str, Any]) -> dict[str, Any]:
    def paired(a: str, b: str) -> dict[str, float]:
        return summary(
            [
                x["requests_per_s"] / y["requests_per_s"]
                for x, y in zip(results[a]["repetitions"], results[b]["repetitions"])
            ]
        )

    batching = paired("attncoach_batching", "attncoach_no_batching")
    versus = paired("attncoach_batching", "hf_pipeline_fastapi")
    sides = ("attncoach_batching", "attncoach_no_batching", "hf_pipeline_fastapi")
    p99_ours, p99_theirs = results["attncoach_batching"]["p99_ms"], results["hf_pipeline_fastapi"]["p99_ms"]
    return {
        "zero_errors": {
            "goal": "no error on any side",
            "errors": {s: results[s]["errors"] for s in sides},
            "met": all(results[s]["errors"] == 0 for s in sides),
        },  # fmt: skip
        "micro_batching": {
            "goal": "micro-batching >= 3x the requests/s without it",
            "ratio": batching,
            "met": batching["median"] >= 3,
        },
        "versus_pipeline": {
            "goal": "attncoach serve >= 3x the requests/s of the pipeline behind FastAPI, at equal or better p99",
            "ratio": versus,
            "p99_ms": {"attncoach": p99_ours, "pipeline": p99_theirs},
            "met": versus["median"] >= 3 and p99_ours <= p99_theirs,
        },
    }


# ---------------------------------------------------------------- fuzzing
def fuzz(port: int, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """schemathesis (every check, every phase) against the running server's /openapi.json."""
    config = work / "schemathesis.toml"
    config.write_text(
        "# 413 answers a body over --max-body-bytes, a list over --max-texts or a text over --max-text-chars:\n"
        "# documented in the schema, and the server's answer to both valid and invalid data over a limit\n"
        f"[checks.negative_data_rejection]\nexpected-statuses = {json.dumps(NEGATIVE_ACCEPTED)}\n"
        f"[checks.positive_data_acceptance]\nexpected-statuses = {json.dumps(POSITIVE_ACCEPTED)}\n"
    )
    report = work / "schemathesis-report.json"
    junit = work / "schemathesis-junit.xml"
    cmd = [
        str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(config), "run",
        f"http://{HOST}:{port}/openapi.json", "--checks", "all", "--max-examples", str(args.fuzz_examples),
        "--seed", str(args.seed), "--workers", "1", "--no-color", "--report", "json,junit",
        "--report-json-path", str(report), "--report-junit-path", str(junit),
    ]  # fmt: skip
    print(f"  {' '.join(['schemathesis', *cmd[1:]])}", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=work)
    seconds = time.perf_counter() - start
    out = proc.stdout.strip().splitlines()
    summary_lines = [line for line in out if line.strip()][-25:]
    result: dict[str, Any] = {
        "command": " ".join(["schemathesis", *cmd[1:]]),
        "config": config.read_text(),
        "exit_code": proc.returncode,
        "seconds": round(seconds, 1),
        "output_tail": summary_lines,
        **junit_counts(junit),
    }
    if report.is_file():
        result["report"] = report_counts(json.loads(report.read_text()))
    return result


def junit_counts(path: Path) -> dict[str, Any]:
    """Test cases, failures and errors per operation, from schemathesis' JUnit report."""
    import xml.etree.ElementTree as ET

    if not path.is_file():
        return {"junit": None}
    operations = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        failures = [f.get("message") or (f.text or "")[:300] for f in case.iter("failure")]
        errors = [e.get("message") or (e.text or "")[:300] for e in case.iter("error")]
        operations[case.get("name")] = {
            "failures": failures,
            "errors": errors,
            "skipped": case.find("skipped") is not None,
        }
    return {
        "operations": operations,
        "failed_operations": sum(bool(o["failures"]) for o in operations.values()),
        "errored_operations": sum(bool(o["errors"]) for o in operations.values()),
    }


def report_counts(report: Any) -> Any:
    """schemathesis' JSON run report, minus anything bulky (it holds counts per phase and check)."""
    if isinstance(report, dict):
        return {k: report_counts(v) for k, v in report.items() if k not in ("schema", "interactions", "cassette")}
    if isinstance(report, list):
        return [report_counts(v) for v in report[:50]]
    return report


# ---------------------------------------------------------------- main
def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("onnxruntime", "onnx", "transformers", "fastapi", "uvicorn", "pydantic", "schemathesis", "tokenizers"):
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


def require_packages() -> None:
    """Refuse at once, not after training, when a package of the dev extra is missing."""
    import importlib.util

    needed = ("onnxruntime", "transformers", "fastapi", "uvicorn", "prometheus_client", "schemathesis", "sklearn")
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing or not Path(sys.executable).with_name("schemathesis").is_file():
        raise SystemExit(
            f"bench/serve.py needs {', '.join(missing) or 'the schemathesis command'}: pip install -e '.[dev]'"
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few steps and requests only; proves the script works")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--main-run", type=Path, help="a trained run of configs/tweets-sentiment.yaml (skips its training)"
    )
    parser.add_argument(
        "--minilm-run", type=Path, help="a trained run of configs/banking77-minilm.yaml elastic.enabled=true"
    )
    parser.add_argument(
        "--minilm-epochs", type=float, help="train MiniLM for this many epochs (default: the config's 3)"
    )
    parser.add_argument("--work-dir", type=Path, help="keep runs, exports and logs here (default: a temporary folder)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch (and ONNX Runtime) threads timing the export forms (default: 1)"
    )
    parser.add_argument(
        "--server-threads",
        type=int,
        nargs="+",
        help="torch threads of every server, one round each (default: 1 2; quick 1)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions (after one warm-up)")
    parser.add_argument("--latency-texts", type=int, help="batch-1 calls per pass (default 1024; quick 48)")
    parser.add_argument("--requests", type=int, help="requests per server (default 10000; quick 300)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent keep-alive clients")
    parser.add_argument("--fuzz-examples", type=int, help="schemathesis --max-examples (default 100; quick 10)")
    # the child processes this script starts
    parser.add_argument("--baseline-server", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--stub-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--max-length", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    quick = args.quick
    args.latency_texts = args.latency_texts or (48 if quick else 1024)
    args.requests = args.requests or (300 if quick else 10_000)
    args.fuzz_examples = args.fuzz_examples or (10 if quick else 100)
    args.server_threads = args.server_threads or ([1] if quick else [1, 2])
    args.quality_texts = 300
    args.warmup = 1
    return args


@contextlib.contextmanager
def work_dir(path: Path | None) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        yield Path(tmp)


def fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def main() -> None:
    args = parse_args()
    if args.baseline_server is not None:
        return baseline_server(args.baseline_server, args.port, args.threads or 1, args.max_length)
    if args.stub_server:
        return stub_server(args.port)
    require_packages()
    import torch

    # a SIGTERM ends the run as Ctrl-C does: the servers are stopped, the temporary folder removed
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    torch.set_num_threads(args.threads)  # before any ONNX Runtime session: it takes torch's thread count
    measured_under = {**conditions(), "packages": versions()}  # at the start: the code that runs is the code recorded
    started = time.perf_counter()
    result: dict[str, Any] = {"benchmark": "serve", "quick": args.quick, "conditions": measured_under, "models": {}}
    with work_dir(args.work_dir) as work:
        runs: dict[str, Path] = {}
        for name, given in (("tweets", args.main_run), ("minilm", args.minilm_run)):
            if given is not None:
                runs[name] = check_run(given, "main" if name == "tweets" else name)
                training = {"trained_here": False}
            else:
                runs[name] = work / f"run-{name}"
                if runs[name].exists():
                    shutil.rmtree(runs[name])
                training = train_run(name, runs[name], args.seed, args.quick, args.minilm_epochs)
            result["models"][name] = {"training": {**training, **run_record(runs[name])}}
            measured_under[f"{name}_run"] = training.get("command", f"given: {runs[name]}")
        phases = {"training": time.perf_counter() - started}
        for name, run in runs.items():
            say(f"{name}: exporting the forms of {run}")
            variants, built = build_variants(run, fresh(work / f"forms-{name}"), args.quick)
            texts, gold = test_split(run)
            rows, ratios = measure_forms(variants, texts, gold, args)
            training = result["models"][name]["training"]
            consistency = {  # the run scored its own test split: the same model must score the same here
                "scored_texts": rows["fp32_full"]["test_texts_scored"],
                "fp32_full": rows["fp32_full"]["test_macro_f1"],
                "run_metrics_full": training["test_macro_f1"],
                "fp32_smallest": rows["fp32_smallest"]["test_macro_f1"],
                "run_metrics_smallest": training["test_macro_f1_smallest"],
            }
            result["models"][name].update(
                test_texts=len(texts), **built, forms=rows, ratios=ratios, goals=form_goals(rows, ratios),
                consistency=consistency,
            )  # fmt: skip
            show_forms(name, rows, ratios)
        phases["forms"] = time.perf_counter() - started - phases["training"]
        say("server: attncoach serve (micro-batching on / off) and the pipeline behind FastAPI")
        texts, _ = test_split(runs["minilm"])
        hf = hugging_face_folder(runs["minilm"], fresh(work / "hf-minilm") / "model")
        check_texts = texts[: args.quality_texts] if args.quick else texts
        hf["agreement_with_attncoach"] = pipeline_agreement(
            runs["minilm"], Path(hf["folder"]), check_texts, hf["max_length"]
        )
        print(f"  pipeline vs attncoach on {len(check_texts)} test texts: {hf['agreement_with_attncoach']}", flush=True)
        logs = fresh(work / "server-logs")
        by_threads, fuzzing = {}, None
        for number, threads in enumerate(args.server_threads):
            say(f"servers with {threads} torch thread(s)")
            sides, fuzzed = server_load(runs["minilm"], hf, texts, logs, args, threads, fuzzing=number == 0)
            fuzzing = fuzzing or fuzzed
            sides["goals"] = server_goals(sides)
            by_threads[str(threads)] = sides
    minilm = result["models"]["minilm"]["forms"]["fp32_full"]["timing"]["forward"]
    served = result["models"]["minilm"]["forms"]["fp32_full"]["timing"]["served"]
    result["server"] = {
        "model": str(runs["minilm"]),
        "hf_folder": {k: v for k, v in hf.items() if k != "folder"},
        "settings": {
            "clients": args.clients,
            "requests_per_side": args.requests,
            "repetitions": args.repeats,
            "warm_up_requests": warm_up_requests(args),
            "request_body": '{"texts": [one test text]}, the test split in a seeded random order',
            "server_torch_threads": args.server_threads,
            "load_generator": "this script's own: raw asyncio streams speaking HTTP/1.1, one keep-alive "
            "connection per client, each client sending its next request when the last is answered "
            "(closed loop), in the benchmark's own process (client CPU share recorded per run)",
            "attncoach": "attncoach serve RUN --threads T (default settings: --max-batch 32 --max-wait-ms 5), "
            "and the same with --max-batch 1; where T >= 2 also --workers 2 --threads T//2 (two processes, "
            "each with its own model and micro-batcher, sharing the port); no budget_ms: the full model answers",
            "baseline": "transformers.pipeline('text-classification') over the same fine-tuned weights mapped "
            "back to a Hugging Face BERT with attncoach's mean-pooling head, called with top_k=None (every "
            "label's probability, as attncoach answers), truncation=True, max_length as the model's; in a plain "
            "`def` FastAPI route, so FastAPI runs each request in its worker thread pool (anyio's, 40 threads "
            "by default): requests run concurrently, each forward pass with torch.set_num_threads(T); one "
            "uvicorn process",
        },
        # the model's own throughput at batch 32 over batch 1: one padded pass, and predict() as served
        "model_forward_batch32_over_batch1": {
            "torch_threads": args.threads,
            "ratio": minilm["32"]["throughput"]["median"] / minilm["1"]["throughput"]["median"],
            "source": "models.minilm.forms.fp32_full.timing.forward (part 1, the same test texts)",
        },
        "model_served_batch32_over_batch1": {
            "torch_threads": args.threads,
            "ratio": served["32"]["throughput"]["median"] / served["1"]["throughput"]["median"],
            "source": "models.minilm.forms.fp32_full.timing.served (part 1: passes of similar lengths)",
        },
        "by_threads": by_threads,
    }
    result["fuzzing"] = fuzzing
    result["goals"] = {
        **{f"{name}.{goal}": entry for name in runs for goal, entry in result["models"][name]["goals"].items()},
        **{
            f"server.threads{threads}.{goal}": entry
            for threads, sides in by_threads.items()
            for goal, entry in sides["goals"].items()
        },
        "fuzzing.no_5xx_no_schema_violation": {
            "goal": "schemathesis: no 5xx, no schema violation (413 accepted, documented); the server answers after",
            "met": fuzzing["exit_code"] == 0
            and fuzzing.get("failed_operations", 1) == 0
            and fuzzing["predict_after_fuzzing_status"] == 200,
        },
    }
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    phases["server_and_fuzzing"] = result["wall_seconds"] - phases["training"] - phases["forms"]
    result["phase_seconds"] = {k: round(v, 1) for k, v in phases.items()}
    show_server(result)
    save("serve", result, quick=args.quick)


def show_forms(name: str, rows: dict[str, Any], ratios: dict[str, Any]) -> None:
    print(f"{name}: form, MB, test macro-F1, texts/s at batch 1 and 32 (served / forward)")
    for form, row in rows.items():
        t = row["timing"]
        cells = "  ".join(
            f"b{b} {t['served'][b]['throughput']['median']:.0f} / {t['forward'][b]['throughput']['median']:.0f}"
            for b in ("1", "32")
        )
        print(f"  {form:14s} {row['file_bytes'] / 1e6:7.2f}  {row['test_macro_f1']:.4f}  {cells}")
    for pair, levels in ratios.items():
        print(
            f"  {pair}: "
            + ", ".join(f"{level} b{b} {levels[level][b]['median']:.2f}x" for level in LEVELS for b in ("1", "32"))
        )


def show_server(result: dict[str, Any]) -> None:
    for threads, sides in result["server"]["by_threads"].items():
        for side in ("attncoach_batching", "attncoach_no_batching", "attncoach_workers2", "hf_pipeline_fastapi"):
            if side not in sides:
                continue
            s = sides[side]
            print(f"threads {threads} {side}: {s['requests_per_s']['median']:.0f} requests/s ({s['requests_per_s']['min']:.0f}-"
                  f"{s['requests_per_s']['max']:.0f}), p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms, "
                  f"errors {s['errors']}, exit {s['exit_code']}")  # fmt: skip
        ceiling = sides["load_generator_ceiling"]
        print(
            f"threads {threads} load generator ceiling: {ceiling['requests_per_s']:.0f} requests/s against a stub server"
        )
    fuzzing = result["fuzzing"]
    print(f"schemathesis: exit {fuzzing['exit_code']}, failed operations {fuzzing.get('failed_operations')}, "
          f"predict after fuzzing {fuzzing['predict_after_fuzzing_status']}")  # fmt: skip
    for goal, entry in result["goals"].items():
        cells = entry.get("cells", {})
        shown = ", ".join(
            f"{k} {c['ratio']['median']:.2f}x {'met' if c['met'] else 'not met'}" for k, c in cells.items()
        )
        print(f"goal {goal}: {'met' if entry['met'] else 'NOT met'}{f' ({shown})' if shown else ''}")
    print(f"wall-clock {result['wall_seconds']:.0f} s")


if __name__ == "__main__":
    main()
