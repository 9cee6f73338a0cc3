"""The twin check by artifact: is each installed distribution the very wheel the lock pins, not only
the same version? (another build of one version: a local rebuild, ``+cpu`` / ``+cu121`` labels stripped,
a wheel installed by hand.)

:func:`check` reads what :mod:`stacksync.env.artifacts` recorded at install time (one ``stat`` per
distribution while nothing changed behind stacksync's back), else the evidence there is
(``direct_url.json``'s hash, the locked wheel in the sync cache compared file by file), and sorts the
distributions installed at their locked version into: known to be a locked file, **another build**
(its sha256 is not one the lock lists for the pin, or its files differ from the locked wheel's),
**reinstalled outside stacksync** (the record no longer holds and nothing tells what was installed),
and unknown (never recorded: a target synced before stacksync recorded artifacts, or by another tool;
counted, not failed). :func:`mark_reinstall` turns the first two into forced reinstalls in a plan;
:func:`record_installed` writes the record after each install phase (:mod:`stacksync.sync.phases`,
:mod:`stacksync.sync.deferred`) and :func:`adopt` the entries the evidence confirmed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import InvalidWheelFilename, NormalizedName, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from stacksync.env import artifacts
from stacksync.env.artifacts import Artifact
from stacksync.env.distinfo import SiteReading
from stacksync.env.environment import Snapshot
from stacksync.env.tags import supported_tags, wheel_fits
from stacksync.lock.lockfile import Pin, file_sha256
from stacksync.sync.plan import Action, Plan

__all__ = ["Provenance", "check", "mark_reinstall", "record_installed", "adopt"]


@dataclass
class Provenance:
    """What :func:`check` found, per distribution installed at its locked version."""

    #: name -> sha256 of the installed wheel, where known
    known: dict[NormalizedName, str] = field(default_factory=dict)
    #: name -> why it is another build of the locked version (one phrase)
    other_build: dict[NormalizedName, str] = field(default_factory=dict)
    #: name -> why its artifact is not known since it was reinstalled outside stacksync
    outside: dict[NormalizedName, str] = field(default_factory=dict)
    #: never recorded, no evidence either way
    unknown: set[NormalizedName] = field(default_factory=set)
    #: entries the evidence confirmed, to be written by :func:`adopt`
    adoptable: dict[NormalizedName, Artifact] = field(default_factory=dict)

    def reinstall(self) -> dict[NormalizedName, str]:
        """name -> reason, for every distribution a sync must reinstall from the locked file."""
        return {**self.outside, **self.other_build}


def _sha256s(pin: Pin) -> set[str]:
    return {h.split(":", 1)[1].lower() for h in pin.hashes if h.startswith("sha256:")}


def _short(digest: str) -> str:
    return digest[:12]


def _wheel_index(cache: Path | None, snapshot: Snapshot) -> dict[NormalizedName, list[tuple[Path, Version]]]:
    """name -> the wheels of the sync cache the target can install (one listing, only off the common
    path: a locked wheel for another platform is no evidence either way)."""
    index: dict[NormalizedName, list[tuple[Path, Version]]] = {}
    if cache is None or not cache.is_dir():
        return index
    supported = frozenset(supported_tags(snapshot))
    for path in sorted(cache.glob("*.whl")):
        try:
            name, version, _, _ = parse_wheel_filename(path.name)
        except InvalidWheelFilename:
            continue
        if wheel_fits(path.name, supported):
            index.setdefault(name, []).append((path, version))
    return index


def _cached_locked_wheels(wheels: Mapping[NormalizedName, list[tuple[Path, Version]]],
                          pin: Pin) -> list[tuple[Path, str]]:
    """The sync cache's wheels of exactly ``pin`` whose sha256 the lock lists (hashed: only on the
    rare path where the record does not hold)."""
    if pin.version is None:
        return []
    try:
        want = Version(pin.version)
    except InvalidVersion:
        return []
    wanted = _sha256s(pin)
    out = []
    for path, version in wheels.get(pin.name, []):
        if version != want or str(version) != str(want):
            continue
        digest = file_sha256(path)
        if digest in wanted:
            out.append((path, digest))
    return out


def check(snapshot: Snapshot, pins: Mapping[NormalizedName, Pin], cache: Path | None, *,
          deferred: Mapping[NormalizedName, Pin] | None = None, reading: SiteReading | None = None) -> Provenance:
    """Sort the distributions of ``snapshot`` installed at exactly their pin's version (``pins``:
    hashed lock pins; others are the version check's business). While the record holds this costs one
    ``stat`` per distribution (none where ``reading``, the check's reading of site-packages, already
    took the RECORD's); otherwise ``direct_url.json``, then the locked wheels in ``cache``.
    ``deferred``: packages installed from a wheel built or chosen by key (their lock hashes are the
    sdist's): only a record that no longer holds counts, as a reinstall outside stacksync."""
    found = Provenance()
    recorded = artifacts.read(snapshot.prefix)
    for name, pin in (deferred or {}).items():
        dist, entry = snapshot.distributions.get(name), recorded.get(name)
        if dist is not None and entry is not None and dist.version == pin.key() and \
                not entry.holds(dist.location, reading):
            found.outside[name] = ("reinstalled outside stacksync since the last sync (its RECORD changed); "
                                   "the installed wheel is unknown")
    folders: dict[NormalizedName, tuple[str, str]] | None = None
    wheels: dict[NormalizedName, list[tuple[Path, Version]]] | None = None
    distributions = snapshot.distributions
    for name, pin in pins.items():
        dist = distributions.get(name)
        if dist is None or dist.version != pin.key() or not pin.hashes:
            continue
        entry = recorded.get(name)
        if entry is not None and entry.version == dist.version and entry.holds(dist.location, reading):
            # the common path: one stat, one lookup in the pin's hashes
            found.known[name] = entry.sha256
            if f"sha256:{entry.sha256}" not in pin.hashes and entry.sha256 not in _sha256s(pin):
                found.other_build[name] = (f"another build of {dist.version}: installed sha256 "
                                           f"{_short(entry.sha256)}..., the lock lists "
                                           + ", ".join(_short(h) + "..." for h in sorted(_sha256s(pin))))
            continue
        wanted = _sha256s(pin)
        if not wanted or dist.kind in ("vcs", "editable", "local-dir"):
            continue
        if folders is None or wheels is None:  # one listing each, and only off the common path
            folders, wheels = artifacts.dist_info_folders(snapshot.site_packages), _wheel_index(cache, snapshot)
        _evidence(found, snapshot, name, pin, wanted, wheels, folders.get(name), stale=entry is not None)
    return found


def _evidence(found: Provenance, snapshot: Snapshot, name: NormalizedName, pin: Pin, wanted: set[str],
              wheels: Mapping[NormalizedName, list[tuple[Path, Version]]], folder: tuple[str, str] | None, *,
              stale: bool) -> None:
    dist = snapshot.distributions[name]
    stat = artifacts.record_stat(os.path.join(*folder)) if folder is not None else None
    direct = artifacts.direct_url_sha256(dist.direct_url)
    if direct is not None:
        found.known[name] = direct
        if direct in wanted:
            if folder is not None and stat is not None:
                found.adoptable[name] = Artifact(dist.version, direct, folder[1], stat, "direct_url.json")
        else:
            found.other_build[name] = (f"another build of {dist.version}: installed from a file with sha256 "
                                       f"{_short(direct)}... (direct_url.json), the lock lists "
                                       + ", ".join(_short(h) + "..." for h in sorted(wanted)))
        return
    candidates = _cached_locked_wheels(wheels, pin) if folder is not None else []
    verdicts = [(path, digest, artifacts.same_files(os.path.join(*folder), path))
                for path, digest in candidates] if folder is not None else []
    match = next(((p, d) for p, d, same in verdicts if same), None)
    if match is not None and folder is not None and stat is not None:
        found.known[name] = match[1]
        found.adoptable[name] = Artifact(dist.version, match[1], folder[1], stat, "same files as the cached wheel")
        return
    if any(same is False for _, _, same in verdicts):
        shown = ", ".join(p.name for p, _, same in verdicts if same is False)
        found.other_build[name] = f"another build of {dist.version}: its files differ from the locked wheel {shown}"
        return
    if stale:
        found.outside[name] = ("reinstalled outside stacksync since the last sync (its RECORD changed); "
                               "the installed wheel is unknown")
    else:
        found.unknown.add(name)


def mark_reinstall(plan: Plan, provenance: Provenance) -> Plan:
    """The plan with every distribution :func:`check` found to be another build (or reinstalled outside
    stacksync) turned from keep into a forced reinstall of the locked file."""
    reasons = provenance.reinstall()
    if not reasons:
        return plan
    for phase_name, actions in plan.phases.items():
        plan.phases[phase_name] = [
            Action(a.phase, a.name, "reinstall", a.have, a.want, reasons[a.name])
            if a.name in reasons and a.kind == "keep" else a for a in actions]
    plan.unrecorded = tuple(n for n in plan.unrecorded if n not in reasons)
    return plan


def record_installed(snapshot: Snapshot, installed: Mapping[NormalizedName, tuple[str, str]], source: str) -> None:
    """After an install phase: record ``installed`` (name -> (version, sha256 of the wheel installed))
    with each one's dist-info and RECORD stat as they are now; entries of distributions no longer
    installed are dropped. A dist-info that cannot be found is left unrecorded (the next check then
    looks for evidence)."""
    folders = artifacts.dist_info_folders(snapshot.site_packages)
    entries: dict[NormalizedName, Artifact] = {}
    for name, (version, sha256) in installed.items():
        where = folders.get(name)
        stat = artifacts.record_stat(os.path.join(*where)) if where is not None else None
        if where is not None and stat is not None:
            entries[name] = Artifact(version, sha256, where[1], stat, source)
    try:
        artifacts.write(snapshot.prefix, entries, installed=folders)
    except OSError:
        return  # the record is an optimisation of the check: without it, evidence is looked for


def adopt(snapshot: Snapshot, provenance: Provenance, names: Iterable[NormalizedName] | None = None) -> None:
    """Write the entries :func:`check` confirmed by evidence, so that the next check is a ``stat``."""
    wanted = set(names) if names is not None else None
    entries = {n: a for n, a in provenance.adoptable.items() if wanted is None or n in wanted}
    if not entries:
        return
    try:
        artifacts.write(snapshot.prefix, entries)
    except OSError:
        return
