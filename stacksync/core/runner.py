"""The one module that starts processes: pip, pip-compile, pip-sync, uv, and probe scripts run in a
target interpreter. Everything else builds argv lists and plans, and calls :func:`run`.

Commands are argv lists, never shell strings (``foo<2`` must not become a redirect). The argv is
logged redacted. No index URL ever reaches a child's argv (``/proc/PID/cmdline`` is world-readable,
and an index URL may carry a token): :func:`run` moves ``--index-url`` / ``--extra-index-url`` into
the child's environment (pip's and uv's variables; ``/proc/PID/environ`` is the owner's only), and
refuses an argv that still holds a URL with credentials. Child environments are cleaned: pip is
isolated from the machine's user/global configuration so that find-links / extra-index-url lines
from a pip.conf never leak into a lock.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shlex
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

from stacksync.core import faults
from stacksync.core.defaults import PROBE_SCRIPT
from stacksync.core.errors import CommandFailed, ProbeError, StacksyncError, TimedOut
from stacksync.core.progress import Heartbeat
from stacksync.core.redact import redact

log = logging.getLogger("stacksync")

# PIP_* / UV_* variables that only tune transport or say where the download cache lives (GBs for a
# CUDA stack: users move it off a small home disk); everything else (index, find-links, config) is
# decided by the profile and passed explicitly.
_PIP_KEEP = frozenset({"PIP_CERT", "PIP_CLIENT_CERT", "PIP_DEFAULT_TIMEOUT", "PIP_RETRIES", "PIP_PROXY",
                       "PIP_CACHE_DIR", "UV_CACHE_DIR", "UV_HTTP_TIMEOUT"})
# Variables that would make a target interpreter import the wrong code.
_PYTHON_DROP = frozenset({"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV",
                          "__PYVENV_LAUNCHER__"})


#: seconds a probe of a target interpreter may take (``STACKSYNC_PROBE_TIMEOUT``); smoke imports get
#: ``STACKSYNC_SMOKE_TIMEOUT`` (importing torch + vllm takes tens of seconds on a cold disk); each read
#: from an index gets ``STACKSYNC_INDEX_TIMEOUT``
PROBE_TIMEOUT_ENV, DEFAULT_PROBE_TIMEOUT = "STACKSYNC_PROBE_TIMEOUT", 60.0
SMOKE_TIMEOUT_ENV, DEFAULT_SMOKE_TIMEOUT = "STACKSYNC_SMOKE_TIMEOUT", 600.0
INDEX_TIMEOUT_ENV, DEFAULT_INDEX_TIMEOUT = "STACKSYNC_INDEX_TIMEOUT", 30.0
#: every numeric STACKSYNC_* setting and its default: :func:`check_numeric_env` refuses a bad value
#: before a command starts (a smoke timeout read only after the install would refuse too late)
NUMERIC_ENV: Mapping[str, float] = {PROBE_TIMEOUT_ENV: DEFAULT_PROBE_TIMEOUT, SMOKE_TIMEOUT_ENV: DEFAULT_SMOKE_TIMEOUT,
                                    INDEX_TIMEOUT_ENV: DEFAULT_INDEX_TIMEOUT}


def timeout_from_env(var: str, default: float, *, environ: Mapping[str, str] | None = None) -> float:
    """A positive number of seconds from ``var``; ``default`` when unset or empty. Anything else
    (``abc``, ``0``, ``-5``, ``nan``) is a :class:`StacksyncError` naming the variable and the fix."""
    raw = (os.environ if environ is None else environ).get(var, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise StacksyncError(f"{var}={raw!r}: not a positive number of seconds (fix: set {var} to a number "
                             f"such as {default:g}, or unset it for the default, {default:g} s)")
    return value


def check_numeric_env(environ: Mapping[str, str] | None = None) -> None:
    """Refuse a numeric ``STACKSYNC_*`` setting that is not a positive number (:data:`NUMERIC_ENV`)."""
    for var, default in NUMERIC_ENV.items():
        timeout_from_env(var, default, environ=environ)


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


# Index options -> the variables pip (and pip-compile / pip-sync, which run pip) and uv read instead.
# Each tool ignores the other's variables; PIP_CONFIG_FILE=/dev/null (clean_env) still keeps the
# machine's pip.conf out. Several extra indexes: one space-separated value, as both tools take it.
# (``-i`` is left alone: other programs use it for other things; the credentials check still sees it.)
_INDEX_ENV = {"--index-url": ("PIP_INDEX_URL", "UV_INDEX_URL"),
              "--extra-index-url": ("PIP_EXTRA_INDEX_URL", "UV_EXTRA_INDEX_URL")}
# ``scheme://user:password@`` or ``scheme://token@`` (``git@`` of an ssh URL names no secret).
_CREDENTIALS = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://(?!git@)[^/@\s]+@")


class SecretInArgv(StacksyncError):
    """An argv would show a credential in the process list: a bug in the caller, never run."""


def index_options_to_env(args: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """``args`` without its index-URL options, and the environment that carries them instead.
    ``--index-url X``, ``--index-url=X`` and ``--extra-index-url X`` (repeatable) are moved;
    the last ``--index-url`` wins, as on a command line. ``--trusted-host`` etc. stay (no secret)."""
    kept: list[str] = []
    index: str | None = None
    extra: list[str] = []
    items = iter(args)
    for arg in items:
        flag, eq, value = arg.partition("=")
        if flag in _INDEX_ENV:
            if not eq:
                nxt = next(items, None)
                if nxt is None:
                    kept.append(arg)
                    break
                value = nxt
            if flag == "--extra-index-url":
                extra.append(value)
            else:
                index = value
            continue
        kept.append(arg)
    env: dict[str, str] = {}
    if index is not None:
        env.update(dict.fromkeys(_INDEX_ENV["--index-url"], index))
    if extra:
        env.update(dict.fromkeys(_INDEX_ENV["--extra-index-url"], " ".join(extra)))
    return kept, env


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
    (redacted). ``stream`` passes output through to the terminal (long installs) instead of capturing.
    The command runs in a process group of its own: when ``timeout`` is up (:class:`TimedOut`) or
    stacksync is interrupted (Ctrl-C, SIGTERM, SIGHUP), the whole group is killed and waited for: a
    wrapper script's or pip's own children die with it."""
    args, moved = index_options_to_env([os.fspath(a) for a in argv])
    shown = [redact(a) for a in args]
    if any(_CREDENTIALS.search(a) for a in args):
        raise SecretInArgv(f"refusing to run {shown[0]}: a URL with credentials in its command line would be "
                           f"readable by every local user ({shlex.join(shown)}) (fix: report this as a bug)")
    history.append(shown)
    log.debug("$ %s%s", shlex.join(shown),
              "".join(f"  [{k}={redact(v)}]" for k, v in moved.items() if k.startswith("PIP_")))
    child_env = dict(env if env is not None else clean_env())
    child_env.update(moved)
    start = time.perf_counter()
    try:
        proc = subprocess.Popen(
            args,
            env=faults.child_env(args, child_env),
            cwd=cwd,
            text=True,
            errors="replace",
            stdout=None if stream else subprocess.PIPE,
            stderr=None if stream else subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            # A group of its own: on a timeout, Ctrl-C, SIGTERM or SIGHUP the whole group (pip and the
            # setup.py it runs) is killed, never the child alone (stacksync.cli.edge).
            start_new_session=True,
            pass_fds=tuple(sorted(_inherited_fds)),
        )
    except OSError as exc:
        raise CommandFailed(shown, 127, f"cannot start {shown[0]}: {exc.strerror or exc}",
                            hint=hint or "check that the path is an executable program") from None
    try:
        if _watching and not stream:
            stdout, stderr = _communicate_watched(proc, timeout, _watching[-1])
        else:
            stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise TimedOut(shown, float(timeout or 0), hint=hint) from None
    except BaseException:  # KeyboardInterrupt, Terminated: no child outlives stacksync
        _kill(proc)
        raise
    result = Result(shown, proc.returncode, redact(stdout or ""), redact(stderr or ""),
                    time.perf_counter() - start)
    if check and proc.returncode != 0:
        raise CommandFailed(shown, proc.returncode, result.stderr + result.stdout, hint=hint)
    return result


