"""The one module that starts processes: pip, pip-compile, pip-sync, uv, and probe scripts run in a
target interpreter. Everything else builds argv lists and plans, and calls :func:`run`.

Commands are argv lists, never shell strings (``foo<2`` must not become a redirect). The argv is
logged redacted. Child environments are cleaned: pip is isolated from the machine's user/global
configuration so that find-links / extra-index-url lines from a pip.conf never leak into a lock.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .defaults import SCRIPTS_DIR
from .errors import CommandFailed, ProbeError
from .redact import redact

log = logging.getLogger("stacksync")

# PIP_* / UV_* variables that only tune transport or say where the download cache lives (GBs for a
# CUDA stack: users move it off a small home disk); everything else (index, find-links, config) is
# decided by the profile and passed explicitly.
_PIP_KEEP = frozenset({"PIP_CERT", "PIP_CLIENT_CERT", "PIP_DEFAULT_TIMEOUT", "PIP_RETRIES", "PIP_PROXY",
                       "PIP_CACHE_DIR", "UV_CACHE_DIR", "UV_HTTP_TIMEOUT"})
# Variables that would make a target interpreter import the wrong code.
_PYTHON_DROP = frozenset({"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV",
                          "__PYVENV_LAUNCHER__"})


@dataclass(frozen=True)
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float


# Every process started in this run, in order (redacted argv). Reports and tests read it, e.g. to
# prove that a no-op sync started no pip process that changes anything.
history: list[list[str]] = []


def clean_env(extra: Mapping[str, str] | None = None, *, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment for child processes: pip isolated from config files and stray ``PIP_*``
    variables, no prompts (a credential prompt would hang CI), no PYTHONPATH leaking in."""
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if k not in _PYTHON_DROP and not (k.startswith(("PIP_", "UV_")) and k not in _PIP_KEEP)}
    env.update({
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_INPUT": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PYTHONNOUSERSITE": "1",
        "UV_NO_CONFIG": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    if extra:
        env.update(extra)
    return env


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    check: bool = True,
    stream: bool = False,
    hint: str = "",
    timeout: float | None = None,
) -> Result:
    """Run ``argv``; return its output. With ``check``, a non-zero exit raises :class:`CommandFailed`
    (redacted). ``stream`` passes output through to the terminal (long installs) instead of capturing."""
    args = [os.fspath(a) for a in argv]
    shown = [redact(a) for a in args]
    history.append(shown)
    log.debug("$ %s", shlex.join(shown))
    start = time.perf_counter()
    proc = subprocess.run(
        args,
        env=dict(env) if env is not None else clean_env(),
        cwd=cwd,
        text=True,
        stdout=None if stream else subprocess.PIPE,
        stderr=None if stream else subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )
    result = Result(shown, proc.returncode, redact(proc.stdout or ""), redact(proc.stderr or ""),
                    time.perf_counter() - start)
    if check and proc.returncode != 0:
        raise CommandFailed(shown, proc.returncode, result.stderr + result.stdout, hint=hint)
    return result


def run_script(python: str | os.PathLike[str], script: str, *args: str,
               env: Mapping[str, str] | None = None) -> Any:
    """Run ``scripts/<script>`` (standard library only) with the target interpreter and parse the one
    JSON document it prints. ``-I`` keeps the target's own site-packages but ignores the caller's
    environment and current directory."""
    path = SCRIPTS_DIR / script
    result = run([os.fspath(python), "-I", os.fspath(path), *args], env=env, check=False)
    if result.returncode != 0:
        raise ProbeError(f"{path.name} failed in {python} (exit {result.returncode}): "
                         f"{(result.stderr or result.stdout).strip().splitlines()[-1:] or ['no output']}")
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        raise ProbeError(f"{path.name} in {python} printed no JSON ({exc}): {result.stdout[:200]!r}") from exc


def python_in(venv: Path) -> Path:
    """The interpreter of a venv folder (POSIX and Windows layouts)."""
    for rel in ("bin/python", "Scripts/python.exe"):
        if (venv / rel).exists():
            return venv / rel
    return venv / "bin/python"


def start(argv: Sequence[str | os.PathLike[str]], *, log_path: Path,
          env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a long-running helper (the benchmarks' local pypiservers) with its output in ``log_path``;
    logged and recorded like :func:`run`. The caller stops it (``terminate()``, then ``wait()``)."""
    args = [os.fspath(a) for a in argv]
    shown = [redact(a) for a in args]
    history.append(shown)
    log.debug("$ %s &", shlex.join(shown))
    with open(log_path, "ab") as out:
        return subprocess.Popen(args, env=dict(env) if env is not None else clean_env(), stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
