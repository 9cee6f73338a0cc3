"""Before anything changes: find or create the target and refuse the wrong one, lock it, probe it and plan
(:func:`prepare`, which prints the plan; ``--dry-run`` stops there), then doctor's pre-install checks and
the confirmation of removals / downgrades (:func:`preflight`)."""

from __future__ import annotations

import dataclasses
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from stacksync.backends.backend import get_backend, resolve_name
from stacksync.backends.base import Backend
from stacksync.core import console, defaults
from stacksync.core.errors import ProfileError, StacksyncError, SyncError, TargetError
from stacksync.core.redact import redact
from stacksync.env import hostview, probeshare, targetlock
from stacksync.env.damage import Damage
from stacksync.env.distinfo import SiteReading
from stacksync.env.environment import Snapshot, find_python, is_own_interpreter, probe
from stacksync.env.environment import snapshot as read_snapshot
from stacksync.env.tags import describe as describe_tags
from stacksync.lock import profile as profile_mod
from stacksync.lock import provided
from stacksync.lock.load import load_locks
from stacksync.lock.lockfile import Pin, RequirementsFile
from stacksync.lock.profile import Profile
from stacksync.lock.variants import platform_admits, platform_name
from stacksync.sync import provenance, repair, statefile, vcsphase
from stacksync.sync.deferred import check_writable, expected_sources, planned_keys, wheels_expected
from stacksync.sync.plan import Plan, make_plan, plan_document, with_rebuilds
from stacksync.sync.state import Options, Outcome, State

__all__ = ["prepare", "pick_variant", "variant_json", "build_plan", "check_artifacts", "preflight", "check_target",
           "create_venv", "scope_of"]


def scope_of(steps: Sequence[str]) -> list[str]:
    """The phases whose changes a run acts on (``fetch`` alone prepares all of them)."""
    acting = [s for s in ("base", "rest", "deferred", "vcs") if s in steps]
    return acting or (["base", "rest", "deferred"] if "fetch" in steps else [])


