"""Phase 6 of ``invoke sync``: the deferred packages (flash-attn), installed last against the base the
earlier phases installed, from a wheel built once per build key.

For each deferred package the plan installs or rebuilds, :func:`choose_sources` (run by the fetch
phase, before anything in the target changes) takes the first of:

1. ``prebuilt``: the profile's ``wheels`` URL template filled from the lock, its sha256 one the lock
   lists (:mod:`stacksync.build.prebuilt`); missing: fall through, or refuse with ``prebuilt = "require"``;
2. ``wheelhouse``: the wheel stored under the build key (:mod:`stacksync.build.buildkey`,
   :mod:`stacksync.build.wheelhouse`), its sha256 checked against its sidecar;
3. ``team-index``: a wheel with the key's build tag ``0ss<key>`` on the profile's ``team_index``
   (sha256 as the index publishes it), stored in the wheelhouse on the way;
4. ``build``: the sdist (sha256 from the lock), built into a wheel in the target with ``pip wheel
   --no-build-isolation --no-deps`` (``uv build`` for the uv backend), stored in the wheelhouse.

:func:`install_deferred` then installs that wheel with ``--require-hashes --no-deps --no-index`` (a
build first for 4), records the key and where the wheel came from in
``<prefix>/stacksync-state.json`` (:func:`write_state`), and runs the deferred smoke imports. The key
is computed again from the target once the base is in place; a key that changed since the fetch
phase decides again. A wheel install needs no compiler, no build requirements and no imports check.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from packaging.utils import InvalidWheelFilename, NormalizedName, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from stacksync.build import buildkey, wheelhouse
from stacksync.build.buildkey import BuildKey
from stacksync.core import console, faults, runner
from stacksync.core.errors import CommandFailed, FetchError, IndexUnavailable, SyncError
from stacksync.core.fs import atomic_copy, atomic_write_text
from stacksync.core.progress import Heartbeat
from stacksync.core.redact import redact, strip_credentials
from stacksync.env.environment import Snapshot
from stacksync.lock import profile as profile_mod
from stacksync.lock.lockfile import Pin, file_sha256
from stacksync.lock.profile import Deferred, Profile
from stacksync.sync import provenance
from stacksync.sync.pinfile import write_requirements
from stacksync.sync.plan import STATE_KEY
from stacksync.sync.smoke import smoke_and_probe, smoke_phase
from stacksync.sync.state import State
from stacksync.sync.statefile import read_state_file
from stacksync.sync.wheelsource import (
    STATE_FILE,
    Source,
    UntrustedWheel,
    check_writable,
    fail_if_leased,
    from_team_index,
    from_wheelhouse,
    record_built,
    team_index_url,
    wheelhouse_dir,
)

__all__ = ["STATE_FILE", "adopt_unrecorded", "Source", "install_deferred", "write_state", "compute_key",
           "planned_keys", "choose_sources", "wheelhouse_dir", "wheels_expected", "expected_sources", "check_writable",
           "UntrustedWheel", "records", "fetch_source"]

# ---------------------------------------------------------------------------------------------- the key

def _cached_base_wheel(cache: Path, pin: Pin) -> Path | None:
    """The locked wheel of a base package in the sync cache (fetched, hash-confirmed by the fetch phase)."""
    if pin.version is None or not cache.is_dir():
        return None
    for path in sorted(cache.glob("*.whl")):
        try:
            name, version, _, _ = parse_wheel_filename(path.name)
        except InvalidWheelFilename:
            continue
        if name == pin.name and str(version) == str(Version(pin.version)):
            return path
    return None


def compute_key(d: Deferred, pin: Pin, lock: Mapping[NormalizedName, Pin], snapshot: Snapshot, cache: Path,
                environ: Mapping[str, str] | None = None, *, assume_absent: bool = False) -> BuildKey | None:
    """The build key of deferred ``d`` for ``snapshot`` once the lock's base is installed. The CUDA / ABI
    facts come from the base package's files in the target when it is installed at the locked version,
    else from its locked wheel in ``cache``; ``None`` when neither is there (``assume_absent``: treat
    them as absent instead)."""
    env = os.environ if environ is None else environ
    base = tuple(sorted((b, lock[b].key()) for b in d.rebuild_on if b in lock))
    src = buildkey.cuda_source(d.rebuild_on)
    facts: tuple[str | None, bool | None] = (None, None)
    if src is not None and src in lock:
        if snapshot.versions().get(src) == lock[src].key():
            # where the installed one is first: a provided torch lives in the image's site-packages
            where = snapshot.distributions[src].location
            facts = buildkey.files_facts([*([where] if where else []), *snapshot.site_packages], src) or (None, None)
        else:
            wheel = _cached_base_wheel(cache, lock[src])
            read = buildkey.wheel_facts(wheel, src) if wheel is not None else None
            if read is None and not assume_absent:
                return None
            facts = read or (None, None)
    return BuildKey(
        package=d.name, version=pin.key(),
        source_sha256=tuple(sorted(h.split(":", 1)[1] for h in pin.hashes if h.startswith("sha256:"))),
        base=base, cuda=facts[0], cxx11_abi=facts[1], cuda_from=src if facts != (None, None) else None,
        python=buildkey.python_tag(snapshot.python_xy, snapshot.soabi),
        platform=buildkey.platform_tag(snapshot.platform_tag,
                                       str(snapshot.marker_environment.get("platform_machine", ""))),
        glibc=snapshot.glibc,
        build_env=buildkey.key_env(d.build_env, env),
    )


def planned_keys(prof: Profile, lock: Mapping[NormalizedName, Pin], deferred: Mapping[NormalizedName, Pin],
                 snapshot: Snapshot, cache: Path) -> dict[NormalizedName, dict[str, Any]]:
    """Deferred name -> key document, for the plan's "build key changed" check (read from files only:
    the no-op path starts no process). Packages whose key cannot be known yet are left out."""
    out: dict[NormalizedName, dict[str, Any]] = {}
    for d in prof.deferred:
        pin = deferred.get(d.name) or lock.get(d.name)
        if pin is None:
            continue
        key = compute_key(d, pin, lock, snapshot, cache)
        if key is not None:
            out[d.name] = key.to_json()
    return out


# ------------------------------------------------------------------------------------------- the sources

def _prebuilt(state: State, d: Deferred, pin: Pin, key: BuildKey | None) -> Source | None:
    from stacksync.build import prebuilt  # lazy: start-up cost (deferred packages only)

    if not d.wheels:
        return None
    base = buildkey.cuda_source(d.rebuild_on)
    values = prebuilt.template_vars(pin.key(), state.lock[base].key() if base in state.lock else None,
                                    state.snapshot.python_xy, d.wheel_vars)
    url = prebuilt.fill(d.wheels, values, source=str(state.profile.stack_toml), key=f"deferred.{d.name}.wheels")
    wanted = {h.split(":", 1)[1] for h in pin.hashes if h.startswith("sha256:")}
    try:
        path, sha = prebuilt.fetch(url, state.cache / "prebuilt", wanted)
    except prebuilt.Missing as exc:
        if d.prebuilt == "require":
            raise FetchError(f"{state.profile.stack_toml}: deferred.{d.name}: {exc}; nothing was installed "
                             "(fix: check the wheels template and invoke compile again, or set prebuilt = "
                             '"prefer" to build when it is missing)') from None
        console.warn(f"deferred: {d.name}: {exc}; looking in the wheelhouse / team index, else building")
        return None
    return Source("prebuilt", path, sha, strip_credentials(url), key)


def _last_line(output: str) -> str:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "none"


def expected_sources(state: State) -> dict[NormalizedName, str]:
    """For each deferred package the plan installs, where its wheel is expected to come from, as one
    phrase for the plan (``--dry-run`` too): a pinned prebuilt template, a wheel of the pinned version
    in the wheelhouse or on the team index (by the exact key when it can be known before the fetch, else
    by name and version), or a build. Only wheels whose sha256 the profile's wheels.txt records count.
    Reads only (one listing per package on the team index)."""
    from stacksync.backends import indexapi
    from stacksync.lock import wheelrecord  # lazy: start-up cost (deferred packages only)

    out: dict[NormalizedName, str] = {}
    root = wheelhouse_dir(state)
    recorded = {(r.key, r.sha256) for r in wheelrecord.read(state.profile.folder).values()}
    stored = [e for e in (wheelhouse.entries(root) if root.is_dir() else []) if (e.digest, e.sha256) in recorded]
    trusted_sha = {sha for _, sha in recorded}
    for action in state.plan.changes("deferred"):
        d = state.profile.deferred_by_name(action.name)
        pin = state.deferred.get(d.name) or state.lock[d.name]
        key = compute_key(d, pin, state.lock, state.snapshot, state.cache)
        exact = f"key {key.short}" if key else "key known after the fetch"
        if d.wheels:
            out[d.name] = f"prebuilt wheel (wheels template, prebuilt = {d.prebuilt})"
            continue
        hit = next((e for e in stored if (e.digest == key.digest if key else
                                          (e.package == d.name and e.version == pin.key()))), None)
        if hit is not None:
            out[d.name] = f"wheelhouse {root} ({exact})"
            continue
        url = team_index_url(state.profile)
        listed: list[str] = []
        if url is not None:
            try:
                listed = [f.filename for f in indexapi.project_files(url, d.name) if f.sha256 in trusted_sha]
            except IndexUnavailable:
                listed = []  # the fetch phase says so in one line
        for filename in listed:
            try:
                _, version, build, _ = parse_wheel_filename(filename)
            except InvalidWheelFilename:
                continue
            tag = f"{build[0]}{build[1]}" if build else ""
            if str(version) == str(Version(pin.key())) and tag.startswith(buildkey.BUILD_TAG_PREFIX) and (
                    key is None or tag == buildkey.build_tag(key.short)):
                out[d.name] = f"team index {strip_credentials(url or '')} ({exact})"
                break
        else:
            out[d.name] = f"build from the sdist ({exact}; no wheel recorded in wheels.txt for it in the wheelhouse"
            out[d.name] += " or on the team index)" if url else ")"
    return out


def wheels_expected(state: State) -> set[NormalizedName]:
    """Deferred packages the plan installs from a wheel rather than a build (see
    :func:`expected_sources`): preflight asks no build tools of a node for them."""
    return {n for n, how in expected_sources(state).items() if not how.startswith("build")}


def choose(state: State, d: Deferred, pin: Pin, key: BuildKey | None) -> Source:
    """The first source that has the wheel (see the module docstring); the sdist fetched for a build.
    A package named by ``--rebuild`` is always built from its sdist (the stored wheel is what failed)."""
    rebuild = d.name in {canonicalize_name(n) for n in getattr(state.opts, "rebuild", ())}
    source = None if rebuild else _prebuilt(state, d, pin, key)
    if source is None and key is not None and not rebuild:
        source = from_wheelhouse(state, d, key) or from_team_index(state, d, pin, key)
    if source is None:
        index = state.profile.index.expanded(source=str(state.profile.stack_toml))
        sdist = fetch_source(pin, index, state.cache)
        source = Source("build", sdist, file_sha256(sdist), strip_credentials(index.index_url or ""), key)
    return source


def choose_sources(state: State) -> None:
    """The fetch phase's part: decide (and download) each deferred package's wheel or sdist, before
    anything in the target changes; one line each says what and from where."""
    for action in [a for a in state.plan.changes("deferred") if a.kind != "remove"]:
        d = state.profile.deferred_by_name(action.name)
        pin = state.deferred.get(d.name) or state.lock[d.name]
        key = compute_key(d, pin, state.lock, state.snapshot, state.cache)
        source = choose(state, d, pin, key)
        state.deferred_sources[d.name] = source
        console.info(f"deferred: {d.name} {pin.key()}: {source.describe()}")
        if source.kind == "build" and key is not None and state.opts.no_wait:
            fail_if_leased(state, d, pin, key)


# ------------------------------------------------------------------------------------------ the install

def _build_once(state: State, d: Deferred, pin: Pin, source: Source, action_reason: str) -> Source:
    """Build under the key's lease (:mod:`stacksync.build.lease`): one node builds, the others wait
    and install the wheel it stores; a wheel stored while this one waited for the lease is taken."""
    from stacksync.build import lease  # lazy: start-up cost (deferred packages only)
    from stacksync.lock import wheelrecord

    key = source.key or compute_key(d, pin, state.lock, state.snapshot, state.cache, assume_absent=True)
    assert key is not None
    root = wheelhouse_dir(state)
    path = lease.path_for(root, key.short)
    what = f"{d.name} {pin.key()} (key {key.short})"

    def ready() -> bool:
        """A wheel for the key is stored, and recorded: an unrecorded one waits for the lease (its
        holder's build replaces it)."""
        try:
            entry = wheelhouse.find(key, root)
        except wheelhouse.TamperedWheel:
            return True  # _from_wheelhouse says so in one line
        rec = wheelrecord.read(state.profile.folder).get(key.digest)
        return entry is not None and rec is not None and rec.sha256 == entry.sha256

    # --rebuild NAME: the stored wheel is what failed; build under the lease whatever is stored
    rebuild = d.name in {canonicalize_name(n) for n in state.opts.rebuild}
    stale_s, timeout_s = lease.stale_after(), lease.wait_limit()
    while True:
        held = lease.acquire(path, what, wait=not state.opts.no_wait, stale_s=stale_s, timeout_s=timeout_s,
                             poll_s=min(1.0, stale_s / 10), ready=(lambda: False) if rebuild else ready,
                             say=console.info)
        if held is None:
            got = from_wheelhouse(state, d, key)
            if got is not None:
                console.info(f"deferred: {what}: built by another node; installing its wheel from {root}")
                return got
            continue
        with held:
            got = None if rebuild else from_wheelhouse(state, d, key)  # stored between the lookup and the lease
            if got is not None:
                return got
            return _build(state, d, pin, source, action_reason, key)


def _build(state: State, d: Deferred, pin: Pin, source: Source, action_reason: str, key: BuildKey) -> Source:
    """Build the wheel in the target (checks first: imports, build requirements), store it in the
    wheelhouse under ``key``; when it cannot be stored, keep it in the sync cache and say where."""
    # An import that passed after the last change (the rest phase's smoke) is not run again; the
    # imports and the reading of what is installed share one process (the env document is read
    # first, and is reused from the rest phase's smoke run when nothing changed since).
    results, now = smoke_and_probe(state.python, [m for m in d.imports if m not in state.smoked])
    failed = [r for r in results if not r["ok"]]
    if failed:
        raise SyncError(f"{pin.where}: {d.name} cannot be built: "
                        + "; ".join(f"import {r['name']} fails in the target ({r['error']})" for r in failed)
                        + " (fix: sync the base and rest phases first: "
                        f"invoke sync --profile {state.profile.name})")
    assert now is not None
    installed = now.versions()
    missing = [n for n in d.build_requires if n not in installed]
    if missing:
        raise SyncError(f"{state.profile.stack_toml}: deferred.{d.name}: build requirement(s) "
                        f"{', '.join(missing)} not installed in the target (fix: add them to "
                        f"{state.profile.requirements_in} and invoke compile --profile {state.profile.name})")
    one = write_requirements(state.workdir / f"deferred-{d.name}-build.txt", [pin])
    out = state.workdir / f"built-{d.name}"
    out.mkdir(parents=True, exist_ok=True)
    console.info(f"deferred: building {d.name} {pin.key()}" + (f" ({action_reason})" if action_reason else ""))
    # A build runs minutes to hours: a heartbeat (elapsed, its last line) unless -v streams it, and its
    # whole output in a log that outlives the run, named when it fails.
    log = state.cache / "logs" / f"build-{d.name}.log"
    try:
        with runner.watching(Heartbeat(f"deferred: building {d.name}", log=log)):
            state.backend.build_wheel(state.python, one, source.path.parent, out, env=dict(d.build_env),
                                      stream=state.opts.verbose)
    except CommandFailed as exc:
        raise SyncError(f"{d.name}: the build failed (exit {exc.returncode}); full log: {log} "
                        f"(last line: {_last_line(exc.output)})") from None
    built = sorted(out.glob("*.whl"))
    if len(built) != 1:
        raise SyncError(f"{d.name}: the build wrote {len(built)} wheels into {out}, expected one "
                        "(fix: run the sync with --verbose to see the build's output)")
    root = wheelhouse_dir(state)
    # Recorded first: a node waiting on the lease trusts the wheel the moment it appears.
    sha = file_sha256(built[0])
    record_built(state, d, pin, key, wheelhouse.tagged_name(built[0].name, key.short), sha)
    try:
        faults.point("deferred:store")
        entry = wheelhouse.add(root, built[0], key, profile=state.profile.name, source="build", sha256=sha)
    except OSError as exc:
        why = f"could not store {built[0].name} in the wheelhouse {root} ({exc.strerror or exc})"
        try:
            kept = _keep_in_cache(state, built[0], key)
        except OSError as again:  # the cache is full too: install it from the run's folder all the same
            console.warn(f"deferred: {why}, nor keep it in {state.cache / 'built'} ({again.strerror or again}); "
                         "installing it from the run's temporary folder, it is not kept (fix: free space, then "
                         "sync again)")
            return Source("build", built[0], sha, str(built[0].parent), key)
        console.warn(f"deferred: {why}; the wheel is kept at {kept} and installed from there (fix: free or fix "
                     "the wheelhouse, then sync again to store it)")
        return Source("build", kept, sha, str(kept.parent), key)
    console.info(f"deferred: stored {entry.wheel.name} in {root}")
    return Source("build", entry.wheel, entry.sha256, str(root), key)


def _keep_in_cache(state: State, wheel: Path, key: BuildKey) -> Path:
    """Move a built wheel out of the run's temporary folder into the sync cache (``<cache>/built/<key>``)."""
    folder = state.cache / "built" / key.short
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / wheelhouse.tagged_name(wheel.name, key.short)
    atomic_copy(wheel, target, move=True)
    return target


def install_deferred(state: State) -> None:
    """Install each deferred package the plan changes from its wheel (built first when no source had
    it), hash-checked, no dependencies, no index; record its key and source; then the deferred smoke."""
    from stacksync.env.environment import snapshot as read_snapshot

    todo = state.plan.changes("deferred")
    if not todo:
        adopt_unrecorded(state)
        return
    now = read_snapshot(state.python)  # after the base / rest phases: the key's facts as they are now
    for action in todo:
        d = state.profile.deferred_by_name(action.name)
        pin = state.deferred.get(d.name) or state.lock[d.name]
        key = compute_key(d, pin, state.lock, now, state.cache)
        source = state.deferred_sources.get(d.name)
        if source is None or (source.kind != "prebuilt" and (source.key is None or key is None
                                                               or source.key.digest != key.digest)):
            source = choose(state, d, pin, key)
            state.deferred_sources[d.name] = source
        if source.kind == "build":
            source = _build_once(state, d, pin, source, action.reason)
            state.deferred_sources[d.name] = source
        else:
            console.info(f"deferred: installing {d.name} {pin.key()} from the {source.describe()}")
        _install_wheel(state, d, pin, source, force=d.name in now.versions())
        provenance.record_installed(state.snapshot, {d.name: (pin.key(), source.sha256)}, source.kind)
        built_against = {str(b): state.lock[b].key() for b in d.rebuild_on if b in state.lock}
        write_state(state.snapshot.prefix, d.name, pin.key(), built_against,
                    key=source.key.to_json() if source.key else None, source=source.to_json())
    adopt_unrecorded(state)
    smoke_phase(state, "deferred")


def _install_wheel(state: State, d: Deferred, pin: Pin, source: Source, *, force: bool) -> None:
    """``--require-hashes`` with the wheel's sha256, ``--no-deps``, no index: only that file can be
    installed. A prebuilt wheel whose name carries a local label (``+cu12torch2.4...``) that its
    metadata does not is given as ``name @ file://`` (pip refuses it as ``name==version``)."""
    state.smoked.clear()
    req = state.workdir / f"deferred-{d.name}-wheel.txt"
    head = (f"{d.name} @ {source.path.absolute().as_uri()}" if source.kind == "prebuilt"
            else f"{d.name}=={pin.key()}")
    req.write_text(f"{head} \\\n    --hash=sha256:{source.sha256}\n", encoding="utf-8")
    state.backend.install(state.python, req, source.path.parent, only_binary=True, no_deps=True,
                          force_reinstall=force, stream=state.opts.verbose)


def adopt_unrecorded(state: State) -> None:
    """A deferred package installed as locked with no build record (installed before stacksync, base
    unchanged since): record the current base versions (and the key) so later changes trigger a rebuild."""
    if not state.plan.unrecorded:
        return
    versions = state.snapshot.versions()
    for name in state.plan.unrecorded:
        d = state.profile.deferred_by_name(name)
        pin = state.deferred.get(name) or state.lock.get(name)
        key = compute_key(d, pin, state.lock, state.snapshot, state.cache) if pin is not None else None
        write_state(state.snapshot.prefix, name, versions[name], {b: versions[b] for b in d.rebuild_on
                                                                 if b in versions},
                    key=key.to_json() if key else None, source={"kind": "adopted"})


def records(prefix: Path) -> dict[str, Any]:
    """The target's deferred build records (``stacksync-state.json``; empty when none): for receipts."""
    try:
        data = json.loads((Path(prefix) / STATE_FILE).read_text(encoding="utf-8"))
        out = data.get(STATE_KEY, {}) if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}
    return dict(out) if isinstance(out, dict) else {}


