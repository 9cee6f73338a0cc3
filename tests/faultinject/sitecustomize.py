"""Fault injector for tests/test_chaos.py: put on PYTHONPATH of the pip / pip-sync commands whose argv
matches ``STACKSYNC_FAULT=child:<word>`` (stacksync.core.faults.child_env). An audit hook counts one kind of
file-system event and SIGKILLs the whole process group (stacksync, pip-sync, pip, the build) at the
Nth one, so the kill lands *inside* the pip operation at a chosen instant, with no race.

``STACKSYNC_FAULT_EVENT=<kind>:<match>:<n>``:
  * ``write:<substring>:<n>``: the nth file opened for writing whose path contains ``substring``;
  * ``rmtree:~:<n>``: the nth ``shutil.rmtree`` of a ``~``-prefixed folder (pip committing an
    uninstall: every stash is in place, nothing removed yet);
  * ``write:RECORD:<n>``: pip about to write a dist-info's RECORD (the files are in place, the
    RECORD is not).
Standard library only; inert without the variable.
"""

import os
import signal
import sys


def _install():
    spec = os.environ.get("STACKSYNC_FAULT_EVENT", "")
    if not spec:
        return
    kind, _, rest = spec.partition(":")
    match, _, nth = rest.rpartition(":")
    want = int(nth or "1")
    seen = [0]
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND

    def hit(path):
        name = os.path.basename(path)
        if match == "~":
            return name.startswith("~")
        if match == "RECORD":
            return name.startswith("RECORD") and ".dist-info" in path
        return match in path

    def hook(event, args):
        if kind == "write" and event == "open":
            path, mode, flags = args
            if not isinstance(path, str):
                return
            is_write = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & writing)
            if not is_write:
                return
        elif kind == "rmtree" and event == "shutil.rmtree":
            path = args[0]
            if not isinstance(path, str):
                return
        else:
            return
        if hit(path):
            seen[0] += 1
            if seen[0] >= want:
                # stacksync's group first (STACKSYNC_FAULT_PGID: its children run in groups of their
                # own), then this command's
                parent = os.environ.get("STACKSYNC_FAULT_PGID", "")
                if parent.isdigit():
                    try:
                        os.killpg(int(parent), signal.SIGKILL)
                    except OSError:
                        pass
                os.killpg(os.getpgrp(), signal.SIGKILL)

    sys.addaudithook(hook)


_install()
