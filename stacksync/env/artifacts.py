"""Which artifact each installed distribution came from: ``<prefix>/stacksync-artifacts.json``.

pip and pip-sync decide by name and version only, so a target holding another build of the locked
version (a local rebuild, a wheel installed by hand) looks like the lock's twin to them. stacksync
records, after each install phase, the sha256 of the wheel it installed for each distribution, keyed
by the distribution's ``*.dist-info`` folder and its RECORD's ``stat`` (mtime, size, inode): a
reinstall behind stacksync's back writes a new RECORD, so the entry no longer holds, at the cost of
one ``stat`` per distribution. Shape::

    {"artifacts": 1,
     "dists": {"plain-a": {"version": "1.0", "sha256": "2c70...", "dist_info": "plain_a-1.0.dist-info",
                           "record": [1733216400123456789, 512, 1234567], "source": "fetch"}}}

Where there is no entry that holds, two other pieces of evidence say where the files came from:
``direct_url.json``'s ``archive_info`` hash (pip writes it for a wheel installed from a file or URL)
and a wheel file whose RECORD rows equal the installed ones (:func:`same_files`: pip copies the
wheel's files and their RECORD rows unchanged).

Pure reading and one atomic write; the decisions are :mod:`stacksync.sync.provenance`'s.
"""

from __future__ import annotations

import io
import json
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName, canonicalize_name

from stacksync.core.fs import atomic_write_text
from stacksync.env.distinfo import SiteReading

__all__ = ["ARTIFACTS_FILE", "Artifact", "read", "write", "record_stat", "dist_info_folders", "installed_rows",
           "wheel_rows", "same_files", "direct_url_sha256"]

ARTIFACTS_FILE = "stacksync-artifacts.json"
#: files an installer writes into a dist-info that no wheel carries (or that it rewrites); uv writes
#: uv_cache.json into a package it installed from a local file (--find-links)
_GENERATED = frozenset({"INSTALLER", "REQUESTED", "RECORD", "direct_url.json", "uv_cache.json"})

Stat = tuple[int, int, int]
#: the largest RECORD read (torch's is ~2 MB)
_RECORD_MAX = 64 << 20


@dataclass(frozen=True)
class Artifact:
    """The wheel (its sha256) stacksync installed for one distribution, and how to tell it still is."""

    version: str
    sha256: str
    dist_info: str
    record: Stat
    source: str = "fetch"

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "sha256": self.sha256, "dist_info": self.dist_info,
                "record": list(self.record), "source": self.source}

    def holds(self, location: str | None, reading: SiteReading | None = None) -> bool:
        """Whether the dist-info this entry names, under ``location`` (the site-packages folder), still
        has the RECORD that was there when the entry was written (one ``stat``; none when ``reading``,
        the check's reading of site-packages, already took one of that RECORD)."""
        if not location:
            return False
        folder = os.path.join(location, self.dist_info)
        st = reading.record_stamp(folder) if reading is not None else None
        if st is None:
            return record_stat(folder) == self.record
        return (st.st_mtime_ns, st.st_size, st.st_ino) == self.record


def _artifact(data: Any) -> Artifact | None:
    try:
        record = tuple(int(x) for x in data["record"])
        if len(record) != 3:
            return None
        return Artifact(str(data["version"]), str(data["sha256"]), str(data["dist_info"]),
                        (record[0], record[1], record[2]), str(data.get("source", "fetch")))
    except (KeyError, TypeError, ValueError):
        return None


#: the last record read or written in this process: (its path, its text, its entries). A read that
#: finds the very same text takes the entries (verify reads back the record the install phase just
#: wrote); any other text is parsed
_last: tuple[str, str, dict[NormalizedName, Artifact]] | None = None


def read(prefix: str | os.PathLike[str]) -> dict[NormalizedName, Artifact]:
    """The entries of ``<prefix>/stacksync-artifacts.json`` (``{}``: none, or an unreadable file)."""
    global _last
    path = os.path.join(prefix, ARTIFACTS_FILE)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        if _last is not None and _last[0] == path and _last[1] == text:
            return dict(_last[2])
        dists = json.loads(text)["dists"]
        assert isinstance(dists, dict)
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        return {}
    out: dict[NormalizedName, Artifact] = {}
    for name, entry in dists.items():
        artifact = _artifact(entry)
        if artifact is not None:
            out[NormalizedName(str(name))] = artifact  # written canonical; another spelling is not found
    _last = (path, text, dict(out))
    return out


def write(prefix: str | os.PathLike[str], entries: Mapping[NormalizedName, Artifact],
          installed: Iterable[NormalizedName] | None = None) -> Path:
    """Add ``entries`` to the record (atomically); with ``installed``, entries of distributions no
    longer installed are dropped."""
    global _last
    path = Path(prefix) / ARTIFACTS_FILE
    current = read(prefix)
    current.update(entries)
    if installed is not None:
        keep = set(installed)
        current = {n: a for n, a in current.items() if n in keep}
    # One distribution per line, as ``json.dumps(entry.to_json(), sort_keys=True)`` writes it (``indent``
    # would take the pure-Python encoder: a noticeable share of an 800-package sync); the strings are
    # quoted by the function json.dumps quotes them with, without json.dumps' own cost per call.
    rows = ",\n".join(_row(n, current[n]) for n in sorted(current))
    text = '{"artifacts": 1, "dists": {' + (f"\n{rows}\n" if rows else "") + "}}\n"
    atomic_write_text(path, text)
    _last = (os.path.join(prefix, ARTIFACTS_FILE), text, dict(current))
    return path


