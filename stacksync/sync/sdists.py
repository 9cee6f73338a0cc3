"""Pins the index serves as an sdist only (vllm 0.6.3 -> outlines -> ``pyairports==0.0.1``): real stacks
carry such pure-Python sdists outside the deferred set.

The lock pins the sdist by its sha256. The fetch phase, before anything in the target changes, turns
each one into a wheel once: the sdist downloaded by URL and checked against the lock, built with the
target's interpreter *with* build isolation (its build requirements come from the profile's index,
constrained to the versions the lock pins where it pins them), and stored in the wheelhouse under a
key of its own (:func:`key_for`: name, version, sdist sha256, Python tag, platform, glibc; no base
packages, no CUDA). The base / rest phase then installs that wheel with the others, by its sha256
(:func:`installable`), offline from the cache, so the phase's resolution never loses a dependency.
A second sync (another venv, same key) takes the wheel from the wheelhouse and builds nothing.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from stacksync.build import buildkey, wheelhouse
from stacksync.build.buildkey import BuildKey
from stacksync.core import console
from stacksync.core.errors import CommandFailed, FetchError, IndexUnavailable
from stacksync.core.redact import redact
from stacksync.env.environment import Snapshot
from stacksync.lock import profile as profile_mod
from stacksync.lock.lockfile import Pin, file_sha256
from stacksync.sync.deferred import wheelhouse_dir
from stacksync.sync.state import State

__all__ = ["SDIST_REASON", "build_all", "known_sdists", "from_wheelhouse", "index_listing", "installable", "key_for",
           "missing_pin", "sdist_in_cache"]

SDIST_REASON = "build from sdist (no wheel on the index)"
_SDIST_SUFFIXES = (".tar.gz", ".zip", ".tar.bz2", ".tgz")


def key_for(pin: Pin, snapshot: Snapshot) -> BuildKey:
    """The wheelhouse key of an sdist-only pin built for ``snapshot``: what a pure or compiled build of
    it depends on without a base (no torch, no CUDA)."""
    return BuildKey(
        package=pin.name, version=pin.key(),
        source_sha256=tuple(sorted(h.split(":", 1)[1] for h in pin.hashes if h.startswith("sha256:"))),
        base=(), cuda=None, cxx11_abi=None, cuda_from=None,
        python=buildkey.python_tag(snapshot.python_xy, snapshot.soabi),
        platform=buildkey.platform_tag(snapshot.platform_tag,
                                       str(snapshot.marker_environment.get("platform_machine", ""))),
        glibc=snapshot.glibc, build_env=())


def installable(state: State, pin: Pin) -> Pin:
    """``pin`` as a phase installs it: an sdist-only pin by its built wheel's sha256 (the only file
    pip may then take), any other one unchanged."""
    sha = state.built_sdists.get(pin.name)
    return dataclasses.replace(pin, hashes=(f"sha256:{sha}",)) if sha else pin


def from_wheelhouse(state: State, pin: Pin) -> Path | None:
    """The wheel built earlier for ``pin`` (same key), copied into the cache; ``None`` when there is none."""
    entry = wheelhouse.find(key_for(pin, state.snapshot), wheelhouse_dir(state))
    if entry is None:
        return None
    state.cache.mkdir(parents=True, exist_ok=True)
    dest = state.cache / entry.wheel.name
    if not dest.is_file() or file_sha256(dest) != entry.sha256:
        shutil.copyfile(entry.wheel, dest)
    state.built_sdists[pin.name] = entry.sha256
    return dest


def sdist_in_cache(cache: Path, pin: Pin) -> Path | None:
    """An sdist of ``pin`` already in the cache whose sha256 the lock lists."""
    if not cache.is_dir():
        return None
    stem = pin.name.replace("-", "_")
    for path in sorted(cache.iterdir()):
        if not path.name.endswith(_SDIST_SUFFIXES) or not path.is_file():
            continue
        if canonicalize_name(path.name.rsplit("-", 1)[0]) != canonicalize_name(stem):
            continue
        if f"sha256:{file_sha256(path)}" in pin.hashes:
            return path
    return None


def missing_pin(exc: CommandFailed | FetchError, pins: Iterable[Pin]) -> Pin | None:
    """The pin a failed wheel download names as having no matching file (pip's "No matching
    distribution found for X==V", the uv backend's "X==V: the index has no wheel")."""
    out = exc.output if isinstance(exc, CommandFailed) else str(exc)
    by_name = {p.name: p for p in pins}
    for line in out.splitlines():
        low = line.lower()
        what = ""
        if "no matching distribution found for" in low:
            what = line[low.index("no matching distribution found for") + 35:].strip()
        elif "the index has no wheel" in low:
            what = line.split(": ")[1] if ": " in line else ""
        name = canonicalize_name(what.split("==")[0].split(" ")[0].strip()) if what else None
        if name and name in by_name:
            return by_name[name]
    return None


def index_listing(pin: Pin, index: profile_mod.IndexConfig) -> tuple[str, str]:
    """What the index has of ``pin``'s project, as a phrase for an error, and a fix that is possible:
    wheels of this version for other targets only, an sdist the lock does not hash, other versions
    only, or nothing at all."""
    from stacksync.backends import indexapi

    recompile = "then invoke compile again"
    try:
        files = indexapi.project_files(index, pin.name)
    except indexapi.ProjectNotFound:
        return ("the index has no project of that name",
                f"add an index that serves {pin.name} (extra_index_url in stack.toml), or drop what requires it "
                f"from requirements.in; {recompile}")
    except IndexUnavailable as exc:
        return f"the index could not be asked ({exc})", "check the network and the index URL, then sync again"
    try:
        want = Version(pin.version or "")
    except InvalidVersion:
        return f"{pin.version!r} is not a version", f"pin a version; {recompile}"
    same = [f for f in files if f.version == want]
    if not same:
        others = sorted({f.version for f in files}, reverse=True)[:5]
        shown = ", ".join(str(v) for v in others) or "none"
        return (f"the index has no file of version {pin.version} (its versions, newest first: {shown})",
                f"pin one of those in requirements.in; {recompile}")
    wheels = [f.filename for f in same if f.filename.endswith(".whl")]
    sdists = [f for f in same if not f.filename.endswith(".whl")]
    if sdists and not any(f"sha256:{f.sha256}" in pin.hashes for f in sdists):
        return (f"the index has an sdist ({sdists[0].filename}) whose sha256 the lock does not list",
                f"find out why the file changed; if it is legitimate, {recompile}")
    if sdists:
        return (f"the index has an sdist ({sdists[0].filename}) that could not be downloaded",
                "check the network and the index, then sync again")
    if wheels:
        return ("the index has wheels of that version for other Pythons / platforms only: "
                + ", ".join(wheels[:4]) + (" ..." if len(wheels) > 4 else ""),
                f"compile the lock for this target's Python and platform, or add an index with a wheel for it; "
                f"{recompile}")
    return "the index lists no file of it", f"add an index that serves it; {recompile}"


def build_all(state: State, sdists: Mapping[NormalizedName, Path], index: profile_mod.IndexConfig) -> None:
    """Build each ``name -> sdist`` into a wheel with the target's interpreter (build isolation on,
    build requirements from the index, constrained to the lock's versions), store it in the wheelhouse
    under :func:`key_for` and put it in the cache for the phase that installs it."""
    if not sdists:
        return
    root = wheelhouse_dir(state)
    constraints = state.workdir / "build-constraints.txt"
    constraints.write_text("".join(f"{p.name}=={p.version}\n" for p in sorted(state.lock.values(), key=lambda p: p.name)
                                   if p.version is not None and p.url is None), encoding="utf-8")
    for name, sdist in sorted(sdists.items()):
        pin = state.lock[name]
        out = state.workdir / f"sdist-built-{name}"
        out.mkdir(parents=True, exist_ok=True)
        console.info(f"fetch: {name} {pin.key()}: {SDIST_REASON}: building {sdist.name}")
        try:
            state.backend.build_sdist(state.python, sdist, out, index.pip_args(), constraints,
                                      stream=state.opts.verbose)
        except CommandFailed as exc:
            raise FetchError(f"{pin.where}: {name}=={pin.version}: the index has no wheel and building its sdist "
                             f"{sdist.name} failed: {exc}; nothing was installed or removed (fix: run the sync "
                             "with --verbose to see the build; a build requirement may be missing from the "
                             f"index {redact(index.index_url or '')})") from None
        built = sorted(out.glob("*.whl"))
        if len(built) != 1:
            raise FetchError(f"{pin.where}: {name}: the build of {sdist.name} wrote {len(built)} wheels, expected one")
        entry = wheelhouse.add(root, built[0], key_for(pin, state.snapshot), profile=state.profile.name,
                               source=f"build of {sdist.name}")
        dest = state.cache / entry.wheel.name
        shutil.copyfile(entry.wheel, dest)
        state.built_sdists[name] = entry.sha256
        console.info(f"fetch: stored {entry.wheel.name} in {root}")


def fetch_sdist(pin: Pin, index: profile_mod.IndexConfig, cache: Path) -> Path | None:
    """The sdist of ``pin`` (a file the index lists whose sha256 the lock lists), downloaded into the
    cache and checked; ``None`` when the index has no such file (then it really is missing)."""
    from stacksync.backends import indexapi

    try:
        want = Version(pin.version or "")
        files = [f for f in indexapi.project_files(index, pin.name) if f.version == want
                 and f.filename.endswith(_SDIST_SUFFIXES) and f"sha256:{f.sha256}" in pin.hashes]
    except (InvalidVersion, IndexUnavailable):
        return None
    for f in files:
        try:
            return indexapi.fetch_file(f, cache, sha256=f.sha256)
        except IndexUnavailable:
            continue
    return None


def known_sdists(pins: Iterable[Pin], index: profile_mod.IndexConfig, cache: Path) -> dict[NormalizedName, Path]:
    """The sdist-only pins among ``pins`` found before the wheel download, downloaded into the cache.

    pip download fails on the first pin without a wheel only after resolving (and downloading) every
    other pin, and keeps none of it: a retry downloads everything again (the gpu stack: minutes). A
    pin with one hash is either one wheel or one sdist; the index's listing of those few (one page
    each, nothing downloaded) tells which. Other sdist-only pins (an sdist plus a wheel for another
    platform) are still found by the download's failure."""
    single = {p.name: p for p in pins if len(p.hashes) == 1 and p.version is not None and p.url is None}
    if not single:
        return {}
    from stacksync.backends import indexapi  # lazy: start-up cost (a fetch with every wheel cached asks nothing)

    try:
        listed = indexapi.files_for_pins(index, {n: str(p.version) for n, p in single.items()})
    except IndexUnavailable:
        return {}  # the download says what is wrong, in its own words
    out: dict[NormalizedName, Path] = {}
    for name, pin in single.items():
        files = [f for f in listed.get(name, []) if f"sha256:{f.sha256}" in pin.hashes]
        if files and all(f.filename.endswith(_SDIST_SUFFIXES) for f in files):
            path = fetch_sdist(pin, index, cache)
            if path is not None:
                out[name] = path
    return out
