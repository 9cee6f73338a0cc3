"""The one way tests run the task edge as a user does: ``python -m invoke -r <repo> ARGS`` in a
subprocess (the tool venv's invoke, so the editable install of this checkout), output captured as
text, no stdin."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def invoke(*args: str, cwd: str | os.PathLike[str] = ROOT, env: Mapping[str, str] | None = None,
           extra: Mapping[str, str] | None = None, timeout: float = 600,
           new_session: bool = False) -> subprocess.CompletedProcess[str]:
    """``invoke ARGS`` from ``cwd``. ``env``: the whole environment (default: this process's, which the
    autouse fixture has cleaned of pip settings); ``extra``: variables added to it. ``new_session``:
    run it in a process group of its own (a fault that kills the group then spares pytest), and kill
    that group if ``timeout`` passes."""
    environ = {**(os.environ if env is None else env), **(extra or {})}
    argv = [sys.executable, "-m", "invoke", "-r", str(ROOT), *args]
    if not new_session:
        return subprocess.run(argv, cwd=cwd, env=environ, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=timeout)
    proc = subprocess.Popen(argv, cwd=cwd, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