def prepare(opts: Options, steps: tuple[str, ...], outcome: Outcome, stack: ExitStack) -> State:
    """Profile, lock, target (created when it is the default / a missing --venv), checks that must hold
    *before anything is touched*, the target lock, the probe and the plan (printed)."""
    start = time.perf_counter()
    prof, why = pick_variant(opts, profile_mod.load(opts.profile, opts.locks_dir))
    lock_file, deferred_file = load_locks(prof, opts.lock, accept_foreign=opts.accept_foreign_lock)
    backend = get_backend(resolve_name(opts.backend, prof.backend))
    create = bool(scope_of(steps)) and not opts.dry_run
    rebuild = rebuild_names(prof, opts.rebuild)
    future = _missing_venv(opts) if not create else None
    if future is not None:
        # `plan` / `sync -n` of a venv that does not exist yet: planned against an empty environment
        # of the profile's Python (nothing is created, locked or changed).
        python = future / "bin" / "python"
        snapshot = empty_snapshot(python, _base_python(future, prof.python))
        check_target(prof, snapshot)
        damage = Damage()
    else:
        # absolute, not resolved: a venv's bin/python is a symlink to the base interpreter.
        new = create and _missing_venv(opts) is not None
        python = _target(opts, prof, backend, create=create).absolute()
        if is_own_interpreter(python):
            raise TargetError(f"{python}: is the interpreter running stacksync; syncing it would uninstall the "
                              f"tool from under itself (fix: pass --venv DIR or --python PY for another environment)")
        prefix = python.parent.parent
        if not (prefix / "pyvenv.cfg").exists():
            prefix = probe(python).prefix
        stack.enter_context(targetlock.hold(prefix, wait=opts.wait))
        statefile.check_local_files(prefix)  # a state file or journal stacksync did not write: one line
        # Read from site-packages when that is sure to equal the probe (the no-op path starts no
        # interpreter); every step that changes the target probes it for real afterwards.
        if new and _cuda_facts_likely(prof, lock_file):  # doctor's facts come with the first probe
            probeshare.run_probes(python, ["env", "cuda"])
        snapshot = read_snapshot(python)
        check_probe_against_disk(snapshot)
        check_target(prof, snapshot)
        # only a run that changes the target repairs it; verify, plan and --dry-run say so instead
        damage = repair.detect(snapshot, repairs=any(s in steps for s in ("base", "rest", "deferred", "vcs"))
                               and not opts.dry_run)
    env = snapshot.marker_environment
    lock = lock_file.for_environment(env)
    if prof.provided:  # the machine's own build stands in for the lock's pin (the build key reads it too)
        along = provided.brought_along(prof.provided, {n: d.requires for n, d in snapshot.distributions.items()},
                                       lock, env)
        prof = dataclasses.replace(prof, provided=(*prof.provided, *along)) if along else prof
        found = provided.check(prof, snapshot.versions(), str(python))
        lock = {**lock, **{n: Pin(n, f"{n}=={v}", 0, str(provided.provided_path(prof)), version=v)
                           for n, v in found.items()}}
    deferred = deferred_file.for_environment(env) if deferred_file is not None else {}
    _check_deferred_pins(prof, lock, deferred, lock_file, deferred_file)
    vcs_pins = vcsphase.load(prof, env)
    cache = (opts.cache_dir or defaults.cache_dir() / prof.name).absolute()
    files = check_artifacts(prof, lock, deferred, snapshot, cache)
    plan = build_plan(prof, lock, deferred, snapshot, cache, vcs_pins, damage, rebuild=rebuild, artifacts=files)
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="stacksync-sync-")))
    state = State(opts, prof, backend, python, lock_file, deferred_file, snapshot, lock, deferred, plan,
                  cache, workdir, steps, outcome, vcs=vcs_pins, damage=damage, provenance=files, variant_why=why)
    outcome.plan = plan
    outcome.timings["plan"] = round(time.perf_counter() - start, 3)
    planning = opts.dry_run or steps == ("plan",)
    if not planning and not [a for p in scope_of(steps) for a in plan.changes(p)] and not damage.found:
        return state  # the no-op path prints one line, not the plan
    sources = expected_sources(state) if planning and plan.changes("deferred") else {}
    if opts.json and planning:
        import json  # lazy: start-up cost

        doc = plan_document(plan, python=str(python), python_version=snapshot.version, profile=prof.name,
                            lock=str(lock_file.path), deferred_sources={str(k): v for k, v in sources.items()},
                            damaged=damage.found, variant=variant_json(prof, why))
        sys.stdout.write(redact(json.dumps(doc, indent=2, sort_keys=True)) + "\n")
        sys.stdout.flush()
        return state
    if not planning and console.quiet():  # -q: the plan of a run that acts is not printed
        return state
    # With --report - stdout carries the receipt alone: the plan text goes to stderr.
    err = opts.report == "-"
    console.result(f"target: {python} (Python {snapshot.version}"
                   + (", does not exist yet: planned against an empty environment" if future else "")
                   + f"), profile {prof.name!r}{f' variant {prof.variant}' if prof.variant else ''}, "
                   f"lock {lock_file.path}", err=err)
    if prof.variant:  # which build of each pin a fetch takes for this target (another platform's, maybe)
        console.result(f"platform: {describe_tags(snapshot)}", err=err)
    console.result(plan.render(), err=err)
    for name, how in sources.items():
        console.result(f"deferred source: {name}: {how}", err=err)
    if not planning:
        console.info(f"plan: done in {outcome.timings['plan']:.1f} s")  # as every phase ends
    return state


def variant_json(prof: Profile, why: str | None) -> dict[str, str] | None:
    """The chosen variant as plan --json and the receipt write it: ``{"name", "why", "lock_folder"}``;
    ``None`` for a profile without variants."""
    if prof.variant is None:
        return None
    return {"name": prof.variant, "why": why or "", "lock_folder": str(prof.locks_folder)}


