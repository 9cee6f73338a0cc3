"""``invoke diff A B``: compare two environments, locks, freezes or profiles.

:func:`compare` is pure; :func:`load_side` turns what the user typed into a package set, probing an
interpreter when the side is one. Lock lines whose marker does not hold for the side being compared
are not compared but listed ("not for this platform"): a file side is evaluated against the
interpreter on the other side when there is one, else against the host.

VCS and editable installs are entries of their own (name, URL, commit, editable or not): the same
commit is the same, another commit is "changed", in a section of its own. A conda ``name @
file:///croot/...`` line compares by the version its file name says, or by the live environment's
dist-info when the other side installed that same file; otherwise it is "version unknown in this file".
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName
from packaging.version import InvalidVersion, Version

from stacksync.core import defaults
from stacksync.core.defaults import INSTALLER_PACKAGES
from stacksync.core.errors import StacksyncError
from stacksync.core.redact import redact
from stacksync.env.environment import Installed, Snapshot, looks_like_python, probe
from stacksync.lock import profile, vcs
from stacksync.lock.lockfile import Pin, RequirementsFile, parse, parse_listing


@dataclass(frozen=True)
class Entry:
    """One package on one side. ``version`` is ``None`` when the side does not say it (a conda
    ``name @ file:///croot/.../work`` line); ``vcs`` / ``commit`` / ``editable`` make it a source
    install, compared by commit."""

    name: NormalizedName
    version: str | None
    url: str | None = None
    hashes: tuple[str, ...] = ()
    vcs: str | None = None
    commit: str | None = None
    editable: bool = False
    where: str = ""

    @property
    def key(self) -> str:
        return self.version if self.version is not None else redact(self.url or "")

    @property
    def is_source(self) -> bool:
        """A VCS or editable install: its identity is its commit, not a version."""
        return self.vcs is not None or self.editable

    def describe(self) -> str:
        if not self.is_source:
            return self.key if self.version is not None else f"{redact(self.url or '')} (version unknown)"
        what = "editable " if self.editable else ""
        at = f" @ {self.commit[:12]}" if self.commit else ""
        version = f" {self.version}" if self.version else ""
        return f"{what}{self.vcs or 'local folder'}{version} {_strip_rev(redact(self.url or ''))}{at}"


def _strip_rev(url: str) -> str:
    """A VCS URL without ``@rev`` and fragment (the commit is shown apart)."""
    url = url.split("#", 1)[0]
    scheme, sep, rest = url.partition("://")
    if "@" in rest.split("/", 1)[-1]:
        rest = rest.rsplit("@", 1)[0]
    return f"{scheme}{sep}{rest}"


def entry_from_pin(pin: Pin) -> Entry:
    """A lock / freeze line as a diff entry: the ``==`` version, the version a wheel / sdist file
    name says, or none (a conda folder URL); VCS and editable lines keep their commit."""
    if pin.is_vcs or pin.editable:
        return Entry(pin.name, pin.editable_version or pin.version, pin.url, pin.hashes, vcs=pin.vcs,
                     commit=pin.commit, editable=pin.editable, where=pin.where)
    return Entry(pin.name, pin.version or pin.file_version, pin.url, pin.hashes, where=pin.where)


def entry_from_installed(dist: Installed) -> Entry:
    """An installed distribution: its dist-info version always; VCS installs their commit; an
    editable install the commit of its git checkout (read from ``.git``, as pip freeze asks git)."""
    info = dist.direct_url or {}
    if dist.kind == "vcs":
        return Entry(dist.name, dist.version, dist.url, vcs=str(info["vcs_info"].get("vcs", "git")),
                     commit=str(info["vcs_info"].get("commit_id") or "") or None)
    if dist.kind == "editable":
        folder = vcs.folder_of(str(info.get("url", "")))
        checkout = vcs.read_checkout(folder) if folder is not None else None
        return Entry(dist.name, dist.version, str(info.get("url", "")) or None, editable=True,
                     vcs="git" if checkout is not None else None,
                     commit=checkout.commit if checkout is not None else None)
    return Entry(dist.name, dist.version, str(info.get("url", "")) or None if info else None)


@dataclass
class Side:
    """One side of a comparison: a label to show and the package set."""

    label: str
    kind: str  # "file" | "profile" | "interpreter"
    packages: dict[NormalizedName, Entry] = field(default_factory=dict)
    snapshot: Snapshot | None = None
    files: list[RequirementsFile] = field(default_factory=list)
    #: lines whose marker is false for the compared environment (listed, never dropped silently)
    not_for_platform: list[Pin] = field(default_factory=list)


@dataclass
class Change:
    name: NormalizedName
    a: str
    b: str
    direction: str  # "upgrade" | "downgrade" | "local" (same release, other build) | "changed" (URL)


@dataclass
class SourceDiff:
    """A VCS or editable install on either side: same commit = same."""

    name: NormalizedName
    a: str
    b: str
    same: bool


@dataclass
class DiffResult:
    only_in_a: list[Entry] = field(default_factory=list)
    only_in_b: list[Entry] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)
    rehashed: list[str] = field(default_factory=list)
    installers: list[str] = field(default_factory=list)
    same: int = 0
    #: VCS / editable installs on either side (their own section)
    sources: list[SourceDiff] = field(default_factory=list)
    #: names whose version one side does not say (conda folder URLs): cannot be called the same
    unknown: list[Change] = field(default_factory=list)
    not_for_platform: list[tuple[str, str]] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not (self.only_in_a or self.only_in_b or self.changed or self.unknown
                    or any(not s.same for s in self.sources))

    def counts(self) -> str:
        ups = sum(c.direction == "upgrade" for c in self.changed)
        downs = sum(c.direction == "downgrade" for c in self.changed)
        other = len(self.changed) - ups - downs
        detail = f" ({ups} up, {downs} down" + (f", {other} other" if other else "") + ")" if self.changed else ""
        line = (f"{len(self.only_in_a)} only in A, {len(self.only_in_b)} only in B, "
                f"{len(self.changed)} changed{detail}, {self.same} same")
        moved = sum(not s.same for s in self.sources)
        if self.sources:
            line += f"; VCS/editable: {moved} at another commit, {len(self.sources) - moved} same"
        if self.unknown:
            line += f"; {len(self.unknown)} version unknown in a file"
        if self.not_for_platform:
            line += f"; {len(self.not_for_platform)} not for this platform"
        if self.rehashed:
            line += f"; {len(self.rehashed)} re-hashed at the same version"
        return line

    def to_json(self, a: str = "A", b: str = "B") -> dict[str, Any]:
        return {
            "a": redact(a), "b": redact(b), "identical": self.identical,
            "only_in_a": [{"name": e.name, "version": e.key} for e in self.only_in_a],
            "only_in_b": [{"name": e.name, "version": e.key} for e in self.only_in_b],
            "changed": [{"name": c.name, "a": c.a, "b": c.b, "direction": c.direction} for c in self.changed],
            "vcs": [{"name": s.name, "a": s.a, "b": s.b, "same": s.same} for s in self.sources],
            "version_unknown": [{"name": c.name, "a": c.a, "b": c.b} for c in self.unknown],
            "not_for_platform": [{"where": w, "line": redact(t)} for w, t in self.not_for_platform],
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
            _compare_one(result, name, ea, eb)
    return result


def _compare_one(result: DiffResult, name: NormalizedName, ea: Entry, eb: Entry) -> None:
    if ea.is_source or eb.is_source:
        same = _same_source(ea, eb)
        result.sources.append(SourceDiff(name, ea.describe(), eb.describe(), same))
        result.same += same
        return
    if ea.version is None or eb.version is None:
        if ea.url is not None and ea.url == eb.url:
            result.same += 1  # the same file: the side that knows the version says it
        else:
            result.unknown.append(Change(name, ea.describe(), eb.describe(), "changed"))
        return
    if ea.version != eb.version:
        result.changed.append(Change(name, ea.version, eb.version, direction(ea.version, eb.version)))
        return
    result.same += 1
    if ea.hashes and eb.hashes and ea.hashes != eb.hashes:
        result.rehashed.append(name)


def _same_source(ea: Entry, eb: Entry) -> bool:
    """Same commit = same (editable or not). Without a commit on both sides: the same URL (an
    editable folder) at the same version when both say it; else the same version and kind."""
    if ea.commit is not None and eb.commit is not None:
        return vcs.same_commit(ea.commit, eb.commit)
    if ea.url and eb.url and _strip_rev(ea.url).rstrip("/") == _strip_rev(eb.url).rstrip("/"):
        return ea.version is None or eb.version is None or ea.version == eb.version
    return (ea.commit is None and eb.commit is None and ea.version is not None and ea.version == eb.version
            and ea.editable == eb.editable)


def classify(spec: str, locks_dir: Path | None = None) -> tuple[str, Path]:
    """What a diff side names: ``file``, ``interpreter`` (a python or venv) or ``profile``."""
    path = Path(spec)
    if path.is_dir():
        if (path / "pyvenv.cfg").exists() or (path / "bin" / "python").exists():
            return "interpreter", path
        if (path / defaults.STACK_TOML).exists():
            return "profile", path
    elif looks_like_python(path):
        return "interpreter", path
    elif path.is_file():
        return "file", path
    root = locks_dir or defaults.find_locks_dir()
    if root is not None and (root / spec / defaults.STACK_TOML).exists():
        return "profile", root / spec
    import shutil

    found = shutil.which(spec) if os.sep not in spec else None
    if found:
        return "interpreter", Path(found)
    raise StacksyncError(
        f"{spec}: not a requirements file, a python interpreter, a venv folder or a profile "
        f"(profiles: {', '.join(profile.available(root)) or 'none'})")


def _entries(files: list[RequirementsFile], environment: Mapping[str, str] | None,
             skipped: list[Pin]) -> dict[NormalizedName, Entry]:
    out: dict[NormalizedName, Entry] = {}
    for f in files:
        for pin in f.pins:
            if not pin.applies(environment):
                skipped.append(pin)
                continue
            if not pin.pinned and not pin.editable and not pin.is_vcs:
                raise StacksyncError(f"{pin.where}: {pin.name} is not pinned ({pin.specifier or 'no version'}); "
                                     "diff compares exact versions (fix: give a freeze or a compiled lock, or "
                                     f"write {pin.name}==VERSION on that line)")
            out[pin.name] = entry_from_pin(pin)
    return out


def _snapshot_entries(snapshot: Snapshot) -> dict[NormalizedName, Entry]:
    return {n: entry_from_installed(d) for n, d in snapshot.distributions.items()}


#: chooses the variant of a profile with ``[variants]`` for the interpreter on the other side (``None``:
#: none there, the host's own) (stacksync.cuda.variant.for_python, passed down by the command)
PickVariant = Callable[[profile.Profile, "Path | None"], profile.Profile]


def load_side(spec: str, locks_dir: Path | None = None, *, pick: PickVariant | None = None,
              other: Path | None = None) -> Side:
    """Read one side; file sides keep their parsed files until :func:`evaluate` picks the markers. A
    profile with variants is compared as the variant ``pick`` chooses for ``other`` (the interpreter on
    the other side, if it is one)."""
    kind, path = classify(spec, locks_dir)
    if kind == "interpreter":
        snap = probe(path)
        return Side(spec, kind, _snapshot_entries(snap), snapshot=snap)
    from stacksync.lock import pylock

    if kind == "profile":
        prof = profile.load(path)
        if prof.variants:
            if pick is None:
                raise StacksyncError(f"{prof.stack_toml}: profile {prof.name!r} has variants "
                                     f"({', '.join(prof.variants)}), each with its own lock "
                                     f"(fix: --variant NAME)")
            prof = pick(prof, other)
        pair = pylock.profile_locks(prof.locks_folder, prof.deferred_names)  # a profile locked by pylock.toml
        if pair is not None:
            return Side(spec, kind, files=[f for f in pair if f is not None])
        if not prof.lock_path.exists():
            raise StacksyncError(f"{prof.lock_path}: profile {prof.name!r} has no lock yet "
                                 f"(fix: invoke compile --profile {prof.name})")
        files = [parse(prof.lock_path, lock=True)]
        if prof.deferred_path.exists():
            files.append(parse(prof.deferred_path, lock=True))
        if (prof.locks_folder / vcs.VCS_TXT).exists():
            files.append(parse(prof.locks_folder / vcs.VCS_TXT, lock=True))
        return Side(spec, kind, files=files)
    return Side(spec, kind, files=[pylock.read(path) if pylock.is_pylock(path) else parse_listing(path)[0]])


def diff_sides(spec_a: str, spec_b: str, *, include_installers: bool = False,
               locks_dir: Path | None = None, pick: PickVariant | None = None) -> tuple[Side, Side, DiffResult]:
    (kind_a, path_a), (kind_b, path_b) = classify(spec_a, locks_dir), classify(spec_b, locks_dir)
    a = load_side(spec_a, locks_dir, pick=pick, other=path_b if kind_b == "interpreter" else None)
    b = load_side(spec_b, locks_dir, pick=pick, other=path_a if kind_a == "interpreter" else None)
    probed = a.snapshot or b.snapshot
    env = probed.marker_environment if probed is not None else None
    skipped: list[tuple[str, str]] = []
    for side in (a, b):
        if side.snapshot is None:
            side.packages = _entries(side.files, env, side.not_for_platform)
            skipped += [(p.where, p.requirement) for p in side.not_for_platform]
    result = compare(a.packages, b.packages, include_installers=include_installers)
    result.not_for_platform = skipped
    return a, b, result


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
    if result.sources:
        t = Table(title="VCS and editable installs (same commit = same)", title_justify="left")
        for col in ("package", "A", "B", ""):
            t.add_column(col)
        for s in result.sources:
            t.add_row(s.name, s.a, s.b, "same" if s.same else "changed")
        parts.append(t)
    if result.unknown:
        t = Table(title="version unknown in this file (cannot be compared)", title_justify="left")
        for col in ("package", "A", "B"):
            t.add_column(col)
        for c in result.unknown:
            t.add_row(c.name, c.a, c.b)
        parts.append(t)
    if result.not_for_platform:
        parts.append(Text("not for this platform (marker false, not compared): "
                          + "; ".join(f"{w} {redact(t)}" for w, t in result.not_for_platform)))
    if result.installers:
        parts.append(Text("installers (not counted): " + "; ".join(result.installers)))
    if result.rehashed:
        parts.append(Text("same version, other hashes (not counted): " + ", ".join(result.rehashed)))
    parts.append(Text(("identical: " if result.identical else "differ: ") + result.counts()))
    return Group(*parts)
