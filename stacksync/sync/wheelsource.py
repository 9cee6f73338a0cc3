"""Where a deferred package's wheel comes from, and whether it may be trusted (moved out of
:mod:`stacksync.sync.deferred`, which uses it).

:class:`Source` says where (prebuilt | wheelhouse | team-index | build). A wheelhouse or team index
wheel is taken only when its sha256 is the one the profile's ``wheels.txt``
(:mod:`stacksync.lock.wheelrecord`) records for its build key (:func:`trusted`); a wheel this node
builds is recorded there (:func:`record_built`). :func:`fail_if_leased` (``--no-wait``) and
:func:`check_writable` (preflight) run before the target changes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import Version

from stacksync.build import buildkey, wheelhouse
from stacksync.build.buildkey import BuildKey
from stacksync.core import console
from stacksync.core.errors import FetchError, IndexUnavailable, ProfileError, SyncError
from stacksync.core.redact import MissingVariable, expand, redact, strip_credentials
from stacksync.lock.lockfile import Pin
from stacksync.lock.profile import Deferred, Profile
from stacksync.sync.state import State

__all__ = ["STATE_FILE", "Source", "UntrustedWheel", "wheelhouse_dir", "trusted", "record_built", "from_wheelhouse",
           "team_index_url", "from_team_index", "fail_if_leased", "check_writable"]

STATE_FILE = "stacksync-state.json"


@dataclass(frozen=True)
class Source:
    """Where a deferred package's wheel comes from: ``kind`` (prebuilt | wheelhouse | team-index |
    build), the file (the wheel; for ``build`` the sdist until it is built), its sha256, ``origin``
    (a URL or folder, redacted) and the build key (``None`` when it could not be known yet)."""

    kind: str
    path: Path
    sha256: str
    origin: str
    key: BuildKey | None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "file": self.path.name, "sha256": self.sha256, "from": redact(self.origin),
                "key": self.key.digest if self.key else None}

    def describe(self) -> str:
        what = {"prebuilt": "prebuilt wheel", "wheelhouse": "wheelhouse wheel", "team-index": "team index wheel",
                "build": "build from the sdist"}[self.kind]
        key = f" (key {self.key.short})" if self.key else ""
        return f"{what} {self.path.name}{key} from {redact(self.origin)}"


def wheelhouse_dir(state: State) -> Path:
    cli = getattr(state.opts, "wheelhouse", None)
    return wheelhouse.resolve_dir(cli, state.profile.wheelhouse, state.profile.folder)


class UntrustedWheel(SyncError):
    """A wheelhouse / team index wheel whose sha256 the profile's wheels.txt does not record for its key."""

    exit_code = 1


def trusted(state: State, d: Deferred, key: BuildKey, sha256: str, where: str) -> bool:
    """Whether the wheel at ``where`` (sha256 ``sha256``) may be installed: only when the profile's
    wheels.txt records that sha256 for ``key``. Otherwise one line says which file differs from what
    was recorded, and it is built instead (``False``) or refused (``untrusted = "refuse"``)."""
    from stacksync.lock import wheelrecord  # lazy: start-up cost (deferred packages only)

    recorded = state.profile.folder / wheelrecord.WHEELS_TXT
    rec = wheelrecord.read(state.profile.folder).get(key.digest)
    if rec is not None and rec.sha256 == sha256:
        return True
    if rec is not None:
        why = (f"{redact(where)}: sha256 {sha256} is not the {rec.sha256} that {recorded} records for key "
               f"{key.short} ({rec.filename})")
    else:
        why = (f"{redact(where)}: {recorded} records no wheel for key {key.short}; its sha256 {sha256} is only the "
               "word of whoever wrote it there")
    if d.untrusted == "refuse":
        raise UntrustedWheel(f"{why}; refusing it, nothing was installed (fix: if the wheel is legitimate, pull the "
                             f"{wheelrecord.WHEELS_TXT} that records it, or record it with invoke publish; else remove "
                             f"it, or set untrusted = \"build\" in [deferred.{d.name}] to build instead)")
    console.warn(f"deferred: {why}; not installing it, building from the sdist instead")
    return False


