"""Reading installed distributions' ``*.dist-info`` folders on the host, without starting the target:
METADATA headers, RECORD rows, INSTALLER, ``direct_url.json``. The one reader behind
:mod:`stacksync.env.sitepackages` (the probe's answer from disk), :mod:`stacksync.env.record` (files
against RECORD) and :mod:`stacksync.env.damage` (what an interrupted install left). The probe script
runs inside the target and keeps its own standard-library copy.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from packaging.utils import NormalizedName, canonicalize_name

from stacksync.env.confine import NotRegular, read_regular, read_regular_stat

__all__ = ["RecordEntry", "SiteReading", "dist_info_folders", "metadata_headers", "parse_record", "read_direct_url",
           "read_file", "read_installer", "read_json", "read_name_version", "read_record", "read_text"]

# email.feedparser's header line: a name of printable characters but ':', then ':'
# (the "From " envelope line and folded continuations are handled apart).
_HEADER = re.compile(r"^[\041-\071\073-\176]*:")
_WANTED = ("name", "version", "requires-dist")


@dataclass(frozen=True)
class RecordEntry:
    """One RECORD row: ``path`` as RECORD writes it (relative to site-packages, ``/``-separated),
    ``hash`` as ``algo=urlsafe-b64`` or ``None``, ``size`` in bytes or ``None``."""

    path: str
    hash: str | None
    size: int | None


def parse_record(text: str) -> list[RecordEntry]:
    """RECORD rows (csv: path, hash, size), as pip and uv write them."""
    out = []
    for row in csv.reader(io.StringIO(text)):
        if not row or not row[0]:
            continue
        digest = row[1] if len(row) > 1 and row[1] else None
        size = int(row[2]) if len(row) > 2 and row[2].strip().isdigit() else None
        out.append(RecordEntry(row[0], digest, size))
    return out


def metadata_headers(text: str, *, name_version: bool = False) -> dict[str, list[str]] | None:
    """The Name, Version and Requires-Dist headers of a METADATA text, valued as
    ``email.message_from_string`` (compat32, which importlib.metadata uses) values them; ``None``
    where this reading could differ from email's (a folded wanted header, a line email would not
    take for a header). ``name_version``: only the first Name and Version are wanted (email's
    ``get``); the reading stops at the line after both, once that line is not a continuation of the
    last one (nothing further down changes their values)."""
    found: dict[str, list[str]] = {k: [] for k in _WANTED}
    last = ""
    done = False
    # importlib.metadata reads in text mode: newlines are already "\n" (not str.splitlines, which
    # also splits on form feeds and other characters email does not). The headers end at the first
    # empty line: the description after it (a whole README) is not split.
    for line in text.partition("\n\n")[0].split("\n"):
        if not line:
            break
        if line[0] in " \t":
            if last in found:
                return None
            continue
        if done:
            break
        if line.startswith("From ") or not _HEADER.match(line):
            return None
        key, _, value = line.partition(":")
        last = key.lower()
        if last in found:
            found[last].append(value.lstrip(" \t"))
            done = name_version and bool(found["name"]) and bool(found["version"])
    return found


def read_text(path: str) -> str | None:
    """As ``PathDistribution.read_text``: ``None`` for a missing file; the text decoded strictly
    (``UnicodeDecodeError``) with ``open``'s newlines. Read as bytes, and only from a regular file (a
    folder is ``None`` as before; a FIFO or a device is ``None`` too, where ``open`` would block or read
    forever): a file object costs twice the whole read here (one METADATA per distribution)."""
    try:
        text = read_regular(path).decode("utf-8")
    except (FileNotFoundError, NotRegular, NotADirectoryError, PermissionError):
        return None
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def read_json(path: str) -> Any:
    """As the probe's ``read_json``: ``None`` for a missing, empty, undecodable or invalid file."""
    try:
        text = read_text(path)
    except (OSError, UnicodeDecodeError):
        return None
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def read_file(folder: str, name: str) -> str | None:
    """A text file of a ``*.dist-info`` / ``*.egg-info`` folder; ``None`` when it is missing or cannot
    be read. Bytes that are not UTF-8 are replaced (a RECORD naming such a path then lists a file
    that is not there, which is what a check should say). Only a regular file is read (a FIFO or a
    symlink to ``/dev/zero`` named RECORD is ``None``, not a read that blocks or never ends)."""
    try:
        data = read_regular(os.path.join(folder, name))
    except OSError:
        return None
    return _text(data)


