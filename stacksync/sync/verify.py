"""The verify step: dependency check (from the probe, no pip process), twin check of the target against
the lock, smoke imports; one summary line, or :class:`SyncError` naming each difference."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name

from stacksync.core import console, defaults, faults
from stacksync.core.errors import SyncError
from stacksync.env.diff import Entry, compare, entry_from_installed, entry_from_pin
from stacksync.env.environment import Snapshot, probe
from stacksync.sync import repair, vcsphase
from stacksync.sync.smoke import explain_smoke, smoke
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
                req = Requirement(line)
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
    snapshot = snapshot or probe(state.python)
    problems = dependency_problems(snapshot)
    locked, target = _lock_entries(state), _target_entries(snapshot)
    twin = compare(locked, target)
    state.outcome.twin = twin
    # pip / setuptools / wheel are shown apart, but one the lock pins (setuptools via --allow-unsafe)
    # is an ordinary package: a wrong version of it fails the twin check.
    installer_off = [f"differs: {n}: lock {locked[n].key}, target {target[n].key if n in target else 'missing'}"
                     for n in sorted(set(locked) & defaults.INSTALLER_PACKAGES)
                     if n not in target or target[n].key != locked[n].key]
    failed: list[Mapping[str, Any]] = []
    modules: list[str] = []
    faults.point("inside:verify")
    if smoke:
        modules = state.profile.smoke_modules()
        # Imports that passed after this run's last change are not run twice.
        failed = [r for r in _smoke_all(state, [m for m in modules if m not in state.smoked]) if not r["ok"]]
    damaged = repair.verify_lines(snapshot, own_journal=state.journal is not None,
                                  known=state.damage if snapshot is state.snapshot else None)
    is_twin = twin.identical and not installer_off and not damaged
    twin_text = "twin of the lock" if is_twin else (
        f"NOT the lock's twin ({len(twin.only_in_a)} missing, {len(twin.only_in_b)} extra, "
        f"{len(twin.changed) + len(installer_off)} at another version"
        + (", damaged by an interrupted sync" if damaged else "") + ")")
    deps_text = "dependencies ok" if not problems else f"{len(problems)} dependency problem(s)"
    smoke_text = f"smoke {len(modules) - len(failed)}/{len(modules)} ok" if smoke else "smoke not run"
    installers = f"; installers (lock -> target): {'; '.join(twin.installers)}" if twin.installers else ""
    given = "; ".join(f"{n} {locked[n].key}" for n in state.profile.provided if n in locked)
    given = f"; provided by the machine: {given}" if given else ""
    line = (f"verify: {state.python}: {twin_text} {state.lock_file.path} "
            f"({twin.same} packages as locked), {deps_text}, {smoke_text}{installers}{given}")
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
    details += [f"dependency check: {p}" for p in problems] + damaged
    if failed:
        details.append(explain_smoke(state, "verify", failed))
    if not is_twin:
        details.append(f"fix: invoke sync --profile {state.profile.name}")
    raise SyncError("\n".join(details))


def _smoke_all(state: State, modules: Sequence[str]) -> list[dict[str, Any]]:
    return smoke(state.python, modules)
