"""The sync task's first move: a no-op answered by its stamp (:mod:`stacksync.core.stamp`) before
anything of lock / env / sync is imported. Standard library and ``stacksync.core`` only."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from stacksync.core import stamp
from stacksync.core.errors import StacksyncError

__all__ = ["answer"]

#: options that make a run print or write more than its verdict (the plan, JSON, a receipt, commands)
_NOT_FOR_STAMPS = ("dry_run", "json_", "report", "verbose", "rebuild")


def answer(options: Mapping[str, Any]) -> tuple[bool, str | None, str]:
    """``(answered, stamp_path, key)``: ``answered`` when the stamp matched and its line is printed
    (the sync is done); else where the full path should keep its stamp (``None``: not for this run)."""
    if any(options.get(name) for name in _NOT_FOR_STAMPS) or not hasattr(os, "getuid") or not stamp.enabled():
        return False, None, ""
    try:
        from stacksync.core import defaults

        key = stamp.request_key("sync", options)
        where = stamp.stamp_path(defaults.cache_dir(), key)
    except (OSError, StacksyncError):
        return False, None, ""  # the full path says what is wrong (an empty setting, no project folder)
    lines = stamp.check(where, key)
    if lines is None:
        return False, where, key
    for stream, text in lines:
        out = sys.stdout if stream == "stdout" else sys.stderr
        out.write(text + "\n")
        out.flush()
    return True, where, key