def _text(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace")
    # text mode, as open() reads: "\r\n" and a lone "\r" become "\n" (what io.TextIOWrapper does, 25x faster)
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def read_installer(folder: str) -> str | None:
    """The INSTALLER file's tool name (``pip``, ``uv``); ``None`` when missing, empty or unreadable."""
    return (read_file(folder, "INSTALLER") or "").strip() or None


def read_direct_url(folder: str) -> dict[str, Any] | None:
    """``direct_url.json`` (PEP 610) as a dict; ``None`` when missing, invalid or not an object."""
    data = read_json(os.path.join(folder, "direct_url.json"))
    return data if isinstance(data, dict) else None


def read_record(folder: str) -> list[RecordEntry] | None:
    """The RECORD rows; ``None`` when there is no readable RECORD."""
    text = read_file(folder, "RECORD")
    return None if text is None else parse_record(text)


def read_name_version(folder: str) -> tuple[NormalizedName, str] | None:
    """Name (canonical) and Version from METADATA (PKG-INFO for an ``*.egg-info``), read as
    importlib.metadata reads them (the email parser); ``None`` when either is missing."""
    meta = read_file(folder, "PKG-INFO" if folder.endswith(".egg-info") else "METADATA")
    if meta is None:
        return None
    from email.parser import HeaderParser  # lazy: ~8 ms of imports, for a folder a check found broken

    headers = HeaderParser().parsestr(meta)
    name, version = headers.get("Name"), headers.get("Version")
    if not name or not version:
        return None
    return canonicalize_name(str(name)), str(version).strip()


def dist_info_folders(dirs: Iterable[str | os.PathLike[str]], *, egg_info: bool = False,
                      stashes: bool = True, reading: SiteReading | None = None) -> Iterator[tuple[str, str]]:
    """``(location, folder)`` for each ``*.dist-info`` folder (and ``*.egg-info`` with ``egg_info``)
    in ``dirs``, sorted by name within each location; unreadable locations are skipped. ``stashes``:
    include pip's ``~``-prefixed stash folders of an uncommitted uninstall. Folders only (symlinks
    followed, as ``os.path.isdir``): a file with such a name is not a distribution; the listing says
    which entries are folders, so a large target costs no ``stat`` per distribution here.
    ``reading``: take the listings from it (one per folder for all the checks sharing it)."""
    suffixes = (".dist-info", ".egg-info") if egg_info else (".dist-info",)
    for entry in dirs:
        location = os.fspath(entry)
        try:
            listing = reading.scandir(location) if reading is not None else _scandir(location)
            children = sorted(e.name for e in listing if e.name.lower().endswith(suffixes) and _is_dir(e)
                              and (stashes or not e.name.startswith("~")))
        except OSError:
            continue
        for child in children:
            yield location, os.path.join(location, child)


def _scandir(location: str) -> list[os.DirEntry[str]]:
    with os.scandir(location) as listing:
        return list(listing)


class SiteReading:
    """One reading of a target's site-packages, shared by the checks of one verify: each folder
    listed once (the RECORD check, the host's reading of the versions and the start-up code scan all
    list site-packages), each RECORD read once, and the stamp of each RECORD kept as it was when read
    (or when the damage memo's ``stat`` vouched for it), which the artifact record's check compares
    instead of a ``stat`` of its own. Nothing is kept beyond the reading: a later check takes a new
    one, so a file removed after this reading is seen by the next."""

    def __init__(self) -> None:
        self._listings: dict[str, list[os.DirEntry[str]] | OSError] = {}
        self._records: dict[str, str | None] = {}
        self._stamps: dict[str, os.stat_result] = {}

    def scandir(self, folder: str | os.PathLike[str]) -> list[os.DirEntry[str]]:
        """The entries of ``folder`` (listed at its first call; the ``OSError`` of that listing is
        raised again at every call, so each caller keeps its own rule for an unreadable folder)."""
        key = os.fspath(folder)
        found = self._listings.get(key)
        if found is None:
            try:
                found = _scandir(key)
            except OSError as exc:
                found = exc
            self._listings[key] = found
        if isinstance(found, OSError):
            raise found
        return found

    def listdir(self, folder: str | os.PathLike[str]) -> list[str]:
        """As ``os.listdir``, from the one listing."""
        return [e.name for e in self.scandir(folder)]

    def record(self, folder: str) -> str | None:
        """``RECORD`` of the dist-info ``folder`` as :func:`read_file` reads it, read once."""
        if folder in self._records:
            return self._records[folder]
        try:
            data, st = read_regular_stat(os.path.join(folder, "RECORD"))
        except OSError:
            text = None
        else:
            text = _text(data)
            self._stamps[folder] = st
        self._records[folder] = text
        return text

    def record_stamp(self, folder: str) -> os.stat_result | None:
        """The ``stat`` of ``folder``'s RECORD taken by this reading (``None``: none taken yet)."""
        return self._stamps.get(folder)

    def keep_record_stamp(self, folder: str, st: os.stat_result) -> None:
        """A ``stat`` of ``folder``'s RECORD a check took itself (the damage memo's)."""
        self._stamps.setdefault(folder, st)


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False
