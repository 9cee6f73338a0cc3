"""One sync per target at a time: an ``fcntl.flock`` on ``<target prefix>/.stacksync.lock``.

Two syncs of one venv would interleave pip's uninstalls and installs; the second one fails at once
with a clear message, or waits with ``--wait``. The lock is released when the process ends, even
when it is killed, because the kernel drops flocks with the file descriptor; the processes a sync
starts inherit that descriptor, so it is released only once they are gone too.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stacksync.core import runner
from stacksync.core.errors import TargetError

LOCK_NAME = ".stacksync.lock"


class TargetBusy(TargetError):
    """Another stacksync process holds the target's lock."""

    exit_code = 1


@contextmanager
def hold(prefix: Path, *, wait: bool = False, poll: float = 0.2, timeout: float | None = None) -> Iterator[Path]:
    """Hold the lock of the target whose ``sys.prefix`` is ``prefix``. Raises :class:`TargetBusy`
    when another process holds it (after ``timeout`` seconds with ``wait``)."""
    path = Path(prefix) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise TargetError(f"{path}: cannot create the target's lock file ({exc.strerror}) "
                          f"(fix: sync a target you can write to, e.g. a venv)") from exc
    try:
        start = time.monotonic()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait or (timeout is not None and time.monotonic() - start > timeout):
                    holder = _holder(path)
                    raise TargetBusy(f"{prefix}: another stacksync run{holder} is syncing this target "
                                     f"(lock {path}) (fix: wait for it to finish, or pass --wait)") from None
                time.sleep(poll)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        with runner.inherited_by_children(fd):
            yield path
    finally:
        os.close(fd)


def _holder(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""
