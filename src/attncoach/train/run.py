"""Training from Python: ``attncoach.train(config_or_path, **overrides) -> Run``.

Example:
    >>> import attncoach
    >>> run = attncoach.train("configs/banking77.yaml", train={"epochs": 1}, output_dir="runs/b77")  # doctest: +SKIP
    >>> run.metrics["test"][run.metrics["primary"]]                                                   # doctest: +SKIP
    0.86...
    >>> attncoach.load(run.dir).predict(["I still have not received my new card"])[0]["label"]   # doctest: +SKIP
    'card_arrival'
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attncoach.config import RunConfig, config_from_mapping
from attncoach.errors import AttncoachError
from attncoach.rundir import RunDir
from attncoach.train.distributed import current_world
from attncoach.train.settings import check_registries, claim_output_dir

log = logging.getLogger("attncoach")


@dataclass
class Run:
    """A finished training run.

    Attributes:
        dir: the run directory (``model/``, ``metrics.json``, ``config.yaml``...).
        metrics: the content of ``metrics.json`` (``val``, ``test``, ``primary``, ``steps``...).
        config: the resolved configuration.
    """

    dir: Path
    metrics: dict[str, Any]
    config: RunConfig

    @property
    def model_dir(self) -> Path:
        """Where the trained model is (give it to ``attncoach.load``)."""
        return self.dir / "model"


def train(
    config: str | Path | dict[str, Any] | RunConfig | None = None, *, quiet: bool = True, **overrides: Any
) -> Run:
    """Train a model into a new run directory and return the :class:`Run`.

    Args:
        config: a YAML file, a mapping of sections (``{"data": {"builtin": "banking77"}}``), a
            :class:`RunConfig`, or None for the defaults.
        quiet: no progress bar.
        **overrides: top-level keys and sections that update ``config`` key by key, e.g.
            ``train={"lr": 3e-4}``, ``task="text_classification"``, ``output_dir="runs/x"``.

    Under torchrun, once the caller has joined the process group (``torch.distributed.init_process_group``),
    every process calls this and trains data-parallel; only rank 0's :class:`Run` holds the metrics.

    Raises:
        AttncoachError: a bad config key or value, a bad data file, an existing run directory...
    """
    from attncoach.config import to_dict
    from attncoach.train.recipe import Recipe

    if isinstance(config, RunConfig):
        cfg = config_from_mapping({**to_dict(config), **_merge_sections(to_dict(config), overrides)})
    elif isinstance(config, dict):
        cfg = config_from_mapping(_merge_sections(config, overrides))
    elif config is None or isinstance(config, (str, Path)):
        cfg = config_from_mapping(overrides, path=config)
    else:
        raise AttncoachError(f"config must be a YAML path, a mapping or a RunConfig, not {type(config).__name__}")
    check_registries(cfg)
    world = current_world()  # under torchrun, the process group the caller joined
    cfg.output_dir = world.from_main(lambda: claim_output_dir(cfg))  # rank 0 claims it for every rank
    run = RunDir(cfg.output_dir)
    metrics = Recipe(cfg, run, quiet=quiet, world=world).run()
    return Run(run.path, metrics, cfg)


def _merge_sections(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged
