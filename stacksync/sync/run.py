"""``invoke sync``: make a target environment the exact twin of a profile's lock, in phases.

Plain functions chained in order (nox's workflow style), each also usable alone:

1. :func:`prepare`     find or create the target, refuse the wrong one, lock it, probe it, plan
                        (:mod:`stacksync.sync.plan`, pure). ``--dry-run`` stops after printing the plan.
2. :func:`preflight`   doctor's pre-install checks and the confirmation of removals / downgrades.
3. :func:`fetch`       download and hash-verify every artifact the plan needs into the cache *before
                        anything is uninstalled*; every later install runs offline from it.
4. :func:`install_base` base packages and their locked dependencies, binary only, hash-checked; smoke.
5. :func:`sync_rest`   pip-sync of the lock plus the deferred packages already satisfied (a hashed
                        install when nothing is removed); smoke of the phases so far.
6. :func:`install_deferred` build what is not satisfied, without build isolation; record what it was
                        built against in ``<prefix>/stacksync-state.json``; smoke (:mod:`stacksync.sync.deferred`).
7. :func:`verify`      dependency check, twin check, smoke imports; one summary line; JSON receipt.

A synced target re-plans to nothing: :func:`run` then prints "already in sync" and starts no pip
process at all (the probe and the lock decide). The backend (``stacksync.backends.backend``) builds every pip /
pip-sync command; this module decides what to run and in which order.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.tags import Tag
from packaging.utils import (
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from stacksync.backends.backend import Backend, get_backend, resolve_name
from stacksync.core import console, defaults, faults
from stacksync.core.errors import CommandFailed, FetchError, IndexUnavailable, StacksyncError, SyncError, TargetError
from stacksync.core.redact import redact
from stacksync.env import targetlock
from stacksync.env.diff import Entry, compare, entry_from_installed, entry_from_pin
from stacksync.env.environment import Snapshot, find_python, is_own_interpreter, probe
from stacksync.env.environment import snapshot as read_snapshot
from stacksync.lock import profile as profile_mod
from stacksync.lock.load import load_locks
from stacksync.lock.lockfile import Pin, RequirementsFile, file_sha256
from stacksync.lock.profile import Profile
from stacksync.sync import repair, vcsphase
from stacksync.sync.deferred import (
    STATE_FILE,
    _adopt_unrecorded,
    check_writable,
    choose_sources,
    expected_sources,
    install_deferred,
    planned_keys,
    wheels_expected,
    write_state,
)
from stacksync.sync.deferred import (
    records as deferred_records,
)
from stacksync.sync.pinfile import write_requirements
from stacksync.sync.plan import Action, deps_from_requires, make_plan
from stacksync.sync.smoke import explain_smoke, smoke, smoke_phase
from stacksync.sync.state import STEPS, Options, Outcome, State

__all__ = ["Options", "Outcome", "STEPS", "run", "prepare", "preflight", "fetch", "install_base", "sync_rest",
           "install_deferred", "verify", "dependency_problems", "write_state", "STATE_FILE"]

# Steps in the order `sync` runs them; each task runs a prefix-free subset. "vcs": the VCS pins at a
# commit (vcs.txt), after the rest (stacksync.sync.vcsphase).
_INSTALL_KINDS = ("install", "upgrade", "downgrade", "reinstall")


# ------------------------------------------------------------------------------------------- entry point

def run(opts: Options, steps: Sequence[str] = STEPS) -> Outcome:
    """Run ``steps`` (a subset of :data:`STEPS`, in that order) against the target of ``opts``.
    ``plan`` is always done; ``--dry-run`` stops after it. Raises :class:`StacksyncError` subclasses."""
    unknown = set(steps) - set(STEPS)
    if unknown:
        raise StacksyncError(f"unknown sync step(s) {', '.join(sorted(unknown))} (fix: use {', '.join(STEPS)})")
    outcome = Outcome()
    started = _dt.datetime.now(_dt.timezone.utc)
    holder: list[State] = []
    with ExitStack() as stack:
        try:
            holder.append(prepare(opts, tuple(s for s in STEPS if s in steps or s == "plan"), outcome, stack))
            _drive(holder[0])
        except StacksyncError as exc:
            outcome.verdict = "failed"
            outcome.summary = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if opts.report:
                _write_receipt(opts, outcome, holder[0] if holder else None, started, error=str(exc))
            raise
        if opts.report:
            _write_receipt(opts, outcome, holder[0], started)
    return outcome


def _scope(steps: Sequence[str]) -> list[str]:
    """The phases whose changes a run acts on (``fetch`` alone prepares all of them)."""
    acting = [s for s in ("base", "rest", "deferred", "vcs") if s in steps]
    return acting or (["base", "rest", "deferred"] if "fetch" in steps else [])


def _drive(state: State) -> None:
    opts, plan, outcome, steps = state.opts, state.plan, state.outcome, state.steps
    acting = [s for s in ("base", "rest", "deferred", "vcs") if s in steps]
    pending = [a for s in _scope(steps) for a in plan.changes(s)]
    if opts.dry_run or steps == ("plan",):
        outcome.verdict, outcome.summary = "planned", f"plan: {plan.summary()}"
        return
    if not pending and not (state.damage.found and _scope(steps)):
        # The no-op path: no pip, no doctor; what the probe and the lock say is enough (and the
        # damage check found nothing an interrupted run left).
        if "deferred" in acting:
            _adopt_unrecorded(state)
        if _scope(steps):
            outcome.verdict = "in-sync"
            scope = _scope(steps)
            what = "" if len(scope) >= 3 else f"{' and '.join(scope)} phase{'s' if len(scope) > 1 else ''} "
            outcome.summary = (f"{state.python}: {what}already in sync with {state.lock_file.path} "
                               f"({len(state.lock) + len(state.deferred) + len(state.vcs)} packages); nothing to do")
            console.info(outcome.summary)
        if "verify" in steps and not _scope(steps):
            _timed(state, "verify", lambda: verify(state, smoke=True))
        elif "verify" in steps:
            # A re-sync: the twin and dependency checks come from the probe already taken; the smoke
            # imports (seconds for torch) are `invoke verify`'s job, not the no-op path's.
            _timed(state, "verify", lambda: verify(state, smoke=False, snapshot=state.snapshot, quiet=True))
        return
    _timed(state, "preflight", lambda: preflight(state))
    _timed(state, "fetch", lambda: fetch(state))
    if acting:  # the first change: journal first, then the debris of an interrupted run cleared
        state.journal = repair.begin(state.snapshot.prefix, state.damage, plan=state.plan.to_json(),
                                     lock_sha256=_file_sha256(state.lock_file.path), profile=state.profile.name,
                                     deferred_sha256=_file_sha256(state.deferred_file.path if state.deferred_file
                                                                  else None), steps=list(steps))
    if "base" in steps:
        _timed(state, "base", lambda: install_base(state))
    if "rest" in steps:
        _timed(state, "rest", lambda: sync_rest(state))
    if "deferred" in steps:
        _timed(state, "deferred", lambda: install_deferred(state))
    if "vcs" in steps:
        _timed(state, "vcs", lambda: vcsphase.install(state, state.vcs))
    outcome.verdict = "synced" if acting else "fetched"
    outcome.summary = f"{state.python}: {outcome.verdict} ({plan.summary()})"
    if "verify" in steps:
        _timed(state, "verify", lambda: verify(state, smoke=True))
    else:
        console.info(outcome.summary)
    faults.point("after:verify")
    repair.end(state.snapshot.prefix, state.journal)


def _timed(state: State, name: str, step: Callable[[], object]) -> None:
    faults.point(f"before:{name}")
    repair.phase(state.snapshot.prefix, state.journal, name)
    start = time.perf_counter()
    try:
        step()
    finally:
        state.outcome.timings[name] = round(time.perf_counter() - start, 3)


# ---------------------------------------------------------------------------------------------- prepare

def prepare(opts: Options, steps: tuple[str, ...], outcome: Outcome, stack: ExitStack) -> State:
    """Profile, lock, target (created when it is the default / a missing --venv), checks that must hold
    *before anything is touched*, the target lock, the probe and the plan (printed)."""
    start = time.perf_counter()
    prof = profile_mod.load(opts.profile, opts.locks_dir)
    lock_file, deferred_file = load_locks(prof, opts.lock, accept_foreign=opts.accept_foreign_lock)
    backend = get_backend(resolve_name(opts.backend, prof.backend))
    # absolute, not resolved: a venv's bin/python is a symlink to the base interpreter.
    python = _target(opts, prof, backend, create=bool(_scope(steps)) and not opts.dry_run).absolute()
    if is_own_interpreter(python):
        raise TargetError(f"{python}: is the interpreter running stacksync; syncing it would uninstall the tool "
                          f"from under itself (fix: pass --venv DIR or --python PY for another environment)")
    prefix = python.parent.parent
    if not (prefix / "pyvenv.cfg").exists():
        prefix = probe(python).prefix
    stack.enter_context(targetlock.hold(prefix, wait=opts.wait))
    # Read from site-packages when that is sure to equal the probe (the no-op path starts no
    # interpreter); every step that changes the target probes it for real afterwards.
    snapshot = read_snapshot(python)
    check_target(prof, snapshot)
    damage = repair.detect(snapshot)
    env = snapshot.marker_environment
    lock = lock_file.for_environment(env)
    deferred = deferred_file.for_environment(env) if deferred_file is not None else {}
    _check_deferred_pins(prof, lock, deferred, lock_file, deferred_file)
    vcs_pins = vcsphase.load(prof, env)
    cache = (opts.cache_dir or defaults.CACHE_DIR / prof.name).absolute()
    plan = repair.mark_reinstall(vcsphase.adjust_plan(
        make_plan(prof, lock, deferred, snapshot, build_keys=planned_keys(prof, lock, deferred, snapshot, cache)),
        vcs_pins, snapshot, prof.vcs_checkouts), damage)
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="stacksync-sync-")))
    state = State(opts, prof, backend, python, lock_file, deferred_file, snapshot, lock, deferred, plan,
                  cache, workdir, steps, outcome, vcs=vcs_pins, damage=damage)
    outcome.plan = plan
    outcome.timings["plan"] = round(time.perf_counter() - start, 3)
    planning = opts.dry_run or steps == ("plan",)
    if not planning and not [a for p in _scope(steps) for a in plan.changes(p)] and not damage.found:
        return state  # the no-op path prints one line, not the plan
    console.out.print(f"target: {python} (Python {snapshot.version}), profile {prof.name!r}, "
                      f"lock {lock_file.path}", markup=False)
    console.out.print(plan.render(), markup=False)
    if planning and plan.changes("deferred"):
        for name, how in expected_sources(state).items():
            console.out.print(f"deferred source: {name}: {how}", markup=False)
    return state


def _check_deferred_pins(prof: Profile, lock: Mapping[NormalizedName, Pin], deferred: Mapping[NormalizedName, Pin],
                         lock_file: RequirementsFile, deferred_file: RequirementsFile | None) -> None:
    for d in prof.deferred:
        in_any = d.name in lock or d.name in deferred
        pinned_somewhere = bool(lock_file.get(d.name)) or bool(deferred_file and deferred_file.get(d.name))
        if not in_any and not pinned_somewhere:
            raise StacksyncError(f"{prof.deferred_path}: deferred package {d.name} has no pin "
                                 f"(fix: invoke compile --profile {prof.name})")


def _target(opts: Options, prof: Profile, backend: Backend, *, create: bool) -> Path:
    if opts.python and opts.venv:
        raise TargetError("give --python or --venv, not both (fix: drop one of them)")
    if opts.python:
        return find_python(opts.python)
    venv = Path(opts.venv) if opts.venv else defaults.DEFAULT_VENV
    if venv.exists() and not venv.is_dir():
        raise TargetError(f"{venv}: is a file, not a venv folder (fix: pass --venv a folder, or --python "
                          "for an interpreter)")
    if venv.exists():
        return find_python(venv)
    if not create:
        raise TargetError(f"{venv}: no such venv (fix: invoke sync creates it, or pass --venv/--python)")
    create_venv(venv, prof.python, backend)
    return find_python(venv)


def create_venv(venv: Path, python_xy: str | None, backend: Backend) -> None:
    """A new venv at ``venv`` with the profile's Python, made by the backend (``python3.X -m venv``,
    which seeds pip, for pip-tools; ``uv venv`` for uv)."""
    exe: str | None
    if python_xy is None or f"{sys.version_info[0]}.{sys.version_info[1]}" == python_xy:
        exe = shutil.which(f"python{python_xy}") if python_xy else None
        exe = exe or sys.executable
    else:
        exe = shutil.which(f"python{python_xy}")
    if exe is None:
        raise TargetError(f"{venv}: cannot create it: no python{python_xy} on PATH "
                          f"(fix: install Python {python_xy}, or pass --venv/--python for an existing one)")
    console.info(f"creating {venv} with {exe} ({backend.name})")
    backend.create_venv(venv, exe)


def check_target(prof: Profile, snapshot: Snapshot) -> None:
    """The target must run the profile's Python X.Y on one of its platforms: checked before any change."""
    if prof.python and snapshot.python_xy != prof.python:
        raise TargetError(f"{snapshot.python}: runs Python {snapshot.version}, but profile {prof.name!r} is locked "
                          f"for Python {prof.python} ({prof.stack_toml}: python) (fix: create the target with "
                          f"python{prof.python} -m venv DIR, or compile a profile for Python {snapshot.python_xy})")
    platform = snapshot.marker_environment.get("sys_platform", "")
    if prof.platforms and platform not in prof.platforms:
        raise TargetError(f"{snapshot.python}: platform {platform} is not one of profile {prof.name!r}'s "
                          f"({', '.join(prof.platforms)}) ({prof.stack_toml}: platforms) "
                          f"(fix: use a profile compiled for {platform})")


# -------------------------------------------------------------------------------------------- preflight

def preflight(state: State) -> None:
    """doctor's pre-install checks (errors stop the sync unless ``--force``), then the confirmation of
    a plan that removes or downgrades packages."""
    from stacksync.cuda import doctor

    pip = state.snapshot.pip_version
    needs_pip = bool(getattr(state.backend, "needs_target_pip", True))  # uv installs into a pip-less venv
    if needs_pip and (pip is None or _version_tuple(pip) < (22, 2)):
        found = f"pip {pip}" if pip else "no pip"
        raise TargetError(f"{state.python}: has {found}; installs and pip-sync need pip >= 22.2 in the target "
                          f"(fix: {state.python} -m ensurepip --upgrade, or create it with `uv venv --seed`)")
    facts = doctor.probe_facts(state.python)
    findings = doctor.preinstall_findings(state.profile, state.snapshot, facts, lock=state.lock_file,
                                          have_wheels=wheels_expected(state))
    errors = [f for f in findings if f.level == "error"]
    check_writable(state)  # a built wheel must have somewhere to go before the target changes
    for f in findings:
        if f.level == "warning":
            console.warn(f"doctor: {f.message}" + (f" (fix: {f.fix})" if f.fix else ""))
    if errors and not state.opts.force:
        lines = [f"doctor: {f.message}" + (f" (fix: {f.fix})" if f.fix else "") for f in errors]
        lines.append("sync stopped before changing anything (fix: resolve the above, or pass --force)")
        raise SyncError("\n".join(lines))
    for f in errors:
        console.warn(f"doctor (ignored with --force): {f.message}")
    destructive = [a for a in state.plan.destructive if a.phase in _scope(state.steps)]
    if destructive:
        what = ", ".join(f"{a.kind} {a.name} {a.have}" + (f" -> {a.want}" if a.want else "") for a in destructive)
        question = f"{state.python}: the plan will {what}"
        if state.opts.yes:
            return
        if state.opts.confirm is not None:
            if state.opts.confirm(question + ". Go on?"):
                return
            raise SyncError(f"{question}: not confirmed; nothing changed")
        raise SyncError(f"{question}; not confirmed, nothing changed (fix: check it with --dry-run, then pass --yes)")