def pick_variant(opts: Options, prof: Profile) -> tuple[Profile, str | None]:
    """A profile with ``[variants]``: the one the target machine's driver and platform pick (or
    ``--variant``), said on stderr, and the reason; a machine no variant fits is refused. A profile
    without variants comes back as it is, with no reason."""
    if not prof.variants:
        if opts.variant:
            raise StacksyncError(f"{prof.stack_toml}: profile {prof.name!r} has no [variants] "
                                 f"(fix: drop --variant {opts.variant})")
        return prof, None
    # lazy: start-up cost (only a profile with [variants] probes the machine's CUDA facts)
    from stacksync.cuda.facts import probe_facts
    from stacksync.cuda.variant import for_facts, platform_of

    # The driver belongs to the host: a target not made yet is probed through the running interpreter.
    venv = Path(opts.venv) if opts.venv else defaults.default_venv()
    where = find_python(opts.python) if opts.python else find_python(venv) if venv.is_dir() else Path(sys.executable)
    facts = probe_facts(where)
    chosen, choice = for_facts(prof, facts, opts.variant)
    console.info(f"variant {choice.name} of profile {prof.name!r}: {choice.why}")
    plat, machine = platform_of(facts)
    if not platform_admits(chosen.platforms, plat, machine):  # --variant of another platform: before any change
        raise TargetError(f"variant {choice.name} of profile {prof.name!r} is for {', '.join(chosen.platforms)}; "
                          f"this machine is {platform_name(plat, machine)} ({prof.stack_toml}: variants."
                          f"{choice.name}.platforms) (fix: run it on a {chosen.platforms[0]} machine, or leave out "
                          f"--variant to take the variant this machine fits)")
    return chosen, choice.why


def build_plan(prof: Profile, lock: Mapping[NormalizedName, Pin], deferred: Mapping[NormalizedName, Pin],
               snapshot: Snapshot, cache: Path, vcs_pins: Mapping[NormalizedName, Pin], damage: Damage, *,
               extra_deps: Mapping[NormalizedName, Iterable[NormalizedName]] | None = None,
               rebuild: Iterable[NormalizedName] = (), artifacts: provenance.Provenance | None = None) -> Plan:
    """The one way a sync plans: :func:`~stacksync.sync.plan.make_plan` (with the deferred packages'
    build keys), the VCS phase added, damaged packages and other builds of a locked version
    (``artifacts``, from :func:`check_artifacts`) turned into forced reinstalls, the deferred packages
    of ``rebuild`` (``--rebuild``) rebuilt. ``extra_deps``: the fetched wheels' Requires-Dist edges,
    when :func:`~stacksync.sync.fetch.fetch` re-plans."""
    plan = make_plan(prof, lock, deferred, snapshot, extra_deps=extra_deps,
                     build_keys=planned_keys(prof, lock, deferred, snapshot, cache))
    plan = with_rebuilds(plan, rebuild)
    plan = repair.mark_reinstall(vcsphase.adjust_plan(plan, vcs_pins, snapshot, prof.vcs_checkouts), damage)
    return provenance.mark_reinstall(plan, artifacts) if artifacts is not None else plan


def check_artifacts(prof: Profile, lock: Mapping[NormalizedName, Pin], deferred: Mapping[NormalizedName, Pin],
                    snapshot: Snapshot, cache: Path, reading: SiteReading | None = None) -> provenance.Provenance:
    """:func:`stacksync.sync.provenance.check` of the target against the lock: the main pins by their
    hashes, the deferred ones (built or chosen by key) by their record only (``reading``: verify's)."""
    names = prof.deferred_names
    main = {n: p for n, p in lock.items() if n not in names}
    deferred_pins = {**{n: p for n, p in lock.items() if n in names}, **deferred}
    return provenance.check(snapshot, main, cache, deferred=deferred_pins, reading=reading)