def _row(name: str, entry: Artifact) -> str:
    q = encode_basestring_ascii
    r = entry.record
    return (f' {q(name)}: {{"dist_info": {q(entry.dist_info)}, "record": [{int(r[0])}, {int(r[1])}, {int(r[2])}], '
            f'"sha256": {q(entry.sha256)}, "source": {q(entry.source)}, "version": {q(entry.version)}}}')


def record_stat(dist_info: str | os.PathLike[str]) -> Stat | None:
    """``(mtime_ns, size, inode)`` of ``dist_info/RECORD``; ``None`` when it cannot be read."""
    try:
        st = os.stat(os.path.join(dist_info, "RECORD"))
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def dist_info_folders(site_packages: Iterable[str]) -> dict[NormalizedName, tuple[str, str]]:
    """name -> (site-packages folder, dist-info folder name), from the folder names (one listing per
    site-packages folder); a name found twice is left out (which one Python imports is not ours to say)."""
    found: dict[NormalizedName, tuple[str, str]] = {}
    twice: set[NormalizedName] = set()
    for location in site_packages:
        try:
            children = os.listdir(location)
        except OSError:
            continue
        for child in children:
            if child.startswith("~") or not child.endswith(".dist-info"):
                continue
            name = canonicalize_name(child[: -len(".dist-info")].partition("-")[0])
            if name in found:
                twice.add(name)
            found[name] = (location, child)
    return {n: v for n, v in found.items() if n not in twice}


def _rows(text: str) -> set[tuple[str, str]] | None:
    """``(path, hash)`` of each hashed RECORD row; ``None`` for a RECORD csv cannot read."""
    import csv

    out = set()
    try:
        for row in csv.reader(io.StringIO(text)):
            if len(row) >= 2 and row[0] and row[1]:
                out.add((row[0], row[1]))
    except csv.Error:
        return None
    return out


def _comparable(rows: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """The rows a wheel and its installed copy share: files under site-packages, no byte-code, none of
    the files an installer writes itself."""
    out = set()
    for path, digest in rows:
        if path.startswith(("/", "..")) or path.endswith((".pyc", ".pyo")) or "__pycache__" in path:
            continue
        folder, _, base = path.rpartition("/")
        if folder.endswith(".dist-info") and "/" not in folder and base in _GENERATED:
            continue
        out.add((path, digest))
    return out


def installed_rows(dist_info: str | os.PathLike[str]) -> set[tuple[str, str]] | None:
    """The comparable ``(path, hash)`` rows of an installed distribution's RECORD (``None``: unreadable,
    or not a regular file of a sane size: a RECORD is data whatever installed the package wrote)."""
    path = os.path.join(dist_info, "RECORD")
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > _RECORD_MAX:
            return None
        with open(path, encoding="utf-8", newline="") as fh:
            text = fh.read(_RECORD_MAX)
    except (OSError, UnicodeDecodeError):
        return None
    rows = _rows(text)
    return _comparable(rows) if rows is not None else None


def wheel_rows(wheel: str | os.PathLike[str]) -> set[tuple[str, str]] | None:
    """The comparable rows of a wheel's own RECORD, ``.data/purelib`` and ``.data/platlib`` paths
    mapped to where an installer puts them (``None``: not a readable wheel)."""
    import zipfile  # here, not at the top: the no-op path (a stat per distribution) never opens a wheel

    try:
        with zipfile.ZipFile(wheel) as zf:
            record = next((n for n in zf.namelist() if n.endswith(".dist-info/RECORD") and n.count("/") == 1), None)
            if record is None:
                return None
            text = zf.read(record).decode("utf-8")
    except (OSError, zipfile.BadZipFile, KeyError, UnicodeDecodeError):
        return None
    listed = _rows(text)
    if listed is None:
        return None
    rows = set()
    for path, digest in listed:
        head, _, rest = path.partition("/")
        if head.endswith(".data"):
            kind, _, inner = rest.partition("/")
            if kind not in ("purelib", "platlib"):
                continue  # scripts, headers, data: installed outside site-packages (scripts rewritten)
            path = inner
        rows.add((path, digest))
    return _comparable(rows)


def same_files(dist_info: str | os.PathLike[str], wheel: str | os.PathLike[str]) -> bool | None:
    """Whether the installed distribution holds exactly the files of ``wheel`` (RECORD rows compared);
    ``None`` when either RECORD cannot be read."""
    installed, packed = installed_rows(dist_info), wheel_rows(wheel)
    if installed is None or packed is None:
        return None
    return installed == packed


def direct_url_sha256(direct_url: Mapping[str, Any] | None) -> str | None:
    """The sha256 of the archive pip installed, from ``direct_url.json`` (a wheel installed from a
    file or URL); ``None`` when it does not say."""
    info = (direct_url or {}).get("archive_info")
    if not isinstance(info, Mapping):
        return None
    hashes = info.get("hashes")
    if isinstance(hashes, Mapping) and isinstance(hashes.get("sha256"), str):
        return str(hashes["sha256"]).lower()
    legacy = info.get("hash")
    if isinstance(legacy, str) and legacy.startswith("sha256="):
        return legacy.split("=", 1)[1].lower()
    return None
