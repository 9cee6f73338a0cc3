"""The no-op stamp: a no-op ``invoke sync`` answered from ``os.stat`` / ``os.listdir`` alone.

A full no-op sync reads the profile, the lock and its includes, the target's ``pyvenv.cfg``, its
site-packages listings, every dist-info's METADATA / RECORD / INSTALLER / direct_url.json, the state
and provenance files and the damage memo, and concludes "already in sync". When it does (and printed
nothing but that line), :func:`write` keeps a stamp: the request it answered (:func:`request_key`:
the task's options, every ``STACKSYNC_*`` variable, the folder it ran in, the interpreter running
stacksync and a fingerprint of stacksync's own code) and the fingerprint of *everything that run
read*. What was read is not listed by hand: :func:`recording` keeps the paths the run opened for
reading, listed or globbed (CPython's audit events ``open``, ``os.listdir``, ``os.scandir``,
``glob.glob``; the import system's own reads left out), and the caller adds what is only ever
``stat``-ed (the damage memo's folders, the interpreter). Each file is fingerprinted by
``(st_ino, st_mtime_ns, st_ctime_ns, st_size, st_mode)`` (or "missing"), the folder holding it by
its stat, and each folder that was listed by its stat and the sorted names in it.

The next ``sync`` with the same request (:func:`check`) takes the target's lock without waiting,
recomputes those fingerprints and, when every one matches, prints the stored line: no lock
parsing, no packaging, no dist-info read. Anything else (no stamp, one fingerprint different, the
target lock held, a journal or a ``~`` stash in a listing) sends it down the full path, which writes
a new stamp when it ends in sync again.

Why a stat is enough: every writer that can change what the full path would conclude changes an
inode it touches (a new file: the folder's mtime and listing; a rewrite in place: mtime and ctime;
``os.replace``: the inode number; ``touch -d`` / ``utime`` cannot set ctime back). A fingerprint
that changed within :data:`RACY_NS` before the run started is not trusted (git's "racy clean" rule,
as the damage memo does): file systems keep times at a coarser grain than nanoseconds, so the stamp
is then not written, and the next no-op takes the full path and writes it.

Only the standard library is imported here: the check runs before anything else of stacksync loads.
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

__all__ = ["RACY_NS", "SWITCH_ENV", "TRACE_ENV", "Recorder", "check", "code_digest", "enabled", "recording",
           "request_key", "stamp_path", "trace", "write"]

#: bump when the stamp's meaning changes: older stamps are then never matched
FORMAT = 1
#: a fingerprint that changed this close to the run's start is not trusted (timestamp grain)
RACY_NS = 2_000_000_000
#: ``STACKSYNC_TRACE_NOOP=1``: say on stderr which path a sync took and why (tests, benchmarks)
TRACE_ENV = "STACKSYNC_TRACE_NOOP"
#: ``STACKSYNC_NOOP_STAMP=0``: neither read nor write stamps (the full no-op every time)
SWITCH_ENV = "STACKSYNC_NOOP_STAMP"


def enabled() -> bool:
    return os.environ.get(SWITCH_ENV, "1").strip().lower() not in ("0", "off", "no", "false")
#: the target's lock file (stacksync.env.targetlock): rewritten by every run, never an input
_LOCK_NAME = ".stacksync.lock"
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_PROCESS_EVENTS = frozenset({"subprocess.Popen", "os.system", "os.posix_spawn", "os.spawn", "os.exec", "os.fork"})
#: the shell's own bookkeeping: left out of the request key (every other variable is in it)
_VOLATILE_ENV = frozenset({"_", "PWD", "OLDPWD", "SHLVL", "COLUMNS", "LINES", TRACE_ENV})


def trace(message: str) -> None:
    if os.environ.get(TRACE_ENV):
        sys.stderr.write(f"stacksync: no-op stamp: {message}\n")


# --------------------------------------------------------------------------------------- the request

def code_digest() -> list[str]:
    """A fingerprint of stacksync's own source files (an upgrade or an edit means other code decides):
    path, inode, mtime and size of each, compared exactly (no hashing: ``hashlib`` costs more to
    import than the whole check)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parts: list[str] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as it:
            for entry in sorted(it, key=lambda e: e.name):
                if entry.name == "__pycache__":
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.name.endswith(".py"):
                    st = entry.stat()
                    parts.append(f"{entry.path}\0{st.st_ino}\0{st.st_mtime_ns}\0{st.st_size}")
    return parts


