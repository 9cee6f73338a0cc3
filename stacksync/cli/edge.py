"""The edge: where typed errors become one line on stderr and an exit code. Only tasks.py and
noxfile.py use this; library code raises."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from stacksync.core import console, runner
from stacksync.core.errors import StacksyncError


@contextmanager
def one_line_errors(verbose: bool = False) -> Iterator[None]:
    """Turn a :class:`StacksyncError` into ``stacksync: error: ...`` and ``SystemExit(code)``; a
    numeric ``STACKSYNC_*`` setting that is not a number is refused here, before the task does anything."""
    console.setup_logging(verbose)
    try:
        runner.check_numeric_env()
        yield
    except StacksyncError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            console.error(line)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        console.error("interrupted")
        raise SystemExit(130) from None