def rebuild_names(prof: Profile, names: Iterable[str]) -> tuple[NormalizedName, ...]:
    """``--rebuild`` names, each a deferred package of ``prof``; anything else is one line."""
    out = []
    for name in names:
        canon = canonicalize_name(name)
        if canon not in prof.deferred_names:
            known = ", ".join(sorted(prof.deferred_names)) or "none"
            raise ProfileError(prof.stack_toml, "", f"--rebuild {name}: not a deferred package of profile "
                               f"{prof.name!r} (its deferred packages: {known})", "name one of them")
        out.append(canon)
    return tuple(out)


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
    venv = Path(opts.venv) if opts.venv else defaults.default_venv()
    if venv.exists() and not venv.is_dir():
        raise TargetError(f"{venv}: is a file, not a venv folder (fix: pass --venv a folder, or --python "
                          "for an interpreter)")
    if venv.exists():
        return find_python(venv)
    if not create:
        raise TargetError(f"{venv}: no such venv (fix: invoke sync creates it, or pass --venv/--python)")
    create_venv(venv, prof.python, backend)
    return find_python(venv)


def _missing_venv(opts: Options) -> Path | None:
    """The ``--venv`` (or default venv) folder when it does not exist yet; ``None`` otherwise."""
    if opts.python:
        return None
    venv = Path(opts.venv) if opts.venv else defaults.default_venv()
    return None if venv.exists() else venv.absolute()


def _base_python(venv: Path, python_xy: str | None) -> str:
    """The interpreter a venv with the profile's Python is made from (``python3.X`` on PATH)."""
    exe: str | None
    if python_xy is None or f"{sys.version_info[0]}.{sys.version_info[1]}" == python_xy:
        exe = shutil.which(f"python{python_xy}") if python_xy else None
        exe = exe or sys.executable
    else:
        exe = shutil.which(f"python{python_xy}")
    if exe is None:
        raise TargetError(f"{venv}: cannot create it: no python{python_xy} on PATH "
                          f"(fix: install Python {python_xy}, or pass --venv/--python for an existing one)")
    return exe


def empty_snapshot(python: Path, base: str) -> Snapshot:
    """What a new venv at ``python`` made from ``base`` would probe as: ``base``'s interpreter facts,
    nothing installed (the plan shows every pin as an install)."""
    seen = probe(base)
    facts = dict(seen.raw.get("python") or {})
    facts.update(prefix=str(python.parent.parent), site_packages=[])
    return dataclasses.replace(seen, python=python, distributions={}, state={}, pip_version=None,
                               raw={**seen.raw, "python": facts, "distributions": []})


def create_venv(venv: Path, python_xy: str | None, backend: Backend) -> None:
    """A new venv at ``venv`` with the profile's Python, made by the backend (``python3.X -m venv``,
    which seeds pip, for pip-tools; ``uv venv`` for uv)."""
    exe = _base_python(venv, python_xy)
    console.info(f"creating {venv} with {exe} ({backend.name})")
    backend.create_venv(venv, exe)


def check_probe_against_disk(snapshot: Snapshot) -> None:
    """The target's answer (the probe runs inside it) against its site-packages read on the host: a
    difference stops the sync, which is then never "already in sync" (start-up code may be faking it)."""
    prefix = hostview.venv_prefix(snapshot.python)
    view = hostview.read(prefix) if prefix is not None else None
    if view is None:
        return
    differ = hostview.disagreements(view, hostview.probed_inside(view, snapshot.distributions),
                                     snapshot.state)
    if differ:
        code = hostview.startup_code(view.dirs).unexplained
        raise TargetError(f"{snapshot.python}: its interpreter's answer differs from its site-packages read on "
                          f"disk ({'; '.join(differ[:5])}{'; ...' if len(differ) > 5 else ''}); start-up code "
                          f"can fake the answer: {'; '.join(code) or 'none found in site-packages'} (fix: remove "
                          "the code that runs at start-up, then invoke sync)")


