"""The verify step: dependency check (from the probe, no pip process), twin check of the target against
the lock, smoke imports; one summary line, or :class:`SyncError` naming each difference."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from packaging.requirements import InvalidRequirement
from packaging.utils import NormalizedName, canonicalize_name

from stacksync.core import console, defaults, faults
from stacksync.core.errors import SyncError
from stacksync.env import hostview
from stacksync.env.diff import Entry, compare, entry_from_installed, entry_from_pin
from stacksync.env.distinfo import SiteReading
from stacksync.env.environment import Snapshot
from stacksync.lock.reqshape import requirement
from stacksync.sync import repair, vcsphase
from stacksync.sync.prepare import check_artifacts
from stacksync.sync.smoke import explain_smoke, skipped_modules, smoke_and_probe
from stacksync.sync.state import State

__all__ = ["verify", "dependency_problems"]


def dependency_problems(snapshot: Snapshot) -> list[str]:
    """What ``pip check`` reports, computed from the probe (no pip process): each installed
    distribution's Requires-Dist (markers evaluated for the target, no extras) must be installed at a
    version its specifier admits."""
    env = {**snapshot.marker_environment, "extra": ""}
    installed = snapshot.versions()
    problems = []
    for name in sorted(snapshot.distributions):
        dist = snapshot.distributions[name]
        for line in dist.requires:
            try:
                req = requirement(line)
                if req.marker is not None and not req.marker.evaluate(env):
                    continue
            except (InvalidRequirement, ValueError):
                continue
            dep = canonicalize_name(req.name)
            have = installed.get(dep)
            if have is None:
                problems.append(f"{name} {dist.version} requires {req.name}, which is not installed")
            elif req.specifier and not req.specifier.contains(have, prereleases=True):
                problems.append(f"{name} {dist.version} has requirement {req}, but {have} is installed")
    return problems


def _lock_entries(state: State) -> dict[NormalizedName, Entry]:
    pins = {**state.lock, **state.deferred}
    entries = {n: entry_from_pin(p) for n, p in pins.items()}
    return {**entries, **vcsphase.lock_entries(state.vcs)}  # VCS pins: compared by commit


def _target_entries(snapshot: Snapshot) -> dict[NormalizedName, Entry]:
    return {n: entry_from_installed(d) for n, d in snapshot.distributions.items()}


def verify(state: State, *, smoke: bool = True, snapshot: Snapshot | None = None, quiet: bool = False) -> None:
    """Dependency check, twin check (freeze == lock for the target's markers; pip / setuptools / wheel
    shown apart) and the smoke imports of every phase; one summary line. Raises :class:`SyncError`
    when any of them fails."""
    failed: list[Mapping[str, Any]] = []
    modules: list[str] = []
    skipped: dict[str, str] = {}
    if smoke:
        skipped = skipped_modules(state)
        modules = [m for m in state.profile.smoke_modules() if m not in skipped]
    # Imports that passed after this run's last change are not run twice; the others share one
    # process with the probe (none at all when an earlier probe of this run can be reused).
    todo = [m for m in modules if m not in state.smoked]
    results, probed = smoke_and_probe(state.python, todo, env=snapshot is None)
    snapshot = snapshot or probed
    assert snapshot is not None
    failed = [r for r in results if not r["ok"]]
    problems = dependency_problems(snapshot)
    locked, target = _lock_entries(state), _target_entries(snapshot)
    twin = compare(locked, target)
    state.outcome.twin = twin
    # pip / setuptools / wheel are shown apart, but one the lock pins (setuptools via --allow-unsafe)
    # is an ordinary package: a wrong version of it fails the twin check.
    installer_off = [f"differs: {n}: lock {locked[n].key}, target {target[n].key if n in target else 'missing'}"
                     for n in sorted(set(locked) & defaults.INSTALLER_PACKAGES)
                     if n not in target or target[n].key != locked[n].key]
    faults.point("inside:verify")
    # One reading of site-packages for the checks below: each folder listed once, each RECORD read
    # once, its stamp kept for the artifact record's check (taken now: nothing of an earlier phase's).
    reading = SiteReading()
    damaged = repair.verify_lines(snapshot, own_journal=state.journal is not None,
                                  known=state.damage if snapshot is state.snapshot else None, reading=reading)
    # Same version is not yet the same file: which artifact each one came from (a stat each).
    found = state.provenance if snapshot is state.snapshot else check_artifacts(
        state.profile, state.lock, state.deferred, snapshot, state.cache, reading)
    builds = found.reinstall()
    # (the snapshot prepare took was checked against the files there; the build records may have
    # been written since, by the no-op path's adoption)
    disk, startup = _host_check(state, snapshot, reading, compare=snapshot is not state.snapshot, quiet=quiet)
    is_twin = twin.identical and not installer_off and not damaged and not disk and not startup and not builds
    twin_text = "twin of the lock" if is_twin else (
        f"NOT the lock's twin ({len(twin.only_in_a)} missing, {len(twin.only_in_b)} extra, "
        f"{len(twin.changed) + len(installer_off)} at another version"
        + (f", {len(builds)} at the locked version but another build" if builds else "")
        + (", damaged by an interrupted sync" if damaged else "")
        + (", its interpreter's answer differs from its files" if disk else "")
        + (f", {len(startup)} piece(s) of start-up code" if startup else "") + ")")
    deps_text = "dependencies ok" if not problems else f"{len(problems)} dependency problem(s)"
    smoke_text = f"smoke {len(modules) - len(failed)}/{len(modules)} ok" if smoke else "smoke not run"
    if smoke and skipped:
        smoke_text += f" ({', '.join(sorted(skipped))} not imported: CUDA part not built)"
    installers = f"; installers (lock -> target): {'; '.join(twin.installers)}" if twin.installers else ""
    shown = ", ".join(sorted(found.unknown)[:3]) + (", ..." if len(found.unknown) > 3 else "")
    unknown = (f"; {len(found.unknown)} compared by version only (not installed by stacksync: {shown})"
               if found.unknown else "")
    given = "; ".join(f"{n} {locked[n].key}" for n in state.profile.provided if n in locked)
    given = f"; provided by the machine: {given}" if given else ""
    line = (f"verify: {state.python}: {twin_text} {state.lock_file.path} "
            f"({twin.same} packages as locked), {deps_text}, {smoke_text}{installers}{given}{unknown}")
    if is_twin and not problems and not failed:
        if state.outcome.verdict == "not-run":
            state.outcome.verdict = "verified"
        if not quiet:
            state.outcome.summary = line
            console.info(line)
        return
    details = [line]
    details += [f"only in the lock: {e.name}=={e.key}" for e in twin.only_in_a]
    details += [f"only in the target: {e.name}=={e.key}" for e in twin.only_in_b]
    details += [f"differs: {c.name}: lock {c.a}, target {c.b}" for c in twin.changed] + installer_off
    details += [f"differs: {n}: {why}" for n, why in sorted(builds.items())]
    details += [f"dependency check: {p}" for p in problems] + damaged
    details += [f"differs on disk: {line}" for line in disk]
    details += [f"start-up code: {line} (fix: remove it; it runs in every process of the target and can fake "
                "what stacksync reads)" for line in startup]
    if failed:
        details.append(explain_smoke(state, "verify", failed))
    if not is_twin:
        details.append(f"fix: invoke sync --profile {state.profile.name}")
    raise SyncError("\n".join(details))


def _host_check(state: State, snapshot: Snapshot, reading: SiteReading, *, compare: bool,
                quiet: bool) -> tuple[list[str], list[str]]:
    """The target's site-packages read on the host (no target code runs) against the probe's answer
    (with ``compare``), and the start-up code found there (findings; known pieces listed as info
    unless ``quiet``)."""
    prefix = hostview.venv_prefix(state.python)
    dirs = hostview.venv_site_dirs(prefix) if prefix is not None else None
    if dirs is None:
        return [], []
    view = hostview.read(prefix, reading) if prefix is not None and compare else None
    disk = hostview.disagreements(view, hostview.probed_inside(view, snapshot.distributions),
                                   snapshot.state) if view is not None else []
    code = hostview.startup_code(dirs, reading)
    for line in [] if quiet else code.known:
        console.info(f"verify: start-up code (known): {line}")
    return disk, code.unexplained
