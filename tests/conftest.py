"""Shared fixtures."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tinydata import make_corpus


@pytest.fixture(scope="session", autouse=True)
def offline_trackers(tmp_path_factory: pytest.TempPathFactory):
    """Weights & Biases and MLflow as the tracker tests use them: offline, silent, nothing in the home directory."""
    home = tmp_path_factory.mktemp("wandb-home")
    settings = {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_ERROR_REPORTING": "false",  # no crash reports over the network
        "WANDB_CONFIG_DIR": str(home / "config"),
        "WANDB_CACHE_DIR": str(home / "cache"),
        "WANDB_DATA_DIR": str(home / "data"),
        "MLFLOW_ALLOW_FILE_STORE": "true",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in settings.items():
            patch.setenv(key, value)
        yield


@pytest.fixture
def tiny_csv(tmp_path: Path) -> Path:
    """A 240-row CSV with columns text,label."""
    path = tmp_path / "tiny.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(make_corpus())
    return path
