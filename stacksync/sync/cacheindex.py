"""The per-profile download cache, listed and parsed once per fetch (issue 21: linear in the lock's size).

:class:`CacheIndex` reads the folder once and indexes its wheels by ``(name, version)`` with their
tags, and every file by project name. Each file is hashed at most once per run while it is
unchanged, and a wheel's ``Requires-Dist`` is read from its zip once, then kept by sha256 in
``.requires-dist.json`` in the cache folder, so a later run does not open the zip again.

A file's sha256 is also kept across runs, in ``.sha256-verified.json`` beside the files, keyed by the
file's name and its ``(st_ino, st_size, st_mtime_ns, st_ctime_ns)``: a later run answers a wheel it
finds with the same stat from the memo instead of reading it again. Every writer that can change a
file's bytes changes one of these (a rewrite in place: mtime and ctime; ``os.replace`` or a new
download: the inode; ``touch -d`` / ``os.utime`` cannot set ctime back), as the no-op stamp relies on
(:mod:`stacksync.core.stamp`). A file whose mtime or ctime is within :data:`~stacksync.core.stamp.RACY_NS`
of the listing is not kept (git's "racy clean" rule: a change within the file system's timestamp
grain could leave the stat as it was), so a wheel downloaded by this run is hashed again by the next
one, then kept. A memo that is not what this module writes is dropped whole; an entry of a file no
longer in the folder is dropped when the memo is written again.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeGuard

from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, NormalizedName, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from stacksync.core.fs import atomic_write_text
from stacksync.core.stamp import RACY_NS

__all__ = ["CacheIndex", "REQUIRES_MEMO", "SHA256_MEMO", "wheel_parts"]

REQUIRES_MEMO = ".requires-dist.json"
#: the verified digests of the folder's files, by name and stat (its own name: other stacksync
#: versions sharing the cache ignore it, as they ignore every dotted name)
SHA256_MEMO = ".sha256-verified.json"
_MEMO_FORMAT = 1
_HEX = frozenset("0123456789abcdef")
#: (st_ino, st_size, st_mtime_ns, st_ctime_ns)
Stat = tuple[int, int, int, int]


class CacheIndex:
    """One listing of ``cache``: wheels by ``(name, normalized version)`` (sorted by file name, with their
    tags) and every regular file by project name. ``earlier``: the listing this run made before (its
    hashes and memos are kept: a file verified once in a run is not read again while unchanged).
    ``now_ns``: the time the racy rule measures against (tests move it past the timestamp grain)."""

    _requires: dict[str, Any] | None
    _requires_dirty: bool
    _verified: dict[str, Any] | None
    _verified_dirty: bool

    def __init__(self, cache: Path, earlier: CacheIndex | None = None, *, now_ns: int | None = None) -> None:
        self.cache = cache
        # (path, ino, size, mtime_ns, ctime_ns) -> sha256 hex, for this run
        self.hashed: dict[tuple[str, int, int, int, int], str] = earlier.hashed if earlier else {}
        self.wheels: dict[tuple[NormalizedName, str], list[tuple[Path, frozenset[Tag]]]] = {}
        self.files: dict[NormalizedName, list[Path]] = {}
        # path -> sha256 answered by this listing: its later lookups in the same step skip the stat
        self._answered: dict[str, str] = {}
        self._requires = earlier._requires if earlier else None
        self._requires_dirty = earlier._requires_dirty if earlier else False
        # file name -> [*stat, sha256]: the digests verified by earlier runs, as read (None: not read yet)
        self._verified = earlier._verified if earlier else None
        self._verified_dirty = earlier._verified_dirty if earlier else False
        self._racy_limit = (time.time_ns() if now_ns is None else now_ns) - RACY_NS
        self._folder = os.fspath(cache)
        try:
            names = sorted(e.name for e in os.scandir(cache) if not e.name.startswith(".") and e.is_file())
        except OSError:
            names = []
        self.names = frozenset(names)
        # name -> (the listing's own Path, its string): a lookup of one of them needs no str() or dirname()
        self._own: dict[str, tuple[Path, str]] = {}
        for name in names:
            path = cache / name
            self._own[name] = (path, f"{self._folder}{os.sep}{name}")
            project = canonicalize_name(name.split("-", 1)[0])
            self.files.setdefault(project, []).append(path)
            if name.endswith(".whl"):
                parts = wheel_parts(name, project)
                if parts is not None:
                    self.wheels.setdefault((parts[0], parts[1]), []).append((path, parts[2]))

    def wheels_of(self, name: NormalizedName, version: str | None) -> list[tuple[Path, frozenset[Tag]]]:
        """The cached wheels of exactly ``name==version`` (local version included), by file name."""
        want = _normal_version(version) if version is not None else None
        return self.wheels.get((name, want), []) if want is not None else []

    def files_of(self, name: NormalizedName) -> list[Path]:
        return self.files.get(name, [])

    def sha256(self, path: Path, hasher: Callable[[Path], str]) -> str:
        """``hasher(path)`` (a sha256), once per unchanged file in this run, and not at all for a file of
        this folder that an earlier run verified with the same stat (module docstring). A new listing,
        made after a download, stats the file again: one replaced under the same name is hashed again."""
        name = path.name
        own = self._own.get(name)
        if own is not None and own[0] is path:  # a Path this listing handed out
            where, mine = own[1], True
        else:
            where = str(path)
            mine = own is not None and own[1] == where  # the memo holds this folder's files only
        answered = self._answered.get(where)
        if answered is not None:
            return answered
        try:
            st = os.stat(where)
        except OSError:
            return hasher(path)
        stat = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        key = (where, *stat)
        known = self.hashed.get(key)
        if known is None:
            known = self._remembered(name, stat) if mine else None
            if known is None:
                known = hasher(path)
                if mine:
                    self._remember(name, stat, known)
            self.hashed[key] = known
        self._answered[where] = known
        return known

    def _remembered(self, name: str, stat: Stat) -> str | None:
        entry = self._verified_memo().get(name)
        if type(entry) is not list or len(entry) != 5 or entry[:4] != list(stat):
            return None
        digest = entry[4]
        return digest if type(digest) is str and len(digest) == 64 and _HEX.issuperset(digest) else None

    def _remember(self, name: str, stat: Stat, digest: str) -> None:
        """Keep ``digest`` for the next run unless the stat is too recent to be trusted (racy)."""
        memo = self._verified_memo()
        if max(stat[2], stat[3]) > self._racy_limit:
            if memo.pop(name, None) is not None:
                self._verified_dirty = True
            return
        memo[name] = [*stat, digest]
        self._verified_dirty = True

    def _verified_memo(self) -> dict[str, Any]:
        if self._verified is None:
            self._verified = _read_verified(self.cache / SHA256_MEMO)
        return self._verified

    def requires(self, path: Path, sha256: str, reader: Callable[[Path], list[str] | None]) -> list[str] | None:
        """A wheel's Requires-Dist: from the memo by sha256, else ``reader(path)`` (then remembered)."""
        memo = self._memo()
        known = memo.get(sha256, False)
        if _valid_requires(known):
            return known
        found = memo[sha256] = reader(path)  # not in the memo, or an entry of another shape: read again
        self._requires_dirty = True
        return found

    def _memo(self) -> dict[str, Any]:
        """The Requires-Dist memo as read (each entry checked where it is used); empty when missing or
        not a JSON object."""
        if self._requires is None:
            try:
                data = json.loads((self.cache / REQUIRES_MEMO).read_bytes())
            except (OSError, ValueError):
                data = None
            self._requires = data if isinstance(data, dict) else {}
        return self._requires

    def save(self) -> None:
        """Write the memos that changed (best effort: a read-only cache only costs a re-read): the entries
        of the right shape, and in the digest memo only those of files still in the folder."""
        verified = self._verified
        if verified is not None and (self._verified_dirty or not self.names.issuperset(verified)):
            kept = {n: e for n, e in verified.items() if n in self.names and _valid_entry(e)}
            verified.clear()
            verified.update(kept)
            if _write(self.cache / SHA256_MEMO, {"format": _MEMO_FORMAT, "files": kept}):
                self._verified_dirty = False
        if self._requires is not None and self._requires_dirty:
            good = {k: v for k, v in self._requires.items() if _valid_requires(v)}
            if _write(self.cache / REQUIRES_MEMO, good):
                self._requires_dirty = False