# ------------------------------------------------------------------------------------------------ fetch

def _version_tuple(text: str) -> tuple[int, ...]:
    try:
        return Version(text).release
    except InvalidVersion:
        return ()


def _needed(state: State, phases: Iterable[str]) -> list[Pin]:
    return [state.lock[a.name] for p in phases for a in state.plan.changes(p)
            if a.kind in _INSTALL_KINDS and p != "deferred"]


def fetch(state: State) -> None:
    """Download every wheel the plan's base / rest changes need (target's pip, so tags match; binary
    only; hash-checked) and the deferred sdists (by URL, sha256 checked) into the cache. Nothing in
    the target changes here, so any failure leaves it exactly as it was."""
    if state.fetched:
        return
    scope = _scope(state.steps)
    need = _needed(state, [p for p in scope if p not in ("deferred", "vcs")])  # vcs: cloned at install
    state.cache.mkdir(parents=True, exist_ok=True)
    index = state.profile.index.expanded(source=str(state.profile.stack_toml))
    # A wheel already in the cache with a hash the lock lists and tags the target takes is not asked
    # for again (pip download would query the index for each one). Each file is hashed once per run
    # (GBs for a CUDA stack); the installer checks the hashes again as it installs.
    found = {p.name: _cached_wheel(state.cache, p, state.snapshot) for p in need}
    missing = [p for p in need if found[p.name] is None]
    if missing:
        req = write_requirements(state.workdir / "fetch.txt", missing)
        console.info(f"fetching {len(missing)} wheel(s) into {state.cache}"
                     + (f" ({len(need) - len(missing)} already there)" if len(need) > len(missing) else ""))
        try:
            state.backend.download(state.python, req, state.cache, index.pip_args())
        except CommandFailed as exc:
            raise _fetch_error(exc, state.lock_file.path, missing, index) from None
        found.update({p.name: _cached_wheel(state.cache, p, state.snapshot) or _cached_any(state.cache, p)
                      for p in missing})
    elif need:
        console.info(f"all {len(need)} wheel(s) already in {state.cache}")
    if need:
        _confirm_cache(state, need, found)
    if "deferred" in scope:
        choose_sources(state)  # the wheel (prebuilt, wheelhouse, team index) or the sdist to build
    state.fetched = True
    # Confirm the base closure from the wheels' own metadata; a dependency the `# via` comments missed
    # moves into the base phase.
    if state.wheel_deps:
        replanned = repair.mark_reinstall(vcsphase.adjust_plan(
            make_plan(state.profile, state.lock, state.deferred, state.snapshot, extra_deps=state.wheel_deps,
                      build_keys=planned_keys(state.profile, state.lock, state.deferred, state.snapshot, state.cache)),
            state.vcs, state.snapshot, state.profile.vcs_checkouts), state.damage)
        if replanned.base_names != state.plan.base_names:
            moved = sorted(replanned.base_names - state.plan.base_names)
            if moved:
                console.info(f"base phase also takes {', '.join(moved)} (from the wheels' Requires-Dist)")
            state.plan = replanned
            state.outcome.plan = replanned


