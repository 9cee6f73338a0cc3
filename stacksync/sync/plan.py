"""The sync plan: what each phase must do to make a target the twin of a lock. Pure, no I/O.

Inputs are data: the lock's pins (``requirements.txt`` and ``deferred.txt``, already marker-evaluated for
the target), the profile (base and deferred packages), and the target's :class:`Snapshot`. The output is
a :class:`Plan`: per phase (``base``, ``rest``, ``deferred``) one :class:`Action` per package, with the
exact version strings compared (``2.4.0+cu121`` is not ``2.4.0``: pip and pip-sync both treat them as
the same, so a ``reinstall`` action is kept apart and forced).

- base: the profile's base packages plus their locked dependency closure (from pip-compile's ``# via``
  comments, confirmed from the wheels' ``Requires-Dist`` after fetch).
- rest: every other locked package; packages in the target that the lock does not name are removed,
  except pip / setuptools / wheel when the lock does not pin them (shown apart, never removed), and the
  build requirements of deferred packages.
- deferred: satisfied when installed at the pinned version *and* the build record in the target
  (``stacksync-state.json``) says it was built against the base versions the lock pins now.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from packaging.requirements import InvalidRequirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from stacksync.build.buildkey import differences
from stacksync.core.defaults import INSTALLER_PACKAGES
from stacksync.env.environment import Snapshot
from stacksync.lock.load import deps_from_via
from stacksync.lock.lockfile import Pin
from stacksync.lock.profile import PHASES, Profile
from stacksync.lock.reqshape import requirement

__all__ = ["Action", "Plan", "Kind", "PHASES", "PLAN_JSON_SCHEMA", "base_closure", "base_names", "deps_from_requires",
           "make_plan", "plan_document", "version_change"]

Kind = Literal["install", "upgrade", "downgrade", "reinstall", "remove", "keep"]
STATE_KEY = "deferred"
#: the phases of a plan: the profile's, then the VCS pins at a commit (stacksync.sync.vcsphase), when any
PLAN_PHASES = (*PHASES, "vcs")


@dataclass(frozen=True)
class Action:
    """One package in one phase. ``have`` is the installed version (``None``: not installed), ``want``
    the locked one (``None``: remove)."""

    phase: str
    name: NormalizedName
    kind: Kind
    have: str | None = None
    want: str | None = None
    reason: str = ""

    @property
    def changes(self) -> bool:
        return self.kind != "keep"

    def describe(self) -> str:
        arrow = {"install": f"{self.want}", "remove": f"{self.have}", "keep": f"{self.want}"}
        text = arrow.get(self.kind, f"{self.have} -> {self.want}")
        return f"{self.kind:<9} {self.name} {text}" + (f" ({self.reason})" if self.reason else "")

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "action": self.kind, "installed": self.have, "locked": self.want,
                "reason": self.reason}


@dataclass
class Plan:
    """Per-phase actions, plus what is shown apart (installer packages the lock does not pin)."""

    phases: dict[str, list[Action]] = field(default_factory=lambda: {p: [] for p in PHASES})
    installers: list[str] = field(default_factory=list)
    base_names: frozenset[NormalizedName] = frozenset()
    #: deferred packages already satisfied whose build record is missing (adopted: recorded, not rebuilt)
    unrecorded: tuple[NormalizedName, ...] = ()
    #: "name version" of the packages the machine provides (kept, never installed or removed)
    provided: list[str] = field(default_factory=list)

    def actions(self, phase: str | None = None) -> list[Action]:
        if phase is not None:
            return list(self.phases.get(phase, []))
        return [a for p in PLAN_PHASES for a in self.phases.get(p, [])]

    def changes(self, phase: str | None = None) -> list[Action]:
        return [a for a in self.actions(phase) if a.changes]

    @property
    def empty(self) -> bool:
        """Nothing to install, remove or rebuild: the target already is the lock's twin."""
        return not self.changes()

    @property
    def destructive(self) -> list[Action]:
        """Actions a user should confirm: removals and downgrades."""
        return [a for a in self.changes() if a.kind in ("remove", "downgrade")]

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for a in self.changes():
            counts[a.kind] = counts.get(a.kind, 0) + 1
        keep = sum(1 for a in self.actions() if a.kind == "keep")
        parts = [f"{n} {k}" for k, n in sorted(counts.items())] + [f"{keep} keep"]
        return ", ".join(parts)

    def render(self) -> str:
        lines: list[str] = []
        for phase in PLAN_PHASES:
            if phase not in PHASES and not self.phases.get(phase):
                continue
            changed = self.changes(phase)
            kept = len(self.actions(phase)) - len(changed)
            lines.append(f"{phase}: {len(changed)} to change, {kept} to keep")
            lines += [f"  {a.describe()}" for a in changed]
        if self.installers:
            lines.append("installers (not locked, kept): " + "; ".join(self.installers))
        if self.provided:
            lines.append("provided by the machine (kept): " + "; ".join(self.provided))
        lines.append(f"plan: {self.summary()}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"phases": {p: [a.to_json() for a in self.actions(p)] for p in PLAN_PHASES
                           if p in PHASES or self.phases.get(p)},
                "installers": self.installers, "provided": self.provided, "summary": self.summary(),
                "empty": self.empty}