def check_target(prof: Profile, snapshot: Snapshot) -> None:
    """The target must run the profile's Python X.Y on one of its platforms: checked before any change."""
    if prof.python and snapshot.python_xy != prof.python:
        raise TargetError(f"{snapshot.python}: runs Python {snapshot.version}, but profile {prof.name!r} is locked "
                          f"for Python {prof.python} ({prof.stack_toml}: python) (fix: create the target with "
                          f"python{prof.python} -m venv DIR, or compile a profile for Python {snapshot.python_xy})")
    platform = snapshot.marker_environment.get("sys_platform", "")
    machine = snapshot.marker_environment.get("platform_machine", "")
    if not platform_admits(prof.platforms, platform, machine):
        shown = platform_name(platform, machine) if any("_" in p for p in prof.platforms) else platform
        key = f"variants.{prof.variant}.platforms" if prof.variant else "platforms"
        raise TargetError(f"{snapshot.python}: platform {shown} is not one of profile {prof.name!r}"
                          f"{f' variant {prof.variant!r}' if prof.variant else ''}'s "
                          f"({', '.join(prof.platforms)}) ({prof.stack_toml}: {key}) "
                          f"(fix: use a profile compiled for {shown})")


def _cuda_facts_likely(prof: Profile, lock_file: RequirementsFile) -> bool:
    """Before the first probe of a new venv: whether :func:`preflight` will ask ``probe.py cuda``, judged
    on every pin of the lock whatever its marker and on any deferred package (so rather yes: a wrong
    yes costs the cuda half, a wrong no one more process in preflight)."""
    from stacksync.cuda.facts import preinstall_wants_facts

    return preinstall_wants_facts(prof, lock_file.names(), building=bool(prof.deferred))


def preflight(state: State) -> None:
    """doctor's pre-install checks (errors stop the sync unless ``--force``), then the confirmation of
    a plan that removes or downgrades packages."""
    from stacksync.cuda.checks import preinstall_findings
    from stacksync.cuda.facts import preinstall_wants_facts, probe_facts

    pip = state.snapshot.pip_version
    needs_pip = bool(getattr(state.backend, "needs_target_pip", True))  # uv installs into a pip-less venv
    if needs_pip and (pip is None or _version_tuple(pip) < (22, 2)):
        found = f"pip {pip}" if pip else "no pip"
        raise TargetError(f"{state.python}: has {found}; installs and pip-sync need pip >= 22.2 in the target "
                          f"(fix: {state.python} -m ensurepip --upgrade, or create it with `uv venv --seed`)")
    # Build checks only for what this run builds: the deferred packages its plan installs or rebuilds
    # (a re-sync that keeps them builds nothing and needs no nvcc).
    building = ({a.name for a in state.plan.changes("deferred") if a.kind != "remove"}
                if "deferred" in scope_of(state.steps) else set())
    # A lock that needs no CUDA, pins no manylinux wheel and builds nothing: the facts of probe.py cuda
    # give "ok" lines only, which are not printed, and doctor's nvcc-on-PATH warning, which matters only
    # to a build (the same errors without starting the probe's cuda half; doctor still asks it).
    wanted = preinstall_wants_facts(state.profile, state.lock, building=bool(building))
    facts = probe_facts(state.python) if wanted else None
    findings = preinstall_findings(state.profile, state.snapshot, facts, lock=state.lock_file,
                                   have_wheels=wheels_expected(state) if building else (), to_build=building)
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
    destructive = [a for a in state.plan.destructive if a.phase in scope_of(state.steps)]
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


def _version_tuple(text: str) -> tuple[int, ...]:
    try:
        return Version(text).release
    except InvalidVersion:
        return ()
