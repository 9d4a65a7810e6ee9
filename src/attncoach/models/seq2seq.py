"""Translation: an encoder-decoder built from the elastic blocks, with greedy and beam search over a KV cache.

:class:`ElasticEncoderDecoder` is an :class:`ElasticEncoder` whose first ``encoder_layers`` layers
encode the source and whose remaining layers decode the target (causal self-attention,
cross-attention to the encoder's outputs, FFN). The layers share one index space, so one
:class:`SubnetConfig` names a sub-network of both stacks: which layers of each run, how many heads
(self- and cross-attention alike) and FFN neurons each keeps. Everything the elastic pillar does to
an encoder (sandwich training, importance, sub-net search, export by slicing) therefore applies
to the pair unchanged; a sub-net must keep at least one layer of each stack.

:class:`TranslationModel` adds the target side: the target embeddings (the source's when the
vocabulary is shared) and output scores tied to them (Press & Wolf, 2017), teacher-forced logits
for training, and :meth:`TranslationModel.generate` for greedy or beam search with a length
penalty (Wu et al., 2016), with or without a cache of each decoder layer's keys and values.

Token ids: 0 is padding; every target starts with ``bos_id`` and ends with ``eos_id``.

Example:
    >>> config = EncoderConfig(vocab_size=20, dim=16, layers=4, heads=2, ffn_dim=32, max_position=12)
    >>> model = TranslationModel(config, encoder_layers=2).eval()
    >>> src = torch.tensor([[5, 6, 7, 3], [8, 9, 3, 0]])
    >>> logits = model(src, src != 0, torch.tensor([[2, 5, 6], [2, 7, 0]]))  # teacher forcing
    >>> logits.shape
    torch.Size([2, 3, 20])
    >>> model.generate(src, src != 0, beam=2, max_length=5)[0] == model.generate(src, src != 0, beam=2,
    ...     max_length=5, use_cache=False)[0]
    True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attncoach.models.attention import CrossAttention, MultiHeadSelfAttention
from attncoach.models.encoder import (
    ElasticEncoder,
    Embeddings,
    EncoderConfig,
    FeedForward,
    SubnetConfig,
    init_bert_weights,
)
from attncoach.models.quantized import Int8Embedding
from attncoach.models.stack import StackModel, check_config_keys

PAD_ID = 0
_CONFIG_KEYS = ("encoder", "encoder_layers", "target_vocab_size", "bos_id", "eos_id")
Cache = tuple[Tensor, Tensor]


def _init_xavier_linear(module: nn.Module) -> None:
    """Xavier-uniform weights for one ``nn.Linear`` of the layers (Glorot & Bengio, 2010), as the Transformer's
    reference code and ``torch.nn.Transformer`` initialise them.

    A translation model trains from scratch at a high LR (2e-3 in ``configs/bible-en-fr.yaml``). With BERT's
    N(0, 0.02) for every matrix, the 128-wide layers start several times smaller than fan-in scaling, and the
    shipped config reached test BLEU 3.6 where a ``torch.nn.Transformer`` of the same size and budget
    reached 11.6 (``bench/translation.py``, seed 0); the two compute the same function given the same weights.
    The embedding tables keep N(0, 0.02): the output scores are tied to them.
    """
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)


class DecoderLayer(nn.Module):
    """Causal self-attention, cross-attention to the source, and FFN, each a residual block (pre- or post-LN).

    Self- and cross-attention keep the same number of heads: a sub-net's ``heads`` value for this
    layer applies to both.
    """

    def __init__(self, config: EncoderConfig, heads: int | None = None, ffn_dim: int | None = None) -> None:
        super().__init__()
        heads = config.heads if heads is None else heads
        head_dim = config.resolved_head_dim()
        self.attn = MultiHeadSelfAttention(config.dim, heads, dropout=config.attention_dropout, head_dim=head_dim)
        self.attn_norm = nn.LayerNorm(config.dim, eps=config.layer_norm_eps)
        self.cross = CrossAttention(config.dim, heads, dropout=config.attention_dropout, head_dim=head_dim)
        self.cross_norm = nn.LayerNorm(config.dim, eps=config.layer_norm_eps)
        self.ffn = FeedForward(config.dim, config.ffn_dim if ffn_dim is None else ffn_dim, config.activation)
        self.ffn_norm = nn.LayerNorm(config.dim, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)
        self.norm_first = config.norm_first

    def forward(self, x: Tensor, mask: Tensor | None, memory: Cache, memory_mask: Tensor | None) -> Tensor:
        """Decodes every target position at once (teacher forcing): ``(B, T, D)`` to ``(B, T, D)``."""
        return self._rest(x, mask, memory, memory_mask, None)[0]

    def step(self, x: Tensor, past: Cache | None, memory: Cache, memory_mask: Tensor | None) -> tuple[Tensor, Cache]:
        """Decodes one new position ``(B, 1, D)`` from the cached keys and values of the earlier ones."""
        return self._rest(x, None, memory, memory_mask, past, cached=True)

    def _rest(
        self,
        x: Tensor,
        mask: Tensor | None,
        memory: Cache,
        memory_mask: Tensor | None,
        past: Cache | None,
        cached: bool = False,
    ) -> tuple[Tensor, Cache | None]:
        cache = None

        def self_attention(h: Tensor) -> Tensor:
            nonlocal cache
            if cached:
                out, cache = self.attn.forward_cached(h, past)
                return out
            return self.attn(h, mask, causal=True)

        if self.norm_first:
            x = x + self.dropout(self_attention(self.attn_norm(x)))
            x = x + self.dropout(self.cross(self.cross_norm(x), memory, memory_mask))
            return x + self.dropout(self.ffn(self.ffn_norm(x))), cache
        x = self.attn_norm(x + self.dropout(self_attention(x)))
        x = self.cross_norm(x + self.dropout(self.cross(x, memory, memory_mask)))
        return self.ffn_norm(x + self.dropout(self.ffn(x))), cache

    def num_active_parameters(self) -> int:
        """Number of parameters used by the active heads and neurons."""
        norms = sum(p.numel() for n in (self.attn_norm, self.cross_norm, self.ffn_norm) for p in n.parameters())
        active = self.attn.num_active_parameters() + self.cross.num_active_parameters()
        return active + self.ffn.num_active_parameters() + norms


class ElasticEncoderDecoder(ElasticEncoder):
    """An elastic encoder whose last layers decode: one layer index space for both stacks (module docstring).

    Args:
        config: Architecture of both stacks: ``layers`` counts encoder and decoder layers together,
            ``vocab_size`` is the source vocabulary, ``max_position`` the longest source and target.
        encoder_layers: How many of the first layers encode; the rest decode.
        target_vocab_size: The target vocabulary when it is separate; ``None`` = shared with the source
            (one embedding table for both sides and the output).

    Raises:
        ValueError: If either stack would have no layer.
    """

    def __init__(self, config: EncoderConfig, encoder_layers: int, target_vocab_size: int | None = None) -> None:
        if isinstance(encoder_layers, bool) or not isinstance(encoder_layers, int):
            raise ValueError(f"encoder_layers must be an int, got {encoder_layers!r}")
        if not 1 <= encoder_layers < config.layers:
            raise ValueError(
                f"encoder_layers must leave both stacks a layer: in [1, {config.layers - 1}], got {encoder_layers}"
            )
        super().__init__(config)
        self.encoder_layers = encoder_layers
        shapes = list(zip(config.heads_per_layer(), config.ffn_per_layer()))
        for index in range(encoder_layers, config.layers):
            self.layers[index] = DecoderLayer(config, *shapes[index])
        self.decoder_norm = nn.LayerNorm(config.dim, eps=config.layer_norm_eps) if config.norm_first else nn.Identity()
        self.target_embeddings = None
        if target_vocab_size is not None:
            self.target_embeddings = Embeddings(dataclasses.replace(config, vocab_size=target_vocab_size))
        self.apply(init_bert_weights)
        self.layers.apply(_init_xavier_linear)

    @property
    def target_embedding_module(self) -> Embeddings:
        """The target side's embeddings: its own table, or the shared one."""
        return self.embeddings if self.target_embeddings is None else self.target_embeddings

    def encode(self, x: Tensor, mask: Tensor | None = None, causal: bool = False) -> Tensor:
        """Runs the active encoder layers and the final norm on the embedded source ``(B, S, D)``."""
        mask = None if mask is None else mask.to(torch.bool)
        for index in self.active_encoder_layers:
            x = self.layers[index](x, mask, causal)
        return self.final_norm(x)

    @property
    def active_encoder_layers(self) -> tuple[int, ...]:
        return tuple(i for i in self._active_layers if i < self.encoder_layers)

    @property
    def active_decoder_layers(self) -> tuple[int, ...]:
        return tuple(i for i in self._active_layers if i >= self.encoder_layers)

    def set_subnet(self, subnet: SubnetConfig | None) -> None:
        """Switches both stacks' sub-network; a decoder layer's cross-attention keeps as many heads as its self-attention."""
        super().set_subnet(subnet)
        for index in range(self.encoder_layers, len(self.layers)):
            layer = self.layers[index]
            layer.cross.active_heads = layer.attn.active_heads

    def check_subnet(self, subnet: SubnetConfig) -> None:
        """As :meth:`ElasticEncoder.check_subnet`, and a sub-net keeps at least one layer of each stack."""
        super().check_subnet(subnet)
        if subnet.layers is None:
            return
        if not any(i < self.encoder_layers for i in subnet.layers):
            raise ValueError(
                f"subnet layers {subnet.layers} keep no encoder layer (layers 0-{self.encoder_layers - 1})"
            )
        if not any(i >= self.encoder_layers for i in subnet.layers):
            raise ValueError(
                f"subnet layers {subnet.layers} keep no decoder layer "
                f"(layers {self.encoder_layers}-{self.config.layers - 1})"
            )

    def num_parameters(self, active_only: bool = False) -> int:
        """Counts parameters of the full model, or of the active sub-network only."""
        if not active_only:
            return sum(p.numel() for p in self.parameters())
        shared = [self.embeddings, self.final_norm, self.decoder_norm]
        if self.target_embeddings is not None:
            shared.append(self.target_embeddings)
        count = sum(p.numel() for module in shared for p in module.parameters())
        return count + sum(self.layers[i].num_active_parameters() for i in self._active_layers)


