"""The wheelhouse: deferred-package wheels built once, kept by build key, installed everywhere.

Layout (one folder per key; safe to share between profiles, venvs and machines of one platform)::

    <wheelhouse>/<short key>/flash_attn-2.8.0.post2-0ss<short key>-cp311-cp311-linux_x86_64.whl
    <wheelhouse>/<short key>/flash_attn-2.8.0.post2-0ss<short key>-cp311-cp311-linux_x86_64.whl.stacksync.json

The wheel is the one ``pip wheel`` / ``uv build`` wrote, renamed only: its build tag ``0ss<short>``
carries the key, so the file name stays a valid wheel name that pip installs by hash at the pinned
version (a local version label would change the version the twin check compares), and a team index
(pypiserver, devpi, Artifactory) holds many builds of one version side by side. The sidecar
``<wheel>.stacksync.json`` holds the whole key, the wheel's sha256 and size, when, where and for
which profile it was built, and where it came from.

Where it is: ``--wheelhouse`` > ``STACKSYNC_WHEELHOUSE`` > ``wheelhouse =`` in stack.toml (relative
to the profile folder) > ``<cache dir>/wheelhouse`` (``.stacksync-cache/wheelhouse``).

Public API (used by sync's deferred phase, ``invoke wheelhouse``, ``invoke publish``, and exports):

* :func:`lookup` ``(key, root=None) -> Path | None``: the wheel for a :class:`~stacksync.build.buildkey.BuildKey`
  (or its digest), its sha256 checked against the sidecar (:class:`TamperedWheel` when it differs);
  :func:`find` returns the whole :class:`Entry` (key document, sha256, size, built at / on, source).
* :func:`for_target` ``(prefix, name, root=None) -> Entry | None``: the wheel a synced target's deferred
  package was installed from (its ``stacksync-state.json`` record's key), e.g. for a lock export.
* :func:`entries` ``(root) -> list[Entry]``; :func:`add` stores a wheel; :func:`prune` removes entries.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from stacksync.build.buildkey import BuildKey, build_tag
from stacksync.core import defaults
from stacksync.core.errors import StacksyncError
from stacksync.core.fs import atomic_copy, atomic_write_text
from stacksync.core.redact import redact
from stacksync.lock.lockfile import file_sha256

__all__ = ["ENV_VAR", "SIDECAR_SUFFIX", "Entry", "TamperedWheel", "resolve_dir", "lookup", "find", "for_target",
           "entries", "add", "prune", "tagged_name", "incoming", "BuildKey", "Unwritable", "check_writable"]

ENV_VAR = defaults.WHEELHOUSE_ENV
SIDECAR_SUFFIX = ".stacksync.json"


class TamperedWheel(StacksyncError):
    """A wheelhouse wheel whose sha256 is not the one recorded when it was stored."""

    exit_code = 1


@dataclass(frozen=True)
class Entry:
    """One stored wheel and what its sidecar says."""

    wheel: Path
    key: Mapping[str, Any]
    digest: str
    sha256: str
    size: int
    built_at: str
    built_on: str
    profile: str
    source: str

    @property
    def short(self) -> str:
        return self.digest[:12]

    @property
    def package(self) -> str:
        return str(self.key.get("package", ""))

    @property
    def version(self) -> str:
        return str(self.key.get("version", ""))

    def age_days(self, now: _dt.datetime | None = None) -> float:
        try:
            when = _dt.datetime.strptime(self.built_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc)
        except ValueError:
            return float("inf")
        return ((now or _dt.datetime.now(_dt.timezone.utc)) - when).total_seconds() / 86400

    def to_json(self) -> dict[str, Any]:
        return {"wheel": str(self.wheel), "key": dict(self.key), "digest": self.digest, "sha256": self.sha256,
                "size": self.size, "built_at": self.built_at, "built_on": self.built_on, "profile": self.profile,
                "source": self.source}


def resolve_dir(cli: str | os.PathLike[str] | None = None, profile_value: str | None = None,
                profile_folder: Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The wheelhouse folder after precedence (argument > ``STACKSYNC_WHEELHOUSE`` > stack.toml > default)."""
    env = os.environ if environ is None else environ
    if cli:
        return Path(cli).absolute()
    given = defaults.setting(ENV_VAR, env)
    if given:
        return Path(given).absolute()
    if profile_value:
        path = Path(os.path.expanduser(profile_value))
        return (path if path.is_absolute() or profile_folder is None else profile_folder / path).absolute()
    return (defaults.cache_dir() / "wheelhouse").absolute()


