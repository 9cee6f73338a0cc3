"""Fault injection seams for the crash-consistency suite (tests/test_chaos.py). Inert unless the
test sets ``STACKSYNC_FAULT``; nothing here runs in a normal sync beyond one environment lookup.

Two kinds of kill points, both ``SIGKILL`` to the whole process group (stacksync and the pip it
runs die together, as with an OOM kill of a container or a closed CI runner):

* ``STACKSYNC_FAULT=at:<point>``: stacksync kills itself at a named point of a sync (``before:base``,
  ``after:verify``, ``inside:verify``...; see :func:`point` calls in :mod:`stacksync.sync.run`
  and :mod:`stacksync.sync.verify`).
* ``STACKSYNC_FAULT=child:<word>`` with ``STACKSYNC_FAULT_PATH=<dir>``: a child command whose argv
  contains ``<word>`` gets ``<dir>`` on ``PYTHONPATH``; the test's ``sitecustomize.py`` there kills
  the group at a file-system event *inside* pip (a stash folder's removal, the Nth file written...).
"""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Mapping, Sequence

__all__ = ["FAULT_ENV", "FAULT_PATH_ENV", "FAULT_PGID_ENV", "point", "child_env"]

FAULT_ENV = "STACKSYNC_FAULT"
FAULT_PATH_ENV = "STACKSYNC_FAULT_PATH"
FAULT_PGID_ENV = "STACKSYNC_FAULT_PGID"


def point(name: str) -> None:
    """Die here (SIGKILL to the process group) when ``STACKSYNC_FAULT`` is ``at:<name>``; fail as a full
    disk would (``OSError`` ENOSPC) when it is ``enospc:<name>``."""
    spec = os.environ.get(FAULT_ENV)
    if spec == f"at:{name}":
        os.killpg(os.getpgrp(), signal.SIGKILL)
    if spec == f"enospc:{name}":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def child_env(argv: Sequence[str], env: Mapping[str, str]) -> dict[str, str]:
    """``env`` for a child, with the test's fault injector on ``PYTHONPATH`` when asked for."""
    spec = os.environ.get(FAULT_ENV, "")
    out = dict(env)
    if spec.startswith("child:") and spec[6:] and any(spec[6:] in a for a in argv):
        out["PYTHONPATH"] = os.environ.get(FAULT_PATH_ENV, "")
        out[FAULT_ENV] = spec
        for key, value in os.environ.items():
            if key.startswith("STACKSYNC_FAULT_"):
                out[key] = value
        # children run in a process group of their own (runner.run): the injector kills stacksync's too
        out[FAULT_PGID_ENV] = str(os.getpgrp())
    return out
