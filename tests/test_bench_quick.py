"""The benchmark scripts still run (quick mode, numbers not judged): slow, on the real corpus."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.slow
@pytest.mark.parametrize(
    "command, result_name, keys",
    [
        (
            ["main_job.py"],
            "main_job",
            {"runs", "wall_seconds", "test_macro_f1", "tfidf_lr_test_macro_f1", "conditions"},
        ),
        (
            ["train_throughput.py"],
            "train_throughput",
            {"recipe_tokens_per_s", "hand_loop_tokens_per_s", "ratio_recipe_over_hand", "mfu", "coach_on_tokens_per_s"},
        ),
        (
            ["pretrained_finetune.py"],
            "pretrained_finetune",
            {"attncoach", "hf_trainer", "hf_trainer_group_by_length", "against", "speedup_examples_per_s"},
        ),
        (
            ["elastic_structure.py", "--backbone", "scratch"],
            "elastic_structure_scratch",
            {"cost", "grid", "rewiring", "depth", "search", "export"},
        ),
        (["coach.py", "--skip-quality"], "coach", {"overhead", "injection", "conditions"}),
        (["next_item.py"], "next_item", {"rows", "attncoach", "summary", "goals", "conditions"}),
        (["banking77.py"], "banking77", {"rows", "goals", "reference", "conditions"}),
        (["defaults.py"], "defaults", {"corpora", "goal", "met", "conditions"}),
        (["coach_quality.py"], "coach_quality", {"initial_lr", "versus_optuna", "fixed_schedule", "conditions"}),
        (
            ["curriculum.py", "--arms", "uniform", "leitner", "competence_sqrt", "--prune", "el2n", "random"],
            "curriculum",
            {"summary", "runs", "budget", "conditions"},
        ),
        (["serve.py"], "serve", {"models", "server", "fuzzing", "goals", "conditions"}),
        (["robustness.py"], "robustness", {"quality", "cost", "seeds", "conditions"}),
        (["translation.py"], "translation", {"runs", "summary", "kv_cache", "goals", "settings", "conditions"}),
        (["images.py"], "images", {"corpora", "seeds", "conditions"}),
        (["tune.py"], "tune", {"coached", "optuna", "pbt_coach_state", "pbt_no_coach_state", "goals", "settings"}),
        (["ddp.py"], "ddp", {"rows", "examples_per_s_ratio_2_over_1", "test_macro_f1", "met", "conditions"}),
        (["pretrain.py"], "pretrain", {"per_seed", "median_test_macro_f1", "median_gain_points", "goals"}),
        (["noisy_labels.py"], "noisy_labels", {"per_seed", "median_ap", "median_test_macro_f1", "goals"}),
        (
            ["active_learning.py"],
            "active_learning",
            {"campaigns", "median_curves", "share_of_random_labels", "small_text_overlap", "goals"},
        ),
    ],
)
def test_benchmark_script_runs(command, result_name, keys):
    proc = subprocess.run(
        [sys.executable, str(BENCH / command[0]), *command[1:], "--quick"], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((BENCH / "results" / f"{result_name}_quick.json").read_text())
    assert keys <= set(result)
    assert result["quick"] is True and result["conditions"]["cores"] >= 1
