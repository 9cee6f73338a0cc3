"""invoke's task decorator with explicit short flags, the same letter for the same option in every
task (invoke's automatic short flags gave ``sync -y`` to ``--python`` and ``-e`` to ``--yes``), and
empty option values refused (:mod:`stacksync.cli.values`: ``-p ""`` is not the default profile).

:data:`SHORT_FLAGS` (:mod:`stacksync.cli.values`) is the one table; every other option has its long
spelling only. A task runs with the garbage collector's thresholds of :data:`GC_THRESHOLDS`.
"""

from __future__ import annotations

import gc
import inspect
from collections.abc import Callable
from typing import Any

from invoke.context import Context
from invoke.tasks import Task
from invoke.tasks import task as _invoke_task

from stacksync.cli.values import GC_THRESHOLDS, NOT_GIVEN, SHORT_FLAGS, EmptyValue, given_values, option_spelling
from stacksync.core import console

__all__ = ["GC_THRESHOLDS", "SHORT_FLAGS", "ShortFlagTask", "task"]


class ShortFlagTask(Task[Any]):
    """A task whose only short flags are those of :data:`SHORT_FLAGS`, and whose text options refuse
    an empty value: a ``name: str = ""`` option is parsed with the default :data:`NOT_GIVEN`, so
    ``--name ""`` (given empty: refused) is told apart from the option left out (the task sees ``""``)."""

    def arg_opts(self, name: str, default: Any, taken_names: set[str]) -> dict[str, Any]:
        opts = super().arg_opts(name, default, taken_names)
        short = SHORT_FLAGS.get(name)
        if short is not None and short not in taken_names:
            opts["names"] = [*opts["names"], short]
        if default == "" or (default is inspect.Parameter.empty and name in self.positional):
            opts["default"] = NOT_GIVEN  # the kind stays str: a value given is still text
            self._text_options = {**getattr(self, "_text_options", {}),
                                  name: option_spelling(name, positional=name in self.positional)}
        return opts

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        gc.set_threshold(*GC_THRESHOLDS)
        text: dict[str, str] = getattr(self, "_text_options", {})
        if text and args and isinstance(args[0], Context):
            try:
                kwargs = given_values(self.name, kwargs, text)
            except EmptyValue as exc:
                console.error(str(exc))
                raise SystemExit(exc.exit_code) from None
        return super().__call__(*args, **kwargs)


def task(*args: Any, **kwargs: Any) -> Callable[..., Any]:
    """``invoke.task`` with :class:`ShortFlagTask` and no automatic short flags."""
    kwargs.setdefault("klass", ShortFlagTask)
    kwargs.setdefault("auto_shortflags", False)
    return _invoke_task(*args, **kwargs)
