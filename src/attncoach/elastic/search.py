"""Find the best sub-net of a trained model under a latency budget, a parameter budget, or both.

The candidates come from the model's :class:`~attncoach.elastic.space.ElasticSpace`:
every uniform width x depth (x FFN width, when ``ffn_widths`` is set) and, when
``per_layer`` is set, every choice of width per kept layer (Mix'n'Match). A space of at
most ``EXHAUSTIVE_LIMIT`` candidates is searched exhaustively, a larger one by an
evolutionary search (seeded; Once-for-All, Cai et al., 2020) whose first generation is the
uniform grid. Quality is the task's primary val metric (macro-F1, NDCG@10...); with ``fitness_examples`` the evolution scores
on a subset of val, and the best of it plus every uniform sub-net within reach are scored
again on all of val before the winner is chosen.

A small least-squares latency model (``ms ~ a + b * encoder parameters + c * layers``),
calibrated on a few measured uniform sub-nets, skips candidates that are clearly over a
latency budget. The chosen sub-net's latency is then measured; when the measurement is
over budget, the next best candidate that measures within it wins.

Example:
    >>> result = search(Judge.of(clf, val, data), Budget(max_latency_ms=5.0), clf.space)  # doctest: +SKIP
    >>> result["name"], result["latency_ms"], result["predicted_latency_ms"]  # doctest: +SKIP
    ('w0.50 d1.00', 4.1, 3.8)
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from attncoach.elastic.measure import Candidate, Judge, active_parameters, measure_latency, subnet_shape
from attncoach.elastic.space import ElasticSpace, saved_space, subnet_for
from attncoach.errors import AttncoachError
from attncoach.models.encoder import EncoderConfig, SubnetConfig

log = logging.getLogger("attncoach")

EXHAUSTIVE_LIMIT = 64  # spaces with more candidates are searched by evolution
PRUNE_FACTOR = 1.25  # a predicted latency above budget * this is "clearly over budget"
CALIBRATION_POINTS = 5  # uniform sub-nets measured to fit the latency model
RESCORED = 12  # with fitness_examples: candidates rescored on the whole split at the end


@dataclass(frozen=True)
class Budget:
    """What the chosen sub-net may cost: a latency at a batch size, a parameter count, or both
    (the winner then meets both).

    Raises:
        AttncoachError: no budget, or a non-positive value.
    """

    max_latency_ms: float | None = None
    max_params: int | None = None
    batch: int = 1

    def __post_init__(self) -> None:
        if self.max_latency_ms is None and self.max_params is None:
            raise AttncoachError("give a budget: a maximum latency, a maximum parameter count, or both")
        for value in (self.max_latency_ms, self.max_params):
            if value is not None and (not value > 0 or not math.isfinite(value)):
                raise AttncoachError(f"the budget must be a positive number, got {value:g}")
        if self.batch < 1:
            raise AttncoachError(f"the batch size must be at least 1, got {self.batch}")

    def __str__(self) -> str:
        parts = []
        if self.max_params is not None:
            parts.append(f"{self.max_params:,} parameters")
        if self.max_latency_ms is not None:
            parts.append(f"{self.max_latency_ms:g} ms at batch {self.batch}")
        return " and ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (None for a budget not given)."""
        return {"max_latency_ms": self.max_latency_ms, "max_params": self.max_params, "batch": self.batch}


def search_space(clf: Any) -> ElasticSpace:
    """The model's trained space, or the default one (with a warning) for a non-elastic model."""
    if saved_space(clf) is not None:
        return clf.space
    space = ElasticSpace()
    log.warning(
        "the model was not trained elastically (no elastic space in model_config.json): "
        "using the default space (widths %s, depths %s); expect lower quality from its sub-nets",
        ", ".join(f"{w:g}" for w in space.widths),
        ", ".join(f"{d:g}" for d in space.depths),
    )
    return space


