"""Option values as the command line gave them: an option left out takes its default, an option
given an empty value is refused.

``invoke sync -p "$PROFILE"`` with ``PROFILE`` unset passes ``-p ""``; taken as "no profile given",
it meant the default profile and, with ``-y``, re-synced a twin to another stack. invoke hands a
task the same ``""`` for an option left out and for ``--opt ""``, so the tasks' text options default
to :data:`NOT_GIVEN` (``None``) at parse time (:class:`stacksync.cli.flags.ShortFlagTask` does it for
every ``name: str = ""`` parameter): ``None`` means left out and becomes ``""`` before the task runs;
``""`` means given empty and is refused by :func:`given_values` with one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stacksync.core.errors import StacksyncError

__all__ = ["GC_THRESHOLDS", "NOT_GIVEN", "SHORT_FLAGS", "EmptyValue", "given_values", "option_spelling"]

#: option -> its short flag, in every task that has the option (``-n`` as in pip-sync's --dry-run)
SHORT_FLAGS = {"yes": "y", "profile": "p", "dry_run": "n", "verbose": "v", "quiet": "q", "out": "o"}

#: the cyclic garbage collector's thresholds while a task runs. A sync builds many small objects that
#: live until it ends (a lock's pins, a target's distributions: 800 packages are ~10^5 containers), and
#: at CPython's default (700) the collector walks them again and again: ~0.03-0.05 s of a cold sync of
#: 800 packages. Reference cycles are rare in this code, so collections can be rarer (mypy does the
#: same); memory still returns through reference counting.
GC_THRESHOLDS = (100_000, 50, 100)

#: what invoke hands a task for a text option that was left out (the parse-time default)
NOT_GIVEN = None


class EmptyValue(StacksyncError):
    """An option was given an empty value (``-p ""``, ``--venv "$UNSET"``)."""

    def __init__(self, task: str, option: str) -> None:
        super().__init__(task, option)
        self.task = task
        self.option = option  # "--profile", or a positional argument's name in capitals

    def __str__(self) -> str:
        if self.option.startswith("-"):
            return (f"{self.task}: {self.option} was given an empty value (an unset variable, as in "
                    f"{self.option} \"$NAME\"?); nothing was done (fix: give {self.option} a value, or leave it "
                    "out for the default)")
        return (f"{self.task}: {self.option} is empty (an unset variable?); nothing was done "
                f"(fix: give {self.option} a value)")


def given_values(task: str, values: Mapping[str, Any], text_options: Mapping[str, str]) -> dict[str, Any]:
    """``values`` with each text option left out (:data:`NOT_GIVEN`) turned into ``""`` (the task's
    own default); raises :class:`EmptyValue` for the first text option given empty or blank.
    ``text_options``: parameter name -> how the user spells it (``--profile``, ``A``)."""
    out = dict(values)
    for name, spelled in text_options.items():
        if name not in out:
            continue
        if out[name] is NOT_GIVEN:
            out[name] = ""
        elif isinstance(out[name], str) and not out[name].strip():
            raise EmptyValue(task, spelled)
    return out


def option_spelling(name: str, *, positional: bool) -> str:
    """``dry_run`` -> ``--dry-run`` (invoke's spelling; a trailing ``_`` as in ``from_`` dropped); a
    positional argument in capitals."""
    bare = name.rstrip("_")
    return bare.upper() if positional else f"--{bare.replace('_', '-')}"
