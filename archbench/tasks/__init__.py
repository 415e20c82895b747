"""Tasks: the registry and the built-in tasks (reconstruct, ...).

Add a task as a module here with a :class:`Task` subclass decorated by :func:`register_task`, and
import the module below.
"""

from archbench.tasks.base import TASKS, Task, TaskJob, TaskOutput, get_task, list_tasks, register_task

from archbench.tasks import reconstruct  # noqa: E402,F401
from archbench.tasks import texture, style  # noqa: E402,F401
from archbench.tasks import maximize  # noqa: E402,F401
from archbench.tasks import proxies  # noqa: E402,F401

__all__ = ["TASKS", "Task", "TaskJob", "TaskOutput", "get_task", "list_tasks", "register_task"]