def _write(path: Path, doc: Any) -> bool:
    try:
        atomic_write_text(path, json.dumps(doc, sort_keys=True) + "\n", fsync=False)
    except OSError:
        return False
    return True


def _read_verified(path: Path) -> dict[str, Any]:
    """The digest memo at ``path`` as written by :meth:`CacheIndex.save` (``{name: [st_ino, st_size,
    st_mtime_ns, st_ctime_ns, sha256]}``); empty when missing or not of that shape. Each entry is
    checked where it is used (:func:`_valid_entry`): one that is not exactly of that shape is never
    used, and is dropped when the memo is written again."""
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    files = doc.get("files") if isinstance(doc, dict) and doc.get("format") == _MEMO_FORMAT else None
    return files if isinstance(files, dict) else {}


def _valid_requires(value: Any) -> TypeGuard[list[str] | None]:
    return value is None or (type(value) is list and all(type(v) is str for v in value))


def _valid_entry(entry: Any) -> TypeGuard[list[Any]]:
    if type(entry) is not list or len(entry) != 5:
        return False
    ino, size, mtime, ctime, digest = entry
    return (type(ino) is int and type(size) is int and type(mtime) is int and type(ctime) is int
            and type(digest) is str and len(digest) == 64 and _HEX.issuperset(digest))


