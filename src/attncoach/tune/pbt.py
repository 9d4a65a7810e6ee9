"""Ray Tune's population based training with one change: a member is never exploited by an equal one.

Imported only by :mod:`attncoach.tune.ray_backend` once Ray is known to be installed.

Ray ranks the members by their latest scores and makes the lowest quarter continue from a checkpoint of the
highest. When the two scores are equal (small val sets often give the same macro-F1 to two members), copying the
donor gains nothing, and the exploited member, restarted from the donor's last checkpoint, reaches the next
interval with the same score and is exploited again: it repeated one interval tens of times in our tests while
the donor waited. Here a member is in the lower quantile only when its score is below every upper one.
"""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import PopulationBasedTraining


class StrictPopulationBasedTraining(PopulationBasedTraining):
    """Population based training in which only a strictly worse member is exploited."""

    def _quantiles(self) -> tuple[list[Any], list[Any]]:
        lower, upper = super()._quantiles()
        if not upper:
            return lower, upper
        floor = min(self._trial_state[t].last_score for t in upper)
        return [t for t in lower if self._trial_state[t].last_score < floor], upper