_watching: list[Heartbeat] = []

# File descriptors every child inherits: the target's lock (stacksync.env.targetlock). Children run in
# process groups of their own, so a kill -9 of stacksync alone leaves them running; while any of them
# lives it holds the same open lock file, so the flock stays taken and no second sync of the target
# starts beside a leftover pip.
_inherited_fds: set[int] = set()


@contextmanager
def inherited_by_children(fd: int) -> Iterator[None]:
    """While inside, every process :func:`run` starts inherits ``fd``."""
    _inherited_fds.add(fd)
    try:
        yield
    finally:
        _inherited_fds.discard(fd)
_H = TypeVar("_H", bound=Heartbeat)


@contextmanager
def watching(heartbeat: _H) -> Iterator[_H]:
    """While inside, a captured :func:`run` feeds ``heartbeat`` its output lines as they come and a tick
    about once a second (a build's heartbeat, pip download's meter); its output is still captured."""
    _watching.append(heartbeat)
    try:
        yield heartbeat
    finally:
        _watching.pop()
        heartbeat.close()


def _communicate_watched(proc: subprocess.Popen[str], timeout: float | None,
                         heartbeat: Heartbeat) -> tuple[str, str]:
    """``proc.communicate`` that reads both pipes line by line (two threads) and ticks ``heartbeat``."""
    chunks: dict[str, list[str]] = {"out": [], "err": []}

    def pump(name: str, pipe: IO[str] | None) -> None:
        if pipe is None:
            return
        for text in pipe:
            chunks[name].append(text)
            heartbeat.line(redact(text.rstrip("\n")))
        pipe.close()

    readers = [threading.Thread(target=pump, args=("out", proc.stdout), daemon=True),
               threading.Thread(target=pump, args=("err", proc.stderr), daemon=True)]
    for reader in readers:
        reader.start()
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        wait = 1.0 if deadline is None else min(1.0, max(deadline - time.monotonic(), 0.0))
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            if deadline is not None and time.monotonic() >= deadline:
                raise
            heartbeat.tick()
    for reader in readers:
        reader.join()
    return "".join(chunks["out"]), "".join(chunks["err"])


