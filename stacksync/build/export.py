"""``invoke export --format pylock``: a profile's hashed lock as a PEP 751 pylock.toml, with the index's
file URLs and the wheelhouse's own builds (the pylock model and reader are :mod:`stacksync.lock.pylock`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from stacksync.backends import indexapi
from stacksync.build import wheelhouse
from stacksync.core.errors import LockError, StacksyncError
from stacksync.core.fs import atomic_write_text
from stacksync.core.redact import strip_credentials
from stacksync.lock import profile as profile_mod
from stacksync.lock.load import deps_from_via, load_locks
from stacksync.lock.lockfile import LockProblems, Pin
from stacksync.lock.profile import Profile
from stacksync.lock.pylock import (
    Artifact,
    Package,
    PylockError,
    direct_package,
    is_pylock,
    render,
    same_version,
    validate_text,
)

__all__ = ["export", "for_export", "built_wheels", "packages_from_lock"]


def packages_from_lock(pins: Sequence[Pin], index: object, *, built: Mapping[str, Sequence[Artifact]] | None = None,
                       deps: Mapping[NormalizedName, set[NormalizedName]] | None = None) -> list[Package]:
    """Every pin as a :class:`Package`, with the index's files whose sha256 the pin lists (one
    request per project, concurrent). A pin none of whose hashes the index serves is an error."""
    deps = deps or {}
    # One page per project (a name pinned twice under two markers is asked for once).
    names = sorted({p.name for p in pins if p.version is not None and p.url is None})
    files: dict[str, list[indexapi.IndexFile]] = {}
    if names:
        with ThreadPoolExecutor(max_workers=max(1, min(indexapi.WORKERS, len(names)))) as pool:
            files = dict(zip(names, pool.map(lambda n: indexapi.project_files(index, n), names), strict=True))
    out: list[Package] = []
    problems: list[LockError] = []
    for pin in pins:
        dependencies: list[str] = sorted(deps.get(pin.name, ()))
        if pin.url is not None:
            out.append(direct_package(pin, dependencies))
            continue
        wanted = {h.split(":", 1)[1] for h in pin.hashes if h.startswith("sha256:")}
        matching = [f for f in files.get(pin.name, []) if f.sha256 in wanted and same_version(f.version, pin.version)]
        if not matching:
            problems.append(LockError(pin.path, pin.line, f"{pin.display()}: none of its sha256 hashes is "
                                      "a file the index serves, so no URL can be written",
                                      "invoke compile --profile <name> again, or check the index"))
            continue
        pkg = Package(pin.name, pin.version, str(pin.marker) if pin.marker else None,
                      index=strip_credentials(matching[0].index_url), dependencies=dependencies)
        for f in sorted(matching, key=lambda f: f.filename):
            art = Artifact({"sha256": str(f.sha256)}, url=strip_credentials(f.url), name=f.filename)
            if f.is_wheel:
                pkg.wheels.append(art)
            elif pkg.sdist is None:
                pkg.sdist = art
        pkg.wheels += list((built or {}).get(pin.name, ()))
        out.append(pkg)
    if problems:
        raise LockProblems(problems)
    return out


def built_wheels(prof: Profile, pins: Sequence[Pin], wheelhouse_dir: Path | None = None) -> dict[str, list[Artifact]]:
    """Wheels the wheelhouse (:mod:`stacksync.build.wheelhouse`) holds for the profile's deferred packages, by
    package name: those built for this profile at the locked version against the base versions the lock
    pins now (a wheel built against another torch is another build key, and not this lock's). Each is
    written with its local ``path`` and the sha256 its sidecar recorded (checked again when it installs)."""
    locked = {p.name: p for p in pins}
    root = wheelhouse_dir or wheelhouse.resolve_dir(None, prof.wheelhouse, prof.folder)
    out: dict[str, list[Artifact]] = {}
    for entry in wheelhouse.entries(root):
        name = canonicalize_name(entry.package)
        pin = locked.get(name)
        if name not in prof.deferred_names or entry.profile != prof.name or pin is None:
            continue
        if not same_version(Version(entry.version), pin.version):
            continue
        base = entry.key.get("base") or {}
        if any(locked.get(canonicalize_name(b)) is None or locked[canonicalize_name(b)].key() != v
               for b, v in base.items()):
            continue
        out.setdefault(name, []).append(Artifact({"sha256": entry.sha256}, path=str(entry.wheel),
                                                 name=entry.wheel.name))
    return out


def for_export(prof: Profile, variant: str | None) -> Profile:
    """The profile whose lock an export writes: a profile with variants exports one variant's lock, the
    one ``variant`` names (a pylock.toml is for one kind of machine; nothing here can pick for the
    machine that will read it)."""
    if not prof.variants:
        if variant:
            raise StacksyncError(f"{prof.stack_toml}: profile {prof.name!r} has no [variants] "
                                 f"(fix: drop --variant {variant})")
        return prof
    if not variant or variant not in prof.variants:
        what = f"has no variant {variant!r}" if variant else "has variants, each with its own lock"
        raise StacksyncError(f"{prof.stack_toml}: profile {prof.name!r} {what} (fix: --variant one of "
                             f"{', '.join(prof.variants)}; --out pylock.<variant>.toml for each)")
    return prof.for_variant(variant)


def export(profile_name: str, *, out: str | None = None, locks_dir: Path | None = None,
           variant: str | None = None) -> tuple[str, int]:
    """``invoke export --format pylock``: the profile's lock (a profile with variants: ``variant``'s) as
    pylock.toml text (written to ``out`` when given). Returns (text, number of packages)."""
    if out and not is_pylock(out):
        raise PylockError(f"{out}: PEP 751 names a lock file pylock.toml or pylock.<name>.toml, and readers "
                          f"(uv) refuse other names (fix: --out {Path(out).with_name('pylock.toml')})")
    prof = for_export(profile_mod.load(profile_name, locks_dir), variant)
    lock_file, deferred_file = load_locks(prof)
    if is_pylock(lock_file.path):
        raise PylockError(f"{lock_file.path}: profile {prof.name!r} is already locked by a pylock.toml "
                          "(fix: export from a profile with a requirements.txt lock)")
    pins = [*lock_file.pins, *(deferred_file.pins if deferred_file else [])]
    index = prof.index.expanded(source=str(prof.stack_toml))
    packages = packages_from_lock(pins, index, built=built_wheels(prof, pins),
                                  deps=deps_from_via(pins))
    environments = [f"sys_platform == {json.dumps(p)}".replace('"', "'") for p in prof.platforms]
    text = render(packages, requires_python=f"=={prof.python}.*" if prof.python else None,
                  environments=environments,
                  header=[f"PEP 751 lock of profile {prof.name!r}"
                          + (f" variant {prof.variant!r}" if prof.variant else "") + ", exported by stacksync from "
                          f"{lock_file.path.name}" + (f" and {deferred_file.path.name}" if deferred_file else ""),
                          f"regenerate with: invoke export --format pylock --profile {prof.name}"
                          + (f" --variant {prof.variant}" if prof.variant else "")],
                  tool={"profile": prof.name, "deferred": sorted(prof.deferred_names),
                        "base": list(prof.base), **({"variant": prof.variant} if prof.variant else {})})
    validate_text(text, out or "<stdout>")  # what is written passes packaging's PEP 751 validation
    if out:
        target = Path(out)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, text)
    return text, len(packages)
