"""What every benchmark result records about where and how it was measured."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            check=True,
        )
        # changed tracked files, other than the results the benchmarks themselves write
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)bench/results"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        ).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def conditions(device: str = "cpu") -> dict[str, Any]:
    """Commit, date, machine, thread count and library versions."""
    info = {
        "commit": _git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "device": device,
    }
    if device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of repeated measurements."""
    return {
        "median": float(statistics.median(values)),
        "min": float(min(values)),
        "max": float(max(values)),
        "n": len(values),
    }


def saved_under(path: Path, wanted: dict[str, Any], what: str) -> dict[str, Any] | None:
    """An earlier results file measured under the ``wanted`` settings (all but its seeds), or None.

    A benchmark that saves as it goes keeps ``what`` (its seeds, its campaigns) from such a file.
    """
    if not path.is_file():
        return None
    saved = json.loads(path.read_text(encoding="utf-8"))
    before = {k: v for k, v in saved.get("settings", {}).items() if k != "seeds"}
    if json.loads(json.dumps(before)) != json.loads(json.dumps(wanted)):
        print(f"{path.name} was measured under other settings: its {what} are not kept")
        return None
    return saved


def save(name: str, payload: dict[str, Any], quick: bool = False) -> Path:
    """Write ``bench/results/<name>.json`` (``<name>_quick.json`` for a quick run), overwriting."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}{'_quick' if quick else ''}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"saved {path}")
    return path
