"""Damage a killed install leaves in a target, found by reading its site-packages (no process, no
hashing: a listing per folder, the RECORD files).

What counts, and why:

* a leftover journal (:mod:`stacksync.env.journal`): a sync stopped part-way;
* pip's stash entries: ``~``-prefixed folders / files beside the originals (``~orch_like``,
  ``~orch_like-2.3.0.dist-info``), which pip's uninstall moves the old files to and removes only when
  the whole install or uninstall commits. pip itself ignores ``~`` dist-infos ("incompletely removed
  distribution"), and so do the probe and :mod:`stacksync.env.sitepackages`: they are not installed
  packages, they are debris;
* a ``*.dist-info`` (written by pip or uv, or with no INSTALLER yet) with no RECORD (an install killed
  before pip wrote it: pip then cannot uninstall it either), or whose RECORD lists files that do not
  exist (a stash that moved them away, a partial write). Byte-code (``.pyc``, ``__pycache__``) is left
  out: it is derived, users delete it, and virtualenv's seeder records ``__pycache__`` folders it
  never writes. Existence is read from one listing per folder, not one ``stat`` per file; a
  distribution found intact is remembered (the caller keeps the memo) and checked again with a
  ``stat`` of its RECORD and of its folders, whose mtimes change when a file in them is removed.
  A RECORD row that leads outside the environment's prefix (``..``, an absolute path elsewhere, a
  folder symlinked out: :mod:`stacksync.env.confine`) is not looked at here (no folder outside is
  listed); ``invoke verify --files`` reports it. RECORD, METADATA and INSTALLER are read only when
  they are regular files (a FIFO there would block the read).

Everything here is pure reading; :mod:`stacksync.sync.repair` acts on what it finds.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName, canonicalize_name

from stacksync.env import journal as journal_mod
from stacksync.env.confine import Confine, scheme_base
from stacksync.env.distinfo import SiteReading, dist_info_folders, read_file, read_installer, read_name_version

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

    journal: journal_mod.Journal | None = None
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


def stashes(dirs: Iterable[str | os.PathLike[str]], reading: SiteReading | None = None) -> list[Path]:
    """pip's ``~``-prefixed stash entries in ``dirs`` (listed by ``reading`` when given)."""
    found: list[Path] = []
    for entry in dirs:
        try:
            names = sorted(reading.listdir(entry) if reading is not None else os.listdir(entry))
        except OSError:
            continue
        found += [Path(entry, n) for n in names if n.startswith("~")]
    return found


def _name_version(folder: str) -> tuple[NormalizedName, str]:
    """From METADATA (as importlib.metadata reads it), else from the folder name."""
    stem = os.path.basename(folder)[: -len(".dist-info")]
    name, _, version = stem.partition("-")
    return read_name_version(folder) or (canonicalize_name(name), version)


def _missing_files(folder: str, location: str, listings: dict[str, frozenset[str]],
                   used: set[str], confine: Confine, reading: SiteReading | None = None) -> tuple[str, ...] | None:
    """Files RECORD lists that do not exist (``None``: no RECORD). Each folder is listed once
    (``listings``, shared by the scan): a torch wheel's 15k files live in ~1k folders. ``used``
    collects the folders this RECORD's files live in. A row with ``..`` or an absolute path (scripts:
    ``../../../bin/x``) is resolved by ``confine`` and skipped when it leads outside the prefix.
    ``reading``: the RECORD is read by it (once for all of verify's checks)."""
    text = reading.record(folder) if reading is not None else read_file(folder, "RECORD")
    if text is None:
        return None
    # What the rows can hold, asked once of the whole text: most RECORDs have no quoted row, no
    # byte-code and no path leaving site-packages, and their rows then skip those tests.
    quoted = '"' in text
    bytecode = ".pyc" in text or ".pyo" in text or "__pycache__" in text
    outer = quoted or ".." in text or text.startswith("/") or "\n/" in text or not _newline_lines(text)
    missing = []
    sub_seen: str | None = None  # rows come grouped by folder: look a folder up once per group
    names: frozenset[str] = frozenset()
    for line in text.splitlines():
        # path,hash,size: csv quotes a path only when it holds a comma or a quote
        if quoted and line.startswith('"'):
            try:
                rel = next(csv.reader([line]))[0]
            except (csv.Error, StopIteration, IndexError):
                continue
        else:
            rel = line.partition(",")[0]
        if not rel or bytecode and (rel.endswith((".pyc", ".pyo")) or "__pycache__" in rel):
            continue  # byte-code and its folders (virtualenv's seeder records them unwritten)
        if not outer or rel[0] != "/" and ".." not in rel:  # the common case, in plain string operations
            sub, _, base = rel.rpartition("/")
            if sub != sub_seen:
                sub_seen = sub
                head = f"{location}/{sub}" if sub else location
                used.add(head)
                names = _listing(head, listings)
        else:
            place = confine.place(location, rel)
            if place is None:
                continue  # outside the environment: never listed (verify --files reports it)
            sub_seen = None
            head, base = os.path.split(place)
            used.add(head)
            names = _listing(head, listings)
        if base not in names:
            missing.append(rel)
    return tuple(missing)


