"""Known failures end a task with their one line, unknown ones with Airflow's traceback.

Airflow 3.3's task runner logs every exception that escapes a task with
`log.exception("Task failed with exception")` (traceback included) except `SystemExit`,
which it logs as one line, `Task exited exit_code=<the exception's argument>`, and then
handles like any failure: retried when retries are left, failed otherwise, failure
callbacks called (sdk/execution_time/task_runner.py, `_run_task_and_map_outcome`). A
`DialsflowError` already says what went wrong and what to do: it leaves as such a
`SystemExit` whose argument is its message. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from dialsflow.errors import DialsflowError

log = logging.getLogger("dialsflow")
P = ParamSpec("P")
R = TypeVar("R")


class TaskFailed(SystemExit):
    """A known failure on its way out of a task; `str()` is the error's one line."""

    def __init__(self, error: DialsflowError) -> None:
        super().__init__(f"{type(error).__name__}: {error}")
        self.error = error

    def __str__(self) -> str:
        return str(self.code)


def known_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorate a task's body: a DialsflowError fails the task with its one line."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except DialsflowError as exc:
            log.error("dialsflow: %s", exc)
            raise TaskFailed(exc) from None

    return wrapper
