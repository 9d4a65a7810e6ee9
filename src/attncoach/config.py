"""Run configuration: dataclasses, YAML loading and strict dotted overrides.

A run is described by one :class:`RunConfig`. It is built from defaults, then a YAML file
(optional), then ``section.key=value`` overrides whose values are parsed as YAML. Unknown
keys (with the closest known key as a suggestion), values of the wrong type and non-finite
numbers (``.nan``, ``.inf``) are refused with one line naming the key. The resolved
configuration is saved as ``config.yaml`` in the run directory.

Example:
    >>> cfg = load_config(None, ["model.layers=4", "train.lr=3e-4"])
    >>> cfg.model.layers, cfg.train.lr
    (4, 0.0003)
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from attncoach.errors import AttncoachError

log = logging.getLogger("attncoach")


@dataclass
class LabelNoiseConfig:
    """Injected label noise (attncoach.data.noise): flip a fraction of the training labels, recorded in the run."""

    rate: float = 0.0  # fraction of the training examples whose label is flipped, in [0, 1)
    kind: str = "uniform"  # uniform (any other class) | confusion (a seeded class-confusion matrix)
    seed: int = 0  # which examples flip, and to what


@dataclass
class DataConfig:
    """Where the examples come from and how they become model inputs (token ids, item ids).

    Keys that only one task reads (``text_column`` for text_classification, ``user_column``
    for next_item...) are refused under another task when set to a non-default value.
    """

    builtin: Optional[str] = None  # a built-in corpus; with no path either, tweets-sentiment
    path: Optional[str] = None  # a CSV, TSV or JSONL file
    format: Optional[str] = None  # csv | tsv | jsonl; None = from the file's suffix
    text_column: str = "text"
    label_column: str = "label"
    split_column: Optional[str] = None  # values train / val / test
    encoding: str = "utf-8"
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    normalize: bool = True  # URLs -> "http", user mentions -> "@user", HTML entities
    lowercase: bool = True
    tokenizer: str = "wordpiece"  # wordpiece | bpe
    vocab_size: int = 8000
    min_frequency: int = 2
    max_length: Optional[int] = None  # None = from the training texts' length distribution
    max_length_quantile: float = 0.99
    max_length_cap: int = 256
    # task next_item: an interactions file (user, item, timestamp[, rating])
    user_column: Optional[str] = None  # None = a recognised header name (user, user_id, userId...)
    item_column: Optional[str] = None  # None = item, item_id, itemId, movieId...
    time_column: Optional[str] = None  # None = timestamp, time, ts
    min_interactions: int = 3  # users with fewer are dropped (leave-one-out needs 3)
    negatives: int = 100  # sampled negatives of the sampled protocol (0 = full ranking only)
    window_stride: Optional[int] = None  # items between the ends of a history's training windows; None = max_length
    group_column: Optional[str] = None  # a column naming each example's group (source, domain): per-group metrics
    # task translation: sentence pairs (a TSV or JSONL file, or the built-in bible-en-fr)
    source_column: str = "source"
    target_column: str = "target"
    subword: str = "bpe"  # bpe | unigram: the subword vocabularies trained on the training pairs
    shared_vocabulary: bool = True  # one vocabulary (and embedding table) for both languages
    val_translations: Optional[int] = 500  # val pairs translated at each evaluation for val BLEU; None = all
    # task image_classification: mnist-5k, digits, or data.path an image folder (one sub-folder per class)
    max_shift: int = 0  # training images move by up to this many pixels each way (random, seeded); 0 = off
    # task masked_lm: unlabelled texts (a built-in corpus's own texts, or a .txt / CSV / TSV / JSONL file's)
    mask_probability: float = 0.15  # the share of each text's ordinary tokens masked (at least one); BERT's 0.15
    # tasks with class labels: flip a seeded fraction of the training labels, e.g. {rate: 0.2, kind: uniform}
    label_noise: Optional[LabelNoiseConfig] = None


@dataclass
class ModelConfig:
    """The encoder and its classification head."""

    backbone: str = "scratch"  # scratch | minilm | a local Hugging Face model directory | a hub id
    dim: int = 128
    layers: int = 2
    heads: int = 4
    ffn_dim: int = 512
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation: str = "gelu"
    norm_first: bool = True
    pooling: str = "mean"  # cls | mean | max
    head_dropout: float = 0.1
    # task translation: model.layers counts the encoder's and the decoder's layers together
    encoder_layers: Optional[int] = None  # how many of model.layers encode the source; None = half
    beam_size: int = 4  # beam search width of translate and of the test scores (1 = greedy)
    length_penalty: float = 0.6  # alpha of the beam search's length penalty ((5 + n) / 6) ** alpha
    # task image_classification: the ViT's patch embedding
    patch_size: int = 4  # images are cut into patch_size x patch_size patches (it must divide height and width)


@dataclass
class TargetConfig:
    """Stop training once a val metric reaches a value."""

    metric: str = "macro_f1"  # macro_f1 | accuracy (on val)
    value: float = 1.0


@dataclass
class TrainConfig:
    """The optimisation recipe."""

    seed: int = 0
    epochs: Optional[float] = None  # None = the task's default: text_classification 4, next_item 40, translation 10,
    # image_classification 15, masked_lm 10
    max_steps: Optional[int] = None  # overrides epochs when set
    batch_size: int = 32
    lr: Optional[float] = None  # None = per backbone: 1e-3 from scratch, 1e-4 for a pretrained one
    head_lr: Optional[float] = None  # LR of the task head; None = lr from scratch, 10 x lr on a pretrained backbone
    layer_lr_decay: Optional[float] = None  # < 1: lower layers train at lr * decay**(depth from top); None = 1 / 0.9
    freeze_layers: int = 0  # pretrained backbones: the embeddings and the lowest N layers keep their weights
    freeze_after: float = 0.0  # fraction of the steps before freeze_layers applies (0: from the start)
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    schedule: str = "linear"  # linear | cosine | constant
    warmup_ratio: float = 0.06
    grad_clip: float = 1.0
    label_smoothing: float = 0.0
    eval_every: Optional[int] = None  # steps; None = twice per epoch
    early_stopping_patience: Optional[int] = 4  # evaluations without improvement; None = off
    checkpoint_every: Optional[int] = None  # steps; None = at every evaluation
    keep_checkpoints: int = 2
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto | fp32 | bf16 autocast; auto = bf16 where native (CUDA, AVX512-BF16/AMX CPUs)
    threads: Optional[int] = None  # torch intra-op threads; None = torch's default
    bucket_size: int = 64  # batches per length bucket window (1 = sort-free shuffling)
    eval_batch_size: int = 256
    max_nonfinite_steps: int = 10  # updates in a row skipped for a NaN/inf loss or gradient before the run stops
    calibrate: bool = True  # fit a softmax temperature on val at the end (classification): predict and serve use it
    target: Optional[TargetConfig] = None  # e.g. {metric: macro_f1, value: 0.8}: stop when val reaches it


@dataclass
class ElasticConfig:
    """Supernet training: every sub-net of the elastic space learns in the same run."""

    enabled: bool = False
    widths: list[float] = field(default_factory=lambda: [0.25, 0.5, 0.75, 1.0])  # heads (and FFN) fractions
    depths: list[float] = field(default_factory=lambda: [0.5, 1.0])  # layer fractions, evenly spaced
    ffn_widths: Optional[list[float]] = None  # separate FFN fractions; None = widths
    per_layer: bool = False  # Mix'n'Match: random sub-nets pick each layer's width independently
    sampler: str = "sandwich"  # how sub-nets are drawn each step (elastic.supernet.SUBNET_SAMPLERS)
    random_subnets: int = 1  # sandwich rule: the largest + the smallest + this many random sub-nets
    distill: str = "logits"  # none | logits | hidden (logits + final hidden states)
    temperature: float = 1.0  # of the soft labels from the largest sub-net
    hidden_weight: float = 1.0  # weight of the hidden-state MSE when distill = hidden
    rewire: Union[bool, str] = "auto"  # auto (= pretrained backbones) | true | false: rewire before training
    rewire_batches: int = 16  # training batches the importance is accumulated over


@dataclass
class CoachConfig:
    """The coach: policies that adapt hyperparameters from training signals (attncoach.coach)."""

    enabled: bool = True  # false = a plain run (no LR probe, no divergence guard, no adaptation)
    policies: Optional[list[Any]] = None  # names or {name: {parameter: value}}; None = the default set
    noise_every: int = 10  # steps between gradient-noise measurements (when batch_growth is on)


@dataclass
class SuspectsConfig:
    """curriculum.suspects: after a warm-up, drop or down-weight the examples the learning record suspects."""

    after_epochs: float = 1.0  # warm-up: suspects are first chosen after this many epochs, then again every epoch
    fraction: float = 0.2  # the fraction of the training examples treated as suspects (the most suspect first)
    action: str = "drop"  # drop (weight 0 in the loss) | downweight (weight curriculum.suspects.weight)
    weight: float = 0.3  # downweight: a suspect's weight in the loss (others weigh 1)
    score: str = "loss"  # the learning record's suspicion score (attncoach examples --suspect --by)


@dataclass
class SmallLossConfig:
    """curriculum.small_loss: each batch's loss averages only its smallest-loss examples (co-teaching's selection)."""

    forget_rate: float = 0.2  # the fraction of each batch left out (largest losses), once ramped up
    ramp_epochs: float = 1.0  # the forget rate grows linearly from 0 over these first epochs


@dataclass
class CurriculumConfig:
    """Which examples to learn from, and when (attncoach.curriculum)."""

    scheduler: str = "uniform"  # uniform | competence | self_paced | leitner | anti
    scorer: str = (
        "rarity"  # difficulty scorer of competence and anti: length | rarity | loss | el2n | forgetting | random
    )
    pacing: str = "sqrt"  # linear | sqrt | step: how competence grows (competence, anti, self_paced)
    start: float = 0.1  # competence at the start: the easiest fraction of the data drawn from first
    horizon: Optional[float] = None  # epochs of examples seen until competence reaches 1; None = half the run
    pacing_steps: int = 4  # jumps of the step pacing
    repeat: bool = (
        False  # competence/anti: false = each example once per pass over the data; true = draw with repeats (Platanios)
    )
    boxes: int = 5  # leitner: box i is reviewed every 2**i rounds
    refresh: float = 0.25  # self_paced: fraction of the examples left out of a round re-measured at the next
    keep_fraction: float = 1.0  # data pruning: keep this fraction of the training examples, ranked by prune_by
    prune_by: str = "el2n"  # the scorer that ranks examples for pruning
    keep: str = "hardest"  # hardest | easiest: which end of prune_by's ranking is kept
    skip_hardest: float = 0.0  # keep: hardest: drop this fraction of the very hardest first (likely mislabelled)
    probe_epochs: float = 0.5  # the probe run that model-based scorers (loss, el2n, forgetting) score after
    probe_passes: int = 3  # scoring passes during the probe (forgetting counts flips between them)
    record: bool = True  # keep the per-example learning record, written as examples.jsonl
    # noisy labels (tasks with class labels; README "Noisy labels"): switches, off when null
    suspects: Optional[SuspectsConfig] = None  # e.g. {after_epochs: 1, fraction: 0.2, action: drop}
    small_loss: Optional[SmallLossConfig] = None  # e.g. {forget_rate: 0.2, ramp_epochs: 1}


@dataclass
class RobustConfig:
    """Adversarial training in embedding space (attncoach.robust.adversarial); always added to the clean loss."""

    method: str = "none"  # none | fgm | pgd | freelb
    epsilon: float = 1.0  # L2 radius of each example's perturbation of its input embeddings
    steps: int = 2  # ascent steps of pgd and freelb (fgm takes one)
    step_size: Optional[float] = None  # the L2 length of each ascent step; None = epsilon / steps (fgm: epsilon)
    start_step: Optional[int] = None  # the first step trained adversarially; None = after the LR warmup
    weight: float = 1.0  # the adversarial loss's weight beside the clean loss (weight 1)


@dataclass
class AugmentConfig:
    """Training texts perturbed on the fly (attncoach.robust.augment), deterministic under train.seed."""

    p: float = 0.0  # probability that a drawn training text is perturbed (0 = off)
    char_noise: float = 0.0  # fraction of its words given one character edit
    char_ops: list[str] = field(default_factory=lambda: ["swap", "insert", "delete", "keyboard"])
    word_dropout: float = 0.0  # fraction of its words deleted
    word_swap: float = 0.0  # fraction of its words swapped with a neighbour
    eda: float = 0.0  # EDA's alpha: one of random insertion, swap or deletion on this fraction of words


@dataclass
class LogConfig:
    """What the run reports and where (the trackers: attncoach.train.loggers)."""

    backends: Optional[list[str]] = None  # trackers: tensorboard, wandb, mlflow; None = [tensorboard]
    tensorboard: bool = True  # false turns TensorBoard off (the key before log.backends)
    project: str = "attncoach"  # the W&B project and the MLflow experiment
    mlflow_uri: Optional[str] = None  # an MLflow tracking URI; None = the file store RUN/mlruns
    every: int = 20  # steps between training-loss log points
    report: bool = True  # write report.html (attncoach.report) when the run ends


@dataclass
class TuneConfig:
    """``attncoach tune``: the search space and how trials are sampled and pruned (attncoach.tune).

    ``attncoach train`` ignores this section; every trial is an ordinary run of the rest of the config.
    """

    # config key -> range, e.g. {"train.lr": {"log_uniform": [1e-5, 1e-2]}, "model.layers": {"choice": [2, 4]}}
    space: Optional[dict[str, Any]] = None
    sampler: str = "tpe"  # tpe | random | cmaes | nsga2 (a genetic algorithm; its first generation is random)
    pruner: str = "median"  # median | none: stop a trial whose val metric trails the median of earlier trials
    startup_trials: int = 8  # random trials before TPE models the space (and before the pruner prunes)
    warmup_evaluations: int = 1  # evaluations of a trial before the pruner may stop it
    retries: int = 1  # how many times a failed (crashed or killed) trial is run again
    trial_steps: Optional[int] = None  # each trial's train.max_steps; None = the config's own length
    grace_seconds: int = 60  # a database-stored trial silent this long was killed: failed, then retried
    # metric | metric_latency: maximise the val metric, or also minimise the measured latency of one sub-net
    # (two objectives: a Pareto front of trials, best sampled by nsga2; Optuna cannot prune such a study)
    objective: str = "metric"
    # metric_latency: the sub-net whose val metric and latency are the objectives, as fractions of each trial's
    # model ({width, depth, ffn_width}, as attncoach search); None = the whole model
    latency_subnet: Optional[dict[str, float]] = None
    latency_batch: int = 1  # metric_latency: the batch size the latency is measured at
    max_latency_ms: Optional[float] = None  # metric_latency: the best trial is the best val metric within this
    # --backend ray only: asha (stop trials behind at the evaluations), pbt (population-based training) or fifo
    # (no early stopping); None = asha. Optuna prunes with tune.pruner instead.
    scheduler: Optional[str] = None
    perturbation_interval: Optional[int] = None  # PBT: evaluations between a trial's exploit/explore; None = 2
    pbt_coach_state: Optional[bool] = (
        None  # PBT: exploit copies the coach's state too (false: keeps its own); None = true
    )


@dataclass
class RunConfig:
    """Everything a training run needs; saved as config.yaml in the run directory."""

    task: str = "text_classification"  # a registered task (attncoach.tasks.TASKS)
    output_dir: Optional[str] = None  # None = runs/<data>-<timestamp>
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    elastic: ElasticConfig = field(default_factory=ElasticConfig)
    coach: CoachConfig = field(default_factory=CoachConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    robust: RobustConfig = field(default_factory=RobustConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    log: LogConfig = field(default_factory=LogConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)


def load_config(path: Optional[str | Path], overrides: list[str] | None = None) -> RunConfig:
    """Build a :class:`RunConfig` from defaults, an optional YAML file and overrides.

    Args:
        path: a YAML file, or None for defaults only.
        overrides: ``section.key=value`` strings; values are parsed as YAML.

    Returns:
        The validated configuration.

    Raises:
        AttncoachError: a missing or malformed file, an unknown key or a wrong type.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        raw = _read_yaml(Path(path))
    cfg = from_dict(RunConfig, raw, prefix="")
    for item in overrides or []:
        apply_override(cfg, item)
    resolve_defaults(cfg)
    validate(cfg)
    return cfg


