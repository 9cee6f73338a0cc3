"""Installed files against their RECORD: what ``invoke verify --files`` checks and what a manifest holds.

Pure reading of site-packages, in-process (no interpreter is started: hashing files needs none).

* :func:`scan` reads every ``*.dist-info`` (its RECORD, METADATA, WHEEL, INSTALLER, direct_url.json)
  and lists the files under site-packages that no RECORD claims.
* :func:`check` hashes every RECORD entry that carries a hash, in a thread pool (``hashlib`` releases
  the GIL while it hashes, so threads use every core), and checks entries without one (``.pyc``
  written at install time, RECORD itself) for presence only. Byte-code is checked for presence only
  even where RECORD gives a hash: numpy's wheel ships a ``.pyc`` that pip's compile step then
  rewrites (RECORD lists it twice, with the wheel's hash and without), and Python rewrites byte-code
  whenever its source changes; its bytes hold source mtimes, so they are not compared between
  environments either. Absent byte-code is counted, not called missing: Python rebuilds it, and
  virtualenv's seeder lists ``.pyc`` paths (and ``__pycache__`` folders) for pip and setuptools that
  it never writes.

What counts as *unrecorded* (a file in site-packages that no RECORD lists):

* byte-code in ``__pycache__`` whose source ``.py`` is there is **not** flagged: Python writes it at
  import time, and no installer can list it;
* byte-code in ``__pycache__`` whose source ``.py`` is gone **is** flagged ("byte-code without its
  source"): it is what a half-removed package leaves behind;
* a top-level entry starting with ``~`` is pip's stash of an install or uninstall that was killed
  (pip renames ``torch/`` to ``~orch/`` while it replaces it);
* ``_virtualenv.py`` / ``_virtualenv.pth`` (and their byte-code) are written by virtualenv and
  ``uv venv`` when they make the venv: not flagged;
* everything else is flagged, attributed to the package that owns the folder it is in when one does.

A distribution with no RECORD (an ``*.egg-info`` install, or a RECORD deleted by hand) cannot be
verified: it is reported as such; the files its ``installed-files.txt`` names are not called unrecorded.

A RECORD is data, not a command (:mod:`stacksync.env.confine`): a row that resolves outside the
environment's prefix (``../../../../dev/zero``, an absolute path elsewhere, a folder symlinked out) is
reported (``Dist.outside``) and never opened; a file is read only when it is a regular file (a FIFO
or device named by a row is "modified", not waited on), and no more than the size its row gives
plus one byte (a larger file is "modified" without reading the rest).
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName

from stacksync.env import sitepackages
from stacksync.env.confine import Confine, NotRegular, open_regular, scheme_base
from stacksync.env.distinfo import (
    RecordEntry,
    dist_info_folders,
    parse_record,
    read_direct_url,
    read_file,
    read_installer,
    read_name_version,
    read_record,
)

__all__ = ["RecordEntry", "Dist", "Unrecorded", "Scan", "scan", "check", "site_dirs", "verify_environment",
           "parse_record", "hash_file", "OUTSIDE", "WORKERS"]

#: threads that hash files: one per core (hashing releases the GIL) and one more to cover I/O waits
#: (measured on 2 cores, warm cache: 2-3 threads beat 1 by ~1.6x; 8 is slower than 2)
WORKERS = (os.cpu_count() or 1) + 1
#: written by virtualenv / uv venv into a new venv's site-packages; no RECORD lists them
VENV_TOOL_FILES = frozenset({"_virtualenv.py", "_virtualenv.pth"})
#: dist-info files an installer writes about the install itself, not the wheel's content (compared as
#: fields: installer, direct_url; REQUESTED only says whether a user asked for the package by name)
INSTALL_RECORDS = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Unrecorded:
    """A file in site-packages that no RECORD lists. ``path`` is relative to its site-packages dir;
    ``kind``: ``file``, ``stash`` (pip's ``~`` folder), ``orphan-bytecode``; ``owner``: the package that
    owns the folder it is in, when one does."""

    path: str
    kind: str
    owner: NormalizedName | None
    location: str


@dataclass
class Dist:
    """One installed distribution and, after :func:`check`, what its files are on disk."""

    name: NormalizedName
    version: str
    folder: str  # the *.dist-info / *.egg-info folder (absolute)
    location: str  # the site-packages folder it lives in
    record: list[RecordEntry] | None  # None: no RECORD
    installer: str | None = None
    direct_url: Mapping[str, Any] | None = None
    wheel: Mapping[str, Any] = field(default_factory=dict)
    #: after check: RECORD path -> hash on disk (same algorithm; ``None`` for a missing file)
    actual: dict[str, str | None] = field(default_factory=dict)
    modified: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unrecorded: list[Unrecorded] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    #: byte-code RECORD lists (without a hash) that is not on disk: not a fault (see _is_bytecode)
    absent_bytecode: int = 0
    #: after check_locked_builds: files whose installed RECORD hash is not the locked wheel's
    other_build: list[str] = field(default_factory=list)
    #: the locked wheel (file name) the install was compared with, when one was
    locked_wheel: str | None = None
    #: RECORD paths that resolve outside the environment's prefix: reported, never opened
    outside: list[str] = field(default_factory=list)
    #: RECORD path -> where it is on disk (folders resolved), for the rows inside the prefix
    paths: dict[str, str] = field(default_factory=dict)

    @property
    def problems(self) -> int:
        return (len(self.modified) + len(self.missing) + len(self.unrecorded) + (self.record is None)
                + bool(self.other_build) + len(self.outside))

    def abspath(self, rel: str) -> str:
        return os.path.normpath(os.path.join(self.location, rel))


@dataclass
class Scan:
    """Every distribution in the site-packages folders and the unrecorded files no package owns."""

    dirs: list[str]
    dists: list[Dist]
    unowned: list[Unrecorded] = field(default_factory=list)
    seconds: float = 0.0
    workers: int = WORKERS

    @property
    def files(self) -> int:
        return sum(d.files for d in self.dists)

    @property
    def bytes(self) -> int:
        return sum(d.bytes for d in self.dists)

    @property
    def ok(self) -> bool:
        return not self.unowned and not any(d.problems for d in self.dists)

    def counts(self) -> dict[str, int]:
        return {"modified": sum(len(d.modified) for d in self.dists),
                "missing": sum(len(d.missing) for d in self.dists),
                "unrecorded": sum(len(d.unrecorded) for d in self.dists) + len(self.unowned),
                "no_record": sum(d.record is None for d in self.dists),
                "outside": sum(len(d.outside) for d in self.dists),
                "other_build": sum(bool(d.other_build) for d in self.dists)}


# ------------------------------------------------------------------------------------------ reading

def _wheel_info(text: str | None) -> dict[str, Any]:
    """The WHEEL file's tags (sorted) and build tag: what tells a ``+cpu`` build from another."""
    if not text:
        return {}
    msg = HeaderParser().parsestr(text)
    out: dict[str, Any] = {"tags": sorted(msg.get_all("Tag") or [])}
    if msg.get("Build"):
        out["build"] = str(msg.get("Build")).strip()
    if msg.get("Root-Is-Purelib"):
        out["root_is_purelib"] = str(msg.get("Root-Is-Purelib")).strip().lower()
    return out


def _read_dist(folder: str, location: str) -> Dist | None:
    egg = folder.endswith(".egg-info")
    found = read_name_version(folder)
    if found is None:
        return None
    name, version = found
    return Dist(name, version, folder, location, None if egg else read_record(folder), read_installer(folder),
                read_direct_url(folder), _wheel_info(None if egg else read_file(folder, "WHEEL")))


def _egg_files(dist: Dist) -> list[str]:
    """Absolute paths an egg-info's installed-files.txt names (relative to the egg-info folder)."""
    text = read_file(dist.folder, "installed-files.txt") or ""
    return [os.path.normpath(os.path.join(dist.folder, line.strip())) for line in text.splitlines() if line.strip()]


def site_dirs(target: str | os.PathLike[str]) -> list[str]:
    """The site-packages folders of a venv folder or interpreter: globbed for a venv (no process),
    else asked of the interpreter (the probe). Distinct real paths (lib64 is often a link to lib)."""
    from stacksync.env.environment import find_python, probe

    path = Path(target)
    prefix = path if path.is_dir() else path.parent.parent
    if (prefix / "pyvenv.cfg").is_file():
        found = sitepackages.venv_site_folders(prefix)
    else:
        snap = probe(find_python(target))
        found = [str(p) for p in snap.raw.get("python", {}).get("site_packages", [])]
    return sitepackages.distinct_dirs(found)


def scan(dirs: Sequence[str]) -> Scan:
    """Every distribution in ``dirs`` (RECORD read, nothing hashed yet) and the unrecorded files."""
    dists: list[Dist] = []
    for location, folder in dist_info_folders(dirs, egg_info=True):  # folders only
        dist = _read_dist(folder, location)
        if dist is not None:
            dists.append(dist)
    dists.sort(key=lambda d: (d.name, d.version, d.folder))
    confines: dict[str, Confine] = {}
    for d in dists:
        _place(d, confines)
    result = Scan(list(dirs), dists)
    _find_unrecorded(result)
    return result


def _confine_for(location: str, confines: dict[str, Confine]) -> Confine:
    """One :class:`Confine` per site-packages folder: its prefix (:func:`scheme_base`) is the bound."""
    if location not in confines:
        confines[location] = Confine(scheme_base(location))
    return confines[location]


def _place(d: Dist, confines: dict[str, Confine]) -> None:
    """Fill ``d.paths`` (rows inside the prefix, where they are) and ``d.outside`` (the others)."""
    confine = _confine_for(d.location, confines)
    for e in d.record or ():
        where = confine.place(d.location, e.path)
        if where is None:
            d.outside.append(e.path)
        else:
            d.paths[e.path] = where


def _find_unrecorded(result: Scan) -> None:
    claimed: set[str] = set()
    owners: dict[str, set[NormalizedName]] = {}
    for d in result.dists:
        # every row claims its path, one outside too (a symlink named by such a row is reported once,
        # as outside, not again as unrecorded); claiming only compares strings, nothing is opened
        paths = [d.abspath(e.path) for e in d.record] if d.record is not None else _egg_files(d)
        paths.append(os.path.normpath(d.folder))
        for p in paths:
            claimed.add(p)
            parent = os.path.dirname(p)
            if parent != os.path.normpath(d.location):
                owners.setdefault(parent, set()).add(d.name)
        if d.record is None:  # an egg-info folder's own files are its own
            for root, _, files in os.walk(d.folder):
                claimed.update(os.path.normpath(os.path.join(root, f)) for f in files)
    by_name = {d.name: d for d in result.dists}
    for location in result.dirs:
        top = os.path.normpath(location)
        for root, dirnames, files in os.walk(top):
            dirnames.sort()
            for fname in sorted(files):
                full = os.path.join(root, fname)
                if full in claimed:
                    continue
                rel = os.path.relpath(full, top).replace(os.sep, "/")
                kind = _kind(rel, full)
                if kind is None:
                    continue
                owner = _owner(root, top, owners)
                item = Unrecorded(rel, kind, owner, location)
                if owner is not None and owner in by_name:
                    by_name[owner].unrecorded.append(item)
                else:
                    result.unowned.append(item)


def _kind(rel: str, full: str) -> str | None:
    """Why an unclaimed file is reported (``None``: it is not)."""
    parts = rel.split("/")
    if parts[0].startswith("~"):
        return "stash"
    if len(parts) == 1 and parts[0] in VENV_TOOL_FILES:
        return None
    if len(parts) >= 2 and parts[-2] == "__pycache__" and parts[-1].endswith(".pyc"):
        source = os.path.join(os.path.dirname(os.path.dirname(full)), parts[-1].split(".", 1)[0] + ".py")
        return None if os.path.exists(source) else "orphan-bytecode"
    return "file"


def _owner(folder: str, top: str, owners: Mapping[str, set[NormalizedName]]) -> NormalizedName | None:
    """The one package that owns ``folder`` or the nearest folder above it (``None``: none, or several,
    as in a namespace folder such as ``nvidia/`` that many wheels share)."""
    while folder != top and folder.startswith(top):
        found = owners.get(folder)
        if found:
            return next(iter(found)) if len(found) == 1 else None
        folder = os.path.dirname(folder)
    return None


# ------------------------------------------------------------------------------------------ hashing

def _is_bytecode(path: str) -> bool:
    """Byte-code RECORD lists (without a hash): derived from the sources, rebuilt by Python when absent.
    virtualenv's seeder even lists ``.pyc`` paths and ``__pycache__`` folders it never writes."""
    return path.endswith((".pyc", ".pyo", "/__pycache__")) or path == "__pycache__"


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


#: what :func:`hash_file` gives for a path whose last component is a symlink out of the environment
OUTSIDE = "outside the environment"


def hash_file(path: str, algo: str = "sha256", *, script: bool = False, limit: int | None = None,
              confine: Confine | None = None) -> tuple[str | None, int, str | None]:
    """(``algo=b64`` of the file, its size, and for a ``script`` starting with ``#!`` the hash of the
    file with that first line left out) or (``None``, 0, ``None``) when it is missing. The shebang of
    an installed script names the venv's own python: two venvs at other paths differ there only.

    Only a regular file is read (else ``unreadable (a FIFO, not a regular file)``), and at most
    ``limit`` + 1 bytes (``limit``: the size its RECORD row gives; else the size ``fstat`` gives): a
    longer file gives ``larger than its RECORD size ...``, not an endless read. With ``confine``, a
    symlink as last component is followed only when it stays inside (else :data:`OUTSIDE`)."""
    try:
        try:
            fd, size = open_regular(path, follow=confine is None)
        except NotRegular as exc:
            if confine is None or exc.what != "a symlink":
                raise
            real = confine.follow(path)
            if real is None:
                return OUTSIDE, 0, None
            fd, size = open_regular(real, follow=False)
        bound = size if limit is None else limit
        digest = hashlib.new(algo)
        kept: list[bytes] = []
        total = 0
        with os.fdopen(fd, "rb") as fh:
            while total <= bound:
                chunk = fh.read(min(_CHUNK, bound + 1 - total))
                if not chunk:
                    break
                total += len(chunk)
                digest.update(chunk)
                if script:
                    kept.append(chunk)
        if total > bound:
            said = "its RECORD size" if limit is not None else "it was when opened"
            return f"larger than {said} ({size:,} bytes on disk, {bound:,} expected)", total, None
        normalized = None
        if script:
            data = b"".join(kept)
            if data.startswith(b"#!"):
                rest = data.split(b"\n", 1)[1] if b"\n" in data else b""
                normalized = f"#!{algo}=" + _b64(hashlib.new(algo, rest).digest())
        return f"{algo}=" + _b64(digest.digest()), total, normalized
    except (FileNotFoundError, NotADirectoryError):
        return None, 0, None
    except OSError as exc:  # unreadable (permissions, a FIFO or folder where a file should be): not the recorded file
        return f"unreadable ({exc.strerror or type(exc).__name__})", 0, None


def check(result: Scan, *, workers: int = WORKERS) -> Scan:
    """Hash every RECORD entry that has a hash (thread pool), check the others for presence; fill
    each :class:`Dist`'s ``actual``, ``modified``, ``missing``, ``files``, ``bytes``; time it."""
    start = time.perf_counter()
    jobs: list[tuple[Dist, RecordEntry]] = []
    confines: dict[str, Confine] = {}
    for d in result.dists:
        if d.record and not d.paths and not d.outside:  # a Dist made by hand, not by scan
            _place(d, confines)
        for e in d.record or ():
            if e.path not in d.paths:
                continue  # outside the environment: reported by scan, never opened
            if (e.hash and "=" in e.hash and e.hash.split("=", 1)[0] in hashlib.algorithms_available
                    and not _is_bytecode(e.path)):
                jobs.append((d, e))
            elif not os.path.lexists(d.paths[e.path]):
                if _is_bytecode(e.path):
                    d.absent_bytecode += 1
                else:
                    d.missing.append(e.path)
            else:
                d.files += 1

    for d in result.dists:
        _confine_for(d.location, confines)

    def work(batch: list[tuple[Dist, RecordEntry]]) -> list[tuple[str | None, int, str | None]]:
        return [hash_file(d.paths[e.path], e.hash.split("=", 1)[0] if e.hash else "sha256",
                          script=e.path.startswith("../"), limit=e.size, confine=confines[d.location])
                for d, e in batch]

    # One task per batch, not per file (a future per file costs more than hashing a small file): big
    # files first, each into the lightest batch, so that a 1 GB library does not start last.
    jobs.sort(key=lambda j: -(j[1].size or 0))
    batches: list[list[tuple[Dist, RecordEntry]]] = [[] for _ in range(max(1, min(len(jobs), workers * 4)))]
    loads = [0] * len(batches)
    for job in jobs:
        i = loads.index(min(loads))
        batches[i].append(job)
        loads[i] += (job[1].size or 0) + 4096  # a file costs an open() whatever its size
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = [r for done in pool.map(work, batches) for r in done]
    for (d, e), (got, size, normalized) in zip([j for b in batches for j in b], results, strict=True):
        if got is None:
            d.missing.append(e.path)
            d.actual[e.path] = None
            continue
        if got == OUTSIDE:
            d.outside.append(e.path)
            continue
        d.files += 1
        d.bytes += size
        d.actual[e.path] = normalized or got
        if got != e.hash:
            d.modified.append(e.path)
    for d in result.dists:
        d.missing.sort()
        d.modified.sort()
        d.outside.sort()
    result.seconds = time.perf_counter() - start
    result.workers = workers
    return result


def verify_environment(target: str | os.PathLike[str], *, workers: int = WORKERS) -> Scan:
    """:func:`scan` and :func:`check` of a venv folder or interpreter."""
    from stacksync.core.errors import TargetError

    dirs = site_dirs(target)
    if not dirs:
        raise TargetError(f"{target}: no site-packages folder found (fix: give a venv folder or its python)")
    start = time.perf_counter()
    result = check(scan(dirs), workers=workers)
    result.seconds = time.perf_counter() - start
    return result