def request_key(task: str, options: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> str:
    """What a stamp answers: the task and its options, the environment (every variable but the
    shell's bookkeeping and the trace switch: ``STACKSYNC_*`` settings, ``PATH``, ``CUDA_HOME``...
    whatever the full path may consult), the folder the command runs in, the interpreter running it
    and stacksync's code."""
    env = os.environ if environ is None else environ
    settings = sorted((k, v) for k, v in env.items() if k not in _VOLATILE_ENV)
    doc = [FORMAT, task, sorted((k, repr(v)) for k, v in options.items()), settings, os.getcwd(), sys.executable,
           code_digest()]
    return json.dumps(doc)


def stamp_path(cache_dir: str | os.PathLike[str], key: str) -> str:
    """Where the stamp of ``key`` lives. The name only spreads requests over files; the stamp holds
    its whole key and is used only when it equals the request's."""
    return os.path.join(os.fspath(cache_dir), "noop", f"{zlib.crc32(key.encode()):08x}.json")


# ----------------------------------------------------------------------------------- fingerprints

def _stat(path: str) -> list[int] | str | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"error {exc.errno}"
    return [st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_mode]


def _listing(path: str) -> list[Any] | str | None:
    try:
        names = sorted(os.listdir(path))
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"error {exc.errno}"
    return [_stat(path), "\0".join(names)]


def _glob(pattern: str) -> str:
    import glob  # lazy: only a run that globbed (a target with nvidia/*/lib folders)

    return "\0".join(sorted(glob.glob(pattern)))


def _fingerprint(kind: str, path: str) -> Any:
    if kind == "f":
        return _stat(path)
    if kind == "d":
        return _listing(path)
    return _glob(path)


def _stats_in(value: Any) -> Iterator[list[int]]:
    if isinstance(value, list) and len(value) == 5 and all(isinstance(v, int) for v in value):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _stats_in(item)


# ------------------------------------------------------------------------------------- recording

class Recorder:
    """The paths a run read (file: ``f``; listed folder: ``d``; glob pattern: ``g``)."""

    def __init__(self) -> None:
        self.paths: dict[tuple[str, str], None] = {}
        #: files this run wrote itself (a memo, a cache entry): their new state is what the run left
        self.written: set[str] = set()
        #: the process the run started first (a probe): what it read is not recorded, so no stamp, and
        #: the recording stops there
        self.processes: list[str] = []
        #: the first recording of this process: no earlier run's in-memory cache stood in for a read
        self.first = False
        self.active = False

    def add(self, kind: str, path: str) -> None:
        self.paths[(kind, path)] = None


_recorders: list[Recorder] = []
_hooked = False


def _caller_is_import_system() -> bool:
    frame = sys._getframe(2)
    return frame.f_code.co_filename.startswith("<frozen importlib")


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _recorders or not _recorders[-1].active:
        return
    rec = _recorders[-1]
    if event in _PROCESS_EVENTS:
        # What a child reads is not recorded, so no stamp can be written for this run: stop recording
        # (a cold sync of 800 packages audits ~10^4 reads and listings after its first process: ~0.05 s).
        rec.processes.append(f"{event} {args[0]!r}"[:200])
        rec.active = False
        return
    if event == "open":
        path, mode, flags = args[0], args[1], args[2]
        if isinstance(path, int):
            return
        if (mode is not None and any(c in mode for c in "wax+")) or flags & _WRITE_FLAGS:
            rec.written.add(os.path.abspath(os.fsdecode(path)))
            return
        kind = "f"
    elif event in ("os.rename", "os.replace"):
        if not isinstance(args[1], int):
            rec.written.add(os.path.abspath(os.fsdecode(args[1])))
        return
    elif event in ("os.listdir", "os.scandir"):
        path, kind = args[0], "d"
        if isinstance(path, int):
            return
    elif event == "glob.glob":
        path, kind = args[0], "g"
    else:
        return
    if _caller_is_import_system():
        return
    rec.add(kind, os.path.abspath(os.fsdecode(path if path is not None else ".")))


@contextmanager
def recording() -> Iterator[Recorder]:
    """Keep the paths read while the block runs (an audit hook is added once per process; it costs a
    test per audited event while no recording is active)."""
    global _hooked
    rec = Recorder()
    rec.first = not _hooked
    if not _hooked:
        sys.addaudithook(_audit)
        _hooked = True
    rec.active = True
    _recorders.append(rec)
    try:
        yield rec
    finally:
        rec.active = False
        _recorders.remove(rec)


# ----------------------------------------------------------------------------------- write, check

def write(target: str, key: str, prefix: str, lines: Iterable[tuple[str, str]], read: Iterable[tuple[str, str]],
          stats: Iterable[str], *, started_ns: int, exclude: Iterable[str] = (),
          written: Iterable[str] = ()) -> str | None:
    """Write the stamp for ``key`` to ``target`` (``lines``: ``(stream, text)`` the run printed;
    ``read``: a :class:`Recorder`'s paths; ``stats``: more paths the run only stat-ed; ``written``:
    files the run wrote itself, whose recent change, and their folder's, is the run's own). Returns
    why no stamp was written, ``None`` when it was."""
    own_writes = {os.path.abspath(w) for w in written}
    own_writes |= {os.path.dirname(w) for w in own_writes}
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)  # first: a new folder changes its parent's stat
    except OSError as exc:
        return f"cannot write {target}: {exc.strerror or exc}"
    excluded = tuple(os.path.join(os.path.abspath(e), "") for e in (*exclude, os.path.dirname(target)))
    tool = tuple(os.path.join(p, "") for p in {sys.prefix, sys.base_prefix, sys.exec_prefix})
    own = os.path.join(prefix, "")
    # the cache folder the stamp lives in (``<cache>/noop/``): the entries of its folders
    # (``<cache>/probe/<key>.json``, ``<cache>/records/<key>.json``) are keyed files read by name, so one
    # written beside them for another target or request is no change to this one (their own stat is kept)
    cache = os.path.dirname(os.path.dirname(os.path.abspath(target)))
    code = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "")
    wanted: dict[tuple[str, str], None] = {}
    for kind, path in read:
        if path.startswith(excluded) or path.startswith(code) or path.startswith(("/proc/", "/sys/", "/dev/")):
            continue
        if path.startswith(tool) and not path.startswith(own):
            continue  # the interpreter running stacksync and its libraries: the request key covers them
        if os.path.basename(path) == _LOCK_NAME:
            continue
        wanted[(kind, path)] = None
        if kind == "f" and os.path.dirname(os.path.dirname(path)) != cache:
            wanted[("f", os.path.dirname(path))] = None  # a file added beside it (stat-only checks)
    for path in stats:
        wanted[("f", os.path.abspath(path))] = None
        wanted[("f", os.path.dirname(os.path.abspath(path)))] = None
    entries = [[kind, path, _fingerprint(kind, path)] for kind, path in sorted(wanted)]
    limit = started_ns - RACY_NS
    for _kind, path, value in entries:
        if path in own_writes:
            continue
        for st in _stats_in(value):
            if max(st[1], st[2]) > limit:
                return f"{path} changed less than {RACY_NS / 1e9:.0f} s before this run (timestamp grain)"
    doc = {"format": FORMAT, "key": key, "prefix": prefix, "lines": [list(line) for line in lines],
           "entries": entries}
    try:
        tmp = f"{target}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(doc, fh)
        os.replace(tmp, target)
    except OSError as exc:
        return f"cannot write {target}: {exc.strerror or exc}"
    _prune(os.path.dirname(target))
    return None