def tagged_name(filename: str, short: str) -> str:
    """``name-version-py-abi-plat.whl`` with the build tag ``0ss<short>`` (replacing one it had)."""
    parse_wheel_filename(filename)  # InvalidWheelFilename for anything else
    parts = filename[:-len(".whl")].split("-")
    return "-".join([*parts[:2], build_tag(short), *parts[-3:]]) + ".whl"


def _digest_of(key: BuildKey | str) -> str:
    return key if isinstance(key, str) else key.digest


def _read_entry(sidecar: Path) -> Entry | None:
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
        wheel = sidecar.with_name(sidecar.name[:-len(SIDECAR_SUFFIX)])
        return Entry(wheel=wheel, key=dict(data["key"]), digest=str(data["digest"]), sha256=str(data["sha256"]),
                     size=int(data["size"]), built_at=str(data.get("built_at", "")),
                     built_on=str(data.get("built_on", "")), profile=str(data.get("profile", "")),
                     source=str(data.get("source", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def entries(root: Path) -> list[Entry]:
    """Every entry whose sidecar and wheel are both there, sorted by package, version, date."""
    found = [e for e in (_read_entry(p) for p in sorted(Path(root).glob(f"*/*.whl{SIDECAR_SUFFIX}")))
             if e is not None and e.wheel.is_file()]
    return sorted(found, key=lambda e: (e.package, e.version, e.built_at))


def lookup(key: BuildKey | str, root: Path | None = None) -> Path | None:
    """The wheel stored for ``key`` (a key or its full digest), or ``None``. Its sha256 must be the one
    recorded in its sidecar: a changed file raises :class:`TamperedWheel`, and nothing installs it."""
    entry = find(key, root)
    return entry.wheel if entry is not None else None


def find(key: BuildKey | str, root: Path | None = None) -> Entry | None:
    """:func:`lookup`, returning the whole :class:`Entry` (its ``sha256`` is the file's, checked now)."""
    digest = _digest_of(key)
    folder = (root or resolve_dir()) / digest[:12]
    for sidecar in sorted(folder.glob(f"*.whl{SIDECAR_SUFFIX}")) if folder.is_dir() else []:
        entry = _read_entry(sidecar)
        if entry is None or entry.digest != digest or not entry.wheel.is_file():
            continue
        got = file_sha256(entry.wheel)
        if got != entry.sha256:
            raise TamperedWheel(f"{entry.wheel}: sha256 {got} is not the {entry.sha256} recorded when it was stored; "
                                f"refusing it, nothing was installed (fix: invoke wheelhouse --prune --key "
                                f"{entry.short}, then sync again to rebuild it)")
        return entry
    return None


def for_target(prefix: Path, name: str, root: Path | None = None) -> Entry | None:
    """The entry of the wheel deferred package ``name`` in the environment at ``prefix`` was installed
    from (or built into), found by the key its ``stacksync-state.json`` records; ``None`` when there is
    no record, no key, or no such wheel here (:class:`TamperedWheel` when the file changed)."""
    from packaging.utils import canonicalize_name

    try:
        data = json.loads((Path(prefix) / "stacksync-state.json").read_text(encoding="utf-8"))
        digest = data["deferred"][canonicalize_name(name)]["key_digest"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return find(str(digest), root) if isinstance(digest, str) else None


def incoming(root: Path) -> Path:
    """A folder inside the wheelhouse for downloads on their way in (same file system: moved, not copied)."""
    folder = Path(root) / ".incoming"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sidecar_of(wheel: Path) -> Path:
    return wheel.with_name(wheel.name + SIDECAR_SUFFIX)


def add(root: Path, wheel: Path, key: BuildKey, *, profile: str, source: str, built_on: str | None = None,
        built_at: str | None = None, move: bool = False, sha256: str | None = None) -> Entry:
    """Store ``wheel`` under ``key``, with the build tag in its name and its sidecar; both written under
    temporary names, then renamed. ``move``: rename it in when it is on the same file system (a
    download into :func:`incoming`); ``sha256``: its hash, already checked (not computed again)."""
    folder = Path(root) / key.short
    folder.mkdir(parents=True, exist_ok=True)
    try:
        name = tagged_name(wheel.name, key.short)
    except InvalidWheelFilename as exc:
        raise StacksyncError(f"{wheel}: not a wheel file name ({exc})") from None
    target = folder / name
    sha = sha256 or file_sha256(wheel)  # hashed before a move takes the file away
    atomic_copy(wheel, target, move=move)
    entry = Entry(wheel=target, key=key.to_json(), digest=key.digest, sha256=sha, size=target.stat().st_size,
                  built_at=built_at or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                  built_on=built_on or socket.gethostname(), profile=profile, source=redact(source))
    doc = {"stacksync_wheel": 1, **{k: v for k, v in entry.to_json().items() if k != "wheel"},
           "wheel": target.name, "describe": key.describe()}
    sidecar = sidecar_of(target)
    atomic_write_text(sidecar, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return entry


class Unwritable(StacksyncError):
    """A folder a sync must write to (the wheelhouse, the target's state) cannot be written."""

    exit_code = 1


def check_writable(folder: Path, what: str) -> None:
    """Create ``folder`` if needed and write (then remove) a file in it; :class:`Unwritable` (one line,
    with the fix) when that fails. Run before the target changes, so that an hour-long build is
    never thrown away because its wheel has nowhere to go."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".stacksync-write-check.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise Unwritable(f"{folder}: the {what} is not writable ({exc.strerror or exc}); nothing was changed "
                         f"(fix: make it writable, or pick another one)") from None


def parse_days(text: str | None) -> float | None:
    """``--older-than`` days (``None`` when not given); anything else is one line with the fix."""
    if not text:
        return None
    try:
        days = float(text)
    except ValueError:
        days = -1.0
    if days < 0:
        raise StacksyncError(f"--older-than {text!r}: not a number of days (fix: e.g. --older-than 30)")
    return days


def prune(root: Path, *, older_than_days: float | None = None, keys: Sequence[str] = (),
          profile: str | None = None, dry_run: bool = False, now: _dt.datetime | None = None) -> list[Entry]:
    """Remove the entries matching every filter given (older than N days, a key prefix among ``keys``,
    built for ``profile``); at least one filter is required. Returns what was (or would be) removed."""
    if older_than_days is None and not keys and profile is None:
        raise StacksyncError("invoke wheelhouse --prune: name what to remove (fix: add --older-than DAYS, "
                             "--key KEY or --profile NAME)")
    chosen = [e for e in entries(root)
              if (older_than_days is None or e.age_days(now) > older_than_days)
              and (not keys or any(e.digest.startswith(k) for k in keys))
              and (profile is None or e.profile == profile)]
    if not dry_run:
        for e in chosen:
            sidecar_of(e.wheel).unlink(missing_ok=True)
            e.wheel.unlink(missing_ok=True)
            try:
                e.wheel.parent.rmdir()
            except OSError:
                pass
    return chosen


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def render(found: Sequence[Entry], root: Path) -> str:
    """``invoke wheelhouse``'s table: key, package, what it is built for, size, when / where / from."""
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"wheelhouse {root} ({len(found)} wheel(s))")
    for h in ("key", "package", "built for", "size", "built at", "built on", "profile", "source"):
        table.add_column(h, justify="right" if h == "size" else "left")
    for e in found:
        base = ", ".join(f"{n} {v}" for n, v in dict(e.key.get("base", {})).items()) or "-"
        abi = e.key.get("cxx11_abi")
        facts = (f"{base}; cuda {e.key.get('cuda') or 'absent'}; cxx11abi "
                 f"{'absent' if abi is None else ('TRUE' if abi else 'FALSE')}; {e.key.get('python')} "
                 f"{e.key.get('platform')}")
        env = dict(e.key.get("build_env", {}))
        if env:
            facts += "; " + ", ".join(f"{k}={v}" for k, v in sorted(env.items()))
        table.add_row(e.short, f"{e.package} {e.version}", facts, _size(e.size), e.built_at, e.built_on,
                      e.profile, redact(e.source))
    console = Console(file=StringIO(), width=200, color_system=None, highlight=False)
    console.print(table)
    return str(console.file.getvalue())  # type: ignore[attr-defined]
