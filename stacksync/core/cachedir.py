"""Folders stacksync writes its own files into (the sync cache, the wheelhouse): created on first use,
and a folder that cannot be created or written is one line naming the setting and the fix.

``STACKSYNC_CACHE_DIR=/dev/null``, a read-only or full disk, a path through a file: each was a
traceback from ``mkdir`` deep inside a phase.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from stacksync.core.errors import StacksyncError

__all__ = ["CacheDirError", "ensure_dir"]


class CacheDirError(StacksyncError):
    """A folder stacksync keeps its own files in cannot be created or written; nothing was changed."""

    def __init__(self, path: Path, reason: str, setting: str) -> None:
        super().__init__(path, reason, setting)
        self.path = path
        self.reason = reason
        self.setting = setting

    def __str__(self) -> str:
        return (f"{self.path}: cannot use it as a folder for stacksync's files ({self.reason}); nothing was changed "
                f"(fix: set {self.setting} to a folder you can write, or make this one writable)")


def ensure_dir(path: Path, *, setting: str = "STACKSYNC_CACHE_DIR") -> Path:
    """``path`` created (with its parents) and checked writable; :class:`CacheDirError` names ``setting``
    (the variable or option that chose it) when it cannot be. Writability is tried with a real file
    (``os.access`` says yes to root on a read-only mount)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".stacksync-write-check.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CacheDirError(path, exc.strerror or type(exc).__name__, setting) from None
    return path