def _newline_lines(text: str) -> bool:
    """Whether ``text.splitlines()`` splits at ``\n`` only (no other line break it knows)."""
    return text.isascii() and "\x0b" not in text and "\x0c" not in text and "\x1c" not in text \
        and "\x1d" not in text and "\x1e" not in text


def _listing(head: str, listings: dict[str, frozenset[str]]) -> frozenset[str]:
    names = listings.get(head)
    if names is None:
        try:
            names = frozenset(os.listdir(head))
        except OSError:
            names = frozenset()
        listings[head] = names
    return names


#: installers whose half-done work this module judges; a dist-info conda (or another tool) wrote is
#: that tool's business, and removing it would break the tool's own records
INSTALLERS = frozenset({"pip", "uv"})


def _ours(folder: str) -> bool:
    """Installed by pip / uv, or by nothing yet: pip writes INSTALLER after the files, just before
    RECORD, so a cut-short install may have neither."""
    installer = read_installer(folder)
    return not installer or installer in INSTALLERS


#: dist-info folder -> [RECORD mtime_ns, RECORD size, {folder: mtime_ns}] of a distribution found
#: intact: while none of these changed, no file was added to, removed from or renamed in its folders
Memo = dict[str, list[Any]]
#: a folder changed this close to the check is not memoized (a change within the file system's
#: timestamp resolution could go unseen: git's "racy" rule)
_RACY_NS = 2_000_000_000


def _memo_holds(folder: str, entry: Any, reading: SiteReading | None = None) -> bool:
    try:
        st = os.stat(os.path.join(folder, "RECORD"))
        if reading is not None:
            reading.keep_record_stamp(folder, st)
        if [st.st_mtime_ns, st.st_size] != list(entry[:2]):
            return False
        return all(os.stat(d).st_mtime_ns == m for d, m in entry[2].items())
    except (OSError, TypeError, ValueError, IndexError, AttributeError):
        return False


def _memo_entry(folder: str, used: set[str], st: os.stat_result | None = None) -> list[Any] | None:
    """The memo of a distribution found intact, or ``None`` when one of its stamps is too recent
    (checked as they are read: a distribution just installed stops at its RECORD's stamp). ``st``:
    the RECORD's ``fstat`` when it was read (the stamp of the very bytes checked), else a ``stat``."""
    limit = time.time_ns() - _RACY_NS
    try:
        if st is None:
            st = os.stat(os.path.join(folder, "RECORD"))
        if st.st_mtime_ns > limit:
            return None
        stamps = {}
        for d in sorted(used):
            stamps[d] = os.stat(d).st_mtime_ns
            if stamps[d] > limit:
                return None
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_size, stamps]


def broken_distributions(dirs: Sequence[str | os.PathLike[str]], memo: Memo | None = None,
                         reading: SiteReading | None = None) -> list[Broken]:
    """Every ``*.dist-info`` in ``dirs`` (not the ``~`` stashes) with no RECORD or missing files.
    With ``memo`` (updated in place), a distribution found intact before is checked with a few
    ``stat`` calls (its RECORD and the folders its files live in) instead of listing them again.
    ``reading``: the listing of ``dirs`` and the RECORDs come from it, and the RECORD stamps this
    check took are kept in it."""
    out: list[Broken] = []
    listings: dict[str, frozenset[str]] = {}
    confines: dict[str, Confine] = {}
    seen: set[str] = set()
    for location, folder in dist_info_folders(dirs, stashes=False, reading=reading):
        seen.add(folder)
        if memo is not None and folder in memo and _memo_holds(folder, memo[folder], reading):
            continue
        used: set[str] = set()
        if location not in confines:
            confines[location] = Confine(scheme_base(location))
        missing = _missing_files(folder, location, listings, used, confines[location], reading)
        if memo is not None:
            remembered = None
            if missing is not None and not missing:
                remembered = _memo_entry(folder, used, reading.record_stamp(folder) if reading is not None else None)
            if remembered is None:
                memo.pop(folder, None)
            else:
                memo[folder] = remembered
        if (missing is not None and not missing) or not _ours(folder):
            continue
        name, version = _name_version(folder)
        out.append(Broken(name, version, Path(folder), missing is not None, missing or ()))
    if memo is not None:
        for gone in set(memo) - seen:
            del memo[gone]
    return out


def scan(prefix: Path, site_packages: Sequence[str | os.PathLike[str]], *, with_journal: bool = True,
         memo: Memo | None = None, reading: SiteReading | None = None) -> Damage:
    """Everything an interrupted sync can leave in the target whose ``sys.prefix`` is ``prefix``
    (``reading``: see :func:`broken_distributions`)."""
    return Damage(journal=journal_mod.read(prefix) if with_journal else None,
                  stashes=tuple(stashes(site_packages, reading)),
                  broken=tuple(broken_distributions(site_packages, memo, reading)))