_MANYLINUX_LEGACY = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def _takes(tag: Tag, snapshot: Snapshot) -> bool:
    """Whether the target can install a wheel with ``tag`` (CPython / pure wheels; glibc for manylinux).
    A wrong "no" only costs a pip download, which decides with pip's own tag list."""
    env = snapshot.marker_environment
    xy = snapshot.python_xy.replace(".", "")
    if tag.interpreter.startswith("py"):
        ok_interp = tag.interpreter in ("py3", f"py{xy}", "py2.py3") or tag.interpreter == "py" + xy[0]
    else:
        ok_interp = tag.interpreter == f"cp{xy}" or (tag.abi == "abi3" and tag.interpreter.startswith("cp3")
                                                    and int(tag.interpreter[3:] or 0) <= int(xy[1:]))
    ok_abi = tag.abi in ("none", "abi3", f"cp{xy}")
    if tag.platform == "any":
        return ok_interp and ok_abi
    machine = env.get("platform_machine", "")
    if env.get("sys_platform") != "linux" or not tag.platform.endswith(machine):
        return False
    glibc = str(snapshot.platform.get("glibc") or "")
    legacy = next((v for k, v in _MANYLINUX_LEGACY.items() if tag.platform.startswith(k + "_")), None)
    parts = tag.platform.split("_")
    need = legacy or ((int(parts[1]), int(parts[2])) if tag.platform.startswith("manylinux_") else None)
    if need is None or not glibc:
        return False
    have = tuple(int(x) for x in glibc.split(".")[:2])
    return ok_interp and ok_abi and have >= need