# ---------------------------------------------------------------- candidates
@dataclass(frozen=True)
class Genome:
    """A point of the space: a depth and widths (one value, or one per layer of the full model).

    Attributes:
        depth: fraction of the layers kept (evenly spaced).
        widths: head (and FFN, unless ``ffn_widths``) width multipliers; one value = uniform.
        ffn_widths: FFN width multipliers shaped like ``widths``; ``None`` = ``widths``.
    """

    depth: float
    widths: tuple[float, ...]
    ffn_widths: tuple[float, ...] | None = None

    def candidate(self, config: EncoderConfig) -> Candidate:
        """The named sub-net; layers that are not kept copy the first kept layer's widths.

        A uniform genome gives exactly :func:`subnet_for`'s sub-net, so that the same
        sub-net reached two ways is one candidate.
        """
        kept = subnet_for(config, 1.0, self.depth).layers
        widths = self._kept_values(self.widths, kept, config.layers)
        ffn = widths if self.ffn_widths is None else self._kept_values(self.ffn_widths, kept, config.layers)
        if len(set(widths)) == 1 and len(set(ffn)) == 1:
            kept = kept[:1]  # name it by one value
            subnet = subnet_for(config, widths[0], self.depth, ffn[0])
        else:
            # Layer i of the uniform sub-net at (w_i, f_i) has the heads and neurons layer i keeps here.
            uniform = [subnet_for(config, w, 1.0, f) for w, f in zip(widths, ffn)]
            subnet = SubnetConfig(
                layers=kept,
                heads=tuple(u.heads[i] for i, u in enumerate(uniform)),
                ffn=tuple(u.ffn[i] for i, u in enumerate(uniform)),
            )
        ffn_name = None if self.ffn_widths is None else [ffn[i] for i in kept]
        return Candidate(_name([widths[i] for i in kept], ffn_name, self.depth), subnet)

    @staticmethod
    def _kept_values(values: tuple[float, ...], kept: tuple[int, ...], layers: int) -> list[float]:
        full = list(values) * layers if len(values) == 1 else list(values)
        return [full[i] if i in kept else full[kept[0]] for i in range(layers)]


def _full_width(genome: Genome) -> bool:
    return set(genome.widths) == {1.0} and set(genome.ffn_widths or (1.0,)) == {1.0}


def _name(widths: Sequence[float], ffn: Sequence[float] | None, depth: float) -> str:
    parts = ["w" + "/".join(f"{w:.2f}" for w in widths)]
    if ffn is not None:
        parts.append("f" + "/".join(f"{f:.2f}" for f in ffn))
    return " ".join([*parts, f"d{depth:.2f}"])


def uniform_genomes(space: ElasticSpace) -> list[Genome]:
    """Every uniform width x depth (x FFN width when the space has its own) of the space."""
    ffn_choices: Sequence[float | None] = space.ffn_widths or (None,)
    return [
        Genome(d, (w,), None if f is None else (f,)) for d in space.depths for w in space.widths for f in ffn_choices
    ]


def uniform_grid(space: ElasticSpace, config: EncoderConfig) -> list[Candidate]:
    """The uniform sub-nets of the space, without duplicates (small models round widths together)."""
    return _unique(g.candidate(config) for g in uniform_genomes(space))


def all_candidates(space: ElasticSpace, config: EncoderConfig) -> list[Candidate]:
    """Every sub-net of the space: uniform ones, plus per-layer widths when ``space.per_layer``."""
    if not space.per_layer:
        return uniform_grid(space, config)
    return _unique(g.candidate(config) for g in _per_layer_genomes(space, config))


def _per_layer_genomes(space: ElasticSpace, config: EncoderConfig) -> Iterator[Genome]:
    separate_ffn = space.ffn_widths is not None
    for depth in space.depths:
        kept = subnet_for(config, 1.0, depth).layers
        for widths in itertools.product(space.widths, repeat=len(kept)):
            for ffn in itertools.product(space.neuron_widths, repeat=len(kept) if separate_ffn else 0):
                yield Genome(
                    depth,
                    _spread(widths, kept, config.layers),
                    _spread(ffn, kept, config.layers) if separate_ffn else None,
                )


