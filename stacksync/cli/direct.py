"""``stacksync sync OPTIONS`` without loading invoke.

Importing invoke costs about 0.17 s of CPU on every run (it loads ``unittest.mock`` and with it asyncio
and ssl, ``importlib.metadata`` and its vendored yaml), more than the rest of a no-op and a third of
stacksync's own share of a cold sync. The ``stacksync`` command needs none of it to run its main job,
so :func:`run` takes a plain ``sync`` command line itself and calls the task's body
(:func:`stacksync.cli.syncing.sync`) with what invoke would have handed it.

Only a plain command line is taken: ``sync`` followed by the task's own options, each spelled as invoke
spells it: ``--name VALUE``, ``--name=VALUE``, a short flag of :data:`~stacksync.cli.values.SHORT_FLAGS`
on its own (``-p NAME``, ``-y``), a flag once, ``--rebuild`` repeated. Anything else goes to invoke's
Program, which parses it or says what is wrong exactly as before: another task, ``--help``, a core
option such as ``--echo``, ``-pNAME`` or ``-yq``, an option given twice, an empty value, a separate
value that starts with ``-`` (other than ``-`` itself). ``tests/test_direct.py`` runs both over the
same command lines and compares the calls.
"""

from __future__ import annotations

import gc
import inspect
from collections.abc import Sequence
from typing import Any

from stacksync.cli import syncing
from stacksync.cli.values import GC_THRESHOLDS, SHORT_FLAGS, option_spelling

__all__ = ["parse", "run"]

#: the task :func:`run` takes, and the one whose body it calls
TASK = "sync"


def _options() -> tuple[dict[str, inspect.Parameter], dict[str, inspect.Parameter]]:
    """The sync task's options by long spelling (``--dry-run``, ``--json``) and by short flag (``n``)."""
    params = inspect.signature(syncing.sync).parameters
    longs = {option_spelling(name, positional=False): p for name, p in params.items()}
    shorts = {SHORT_FLAGS[name]: p for name, p in params.items() if name in SHORT_FLAGS}
    return longs, shorts


def parse(argv: Sequence[str]) -> dict[str, Any] | None:
    """The keyword arguments of :func:`stacksync.cli.syncing.sync` for ``argv`` (the command's
    arguments, without the program name), or ``None`` when ``argv`` is not a plain ``sync`` command
    line (module docstring): invoke's Program is then the one to parse it."""
    if not argv or argv[0] != TASK:
        return None
    longs, shorts = _options()
    given: dict[str, Any] = {}
    rest = iter(argv[1:])
    for arg in rest:
        if arg.startswith("--"):
            spelled, eq, value = arg.partition("=")
            param = longs.get(spelled)
        elif len(arg) == 2 and arg[0] == "-":
            param, eq, value = shorts.get(arg[1]), "", ""
        else:
            return None  # a positional word (invoke reads it as another task), -pNAME, -yq
        if param is None:
            return None
        if param.name in given and param.name not in syncing.ITERABLE:
            return None
        if isinstance(param.default, bool):
            if eq:
                return None
            given[param.name] = True
            continue
        if not eq:
            following = next(rest, None)
            if following is None or (following.startswith("-") and following != "-"):
                return None  # invoke decides whether a word with a dash is an option or this one's value
            value = following
        if not value.strip():
            return None  # invoke's task refuses an empty value with one line
        if param.name in syncing.ITERABLE:
            given.setdefault(param.name, []).append(value)
        else:
            given[param.name] = value
    return given


def run(argv: Sequence[str]) -> bool:
    """Run ``argv`` when :func:`parse` takes it (``True``: done; the task's errors exit as they do under
    invoke); ``False``: leave it to invoke's Program."""
    given = parse(argv)
    if given is None:
        return False
    from stacksync.cli.edge import INTERRUPTED_EXIT, catch_early_interrupts
    from stacksync.core import console

    catch_early_interrupts()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        syncing.sync(**{**{name: [] for name in syncing.ITERABLE}, **given})  # invoke's default for a list: []
    except KeyboardInterrupt:  # outside the task's one_line_errors (its handler left out, as under nohup)
        console.error("interrupted")
        raise SystemExit(INTERRUPTED_EXIT) from None
    return True