def _cached_wheel(cache: Path, pin: Pin, snapshot: Snapshot) -> Path | None:
    """A wheel of exactly ``pin`` (local version included) in ``cache`` whose sha256 the lock lists and
    that the target can install; only those files are hashed."""
    if pin.version is None or not cache.is_dir():
        return None
    try:
        want = Version(pin.version)
    except InvalidVersion:
        return None
    for path in sorted(cache.glob("*.whl")):
        try:
            name, version, _, tags = parse_wheel_filename(path.name)
        except InvalidWheelFilename:
            continue
        if name != pin.name or version != want or str(version) != str(want):
            continue
        if any(_takes(t, snapshot) for t in tags) and f"sha256:{file_sha256(path)}" in pin.hashes:
            return path
    return None


def _cached_any(cache: Path, pin: Pin) -> Path | None:
    """Any file of ``pin`` in ``cache`` (wheel or sdist) whose sha256 the lock lists."""
    for path in sorted(cache.iterdir()) if cache.is_dir() else []:
        if path.name.startswith(".") or not path.is_file():
            continue
        if canonicalize_name(path.name.split("-", 1)[0]) != pin.name:
            continue
        if f"sha256:{file_sha256(path)}" in pin.hashes:
            return path
    return None


def _confirm_cache(state: State, need: Sequence[Pin], found: Mapping[NormalizedName, Path | None]) -> None:
    """Every needed pin has a file in the cache (``found``) whose sha256 the lock lists; read its
    Requires-Dist."""
    env = state.snapshot.marker_environment
    for pin in need:
        path = found.get(pin.name)
        if path is None:
            raise FetchError(f"{pin.where}: {pin.name}=={pin.version}: no downloaded file matches the lock's hashes "
                             f"(fix: check the index, then invoke compile --profile <name> again)")
        if path.suffix == ".whl":
            requires = _wheel_requires(path)
            if requires is not None:
                state.wheel_deps.update(deps_from_requires({pin.name: requires}, env))


