"""invoke's task decorator with explicit short flags, the same letter for the same option in every
task (invoke's automatic short flags gave ``sync -y`` to ``--python`` and ``-e`` to ``--yes``).

:data:`SHORT_FLAGS` is the one table; every other option has its long spelling only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from invoke.tasks import Task
from invoke.tasks import task as _invoke_task

__all__ = ["SHORT_FLAGS", "ShortFlagTask", "task"]

#: option -> its short flag, in every task that has the option (``-n`` as in pip-sync's --dry-run)
SHORT_FLAGS = {"yes": "y", "profile": "p", "dry_run": "n", "verbose": "v", "quiet": "q", "out": "o"}


class ShortFlagTask(Task[Any]):
    """A task whose only short flags are those of :data:`SHORT_FLAGS`."""

    def arg_opts(self, name: str, default: str, taken_names: set[str]) -> dict[str, Any]:
        opts = super().arg_opts(name, default, taken_names)
        short = SHORT_FLAGS.get(name)
        if short is not None and short not in taken_names:
            opts["names"] = [*opts["names"], short]
        return opts


def task(*args: Any, **kwargs: Any) -> Callable[..., Any]:
    """``invoke.task`` with :class:`ShortFlagTask` and no automatic short flags."""
    kwargs.setdefault("klass", ShortFlagTask)
    kwargs.setdefault("auto_shortflags", False)
    return _invoke_task(*args, **kwargs)
