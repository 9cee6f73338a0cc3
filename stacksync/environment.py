"""Target environments: find the interpreter, probe it, and hold what the probe saw.

The probe (``scripts/probe_env.py``) runs inside the target; this module only checks the shape of
what it prints and turns it into :class:`Snapshot`.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName, canonicalize_name

from .errors import ProbeError, TargetError
from .runner import python_in, run_script


@dataclass(frozen=True)
class Installed:
    """One installed distribution."""

    name: NormalizedName
    version: str
    display_name: str = ""
    direct_url: Mapping[str, Any] | None = None
    installer: str | None = None
    location: str | None = None
    requires: tuple[str, ...] = ()

    @property
    def editable(self) -> bool:
        return bool((self.direct_url or {}).get("dir_info", {}).get("editable"))

    @property
    def kind(self) -> str:
        """``index`` (a plain ``name==version``), ``vcs``, ``editable``, ``local-dir``,
        ``local-file`` (``@ file://``, typical of conda) or ``url``."""
        info = self.direct_url
        if not info:
            return "index"
        if "vcs_info" in info:
            return "vcs"
        if "dir_info" in info:
            return "editable" if info["dir_info"].get("editable") else "local-dir"
        return "local-file" if str(info.get("url", "")).startswith("file:") else "url"

    @property
    def url(self) -> str | None:
        """The direct reference pip freeze would print (VCS with the commit), else ``None``."""
        info = self.direct_url
        if not info:
            return None
        url = str(info.get("url", ""))
        if "vcs_info" in info:
            vcs = info["vcs_info"]
            return f"{vcs.get('vcs', 'git')}+{url}@{vcs.get('commit_id', '')}"
        return url


@dataclass(frozen=True)
class Snapshot:
    """What the probe saw in one interpreter."""

    python: Path
    version: str
    marker_environment: Mapping[str, str]
    distributions: Mapping[NormalizedName, Installed]
    platform: Mapping[str, Any] = field(default_factory=dict)
    pip_version: str | None = None
    cuda: Mapping[str, Any] = field(default_factory=dict)
    state: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def python_xy(self) -> str:
        return ".".join(self.version.split(".")[:2])

    @property
    def prefix(self) -> Path:
        return Path(self.raw.get("python", {}).get("prefix", self.python.parent.parent))

    def versions(self) -> dict[NormalizedName, str]:
        return {n: d.version for n, d in self.distributions.items()}


def snapshot_from_json(python: Path, data: Any) -> Snapshot:
    """Check the probe's JSON shape and build a :class:`Snapshot` (a wrong shape is a ProbeError)."""
    try:
        assert isinstance(data, dict) and data.get("probe") == 1
        dists = {}
        for d in data["distributions"]:
            assert isinstance(d["name"], str) and isinstance(d["version"], str)
            name = canonicalize_name(d["name"])
            dists[name] = Installed(name=name, version=d["version"], display_name=d.get("display_name", ""),
                                    direct_url=d.get("direct_url"), installer=d.get("installer"),
                                    location=d.get("location"), requires=tuple(d.get("requires") or ()))
        env = data["marker_environment"]
        assert isinstance(env, dict) and all(isinstance(v, str) for v in env.values())
        return Snapshot(python=python, version=data["python"]["version"], marker_environment=env,
                        distributions=dists, platform=data.get("platform", {}),
                        pip_version=data.get("pip_version"), cuda=data.get("cuda", {}),
                        state=data.get("state", {}), raw=data)
    except (AssertionError, KeyError, TypeError) as exc:
        raise ProbeError(f"probe_env.py in {python} printed an unexpected document ({exc!r})") from exc


def probe(python: str | os.PathLike[str]) -> Snapshot:
    """Run the probe in ``python`` and return what it saw."""
    exe = find_python(python)
    return snapshot_from_json(exe, run_script(exe, "probe_env.py"))


def find_python(spec: str | os.PathLike[str]) -> Path:
    """An interpreter from a path, a venv folder, or a name on PATH (``python3.11``)."""
    path = Path(spec)
    if path.is_dir():
        exe = python_in(path)
        if not exe.exists():
            raise TargetError(f"{path}: not a virtual environment (no bin/python)")
        return exe
    if path.exists():
        return path
    found = shutil.which(str(spec))
    if found:
        return Path(found)
    raise TargetError(f"{spec}: no such interpreter or venv (give a path to python, a venv folder, "
                      f"or a name on PATH such as python3.11)")


def is_own_interpreter(python: Path) -> bool:
    """Whether ``python`` is the interpreter (or venv) running stacksync: syncing it would uninstall
    invoke, nox or pip-tools from under the tool."""
    own = {Path(sys.prefix).resolve()}
    try:
        exe_prefix = python.resolve().parent.parent
    except OSError:
        return False
    venv_root = python.parent.parent
    return venv_root.resolve() in own or (exe_prefix in own and not (venv_root / "pyvenv.cfg").exists())
