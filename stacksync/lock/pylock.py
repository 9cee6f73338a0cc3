"""PEP 751 lock files (``pylock.toml``): written from a profile's hashed lock, read into the lock model.

Writing (``invoke export --format pylock``): every pin of ``requirements.txt`` and ``deferred.txt``
becomes a ``[[packages]]`` entry. A lock line carries hashes but no URLs, so the index's simple API
(:mod:`stacksync.backends.indexapi`, one request per project) gives each file's name and URL, and only the
files whose sha256 the lock lists are kept: wheels in ``wheels``, the sdist in ``sdist`` (the deferred
flash-attn). Direct references become ``vcs`` (with the commit) or ``archive`` entries. Wheels the
wheelhouse (:mod:`stacksync.build.wheelhouse`) built for the lock are added to their package's ``wheels``.
Every URL is written without credentials (:func:`stacksync.core.redact.strip_credentials`); the index URL a profile
holds as ``${VAR}`` is written as the URL without its userinfo.

Reading (:func:`read`): each package becomes a :class:`~stacksync.lock.lockfile.Pin` (``name==version``,
its marker, every sha256 of its wheels and sdist), so that ``invoke sync`` and ``invoke diff`` take a
``pylock.toml`` as they take a hashed requirements lock. ``dependencies`` are read back as the
``# via`` edges the base phase's closure is computed from. Problems name the file, the line of the
``[[packages]]`` entry and the fix.

Spec: https://packaging.python.org/en/latest/specifications/pylock-toml/ (lock-version 1.0).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.markers import InvalidMarker, Marker
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from stacksync.core import defaults
from stacksync.core.errors import LockError, StacksyncError
from stacksync.core.redact import shown_line, strip_credentials
from stacksync.lock.lockfile import LockProblems, Pin, RequirementsFile

if TYPE_CHECKING:
    pass

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


_PACKAGE_INDEX = re.compile(r"^packages\[(\d+)\]")

__all__ = ["LOCK_VERSION", "is_pylock", "read", "render", "split_deferred", "Package", "PylockError", "direct_package",
           "same_version", "validate_text"]

LOCK_VERSION = "1.0"
_NAME = re.compile(r"^pylock\.([^.]+\.)?toml$")
_VCS = ("git", "hg", "svn", "bzr")


class PylockError(StacksyncError):
    """A pylock.toml that cannot be written (a lock hash the index does not serve) or read."""


def is_pylock(path: str | Path) -> bool:
    """PEP 751 file names: ``pylock.toml`` or ``pylock.<name>.toml``."""
    return bool(_NAME.match(Path(path).name))


# ------------------------------------------------------------------------------------------- model

@dataclass
class Artifact:
    """A wheel, sdist or archive: ``url`` (or ``path``) and ``hashes`` (algo -> hex)."""

    hashes: Mapping[str, str]
    url: str | None = None
    path: str | None = None
    name: str | None = None

    def to_toml(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.name:
            out["name"] = self.name
        if self.url:
            out["url"] = strip_credentials(self.url)
        if self.path:
            out["path"] = self.path
        out["hashes"] = dict(sorted(self.hashes.items()))
        return out


@dataclass
class Package:
    name: NormalizedName
    version: str | None
    marker: str | None = None
    index: str | None = None
    wheels: list[Artifact] = field(default_factory=list)
    sdist: Artifact | None = None
    archive: Artifact | None = None
    vcs: dict[str, str] | None = None
    dependencies: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------- write

def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, Sequence):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def render(packages: Iterable[Package], *, requires_python: str | None = None,
           environments: Sequence[str] = (), header: Sequence[str] = (),
           tool: Mapping[str, Any] | None = None) -> str:
    """The pylock.toml text (pure): top-level keys, then one ``[[packages]]`` table per package in
    name order, wheels as an array of inline tables (as uv writes them)."""
    lines = [f"# {h}" if h else "#" for h in header]
    lines.append(f"lock-version = {_toml_value(LOCK_VERSION)}")
    if environments:
        lines.append(f"environments = {_toml_value(list(environments))}")
    if requires_python:
        lines.append(f"requires-python = {_toml_value(requires_python)}")
    lines.append(f"created-by = {_toml_value('stacksync')}")
    for p in sorted(packages, key=lambda p: (p.name, p.marker or "")):
        lines += ["", "[[packages]]", f"name = {_toml_value(p.name)}"]
        if p.version is not None:
            lines.append(f"version = {_toml_value(p.version)}")
        if p.marker:
            lines.append(f"marker = {_toml_value(p.marker)}")
        if p.index:
            lines.append(f"index = {_toml_value(strip_credentials(p.index))}")
        if p.dependencies:
            lines.append(f"dependencies = {_toml_value([{'name': d} for d in sorted(set(p.dependencies))])}")
        if p.vcs:
            lines.append(f"vcs = {_toml_value(p.vcs)}")
        if p.archive:
            lines.append(f"archive = {_toml_value(p.archive.to_toml())}")
        if p.sdist:
            lines.append(f"sdist = {_toml_value(p.sdist.to_toml())}")
        if p.wheels:
            lines.append("wheels = [")
            lines += [f"    {_toml_value(w.to_toml())}," for w in sorted(p.wheels, key=lambda w: w.name or "")]
            lines.append("]")
    if tool:
        lines += ["", "[tool.stacksync]"] + [f"{_key(k)} = {_toml_value(v)}" for k, v in tool.items()]
    return "\n".join(lines) + "\n"


def _hashes(pin_hashes: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for h in pin_hashes:
        algo, _, hexdigest = h.partition(":")
        out.setdefault(algo, hexdigest)
    return out


def direct_package(pin: Pin, deps: list[str]) -> Package:
    """A pin by URL: a VCS checkout at its commit, or an archive / wheel by URL (credentials dropped)."""
    url = strip_credentials(pin.url or "")
    marker = str(pin.marker) if pin.marker else None
    scheme = url.split("+", 1)[0] if "+" in url.split("://", 1)[0] else ""
    if scheme in _VCS:
        bare = url.split("+", 1)[1]
        bare, _, fragment = bare.partition("#")
        repo, _, commit = bare.rpartition("@") if "@" in bare.split("://", 1)[-1] else (bare, "", "")
        vcs = {"type": scheme, "url": repo, "commit-id": commit}
        if "subdirectory=" in fragment:
            vcs["subdirectory"] = fragment.split("subdirectory=", 1)[1].split("&")[0]
        return Package(pin.name, None, marker, vcs=vcs, dependencies=deps)
    filename = url.split("#", 1)[0].rsplit("/", 1)[-1]
    art = Artifact(_hashes(pin.hashes), url=url.split("#", 1)[0], name=filename)
    if filename.endswith(".whl"):
        from packaging.utils import parse_wheel_filename

        version = str(parse_wheel_filename(filename)[1])
        return Package(pin.name, version, marker, wheels=[art], dependencies=deps)
    return Package(pin.name, None, marker, archive=art, dependencies=deps)


def same_version(have: Version, want: str | None) -> bool:
    """Exact version, local label included (``2.4.0`` is not ``2.4.0+cu121``)."""
    try:
        return want is not None and have == Version(want) and str(have) == str(Version(want))
    except InvalidVersion:
        return str(have) == want


# -------------------------------------------------------------------------------------------- read

def _package_lines(text: str) -> list[int]:
    """Line numbers (1-based) of each ``[[packages]]`` header, in order."""
    return [i for i, line in enumerate(text.splitlines(), start=1) if line.strip().startswith("[[packages]]")]


def _built_here(art: Any) -> bool:
    """A wheel entry :func:`built_wheels` wrote: a wheelhouse wheel, named with stacksync's build tag."""
    if not isinstance(art, dict):
        return False
    name = str(art.get("name") or Path(str(art.get("path") or art.get("url") or "")).name)
    parts = name[:-len(".whl")].split("-") if name.endswith(".whl") else []
    return len(parts) == 6 and parts[2].startswith(defaults.BUILD_TAG_PREFIX)