def _spread(values: Sequence[float], kept: tuple[int, ...], layers: int) -> tuple[float, ...]:
    by_layer = dict(zip(kept, values))
    return tuple(by_layer.get(i, values[0]) for i in range(layers))


def count_candidates(space: ElasticSpace, config: EncoderConfig) -> int:
    """How many points the space has (before removing sub-nets that round to the same one)."""
    ffn = len(space.ffn_widths) if space.ffn_widths is not None else 1
    if not space.per_layer:
        return len(space.widths) * ffn * len(space.depths)
    kept = [len(subnet_for(config, 1.0, d).layers) for d in space.depths]
    return sum((len(space.widths) * ffn) ** k for k in kept)


def _unique(candidates: Iterator[Candidate]) -> list[Candidate]:
    seen: dict[SubnetConfig, Candidate] = {}
    for candidate in candidates:
        seen.setdefault(candidate.subnet, candidate)
    return list(seen.values())


# ---------------------------------------------------------------- evolution
Scores = dict[SubnetConfig, tuple[Candidate, float]]


def evolve(
    space: ElasticSpace,
    config: EncoderConfig,
    fitness: Callable[[Candidate], float],
    seed: int = 0,
    population: int = 16,
    generations: int = 8,
    mutation: float = 0.2,
) -> Scores:
    """Evolutionary search: keep the fitter half, refill it by crossover and mutation.

    Args:
        space: the space to search.
        config: the full model's encoder config.
        fitness: higher is better; ``-inf`` for a candidate over budget. Called once per sub-net.
        seed: seeds the numpy Generator; the same seed gives the same search.
        population: genomes per generation.
        generations: rounds of selection, crossover and mutation.
        mutation: probability of redrawing each gene (the depth, each width).

    Returns:
        Every evaluated sub-net with its candidate and fitness.
    """
    rng = np.random.default_rng(seed)
    scores: Scores = {}

    def score(genome: Genome) -> float:
        candidate = genome.candidate(config)
        if candidate.subnet not in scores:
            scores[candidate.subnet] = (candidate, fitness(candidate))
        return scores[candidate.subnet][1]

    genes = config.layers if space.per_layer else 1
    # the first generation holds every uniform sub-net (the grid), then random ones: the
    # search starts from the grid and can only improve on it
    uniform = [
        Genome(g.depth, g.widths * genes, None if g.ffn_widths is None else g.ffn_widths * genes)
        for g in uniform_genomes(space)
    ]
    genomes = uniform + [_random_genome(space, genes, rng) for _ in range(max(0, population - len(uniform)))]
    for _ in range(generations):
        parents = sorted(genomes, key=score, reverse=True)[: max(2, population // 2)]
        children = [
            _mutate(
                _crossover(parents[rng.integers(len(parents))], parents[rng.integers(len(parents))], rng),
                space,
                mutation,
                rng,
            )
            for _ in range(population - len(parents))
        ]
        genomes = parents + children
    for genome in genomes:
        score(genome)
    return scores


def _random_genome(space: ElasticSpace, genes: int, rng: np.random.Generator) -> Genome:
    ffn = None if space.ffn_widths is None else tuple(rng.choice(space.ffn_widths, genes).tolist())
    return Genome(float(rng.choice(space.depths)), tuple(rng.choice(space.widths, genes).tolist()), ffn)


def _crossover(a: Genome, b: Genome, rng: np.random.Generator) -> Genome:
    def mix(x: tuple[float, ...], y: tuple[float, ...]) -> tuple[float, ...]:
        return tuple(p if take else q for p, q, take in zip(x, y, rng.random(len(x)) < 0.5))

    depth = a.depth if rng.random() < 0.5 else b.depth
    ffn = None if a.ffn_widths is None or b.ffn_widths is None else mix(a.ffn_widths, b.ffn_widths)
    return Genome(depth, mix(a.widths, b.widths), ffn)


def _mutate(genome: Genome, space: ElasticSpace, rate: float, rng: np.random.Generator) -> Genome:
    def redraw(values: tuple[float, ...], choices: tuple[float, ...]) -> tuple[float, ...]:
        return tuple(float(rng.choice(choices)) if rng.random() < rate else v for v in values)

    depth = float(rng.choice(space.depths)) if rng.random() < rate else genome.depth
    ffn = None if genome.ffn_widths is None else redraw(genome.ffn_widths, space.neuron_widths)
    return Genome(depth, redraw(genome.widths, space.widths), ffn)


# ---------------------------------------------------------------- latency model
class LatencyModel:
    """Least-squares fit of ``ms ~ a + b * encoder parameters (millions) + c * active layers``."""

    def __init__(self) -> None:
        self.coef: np.ndarray | None = None

    @staticmethod
    def features(encoder_parameters: int, layers: int) -> np.ndarray:
        """The regressors of one sub-net."""
        return np.array([1.0, encoder_parameters / 1e6, float(layers)])

    def fit(self, features: Sequence[np.ndarray], latencies_ms: Sequence[float]) -> None:
        """Fit on measured sub-nets (the minimum-norm solution when they are too few)."""
        self.coef = np.linalg.lstsq(np.stack(features), np.asarray(latencies_ms), rcond=None)[0]

    def predict(self, features: np.ndarray) -> float:
        """Predicted milliseconds (never below zero)."""
        if self.coef is None:
            raise RuntimeError("LatencyModel.predict before fit")
        return max(0.0, float(features @ self.coef))


# ---------------------------------------------------------------- search
class BudgetSearch:
    """The search, top to bottom: calibrate, collect candidates, rank, verify by measuring.

    Quality, costs and latencies are cached per sub-net, so each is computed once.

    Args:
        judge: the model, the split that scores candidates (the run's val split) and the task's metrics.
        budget: what the winner may cost.
        space: the space to search (:func:`search_space` of the loaded model).
        seed: seed of the evolutionary search.
        fitness_examples: score evolutionary candidates on the first N examples only
            (faster); reported numbers always use the whole split.
        repeats: timed repetitions per latency measurement.
    """

    def __init__(
        self,
        judge: Judge,
        budget: Budget,
        space: ElasticSpace,
        seed: int = 0,
        fitness_examples: int | None = None,
        repeats: int = 5,
    ) -> None:
        self.judge, self.budget, self.seed, self.repeats = judge, budget, seed, repeats
        self.model, self.primary = judge.model, judge.primary
        self.space = space
        self.config = judge.model.encoder.config
        self.fitness_examples = fitness_examples
        self.latency = LatencyModel()
        self._costs: dict[SubnetConfig, tuple[int, int, np.ndarray]] = {}
        self._quality: dict[tuple[SubnetConfig, int | None], dict[str, float]] = {}
        self._measured: dict[SubnetConfig, float] = {}
        self._names: dict[SubnetConfig, str] = {}

    def run(self) -> dict[str, Any]:
        """Search and return the result (see :func:`search`)."""
        model = self.model
        previous = model.subnet
        try:
            self._calibrate()
            ranked, method = self._ranked_candidates()
            winner = self._first_within_budget(ranked)
            if winner is None:
                raise AttncoachError(self._nothing_fits())
            result = {
                **self.describe(winner),
                "budget": self.budget.to_dict(),
                "search": method,
                "threads": torch.get_num_threads(),
                "candidates_evaluated": len({subnet for subnet, _ in self._quality}),
                "width_only": self._best_of(g for g in uniform_genomes(self.space) if g.depth == 1.0),
                "depth_only": self._best_of(g for g in uniform_genomes(self.space) if _full_width(g)),
            }
        finally:
            model.set_subnet(previous)
        return result

    # -- costs, latency and quality, cached per sub-net
    def costs(self, candidate: Candidate) -> tuple[int, int, np.ndarray]:
        """(encoder parameters, total parameters, latency-model features) of a candidate."""
        if candidate.subnet not in self._costs:
            self.model.set_subnet(candidate.subnet)
            encoder, total = active_parameters(self.model)
            layers = subnet_shape(self.model)["layers"]
            self._costs[candidate.subnet] = (encoder, total, LatencyModel.features(encoder, layers))
        return self._costs[candidate.subnet]

    def measured_ms(self, candidate: Candidate) -> float:
        """Measured latency at the budget's batch size."""
        if candidate.subnet not in self._measured:
            self.model.set_subnet(candidate.subnet)
            self._names[candidate.subnet] = candidate.name
            self._measured[candidate.subnet] = measure_latency(
                self.model, self.judge.split, self.budget.batch, repeats=self.repeats
            )
        return self._measured[candidate.subnet]

    def estimated_ms(self, candidate: Candidate) -> float:
        """The measured latency when there is one, else the latency model's prediction."""
        return self._measured.get(candidate.subnet, self.latency.predict(self.costs(candidate)[2]))

    def quality(self, candidate: Candidate, examples: int | None = None) -> dict[str, float]:
        """The judge's metrics on the split (its first ``examples`` examples when given)."""
        key = (candidate.subnet, examples)
        if key not in self._quality:
            self.model.set_subnet(candidate.subnet)
            self._quality[key] = self.judge.quality(examples)
        return self._quality[key]

    def over_params(self, candidate: Candidate) -> bool:
        """Over the parameter budget (never, without one)."""
        return self.budget.max_params is not None and self.costs(candidate)[1] > self.budget.max_params

    def clearly_over(self, candidate: Candidate) -> bool:
        """Over the parameter budget, or predicted well over the latency budget."""
        if self.over_params(candidate):
            return True
        limit = self.budget.max_latency_ms
        return limit is not None and self.estimated_ms(candidate) > limit * PRUNE_FACTOR

    def describe(self, candidate: Candidate) -> dict[str, Any]:
        """The reported numbers of a candidate (quality on the whole split, measured latency)."""
        encoder, total, features = self.costs(candidate)
        return {
            "name": candidate.name,
            "subnet": candidate.subnet.to_dict(),
            **self.quality(candidate),
            "latency_ms": self.measured_ms(candidate),
            "predicted_latency_ms": self.latency.predict(features),
            "parameters": total,
            "encoder_parameters": encoder,
        }

    # -- the steps
    def _calibrate(self) -> None:
        grid = sorted(uniform_grid(self.space, self.config), key=lambda c: self.costs(c)[1])
        picks = sorted({int(i) for i in np.linspace(0, len(grid) - 1, min(CALIBRATION_POINTS, len(grid)))})
        chosen = [grid[i] for i in picks]
        self.latency.fit([self.costs(c)[2] for c in chosen], [self.measured_ms(c) for c in chosen])
        log.info("latency model calibrated on %d sub-nets at batch %d", len(chosen), self.budget.batch)

    def _ranked_candidates(self) -> tuple[list[Candidate], str]:
        """Candidates not clearly over budget, best first (quality, then estimated latency)."""
        size = count_candidates(self.space, self.config)
        if size <= EXHAUSTIVE_LIMIT:
            method = "exhaustive"
            pool = [c for c in all_candidates(self.space, self.config) if not self.clearly_over(c)]
        else:
            method = "evolutionary"
            log.info("the space has %d sub-nets: evolutionary search (seed %d)", size, self.seed)
            scores = evolve(self.space, self.config, self._fitness, seed=self.seed)
            pool = [c for c, fit in scores.values() if fit > -math.inf]
            if self.fitness_examples is not None:  # scores on a subset are noisy: rescore the best on all of it
                pool = sorted(pool, key=lambda c: -self.quality(c, self.fitness_examples)[self.primary])[:RESCORED]
            # the uniform sub-nets within reach always compete on the whole split (the width-only and
            # depth-only baselines are among them, so the winner is never worse than those)
            pool = _unique(
                iter([*pool, *(c for c in uniform_grid(self.space, self.config) if not self.clearly_over(c))])
            )
        log.info("%s search: %d candidates within reach of %s", method, len(pool), self.budget)
        return sorted(pool, key=lambda c: (-self.quality(c)[self.primary], self.estimated_ms(c))), method

    def _fitness(self, candidate: Candidate) -> float:
        if self.clearly_over(candidate):
            return -math.inf
        return self.quality(candidate, self.fitness_examples)[self.primary]

    def _first_within_budget(self, ranked: Sequence[Candidate]) -> Candidate | None:
        """The best candidate that meets the budget; latencies are measured, not predicted."""
        for candidate in ranked:
            if self.over_params(candidate):
                continue
            if self.budget.max_latency_ms is None or self.measured_ms(candidate) <= self.budget.max_latency_ms:
                return candidate
            log.info(
                "%s measures %.3f ms, over %s: trying the next best",
                candidate.name,
                self.measured_ms(candidate),
                self.budget,
            )
        return None

    def _best_of(self, genomes: Iterator[Genome]) -> dict[str, Any] | None:
        candidates = _unique(g.candidate(self.config) for g in genomes)
        pool = [c for c in candidates if not self.clearly_over(c)]
        ranked = sorted(pool, key=lambda c: (-self.quality(c)[self.primary], self.estimated_ms(c)))
        best = self._first_within_budget(ranked)
        return None if best is None else self.describe(best)

    def _nothing_fits(self) -> str:
        smallest = min(uniform_grid(self.space, self.config), key=lambda c: self.costs(c)[1])
        if self.over_params(smallest):
            return (
                f"no sub-net meets {self.budget}: the smallest, {smallest.name}, "
                f"has {self.costs(smallest)[1]:,} parameters"
            )
        limit = self.budget.max_params
        measured = {s: ms for s, ms in self._measured.items() if limit is None or self._costs[s][1] <= limit}
        fastest = min(measured, key=measured.get)  # the smallest is among them: calibration measures it
        return (
            f"no sub-net meets {self.budget}: the fastest{' within the parameters' if limit else ''}, "
            f"{self._names[fastest]}, takes {measured[fastest]:.3g} ms"
        )


def search(
    judge: Judge,
    budget: Budget,
    space: ElasticSpace,
    seed: int = 0,
    fitness_examples: int | None = None,
    repeats: int = 5,
) -> dict[str, Any]:
    """The best sub-net under ``budget``: the highest primary val metric, ties to lower latency.

    Args:
        judge: the model (its sub-net is restored after), the split that scores candidates
            (the run's val split) and the task's metrics, primary first.
        budget: a latency at a batch size, a parameter count, or both.
        space: the space to search (see :func:`search_space`).
        seed: seed of the evolutionary search.
        fitness_examples: see :class:`BudgetSearch`.
        repeats: timed repetitions per latency measurement.

    Returns:
        ``name``, ``subnet`` (``SubnetConfig.to_dict``), the judge's metrics,
        ``latency_ms`` (measured at the budget's batch), ``predicted_latency_ms``,
        ``parameters``, ``encoder_parameters``, ``budget``, ``search`` (exhaustive or
        evolutionary), ``candidates_evaluated``, ``threads`` (torch threads while measuring),
        and ``width_only`` / ``depth_only``: the best depth-1.0 and width-1.0 sub-nets under
        the same budget (same keys, or None).

    Raises:
        AttncoachError: no sub-net meets the budget; the message names the closest one.
    """
    return BudgetSearch(judge, budget, space, seed, fitness_examples, repeats).run()