def record_built(state: State, d: Deferred, pin: Pin, key: BuildKey, filename: str, sha256: str) -> None:
    """Write the wheel this node built into the profile's wheels.txt (commit it with the locks)."""
    from stacksync.lock import wheelrecord  # lazy: start-up cost (deferred packages only)

    rec = wheelrecord.WheelRecord(d.name, pin.key(), key.digest, sha256, filename)
    try:
        if wheelrecord.record(state.profile.folder, state.profile.name, [rec]):
            console.info(f"deferred: recorded key {key.short} sha256 {sha256[:12]}... in "
                         f"{state.profile.folder / wheelrecord.WHEELS_TXT} (commit it with the locks)")
    except OSError as exc:
        console.warn(f"deferred: could not record key {key.short} in {state.profile.folder / wheelrecord.WHEELS_TXT} "
                     f"({exc.strerror or exc}); other nodes will not trust this wheel until it is recorded")


def from_wheelhouse(state: State, d: Deferred, key: BuildKey) -> Source | None:
    root = wheelhouse_dir(state)
    entry = wheelhouse.find(key, root)
    if entry is None or not trusted(state, d, key, entry.sha256, str(entry.wheel)):
        return None
    return Source("wheelhouse", entry.wheel, entry.sha256, str(root), key)


def team_index_url(prof: Profile) -> str | None:
    if not prof.team_index:
        return None
    try:
        return expand(prof.team_index)
    except MissingVariable as exc:
        raise ProfileError(prof.stack_toml, "team_index", f"environment variable {exc.args[0]} is not set",
                           f"export {exc.args[0]}=... before running") from None


def from_team_index(state: State, d: Deferred, pin: Pin, key: BuildKey) -> Source | None:
    from stacksync.backends import indexapi

    url = team_index_url(state.profile)
    if url is None:
        return None
    try:
        files = indexapi.project_files(url, d.name)
    except indexapi.ProjectNotFound:
        return None
    except IndexUnavailable as exc:
        raise FetchError(f"{state.profile.stack_toml}: team_index: {exc}; nothing was installed") from None
    want_tag, want_version = buildkey.build_tag(key.short), Version(pin.key())
    for f in files:
        try:
            _, version, build, _ = parse_wheel_filename(f.filename)
        except InvalidWheelFilename:
            continue
        if version != want_version or not build or f"{build[0]}{build[1]}" != want_tag:
            continue
        if f.sha256 is None:  # never an unhashed download
            console.warn(f"deferred: team index lists {f.filename} without a sha256; not using it")
            continue
        if not trusted(state, d, key, f.sha256, f"team index {strip_credentials(url)} {f.filename}"):
            continue
        root = wheelhouse_dir(state)
        try:
            got = indexapi.fetch_file(f, wheelhouse.incoming(root), sha256=f.sha256)
        except IndexUnavailable as exc:
            raise FetchError(f"{state.profile.stack_toml}: team_index: {exc}; nothing was installed") from None
        entry = wheelhouse.add(root, got, key, profile=state.profile.name, built_on="team index",
                               source=f"team-index {strip_credentials(url)}", move=True, sha256=f.sha256)
        return Source("team-index", entry.wheel, entry.sha256, strip_credentials(url), key)
    return None


def fail_if_leased(state: State, d: Deferred, pin: Pin, key: BuildKey) -> None:
    """``--no-wait``: another node building this key stops the sync before the target changes."""
    from stacksync.build import lease  # lazy: start-up cost (deferred packages only)

    path = lease.path_for(wheelhouse_dir(state), key.short)
    holder = lease.read_holder(path)
    if holder is not None and lease.stale_reason(holder, now=time.time(), stale_s=lease.stale_after()) is None:
        raise lease.LeaseBusy(f"{lease.busy_line(path, holder)}; nothing was changed (fix: sync again without "
                              "--no-wait to wait for it and install its wheel)")


def check_writable(state: State) -> None:
    """Preflight: the wheelhouse (when a deferred wheel will be stored there) and the target's state
    folder can be written, before anything in the target changes."""
    todo = [a for a in state.plan.changes("deferred") if a.kind != "remove"]
    if not todo or "deferred" not in state.steps:
        return
    if any(not state.profile.deferred_by_name(a.name).wheels for a in todo):
        wheelhouse.check_writable(wheelhouse_dir(state), "wheelhouse")
    wheelhouse.check_writable(state.snapshot.prefix, f"target's state folder ({STATE_FILE})")