#: the ``schema`` value of ``plan --json`` (docs/plan-json.md, docs/plan-json.schema.json)
PLAN_JSON_SCHEMA = "stacksync-plan/1"


def plan_document(plan: Plan, *, python: str, python_version: str, profile: str, lock: str,
                  deferred_sources: Mapping[str, str], damaged: bool = False,
                  variant: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``plan --json``: the plan as data (docs/plan-json.md). ``verdict``: ``in-sync`` when nothing
    changes, else ``changes``; ``counts``: per action kind over all phases; ``variant``: the variant of
    a profile with variants and why it was chosen (``null`` for a profile without)."""
    counts = {kind: 0 for kind in ("install", "upgrade", "downgrade", "reinstall", "remove", "keep")}
    for action in plan.actions():
        counts[action.kind] += 1
    return {"schema": PLAN_JSON_SCHEMA,
            "target": {"python": python, "version": python_version},
            "profile": profile, "lock": lock, "variant": dict(variant) if variant is not None else None,
            "verdict": "in-sync" if plan.empty and not damaged else "changes",
            "summary": plan.summary(), "counts": counts,
            "phases": {p: [a.to_json() for a in plan.actions(p)] for p in PLAN_PHASES
                       if p in PHASES or plan.phases.get(p)},
            "installers": list(plan.installers),
            "deferred_sources": dict(sorted(deferred_sources.items()))}


def version_change(have: str, want: str) -> Kind:
    """``keep`` for the exact same string; ``reinstall`` for the same public release of another build
    (``+cpu`` vs ``+cu121``) or an unparsable version; else ``upgrade`` / ``downgrade``."""
    if have == want:
        return "keep"
    try:
        vh, vw = Version(have), Version(want)
    except InvalidVersion:
        return "reinstall"
    if vh == vw or vh.public == vw.public:
        return "reinstall"
    return "upgrade" if vw > vh else "downgrade"


def deps_from_requires(requires: Mapping[NormalizedName, Iterable[str]],
                       environment: Mapping[str, str]) -> dict[NormalizedName, set[NormalizedName]]:
    """package -> dependencies, from ``Requires-Dist`` lines whose markers hold for ``environment``
    (extras not requested: ``extra == "x"`` lines do not count)."""
    env = {**environment, "extra": ""}
    deps: dict[NormalizedName, set[NormalizedName]] = {}
    for name, lines in requires.items():
        for line in lines:
            try:
                req = requirement(line)
            except InvalidRequirement:
                continue
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            deps.setdefault(name, set()).add(canonicalize_name(req.name))
    return deps


def base_closure(roots: Iterable[NormalizedName], deps: Mapping[NormalizedName, Iterable[NormalizedName]],
                 locked: Iterable[NormalizedName]) -> frozenset[NormalizedName]:
    """The roots and everything they depend on, transitively, limited to locked names."""
    allowed = set(locked)
    seen: set[NormalizedName] = set()
    todo = [r for r in roots if r in allowed]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [d for d in deps.get(name, ()) if d in allowed and d not in seen]
    return frozenset(seen)


def _compare(phase: str, name: NormalizedName, have: str | None, want: str) -> Action:
    if have is None:
        return Action(phase, name, "install", None, want)
    return Action(phase, name, version_change(have, want), have, want)


def built_against(snapshot: Snapshot, name: str) -> Mapping[str, str] | None:
    """What the target's build record says ``name`` was built against (``None``: no record)."""
    record = (snapshot.state.get(STATE_KEY) or {}).get(name)
    if not isinstance(record, dict):
        return None
    against = record.get("built_against")
    return against if isinstance(against, dict) else None


def recorded_build_key(snapshot: Snapshot, name: str) -> Mapping[str, Any] | None:
    """The build key the target's record holds for ``name`` (``None``: none recorded)."""
    record = (snapshot.state.get(STATE_KEY) or {}).get(name)
    key = record.get("key") if isinstance(record, dict) else None
    return key if isinstance(key, dict) else None


def _main(profile: Profile, lock: Mapping[NormalizedName, Pin]) -> dict[NormalizedName, Pin]:
    """The pins the base and rest phases install: the lock less the deferred and provided packages."""
    deferred_names = profile.deferred_names
    return {n: p for n, p in lock.items() if n not in deferred_names and n not in profile.provided}


def _base_names(profile: Profile, main: Mapping[NormalizedName, Pin],
                extra_deps: Mapping[NormalizedName, Iterable[NormalizedName]] | None) -> frozenset[NormalizedName]:
    if not profile.base:  # no roots: no closure to walk (and no ``# via`` edges to read)
        return frozenset()
    deps = deps_from_via(main.values())
    for parent, children in (extra_deps or {}).items():
        deps.setdefault(parent, set()).update(children)
    return base_closure(profile.base, deps, main)


def base_names(profile: Profile, lock: Mapping[NormalizedName, Pin], *,
               extra_deps: Mapping[NormalizedName, Iterable[NormalizedName]] | None = None
               ) -> frozenset[NormalizedName]:
    """The base phase's packages :func:`make_plan` puts in ``Plan.base_names``: ``profile.base`` and what
    they depend on (``# via`` edges, plus ``extra_deps``), among the main lock's pins. The fetch step
    asks it to know whether the wheels' Requires-Dist change the plan before making it again."""
    return _base_names(profile, _main(profile, lock), extra_deps)


def make_plan(profile: Profile, lock: Mapping[NormalizedName, Pin], deferred: Mapping[NormalizedName, Pin],
              snapshot: Snapshot, *, extra_deps: Mapping[NormalizedName, Iterable[NormalizedName]] | None = None,
              build_keys: Mapping[NormalizedName, Mapping[str, Any]] | None = None) -> Plan:
    """The plan for ``snapshot``. ``lock`` / ``deferred``: pins whose markers hold for the target.
    ``extra_deps`` adds dependency edges (from the fetched wheels' metadata) to the ``# via`` ones.
    ``build_keys``: each deferred package's build key now (:mod:`stacksync.build.buildkey`); a build record
    with another key (CUDA, ABI, Python, platform, build_env, sdist changed) is a rebuild."""
    installed = snapshot.versions()
    deferred_names = profile.deferred_names
    # A deferred package pinned in the main lock is still installed in the deferred phase.
    deferred_pins = {**{n: p for n, p in lock.items() if n in deferred_names}, **deferred}
    main = _main(profile, lock)
    base = _base_names(profile, main, extra_deps)
    plan = Plan(base_names=base,
                provided=[f"{n} {installed.get(n) or 'missing'}" for n in profile.provided])
    keep_unlocked: set[NormalizedName] = set()
    for d in profile.deferred:
        keep_unlocked.update(d.build_requires)
    for name in sorted(main):
        want = main[name].key()
        phase = "base" if name in base else "rest"
        plan.phases[phase].append(_compare(phase, name, installed.get(name), want))
    for name in sorted(installed):
        if name in main or name in deferred_names or name in profile.provided:
            continue
        if name in INSTALLER_PACKAGES or name in keep_unlocked:
            plan.installers.append(f"{name} {installed[name]}")
            continue
        plan.phases["rest"].append(Action("rest", name, "remove", installed[name], None, "not in the lock"))
    unrecorded: list[NormalizedName] = []
    for d in profile.deferred:
        dpin = deferred_pins.get(d.name)
        if dpin is None:
            continue  # marker does not hold for this target
        want = dpin.key()
        have = installed.get(d.name)
        action = _compare("deferred", d.name, have, want)
        if action.kind == "keep":
            record = built_against(snapshot, d.name)
            now = {b: lock[b].key() for b in d.rebuild_on if b in main or b in profile.provided and b in lock}
            if record is None:
                changed = {b: v for b, v in now.items() if installed.get(b) != v}
                if changed:
                    action = Action("deferred", d.name, "reinstall", have, want,
                                    "rebuild: no build record and " + ", ".join(
                                        f"{b} {installed.get(b) or 'missing'} -> {v}" for b, v in changed.items()))
                else:
                    unrecorded.append(d.name)
            else:
                changed = {b: v for b, v in now.items() if record.get(b) != v}
                recorded_key = recorded_build_key(snapshot, d.name)
                new_key = (build_keys or {}).get(d.name)
                if changed:
                    action = Action("deferred", d.name, "reinstall", have, want,
                                    "rebuild: built against " + ", ".join(
                                        f"{b} {record.get(b) or '?'}, lock has {v}" for b, v in changed.items()))
                elif recorded_key is not None and new_key is not None and differences(recorded_key, new_key):
                    action = Action("deferred", d.name, "reinstall", have, want,
                                    "rebuild: build key changed: " + ", ".join(differences(recorded_key, new_key)))
        plan.phases["deferred"].append(action)
    plan.unrecorded = tuple(unrecorded)
    return plan


def with_rebuilds(plan: Plan, names: Iterable[NormalizedName]) -> Plan:
    """The plan with each deferred package of ``names`` that it would keep turned into a rebuild
    (``sync --rebuild NAME``); one it installs or rebuilds anyway keeps its action."""
    wanted = set(names)
    plan.phases["deferred"] = [
        Action(a.phase, a.name, "reinstall", a.have, a.want, "rebuild requested (--rebuild)")
        if a.name in wanted and a.kind == "keep" else a
        for a in plan.phases["deferred"]]
    plan.unrecorded = tuple(n for n in plan.unrecorded if n not in wanted)
    return plan