def write_state(prefix: Path, name: str, version: str, built_against: Mapping[str, str], *,
                key: Mapping[str, Any] | None = None, source: Mapping[str, Any] | None = None) -> Path:
    """Record in ``<prefix>/stacksync-state.json`` that deferred package ``name`` ``version`` was built
    against ``built_against`` (base name -> exact version), with its build key and where its wheel
    came from. Shape::

        {"deferred": {"flash-attn": {"version": "2.8.0.post2", "built_against": {"torch": "2.4.0"},
                                     "built_at": "2026-...Z", "key": {...}, "key_digest": "9c1f...",
                                     "source": {"kind": "wheelhouse", "file": "...", "sha256": "...",
                                                "from": "...", "key": "9c1f..."}}}}
    """
    path = Path(prefix) / STATE_FILE
    data = read_state_file(Path(prefix))  # one stacksync did not write stops here, never rewritten from {}
    records = data.setdefault(STATE_KEY, {})
    record: dict[str, Any] = {"version": version, "built_against": dict(built_against),
                              "built_at": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    if key is not None:
        record["key"] = dict(key)
        record["key_digest"] = BuildKey.from_json(key).digest
    if source is not None:
        record["source"] = dict(source)
    records[name] = record
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def fetch_source(pin: Pin, index: profile_mod.IndexConfig, cache: Path) -> Path:
    """The deferred package's file (an sdist for flash-attn) by URL, its sha256 checked against the
    lock. pip cannot download it: it prepares metadata, which imports torch."""
    from stacksync.backends import indexapi

    wanted = {h.split(":", 1)[1] for h in pin.hashes if h.startswith("sha256:")}
    try:
        files = [f for f in indexapi.project_files(index, pin.name) if pin.version is not None
                 and f.version == Version(pin.version)]
    except InvalidVersion as exc:
        raise FetchError(f"{pin.where}: {pin.name}: {pin.version!r} is not a version") from exc
    except IndexUnavailable as exc:
        raise FetchError(f"{pin.where}: fetching {pin.display()}: {exc}") from None
    if not files:
        raise FetchError(f"{pin.where}: {pin.display()} is not on the index "
                         f"({redact(index.index_url or '')}) (fix: pin a version the index serves, then "
                         "invoke compile again)")
    for f in files:
        target = cache / f.filename
        if target.is_file() and file_sha256(target) in wanted:
            return target
    matching = [f for f in files if f.sha256 in wanted] or [f for f in files if f.sha256 is None]
    for f in matching:
        try:
            got = indexapi.fetch_file(f, cache, sha256=f.sha256)
        except IndexUnavailable as exc:
            raise FetchError(f"{pin.where}: fetching {pin.display()}: {exc}") from None
        if file_sha256(got) in wanted:
            return got
        got.unlink(missing_ok=True)
    shown = ", ".join(f"{f.filename} sha256:{f.sha256 or '?'}" for f in files)
    raise FetchError(f"{pin.where}: {pin.display()}: hash mismatch: the index has {shown}, the lock "
                     f"expects {', '.join(sorted(wanted))} (fix: find out why the file changed; if it is "
                     "legitimate, invoke compile again)")
