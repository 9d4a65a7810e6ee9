"""Atomic, pickle-free checkpoints.

A checkpoint is a directory ``checkpoints/step-00000120/`` holding

- ``model.safetensors``: the weights;
- ``optimizer.pt``: the optimizer state (tensors and numbers only, read back with
  ``torch.load(weights_only=True)``);
- ``rng.pt``: the random generator states, same format;
- ``state.json``: the trainer's own state;
- ``manifest.json``: size and SHA-256 of each file above, checked on load.

Every file is written to a temporary name, flushed with ``fsync`` and renamed; the whole
directory is built under a temporary name and renamed into place, and only then does
``checkpoints/latest.json`` point at it. A run killed at any moment therefore leaves either
the previous checkpoint or the new one, never half of one.

A checkpoint damaged afterwards (a disk error, a truncated copy) is found by its manifest:
:meth:`CheckpointStore.load_latest` then falls back to the newest older one that is intact,
with a warning, and refuses with one line only when none is.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from attncoach.atomicfile import atomic_write_json, fsync_dir, save_safetensors
from attncoach.data.fingerprint import sha256_file as _sha256
from attncoach.errors import AttncoachError
from attncoach.weights import first_line as _first_line
from attncoach.weights import load_weights  # noqa: F401  (re-exported: the checkpoint's weights reader)

log = logging.getLogger("attncoach")

_FILES = ("model.safetensors", "optimizer.pt", "rng.pt", "state.json")


@dataclass
class Checkpoint:
    """A loaded checkpoint."""

    path: Path
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    rng: dict[str, Any]
    state: dict[str, Any]


class CheckpointStore:
    """Writes, lists and reads the checkpoints of one run.

    Args:
        root: the run's ``checkpoints/`` directory.
        keep: how many of the newest checkpoints to keep.
    """

    def __init__(self, root: Path, keep: int = 2):
        self.root = Path(root)
        self.keep = keep

    @property
    def pointer(self) -> Path:
        return self.root / "latest.json"

    def save(
        self,
        step: int,
        model: dict[str, torch.Tensor],
        optimizer: dict[str, Any],
        rng: dict[str, Any],
        state: dict[str, Any],
    ) -> Path:
        """Write a checkpoint for ``step`` and point ``latest.json`` at it."""
        self.root.mkdir(parents=True, exist_ok=True)
        name = f"step-{step:08d}"
        final = self.root / name
        tmp = self.root / f".{name}.tmp-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        save_safetensors(model, tmp / "model.safetensors")
        torch.save(optimizer, tmp / "optimizer.pt")
        torch.save(rng, tmp / "rng.pt")
        (tmp / "state.json").write_text(json.dumps(state, indent=2), encoding="utf-8")
        manifest = {f: {"bytes": (tmp / f).stat().st_size, "sha256": _sha256(tmp / f)} for f in _FILES}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        for f in (*_FILES, "manifest.json"):
            with open(tmp / f, "rb+") as fh:
                os.fsync(fh.fileno())
        fsync_dir(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_dir(self.root)
        atomic_write_json(self.pointer, {"latest": name, "step": step})
        self._prune(keep=name)
        return final

    def _prune(self, keep: str) -> None:
        done = sorted(p for p in self.root.glob("step-*") if p.is_dir())
        for old in done[: max(0, len(done) - self.keep)]:
            if old.name != keep:
                shutil.rmtree(old, ignore_errors=True)
        for stale in self.root.glob(".step-*.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)

    def latest(self) -> Path | None:
        """The newest complete checkpoint, or None when the run has none yet."""
        if not self.pointer.exists():
            return None
        try:
            name = json.loads(self.pointer.read_text(encoding="utf-8"))["latest"]
        except (ValueError, KeyError, TypeError):
            raise AttncoachError(f"checkpoint pointer {self.pointer} is damaged") from None
        path = self.root / str(name)
        if not path.is_dir():
            raise AttncoachError(f"checkpoint {path} named by {self.pointer} is missing")
        return path

    def kept(self) -> list[Path]:
        """Every complete checkpoint directory, newest first."""
        if not self.root.is_dir():
            return []
        return sorted((p for p in self.root.glob("step-*") if p.is_dir()), reverse=True)

    def load_latest(self) -> Checkpoint | None:
        """The newest checkpoint that reads and verifies, or None when the run has none yet.

        The one ``latest.json`` names comes first; when it (or the pointer) is damaged, the
        older kept checkpoints are tried, newest first, and a warning names what was skipped.

        Raises:
            AttncoachError: there are checkpoints, but none of them can be read.
        """
        kept = self.kept()
        try:
            named = self.latest()
        except AttncoachError as exc:  # a damaged pointer, or one naming a missing directory
            if not kept:
                raise
            log.warning("%s; trying the newest kept checkpoint", exc)
            named = None
        problems = []
        for path in ([named] if named is not None else []) + [p for p in kept if p != named]:
            try:
                checkpoint = self.load(path)
            except AttncoachError as exc:
                problems.append(str(exc))
                continue
            if problems:
                log.warning("%s; resuming from the older checkpoint %s instead", "; ".join(problems), path.name)
            return checkpoint
        if problems:
            raise AttncoachError(f"no checkpoint of {self.root} can be read: {'; '.join(problems)}")
        return None

    def load(self, path: Path) -> Checkpoint:
        """Read and verify one checkpoint directory."""
        manifest = self._manifest(path)
        for name in _FILES:
            f = path / name
            if not f.is_file():
                raise AttncoachError(f"checkpoint {path} is incomplete: {name} is missing")
            want = manifest.get(name, {})
            if f.stat().st_size != want.get("bytes") or _sha256(f) != want.get("sha256"):
                raise AttncoachError(f"checkpoint file {f} is truncated or corrupted (checksum mismatch)")
        try:
            optimizer = torch.load(path / "optimizer.pt", weights_only=True, map_location="cpu")
            rng = torch.load(path / "rng.pt", weights_only=True, map_location="cpu")
            state = json.loads((path / "state.json").read_text(encoding="utf-8"))
        except Exception as exc:  # any unreadable byte here means a damaged checkpoint
            raise AttncoachError(f"checkpoint {path} cannot be read ({_first_line(exc)})") from None
        return Checkpoint(path, load_weights(path / "model.safetensors"), optimizer, rng, state)

    def _manifest(self, path: Path) -> dict[str, Any]:
        try:
            manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise AttncoachError(f"checkpoint {path} is incomplete: manifest.json is missing") from None
        except (ValueError, UnicodeDecodeError):
            raise AttncoachError(f"checkpoint {path}/manifest.json is corrupted") from None
        if not isinstance(manifest, dict):
            raise AttncoachError(f"checkpoint {path}/manifest.json is corrupted")
        return manifest
