"""Phase 6 of ``invoke sync``: the deferred packages (flash-attn), installed last, without build
isolation, against the base the earlier phases installed; and the build record each leaves in the
target (``<prefix>/stacksync-state.json``) that tells the plan when a base change needs a rebuild.

Moved out of :mod:`stacksync.sync` unchanged; :func:`install_deferred` is still run by
``sync._drive`` with its ``State``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.version import InvalidVersion, Version

from . import console
from . import profile as profile_mod
from .environment import probe
from .errors import FetchError, IndexUnavailable, SyncError
from .lockfile import Pin, file_sha256
from .plan import STATE_KEY
from .redact import redact

if TYPE_CHECKING:
    from .sync import State

__all__ = ["STATE_FILE", "install_deferred", "write_state"]

STATE_FILE = "stacksync-state.json"


def install_deferred(state: State) -> None:
    """Build each unsatisfied deferred package in the target (no build isolation, no cache, the
    profile's build_env), after checking its imports and build requirements; record what it was built
    against; then the deferred smoke."""
    from .sync import _smoke_phase, _write_requirements, smoke

    todo = state.plan.changes("deferred")
    if not todo:
        _adopt_unrecorded(state)
        return
    for action in todo:
        d = state.profile.deferred_by_name(action.name)
        pin = state.deferred.get(d.name) or state.lock[d.name]
        # An import that passed after the last change (the rest phase's smoke) is not run again.
        failed = [r for r in smoke(state.python, [m for m in d.imports if m not in state.smoked]) if not r["ok"]]
        if failed:
            raise SyncError(f"{pin.where}: {d.name} cannot be built: "
                            + "; ".join(f"import {r['name']} fails in the target ({r['error']})" for r in failed)
                            + " (fix: sync the base and rest phases first: "
                            f"invoke sync --profile {state.profile.name})")
        installed = probe(state.python).versions()
        missing = [n for n in d.build_requires if n not in installed]
        if missing:
            raise SyncError(f"{state.profile.stack_toml}: deferred.{d.name}: build requirement(s) "
                            f"{', '.join(missing)} not installed in the target (fix: add them to "
                            f"{state.profile.requirements_in} and invoke compile --profile {state.profile.name})")
        one = _write_requirements(state.workdir / f"deferred-{d.name}.txt", [pin])
        state.smoked.clear()
        console.info(f"deferred: building {d.name} {pin.key()}" + (f" ({action.reason})" if action.reason else ""))
        state.backend.install(state.python, one, state.cache, only_binary=False, no_deps=True,
                              force_reinstall=d.name in installed, build_isolation=False,
                              env=dict(d.build_env), stream=state.opts.verbose)
        after = probe(state.python)
        write_state(after.prefix, d.name, pin.key(), {b: after.versions()[b] for b in d.rebuild_on
                                                      if b in after.versions()})
    _adopt_unrecorded(state)
    _smoke_phase(state, "deferred")


def _adopt_unrecorded(state: State) -> None:
    """A deferred package installed as locked with no build record (installed before stacksync, base
    unchanged since): record the current base versions so later base changes trigger a rebuild."""
    if not state.plan.unrecorded:
        return
    versions = state.snapshot.versions()
    for name in state.plan.unrecorded:
        d = state.profile.deferred_by_name(name)
        write_state(state.snapshot.prefix, name, versions[name], {b: versions[b] for b in d.rebuild_on
                                                                 if b in versions})


def write_state(prefix: Path, name: str, version: str, built_against: Mapping[str, str]) -> Path:
    """Record in ``<prefix>/stacksync-state.json`` that deferred package ``name`` ``version`` was built
    against ``built_against`` (base name -> exact version). Shape::

        {"deferred": {"flash-attn": {"version": "2.8.0.post2", "built_against": {"torch": "2.4.0"},
                                     "built_at": "2026-...Z"}}}
    """
    path = Path(prefix) / STATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        assert isinstance(data, dict)
    except (OSError, ValueError, AssertionError):
        data = {}
    records = data.setdefault(STATE_KEY, {})
    records[name] = {"version": version, "built_against": dict(built_against),
                     "built_at": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{STATE_FILE}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)
    return path


def _fetch_deferred(pin: Pin, index: profile_mod.IndexConfig, cache: Path) -> Path:
    """The deferred package's file (an sdist for flash-attn) by URL, its sha256 checked against the
    lock. pip cannot download it: it prepares metadata, which imports torch (FIELD-NOTES)."""
    from . import indexapi

    wanted = {h.split(":", 1)[1] for h in pin.hashes if h.startswith("sha256:")}
    try:
        files = [f for f in indexapi.project_files(index, pin.name) if pin.version is not None
                 and f.version == Version(pin.version)]
    except InvalidVersion as exc:
        raise FetchError(f"{pin.where}: {pin.name}: {pin.version!r} is not a version") from exc
    except IndexUnavailable as exc:
        raise FetchError(f"{pin.where}: fetching {pin.name}=={pin.version}: {exc}") from None
    if not files:
        raise FetchError(f"{pin.where}: {pin.name}=={pin.version} is not on the index "
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
            raise FetchError(f"{pin.where}: fetching {pin.name}=={pin.version}: {exc}") from None
        if file_sha256(got) in wanted:
            return got
        got.unlink(missing_ok=True)
    shown = ", ".join(f"{f.filename} sha256:{f.sha256 or '?'}" for f in files)
    raise FetchError(f"{pin.where}: {pin.name}=={pin.version}: hash mismatch: the index has {shown}, the lock "
                     f"expects {', '.join(sorted(wanted))} (fix: find out why the file changed; if it is "
                     "legitimate, invoke compile again)")
