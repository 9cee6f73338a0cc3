"""Probe commands that share one target interpreter, and facts reused within one run.

A sync used to start the target once per question: ``probe.py env`` for what is installed, ``cuda`` for
doctor, ``smoke`` for the imports, and ``env`` again after each phase. :func:`run_probes` asks several
questions of one process (``probe.py env+cuda+smoke``); inside :func:`shared` (one sync / verify
run) the ``env`` and ``cuda`` documents it got are kept and handed to a later question about the same
target while nothing else was started and nothing in the target's prefix and site-packages changed
since just before the process that answered started (:func:`target_state`: each entry's name, inode and
mtime, the state file included; read once before each probe process and once per reuse). Smoke imports are
never reused here: the sync keeps which modules passed since its last change (``State.smoked``).

The host-side reading (:mod:`stacksync.env.hostview`) is not affected: it is done on every check, and a
disagreement between it and the (possibly reused) probe document still fails the check.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stacksync.core import runner
from stacksync.core.defaults import PROBE_SCRIPT
from stacksync.core.errors import ProbeError
from stacksync.env import sitepackages

__all__ = ["REUSABLE", "run_probes", "shared", "target_state"]

#: the documents a later question may reuse (smoke imports are the caller's to reuse)
REUSABLE = ("env", "cuda")
_ORDER = ("env", "cuda", "smoke")
_METADATA_DIRS = (".dist-info", ".egg-info")


class _Memo:
    """The documents kept in one run: (interpreter, command, args) -> (target state, where in the
    runner's history the probe ran, document)."""

    def __init__(self) -> None:
        self.docs: dict[tuple[str, str, tuple[str, ...]], tuple[tuple[Any, ...], int, Any]] = {}


_memo: list[_Memo] = []


@contextmanager
def shared() -> Iterator[None]:
    """While inside, probe documents are reused as the module says (nested: the outer run's memo)."""
    _memo.append(_memo[-1] if _memo else _Memo())
    try:
        yield
    finally:
        _memo.pop()


def target_state(python: Path) -> tuple[Any, ...] | None:
    """What a probe's answer depends on in the target's files: ``pyvenv.cfg``, the state file and each
    entry of its site-packages folders (name and inode; mtime and size too for files, ``.pth`` ones
    included, and metadata folders: an install, a removal, a rewritten dist-info all change one);
    ``None`` for a target that is not a venv (its facts are never reused)."""
    prefix = python.parent.parent
    if not (prefix / "pyvenv.cfg").is_file():
        return None
    out: list[Any] = []
    try:
        for name in ("pyvenv.cfg", sitepackages.STATE_FILE):
            st = os.stat(prefix / name) if (prefix / name).exists() else None
            out.append((name, None if st is None else (st.st_ino, st.st_mtime_ns, st.st_size)))
        seen: set[str] = set()
        for folder in [*sorted(prefix.glob("lib*/python*/site-packages")), prefix / "Lib" / "site-packages"]:
            real = os.path.realpath(folder)
            if real in seen or not folder.is_dir():
                continue  # lib64 is often a link to lib: one folder, listed once
            seen.add(real)
            # One flat list of names and numbers, not a tuple per entry: 1600 entries of an 800-package
            # target make no 1600 objects for the garbage collector to count and walk, several times a
            # sync. Still one reading per entry: a name (str) starts each, its numbers (ints) follow.
            entries: list[str | int] = []
            add = entries.extend
            with os.scandir(folder) as listing:
                for entry in listing:
                    name = entry.name
                    if name == "__pycache__":  # byte-code an import wrote: no fact of the probe's
                        continue
                    if name.endswith(_METADATA_DIRS) or not entry.is_dir(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        add((name, st.st_ino, st.st_mtime_ns, st.st_size))
                    else:
                        # a package folder: replaced (a new inode) when reinstalled; its mtime moves
                        # when an import writes its __pycache__, which changes no fact. The inode
                        # comes with the listing: no stat (800 packages, several times a sync)
                        add((name, entry.inode()))
            # In listing order, not sorted: the same folder unchanged lists in the same order; another
            # order can only make a state differ (the probe asked again), never match wrongly.
            out.append((str(folder), tuple(entries)))
    except OSError:
        return None
    return tuple(out)


def _only_probes_since(mark: int) -> bool:
    """No process but a probe was started since ``runner.history`` had ``mark`` entries (an install,
    a build, a venv creation all start one)."""
    script = os.fspath(PROBE_SCRIPT)
    return len(runner.history) >= mark and all(script in argv for argv in runner.history[mark:])


def run_probes(python: str | os.PathLike[str], commands: Sequence[str], *args: str,
               timeout: float | None = None, timeout_var: str = runner.PROBE_TIMEOUT_ENV) -> dict[str, Any]:
    """The documents of ``commands`` (``env``, ``cuda``, ``smoke``) for ``python``, from one probe
    process, or none when every document asked for can be reused (see the module). ``args`` are
    ``--import-torch`` (cuda) and smoke's modules."""
    exe = Path(python)
    torch_args = tuple(a for a in args if a == "--import-torch")
    modules = tuple(a for a in args if a != "--import-torch")
    memo = _memo[-1] if _memo else None
    state = target_state(exe) if memo is not None else None
    out: dict[str, Any] = {}
    if memo is not None and state is not None:
        for command in commands:
            key = (str(exe), command, torch_args if command == "cuda" else ())
            kept = memo.docs.get(key) if command in REUSABLE else None
            if kept is not None and kept[0] == state and _only_probes_since(kept[1]):
                out[command] = kept[2]
    todo = [c for c in _ORDER if c in commands and c not in out]
    if not todo:
        return out
    argv = [*(torch_args if "cuda" in todo else ()), *(modules if "smoke" in todo else ())]
    mark = len(runner.history)
    data = runner.run_script(exe, "+".join(todo), *argv, timeout=timeout, timeout_var=timeout_var)
    if len(todo) == 1:
        data = {todo[0]: data}
    elif not isinstance(data, dict) or data.get("probes") != 1:
        raise ProbeError(f"probe.py {'+'.join(todo)} in {exe} printed an unexpected document")
    if memo is not None and state is not None:
        # Kept with the state read *before* the process started, not compared with a second reading
        # after it: a change made while it ran (its smoke imports run the target's code) already makes
        # that state differ from the target's when the document is asked for again, which is when it
        # matters (one listing of an 800-package site-packages less per probe).
        for command in todo:
            if command in REUSABLE and command in data:
                key = (str(exe), command, torch_args if command == "cuda" else ())
                memo.docs[key] = (state, mark, data[command])
    out.update({c: data.get(c) for c in todo})
    return out