def configured_task(path: Optional[str | Path], overrides: list[str] | None = None) -> Optional[str]:
    """The task that a YAML file and overrides set (the last one wins), or None when neither sets one.

    Example:
        >>> configured_task(None, ["train.lr=3e-4", "task=masked_lm"])
        'masked_lm'
    """
    task = (_read_yaml(Path(path)) if path is not None else {}).get("task")
    for item in overrides or []:
        key, _, value = item.partition("=")
        if key.strip() == "task":
            task = value.strip()
    return None if task is None else str(task)


def config_from_mapping(raw: dict[str, Any], path: Optional[str | Path] = None) -> RunConfig:
    """A :class:`RunConfig` from a YAML file (optional) updated section by section with ``raw``.

    ``raw`` holds top-level keys (``output_dir``, ``task``) and sections as mappings
    (``{"train": {"lr": 3e-4}}``); a section given in ``raw`` updates the file's section key by key.

    Example:
        >>> config_from_mapping({"train": {"lr": 3e-4}, "model": {"layers": 4}}).train.lr
        0.0003
    """
    merged: dict[str, Any] = _read_yaml(Path(path)) if path is not None else {}
    for key, value in raw.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    cfg = from_dict(RunConfig, merged, prefix="")
    resolve_defaults(cfg)
    validate(cfg)
    return cfg