def _artifact_hashes(art: Any) -> list[str]:
    if not isinstance(art, dict) or not isinstance(art.get("hashes"), dict):
        return []
    return [f"{algo}:{str(h).lower()}" for algo, h in art["hashes"].items() if algo in ("sha256", "sha384", "sha512")]


def read(path: str | Path) -> RequirementsFile:
    """A pylock.toml as a :class:`RequirementsFile` of exact pins with every artifact's hash. Raises
    :class:`LockProblems` naming ``file:line`` for each package that cannot be read."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LockProblems([LockError(p, 0, "file not found", "check the path, or run `invoke export "
                                                              "--format pylock`")]) from None
    except UnicodeDecodeError as exc:
        raise LockProblems([LockError(p, 0, f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x})",
                                      "save it as UTF-8 (TOML files are UTF-8)")]) from None
    except OSError as exc:
        raise LockProblems([LockError(p, 0, f"cannot read it ({exc.strerror or exc})", "check the file")]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LockProblems([LockError(p, 0, f"not valid TOML: {exc}", "fix the syntax")]) from None
    except RecursionError:  # tomllib recurses per nesting level: [[[[...]]]] thousands deep
        raise LockProblems([LockError(p, 0, "nested too deeply to read (arrays or tables inside each other "
                                      "thousands of levels deep)", "export the lock again")]) from None
    version = str(data.get("lock-version", ""))
    if not version.startswith("1."):
        raise LockProblems([LockError(p, 1, f"lock-version {shown_line(version) or '(missing)'!r} is not a PEP 751 "
                                      "1.x lock", 'write lock-version = "1.0"')])
    lines = _package_lines(text)
    result = RequirementsFile(p, header=[f"# created-by: {shown_line(str(data.get('created-by', '?')))}"])
    problems: list[LockError] = []
    raw = data.get("packages") or []
    pins: list[Pin] = []
    seen: dict[tuple[NormalizedName, str], int] = {}
    for i, pkg in enumerate(raw if isinstance(raw, list) else []):
        line = lines[i] if i < len(lines) else 0
        try:
            pin = _pin(pkg, str(p), line)
        except LockError as exc:
            problems.append(exc)
            continue
        # PEP 751 allows one name several times only under markers that tell the entries apart; two
        # entries that apply together (no marker, or the same one) would leave "the last one wins"
        key = (pin.name, str(pin.marker))
        first = seen.setdefault(key, line)
        if first != line:
            when = f"under the same marker ({pin.marker})" if pin.marker is not None else "without a marker"
            problems.append(LockError(p, line, f"{pin.name} is listed twice {when}: lines {first} and {line}",
                                      "keep one [[packages]] entry, or give each a marker that tells them apart"))
            continue
        pins.append(pin)
    if problems:
        raise LockProblems(problems)
    _validate(data, p, lines)  # after stacksync's own checks: theirs name the package and say more
    # `dependencies` read back as pip-compile's `# via` edges (the base phase's closure uses them).
    parents: dict[NormalizedName, list[str]] = {}
    for pkg, pin in zip(raw, pins, strict=True):
        for dep in pkg.get("dependencies") or []:
            if isinstance(dep, dict) and dep.get("name"):
                parents.setdefault(canonicalize_name(str(dep["name"])), []).append(pin.name)
    result.pins = [Pin(**{**pin.__dict__, "via": tuple(sorted(parents.get(pin.name, [])))}) for pin in pins]
    return result


def validate_text(text: str, path: str | Path) -> None:
    """Check pylock text with packaging's validation (when packaging has it) before it is written:
    :class:`LockProblems` naming the ``[[packages]]`` entry's line if it does not pass."""
    _validate(tomllib.loads(text), Path(path), _package_lines(text))


