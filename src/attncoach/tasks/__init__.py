"""Tasks: what a run learns (``task:`` in the config). Importing the package registers every task."""

from attncoach.tasks import (  # noqa: F401  (register the tasks)
    image_classification,
    masked_lm,
    next_item,
    text_classification,
    translation,
)
from attncoach.tasks.base import TASKS, StepOut, Task, TaskData, register_task, task_keys

__all__ = ["TASKS", "StepOut", "Task", "TaskData", "register_task", "task_keys"]