# ----------------------------------------------------------------------------------- wheel file names

#: packaging's rules for the name part of a wheel file name (PEP 427 escaping)
_WHEEL_NAME = re.compile(r"[\w._]+")


def wheel_parts(filename: str, project: NormalizedName | None = None
                ) -> tuple[NormalizedName, str, frozenset[Tag]] | None:
    """``(name, normalized version, tags)`` of a wheel file name as
    :func:`packaging.utils.parse_wheel_filename` reads it, ``None`` where it refuses the name. The
    version and the tag set are parsed once per distinct string (a cache holds many wheels of one tag,
    ``py3-none-any``); a file name with a build tag goes to packaging whole. ``tests/test_cacheindex.py``
    holds the two readings equal. ``project``: the name part already canonicalized by the caller."""
    stem = filename[:-4] if filename.endswith(".whl") else None
    if stem is None or stem.count("-") != 4:
        try:
            whole = parse_wheel_filename(filename)
        except InvalidWheelFilename:
            return None
        return whole[0], str(whole[1]), whole[3]
    name_part, version_part, tag_part = stem.split("-", 2)
    if "__" in name_part or _WHEEL_NAME.fullmatch(name_part) is None:
        return None
    normal = _normal_version(version_part)
    tag_set = _tags(tag_part)
    if normal is None or tag_set is None:
        return None
    return project or canonicalize_name(name_part), normal, tag_set


@lru_cache(maxsize=4096)
def _normal_version(text: str) -> str | None:
    """``str(Version(text))``, ``None`` for a string that is not a version."""
    try:
        return str(Version(text))
    except InvalidVersion:
        return None


@lru_cache(maxsize=1024)
def _tags(text: str) -> frozenset[Tag] | None:
    """The tag set of a wheel's ``python-abi-platform`` part as packaging reads it in a file name."""
    try:
        return parse_wheel_filename(f"x-0-{text}.whl")[3]
    except InvalidWheelFilename:
        return None