def _wheel_requires(path: Path) -> list[str] | None:
    import zipfile  # here, not at the top: the no-op path never needs them
    from email.parser import Parser

    try:
        name, version, _, _ = parse_wheel_filename(path.name)
        with zipfile.ZipFile(path) as zf:
            meta = next((n for n in zf.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1), None)
            if meta is None:
                return None
            text = zf.read(meta).decode("utf-8", errors="replace")
    except (InvalidWheelFilename, zipfile.BadZipFile, OSError, KeyError):
        return None
    return Parser().parsestr(text, headersonly=True).get_all("Requires-Dist") or []


def _fetch_error(exc: CommandFailed, lock_path: Path, need: Sequence[Pin],
                 index: profile_mod.IndexConfig) -> FetchError:
    """pip download's failure as one line: unreachable index, credentials, hash mismatch, missing version.
    pip reports an unreachable index (with ``--retries 0``) or refused credentials as "no matching
    distribution": the index is asked directly to tell them apart."""
    out = exc.output
    low = out.lower()
    tail = "nothing was installed or removed"
    if "do not match the hashes" in low:
        detail = _mismatch_detail(out)
        return FetchError(f"{lock_path}: hash mismatch while downloading{detail}; {tail} (fix: the index serves "
                          "a different file than the lock was made from: check the index, then invoke compile again)")
    if "401" in out and ("unauthorized" in low or "401 client error" in low or "http error 401" in low):
        return FetchError(f"{lock_path}: the index refused the credentials (HTTP 401); {tail} (fix: export the "
                          "variables the profile's index_url references)")
    if "403" in out and "forbidden" in low:
        return FetchError(f"{lock_path}: the index forbids access (HTTP 403); {tail} (fix: check the token)")
    if any(s in low for s in ("connection refused", "newconnectionerror", "max retries exceeded",
                              "failed to establish", "name or service not known", "timed out")):
        return FetchError(f"{lock_path}: the index is unreachable; {tail} (fix: check the network and the "
                          "index URL, then run the sync again)")
    for line in out.splitlines():
        if "no matching distribution found for" in line.lower():
            what = line.split("for", 1)[1].strip()
            pin = next((p for p in need if what.startswith(f"{p.name}==") or
                        canonicalize_name(what.split("=")[0]) == p.name), None)
            where = pin.where if pin else str(lock_path)
            if pin is not None:
                from stacksync.backends import indexapi

                try:
                    indexapi.project_files(index, pin.name)
                except IndexUnavailable as unavailable:
                    return FetchError(f"{where}: cannot download {what}: {unavailable}; {tail}")
            return FetchError(f"{where}: {what} is not on the index (no wheel of that version); {tail} "
                              "(fix: pin a version the index serves, then invoke compile again)")
    return FetchError(f"{lock_path}: downloading the lock's wheels failed: {exc}; {tail}")


