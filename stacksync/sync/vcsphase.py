"""The VCS phase of a sync: pins at a commit (``vcs.txt``, written by ``invoke compile``), installed
after the rest, by commit, never editable in the twin (see :mod:`stacksync.lock.vcs` for why they live
apart from the hashed lock).

Hooks used by the sync steps (:mod:`stacksync.sync.prepare`, ``phases``, ``verify``, ``run``):
:func:`load` (the pins whose markers hold for the target), :func:`adjust_plan` (a ``vcs`` phase; the
rest phase must not remove what it installs), :func:`keep_lines` (what pip-sync must keep),
:func:`install` (the phase), :func:`lock_entries` (the twin check compares their commit).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from packaging.utils import NormalizedName

from stacksync.core import console
from stacksync.core.errors import SyncError
from stacksync.core.redact import redact
from stacksync.env.diff import Entry, entry_from_pin
from stacksync.env.environment import Snapshot
from stacksync.lock import lockcheck, vcs
from stacksync.lock.lockfile import LockProblems, Pin, parse
from stacksync.lock.profile import Profile
from stacksync.sync.plan import Action, Plan
from stacksync.sync.state import State

__all__ = ["load", "adjust_plan", "keep_lines", "install", "lock_entries"]


def load(prof: Profile, environment: Mapping[str, str]) -> dict[NormalizedName, Pin]:
    """``vcs.txt``'s pins for the target (none when the profile has no VCS pins); an option line sync
    would ignore is refused (:func:`stacksync.lock.lockcheck.option_problems`)."""
    path = prof.locks_folder / vcs.VCS_TXT
    if not path.is_file():
        return {}
    file = parse(path, lock=True)
    problems = lockcheck.option_problems(prof, file)
    if problems:
        raise LockProblems(problems[:1])
    return file.for_environment(environment)


def _installed_commit(snapshot: Snapshot, name: NormalizedName) -> str | None:
    dist = snapshot.distributions.get(name)
    if dist is None or dist.kind != "vcs":
        return None
    return str((dist.direct_url or {}).get("vcs_info", {}).get("commit_id") or "") or None


def _editable_commit(snapshot: Snapshot, name: NormalizedName, checkout: Path) -> str | None:
    """The commit of an editable install of ``name`` from ``checkout`` (``None``: not that install)."""
    dist = snapshot.distributions.get(name)
    if dist is None or dist.kind != "editable":
        return None
    folder = vcs.folder_of(str((dist.direct_url or {}).get("url", "")))
    if folder is None or folder.resolve() != checkout.resolve():
        return None
    found = vcs.read_checkout(folder)
    return found.commit if found is not None else None


def adjust_plan(plan: Plan, pins: Mapping[NormalizedName, Pin], snapshot: Snapshot,
                checkouts: Mapping[NormalizedName, Path] | None = None) -> Plan:
    """Add the ``vcs`` phase (install / reinstall at another commit / keep) and drop the rest phase's
    removal of what it installs. A pin with a ``[vcs.NAME] checkout`` is kept editable from there."""
    if not pins:
        return plan
    checkouts = checkouts or {}
    plan.phases["rest"] = [a for a in plan.phases["rest"] if not (a.kind == "remove" and a.name in pins)]
    actions = []
    for name in sorted(pins):
        pin = pins[name]
        dist = snapshot.distributions.get(name)
        checkout = checkouts.get(name)
        have = _installed_commit(snapshot, name) if checkout is None else _editable_commit(snapshot, name, checkout)
        want = pin.commit or ""
        where = redact(pin.url or "").split("#", 1)[0] if checkout is None else f"editable from {checkout}"
        if dist is None:
            actions.append(Action("vcs", name, "install", None, want, where))
        elif not vcs.same_commit(have, want):
            installed = _installed_commit(snapshot, name)
            found = have or (f"{installed} (not editable)" if installed else f"{dist.version} ({dist.kind})")
            actions.append(Action("vcs", name, "reinstall", found, want, where))
        else:
            actions.append(Action("vcs", name, "keep", have, want))
    plan.phases["vcs"] = actions
    return plan


def keep_lines(snapshot: Snapshot, pins: Mapping[NormalizedName, Pin]) -> list[str]:
    """``name==version`` of the installed VCS pins, for pip-sync's keep file (it would remove them)."""
    return [f"{n}=={snapshot.distributions[n].version}" for n in sorted(pins) if n in snapshot.distributions]


def lock_entries(pins: Mapping[NormalizedName, Pin]) -> dict[NormalizedName, Entry]:
    return {n: entry_from_pin(p) for n, p in pins.items()}


def install(state: State, pins: Mapping[NormalizedName, Pin]) -> None:
    """Install the VCS pins the plan changes, at their commit, ``--no-deps`` (their dependencies came
    in hashed with the rest), from the profile's index for their build requirements."""
    todo = [a for a in state.plan.changes("vcs")]
    if not todo:
        return
    lines = []
    for action in todo:
        pin = pins[action.name]
        checkout = state.profile.vcs_checkouts.get(pin.name)
        if checkout is None:
            lines.append(f"{pin.name} @ {pin.url}")
            continue
        found = vcs.read_checkout(checkout)
        if found is None or not vcs.same_commit(found.commit, pin.commit):
            at = found.commit if found is not None and found.commit else "no git checkout"
            raise SyncError(f"{state.profile.stack_toml}: vcs.{pin.name}.checkout: {checkout} is at {at}, the lock "
                            f"pins {pin.commit} ({pin.where}) (fix: git -C {checkout} checkout {pin.commit}, or "
                            "compile the lock again at the checkout's commit)")
        lines.append(f"-e {checkout}")
    req = state.workdir / "vcs.txt"
    req.write_text("\n".join(lines) + "\n", encoding="utf-8")
    index = state.profile.index.expanded(source=str(state.profile.stack_toml))
    state.smoked.clear()
    console.info("vcs: installing " + ", ".join(f"{a.name} @ {(a.want or '')[:12]}" for a in todo))
    state.backend.install_vcs(state.python, req, index.pip_args(), stream=state.opts.verbose)
