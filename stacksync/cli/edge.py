"""The edge: where typed errors become one line on stderr and an exit code. Only the tasks
(stacksync.cli.tasks) and nox sessions use this; library code raises."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from stacksync.core import console
from stacksync.core.errors import StacksyncError


@contextmanager
def one_line_errors(verbose: bool = False) -> Iterator[None]:
    """Turn a :class:`StacksyncError` into ``stacksync: error: ...`` and ``SystemExit(code)``."""
    console.setup_logging(verbose)
    try:
        yield
    except StacksyncError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            console.error(line)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        console.error("interrupted")
        raise SystemExit(130) from None
