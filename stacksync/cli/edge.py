"""The edge: where typed errors become one line on stderr and an exit code. Only tasks.py and
noxfile.py use this; library code raises."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from stacksync.core import console, runner
from stacksync.core.errors import StacksyncError

__all__ = ["one_line_errors", "catch_early_interrupts", "INTERRUPTED_EXIT"]

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


def catch_early_interrupts() -> None:
    """Install :func:`_on_sigint` (tasks.py calls it when invoke loads it). Left alone when SIGINT is
    ignored (a job started with ``nohup`` or in the background keeps ignoring it) or already handled
    by someone else, and off the main thread (where no handler can be set)."""
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_sigint)


@contextmanager
def one_line_errors(verbose: bool = False) -> Iterator[None]:
    """Turn a :class:`StacksyncError` into ``stacksync: error: ...`` and ``SystemExit(code)``, Ctrl-C into
    ``stacksync: error: interrupted`` and exit 130; a numeric ``STACKSYNC_*`` setting that is not a
    number is refused here, before the task does anything."""
    global _depth
    console.setup_logging(verbose)
    _depth += 1
    try:
        runner.check_numeric_env()
        yield
    except StacksyncError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            console.error(line)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        console.error("interrupted")
        raise SystemExit(INTERRUPTED_EXIT) from None
    finally:
        _depth -= 1
