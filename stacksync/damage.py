"""Damage a killed install leaves in a target, found by reading its site-packages (no process, no
hashing: a listing per folder, the RECORD files).

What counts, and why:

* a leftover journal (:mod:`stacksync.journal`): a sync stopped part-way;
* pip's stash entries: ``~``-prefixed folders / files beside the originals (``~orch_like``,
  ``~orch_like-2.3.0.dist-info``), which pip's uninstall moves the old files to and removes only when
  the whole install or uninstall commits. pip itself ignores ``~`` dist-infos ("incompletely removed
  distribution"), and so do the probe and :mod:`stacksync.sitepackages`: they are not installed
  packages, they are debris;
* a ``*.dist-info`` (written by pip or uv, or with no INSTALLER yet) with no RECORD (an install killed
  before pip wrote it: pip then cannot uninstall it either), or whose RECORD lists files that do not
  exist (a stash that moved them away, a partial write). Byte-code (``.pyc``, ``__pycache__``) is left
  out: it is derived, users delete it, and virtualenv's seeder records ``__pycache__`` folders it
  never writes. Existence is read from one listing per folder, not one ``stat`` per file.

Everything here is pure reading; :mod:`stacksync.repair` acts on what it finds.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName, canonicalize_name

from . import journal as journal_mod
from .sitepackages import metadata_headers

__all__ = ["Broken", "Damage", "stashes", "broken_distributions", "scan"]


@dataclass(frozen=True)
class Broken:
    """A ``*.dist-info`` that does not hold what it says is installed."""

    name: NormalizedName
    version: str
    folder: Path
    has_record: bool
    missing: tuple[str, ...] = ()

    def describe(self) -> str:
        if not self.has_record:
            return f"{self.name} {self.version}: no RECORD in {self.folder.name} (an install was cut short)"
        more = f" and {len(self.missing) - 1} more" if len(self.missing) > 1 else ""
        return f"{self.name} {self.version}: {self.missing[0]}{more} listed in RECORD but missing"


@dataclass(frozen=True)
class Damage:
    """What :func:`scan` found. ``journal``: the leftover journal (``None``: none)."""

    journal: Mapping[str, Any] | None = None
    stashes: tuple[Path, ...] = ()
    broken: tuple[Broken, ...] = ()

    @property
    def found(self) -> bool:
        return self.journal is not None or bool(self.stashes or self.broken)

    @property
    def files_damaged(self) -> bool:
        """Damage in site-packages itself (the journal aside)."""
        return bool(self.stashes or self.broken)

    def names(self) -> set[NormalizedName]:
        """Packages that must be reinstalled (their installed files are not what RECORD says)."""
        return {b.name for b in self.broken}

    def lines(self) -> list[str]:
        out = []
        if self.journal is not None:
            out.append(f"journal {journal_mod.JOURNAL_FILE}: {journal_mod.describe(self.journal)}")
        if self.stashes:
            shown = ", ".join(p.name for p in self.stashes[:4]) + (" ..." if len(self.stashes) > 4 else "")
            out.append(f"{len(self.stashes)} pip stash entr{'y' if len(self.stashes) == 1 else 'ies'} "
                       f"left by an interrupted install/uninstall: {shown}")
        out += [b.describe() for b in self.broken]
        return out

    def summary(self) -> str:
        return "; ".join(self.lines())


def stashes(dirs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """pip's ``~``-prefixed stash entries in ``dirs``."""
    found: list[Path] = []
    for entry in dirs:
        try:
            names = sorted(os.listdir(entry))
        except OSError:
            continue
        found += [Path(entry, n) for n in names if n.startswith("~")]
    return found


def _name_version(folder: str) -> tuple[NormalizedName, str]:
    """From METADATA (as importlib.metadata reads it), else from the folder name."""
    stem = os.path.basename(folder)[: -len(".dist-info")]
    name, _, version = stem.partition("-")
    try:
        with open(os.path.join(folder, "METADATA"), encoding="utf-8") as fh:
            headers = metadata_headers(fh.read())
    except (OSError, UnicodeDecodeError):
        headers = None
    if headers:
        name = (headers.get("name") or [name])[0] or name
        version = (headers.get("version") or [version])[0] or version
    return canonicalize_name(name), version


def _missing_files(folder: str, location: str, listings: dict[str, frozenset[str]]) -> tuple[str, ...] | None:
    """Files RECORD lists that do not exist (``None``: no RECORD). Each folder is listed once
    (``listings``, shared by the scan): a torch wheel's 15k files live in ~1k folders."""
    try:
        with open(os.path.join(folder, "RECORD"), encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    missing = []
    for row in rows:
        if not row or not row[0] or row[0].endswith((".pyc", ".pyo")) or "__pycache__" in row[0].split("/"):
            continue  # byte-code and its folders (virtualenv's seeder records them unwritten)
        rel = row[0]
        if rel[0] != "/" and ".." not in rel:  # the common case, in plain string operations
            sub, _, base = rel.rpartition("/")
            head = f"{location}/{sub}" if sub else location
        else:
            head, base = os.path.split(os.path.normpath(rel if os.path.isabs(rel) else os.path.join(location, rel)))
        names = listings.get(head)
        if names is None:
            try:
                names = frozenset(os.listdir(head))
            except OSError:
                names = frozenset()
            listings[head] = names
        if base not in names:
            missing.append(rel)
    return tuple(missing)


#: installers whose half-done work this module judges; a dist-info conda (or another tool) wrote is
#: that tool's business, and removing it would break the tool's own records
INSTALLERS = frozenset({"pip", "uv"})


def _ours(folder: str) -> bool:
    """Installed by pip / uv, or by nothing yet: pip writes INSTALLER after the files, just before
    RECORD, so a cut-short install may have neither."""
    try:
        with open(os.path.join(folder, "INSTALLER"), encoding="utf-8") as fh:
            installer = fh.read().strip()
    except (OSError, UnicodeDecodeError):
        return True
    return not installer or installer in INSTALLERS


def broken_distributions(dirs: Sequence[str | os.PathLike[str]]) -> list[Broken]:
    """Every ``*.dist-info`` in ``dirs`` (not the ``~`` stashes) with no RECORD or missing files."""
    out: list[Broken] = []
    listings: dict[str, frozenset[str]] = {}
    for entry in dirs:
        location = os.fspath(entry)
        try:
            names = sorted(os.listdir(location))
        except OSError:
            continue
        for child in names:
            if child.startswith("~") or not child.lower().endswith(".dist-info"):
                continue
            folder = os.path.join(location, child)
            if not os.path.isdir(folder) or not _ours(folder):
                continue
            missing = _missing_files(folder, location, listings)
            if missing is not None and not missing:
                continue
            name, version = _name_version(folder)
            out.append(Broken(name, version, Path(folder), missing is not None, missing or ()))
    return out


def scan(prefix: Path, site_packages: Sequence[str | os.PathLike[str]], *, with_journal: bool = True) -> Damage:
    """Everything an interrupted sync can leave in the target whose ``sys.prefix`` is ``prefix``."""
    return Damage(journal=journal_mod.read(prefix) if with_journal else None,
                  stashes=tuple(stashes(site_packages)), broken=tuple(broken_distributions(site_packages)))
