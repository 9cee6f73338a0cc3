"""The install phases before the deferred one: :func:`install_base` (the base packages and their locked
closure, binary only, hash-checked) and :func:`sync_rest` (pip-sync of the lock), each with its
forced reinstalls of same-version-other-build pins and its smoke imports."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from packaging.utils import NormalizedName

from stacksync.core import console, defaults
from stacksync.env.environment import probe
from stacksync.lock.lockfile import Pin
from stacksync.sync import provenance, sdists, vcsphase
from stacksync.sync.pinfile import write_requirements
from stacksync.sync.plan import Action
from stacksync.sync.smoke import smoke_phase
from stacksync.sync.state import State

__all__ = ["install_base", "sync_rest"]


def install_base(state: State) -> None:
    """The base packages with their locked dependency closure, hash-checked, binary only, offline from
    the cache (never ``--no-deps`` without the dependencies in the same file); then the base smoke."""
    changes = state.plan.changes("base")
    if not changes:
        return
    pins = [sdists.installable(state, state.lock[n]) for n in sorted(state.plan.base_names)]
    req = write_requirements(state.workdir / "base.txt", pins)
    state.smoked.clear()
    console.info(f"base: installing {', '.join(a.name for a in changes)}")
    state.backend.install(state.python, req, state.cache, stream=state.opts.verbose)
    _reinstall(state, [a for a in changes if a.kind == "reinstall"], "base")
    _record(state, changes)
    smoke_phase(state, "base")


def _reinstall(state: State, actions: Sequence[Action], phase: str) -> None:
    """Same version, other build (``+cpu`` vs ``+cu121``): pip and pip-sync both call it satisfied, so
    force it. Its dependencies are installed by the step before, so ``--no-deps`` is safe here."""
    if not actions:
        return
    req = write_requirements(state.workdir / f"{phase}-reinstall.txt",
                             [sdists.installable(state, state.lock[a.name]) for a in actions])
    state.backend.install(state.python, req, state.cache, no_deps=True, force_reinstall=True,
                          stream=state.opts.verbose)


def _record(state: State, changes: Sequence[Action]) -> None:
    """Which wheel each package this phase installed came from (the one the fetch confirmed), for the
    twin check by artifact (:mod:`stacksync.sync.provenance`)."""
    installed = {a.name: (state.lock[a.name].key(), state.fetched_sha256[a.name]) for a in changes
                 if a.kind != "remove" and a.name in state.fetched_sha256 and a.name in state.lock}
    provenance.record_installed(state.snapshot, installed, "fetch")


def _satisfied_deferred(state: State) -> list[Pin]:
    return [state.deferred.get(a.name) or state.lock[a.name] for a in state.plan.actions("deferred")
            if a.kind == "keep"]


def _in_own_site(state: State, name: NormalizedName) -> bool:
    dist = state.snapshot.distributions.get(name)
    location = dist.location if dist is not None else None
    return location is not None and any(Path(location) == Path(sp) for sp in state.snapshot.site_packages)


def sync_rest(state: State) -> None:
    """pip-sync of the lock (base included) plus the deferred packages already satisfied and the
    unlocked installers / build requirements in the target, so that pip-sync keeps them.

    A plan that removes nothing from the rest phase (a new venv, a package put back) installs the same
    hash-checked file instead: that is the one command pip-sync would run after finding nothing to
    uninstall, without starting pip-tools to find it out (~0.5 s). The twin check in verify holds
    both paths to the same result."""
    changes = state.plan.changes("rest")
    if not changes:
        return
    deferred_names = state.profile.deferred_names
    provided = state.profile.provided  # the machine's: never in a file pip installs from, kept by pip-sync
    main = [sdists.installable(state, p) for n, p in state.lock.items()
            if n not in deferred_names and n not in provided]
    lock_txt = write_requirements(state.workdir / "rest.txt", main)
    # A deferred package that locked packages require (a pure-Python sdist a user deferred) is not
    # installed before the deferred phase: the rest phase's resolver would miss it. The lock is the
    # whole closure, so its files are installed without resolving; verify's dependency check follows.
    awaited = _awaited_deferred(state)
    if awaited:
        console.info(f"rest: installing without resolving ({', '.join(awaited)} come(s) in the deferred phase)")
    removing = sum(a.kind == "remove" for a in changes)
    state.smoked.clear()
    if removing:
        keep_pins = _satisfied_deferred(state)
        installed = probe(state.python).versions()
        build_reqs = {n for d in state.profile.deferred for n in d.build_requires}
        unlocked = sorted(n for n in installed
                          if n not in state.lock and n not in deferred_names
                          and (n in defaults.INSTALLER_PACKAGES or n in build_reqs))
        # uv sees the venv's own site-packages only: a provided package elsewhere (the image's, through
        # --system-site-packages or a .pth) is out of its reach, and naming it would make uv install it
        seen = [n for n in provided if state.backend.name != "uv" or _in_own_site(state, n)]
        keep_txt = write_requirements(state.workdir / "keep.txt", keep_pins,
                                       [f"{n}=={installed[n]}" for n in [*unlocked, *seen] if n in installed]
                                       + vcsphase.keep_lines(state.snapshot, state.vcs))
        tool = "pip-sync" if state.backend.name == "pip-tools" else f"{state.backend.name} pip sync"
        console.info(f"rest: {tool} ({len(changes) - removing} to install or change, {removing} to remove)")
        state.backend.sync(state.python, [lock_txt, keep_txt], state.cache, no_deps=bool(awaited),
                           stream=state.opts.verbose)
    else:
        console.info(f"rest: installing {len(changes)} package(s) (nothing to remove)")
        # The file is the lock's whole closure, and fetch's dependency check (sync.fetch.check_dependencies)
        # refused any lock missing a dependency before anything changed: uv's resolution of the same
        # file only repeated it (~30 % of its user CPU at 800 packages, docs/benchmarks.md). Hashes and
        # the offline cache are checked as before. pip keeps resolving (not measured for pip).
        state.backend.install(state.python, lock_txt, state.cache, no_deps=bool(awaited) or state.backend.name == "uv",
                              stream=state.opts.verbose)
    _reinstall(state, [a for a in changes if a.kind == "reinstall"], "rest")
    _record(state, changes)
    smoke_phase(state, "rest")


def _awaited_deferred(state: State) -> list[str]:
    """Deferred packages that a locked package requires and the deferred phase still has to install."""
    todo = {a.name for a in state.plan.changes("deferred")}
    required = {child for children in state.wheel_deps.values() for child in children}
    out = []
    for name in sorted(todo):
        pin = state.deferred.get(name) or state.lock.get(name)
        via = pin.via if pin is not None else ()
        if name in required or any(not v.startswith("-r") and not v.startswith("-c") for v in via):
            out.append(str(name))
    return out
