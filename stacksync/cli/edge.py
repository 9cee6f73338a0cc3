"""The edge: where typed errors become one line on stderr and an exit code. Only the tasks
(stacksync.cli.tasks) and nox sessions use this; library code raises.

SIGTERM and SIGHUP are turned into :class:`~stacksync.core.errors.Terminated` (a ``KeyboardInterrupt``)
while a task runs, so that they unwind exactly as Ctrl-C does: :func:`stacksync.core.runner.run` kills
the child's process group and waits for it, the journal is left for the next run to repair, and the
target's lock is released last (the ``with`` blocks close on the way out).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from stacksync.core import console
from stacksync.core.errors import StacksyncError, Terminated

#: signals handled like SIGINT
TERMINATING = (signal.SIGTERM, signal.SIGHUP)


def _terminate(signum: int, frame: FrameType | None) -> None:
    for sig in TERMINATING:  # a second signal while the children are being stopped changes nothing
        signal.signal(sig, signal.SIG_IGN)
    raise Terminated(signum)


@contextmanager
def one_line_errors(verbose: bool = False) -> Iterator[None]:
    """Turn a :class:`StacksyncError` into ``stacksync: error: ...`` and ``SystemExit(code)``; Ctrl-C
    into exit 130, SIGTERM / SIGHUP into 143 / 129."""
    console.setup_logging(verbose)
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, _terminate) for sig in TERMINATING}
    try:
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
        raise SystemExit(130) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
