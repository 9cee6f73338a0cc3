"""Crash consistency of a sync: find what an interrupted run left (:mod:`stacksync.env.damage`), make the
plan reinstall it, clear pip's debris before the first install, and keep the journal
(:mod:`stacksync.env.journal`) from the first change to the end of a run.

The sync steps call these at four points: :func:`detect` after the target is read (a damaged
target never takes the no-op path), :func:`mark_reinstall` on every plan
(:func:`stacksync.sync.prepare.build_plan`), :func:`begin` before the first change (journal written,
stashes and RECORD-less dist-infos removed), :func:`end` when the run ended well (journal removed).
:func:`verify_lines` is the twin check's part: an interrupted target is not the lock's twin, whatever
its versions say.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName

from stacksync.core import console, defaults
from stacksync.core.fs import atomic_write_text
from stacksync.env import journal
from stacksync.env.damage import Damage, scan
from stacksync.env.distinfo import SiteReading
from stacksync.env.environment import Snapshot
from stacksync.sync.plan import Action, Plan

__all__ = ["site_packages", "detect", "mark_reinstall", "clear_debris", "begin", "phase", "end", "verify_lines"]


def site_packages(snapshot: Snapshot) -> list[str]:
    """The target's site-packages folders, as its probe reported them."""
    return list(snapshot.site_packages)


def _memo_path(prefix: Path) -> Path:
    key = hashlib.sha256(os.fsencode(os.path.abspath(prefix))).hexdigest()[:24]
    return defaults.cache_dir() / "records" / f"{key}.json"


def memo_folders(prefix: Path) -> list[str]:
    """The folders the damage memo of ``prefix`` vouches for by their stat alone (each intact
    distribution's dist-info and the folders its RECORD's files live in): the no-op stamp
    (stacksync.sync.noopstamp) fingerprints them too."""
    try:
        memo = json.loads(_memo_path(prefix).read_text(encoding="utf-8"))
        return sorted({os.fspath(f) for dist, entry in memo.items() for f in (dist, *entry[2])})
    except (OSError, ValueError, TypeError, AttributeError, IndexError):
        return []


def _scan(snapshot: Snapshot, *, with_journal: bool = True, reading: SiteReading | None = None) -> Damage:
    """:func:`damage.scan` with the target's memo of intact distributions (``.stacksync-cache/records``):
    the no-op path then costs a few ``stat`` calls per distribution. A memo that cannot be read or
    written only makes the scan slower."""
    path = _memo_path(snapshot.prefix)
    try:
        before = path.read_text(encoding="utf-8")
        memo = json.loads(before)
        assert isinstance(memo, dict)
    except (OSError, ValueError, AssertionError):
        before, memo = "", {}
    found = scan(snapshot.prefix, site_packages(snapshot), with_journal=with_journal, memo=memo, reading=reading)
    after = json.dumps(memo, sort_keys=True)
    if after != before:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, after, fsync=False)  # a cache of RECORD reads
        except OSError:
            pass
    return found


def detect(snapshot: Snapshot, *, quiet: bool = False, repairs: bool = True) -> Damage:
    """What an interrupted sync left in the target (cheap: listings, RECORDs, stats). ``repairs``:
    this run goes on to change the target (a sync), so the warning may promise the repair; ``verify``,
    ``plan`` and ``--dry-run`` change nothing and say so."""
    found = _scan(snapshot)
    if found.found and not quiet:
        then = ("it is repaired before the sync goes on:" if repairs
                else "this run changes nothing; invoke sync repairs it:")
        console.warn(f"{snapshot.python}: target was interrupted (a sync or pip run was killed part-way); {then}")
        for line in found.lines():
            console.warn(f"  {line}")
    return found


def mark_reinstall(plan: Plan, damage: Damage) -> Plan:
    """The plan with every damaged package that it would keep turned into a forced reinstall (from the
    verified cache, the locked version, ``--force-reinstall``)."""
    names: dict[NormalizedName, str] = {b.name: b.describe() for b in damage.broken}
    if not names:
        return plan
    for phase_name, actions in plan.phases.items():
        plan.phases[phase_name] = [
            Action(a.phase, a.name, "reinstall", a.have, a.want, f"damaged: {names[a.name].split(': ', 1)[-1]}")
            if a.name in names and a.kind == "keep" else a
            for a in actions]
    plan.unrecorded = tuple(n for n in plan.unrecorded if n not in names)
    return plan


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def clear_debris(damage: Damage) -> list[str]:
    """Remove pip's stash entries (the old files of an uninstall that never committed) and the
    dist-infos without a RECORD (pip cannot uninstall them; the plan reinstalls the package).
    Returns one line per removal."""
    done = []
    for stash in damage.stashes:
        _remove(stash)
        done.append(f"removed stash {stash.name}")
    for broken in damage.broken:
        if not broken.has_record:
            _remove(broken.folder)
            done.append(f"removed {broken.folder.name} (no RECORD)")
    return done


def begin(prefix: Path, damage: Damage, *, plan: Mapping[str, Any], lock_sha256: str | None,
          deferred_sha256: str | None, profile: str, steps: list[str]) -> journal.Journal:
    """Before the first change: the journal, then the debris of an earlier run cleared."""
    data = journal.begin(prefix, plan=plan, lock_sha256=lock_sha256, deferred_sha256=deferred_sha256,
                         profile=profile, steps=steps)
    for line in clear_debris(damage):
        console.info(f"repair: {line}")
    return data


def phase(prefix: Path, data: journal.Journal | None, name: str) -> None:
    if data is not None:
        journal.phase(prefix, data, name)


def end(prefix: Path, data: journal.Journal | None) -> None:
    if data is not None:
        journal.finish(prefix)


def verify_lines(snapshot: Snapshot, *, own_journal: bool, known: Damage | None = None,
                 reading: SiteReading | None = None) -> list[str]:
    """Damage verify must report: files always; a journal unless this run wrote it. ``known``: what
    :func:`detect` found in this same reading of the target (the no-op path does not scan twice).
    ``reading``: verify's one reading of site-packages, shared with its other checks."""
    if known is not None and not own_journal:
        found = known
    else:
        found = _scan(snapshot, with_journal=not own_journal, reading=reading)
    lines = [f"interrupted: {line}" for line in found.lines()]
    if lines:
        lines.append(f"the target is damaged by an interrupted sync (fix: invoke sync --profile <name> "
                     f"repairs it; {os.path.basename(str(journal.path(snapshot.prefix)))} says which run)")
    return lines
