"""What a venv holds, read on the host (no target code runs), to check what its own interpreter said.

The probe runs inside the target, and so does whatever the target runs at every start-up: a
``sitecustomize.py`` can rewrite the probe's answer. Versions and the build records are therefore
read from the venv's site-packages here (:mod:`stacksync.env.sitepackages`, the same reading as the
fast snapshot) and compared with the probe's: a difference is reported as such, never "in sync".

:func:`startup_code` lists the code that runs at every start-up of the target: ``sitecustomize`` /
``usercustomize`` modules and ``.pth`` files with ``import`` lines in its site-packages. Those that a
package installed (in some RECORD) or that known tools write (virtualenv's ``_virtualenv.pth``,
setuptools' ``distutils-precedence.pth``, editable-install finders) are listed as known; the rest are
findings. Pure reading: no processes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName

from stacksync.env import sitepackages
from stacksync.env.distinfo import SiteReading, dist_info_folders, parse_record, read_record, read_text

__all__ = ["HostView", "StartupCode", "venv_prefix", "venv_site_dirs", "read", "disagreements", "startup_code"]

#: ``.pth`` files that tools write with an ``import`` line, by file name (editable finders by pattern)
_KNOWN_PTH = {"_virtualenv.pth": "virtualenv's start-up hook", "distutils-precedence.pth": "setuptools' distutils shim"}
_EDITABLE_PTH = re.compile(r"^(__editable__\..*|_.*_editable|__editable___.*|.*\.__editable__)\.pth$")
_STARTUP_MODULES = ("sitecustomize", "usercustomize")
#: names :func:`startup_code` looks at further (a module, a ``.pth`` file; a package folder is its bare name)
_STARTUP_ENDINGS = (".py", ".pth")


@dataclass(frozen=True)
class HostView:
    """A venv's distributions (name -> version) and build records, read from its site-packages."""

    dirs: tuple[str, ...]
    versions: Mapping[NormalizedName, str]
    state: Mapping[str, Any]


@dataclass(frozen=True)
class StartupCode:
    """Code that runs at every start-up: ``unexplained`` (findings) and ``known`` (listed), one line each."""

    unexplained: list[str] = field(default_factory=list)
    known: list[str] = field(default_factory=list)


def venv_prefix(python: Path) -> Path | None:
    """The venv folder of the interpreter ``python`` (``bin/python`` -> its grandparent), found on the
    host, never asked of the target; ``None`` when it is not in a venv."""
    prefix = Path(python).parent.parent
    return prefix if (prefix / "pyvenv.cfg").is_file() else None


def venv_site_dirs(prefix: Path) -> list[str] | None:
    """The site-packages folders of the venv at ``prefix`` (distinct real paths: lib64 is often a link
    to lib); ``None`` when ``prefix`` is not a venv that sees only its own packages (the folders would
    come from the target itself)."""
    config = sitepackages.venv_config(Path(prefix))
    if config is None or config.get("include-system-site-packages", "false").lower() != "false":
        return None  # not a venv, or one that also sees the system's packages
    return sitepackages.distinct_dirs(sitepackages.venv_site_folders(Path(prefix)))


def read(prefix: Path, reading: SiteReading | None = None) -> HostView | None:
    """The host's reading of the venv at ``prefix``; ``None`` when it is not a venv or the reading is
    unsure (an egg-info, a ``.pth`` path entry...: :mod:`stacksync.env.sitepackages`). ``reading``:
    site-packages listed by it (verify's one reading, shared with its other checks)."""
    dirs = venv_site_dirs(prefix)
    if dirs is None:
        return None
    dists = sitepackages.read_distributions(dirs, full=False, reading=reading)  # versions are what is compared
    if dists is None:
        return None
    versions = {NormalizedName(d["name"]): d["version"] for d in dists}
    return HostView(tuple(dirs), versions, sitepackages.read_state(str(prefix)))


def probed_inside(view: HostView, distributions: Mapping[NormalizedName, Any]) -> dict[NormalizedName, str]:
    """The probe's distributions (name -> an object with ``version`` and ``location``) that it places in
    the folders the host read. Packages the machine provides from elsewhere (a ``.pth`` path entry, an
    image's site) cannot be read here; a faked location does not hide anything either, because every
    distribution the host reads is still compared."""
    dirs = {os.path.realpath(d) for d in view.dirs}
    real: dict[str, str] = {}  # location -> its real path: one realpath per folder, not per distribution

    def inside(location: str) -> bool:
        found = real.get(location)
        if found is None:
            found = real[location] = os.path.realpath(location)
        return found in dirs

    return {name: d.version for name, d in distributions.items() if d.location is None or inside(d.location)}


def disagreements(view: HostView, probed: Mapping[NormalizedName, str], probed_state: Mapping[str, Any]) -> list[str]:
    """Where the probe's answer (``probed``: name -> version, and its state) differs from the files."""
    out = []
    for name in sorted(set(view.versions) | set(probed)):
        disk, said = view.versions.get(name), probed.get(name)
        if disk != said:
            out.append(f"{name}: the target's interpreter says {said or 'not installed'}, its site-packages hold "
                       f"{disk or 'nothing'}")
    if dict(view.state) != dict(probed_state):
        out.append("stacksync-state.json: the target's interpreter reports other build records than the file holds")
    return out


def startup_code(dirs: Sequence[str], reading: SiteReading | None = None) -> StartupCode:
    """Start-up code in ``dirs`` (a target's site-packages), split into findings and known pieces
    (``reading``: listings and RECORDs from it)."""
    candidates: list[tuple[str, str, str]] = []  # (dir, relative path, what)
    for d in dirs:
        try:
            names = sorted(reading.listdir(d) if reading is not None else os.listdir(d))
        except OSError:
            continue
        for name in names:
            if not name.endswith(_STARTUP_ENDINGS) and name not in _STARTUP_MODULES:
                continue  # one test per entry: a package folder or a dist-info is no start-up code
            full = os.path.join(d, name)
            stem = name[:-3] if name.endswith(".py") else name
            if stem in _STARTUP_MODULES and (name.endswith(".py") or os.path.isdir(full)):
                candidates.append((d, name, f"{stem} module (imported at every start-up)"))
            elif name.endswith(".pth") and _executes(full):
                candidates.append((d, name, ".pth file with an import line (run at every start-up)"))
    if not candidates:
        return StartupCode()
    owners = _record_owners(dirs, {rel for _, rel, _ in candidates}, reading)
    found = StartupCode()
    for d, rel, what in candidates:
        path = os.path.join(d, rel)
        if rel in owners:
            found.known.append(f"{path}: {what}, installed by {owners[rel]}")
        elif rel in _KNOWN_PTH or _EDITABLE_PTH.match(rel):
            found.known.append(f"{path}: {_KNOWN_PTH.get(rel, 'an editable install finder')}")
        else:
            found.unexplained.append(f"{path}: {what}, installed by no package")
    return found


def _executes(path: str) -> bool:
    try:
        text = read_text(path) or ""
    except (OSError, UnicodeDecodeError):
        return True  # unreadable here; the interpreter may read it: treat it as code
    return any(line.startswith(("import ", "import\t")) for line in text.splitlines())


def _record_owners(dirs: Sequence[str], wanted: set[str], reading: SiteReading | None) -> dict[str, str]:
    """Which installed distribution's RECORD lists each of ``wanted`` (paths relative to site-packages)."""
    owners: dict[str, str] = {}
    for _, folder in dist_info_folders(dirs, stashes=False, reading=reading):
        if reading is not None:
            text = reading.record(folder)
            rows = parse_record(text) if text is not None else []
        else:
            rows = read_record(folder) or []
        for row in rows:
            if row.path in wanted:
                owners[row.path] = os.path.basename(folder)[: -len(".dist-info")]
    return owners
