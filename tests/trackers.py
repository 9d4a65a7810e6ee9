"""Read back what the tracker backends wrote, each with its own library's reader.

Every reader returns ``{"scalars": {tag: [(step, value), ...]}, "summary": {tag: value},
"params": {key: value}, "images": [tag, ...]}`` for one run directory.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from attncoach.rundir import RunDir


def read_tensorboard(run: RunDir) -> dict[str, Any]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    events = EventAccumulator(str(run.tb), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    params: dict[str, Any] = {}
    for content in events.PluginTagToContent("hparams").values():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        if data.WhichOneof("data") == "session_start_info":
            for key, value in data.session_start_info.hparams.items():
                params[key] = getattr(value, value.WhichOneof("kind"))
    summary = {tag[len("final/") :]: points[-1][1] for tag, points in scalars.items() if tag.startswith("final/")}
    return {"scalars": scalars, "summary": summary, "params": params, "images": events.Tags()["images"]}


def wandb_records(path: Path) -> list[Any]:
    """The records of an offline W&B run file (``run-ID.wandb``), decoded with wandb's protobuf schema.

    The file is a LevelDB-style log: a 7-byte header (``:W&B``, magic, version), then 32 KiB
    blocks of chunks, each with a 7-byte header (CRC, length, type: full / first / middle / last).
    """
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    records, pos, pending = [], 7, b""
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            records.append(wandb_internal_pb2.Record.FromString(pending))
            pending = b""
    return records


def read_wandb(run: RunDir) -> dict[str, Any]:
    (path,) = run.path.glob("wandb/offline-run-*/run-*.wandb")
    scalars: dict[str, list] = {}
    summary: dict[str, Any] = {}
    params: dict[str, Any] = {}
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            row = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            for tag, value in row.items():
                if isinstance(value, (int, float)) and not tag.startswith("_") and tag != "trainer/step":
                    scalars.setdefault(tag, []).append((row["trainer/step"], value))
        elif kind == "summary":
            for item in record.summary.update:
                summary[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                params[item.key] = json.loads(item.value_json)
    final = {tag[len("final/") :]: value for tag, value in summary.items() if tag.startswith("final/")}
    images = sorted(
        str(p.relative_to(path.parent / "files" / "media" / "images")).rsplit("_", 2)[0]
        for p in path.parent.glob("files/media/images/**/*.png")
    )
    return {"scalars": scalars, "summary": final, "params": params, "images": images}


def read_mlflow(run: RunDir) -> dict[str, Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=(run.path / "mlruns").absolute().as_uri())
    experiments = [e.experiment_id for e in client.search_experiments()]
    (found,) = client.search_runs(experiments)  # one run, continued by a resume
    run_id = found.info.run_id
    assert found.info.status == "FINISHED"
    scalars = {
        tag: [(m.step, m.value) for m in client.get_metric_history(run_id, tag)]
        for tag in found.data.metrics
        if not tag.startswith("final/")
    }
    final = {tag[len("final/") :]: value for tag, value in found.data.metrics.items() if tag.startswith("final/")}
    images = sorted(
        f"figures/{Path(a.path).stem}" for a in client.list_artifacts(run_id, "figures") if a.path.endswith(".png")
    )
    return {"scalars": scalars, "summary": final, "params": dict(found.data.params), "images": images, "id": run_id}


READERS = {"tensorboard": read_tensorboard, "wandb": read_wandb, "mlflow": read_mlflow}
