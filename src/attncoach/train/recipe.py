"""The training recipe of every task: setup, train, evaluate, save.

One readable loop; the task (``attncoach.tasks``) builds the data and the model, computes a
step's loss and evaluates a split. Everything a resumed run needs to continue exactly where it stopped
(weights, optimizer moments, RNG states, position in the epoch, early-stopping counters) is
in the checkpoint, and the data order is a pure function of ``(seed, epoch)``, so a run
killed at any moment and resumed ends with the same metrics as one never interrupted.

Under torchrun the same loop runs on every rank, each on its slice of every batch, with the
gradients summed once per optimizer step (``train/distributed.py``); only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from attncoach.atomicfile import atomic_save_safetensors, atomic_write_json
from attncoach.coach.session import CoachSession, measure_noise_halves
from attncoach.config import RunConfig, save_config, to_dict
from attncoach.curriculum.difficulty import describe_scores
from attncoach.curriculum.noisy import small_loss_schedule, suspect_filter
from attncoach.curriculum.probe import measure_losses, read_difficulty, score_examples, write_difficulty
from attncoach.curriculum.record import LearningRecord
from attncoach.curriculum.samplers import SCHEDULERS, CurriculumScheduler, SchedulerSettings, make_scheduler
from attncoach.data.batching import LengthBucketBatchSampler
from attncoach.data.fingerprint import check_sources, fingerprint_sources, write_sources
from attncoach.data.noise import FILE_NAME as NOISE_FILE
from attncoach.data.noise import LabelNoise, inject_label_noise
from attncoach.elastic.importance import importance, rewire
from attncoach.elastic.supernet import InPlaceDistillation, make_sampler, space_of
from attncoach.errors import AttncoachError
from attncoach.models.saved import autocast_for, model_config, write_model_config
from attncoach.progress import TrainingProgress
from attncoach.report import write_report
from attncoach.robust.adversarial import make_adversary
from attncoach.robust.augment import make_augmenter
from attncoach.rundir import RunDir
from attncoach.tasks import TASKS, StepOut
from attncoach.train.calibrate import CalibrationCallback
from attncoach.train.callbacks import (
    Callback,
    CoachCallback,
    CurriculumCallback,
    ElasticCallback,
    NoisyLabelsCallback,
    Uncoached,
)
from attncoach.train.checkpoint import CheckpointStore, load_weights
from attncoach.train.distributed import World, check_batch_splits, current_world, rank_seed
from attncoach.train.history import ScalarHistory
from attncoach.train.loggers import check_installed, make_loggers
from attncoach.train.optim import freeze_lower_layers, make_optimizer
from attncoach.train.probe_steps import ProbeTrainer
from attncoach.train.schedule import lr_factor
from attncoach.train.settings import absolute_paths, release_output_dir

log = logging.getLogger("attncoach")

_METRIC_NAMES = {"macro_f1": "macro-F1", "accuracy": "acc"}  # how the progress notes name metrics
_RESUME_HINT = "put the original file back to resume this run, or start a new run on the changed one"


@dataclass
class TrainerState:
    """Where training stands; saved as JSON in every checkpoint."""

    step: int = 0
    epoch: int = 0  # the curriculum scheduler's round (an epoch for the uniform scheduler)
    batch_in_epoch: int = 0
    examples_seen: int = 0  # trained on (forward + backward)
    examples_scored: int = 0  # curriculum scoring: the probe's trained and scored examples, self-paced measures
    tokens_seen: int = 0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0  # part of train_seconds spent evaluating on val
    checkpoint_seconds: float = 0.0  # part of train_seconds spent writing checkpoints
    curriculum_seconds: float = 0.0  # part of train_seconds spent scoring examples (probe, self-paced)
    best_metric: float = -1.0
    best_step: int = 0
    evals_since_best: int = 0
    stopped_early: bool = False
    stop_reason: str | None = None  # why training ended before its last step
    nonfinite_steps: int = 0  # updates skipped for a NaN or infinite loss or gradient
    nonfinite_streak: int = 0  # of them, in a row up to now
    history: list[dict[str, Any]] = field(default_factory=list)


def pick_device(name: str) -> torch.device:
    """``auto`` means CUDA when present, else CPU; asking for CUDA without one is an error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise AttncoachError("train.device is cuda but no CUDA device is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (AVX512-BF16 or AMX), as oneDNN reports it."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN, or without the query
        return False


def uses_bf16(device: torch.device, precision: str) -> bool:
    """Whether a run trains (and evaluates) under bf16 autocast.

    ``fp32`` never; ``auto`` where the hardware multiplies bf16 natively: a CUDA GPU with bf16, a CPU
    with AVX512-BF16 or AMX (there a MiniLM training step is about 2.4x faster, the main job's about
    1.5x, at the same test macro-F1: bench/README.md); ``bf16`` also on a CPU without it, which
    emulates it slowly (a warning says so).
    """
    if precision == "fp32" or device.type not in ("cuda", "cpu"):
        return False
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if cpu_has_native_bf16():
        return True
    if precision == "bf16":
        log.warning(
            "train.precision=bf16: this CPU has no native bf16 (AVX512-BF16 or AMX); steps will be slower than fp32"
        )
        return True
    return False


class Recipe:
    """Trains the configured task's model into a run directory.

    Args:
        cfg: the resolved configuration.
        run: the run directory (created by the caller for a new run).
        resume: continue from the run's latest checkpoint instead of starting anew.
        quiet: no progress bar.
        callbacks: more :class:`Callback` s, called after the recipe's own (e.g. a tuner's pruning, which
            stops the run from ``after_eval``).
        world: the processes of a data-parallel run (:mod:`attncoach.train.distributed`); by default
            the process group this process joined, if any. Only rank 0 writes files, logs and a
            progress bar, and only it returns the metrics (the other ranks return ``{}``).

    Example:
        >>> recipe = Recipe(cfg, RunDir("runs/demo"))  # doctest: +SKIP
        >>> metrics = recipe.run()                                   # doctest: +SKIP
    """

    def __init__(
        self,
        cfg: RunConfig,
        run: RunDir,
        resume: bool = False,
        quiet: bool = False,
        callbacks: list[Callback] | None = None,
        world: World | None = None,
    ):
        self.cfg = cfg
        self.run_dir = run
        self.resume = resume
        self.world = world if world is not None else current_world()
        self.quiet = quiet or not self.world.is_main
        self.extra_callbacks = list(callbacks or [])
        self.state = TrainerState()

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        """Data, tokenizer, model, optimizer; restore the latest checkpoint when resuming."""
        t, main = self.cfg.train, self.world.is_main
        check_batch_splits(t.batch_size, self.world.size)
        check_installed(self.cfg.log)  # a tracker's missing library is refused before anything is written
        if not self.resume:
            absolute_paths(self.cfg)  # the saved config.yaml then works from any directory
        torch.manual_seed(t.seed)
        if t.threads:
            torch.set_num_threads(t.threads)
        self.device = pick_device(t.device)
        if self.device.type == "cuda" and self.world.distributed:
            self.device = self.world.device  # this rank's GPU
        # Training steps and the evaluations during the run; finish() turns it off.
        self.bf16 = uses_bf16(self.device, t.precision)
        self.precision = "bf16" if self.bf16 else "fp32"  # what the run trained with (metrics.json)
        self.task = TASKS[self.cfg.task](label_smoothing=t.label_smoothing)
        self.backbone = self._load_backbone()
        model_dir = self.run_dir.model if self.resume else None  # a resumed run encodes as it did
        if self.resume:  # the splits are rebuilt from the source: it must be the file the run started on
            check_sources(self.run_dir, self.cfg.data, self.task.corpus, hint=_RESUME_HINT)
        self.data = self.task.build(self.cfg, backbone=self.backbone, model_dir=model_dir)
        self.label_noise = self._inject_label_noise()
        self._check_curriculum_fits()
        if not self.resume and main:
            sources = fingerprint_sources(self.cfg.data, self.task.corpus)
            self.run_dir.create()
            write_sources(self.run_dir.sources, sources)  # before config.yaml: every run has its fingerprints
            save_config(self.cfg, self.run_dir.config)
        log.info("run directory: %s", self.run_dir.path)  # once the run is accepted: its data is ready
        self.model = self._new_model().to(self.device)
        if t.freeze_after == 0:
            self._freeze()
        self.scores = self._score_and_prune()
        self.augmenter = make_augmenter(self.cfg, self.data)  # None unless augment.p > 0
        train = self.data.splits["train"]
        self.sampler = LengthBucketBatchSampler(train.lengths, t.batch_size, seed=t.seed, bucket_size=t.bucket_size)
        self.store = CheckpointStore(self.run_dir.checkpoints, keep=t.keep_checkpoints)
        self.supernet = self._setup_elastic()
        self.optimizer = make_optimizer(self.model, t)
        self.micro, self.micro_losses = 0, []  # micro-batches accumulated towards the next optimizer step
        self.batch_out: StepOut | None = None  # the last micro-batch's outcomes (curriculum, record)
        self.current_lr = 0.0
        self.adv_loss: float | None = None  # the last adversarial loss (robust.method)
        self.steps_per_epoch = len(self.sampler)
        self.total_steps = t.max_steps or max(1, math.ceil(t.epochs * self.steps_per_epoch))
        self.freeze_step = math.ceil(t.freeze_after * self.total_steps) if t.freeze_after > 0 else None
        session = self._setup_coach()
        self.coach = session if session is not None else Uncoached()  # the optimiser-step protocol
        self.scheduler, self.record = self._setup_curriculum()
        self.callbacks: list[Callback] = [
            *([ElasticCallback(self.supernet, self.space)] if self.supernet is not None else []),
            CurriculumCallback(self.scheduler, self.record),
            *self._noisy_label_switches(),
            *([CoachCallback(session)] if session is not None else []),
            *([CalibrationCallback()] if t.calibrate else []),  # model/calibration.json, once the best model is in
            *([ScalarHistory(self.run_dir.scalars)] if main else []),  # scalars.jsonl, for the report
            *self.extra_callbacks,
        ]
        self.warmup_steps = int(t.warmup_ratio * self.total_steps)
        self.adversary = make_adversary(self.cfg.robust, self.warmup_steps)
        if self.adversary is not None:
            self.adversary.attach(self.model)
            log.info(
                "adversarial training: %s, epsilon %g, %d step(s) of %g, from step %d, weight %g",
                self.adversary.method,
                self.adversary.epsilon,
                self.adversary.steps,
                self.adversary.step_size,
                self.adversary.start_step,
                self.adversary.weight,
            )
        self.eval_every = t.eval_every or max(1, self.steps_per_epoch // 2)
        self.checkpoint_every = t.checkpoint_every or self.eval_every
        if self.world.distributed:  # identical weights on every rank, its own dropout masks
            self.world.broadcast_module(self.model)
            torch.manual_seed(rank_seed(t.seed, self.world.rank))
        if self.resume:
            self._restore()
        elif main:
            self._save_run_files()
        # only the main process logs; the loggers come last: they see what the others log
        self.loggers = make_loggers(self.cfg.log, self.run_dir, is_main=main)
        if self.loggers is not None:
            self.callbacks.append(self.loggers)
        if session is not None:
            session.coach.on_scalars = self.log_scalars
        n_params = sum(p.numel() for p in self.model.parameters())
        enc = self.model.encoder.config
        log.info(
            "model: %d layers, dim %d, %d heads, %s parameters; %d steps (%d per epoch), device %s%s",
            enc.layers,
            enc.dim,
            enc.heads,
            f"{n_params:,}",
            self.total_steps,
            self.steps_per_epoch,
            self.device.type,
            " bf16" if self.bf16 else "",
        )

    def _load_backbone(self) -> Any:
        """The pretrained backbone named by model.backbone, or None for a scratch model."""
        name = self.cfg.model.backbone
        if name == "scratch":
            return None
        from attncoach.models.pretrained import load_backbone, resolve_backbone

        backbone = load_backbone(resolve_backbone(name))
        enc = backbone.encoder_config
        log.info(
            "backbone %s (%s): dim %d, %d layers, %d heads, FFN %d, up to %d tokens; the model.* "
            "architecture keys are taken from it",
            name,
            backbone.model_type,
            enc.dim,
            enc.layers,
            enc.heads,
            enc.ffn_dim,
            enc.max_position,
        )
        if self.cfg.train.freeze_layers > enc.layers:
            raise AttncoachError(
                f"config key 'train.freeze_layers' ({self.cfg.train.freeze_layers}) is more than the "
                f"{enc.layers} layers of backbone {name}"
            )
        return backbone

    def _freeze(self, step: int | None = None) -> None:
        """train.freeze_layers: the embeddings and the lowest layers stop training.

        With train.freeze_after = 0 they keep their pretrained weights (called before the
        optimizer is made, which leaves them out); otherwise everything trains until the step
        :attr:`freeze_step`, where :meth:`train_step` calls this (FreezeOut, Brock et al. 2017,
        freezes layers as training goes on): from then on each backward pass stops above them
        and the optimizer, finding no gradient, leaves them where they are.
        """
        n = self.cfg.train.freeze_layers
        if not n:
            return
        frozen = set(freeze_lower_layers(self.model, n))
        count = sum(p.numel() for name, p in self.model.named_parameters() if name in frozen)
        if step is None:
            when, what = f"train.freeze_layers = {n}", "stay as pretrained"
        else:
            when = f"step {step} of {self.total_steps} (train.freeze_after = {self.cfg.train.freeze_after:g})"
            what = "stop training"
        log.info("%s: the embeddings and layers 1-%d %s (%s parameters)", when, n, what, f"{count:,}")

    def _new_model(self) -> torch.nn.Module:
        """A freshly initialised model of the task (on the backbone, when there is one)."""
        return self.data.new_model(self.cfg.model)

    def _inject_label_noise(self) -> LabelNoise | None:
        """data.label_noise: flip a seeded fraction of the training labels (a resumed run flips the same)."""
        noise = self.cfg.data.label_noise
        if noise is None:
            return None
        flips = inject_label_noise(self.data.splits["train"], self.data.label_names, noise)
        log.info(
            "label noise: %d of %d training labels flipped (%s, rate %g, seed %d): %s",
            len(flips.index),
            len(self.data.splits["train"]),
            noise.kind,
            noise.rate,
            noise.seed,
            NOISE_FILE,
        )
        return flips

    # ------------------------------------------------------------------ curriculum
    def _kept_count(self, n: int) -> int:
        return max(1, int(round(self.cfg.curriculum.keep_fraction * n)))

    def _check_curriculum_fits(self) -> None:
        """A pacing horizon longer than the run is refused before anything is written."""
        c, t = self.cfg.curriculum, self.cfg.train
        n = self._kept_count(len(self.data.splits["train"]))
        if c.horizon is None or not SCHEDULERS[c.scheduler].paced:
            return
        per_epoch = math.ceil(n / t.batch_size)
        budget = (t.max_steps or math.ceil(t.epochs * per_epoch)) * t.batch_size
        if c.horizon * n > budget:
            raise AttncoachError(
                f"config key 'curriculum.horizon' ({c.horizon:g} epochs = {c.horizon * n:,.0f} "
                f"examples) is longer than the run ({budget:,} examples)"
            )

    def _score_and_prune(self) -> dict[str, np.ndarray]:
        """Difficulty scores the curriculum needs (cached in difficulty.json), and data pruning."""
        c = self.cfg.curriculum
        names = []
        if SCHEDULERS[c.scheduler].needs_scores:
            names.append(c.scorer)
        if c.keep_fraction < 1 and c.prune_by not in names:
            names.append(c.prune_by)
        if not names:
            return {}
        path = self.run_dir.path / "difficulty.json"
        train = self.data.splits["train"]
        if self.resume and path.is_file():
            cached = read_difficulty(path, len(train))
            scores, kept = cached["scores"], cached["kept"]
        else:  # rank 0 of a data-parallel run scores (one probe run) and writes; every rank takes its scores
            scores, kept, counted, seconds = self.world.from_main(lambda: self._score_now(names, path, train))
            self.state.examples_scored += counted
            self.state.curriculum_seconds += seconds
            self.state.train_seconds += seconds
        if kept is not None:
            self.data.splits["train"] = train.subset(kept)
            if self.label_noise is not None:  # label_noise.json indexes the training split as trained
                self.label_noise = self.label_noise.subset(kept)
            self.data.strata = self.data.strata[kept]
            scores = {name: values[kept] for name, values in scores.items()}
            skipped = f" after the hardest {c.skip_hardest:g}" if c.skip_hardest and c.keep == "hardest" else ""
            log.info(
                "curriculum: kept %d of %d training examples (the %s %g by %s%s)",
                len(kept),
                len(train),
                c.keep,
                c.keep_fraction,
                c.prune_by,
                skipped,
            )
        return scores

    def _score_now(
        self, names: list[str], path: Any, train: Any
    ) -> tuple[dict[str, np.ndarray], np.ndarray | None, int, float]:
        """Score the training examples, choose the ones pruning keeps, write difficulty.json.

        Returns:
            (scores by scorer, the kept indices or None, examples trained and scored, seconds).
        """
        c, t = self.cfg.curriculum, self.cfg.train
        result = score_examples(
            names,
            train,
            self.model,
            self.task,
            self._probe_trainer(),
            c.probe_epochs,
            c.probe_passes,
            self.device,
            lambda: autocast_for(self.device, self.bf16),
            t.eval_batch_size,
            t.seed,
        )
        scores = result.scores
        kept = None
        if c.keep_fraction < 1:
            order = np.argsort(-scores[c.prune_by] if c.keep == "hardest" else scores[c.prune_by], kind="stable")
            skip = int(round(c.skip_hardest * len(train))) if c.keep == "hardest" else 0
            kept = np.sort(order[skip : skip + self._kept_count(len(train))])
        write_difficulty(path, scores, kept, result, train.lines)
        for name in names:
            log.info("curriculum: %s scores %s (%.1f s)", name, describe_scores(scores[name]), result.seconds)
        return scores, kept, result.trained_examples + result.scored_examples, result.seconds

    def _probe_trainer(self) -> ProbeTrainer:
        """Training steps for the curriculum's probe run: this run's task, optimiser settings and device."""
        return ProbeTrainer(
            self.task, self.cfg.train, self.device, lambda: autocast_for(self.device, self.bf16), quiet=self.quiet
        )

    def _setup_curriculum(self) -> tuple[CurriculumScheduler, LearningRecord | None]:
        c, t = self.cfg.curriculum, self.cfg.train
        train = self.data.splits["train"]
        settings = SchedulerSettings(
            batch_size=t.batch_size,
            bucket_size=t.bucket_size,
            seed=t.seed,
            total_examples=self.total_steps * t.batch_size,
            pacing=c.pacing,
            start=c.start,
            pacing_steps=c.pacing_steps,
            boxes=c.boxes,
            refresh=c.refresh,
            repeat=c.repeat,
            horizon_examples=None if c.horizon is None else int(c.horizon * len(train)),
        )
        strata = self.data.strata
        scheduler = make_scheduler(c.scheduler, train.lengths, strata, self.scores.get(c.scorer), settings)
        if c.scheduler != "uniform":
            paced = (
                f", {c.pacing} pacing from {c.start:g} over {settings.horizon:,} examples" if scheduler.paced else ""
            )
            by = f" by {c.scorer}" if scheduler.needs_scores else ""
            log.info("curriculum: %s scheduler%s%s", c.scheduler, by, paced)
        return scheduler, LearningRecord(len(train)) if c.record else None

    def _noisy_label_switches(self) -> list[Callback]:
        """curriculum.suspects and curriculum.small_loss, when either is on."""
        c, size = self.cfg.curriculum, len(self.data.splits["train"])
        if c.suspects is None and c.small_loss is None:
            return []
        suspects = None if c.suspects is None else suspect_filter(c.suspects, size, self.steps_per_epoch)
        small_loss = None if c.small_loss is None else small_loss_schedule(c.small_loss, self.steps_per_epoch)
        if suspects is not None:
            log.info(
                "curriculum: from step %d, every %d steps, the %g most suspect by %s are %s",
                suspects.start_step,
                suspects.every,
                c.suspects.fraction,
                c.suspects.score,
                "dropped" if c.suspects.action == "drop" else f"weighted {c.suspects.weight:g}",
            )
        if small_loss is not None:
            log.info(
                "curriculum: small-loss selection, forgetting the largest %g of each batch's losses from step %d on",
                c.small_loss.forget_rate,
                small_loss.ramp_steps,
            )
        return [NoisyLabelsCallback(suspects, small_loss)]

    def _example_weights(self, index: list[int]) -> np.ndarray | None:
        """The weight of each example of the coming micro-batch in its loss: every callback's, multiplied."""
        weights = None
        for callback in self.callbacks:
            mine = callback.before_batch(self, index)
            if mine is not None:
                weights = mine if weights is None else weights * mine
        return weights

    def _measure(self, indices: np.ndarray) -> np.ndarray:
        """The current model's loss on training examples (for the self-paced scheduler), counted and timed.

        Measured on rank 0 of a data-parallel run, so that every rank's scheduler chooses the same round.
        """
        tick = time.perf_counter()
        losses = self.world.from_main(
            lambda: measure_losses(
                self.model,
                self.task,
                self.data.splits["train"],
                indices,
                self.device,
                lambda: autocast_for(self.device, self.bf16),
                self.cfg.train.eval_batch_size,
            )
        )
        self.state.examples_scored += len(indices)
        self.state.curriculum_seconds += time.perf_counter() - tick
        return losses

    def _setup_elastic(self) -> InPlaceDistillation | None:
        """Supernet training when elastic.enabled: the sub-net sampler, and importance rewiring."""
        e = self.cfg.elastic
        if not e.enabled:
            return None
        self.space = space_of(e)
        sampler = make_sampler(e.sampler, self.space, self.model.encoder.config, e.random_subnets, self.cfg.train.seed)
        rewire_now = e.rewire is True or (e.rewire == "auto" and self.backbone is not None)
        if rewire_now and not (self.resume and self.store.kept()):  # checkpoints are rewired already
            self._rewire(e.rewire_batches)
        log.info(
            "elastic: widths %s x depths %s%s; each step trains the largest, the smallest (%s) and %d random "
            "sub-net(s); distillation: %s",
            _fractions(self.space.widths),
            _fractions(self.space.depths),
            " (per-layer widths)" if self.space.per_layer else "",
            sampler.sample(0)[1],
            e.random_subnets,
            e.distill,
        )
        return InPlaceDistillation(sampler, self.task, e.distill, e.temperature, e.hidden_weight)

    def _setup_coach(self) -> CoachSession | None:
        """The coach when coach.enabled: its policies, knobs and signal tracker."""
        if not self.cfg.coach.enabled:
            return None
        session = CoachSession(
            self.cfg.coach,
            self.model,
            self.optimizer,
            self.cfg.train.weight_decay,
            self.run_dir.coach_log if self.world.is_main else None,
            elastic=self.supernet is not None,
            total_steps=self.total_steps,
            chance_loss=self.data.chance_loss,
        )
        log.info("coach: %s", ", ".join(session.coach.names))
        return session

    def _rewire(self, batches: int) -> None:
        """Reorder heads and FFN neurons by importance so that every prefix sub-net keeps the best ones."""
        train = self.data.splits["train"]
        chosen = self.sampler.batches(0)[:batches]
        sample = [{k: v.to(self.device) for k, v in train.batch(index).items()} for index in chosen]
        tick = time.perf_counter()
        rewire(self.model, importance(self.model, sample, self.task))
        log.info(
            "rewired heads and FFN neurons by importance over %d training batches (%.1f s)",
            len(sample),
            time.perf_counter() - tick,
        )

    def _save_run_files(self) -> None:
        md = self.run_dir.model
        self.data.save(md)
        write_model_config(
            md,
            model_config(
                self.model,
                self.data.max_length,
                task=self.task.name,
                elastic=self.space.to_dict() if self.supernet is not None else None,
            ),
        )
        atomic_write_json(self.run_dir.path / "data_stats.json", self.data.stats)
        if self.label_noise is not None:
            self.label_noise.write(self.run_dir.path)

    def _restore(self) -> None:
        ckpt = self.store.load_latest()  # a damaged latest checkpoint falls back to an older one
        if ckpt is None:
            log.info("no checkpoint yet in %s: starting from step 0", self.run_dir.path)
            if self.world.is_main:
                self._save_run_files()
            return
        path = ckpt.path
        rng = self._rng_of_this_rank(ckpt.rng, path)
        try:
            self.model.load_state_dict(ckpt.model)
            self.optimizer.load_state_dict(ckpt.optimizer)
            self.state = TrainerState(**ckpt.state["trainer"])
            for callback in self.callbacks:
                if callback.state_dict() is not None:
                    callback.load_state_dict(ckpt.state.get(callback.key), self)
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise AttncoachError(f"checkpoint {path} does not match this run ({first})") from None
        torch.set_rng_state(rng["torch"])
        if self.device.type == "cuda" and "cuda" in rng:
            torch.cuda.set_rng_state(rng["cuda"])
        log.info("resumed from %s (step %d of %d)", path.name, self.state.step, self.total_steps)

    def _rng_of_this_rank(self, rng: dict[str, Any], path: Any) -> dict[str, Any]:
        """This process's generator states in a checkpoint; a data-parallel one keeps every rank's under ``ranks``.

        A checkpoint resumes on as many processes as wrote it (each rank continues its own dropout masks).
        """
        ranks = rng.get("ranks")
        saved = 1 if ranks is None else len(ranks)
        if saved != self.world.size:
            how = "without torchrun" if saved == 1 else f"under torchrun --nproc_per_node {saved}"
            raise AttncoachError(
                f"checkpoint {path} was written by {saved} process(es) and this run has {self.world.size}: "
                f"resume it {how}"
            )
        return rng if ranks is None else ranks[self.world.rank]

    # ------------------------------------------------------------------ train
    def run(self) -> dict[str, Any]:
        """Set up, train, evaluate the best model on val and test; return metrics.json's content.

        In a data-parallel run only rank 0 finishes (evaluates the best model, writes metrics.json);
        the other ranks return ``{}`` once training ends.
        """
        try:
            self.setup()
        except BaseException:
            if not self.resume:  # a default run directory claimed for this run, still empty, is given back
                release_output_dir(self.run_dir.path)
            raise
        try:
            self.train()
            self._check_kept_a_model()  # on every rank: all of them fail alike
            return self.finish() if self.world.is_main else {}
        finally:
            self.close()

    def close(self) -> None:
        """Let every callback release its files and writers (the loggers flush theirs)."""
        for callback in self.callbacks:
            callback.close()

    def log_scalars(self, step: int, group: str, values: dict[str, float]) -> None:
        """Fan the scalars of ``group`` (train, val, test, coach) at ``step`` out to the callbacks."""
        for callback in self.callbacks:
            callback.on_log(self, step, group, values)

    def train(self) -> None:
        """The training loop, from the current state to the last step or early stop."""
        s = self.state
        train = self.data.splits["train"]
        self.model.train()
        started = time.perf_counter()
        base = s.train_seconds
        self.clock = lambda: base + time.perf_counter() - started
        loss_ema = None
        self.checkpoint_due = False
        for callback in self.callbacks:
            callback.on_train_start(self)
        with TrainingProgress(self.total_steps, s.step, enabled=not self.quiet) as bar:
            while s.step < self.total_steps and not s.stopped_early:
                batches = self.scheduler.batches(s.epoch, self._measure)
                for callback in self.callbacks:
                    callback.on_round_start(self, s.epoch)
                while s.batch_in_epoch < len(batches) and s.step < self.total_steps:
                    index = batches[s.batch_in_epoch]  # the whole batch; each rank trains on its slice
                    mine = self.world.shard(index)
                    batch = self._batch_of(train, mine)
                    weights = self._example_weights(mine)
                    if weights is not None and batch is not None:  # the task's loss is their weighted mean
                        batch["weights"] = torch.as_tensor(weights, dtype=torch.float32)
                    undone = self.coach.probing  # the LR probe's steps are rolled back: nothing learns from them
                    loss, grad_norm = self.train_step(batch, len(index))
                    out, tokens = self._whole_batch(batch, len(index))
                    if not undone:
                        for callback in self.callbacks:
                            callback.on_batch_end(self, index, out)
                    s.step += 1
                    s.batch_in_epoch += 1
                    s.examples_seen += len(index)
                    s.tokens_seen += tokens
                    loss_ema = loss if loss_ema is None else 0.98 * loss_ema + 0.02 * loss
                    if s.step % self.cfg.log.every == 0:
                        self.log_scalars(s.step, "train", self._train_scalars(loss, grad_norm))
                    bar.update(s.step, loss=loss_ema)
                    # a probe's steps are discarded by its rollback: no evaluation or checkpoint of them
                    probing = self.coach.probing
                    # a run stopped before its first evaluation is evaluated as it is (it needs a best model)
                    first_stop = s.stopped_early and not s.history
                    if (s.step % self.eval_every == 0 and not probing) or s.step == self.total_steps or first_stop:
                        tick = time.perf_counter()
                        self.evaluate_and_track(bar)
                        s.eval_seconds += time.perf_counter() - tick
                    if s.stopped_early:  # a partial accumulation is dropped: no more steps follow
                        self.micro, self.micro_losses = 0, []
                    due = s.step % self.checkpoint_every == 0 or s.step == self.total_steps or s.stopped_early
                    self.checkpoint_due = self.checkpoint_due or due
                    ready = self.micro == 0 and (not probing or s.stopped_early or s.step == self.total_steps)
                    if self.checkpoint_due and ready:  # never inside a gradient accumulation or a probe
                        self.checkpoint_due = False
                        s.train_seconds = base + time.perf_counter() - started
                        tick = time.perf_counter()
                        self.save_checkpoint()
                        s.checkpoint_seconds += time.perf_counter() - tick
                    if s.stopped_early:
                        break
                if s.batch_in_epoch >= len(batches):
                    s.epoch += 1
                    s.batch_in_epoch = 0
        s.train_seconds = base + time.perf_counter() - started

    def _batch_of(self, train: Any, index: list[int]) -> dict[str, torch.Tensor] | None:
        """The training examples ``index`` as tensors (augmented when augment.p > 0); None for no examples."""
        if not index:  # a data-parallel rank's slice of a batch smaller than the number of ranks
            return None
        return train.batch(index) if self.augmenter is None else self.augmenter.batch(train, index, self.state.step)

    def _whole_batch(self, batch: dict[str, torch.Tensor] | None, examples: int) -> tuple[StepOut | None, int]:
        """The per-example outcomes and the real-token count of the whole micro-batch just trained.

        In one process, the step's own; in a data-parallel run, every rank's slice gathered in rank
        order (the order of the batch's indices), so every rank's curriculum and record see all of it.
        """
        if not self.world.distributed:
            return self.batch_out, int(batch["attention_mask"].sum())
        # loss, correct, predicted and margin (NaN: the task reports none), real tokens
        rows = np.zeros((0, 5))
        if batch is not None:
            out = self.batch_out
            size = len(out.losses)
            predicted = out.predicted if out.predicted is not None else torch.full((size,), math.nan)
            margin = out.margin.detach() if out.margin is not None else torch.full((size,), math.nan)
            tokens = batch["attention_mask"].reshape(size, -1).sum(1)
            columns = (out.losses.detach(), out.correct, predicted, margin, tokens)
            rows = torch.stack([c.double().cpu() for c in columns], 1).numpy()
        rows = self.world.gather_rows(rows, self.world.shard_sizes(examples))
        predicted, margin = rows[:, 2], rows[:, 3]
        whole = StepOut(
            loss=torch.tensor(rows[:, 0].mean()),
            losses=torch.from_numpy(rows[:, 0]).float(),
            correct=torch.from_numpy(rows[:, 1] > 0),
            outputs=torch.empty(0),
            predicted=None if np.isnan(predicted).all() else torch.from_numpy(predicted.astype(np.int64)),
            margin=None if np.isnan(margin).all() else torch.from_numpy(margin).float(),
        )
        return whole, int(rows[:, 4].sum())

    def train_step(
        self, batch: dict[str, torch.Tensor] | None, examples: int | None = None
    ) -> tuple[float, float | None]:
        """One micro-batch forward and backward, and the optimizer step once the accumulation is complete.

        Args:
            batch: the micro-batch (in a data-parallel run this rank's slice of it; None for an empty slice).
            examples: the whole micro-batch's size (default: ``batch``'s).

        Returns:
            The micro-batch's loss (a data-parallel run's optimizer step gives the whole step's), and the
            gradient norm before clipping (None when no optimizer step was due).
        """
        if examples is None:
            examples = batch["input_ids"].shape[0]
        # this rank's share of the batch weights its loss, so that the ranks' gradients sum to the batch's
        share = batch["input_ids"].shape[0] / examples if batch is not None else 0.0
        self.micro_examples, self.smallest_slice = examples, min(self.world.shard_sizes(examples))
        accumulation = self.coach.knobs.accumulation
        if self.micro == 0:
            if self.freeze_step is not None and self.state.step >= self.freeze_step:  # also on resuming past it
                self._freeze(self.state.step)
                self.freeze_step = None
            self.optimizer.zero_grad(set_to_none=True)
        if batch is None:
            loss, self.batch_out = 0.0, None
        else:
            loss = self._forward_backward(batch, share / accumulation)
        self.micro += 1
        self.micro_losses.append(loss * share)
        last = self.state.step + 1 >= self.total_steps
        if self.micro < accumulation and not last:
            return loss, None
        if self.micro < accumulation:  # the run ends inside an accumulation: average what there is
            for p in self.model.parameters():
                if p.grad is not None:
                    p.grad.mul_(accumulation / self.micro)
        grad_norm = self._update(examples * self.micro)
        return (self.step_loss if self.world.distributed else loss), grad_norm

    def _forward_backward(self, batch: dict[str, torch.Tensor], scale: float) -> float:
        """Forward and backward of one micro-batch, its loss scaled by ``scale``; returns the clean loss.

        With ``robust.method`` set (and past its start step) the adversary's perturbed passes
        follow the clean one, their gradients added to the clean gradients.
        """
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        adversary = self.adversary if self.adversary is not None and self.adversary.active(self.state.step) else None
        with adversary.watch() if adversary is not None else contextlib.nullcontext():
            loss = self._clean_pass(batch, scale)
        if adversary is not None:  # the full model (a supernet step leaves it active) against a perturbed input
            self.adv_loss = adversary.attack(self._loss_of, batch, scale)
        return loss

    def _loss_of(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The task's mean loss of ``batch`` through the model as it is: the one place a step's loss is computed."""
        with autocast_for(self.device, self.bf16):
            return self.task.step(self.model, batch).loss

    def _clean_pass(self, batch: dict[str, torch.Tensor], scale: float) -> float:
        autocast = lambda: autocast_for(self.device, self.bf16)  # noqa: E731
        if self.supernet is not None:
            losses = self.supernet.accumulate(self.model, batch, self.state.step, autocast, scale=scale)
            self.smallest_loss = losses.smallest
            self.batch_out = losses.teacher
            return losses.largest
        parts: list[StepOut] = []  # the outcomes, kept for the curriculum and the learning record

        def loss_of(part: dict[str, torch.Tensor]) -> torch.Tensor:
            with autocast():
                out = self.task.step(self.model, part)
            parts.append(out)
            return out.loss

        if self.micro == 0 and self.smallest_slice >= 2 and self.coach.wants_noise(self.state.step):
            loss, half_sq, full_sq = measure_noise_halves(loss_of, batch, scale, self.coach.params)
            # data-parallel: each rank halves its slice; the ranks' means estimate the same two norms
            half_sq, full_sq = (v / self.world.size for v in self.world.all_sum([half_sq, full_sq]))
            self.coach.record_noise(half_sq, full_sq, self.micro_examples / self.world.size)
            self.batch_out = StepOut(
                loss=torch.tensor(loss),
                losses=torch.cat([p.losses for p in parts]),
                correct=torch.cat([p.correct for p in parts]),
                outputs=parts[0].outputs,
                predicted=torch.cat([p.predicted for p in parts]),
                margin=None if parts[0].margin is None else torch.cat([p.margin for p in parts]),
            )
            return loss
        loss = loss_of(batch)
        (loss * scale).backward()
        self.batch_out = parts[0]
        return loss.item()

    def _update(self, examples: int) -> float:
        """Clip, let the coach look, step; returns the gradient norm before clipping."""
        s, t = self.state, self.cfg.train
        loss = sum(self.micro_losses) / len(self.micro_losses)
        self.micro, self.micro_losses = 0, []
        if self.world.distributed:  # every rank then clips, asks the coach and steps on the same numbers
            params = [p for p in self.model.parameters() if p.requires_grad]
            (loss,) = self.world.sum_gradients(params, [loss])
        self.step_loss = loss
        clip = t.grad_clip if t.grad_clip > 0 else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip))
        scheduled = lr_factor(s.step, self.total_steps, self.warmup_steps, t.schedule)
        probing = self.coach.probing  # a probe ends in a rollback: its blow-up is no fault of the run
        action = self.coach.before_update(s.step + 1, s.examples_seen, loss, grad_norm, examples, scheduled)
        if action == "stop":
            self._stop(self.coach.coach.stop_reason or "stopped by the coach")
            return grad_norm
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):  # coach or not: never into the weights
            self._skip_nonfinite(loss, counted=not probing)
            return grad_norm
        s.nonfinite_streak = 0
        if action == "skip":
            return grad_norm
        factor = scheduled * self.coach.knobs.lr_scale
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        self.current_lr = t.lr * factor
        with self.coach.step_context(s.step + 1, loss):
            self.optimizer.step()
        return grad_norm

    def _skip_nonfinite(self, loss: float, counted: bool) -> None:
        """A NaN or infinite loss or gradient: the update is dropped and counted; too many in a row end the run."""
        s, limit = self.state, self.cfg.train.max_nonfinite_steps
        self.optimizer.zero_grad(set_to_none=True)
        if not counted:
            return
        s.nonfinite_steps += 1
        s.nonfinite_streak += 1
        what = "loss" if not math.isfinite(loss) else "gradient"
        log.warning(
            "step %d: non-finite %s (NaN or inf); the update is skipped (%d so far)",
            s.step + 1,
            what,
            s.nonfinite_steps,
        )
        if s.nonfinite_streak >= limit:
            raise AttncoachError(
                f"training stopped at step {s.step + 1}: {s.nonfinite_streak} updates in a row had a NaN or infinite "
                f"loss or gradient ({s.nonfinite_steps} in all), so none reached the weights; lower train.lr, look for "
                f"broken examples in the data, or raise train.max_nonfinite_steps ({limit})"
            )

    def _train_scalars(self, loss: float, grad_norm: float | None) -> dict[str, float]:
        scalars = {"loss": loss, "lr": self.current_lr}
        if self.adv_loss is not None:
            scalars["adv_loss"] = self.adv_loss
        if grad_norm is not None:
            scalars["grad_norm"] = grad_norm
        for callback in self.callbacks:
            scalars.update(callback.train_scalars(self))
        return scalars

    def _stop(self, reason: str) -> None:
        s = self.state
        if not s.stopped_early:
            s.stopped_early, s.stop_reason = True, reason
            log.info("stopping at step %d: %s (best val %.4f at step %d)", s.step, reason, s.best_metric, s.best_step)

    def evaluate_and_track(self, bar: TrainingProgress) -> None:
        """Evaluate on val, keep the best model, count evaluations towards early stopping."""
        s, t = self.state, self.cfg.train
        primary = self.task.primary
        trained_for = self.clock() - s.eval_seconds  # training time so far (probe and scoring included)
        val = self.data.splits["val"]
        metrics = self.world.from_main(lambda: self._evaluate(val))  # rank 0's metrics steer every rank
        score = metrics[self.task.primary]
        entry = {
            "step": s.step,
            "epoch": round(s.step / self.steps_per_epoch, 3),
            "examples_seen": s.examples_seen,
            "seconds": round(trained_for, 3),
            **({"examples_scored": s.examples_scored} if s.examples_scored else {}),
            "val_loss": round(metrics["loss"], 5),
            **{f"val_{k}": round(v, 5) for k, v in metrics.items() if k in self._tracked},
        }
        finite = math.isfinite(metrics["loss"])
        if self.supernet is not None:  # select on the mean of the largest and the smallest sub-net
            smallest = self.world.from_main(lambda: self._evaluate_smallest(val))
            finite = finite and math.isfinite(smallest["loss"])
            score = (score + smallest[primary]) / 2
            entry.update(**{f"val_{primary}_smallest": round(smallest[primary], 5)}, val_selection=round(score, 5))
            self.log_scalars(s.step, "val", {f"{primary}_smallest": smallest[primary]})
        self.model.train()
        if not (finite and math.isfinite(score)):  # a diverged model's argmax still "scores": never the best
            score = math.nan
            entry.update({k: None for k in entry if k.startswith("val_")})
            log.warning("step %d: the val loss is not finite (NaN or inf): this model is not kept", s.step)
        improved = score > s.best_metric  # False for NaN
        if improved:
            s.best_metric, s.best_step, s.evals_since_best = score, s.step, 0
            if self.world.is_main:
                atomic_save_safetensors(self.model.state_dict(), self.run_dir.model / "model.safetensors")
        else:
            s.evals_since_best += 1
        s.history.append(entry)
        self.log_scalars(s.step, "val", {k: metrics[k] for k in ("loss", *self._tracked) if k in metrics})
        smallest_note = f" smallest {smallest[primary]:.4f}" if self.supernet is not None else ""
        shown = " ".join(f"{_METRIC_NAMES.get(k, k)} {metrics[k]:.4f}" for k in self._tracked if k in metrics)
        bar.note(
            f"step {s.step}: val {shown}{smallest_note} loss {metrics['loss']:.4f}{'  (best)' if improved else ''}",
            val_f1=s.best_metric,
        )
        for callback in self.callbacks:
            reason = callback.after_eval(self, metrics, score)
            if reason is not None:
                self._stop(reason)
        target = t.target
        if target is not None and not math.isnan(score) and metrics[target.metric] >= target.value:
            self._stop(f"target reached: val {target.metric} {metrics[target.metric]:.4f} >= {target.value:g}")
        patience = t.early_stopping_patience
        if self.coach.owns_stopping:
            patience = None  # a policy (plateau) decays first and stops when it has nothing left to try
        if patience is not None and s.evals_since_best >= patience:
            self._stop(f"early stop: no val {_METRIC_NAMES.get(primary, primary)} gain in {patience} evaluations")

    @property
    def _tracked(self) -> tuple[str, ...]:
        """The val metrics kept in the history and the logs: the task's primary one first."""
        return self.task.tracked

    def evaluate(self, split: Any) -> dict[str, Any]:
        """The task's metrics of the model (its active sub-net) on ``split``."""
        return self._evaluate(split)

    def _evaluate(self, split: Any) -> dict[str, Any]:
        return self.task.evaluate(self.model, split, self.data, self.cfg.train.eval_batch_size, self.bf16)

    def _evaluate_smallest(self, val: Any) -> dict[str, Any]:
        self.model.set_subnet(self.supernet.sampler.sample(0)[1])
        try:
            return self._evaluate(val)
        finally:
            self.model.set_subnet(None)

    def save_checkpoint(self) -> None:
        """Write a resumable checkpoint of the current state (rank 0 writes it, with every rank's RNG states)."""
        rng: dict[str, Any] = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state()
        if self.world.distributed:
            rng["ranks"] = self.world.gather_objects(dict(rng))
        if not self.world.is_main:
            return
        state = {"trainer": to_plain(self.state), "config": to_dict(self.cfg)}
        for callback in self.callbacks:
            entry = callback.state_dict()
            if entry is not None:
                state[callback.key] = entry
        path = self.store.save(self.state.step, self.model.state_dict(), self.optimizer.state_dict(), rng, state)
        for callback in self.callbacks:
            callback.on_checkpoint(self, path)

    # ------------------------------------------------------------------ finish
    def finish(self) -> dict[str, Any]:
        """Load the best weights, evaluate on val and test, write metrics.json."""
        s, t = self.state, self.cfg.train
        self._check_kept_a_model()
        self.model.load_state_dict(load_weights(self.run_dir.model / "model.safetensors"))
        # The saved model is evaluated and calibrated as `attncoach eval`, `predict` and `serve` run it: float32.
        self.bf16 = False
        results: dict[str, Any] = {}
        for split in ("val", "test"):
            data = self.data.splits[split]
            results[split] = self._evaluate(data)
        for callback in self.callbacks:
            section = callback.finish(self)
            if section is not None:
                results[callback.key] = section
        if t.target is not None:
            best = max((h[f"val_{t.target.metric}"] for h in s.history if h["val_loss"] is not None), default=None)
            results["target"] = {
                "metric": t.target.metric,
                "value": t.target.value,
                "best": best,
                "reached": best is not None and best >= t.target.value,
            }
            if not results["target"]["reached"]:
                log.info("target val %s %g not reached; best %s", t.target.metric, t.target.value, best)
        metrics = {
            **results,
            "task": self.task.name,
            "primary": self.task.primary,
            "precision": self.precision,
            "train_seconds": round(s.train_seconds, 3),
            "eval_seconds": round(s.eval_seconds, 3),
            "checkpoint_seconds": round(s.checkpoint_seconds, 3),
            "curriculum_seconds": round(s.curriculum_seconds, 3),
            "examples_seen": s.examples_seen,
            "examples_scored": s.examples_scored,
            "tokens_seen": s.tokens_seen,
            "steps": s.step,
            "epochs": round(s.step / self.steps_per_epoch, 3),
            "best_step": s.best_step,
            "stopped_early": s.stopped_early,
            "stop_reason": s.stop_reason,
            "nonfinite_steps": s.nonfinite_steps,
            "history": s.history,
        }
        atomic_write_json(self.run_dir.metrics, metrics)
        self.log_scalars(s.step, "test", {k: results["test"][k] for k in self._tracked if k in results["test"]})
        for callback in self.callbacks:
            callback.on_finish(self, metrics)
        if self.cfg.log.report:
            self._write_report()
        return metrics

    def _check_kept_a_model(self) -> None:
        """Refuse to finish a run whose every evaluation had a non-finite val loss (no weights were kept)."""
        if self.state.best_step == 0:
            coach_hint = "" if self.cfg.coach.enabled else " or turn the coach on (coach.enabled=true)"
            raise AttncoachError(
                f"training diverged: the val loss was NaN or infinite at every evaluation (the last at step "
                f"{self.state.step}), so no model was kept; lower train.lr{coach_hint}"
            )

    def _write_report(self) -> None:
        """report.html of the finished run; the run's own files are complete, so a failure only warns."""
        tick = time.perf_counter()
        samples = getattr(self.data.splits["test"], "texts", None)  # attention maps on test texts (none: histories)
        try:
            path = write_report([self.run_dir.path], samples=samples)
        except Exception as exc:  # the run has finished: `attncoach report RUN` can try again
            log.warning(
                "report.html not written (%s: %s); try attncoach report %s", type(exc).__name__, exc, self.run_dir.path
            )
            return
        log.info("report: %s (%.1f s)", path, time.perf_counter() - tick)


def _fractions(values: tuple[float, ...]) -> str:
    return "{" + ", ".join(f"{v:g}" for v in values) + "}"


def to_plain(state: TrainerState) -> dict[str, Any]:
    """The trainer state as JSON-ready data."""
    return dict(state.__dict__)
