"""The fetch step: every artifact the plan needs, downloaded and hash-checked into the cache *before
anything is uninstalled* (a wheel already cached with a locked hash and a tag the target takes is
not asked for again); pip download's failures as one line each."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, NormalizedName, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from stacksync.core import console, runner
from stacksync.core.cachedir import ensure_dir
from stacksync.core.defaults import INSTALLER_PACKAGES
from stacksync.core.errors import CommandFailed, FetchError, IndexUnavailable, SyncError
from stacksync.core.progress import DownloadMeter
from stacksync.env.tags import supported_tags
from stacksync.lock import profile as profile_mod
from stacksync.lock.lockfile import Pin, file_sha256
from stacksync.sync import depcheck
from stacksync.sync import sdists as sdists_mod
from stacksync.sync.cacheindex import CacheIndex
from stacksync.sync.deferred import choose_sources
from stacksync.sync.pinfile import write_requirements
from stacksync.sync.plan import base_names, deps_from_requires
from stacksync.sync.prepare import build_plan, scope_of
from stacksync.sync.state import State

__all__ = ["fetch"]


_INSTALL_KINDS = ("install", "upgrade", "downgrade", "reinstall")


def _needed(state: State, phases: Iterable[str]) -> list[Pin]:
    return [state.lock[a.name] for p in phases for a in state.plan.changes(p)
            if a.kind in _INSTALL_KINDS and p != "deferred"]


def fetch(state: State) -> None:
    """Download every wheel the plan's base / rest changes need (target's pip, so tags match; binary
    only; hash-checked) and the deferred sdists (by URL, sha256 checked) into the cache. Nothing in
    the target changes here, so any failure leaves it exactly as it was."""
    if state.fetched:
        return
    scope = scope_of(state.steps)
    need = _needed(state, [p for p in scope if p not in ("deferred", "vcs")])  # vcs: cloned at install
    ensure_dir(state.cache)
    index = state.profile.index.expanded(source=str(state.profile.stack_toml))
    # A wheel already in the cache with a hash the lock lists and tags the target takes is not asked
    # for again (pip download would query the index for each one). Each file is hashed once per run
    # (GBs for a CUDA stack); the installer checks the hashes again as it installs.
    listing = CacheIndex(state.cache)  # listed and parsed once, not once per pin
    supported = frozenset(supported_tags(state.snapshot))
    found = {p.name: _cached_wheel(listing, p, supported) for p in need}
    missing = [p for p in need if found[p.name] is None]
    # sdist-only pins (stacksync.sync.sdists): a wheel built for the same key earlier, or the sdist
    # already fetched; neither is asked of the index again.
    sdists: dict[NormalizedName, Path] = {}
    for pin in list(missing):
        built = sdists_mod.from_wheelhouse(state, pin)
        cached = None if built is not None else sdists_mod.sdist_in_cache(state.cache, pin)
        if built is not None or cached is not None:
            missing.remove(pin)
            found[pin.name] = built
            if cached is not None:
                sdists[pin.name] = cached
            console.info(f"fetch: {pin.name} {pin.key()}: {sdists_mod.SDIST_REASON}"
                         + (f": wheel from the wheelhouse ({built.name})" if built else ""))
    for name, known in sdists_mod.known_sdists(missing, index, state.cache).items():
        console.info(f"fetch: {name} {state.lock[name].key()}: {sdists_mod.SDIST_REASON}")
        sdists[name] = known
    missing = [p for p in missing if p.name not in sdists]
    if missing:
        console.info(f"fetching {len(missing)} wheel(s) into {state.cache}"
                     + (f" ({len(need) - len(missing)} already there)" if len(need) > len(missing) else ""))
    elif need:
        console.info(f"all {len(need)} wheel(s) already in {state.cache}")
    while missing:
        req = write_requirements(state.workdir / "fetch.txt", missing)
        try:
            with runner.watching(DownloadMeter("fetch", len(missing))) as meter:  # bytes, rate, ETA
                state.backend.download(state.python, req, state.cache, index.pip_args())
                listing = CacheIndex(state.cache, listing)  # once more: what the download added
                found.update({p.name: _cached_wheel(listing, p, supported) or _cached_any(listing, p)
                              for p in missing})
                got = [path for p in missing if (path := found[p.name]) is not None]
                meter.finish(len(got), sum(path.stat().st_size for path in got))
        except (CommandFailed, FetchError) as exc:
            lacking = sdists_mod.missing_pin(exc, missing)
            sdist = sdists_mod.fetch_sdist(lacking, index, state.cache) if lacking is not None else None
            if lacking is None or sdist is None:
                if isinstance(exc, CommandFailed):
                    raise _fetch_error(exc, state.lock_file.path, missing, index) from None
                if lacking is None:
                    raise
                raise _missing_wheel(lacking, index) from None
            console.info(f"fetch: {lacking.name} {lacking.key()}: {sdists_mod.SDIST_REASON}")
            sdists[lacking.name] = sdist
            # what the failed download already brought is not asked for again
            listing = CacheIndex(state.cache, listing)
            missing = [p for p in missing if p.name not in sdists and _cached_wheel(listing, p, supported) is None]
            continue
        break
    sdists_mod.build_all(state, sdists, index)
    found.update({n: sdists_mod.from_wheelhouse(state, state.lock[n]) for n in sdists})
    if need:
        _confirm_cache(state, need, found, listing)
        # the sha256 of each wheel about to be installed (hashed once this run), recorded once it is
        # (only a file the lock lists: a wheel built here from an sdist-only pin, whose lock hash is the
        # sdist's, is compared by version only)
        digests = {p.name: listing.sha256(path, file_sha256) for p in need
                   if (path := found.get(p.name)) is not None and p.name not in sdists}
        state.fetched_sha256.update({n: d for n, d in digests.items() if f"sha256:{d}" in state.lock[n].hashes})
    if "deferred" in scope:
        choose_sources(state)  # the wheel (prebuilt, wheelhouse, team index) or the sdist to build
    check_dependencies(state)
    state.fetched = True
    # Confirm the base closure from the wheels' own metadata; a dependency the `# via` comments missed
    # moves into the base phase (the plan is made again only then: nothing else in it reads them).
    if state.wheel_deps and base_names(state.profile, state.lock, extra_deps=state.wheel_deps) != state.plan.base_names:
        replanned = build_plan(state.profile, state.lock, state.deferred, state.snapshot, state.cache, state.vcs,
                               state.damage, extra_deps=state.wheel_deps,
                               rebuild=[canonicalize_name(n) for n in state.opts.rebuild], artifacts=state.provenance)
        if replanned.base_names != state.plan.base_names:
            moved = sorted(replanned.base_names - state.plan.base_names)
            if moved:
                console.info(f"base phase also takes {', '.join(moved)} (from the wheels' Requires-Dist)")
            state.plan = replanned
            state.outcome.plan = replanned


def _cached_wheel(listing: CacheIndex, pin: Pin, supported: frozenset[Tag]) -> Path | None:
    """A wheel of exactly ``pin`` (local version included) in the cache whose sha256 the lock lists and
    that the target can install; only those files are hashed, each once per run."""
    for path, tags in listing.wheels_of(pin.name, pin.version):
        if not supported.isdisjoint(tags) and f"sha256:{listing.sha256(path, file_sha256)}" in pin.hashes:
            return path
    return None


def _cached_any(listing: CacheIndex, pin: Pin) -> Path | None:
    """Any file of ``pin`` in the cache (wheel or sdist) whose sha256 the lock lists."""
    for path in listing.files_of(pin.name):
        if f"sha256:{listing.sha256(path, file_sha256)}" in pin.hashes:
            return path
    return None


def _confirm_cache(state: State, need: Sequence[Pin], found: Mapping[NormalizedName, Path | None],
                   listing: CacheIndex) -> None:
    """Every needed pin has a file in the cache (``found``) whose sha256 the lock lists; read its
    Requires-Dist (from the cache's memo by sha256 when a run read it before)."""
    read: dict[NormalizedName, list[str]] = {}
    for pin in need:
        path = found.get(pin.name)
        if path is None:
            raise FetchError(f"{pin.where}: {pin.display()}: no downloaded file matches the lock's hashes "
                             f"(fix: check the index, then invoke compile --profile <name> again)")
        if path.name.endswith(".whl"):
            requires = listing.requires(path, listing.sha256(path, file_sha256), _wheel_requires)
            if requires is not None:
                read[pin.name] = requires
    state.wheel_requires.update(read)
    state.wheel_deps.update(deps_from_requires(read, state.snapshot.marker_environment))
    listing.save()


def check_dependencies(state: State) -> None:
    """Refuse, before anything changes, a lock that would leave a dependency missing (or at a version
    its requirement does not admit): the fetched wheels' Requires-Dist, the deferred sources' metadata
    and the installed metadata of what stays, against the lock, the deferred and VCS pins and what the
    sync keeps (:mod:`stacksync.sync.depcheck`)."""
    installed = state.snapshot.distributions

    def kept(name: NormalizedName, version: str | None) -> tuple[str, ...] | None:
        dist = installed.get(name)
        return tuple(dist.requires) if dist is not None and version is not None and dist.version == version else None

    packages: dict[NormalizedName, depcheck.Package] = {}
    provided = set(state.profile.provided)  # the machine's own build: its requirements are not the lock's
    for name, pin in {**state.lock, **state.deferred}.items():
        version = pin.key()
        if name in provided:
            packages[name] = depcheck.Package(version)
            continue
        fetched = state.wheel_requires.get(name)
        source = state.deferred_sources.get(name)
        if fetched is None and source is not None:  # chosen by this fetch: a deferred package it installs
            fetched = _source_requires(Path(source.path))
        packages[name] = depcheck.Package(version, tuple(fetched) if fetched is not None else kept(name, version),
                                          pin.extras)
    for name, pin in state.vcs.items():
        packages[name] = depcheck.Package(None, None, pin.extras)  # cloned at install: read afterwards
    build_reqs = {n for d in state.profile.deferred for n in d.build_requires}
    removes = "rest" in state.steps
    for name, dist in installed.items():  # what the sync keeps that the lock does not name (not judged)
        if name not in packages and (not removes or name in INSTALLER_PACKAGES or name in build_reqs):
            packages[name] = depcheck.Package(dist.version)
    found = depcheck.problems(packages, state.snapshot.marker_environment)
    if found:
        raise SyncError(f"{state.lock_file.path}: the lock does not hold what its packages require: "
                        + "; ".join(p.describe() for p in found)
                        + f"; nothing was installed or removed (fix: invoke compile --profile {state.profile.name})")


def _source_requires(path: Path) -> list[str] | None:
    """A deferred package's Requires-Dist from its wheel, or from its sdist's PKG-INFO when that is
    static (metadata 2.2 or later without ``Dynamic: Requires-Dist``); ``None``: known only once built."""
    if path.suffix == ".whl":
        return _wheel_requires(path)
    import tarfile  # here, not at the top: the no-op path never needs them
    from email.parser import Parser

    try:
        with tarfile.open(path) as tf:
            member = next((m for m in tf.getmembers() if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO")
                           and m.isfile()), None)
            handle = tf.extractfile(member) if member is not None else None
            if handle is None:
                return None
            text = handle.read(1 << 20).decode("utf-8", errors="replace")
    except (tarfile.TarError, OSError):
        return None
    meta = Parser().parsestr(text, headersonly=True)
    try:
        static = Version(str(meta.get("Metadata-Version", "1.0"))) >= Version("2.2")
    except InvalidVersion:
        static = False
    dynamic = {str(v).strip().lower() for v in meta.get_all("Dynamic") or []}
    if not static or "requires-dist" in dynamic:
        return None
    return [str(v) for v in meta.get_all("Requires-Dist") or []]


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
            if pin is not None:
                return _missing_wheel(pin, index)
            return FetchError(f"{where}: {what} is not on the index; {tail} "
                              "(fix: pin a version the index serves, then invoke compile again)")
    return FetchError(f"{lock_path}: downloading the lock's wheels failed: {exc}; {tail}")


def _missing_wheel(pin: Pin, index: profile_mod.IndexConfig) -> FetchError:
    """No wheel this target can install and no sdist with a hash the lock lists: what the index has,
    and a fix that is possible."""
    what, fix = sdists_mod.index_listing(pin, index)
    gone = "is not on the index" if "no file of version" in what or "no project" in what else "has no wheel"
    return FetchError(f"{pin.where}: {pin.name}=={pin.version} {gone} for this target ({what}); nothing was "
                      f"installed or removed (fix: {fix})")


def _mismatch_detail(out: str) -> str:
    lines = [ln.strip() for ln in out.splitlines()]
    for i, line in enumerate(lines):
        if line.startswith("Expected sha256") and i > 0:
            got = next((ln for ln in lines[i + 1:i + 3] if ln.startswith("Got")), "")
            return f" of {lines[i - 1].split(' from ')[0]} ({line}; {got})"
    return ""
