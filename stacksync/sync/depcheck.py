"""A lock missing a dependency, found before anything changes. Pure, no I/O.

Installs run ``--require-hashes --no-deps`` (and pip-sync removes what the lock does not name), so no
installer ever notices that a package's dependency is not in the lock: the target is left broken
(pip-sync uninstalled the dependency, the smoke import fails). The fetch step reads each fetched
wheel's ``Requires-Dist`` (and the installed metadata of what stays); :func:`problems` checks them,
with markers evaluated for the target and the extras asked for, against what the target will hold:
the lock's pins, the deferred and VCS pins, and what the sync keeps installed (installers, build
requirements of deferred packages, everything when the rest phase does not run).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from stacksync.lock.reqshape import requirement

__all__ = ["Package", "Problem", "problems"]


@dataclass(frozen=True)
class Package:
    """One package the target will hold: its version (``None``: not known, e.g. a VCS pin not cloned
    yet), its ``Requires-Dist`` lines (``None``: not known before it is installed) and the extras the
    lock asks of it."""

    version: str | None
    requires: tuple[str, ...] | None = None
    extras: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Problem:
    """``package`` ``version`` needs ``requirement``; ``found`` is the version the target will hold
    (``None``: the dependency is missing)."""

    package: NormalizedName
    version: str | None
    requirement: str
    dependency: NormalizedName
    found: str | None

    def describe(self) -> str:
        who = f"{self.package} {self.version}" if self.version else str(self.package)
        if self.found is None:
            return f"{who} requires {self.requirement}, which is not in the lock"
        return f"{who} requires {self.requirement}, but the lock has {self.dependency} {self.found}"


def _parsed(lines: Iterable[str]) -> list[Requirement]:
    out = []
    for line in lines:
        try:
            out.append(requirement(line))
        except InvalidRequirement:
            continue  # not ours to judge: the installer reads it as it reads it
    return out


def _applies(req: Requirement, environment: Mapping[str, str], extras: Iterable[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({**environment, "extra": e}) for e in ("", *sorted(extras)))


def problems(packages: Mapping[NormalizedName, Package], environment: Mapping[str, str]) -> list[Problem]:
    """Every requirement of a package in ``packages`` whose marker holds for ``environment`` (with the
    extras asked of that package, by the lock or by another package's requirement) that names a
    package not in ``packages``, or one at a version its specifier does not admit."""
    reqs = {n: _parsed(p.requires) for n, p in packages.items() if p.requires is not None}
    extras = {n: set(p.extras) for n, p in packages.items()}
    changed = True
    while changed:  # extras asked by other packages (``foo[bar]``) add foo's ``extra == "bar"`` lines
        changed = False
        for name, parsed in reqs.items():
            for req in parsed:
                if not req.extras:
                    continue
                dep = canonicalize_name(req.name)
                if dep in extras and _applies(req, environment, extras[name]):
                    if not set(req.extras) <= extras[dep]:
                        extras[dep] |= set(req.extras)
                        changed = True
    out = []
    for name in sorted(reqs):
        for req in reqs[name]:
            if not _applies(req, environment, extras.get(name, ())):
                continue
            dep = canonicalize_name(req.name)
            have = packages.get(dep)
            pkg = packages[name]
            if have is None:
                out.append(Problem(name, pkg.version, str(req), dep, None))
            elif have.version is not None and req.specifier and not _admits(req, have.version):
                out.append(Problem(name, pkg.version, str(req), dep, have.version))
    return out


def _admits(req: Requirement, version: str) -> bool:
    if str(req.specifier) == f"=={version}":
        return True  # the pin itself (a lock's own edges): what contains() says, without parsing the version
    try:
        return req.specifier.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return True  # a URL pin's key, or a version packaging cannot read: not judged here
