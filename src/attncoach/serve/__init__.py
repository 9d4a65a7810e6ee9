"""Shipping and serving trained models.

- :mod:`attncoach.serve.parity`: parity of an exported model (int8, ONNX) with the float32 torch model.
- :mod:`attncoach.serve.family`: a family of exported sub-nets with measured latencies
  (``attncoach export --family``) and :func:`~attncoach.serve.family.load_family`, which serves it.

Only :mod:`attncoach.cli` imports this package; it imports the layers below it.
"""