def _mismatch_detail(out: str) -> str:
    lines = [ln.strip() for ln in out.splitlines()]
    for i, line in enumerate(lines):
        if line.startswith("Expected sha256") and i > 0:
            got = next((ln for ln in lines[i + 1:i + 3] if ln.startswith("Got")), "")
            return f" of {lines[i - 1].split(' from ')[0]} ({line}; {got})"
    return ""


# ----------------------------------------------------------------------------------------- the phases

def install_base(state: State) -> None:
    """The base packages with their locked dependency closure, hash-checked, binary only, offline from
    the cache (never ``--no-deps`` without the dependencies in the same file); then the base smoke."""
    changes = state.plan.changes("base")
    if not changes:
        return
    pins = [state.lock[n] for n in sorted(state.plan.base_names)]
    req = write_requirements(state.workdir / "base.txt", pins)
    state.smoked.clear()
    console.info(f"base: installing {', '.join(a.name for a in changes)}")
    state.backend.install(state.python, req, state.cache, stream=state.opts.verbose)
    _reinstall(state, [a for a in changes if a.kind == "reinstall"], "base")
    smoke_phase(state, "base")


def _reinstall(state: State, actions: Sequence[Action], phase: str) -> None:
    """Same version, other build (``+cpu`` vs ``+cu121``): pip and pip-sync both call it satisfied, so
    force it. Its dependencies are installed by the step before, so ``--no-deps`` is safe here."""
    if not actions:
        return
    req = write_requirements(state.workdir / f"{phase}-reinstall.txt", [state.lock[a.name] for a in actions])
    state.backend.install(state.python, req, state.cache, no_deps=True, force_reinstall=True,
                          stream=state.opts.verbose)