# Fine-tuning a pretrained encoder wants a small LR, a faster new head and lower layers that move
# less (Sun et al. 2019, "How to Fine-Tune BERT for Text Classification": 2e-5..1e-4, layer decay
# 0.95..0.9); a scratch model trains at 1e-3 (the main job). Keys the user set are never changed.
BACKBONE_DEFAULTS = {
    "scratch": {"lr": 1e-3, "head_lr": None, "layer_lr_decay": 1.0},
    "pretrained": {"lr": 1e-4, "head_lr": 1e-3, "layer_lr_decay": 0.9},
}


# Keys whose default depends on the task: a SASRec model sees each user once per epoch and
# needs tens of epochs (Kang & McAuley 2018 train for 200 on MovieLens-1M); a text classifier a few.
# The tasks themselves are registered a floor above (attncoach.tasks); a task without an entry
# gets text_classification's defaults.
TASK_DEFAULTS = {
    "text_classification": {"epochs": 4.0},
    "next_item": {"epochs": 40.0},
    "translation": {"epochs": 10.0},
    "image_classification": {"epochs": 15.0},  # a small ViT from scratch sees each image a dozen times or more
    "masked_lm": {"epochs": 10.0},  # every epoch masks other tokens: pretraining reads its texts many times
}


def resolve_defaults(cfg: RunConfig) -> list[str]:
    """Fill the keys left unset (None) whose default depends on the task or the backbone; one line per key set.

    Example:
        >>> cfg = RunConfig(); cfg.model.backbone = "minilm"
        >>> resolve_defaults(cfg)[0]
        'train.lr = 0.0001 (the default for a pretrained backbone)'
    """
    kind = "scratch" if cfg.model.backbone == "scratch" else "pretrained"
    task_notes, backbone_notes = [], []
    for key, value in TASK_DEFAULTS.get(cfg.task, TASK_DEFAULTS["text_classification"]).items():
        if getattr(cfg.train, key) is None:
            setattr(cfg.train, key, value)
            if cfg.task != "text_classification":  # the text default is the long-standing one: no note
                task_notes.append(f"train.{key} = {value:g} (the default of task {cfg.task})")
    for key, value in BACKBONE_DEFAULTS[kind].items():
        if getattr(cfg.train, key) is None and value is not None:
            setattr(cfg.train, key, value)
            backbone_notes.append(f"train.{key} = {value:g} (the default for a {kind} backbone)")
    for note in task_notes:
        log.info(note)
    for note in backbone_notes:
        log.info(note) if kind == "pretrained" else log.debug(note)
    return task_notes + backbone_notes


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise AttncoachError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise AttncoachError(f"config file {path} is not valid YAML{where}") from None
    except UnicodeDecodeError:
        raise AttncoachError(f"config file {path} is not UTF-8 text") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise AttncoachError(f"config file {path} must hold a mapping of sections, not {type(data).__name__}")
    return data


