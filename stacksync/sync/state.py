"""What a sync's steps share: the options the tasks pass in, the outcome a run reports, and the state
the phases read and update."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName

from stacksync.backends.base import Backend
from stacksync.core import defaults
from stacksync.env.damage import Damage
from stacksync.env.diff import DiffResult
from stacksync.env.environment import Snapshot
from stacksync.env.journal import Journal
from stacksync.lock.lockfile import Pin, RequirementsFile
from stacksync.lock.profile import Profile
from stacksync.sync.plan import Plan
from stacksync.sync.provenance import Provenance

__all__ = ["STEPS", "Options", "Outcome", "State"]

# Steps in the order `sync` runs them; each task runs a prefix-free subset. "vcs": the VCS pins at a
# commit (vcs.txt), after the rest (stacksync.sync.vcsphase).
STEPS = ("plan", "fetch", "base", "rest", "deferred", "vcs", "verify")


@dataclass
class Options:
    """What the tasks pass in. ``python`` / ``venv`` pick the target (default: the project's .venv,
    created with the profile's Python when missing)."""

    profile: str = ""  # "": $STACKSYNC_PROFILE, else demo (read when the Options are made, not at import)
    python: str | None = None
    venv: str | None = None
    dry_run: bool = False
    yes: bool = False
    force: bool = False
    wait: bool = False
    #: another node building a deferred key: fail at once (one line: who, what, since when) instead of waiting
    no_wait: bool = False
    #: ``-``: the receipt goes to stdout (and the plan text to stderr, so stdout is the JSON alone)
    report: str | None = None
    #: print the plan as JSON (``plan --json`` / ``sync --dry-run --json``) instead of the text table
    json: bool = False
    backend: str | None = None
    #: a lock file instead of the profile's requirements.txt (a pylock.toml holds the deferred pins too)
    lock: Path | None = None
    cache_dir: Path | None = None
    locks_dir: Path | None = None
    #: wheelhouse folder (stacksync.build.wheelhouse.resolve_dir: this > STACKSYNC_WHEELHOUSE > stack.toml)
    wheelhouse: str | None = None
    verbose: bool = False
    #: take a lock that is not stacksync's output for this profile (lockcheck: header, deferred pins)
    accept_foreign_lock: bool = False
    #: deferred packages to build again from their sdist although the plan would keep them (a build
    #: whose import fails, a record that claims the wrong build): no wheelhouse, team index or prebuilt
    rebuild: tuple[str, ...] = ()
    #: a profile with variants: this one instead of the one the target's driver picks (stacksync.cuda.variant)
    variant: str | None = None
    #: asks the user to go on with a destructive plan; ``None``: no prompt (needs ``yes``)
    confirm: Callable[[str], bool] | None = None
    #: where a run that ends "already in sync" keeps its no-op stamp, and the request it answers
    #: (stacksync.core.stamp; set by the sync task only, ``None``: no stamp)
    noop_stamp: str | None = None
    noop_key: str = ""

    def __post_init__(self) -> None:
        if not self.profile:
            self.profile = defaults.profile_name()


@dataclass
class Outcome:
    """What a run did: the plan, per-step seconds, the verdict and its one summary line."""

    plan: Plan | None = None
    verdict: str = "not-run"  # planned | in-sync | synced | fetched | verified | failed
    summary: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    twin: DiffResult | None = None
    receipt: dict[str, Any] = field(default_factory=dict)


@dataclass
class State:
    """What the steps share. ``lock`` / ``deferred`` are the pins whose markers hold for the target."""

    opts: Options
    profile: Profile
    backend: Backend
    python: Path
    lock_file: RequirementsFile
    deferred_file: RequirementsFile | None
    snapshot: Snapshot
    lock: dict[NormalizedName, Pin]
    deferred: dict[NormalizedName, Pin]
    plan: Plan
    cache: Path
    workdir: Path
    steps: tuple[str, ...]
    outcome: Outcome
    fetched: bool = False
    wheel_deps: dict[NormalizedName, set[NormalizedName]] = field(default_factory=dict)
    #: name -> the fetched wheel's Requires-Dist lines (stacksync.sync.depcheck, before any change)
    wheel_requires: dict[NormalizedName, list[str]] = field(default_factory=dict)
    #: modules whose smoke import passed after the last change this run made (verify skips them)
    smoked: set[str] = field(default_factory=set)
    #: VCS pins at a commit (vcs.txt) whose markers hold for the target
    vcs: dict[NormalizedName, Pin] = field(default_factory=dict)
    #: where each deferred package's wheel comes from (stacksync.sync.deferred.Source), decided in fetch
    deferred_sources: dict[NormalizedName, Any] = field(default_factory=dict)
    #: what an interrupted run left in the target (repair.detect), and this run's journal once written
    damage: Damage = field(default_factory=Damage)
    #: sdist-only pins built into a wheel (stacksync.sync.sdists): name -> the wheel's sha256
    built_sdists: dict[NormalizedName, str] = field(default_factory=dict)
    journal: Journal | None = None
    #: which artifact each installed distribution came from (stacksync.sync.provenance.check, in prepare)
    provenance: Provenance = field(default_factory=Provenance)
    #: name -> sha256 of the wheel the fetch confirmed for it (recorded once it is installed)
    fetched_sha256: dict[NormalizedName, str] = field(default_factory=dict)
    #: a profile with variants: why ``profile.variant`` was chosen (the driver, platform or --variant)
    variant_why: str | None = None