#: stamps kept per cache folder (one per request seen: another shell's environment is another request)
KEEP = 16


def _prune(folder: str) -> None:
    """Keep the :data:`KEEP` newest stamps (a cache: one that cannot be removed is left)."""
    try:
        with os.scandir(folder) as it:
            found = sorted(((e.stat().st_mtime_ns, e.path) for e in it if e.name.endswith(".json")), reverse=True)
        for _, path in found[KEEP:]:
            os.unlink(path)
    except OSError:
        return


def _lock(prefix: str) -> int | None:
    """The target's lock taken without waiting (``None``: held by another run, or no lock file)."""
    import fcntl  # lazy: not on Windows (no stamp is taken there)

    try:
        fd = os.open(os.path.join(prefix, _LOCK_NAME), os.O_RDWR)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def check(target: str, key: str) -> list[tuple[str, str]] | None:
    """The lines to print when the stamp at ``target`` answers ``key`` and everything it covers is as
    it was; ``None`` (said with :data:`TRACE_ENV`) when the full path must run."""
    try:
        with open(target, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError):
        trace("full path (no stamp)")
        return None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("key") != key:
        trace("full path (stamp of another request)")
        return None
    try:
        prefix, entries, lines = str(doc["prefix"]), list(doc["entries"]), [(str(s), str(t)) for s, t in doc["lines"]]
    except (KeyError, TypeError, ValueError):
        trace("full path (unreadable stamp)")
        return None
    fd = _lock(prefix)
    if fd is None:
        trace(f"full path (the target lock of {prefix} is held, or missing)")
        return None
    try:
        for entry in entries:
            kind, path, value = entry if isinstance(entry, list) and len(entry) == 3 else ("?", "", None)
            if kind not in ("f", "d", "g") or not isinstance(path, str) or _fingerprint(kind, path) != value:
                trace(f"full path ({path or 'a malformed entry'} changed)")
                return None
    finally:
        os.close(fd)
    trace(f"fast path ({len(entries)} fingerprints match)")
    return lines