def from_dict(cls: type, data: Any, prefix: str) -> Any:
    """Build dataclass ``cls`` from a mapping, refusing unknown keys and wrong types."""
    where = prefix.rstrip(".") or "config"
    if not isinstance(data, dict):
        raise AttncoachError(f"{where} must be a mapping, got {_type_name(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    obj = cls()
    for key, value in data.items():
        if key not in fields:
            raise unknown_key(f"{prefix}{key}", cls)
        setattr(obj, key, _coerce(hints[key], value, f"{prefix}{key}"))
    return obj


def unknown_key(dotted: str, section: type) -> AttncoachError:
    """The error for a key that dataclass ``section`` does not have: one line with the closest known key.

    Example:
        >>> str(unknown_key("train.lrr", TrainConfig))
        "unknown config key 'train.lrr' (did you mean 'train.lr'?)"
        >>> str(unknown_key("lr", RunConfig))
        "unknown config key 'lr' (did you mean 'train.lr'?)"
    """
    prefix, _, name = dotted.rpartition(".")
    prefix = f"{prefix}." if prefix else ""
    names = [f.name for f in dataclasses.fields(section)]
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if close:
        return AttncoachError(f"unknown config key '{dotted}' (did you mean '{prefix}{close[0]}'?)")
    if section is RunConfig:  # a key written without its section: lr=... for train.lr=...
        owners = [key for key, hint in typing.get_type_hints(RunConfig).items() if _has_field(hint, name)]
        if len(owners) == 1:
            return AttncoachError(f"unknown config key '{dotted}' (did you mean '{owners[0]}.{name}'?)")
    return AttncoachError(f"unknown config key '{dotted}' (known: {', '.join(names)})")


def _has_field(section: Any, name: str) -> bool:
    return dataclasses.is_dataclass(section) and name in {f.name for f in dataclasses.fields(section)}


def apply_override(cfg: RunConfig, item: str) -> None:
    """Apply one ``section.key=value`` override in place."""
    if "=" not in item:
        raise AttncoachError(f"override '{item}' must look like section.key=value")
    dotted, text = item.split("=", 1)
    dotted = dotted.strip()
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        raise AttncoachError(f"override '{dotted}': value {text!r} is not valid YAML") from None
    target: Any = cfg
    parts = dotted.split(".")
    for depth, part in enumerate(parts[:-1]):
        where = ".".join(parts[: depth + 1])
        if part not in {f.name for f in dataclasses.fields(target)}:
            raise unknown_key(where, type(target))
        child = getattr(target, part)
        if child is None:
            child = _optional_section(type(target), part)  # e.g. train.target.value=0.8 creates train.target
            if child is not None:
                setattr(target, part, child)
        if child is None or not dataclasses.is_dataclass(child):
            raise AttncoachError(f"config key '{where}' is not a section: set it as {where}=value")
        target = child
    name = parts[-1]
    names = {f.name for f in dataclasses.fields(target)}
    if name not in names:
        raise unknown_key(dotted, type(target))
    hint = typing.get_type_hints(type(target))[name]
    setattr(target, name, _coerce(hint, value, dotted))


def _optional_section(cls: type, name: str) -> Any:
    """A default instance of an ``Optional[SomeSection]`` field, or None for other fields."""
    hint = typing.get_type_hints(cls)[name]
    sections = [a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)]
    return sections[0]() if sections else None