def _kill(proc: subprocess.Popen[str], *, wait: float = 5.0) -> None:
    """SIGKILL ``proc``'s whole process group, reap it, and wait (up to ``wait`` s) until no process of
    the group is left: whoever runs next (a second sync, once the target's lock is released) never
    runs beside a leftover build."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.communicate(timeout=wait)
    except (subprocess.TimeoutExpired, ValueError, OSError):
        pass
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.02)


def run_script(python: str | os.PathLike[str], command: str, *args: str,
               env: Mapping[str, str] | None = None, timeout: float | None = None,
               timeout_var: str = PROBE_TIMEOUT_ENV) -> Any:
    """Run the probe's ``command`` (``env``, ``cuda`` or ``smoke``: stacksync/probes/probe.py, standard
    library only) with the target interpreter, by path, and parse the one JSON document it writes to a
    file of its own (``--json-out``): what imported modules print on stdout is shown to the user, never
    parsed. ``-I`` keeps the target's own site-packages but
    ignores the caller's environment and current directory. A target that does not answer within
    ``timeout`` (default: ``$STACKSYNC_PROBE_TIMEOUT``, 60 s) is killed with its process group."""
    path, name = PROBE_SCRIPT, f"probe.py {command}"
    limit = timeout if timeout is not None else timeout_from_env(PROBE_TIMEOUT_ENV, DEFAULT_PROBE_TIMEOUT)
    with tempfile.TemporaryDirectory(prefix="stacksync-json-") as tmp:
        out = Path(tmp) / f"{command}.json"
        try:
            result = run([os.fspath(python), "-I", os.fspath(path), command, "--json-out", os.fspath(out), *args],
                         env=env, check=False, timeout=limit)
        except TimedOut:
            raise ProbeError(f"{python}: {name} got no answer within {limit:g} s; the interpreter hangs or is "
                             f"very slow to start (fix: check that `{python} -c pass` returns, or that it is the "
                             f"interpreter you mean; for a slow one set {timeout_var}=SECONDS)") from None
        except CommandFailed as exc:
            raise ProbeError(f"{python}: cannot run it: {exc.output} (fix: pass --python / --venv for a "
                             "working interpreter)") from None
        try:
            text = out.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            text = ""
    if result.returncode != 0:
        lines = [line.strip() for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        if result.returncode in (126, 127):
            # The shell's "cannot execute" / "not found" codes: a launcher (a pyenv shim for a version that is
            # not installed, a broken symlink target) that never started Python; its first line says why.
            raise ProbeError(f"{python}: does not start a Python (exit {result.returncode}: "
                             f"{lines[0] if lines else 'no output'}) (fix: install that Python, or pass --python "
                             "PATH / --venv FOLDER for a working interpreter)")
        raise ProbeError(f"{name} failed in {python} (exit {result.returncode}): "
                         f"{lines[-1] if lines else 'no output'}")
    _show_output(python, name, result.stdout)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProbeError(f"{name} in {python} wrote no JSON document ({exc}); it printed "
                         f"{result.stdout[:200]!r} (fix: check that {python} is a CPython >= 3.8)") from exc


def _show_output(python: str | os.PathLike[str], script: str, stdout: str) -> None:
    """What the target printed on stdout while the script ran (an import's warnings): the user's to
    read, on stderr, not stacksync's to parse."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        return
    from stacksync.core import console

    for line in lines[:20]:
        console.info(f"{script} in {python}: {line}")
    if len(lines) > 20:
        console.info(f"{script} in {python}: ... {len(lines) - 20} more line(s)")


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
