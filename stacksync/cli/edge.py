"""The edge: where typed errors become one line on stderr and an exit code. Only the tasks
(stacksync.cli.tasks) and nox sessions use this; library code raises.

SIGTERM and SIGHUP are turned into :class:`~stacksync.core.errors.Terminated` (a ``KeyboardInterrupt``)
while a task runs, so that they unwind exactly as Ctrl-C does: :func:`stacksync.core.runner.run` kills
the child's process group and waits for it, the journal is left for the next run to repair, and the
target's lock is released last (the ``with`` blocks close on the way out).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from stacksync.core import console, defaults
from stacksync.core.errors import StacksyncError, Terminated

__all__ = ["one_line_errors", "catch_early_interrupts", "INTERRUPTED_EXIT", "TERMINATING"]

#: signals handled like SIGINT
TERMINATING = (signal.SIGTERM, signal.SIGHUP)

#: the exit status of a run stopped by Ctrl-C (128 + SIGINT, as a shell reports it)
INTERRUPTED_EXIT = 130
#: how many :func:`one_line_errors` blocks are open (the SIGINT handler leaves those to report it)
_depth = 0


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C inside :func:`one_line_errors`: ``KeyboardInterrupt`` as usual (it unwinds the run and is
    reported there). Outside it (invoke still loading the tasks, a task importing its modules) invoke
    would turn the ``KeyboardInterrupt`` into exit 1 without a word: say it and exit 130 here."""
    if _depth:
        raise KeyboardInterrupt
    console.error("interrupted")
    raise SystemExit(INTERRUPTED_EXIT)


def _launched_as_cli() -> bool:
    """The process is ``invoke`` / ``inv`` / ``stacksync`` (console script or ``python -m``), not a test
    runner or another program that imported the tasks."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    name = spec.name if spec is not None else os.path.basename(str(getattr(main, "__file__", "") or ""))
    return name.split(".")[0] in ("invoke", "inv", "stacksync")


def catch_early_interrupts() -> None:
    """Install :func:`_on_sigint` (stacksync.cli.tasks calls it when invoke or the ``stacksync`` command
    loads the tasks). Left alone outside those commands (a test runner importing the tasks keeps its
    own Ctrl-C), when SIGINT is ignored (a job started with ``nohup`` or in the background keeps
    ignoring it) or already handled by someone else, and off the main thread (where no handler can be set)."""
    if _launched_as_cli() and threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_sigint)


def _terminate(signum: int, frame: FrameType | None) -> None:
    for sig in TERMINATING:  # a second signal while the children are being stopped changes nothing
        signal.signal(sig, signal.SIG_IGN)
    raise Terminated(signum)


@contextmanager
def one_line_errors(verbose: bool = False) -> Iterator[None]:
    """Turn a :class:`StacksyncError` into ``stacksync: error: ...`` and ``SystemExit(code)``, Ctrl-C into
    ``stacksync: error: interrupted`` and exit 130, SIGTERM / SIGHUP into 143 / 129 (handled as Ctrl-C
    while the block runs); a ``STACKSYNC_*`` setting set to the empty string, or a numeric one that is
    not a number, is refused here, before the task does anything."""
    global _depth
    console.setup_logging(verbose)
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, _terminate) for sig in TERMINATING}
    _depth += 1
    try:
        defaults.check_settings()
        from stacksync.core import runner  # lazy: start-up cost (a no-op answered by its stamp runs nothing)

        runner.check_numeric_env()
        yield
    except StacksyncError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            console.error(line)
        raise SystemExit(exc.exit_code) from None
    except Terminated as exc:
        console.error(f"terminated by {signal.Signals(exc.signum).name}; the commands it ran were stopped "
                      "(an interrupted sync is repaired by the next `invoke sync`)")
        raise SystemExit(128 + exc.signum) from None
    except KeyboardInterrupt:
        console.error("interrupted")
        raise SystemExit(INTERRUPTED_EXIT) from None
    finally:
        _depth -= 1
        for sig, handler in previous.items():
            signal.signal(sig, handler)