def _coerce(hint: Any, value: Any, key: str) -> Any:
    """Check ``value`` against a type hint; return it converted where that is lossless."""
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, {} if value is None else value, prefix=f"{key}.")
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, key)
            except AttncoachError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is list:
        if not isinstance(value, list):
            raise _type_error(key, "a list", value)
        return [_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value)] if args else value
    if hint is float:
        if isinstance(value, str):
            value = _yaml11_float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(key, "a number", value)
        if not is_finite(value):  # .nan and .inf train a NaN model
            shown = repr(value) if isinstance(value, float) else f"an integer of {len(str(value))} digits"
            raise AttncoachError(f"config key '{key}' must be a finite number, got {shown}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(key, "an integer", value)
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise _type_error(key, "true or false", value)
        return value
    if hint is str:
        if not isinstance(value, str):
            raise _type_error(key, "a string", value)
        return value
    return value


def is_finite(number: int | float) -> bool:
    """Whether ``number`` is a finite float (an int too large for a float is not)."""
    try:
        return math.isfinite(number)
    except OverflowError:
        return False


def _yaml11_float(text: str) -> float | str:
    """``3e-4`` is a string to PyYAML (YAML 1.1 wants ``3.0e-4``); read it as the number it is."""
    try:
        return float(text) if text.strip().lower() not in ("nan", "inf", "-inf", "+inf") else text
    except ValueError:
        return text


def _type_error(key: str, expected: str, value: Any) -> AttncoachError:
    return AttncoachError(f"config key '{key}' must be {expected}, got {_type_name(value)} {value!r}")


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


_CHOICES = {
    ("data", "tokenizer"): ("wordpiece", "bpe"),
    ("data", "format"): (None, "csv", "tsv", "jsonl"),
    ("data", "subword"): ("bpe", "unigram"),
    ("model", "pooling"): ("cls", "mean", "max"),
    ("model", "activation"): ("gelu", "relu"),
    ("train", "schedule"): ("linear", "cosine", "constant"),
    ("train", "device"): ("auto", "cpu", "cuda"),
    ("train", "precision"): ("auto", "fp32", "bf16"),
    ("elastic", "distill"): ("none", "logits", "hidden"),
    ("elastic", "rewire"): ("auto", True, False),
    ("curriculum", "keep"): ("hardest", "easiest"),
    ("robust", "method"): ("none", "fgm", "pgd", "freelb"),
    ("tune", "sampler"): ("tpe", "random", "cmaes", "nsga2"),
    ("tune", "objective"): ("metric", "metric_latency"),
    ("tune", "pruner"): ("median", "none"),
    ("tune", "scheduler"): (None, "asha", "pbt", "fifo"),
}


def validate(cfg: RunConfig) -> None:
    """Check value ranges and choices that types alone cannot express."""
    for (section, key), choices in _CHOICES.items():
        value = getattr(getattr(cfg, section), key)
        if value not in choices:
            shown = ", ".join(str(c) for c in choices if c is not None)
            raise AttncoachError(f"config key '{section}.{key}' must be one of {shown}, got {value!r}")
    d, m, t = cfg.data, cfg.model, cfg.train
    if d.builtin is not None and d.path is not None:
        raise AttncoachError("set only one of 'data.builtin' and 'data.path'")
    check_key(
        0 < d.val_fraction < 1 and 0 < d.test_fraction < 1 and d.val_fraction + d.test_fraction < 1,
        "data.val_fraction",
        "and data.test_fraction must be in (0, 1) and sum to less than 1 (val picks the best model, test measures it)",
    )
    check_key(d.vocab_size >= 100, "data.vocab_size", "must be at least 100")
    check_key(d.min_frequency >= 1, "data.min_frequency", "must be at least 1")
    check_key(d.max_length is None or d.max_length >= 2, "data.max_length", "must be at least 2")
    check_key(0 < d.max_length_quantile <= 1, "data.max_length_quantile", "must be in (0, 1]")
    check_key(0 < d.mask_probability < 1, "data.mask_probability", "must be in (0, 1) (BERT masks 0.15)")
    check_key(d.val_translations is None or d.val_translations >= 1, "data.val_translations", "must be at least 1")
    check_key(
        m.encoder_layers is None or 1 <= m.encoder_layers < m.layers,
        "model.encoder_layers",
        f"must leave the decoder a layer: in [1, {m.layers - 1}] (model.layers {m.layers} counts both stacks)",
    )
    check_key(m.beam_size >= 1, "model.beam_size", "must be at least 1 (1 = greedy decoding)")
    check_key(m.length_penalty >= 0, "model.length_penalty", "must be non-negative (0 = none)")
    check_key(d.max_length_cap >= 2, "data.max_length_cap", "must be at least 2")
    check_key(d.min_interactions >= 3, "data.min_interactions", "must be at least 3 (leave-one-out needs 3)")
    check_key(d.negatives >= 0, "data.negatives", "must be 0 or more")
    check_key(d.window_stride is None or d.window_stride >= 1, "data.window_stride", "must be at least 1")
    if d.label_noise is not None:
        check_key(
            0 <= d.label_noise.rate < 1, "data.label_noise.rate", f"must be in [0, 1), got {d.label_noise.rate:g}"
        )
    for key in ("dim", "layers", "heads", "ffn_dim"):
        check_key(getattr(m, key) >= 1, f"model.{key}", "must be at least 1")
    check_key(m.dim % m.heads == 0, "model.dim", f"({m.dim}) must be divisible by model.heads ({m.heads})")
    for key in ("dropout", "attention_dropout", "head_dropout"):
        check_key(0 <= getattr(m, key) < 1, f"model.{key}", "must be in [0, 1)")
    check_key(
        bool(m.backbone.strip()),
        "model.backbone",
        "must be scratch, minilm, a local model directory or a Hugging Face hub id",
    )
    check_key(t.epochs is None or t.epochs > 0, "train.epochs", "must be positive")
    check_key(t.max_steps is None or t.max_steps >= 1, "train.max_steps", "must be at least 1")
    check_key(t.batch_size >= 1, "train.batch_size", "must be at least 1")
    check_key(t.eval_batch_size >= 1, "train.eval_batch_size", "must be at least 1")
    check_key(t.lr is not None and t.lr > 0, "train.lr", "must be positive")
    check_key(t.head_lr is None or t.head_lr > 0, "train.head_lr", "must be positive (or null for train.lr)")
    check_key(
        t.layer_lr_decay is not None and 0 < t.layer_lr_decay <= 1,
        "train.layer_lr_decay",
        "must be in (0, 1] (1 = off)",
    )
    check_key(t.freeze_layers >= 0, "train.freeze_layers", "must be 0 or more")
    check_key(
        t.freeze_layers == 0 or m.backbone != "scratch",
        "train.freeze_layers",
        "needs a pretrained model.backbone (the layers of a scratch model start random)",
    )
    check_key(0 <= t.freeze_after < 1, "train.freeze_after", "must be in [0, 1) (a fraction of the run's steps)")
    check_key(
        t.freeze_after == 0 or t.freeze_layers > 0,
        "train.freeze_after",
        "needs train.freeze_layers (the number of lower layers to freeze)",
    )
    check_key(t.weight_decay >= 0, "train.weight_decay", "must be non-negative")
    check_key(len(t.betas) == 2 and all(0 <= b < 1 for b in t.betas), "train.betas", "must be two numbers in [0, 1)")
    check_key(0 <= t.warmup_ratio < 1, "train.warmup_ratio", "must be in [0, 1)")
    check_key(t.grad_clip >= 0, "train.grad_clip", "must be non-negative (0 = off)")
    check_key(0 <= t.label_smoothing < 1, "train.label_smoothing", "must be in [0, 1)")
    check_key(t.eval_every is None or t.eval_every >= 1, "train.eval_every", "must be at least 1")
    check_key(t.checkpoint_every is None or t.checkpoint_every >= 1, "train.checkpoint_every", "must be at least 1")
    check_key(
        t.early_stopping_patience is None or t.early_stopping_patience >= 1,
        "train.early_stopping_patience",
        "must be at least 1 (or null for off)",
    )
    check_key(t.keep_checkpoints >= 1, "train.keep_checkpoints", "must be at least 1")
    check_key(t.threads is None or t.threads >= 1, "train.threads", "must be at least 1")
    check_key(t.bucket_size >= 1, "train.bucket_size", "must be at least 1")
    check_key(t.max_nonfinite_steps >= 1, "train.max_nonfinite_steps", "must be at least 1")
    _validate_robust(cfg.robust, cfg.augment)
    check_key(cfg.log.every >= 1, "log.every", "must be at least 1")
    u = cfg.tune
    check_key(u.space is None or isinstance(u.space, dict), "tune.space", "must be a mapping of config keys to ranges")
    check_key(u.startup_trials >= 0, "tune.startup_trials", "must be 0 or more")
    check_key(u.warmup_evaluations >= 0, "tune.warmup_evaluations", "must be 0 or more")
    check_key(u.retries >= 0, "tune.retries", "must be 0 or more")
    check_key(u.grace_seconds >= 2, "tune.grace_seconds", "must be at least 2")
    check_key(u.trial_steps is None or u.trial_steps >= 1, "tune.trial_steps", "must be at least 1 (or null)")
    _validate_latency_objective(u)
    check_key(
        u.perturbation_interval is None or u.perturbation_interval >= 1,
        "tune.perturbation_interval",
        "must be at least 1 evaluation (or null)",
    )
    check_key(bool(cfg.log.project.strip()), "log.project", "must name a project (e.g. attncoach)")
    check_key(bool(cfg.task.strip()), "task", "must name a task (e.g. text_classification)")
    # choices of the registries (tasks, policies, schedulers...) are checked a floor above:
    # attncoach.train.settings.check_registries, which every entry point calls


def _validate_latency_objective(u: TuneConfig) -> None:
    check_key(u.latency_batch >= 1, "tune.latency_batch", "must be at least 1")
    check_key(u.max_latency_ms is None or u.max_latency_ms > 0, "tune.max_latency_ms", "must be above 0 (or null)")
    sub = u.latency_subnet
    if sub is not None:
        check_key(
            isinstance(sub, dict) and bool(sub) and set(sub) <= {"width", "depth", "ffn_width"},
            "tune.latency_subnet",
            "must be a mapping of width, depth and/or ffn_width to fractions, e.g. {width: 0.5, depth: 0.5}",
        )
        for key, value in sub.items():
            fraction = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 1
            check_key(fraction, f"tune.latency_subnet.{key}", "must be a fraction in (0, 1]")
    if u.objective == "metric":
        for key, unset in (("latency_subnet", sub is None), ("max_latency_ms", u.max_latency_ms is None)):
            check_key(unset, f"tune.{key}", "applies only with tune.objective: metric_latency")
        check_key(u.latency_batch == 1, "tune.latency_batch", "applies only with tune.objective: metric_latency")
    else:
        check_key(
            u.pruner == "none",
            "tune.pruner",
            "must be none with tune.objective: metric_latency (Optuna prunes single-objective studies only)",
        )
        check_key(u.sampler != "cmaes", "tune.sampler", "cmaes searches one objective: use nsga2, tpe or random")


CHAR_OPS = ("swap", "insert", "delete", "keyboard")


def _validate_robust(r: RobustConfig, a: AugmentConfig) -> None:
    check_key(r.epsilon > 0, "robust.epsilon", "must be positive (the radius of the perturbation)")
    check_key(r.steps >= 1, "robust.steps", "must be at least 1")
    check_key(
        r.step_size is None or r.step_size > 0, "robust.step_size", "must be positive (or null for epsilon / steps)"
    )
    check_key(
        r.start_step is None or r.start_step >= 0,
        "robust.start_step",
        "must be 0 or more (or null for after the warmup)",
    )
    check_key(r.weight > 0, "robust.weight", "must be positive")
    for key in ("p", "char_noise", "word_dropout", "word_swap", "eda"):
        check_key(0 <= getattr(a, key) <= 1, f"augment.{key}", "must be in [0, 1]")
    unknown = [op for op in a.char_ops if op not in CHAR_OPS]
    check_key(
        not unknown and bool(a.char_ops),
        "augment.char_ops",
        f"must list some of {', '.join(CHAR_OPS)}, got {a.char_ops!r}",
    )
    rates = (a.char_noise, a.word_dropout, a.word_swap, a.eda)
    check_key(
        a.p == 0 or any(rates),
        "augment.p",
        "turns augmentation on: set a rate too (augment.char_noise, word_dropout, word_swap or eda)",
    )


def check_key(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise AttncoachError(f"config key '{key}' {message}")


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    """The configuration as plain data (for YAML and JSON)."""
    return dataclasses.asdict(cfg)


def save_config(cfg: RunConfig, path: Path) -> None:
    """Write the resolved configuration as YAML."""
    path.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False), encoding="utf-8")
