"""Shipping and serving trained models: ``attncoach serve`` (FastAPI + uvicorn) and what it serves.

- :mod:`attncoach.serve.served`: :class:`ServedModel`, the loaded model the server answers with
  (one member, or a family of sub-nets with their measured latencies), and :func:`load_served`.
- :mod:`attncoach.serve.family`: a family of exported sub-nets (torch, int8, ONNX) with measured
  latencies (``attncoach export --family``), served through :func:`~attncoach.serve.family.load_family`.
- :mod:`attncoach.serve.parity`: parity of an exported model (int8, ONNX) with the float32 torch model.

Only :mod:`attncoach.cli` imports this package; it imports the layers below it (elastic,
models, data). FastAPI, uvicorn and prometheus-client come with ``pip install 'attncoach[serve]'``
and are imported only by the modules that need them.
"""

from attncoach.serve.served import MemberInfo, ServedModel, load_served

__all__ = ["MemberInfo", "ServedModel", "load_served"]
