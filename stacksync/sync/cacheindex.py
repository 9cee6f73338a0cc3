"""The per-profile download cache, listed and parsed once per fetch (issue 21: linear in the lock's size).

:class:`CacheIndex` reads the folder once and indexes its wheels by ``(name, version)`` with their
tags, and every file by project name. Each file is hashed at most once per run while it is
unchanged (path, size and mtime; within one listing, a file it answered for is not asked again: the
lookups of one fetch step), and a wheel's ``Requires-Dist`` is read from its zip once, then kept
by sha256 in ``.requires-dist.json`` in the cache folder, so a later run does not open the zip again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, NormalizedName, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from stacksync.core.fs import atomic_write_text

__all__ = ["CacheIndex", "REQUIRES_MEMO"]

REQUIRES_MEMO = ".requires-dist.json"


class CacheIndex:
    """One listing of ``cache``: wheels by ``(name, normalized version)`` (sorted by file name, with their
    tags) and every regular file by project name. ``earlier``: the listing this run made before (its
    hashes and memo are kept: a file verified once in a run is not read again while unchanged)."""

    _requires: dict[str, list[str] | None] | None
    _requires_dirty: bool

    def __init__(self, cache: Path, earlier: CacheIndex | None = None) -> None:
        self.cache = cache
        # (path, size, mtime_ns) -> sha256 hex
        self.hashed: dict[tuple[str, int, int], str] = earlier.hashed if earlier else {}
        self.wheels: dict[tuple[NormalizedName, str], list[tuple[Path, frozenset[Tag]]]] = {}
        self.files: dict[NormalizedName, list[Path]] = {}
        # path -> sha256 answered by this listing: its later lookups in the same step skip the stat
        self._answered: dict[str, str] = {}
        self._requires = earlier._requires if earlier else None
        self._requires_dirty = earlier._requires_dirty if earlier else False
        try:
            names = sorted(e.name for e in os.scandir(cache) if not e.name.startswith(".") and e.is_file())
        except OSError:
            names = []
        for name in names:
            path = cache / name
            self.files.setdefault(canonicalize_name(name.split("-", 1)[0]), []).append(path)
            if not name.endswith(".whl"):
                continue
            try:
                project, version, _, tags = parse_wheel_filename(name)
            except InvalidWheelFilename:
                continue
            self.wheels.setdefault((project, str(version)), []).append((path, tags))

    def wheels_of(self, name: NormalizedName, version: str | None) -> list[tuple[Path, frozenset[Tag]]]:
        """The cached wheels of exactly ``name==version`` (local version included), by file name."""
        if version is None:
            return []
        try:
            want = str(Version(version))
        except InvalidVersion:
            return []
        return self.wheels.get((name, want), [])

    def files_of(self, name: NormalizedName) -> list[Path]:
        return self.files.get(name, [])

    def sha256(self, path: Path, hasher: Callable[[Path], str]) -> str:
        """``hasher(path)``, once per unchanged file in this run (a new listing, made after a download,
        checks size and mtime again: a file replaced under the same name is hashed again)."""
        where = str(path)
        answered = self._answered.get(where)
        if answered is not None:
            return answered
        try:
            st = os.stat(where)
        except OSError:
            return hasher(path)
        key = (where, st.st_size, st.st_mtime_ns)
        known = self.hashed.get(key)
        if known is None:
            known = self.hashed[key] = hasher(path)
        self._answered[where] = known
        return known

    def requires(self, path: Path, sha256: str, reader: Callable[[Path], list[str] | None]) -> list[str] | None:
        """A wheel's Requires-Dist: from the memo by sha256, else ``reader(path)`` (then remembered)."""
        memo = self._memo()
        if sha256 in memo:
            return memo[sha256]
        found = memo[sha256] = reader(path)
        self._requires_dirty = True
        return found

    def _memo(self) -> dict[str, list[str] | None]:
        if self._requires is None:
            self._requires = {}
            try:
                data = json.loads((self.cache / REQUIRES_MEMO).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = None
            if isinstance(data, dict):
                for key, value in data.items():
                    if value is None or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                        self._requires[str(key)] = value
        return self._requires

    def save(self) -> None:
        """Write the Requires-Dist memo when it grew (best effort: a read-only cache only costs a re-read)."""
        if self._requires is None or not self._requires_dirty:
            return
        try:
            atomic_write_text(self.cache / REQUIRES_MEMO, json.dumps(self._requires, sort_keys=True) + "\n",
                              fsync=False)
        except OSError:
            return
        self._requires_dirty = False