def _validate(data: dict[str, Any], path: Path, lines: Sequence[int]) -> None:
    """The spec's own checks (packaging's :class:`~packaging.pylock.Pylock`) when packaging has them:
    one line naming the ``[[packages]]`` entry and the key."""
    # Imported here, not at the top: every sync loads this module, few read a pylock.toml, and
    # packaging.pylock is one of the larger imports of a no-op sync (issue 21).
    try:  # packaging >= 26.0 validates a whole lock against the spec; older packaging: stacksync's own checks only
        from packaging.pylock import Pylock, PylockValidationError
    except ImportError:  # pragma: no cover - packaging < 26
        return
    try:
        Pylock.from_dict(data)
    except PylockValidationError as exc:
        context = exc.context or ""
        found = _PACKAGE_INDEX.match(context)
        index = int(found.group(1)) if found else -1
        line = lines[index] if 0 <= index < len(lines) else 0
        where = f" (at {context})" if context else ""
        raise LockProblems([LockError(path, line, f"not a valid PEP 751 lock: {shown_line(exc.message)}{where}",
                                      "export the lock again (invoke export --format pylock), or fix that entry")
                            ]) from None


def _pin(pkg: Any, path: str, line: int) -> Pin:
    if not isinstance(pkg, dict) or not isinstance(pkg.get("name"), str):
        raise LockError(path, line, "a [[packages]] entry without a name", 'add name = "..."')
    name = canonicalize_name(pkg["name"])
    version = pkg.get("version")
    marker = None
    if pkg.get("marker"):
        try:
            marker = Marker(str(pkg["marker"]))
        except InvalidMarker as exc:
            raise LockError(path, line, f"{name}: malformed marker {pkg['marker']!r}: {exc}",
                            "write a PEP 508 marker") from None
    hashes: list[str] = []
    # A wheel the wheelhouse built (build tag 0ss<key>, see :func:`built_wheels`) is an output of the sdist
    # pinned beside it, not an input: its hash is not the lock's (the build key hashes the lock's inputs),
    # and sync finds it again in the wheelhouse by its key. Other readers (uv) may install it.
    for art in [*(w for w in pkg.get("wheels") or [] if not _built_here(w)), pkg.get("sdist"), pkg.get("archive")]:
        hashes += _artifact_hashes(art)
    url = None
    vcs = pkg.get("vcs")
    if isinstance(vcs, dict):
        commit = vcs.get("commit-id")
        if not commit:
            raise LockError(path, line, f"{name}: vcs entry without commit-id", "lock the commit")
        sub = f"#subdirectory={vcs['subdirectory']}" if vcs.get("subdirectory") else ""
        url = f"{vcs.get('type', 'git')}+{vcs.get('url') or vcs.get('path')}@{commit}{sub}"
    elif isinstance(pkg.get("archive"), dict) and version is None:
        url = pkg["archive"].get("url") or pkg["archive"].get("path")
    if version is None and url is None:
        raise LockError(path, line, f"{name}: no version and no vcs / archive source", "give version = \"X.Y\"")
    if url is None and not hashes:
        raise LockError(path, line, f"{name}=={version}: no hashes for any wheel or sdist",
                        "export the lock again: every artifact needs hashes")
    if version is not None:
        try:
            Version(str(version))
        except InvalidVersion:
            raise LockError(path, line, f"{name}: {version!r} is not a PEP 440 version", "pin a release") from None
    requirement = f"{name}=={version}" if url is None else f"{name} @ {url}"
    if marker is not None:
        requirement += f" ; {marker}"
    return Pin(name=name, requirement=requirement, line=line, path=path,
               version=str(version) if url is None and version is not None else None,
               specifier=f"=={version}" if url is None else "", marker=marker, url=url,
               hashes=tuple(sorted(set(hashes))))


def split_deferred(lock: RequirementsFile, deferred_names: Iterable[str]) -> tuple[RequirementsFile,
                                                                                   RequirementsFile | None]:
    """One pylock.toml as the (lock, deferred) pair a profile's requirements.txt / deferred.txt give."""
    names = {canonicalize_name(n) for n in deferred_names}
    main = RequirementsFile(lock.path, [p for p in lock.pins if p.name not in names], [], list(lock.header))
    deferred = [p for p in lock.pins if p.name in names]
    return main, (RequirementsFile(lock.path, deferred, [], []) if deferred else None)


def profile_locks(folder: Path, deferred_names: Iterable[str], lock: Path | None = None
                  ) -> tuple[RequirementsFile, RequirementsFile | None] | None:
    """The (lock, deferred) pair from a pylock.toml: ``lock`` when it is one (``invoke sync --lock``),
    else ``<profile>/pylock.toml`` when the profile has no requirements.txt; ``None``: not a pylock case."""
    if lock is None:
        if (folder / defaults.LOCK_TXT).is_file() or not (folder / "pylock.toml").is_file():
            return None
        lock = folder / "pylock.toml"
    if not is_pylock(lock):
        return None
    return split_deferred(read(lock), deferred_names)