@dataclass
class _Beams:
    """The live rows of a search: ``tokens`` ``(N, t)`` so far, and each decoder layer's memory and cache."""

    tokens: Tensor
    memory: list[Cache]
    memory_mask: Tensor
    past: list[Cache | None]

    def reorder(self, index: Tensor) -> None:
        self.tokens = self.tokens.index_select(0, index)
        self.memory = [(k.index_select(0, index), v.index_select(0, index)) for k, v in self.memory]
        self.memory_mask = self.memory_mask.index_select(0, index)
        self.past = [
            None if p is None else (p[0].index_select(0, index), p[1].index_select(0, index)) for p in self.past
        ]


class TranslationModel(StackModel):
    """Encoder-decoder translation on :class:`ElasticEncoderDecoder`; see the module docstring.

    Args:
        encoder_config: Architecture of both stacks (``layers`` counts both).
        encoder_layers: How many of the layers encode the source.
        target_vocab_size: A separate target vocabulary's size, or ``None`` (shared with the source).
        bos_id: The id that starts every target.
        eos_id: The id that ends every target (and every source).
    """

    causal = False  # the encoder's self-attention sees the whole source (read by attention probes)

    def __init__(
        self,
        encoder_config: EncoderConfig,
        encoder_layers: int,
        target_vocab_size: int | None = None,
        bos_id: int = 2,
        eos_id: int = 3,
    ) -> None:
        super().__init__()
        vocab = encoder_config.vocab_size if target_vocab_size is None else target_vocab_size
        for name, value in (("bos_id", bos_id), ("eos_id", eos_id)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < vocab:
                raise ValueError(f"{name} must be an int in [1, {vocab}), got {value!r}")
        if encoder_config.pad_id != PAD_ID:
            raise ValueError(f"encoder pad_id must be {PAD_ID}, got {encoder_config.pad_id}")
        self.encoder = ElasticEncoderDecoder(encoder_config, encoder_layers, target_vocab_size)
        self.target_vocab_size = target_vocab_size
        self.bos_id, self.eos_id = bos_id, eos_id

    def forward(
        self, source: Tensor, source_mask: Tensor | None = None, target_in: Tensor | None = None, target_mask=None
    ) -> Tensor:
        """Teacher-forced logits ``(B, T, V)`` of each next target token; with no ``target_in``, greedy
        translations ``(B, L)`` (what a sub-net's latency is measured on).

        Args:
            source: Right-padded source ids ``(B, S)``, 0 = padding.
            source_mask: ``(B, S)`` True on real tokens; ``None`` = ``source != 0``.
            target_in: Right-padded target ids that start with ``bos_id`` ``(B, T)``.
            target_mask: ``(B, T)`` True on real tokens; ``None`` = ``target_in != 0``.
        """
        source_mask = source != PAD_ID if source_mask is None else source_mask.to(torch.bool)
        if target_in is None:
            return pad_ids(self.generate(source, source_mask)).to(source.device)
        target_mask = target_in != PAD_ID if target_mask is None else target_mask.to(torch.bool)
        memory = self.encode(source, source_mask)
        return self.logits(self.decode(target_in, target_mask, memory, source_mask))

    def encode(self, source: Tensor, source_mask: Tensor) -> Tensor:
        """The active encoder layers' outputs ``(B, S, D)``."""
        return self.encoder.encode(self.encoder.embeddings(source), source_mask)

    def decode(self, target_in: Tensor, target_mask: Tensor, encoded: Tensor, source_mask: Tensor) -> Tensor:
        """The active decoder layers' final states ``(B, T, D)`` for every target position at once."""
        x = self._embed_target(target_in, 0)
        for index in self.encoder.active_decoder_layers:
            layer = self.encoder.layers[index]
            x = layer(x, target_mask, layer.cross.memory(encoded), source_mask)
        return self.encoder.decoder_norm(x)

    def logits(self, hidden: Tensor) -> Tensor:
        """Scores ``(..., V)`` of every target token, from the target embedding table (tied weights)."""
        table = self.encoder.target_embedding_module.word
        if isinstance(table, Int8Embedding):
            return table.project(hidden)
        return F.linear(hidden, table.weight)

    @torch.inference_mode()
    def generate(
        self,
        source: Tensor,
        source_mask: Tensor | None = None,
        max_length: int | None = None,
        beam: int = 1,
        length_penalty: float = 0.6,
        use_cache: bool = True,
    ) -> list[list[int]]:
        """Translates a batch: greedy (``beam`` 1) or beam search; the tokens of each translation without
        ``bos_id`` and ``eos_id``.

        Args:
            source: Right-padded source ids ``(B, S)``.
            source_mask: ``(B, S)``; ``None`` = ``source != 0``.
            max_length: Most target tokens per translation (``eos_id`` included); ``None`` = twice the
                longest source plus 10, at most what the positions cover.
            beam: Hypotheses kept per source.
            length_penalty: ``alpha`` of the GNMT length penalty ``((5 + n) / 6) ** alpha`` that divides a
                finished hypothesis' log-probability (0 = none; larger favours longer translations).
            use_cache: Keep each decoder layer's keys and values (each step projects only the new token);
                ``False`` runs the decoder over the whole prefix at every step.

        Raises:
            ValueError: ``beam`` < 1.
        """
        if isinstance(beam, bool) or not isinstance(beam, int) or beam < 1:
            raise ValueError(f"beam size must be an int >= 1, got {beam!r}")
        source_mask = source != PAD_ID if source_mask is None else source_mask.to(torch.bool)
        limit = self.encoder.config.max_position - 1  # position 0 holds bos
        if max_length is None:
            max_length = 2 * int(source_mask.sum(dim=1).max()) + 10
        max_length = max(1, min(max_length, limit))
        encoded = self.encode(source, source_mask)
        if beam == 1:
            return self._greedy(encoded, source_mask, max_length, use_cache)
        return self._beam_search(encoded, source_mask, max_length, beam, length_penalty, use_cache)

    def _start(self, encoded: Tensor, source_mask: Tensor, rows: int) -> _Beams:
        index = torch.arange(encoded.shape[0], device=encoded.device).repeat_interleave(rows)
        encoded, source_mask = encoded.index_select(0, index), source_mask.index_select(0, index)
        layers = [self.encoder.layers[i] for i in self.encoder.active_decoder_layers]
        tokens = torch.full((encoded.shape[0], 1), self.bos_id, dtype=torch.long, device=encoded.device)
        return _Beams(tokens, [layer.cross.memory(encoded) for layer in layers], source_mask, [None] * len(layers))

    def _next_log_probs(self, beams: _Beams, use_cache: bool) -> Tensor:
        """Log-probabilities ``(N, V)`` of the token after each row's prefix."""
        layers = [self.encoder.layers[i] for i in self.encoder.active_decoder_layers]
        if use_cache:
            x = self._embed_target(beams.tokens[:, -1:], beams.tokens.shape[1] - 1)  # (N, 1, D)
            for number, layer in enumerate(layers):
                x, beams.past[number] = layer.step(x, beams.past[number], beams.memory[number], beams.memory_mask)
        else:
            x = self._embed_target(beams.tokens, 0)  # (N, t, D)
            everything = torch.ones_like(beams.tokens, dtype=torch.bool)
            for number, layer in enumerate(layers):
                x = layer(x, everything, beams.memory[number], beams.memory_mask)
            x = x[:, -1:]
        return F.log_softmax(self.logits(self.encoder.decoder_norm(x))[:, 0].float(), dim=-1)

    def _greedy(self, encoded: Tensor, source_mask: Tensor, max_length: int, use_cache: bool) -> list[list[int]]:
        beams = self._start(encoded, source_mask, 1)
        done = torch.zeros(encoded.shape[0], dtype=torch.bool, device=encoded.device)
        for _ in range(max_length):
            best = self._next_log_probs(beams, use_cache).argmax(dim=-1)  # (B,)
            best = best.masked_fill(done, self.eos_id)
            beams.tokens = torch.cat([beams.tokens, best[:, None]], dim=1)
            done |= best == self.eos_id
            if bool(done.all()):
                break
        return [self._strip(row) for row in beams.tokens[:, 1:].tolist()]

    def _beam_search(
        self, encoded: Tensor, source_mask: Tensor, max_length: int, beam: int, alpha: float, use_cache: bool
    ) -> list[list[int]]:
        sources = encoded.shape[0]
        beams = self._start(encoded, source_mask, beam)
        scores = torch.full((sources, beam), float("-inf"), device=encoded.device)
        scores[:, 0] = 0.0  # every beam starts equal: let only the first one expand
        finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(sources)]
        for step in range(1, max_length + 1):
            log_probs = self._next_log_probs(beams, use_cache)  # (B * K, V)
            vocab = log_probs.shape[1]
            total = (scores[:, :, None] + log_probs.view(sources, beam, vocab)).view(sources, -1)
            top, where = total.topk(2 * beam, dim=1)  # twice the beam: room for hypotheses that end here
            parents, tokens = (where // vocab).tolist(), (where % vocab).tolist()
            top = top.tolist()
            keep_rows, keep_tokens, keep_scores = [], [], []
            prefixes = beams.tokens[:, 1:].tolist()
            for s in range(sources):
                kept = 0
                for score, parent, token in zip(top[s], parents[s], tokens[s]):
                    row = s * beam + parent
                    if score == float("-inf") or kept == beam:
                        break
                    if token == self.eos_id or step == max_length:
                        if len(finished[s]) < beam:
                            words = prefixes[row] + ([] if token == self.eos_id else [token])
                            finished[s].append((score / _penalty(step, alpha), words))
                        continue
                    keep_rows.append(row)
                    keep_tokens.append(token)
                    keep_scores.append(score)
                    kept += 1
                while kept < beam:  # fewer live hypotheses than the beam: dead rows that never win
                    keep_rows.append(s * beam)
                    keep_tokens.append(self.eos_id)
                    keep_scores.append(float("-inf"))
                    kept += 1
            if all(len(f) >= beam for f in finished):
                break
            index = torch.tensor(keep_rows, device=encoded.device)
            beams.reorder(index)
            new = torch.tensor(keep_tokens, device=encoded.device)[:, None]
            beams.tokens = torch.cat([beams.tokens, new], dim=1)
            scores = torch.tensor(keep_scores, device=encoded.device).view(sources, beam)
        return [self._strip(max(f, key=lambda h: h[0])[1]) if f else [] for f in finished]

    def _strip(self, tokens: list[int]) -> list[int]:
        """The tokens before the first ``eos_id``."""
        return tokens[: tokens.index(self.eos_id)] if self.eos_id in tokens else tokens

    def _embed_target(self, ids: Tensor, start: int) -> Tensor:
        """Target embeddings of ``ids`` ``(N, t)`` at positions ``start..start + t - 1``."""
        emb = self.encoder.target_embedding_module
        end = start + ids.shape[1]
        if end > emb.position.num_embeddings:
            raise ValueError(f"target length {end} exceeds max_position {emb.position.num_embeddings}")
        positions = torch.arange(start, end, device=ids.device)
        return emb.dropout(emb.norm(emb.word(ids) + emb.position(positions)))

    def config_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description from which the model can be rebuilt."""
        return {
            "encoder": self.encoder.config.to_dict(),
            "encoder_layers": self.encoder.encoder_layers,
            "target_vocab_size": self.target_vocab_size,
            "bos_id": self.bos_id,
            "eos_id": self.eos_id,
        }

    def sliced_config_dict(self, kept_layers: list[int], encoder_config: EncoderConfig) -> dict[str, Any]:
        """:meth:`config_dict` of the model that keeps only ``kept_layers`` (shaped by ``encoder_config``)."""
        encoding = sum(1 for i in kept_layers if i < self.encoder.encoder_layers)
        return {**self.config_dict(), "encoder": encoder_config.to_dict(), "encoder_layers": encoding}

    @classmethod
    def from_config_dict(cls, data: Mapping[str, Any]) -> TranslationModel:
        """Builds a freshly initialised model from :meth:`config_dict` output.

        Raises:
            ValueError: If a key is unknown or missing, or a value is invalid.
        """
        check_config_keys("TranslationModel", data, _CONFIG_KEYS, _CONFIG_KEYS)
        return cls(
            EncoderConfig.from_dict(data["encoder"]),
            data["encoder_layers"],
            data["target_vocab_size"],
            data["bos_id"],
            data["eos_id"],
        )


class SourceEncoder(nn.Module):
    """The encoder half of a :class:`TranslationModel` as a model of its own: ``forward(ids, mask)`` encodes the
    source (what attention maps of a translation model look at: the source's self-attention)."""

    def __init__(self, model: TranslationModel) -> None:
        super().__init__()
        self.model = model

    @property
    def encoder(self) -> ElasticEncoderDecoder:
        return self.model.encoder

    def forward(self, source: Tensor, source_mask: Tensor | None = None) -> Tensor:
        mask = source != PAD_ID if source_mask is None else source_mask.to(torch.bool)
        return self.model.encode(source, mask)


def _penalty(length: int, alpha: float) -> float:
    """GNMT's length penalty ``((5 + length) / 6) ** alpha`` (Wu et al., 2016)."""
    return ((5 + length) / 6) ** alpha


@torch.inference_mode()
def translate_ids(
    model: Any,
    source_ids: Sequence[Sequence[int]],
    target_tok: Any,
    batch_size: int = 64,
    beam: int = 1,
    length_penalty: float = 0.6,
    use_cache: bool = True,
) -> list[str]:
    """Translations of encoded sources (each ending with ``</s>``), in input order, batched by length."""
    device = next(model.parameters()).device
    if beam > 1:
        batch_size = max(1, batch_size // beam)  # the beams multiply the rows
    out: list[str] = [""] * len(source_ids)
    lengths = np.fromiter((len(s) for s in source_ids), dtype=np.int64, count=len(source_ids))
    for index in batches_by_length(lengths, batch_size):
        sources = pad_ids([source_ids[i] for i in index]).to(device)
        rows = model.generate(sources, sources != PAD_ID, beam=beam, length_penalty=length_penalty, use_cache=use_cache)
        for i, tokens in zip(index, rows):
            out[i] = target_tok.decode(tokens, skip_special_tokens=True)
    return out


def encode_sources(tok: Any, texts: Sequence[str], max_length: int, eos_id: int) -> tuple[list[np.ndarray], int]:
    """Source ids (ending with ``eos_id``) of raw texts, cut to ``max_length``; and how many were cut."""
    ids = [np.asarray(e.ids, dtype=np.int64) for e in tok.encode_batch(list(texts))]
    cut = sum(1 for x in ids if len(x) + 1 > max_length)
    return [cut_source(np.append(x, eos_id), max_length) for x in ids], cut


def cut_source(source: np.ndarray, max_length: int) -> np.ndarray:
    """A source of at most ``max_length`` ids that still ends with its last id (``</s>``)."""
    return source if len(source) <= max_length else np.append(source[: max_length - 1], source[-1])


def pad_ids(rows: Sequence[Sequence[int]]) -> Tensor:
    """Right-padded ``(B, T)`` ids (0 = padding)."""
    out = torch.full((len(rows), max((len(r) for r in rows), default=1) or 1), PAD_ID, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.as_tensor(np.asarray(row), dtype=torch.long)
    return out


def batches_by_length(lengths: np.ndarray, batch_size: int) -> list[list[int]]:
    """Indices in batches of ``batch_size``, shortest sequences first (little padding)."""
    order = np.argsort(lengths, kind="stable")
    return [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
