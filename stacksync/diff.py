"""``invoke diff A B``: compare two environments, locks, freezes or profiles.

:func:`compare` is pure; :func:`load_side` turns what the user typed into a package set, probing an
interpreter when the side is one. Lock lines whose marker does not hold for the side being compared
do not count: a file side is evaluated against the interpreter on the other side when there is one,
else against the host.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName
from packaging.version import InvalidVersion, Version

from . import defaults, profile
from .defaults import INSTALLER_PACKAGES
from .environment import Snapshot, probe
from .errors import StacksyncError
from .lockfile import RequirementsFile, parse
from .redact import redact


@dataclass(frozen=True)
class Entry:
    name: NormalizedName
    version: str | None
    url: str | None = None
    hashes: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return self.version if self.version is not None else redact(self.url or "")


@dataclass
class Side:
    """One side of a comparison: a label to show and the package set."""

    label: str
    kind: str  # "file" | "profile" | "interpreter"
    packages: dict[NormalizedName, Entry] = field(default_factory=dict)
    snapshot: Snapshot | None = None
    files: list[RequirementsFile] = field(default_factory=list)


@dataclass
class Change:
    name: NormalizedName
    a: str
    b: str
    direction: str  # "upgrade" | "downgrade" | "local" (same release, other build) | "changed" (URL)


@dataclass
class DiffResult:
    only_in_a: list[Entry] = field(default_factory=list)
    only_in_b: list[Entry] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)
    rehashed: list[str] = field(default_factory=list)
    installers: list[str] = field(default_factory=list)
    same: int = 0

    @property
    def identical(self) -> bool:
        return not (self.only_in_a or self.only_in_b or self.changed)

    def counts(self) -> str:
        ups = sum(c.direction == "upgrade" for c in self.changed)
        downs = sum(c.direction == "downgrade" for c in self.changed)
        other = len(self.changed) - ups - downs
        detail = f" ({ups} up, {downs} down" + (f", {other} other" if other else "") + ")" if self.changed else ""
        line = (f"{len(self.only_in_a)} only in A, {len(self.only_in_b)} only in B, "
                f"{len(self.changed)} changed{detail}, {self.same} same")
        if self.rehashed:
            line += f"; {len(self.rehashed)} re-hashed at the same version"
        return line

    def to_json(self, a: str = "A", b: str = "B") -> dict[str, Any]:
        return {
            "a": redact(a), "b": redact(b), "identical": self.identical,
            "only_in_a": [{"name": e.name, "version": e.key} for e in self.only_in_a],
            "only_in_b": [{"name": e.name, "version": e.key} for e in self.only_in_b],
            "changed": [{"name": c.name, "a": c.a, "b": c.b, "direction": c.direction} for c in self.changed],
            "rehashed": self.rehashed,
            "installers": self.installers,
            "same": self.same,
            "summary": self.counts(),
        }


def direction(a: str, b: str) -> str:
    """How B's version relates to A's: ``upgrade``, ``downgrade``, ``local`` (same public release,
    another build such as ``+cpu`` vs ``+cu121``) or ``changed`` (not comparable, e.g. URLs)."""
    try:
        va, vb = Version(a), Version(b)
    except InvalidVersion:
        return "changed"
    if va.public == vb.public:
        return "local"
    return "upgrade" if vb > va else "downgrade"


def compare(a: Mapping[NormalizedName, Entry], b: Mapping[NormalizedName, Entry], *,
            include_installers: bool = False) -> DiffResult:
    """Pure comparison of two package sets by canonical name and exact version string.

    pip, setuptools and wheel are listed apart in ``installers`` and do not make the sides differ
    unless ``include_installers``; hash differences at the same version go to ``rehashed``."""
    result = DiffResult()
    for name in sorted(set(a) | set(b)):
        ea, eb = a.get(name), b.get(name)
        if name in INSTALLER_PACKAGES and not include_installers:
            if (ea.key if ea else None) != (eb.key if eb else None):
                result.installers.append(f"{name}: {ea.key if ea else '-'} -> {eb.key if eb else '-'}")
            continue
        if ea is None and eb is not None:
            result.only_in_b.append(eb)
        elif eb is None and ea is not None:
            result.only_in_a.append(ea)
        elif ea is not None and eb is not None:
            if ea.key != eb.key:
                result.changed.append(Change(name, ea.key, eb.key, direction(ea.key, eb.key)
                                             if ea.version and eb.version else "changed"))
            else:
                result.same += 1
                if ea.hashes and eb.hashes and ea.hashes != eb.hashes:
                    result.rehashed.append(name)
    return result


def _looks_like_python(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK) and path.suffix not in (".txt", ".in")


def classify(spec: str, locks_dir: Path | None = None) -> tuple[str, Path]:
    """What a diff side names: ``file``, ``interpreter`` (a python or venv) or ``profile``."""
    path = Path(spec)
    if path.is_dir():
        if (path / "pyvenv.cfg").exists() or (path / "bin" / "python").exists():
            return "interpreter", path
        if (path / defaults.STACK_TOML).exists():
            return "profile", path
    elif _looks_like_python(path):
        return "interpreter", path
    elif path.is_file():
        return "file", path
    root = locks_dir or defaults.LOCKS_DIR
    if (root / spec / defaults.STACK_TOML).exists():
        return "profile", root / spec
    import shutil

    found = shutil.which(spec) if os.sep not in spec else None
    if found:
        return "interpreter", Path(found)
    raise StacksyncError(
        f"{spec}: not a requirements file, a python interpreter, a venv folder or a profile "
        f"(profiles: {', '.join(profile.available(root)) or 'none'})")


def _entries(files: list[RequirementsFile], environment: Mapping[str, str] | None) -> dict[NormalizedName, Entry]:
    out: dict[NormalizedName, Entry] = {}
    for f in files:
        for pin in f.pins:
            if pin.applies(environment):
                if not pin.pinned:
                    raise StacksyncError(f"{pin.where}: {pin.name} is not pinned ({pin.specifier or 'no version'}); "
                                         "diff compares exact versions (fix: give a freeze or a compiled lock)")
                version = pin.version or _version_from_file_url(pin.url or "")
                out[pin.name] = Entry(pin.name, version, None if version else pin.url, pin.hashes)
    return out


def _version_from_file_url(url: str) -> str | None:
    """``numpy @ file:///.../numpy-1.26.4-cp311-...whl`` (pip freeze in conda) has its version in the
    file name; compare that, as ``invoke freeze`` does for the same install."""
    from packaging.utils import InvalidSdistFilename, InvalidWheelFilename, parse_sdist_filename, parse_wheel_filename

    if not url.startswith("file:"):
        return None
    filename = url.split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[1])
        return str(parse_sdist_filename(filename)[1])
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None


def _snapshot_entries(snapshot: Snapshot) -> dict[NormalizedName, Entry]:
    return {n: Entry(n, d.version if d.kind in ("index", "local-file") else None,
                     None if d.kind in ("index", "local-file") else d.url)
            for n, d in snapshot.distributions.items()}


def load_side(spec: str, locks_dir: Path | None = None) -> Side:
    """Read one side; file sides keep their parsed files until :func:`evaluate` picks the markers."""
    kind, path = classify(spec, locks_dir)
    if kind == "interpreter":
        snap = probe(path)
        return Side(spec, kind, _snapshot_entries(snap), snapshot=snap)
    from . import pylock

    if kind == "profile":
        prof = profile.load(path)
        pair = pylock.profile_locks(prof.folder, prof.deferred_names)  # a profile locked by pylock.toml
        if pair is not None:
            return Side(spec, kind, files=[f for f in pair if f is not None])
        if not prof.lock_path.exists():
            raise StacksyncError(f"{prof.lock_path}: profile {prof.name!r} has no lock yet "
                                 f"(fix: invoke compile --profile {prof.name})")
        files = [parse(prof.lock_path, lock=True)]
        if prof.deferred_path.exists():
            files.append(parse(prof.deferred_path, lock=True))
        return Side(spec, kind, files=files)
    return Side(spec, kind, files=[pylock.read(path) if pylock.is_pylock(path) else parse(path)])


def diff_sides(spec_a: str, spec_b: str, *, include_installers: bool = False,
               locks_dir: Path | None = None) -> tuple[Side, Side, DiffResult]:
    a, b = load_side(spec_a, locks_dir), load_side(spec_b, locks_dir)
    probed = a.snapshot or b.snapshot
    env = probed.marker_environment if probed is not None else None
    for side in (a, b):
        if side.snapshot is None:
            side.packages = _entries(side.files, env)
    return a, b, compare(a.packages, b.packages, include_installers=include_installers)


def render(result: DiffResult, label_a: str, label_b: str) -> Any:
    """A rich renderable: three sections and the count line."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = []
    if result.only_in_a:
        t = Table(title=f"only in A ({redact(label_a)})", title_justify="left")
        t.add_column("package")
        t.add_column("version")
        for e in result.only_in_a:
            t.add_row(e.name, e.key)
        parts.append(t)
    if result.only_in_b:
        t = Table(title=f"only in B ({redact(label_b)})", title_justify="left")
        t.add_column("package")
        t.add_column("version")
        for e in result.only_in_b:
            t.add_row(e.name, e.key)
        parts.append(t)
    if result.changed:
        t = Table(title="version differences (A -> B)", title_justify="left")
        for col in ("package", "A", "B", ""):
            t.add_column(col)
        arrows = {"upgrade": "up", "downgrade": "down", "local": "other build", "changed": "changed"}
        for c in result.changed:
            t.add_row(c.name, c.a, c.b, arrows[c.direction])
        parts.append(t)
    if result.installers:
        parts.append(Text("installers (not counted): " + "; ".join(result.installers)))
    if result.rehashed:
        parts.append(Text("same version, other hashes (not counted): " + ", ".join(result.rehashed)))
    parts.append(Text(("identical: " if result.identical else "differ: ") + result.counts()))
    return Group(*parts)