def _satisfied_deferred(state: State) -> list[Pin]:
    return [state.deferred.get(a.name) or state.lock[a.name] for a in state.plan.actions("deferred")
            if a.kind == "keep"]


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
    main = [p for n, p in state.lock.items() if n not in deferred_names]
    lock_txt = write_requirements(state.workdir / "rest.txt", main)
    removing = sum(a.kind == "remove" for a in changes)
    state.smoked.clear()
    if removing:
        keep_pins = _satisfied_deferred(state)
        installed = probe(state.python).versions()
        build_reqs = {n for d in state.profile.deferred for n in d.build_requires}
        unlocked = sorted(n for n in installed
                          if n not in state.lock and n not in deferred_names
                          and (n in defaults.INSTALLER_PACKAGES or n in build_reqs))
        keep_txt = write_requirements(state.workdir / "keep.txt", keep_pins,
                                       [f"{n}=={installed[n]}" for n in unlocked]
                                       + vcsphase.keep_lines(state.snapshot, state.vcs))
        tool = "pip-sync" if state.backend.name == "pip-tools" else f"{state.backend.name} pip sync"
        console.info(f"rest: {tool} ({len(changes) - removing} to install or change, {removing} to remove)")
        state.backend.sync(state.python, [lock_txt, keep_txt], state.cache, stream=state.opts.verbose)
    else:
        console.info(f"rest: installing {len(changes)} package(s) (nothing to remove)")
        state.backend.install(state.python, lock_txt, state.cache, stream=state.opts.verbose)
    _reinstall(state, [a for a in changes if a.kind == "reinstall"], "rest")
    smoke_phase(state, "rest")


# ----------------------------------------------------------------------------------------------- verify

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
    line = (f"verify: {state.python}: {twin_text} {state.lock_file.path} "
            f"({twin.same} packages as locked), {deps_text}, {smoke_text}{installers}")
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


# ---------------------------------------------------------------------------------------------- receipt

def _file_sha256(path: Path | None) -> str | None:
    return file_sha256(path) if path is not None and path.is_file() else None


def _manifest_entry(python: Path) -> dict[str, Any] | None:
    """The target's file-level manifest digest (:mod:`stacksync.env.manifest`): two runs compare by one hash."""
    from stacksync.env.manifest import receipt_entry

    try:
        return receipt_entry(python)
    except (StacksyncError, OSError) as exc:
        return {"digest": None, "error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}


def _write_receipt(opts: Options, outcome: Outcome, state: State | None, started: _dt.datetime, *,
                   error: str | None = None) -> None:
    """The JSON receipt of ``--report FILE``; every string redacted."""
    receipt: dict[str, Any] = {
        "stacksync_receipt": 1,
        "node": socket.gethostname(),  # invoke fleet-report's row name
        "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "finished": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "profile": opts.profile,
        "verdict": outcome.verdict,
        "summary": outcome.summary,
        "timings_s": outcome.timings,
    }
    if error is not None:
        receipt["error"] = error
    if state is not None:
        receipt.update({
            "profile": state.profile.name,
            "lock": {"path": str(state.lock_file.path), "sha256": _file_sha256(state.lock_file.path),
                     "deferred_path": str(state.deferred_file.path) if state.deferred_file else None,
                     "deferred_sha256": _file_sha256(state.deferred_file.path if state.deferred_file else None)},
            "target": {"python": str(state.python), "version": state.snapshot.version,
                       "prefix": str(state.snapshot.prefix), "pip": state.snapshot.pip_version,
                       "platform": dict(state.snapshot.platform)},
            "backend": {"name": state.backend.name, "versions": state.backend.versions()},
            "plan": {**state.plan.to_json(),
                     "deferred_sources": {n: s.to_json() for n, s in sorted(state.deferred_sources.items())}},
            "twin": outcome.twin.to_json("lock", "target") if outcome.twin is not None else None,
            "manifest": _manifest_entry(state.python),
            "deferred": deferred_records(state.snapshot.prefix),
        })
    elif outcome.plan is not None:
        receipt["plan"] = outcome.plan.to_json()
    outcome.receipt = receipt
    path = Path(opts.report or "")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(redact(json.dumps(receipt, indent=2, sort_keys=True)) + "\n", encoding="utf-8")

