"""Calibration at the end of a run (``train.calibrate``): temperature scaling fitted on val, kept with the model.

Once the best weights are loaded, :class:`CalibrationCallback` fits one temperature ``T`` on
the val split's logits (:func:`attncoach.robust.calibration.fit_temperature`), writes
``model/calibration.json`` (read by :class:`attncoach.models.saved.SavedClassifier`, so
``predict``, ``eval`` and the server give ``softmax(logits / T)``) and returns the
``calibration`` section of ``metrics.json``: the temperature, and the NLL and expected
calibration error (15 bins) before and after it on val and on test.

Only a task whose outputs are class probabilities (:attr:`Task.class_probabilities`) is
calibrated; a next-item model ranks items, which a temperature does not change, and gets no section.
Nothing happens before the end of the run, so a checkpoint holds no calibration state and a
resumed run calibrates exactly as one never interrupted.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from attncoach.models.saved import autocast_for, write_calibration
from attncoach.robust.calibration import calibration_effect, fit_temperature
from attncoach.train.callbacks import Callback

log = logging.getLogger("attncoach")


class CalibrationCallback(Callback):
    """Fits the temperature on val at the end of the run; see the module docstring."""

    key = "calibration"

    def finish(self, recipe: Any) -> dict[str, Any] | None:
        if not recipe.task.class_probabilities:
            return None
        val_logits, val_gold = split_logits(recipe, recipe.data.splits["val"])
        if len(val_gold) == 0:
            log.info("calibration: the val split is empty, nothing to fit a temperature on")
            return None
        temperature = fit_temperature(val_logits, val_gold)
        val = calibration_effect(val_logits, val_gold, temperature)
        test = calibration_effect(*split_logits(recipe, recipe.data.splits["test"]), temperature)
        record = {
            "method": "temperature",
            "temperature": temperature,
            "fitted_on": "val",
            "val_nll": val["nll"],
            "val_ece": val["ece"],
        }
        write_calibration(recipe.run_dir.model, record)
        log.info(
            "calibration: temperature %.4g fitted on val; test ECE %.4f -> %.4f, NLL %.4f -> %.4f",
            temperature,
            *test["ece"],
            *test["nll"],
        )
        return {**record, "test_nll": test["nll"], "test_ece": test["ece"]}


@torch.inference_mode()
def split_logits(recipe: Any, split: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's class logits ``(N, C)`` (float32, CPU) and the gold classes ``(N,)`` of ``split``, in
    batches of similar length (the order of the examples is the batches', the same for both)."""
    model, size = recipe.model, recipe.cfg.train.eval_batch_size
    was_training = model.training
    model.eval()
    order = np.argsort(np.asarray(split.lengths), kind="stable")
    logits, gold = [], []
    try:
        for start in range(0, len(order), size):
            batch = {k: v.to(recipe.device) for k, v in split.batch(order[start : start + size].tolist()).items()}
            with autocast_for(recipe.device, recipe.bf16):
                out = recipe.task.step(model, batch)
            logits.append(out.outputs.float().cpu())
            gold.append(batch["labels"].cpu())
    finally:
        model.train(was_training)
    if not logits:
        return torch.empty(0, 0), torch.empty(0, dtype=torch.long)
    return torch.cat(logits), torch.cat(gold)
