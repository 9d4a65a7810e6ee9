"""Tasks: what a run learns (``task:`` in the config). Importing the package registers every task."""

from attncoach.tasks import text_classification  # noqa: F401  (registers text_classification)
from attncoach.tasks.base import TASKS, StepOut, Task, TaskData, register_task

__all__ = ["TASKS", "StepOut", "Task", "TaskData", "register_task"]
