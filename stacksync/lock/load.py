"""Loading a profile's locks: requirements.txt and deferred.txt (or a pylock.toml), fully checked, and
the dependency edges a pip-compile lock records in its ``# via`` comments."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from packaging.requirements import InvalidRequirement
from packaging.utils import NormalizedName, canonicalize_name

from stacksync.core.errors import StacksyncError
from stacksync.lock import lockcheck
from stacksync.lock.lockfile import LockProblems, Pin, RequirementsFile, parse, require_hashes
from stacksync.lock.profile import Profile
from stacksync.lock.pylock import profile_locks
from stacksync.lock.reqshape import requirement, simple_pin

__all__ = ["load_locks", "deps_from_via"]


def load_locks(prof: Profile, lock: Path | None = None, *,
               accept_foreign: bool = False) -> tuple[RequirementsFile, RequirementsFile | None]:
    """The profile's hashed lock and its deferred.txt (when present); a missing lock says how to make it.
    ``lock`` (``--lock FILE``) replaces requirements.txt; a PEP 751 pylock.toml (given, or the profile's
    when it has no requirements.txt) holds both, read by :mod:`stacksync.lock.pylock`. Fully checked on every
    path, the no-op one included (:mod:`stacksync.lock.lockcheck`)."""
    if lock is not None and not lock.is_file():
        raise StacksyncError(f"{lock}: no such lock file (fix: check the --lock path)")
    pair = profile_locks(prof.locks_folder, prof.deferred_names, lock)
    if pair is not None:
        lock_file, deferred_file = pair
    else:
        path = lock or prof.lock_path
        if not path.is_file():
            raise StacksyncError(f"{path}: profile {prof.name!r} has no lock yet "
                                 f"(fix: invoke compile --profile {prof.name})")
        lock_file = parse(path, lock=True)
        deferred_file = parse(prof.deferred_path, lock=True) if prof.deferred_path.is_file() else None
    try:
        require_hashes([*lock_file.pins, *(deferred_file.pins if deferred_file else [])])
    except LockProblems as exc:
        raise LockProblems([*exc.problems[:1]]) from None
    lockcheck.check(prof, lock_file, deferred_file, accept_foreign=accept_foreign)
    return lock_file, deferred_file



@lru_cache(maxsize=8192)
def _via_name(text: str) -> NormalizedName | None:
    """A ``# via`` entry names a package (``torch``, ``torch[extra]``) or an input (``-r x.in``).
    Cached: one parent appears in many ``# via`` lists, and the plan reads them more than once a run."""
    text = text.strip()
    if not text or text.startswith(("-r ", "-c ", "--")) or " " in text.split("[", 1)[0].strip():
        return None
    text = text.split(" (", 1)[0]
    simple = simple_pin(text)  # a plain name: its name without building a Requirement
    if simple is not None:
        return canonicalize_name(simple[0])
    try:
        return canonicalize_name(requirement(text).name)
    except InvalidRequirement:
        return None


def deps_from_via(pins: Iterable[Pin]) -> dict[NormalizedName, set[NormalizedName]]:
    """package -> its locked dependencies, read backwards from pip-compile's ``# via`` comments."""
    deps: dict[NormalizedName, set[NormalizedName]] = {}
    for pin in pins:
        for entry in pin.via:
            for part in entry.split(","):
                parent = _via_name(part)
                if parent is not None and parent != pin.name:
                    deps.setdefault(parent, set()).add(pin.name)
    return deps
