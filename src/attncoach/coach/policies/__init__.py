"""Coach policies; importing this package registers every built-in one in ``POLICIES``."""

from attncoach.coach.policies import batch_growth, divergence_guard, hypergradient_lr, lr_probe, plateau, regularisation  # noqa: F401
from attncoach.coach.policies.base import POLICIES, Decision, Knobs, Policy, register_policy

__all__ = ["POLICIES", "Decision", "Knobs", "Policy", "register_policy"]
