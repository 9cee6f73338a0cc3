"""Target environments: find the interpreter, probe it, and hold what the probe saw.

The probe (``probe.py env``, stacksync/probes/probe.py) runs inside the target; this module only checks the shape of
what it prints and turns it into :class:`Snapshot`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName, canonicalize_name

from stacksync.core import defaults
from stacksync.core.errors import ProbeError, TargetError
from stacksync.core.fs import atomic_write_text
from stacksync.core.runner import clean_env, python_in
from stacksync.env import probeshare, sitepackages


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
    def _python_facts(self) -> Mapping[str, Any]:
        facts = self.raw.get("python")
        return facts if isinstance(facts, Mapping) else {}

    @property
    def prefix(self) -> Path:
        """``sys.prefix`` of the target (its venv folder); the interpreter's grandparent when the probe
        document has none."""
        return Path(self._python_facts.get("prefix", self.python.parent.parent))

    @property
    def soabi(self) -> str | None:
        """``sysconfig``'s SOABI (``cpython-311-x86_64-linux-gnu``); ``None`` when unknown."""
        value = self._python_facts.get("soabi")
        return str(value) if value else None

    @property
    def platform_tag(self) -> str | None:
        """``sysconfig.get_platform()`` (``linux-x86_64``); ``None`` when unknown."""
        value = self._python_facts.get("platform_tag")
        return str(value) if value else None

    @property
    def site_packages(self) -> tuple[str, ...]:
        """The target's site-packages folders, as its probe reported them."""
        return tuple(str(p) for p in self._python_facts.get("site_packages") or ())

    @property
    def glibc(self) -> str | None:
        """The target's glibc version (``2.36``); ``None`` off glibc or when unknown."""
        value = self.platform.get("glibc")
        return str(value) if value else None

    def versions(self) -> dict[NormalizedName, str]:
        return {n: d.version for n, d in self.distributions.items()}


def _installed(**fields: Any) -> Installed:
    """``Installed(**fields)``, every field given, without the frozen dataclass's ``__init__`` (one
    ``object.__setattr__`` per field: half the time of turning 800 distributions into a Snapshot).
    The same object: equal, same hash (tests/test_probeshare.py checks it against the fields)."""
    found = object.__new__(Installed)
    found.__dict__.update(fields)
    return found


#: the last document turned into a Snapshot, with it: (interpreter, document, snapshot)
_last: list[tuple[Path, Any, Snapshot]] = []


def snapshot_from_json(python: Path, data: Any) -> Snapshot:
    """Check the probe's JSON shape and build a :class:`Snapshot` (a wrong shape is a ProbeError).
    The same document object again (one probe's document reused within a run,
    :mod:`stacksync.env.probeshare`: the smoke imports' probe, then verify) gives the same Snapshot,
    not a second one built from it (800 distributions: ~3 ms); documents are never changed in place."""
    if _last and _last[0][1] is data and _last[0][0] == python:
        return _last[0][2]
    snapshot = _snapshot_from_json(python, data)
    _last[:] = [(python, data, snapshot)]
    return snapshot


def _snapshot_from_json(python: Path, data: Any) -> Snapshot:
    try:
        assert isinstance(data, dict) and data.get("probe") == 1
        dists = {}
        for d in data["distributions"]:
            assert isinstance(d["name"], str) and isinstance(d["version"], str)
            name = canonicalize_name(d["name"])
            dists[name] = _installed(name=name, version=d["version"], display_name=d.get("display_name", ""),
                                     direct_url=d.get("direct_url"), installer=d.get("installer"),
                                     location=d.get("location"), requires=tuple(d.get("requires") or ()))
        env = data["marker_environment"]
        assert isinstance(env, dict) and all(isinstance(v, str) for v in env.values())
        return Snapshot(python=python, version=data["python"]["version"], marker_environment=env,
                        distributions=dists, platform=data.get("platform", {}),
                        pip_version=data.get("pip_version"), cuda=data.get("cuda", {}),
                        state=data.get("state", {}), raw=data)
    except (AssertionError, KeyError, TypeError) as exc:
        raise ProbeError(f"probe.py env in {python} printed an unexpected document ({exc!r})") from exc


def probe(python: str | os.PathLike[str]) -> Snapshot:
    """Run the probe in ``python`` and return what it saw."""
    exe = find_python(python)
    return snapshot_from_json(exe, probeshare.run_probes(exe, ["env"])["env"])


# ------------------------------------------------------------------ the fast snapshot (no interpreter)

#: the parts of a probe document that depend on the interpreter only, not on what is installed
_INTERPRETER_KEYS = ("python", "marker_environment", "platform")
#: entries kept in the cache of interpreter facts (the oldest go first)
_CACHE_ENTRIES = 64


def snapshot(python: str | os.PathLike[str], *, fast: bool = True, cache_dir: Path | None = None) -> Snapshot:
    """What :func:`probe` would return. With ``fast``, a venv's distributions are read from its
    site-packages in-process and the interpreter facts come from an earlier probe cached under
    ``cache_dir`` (default ``.stacksync-cache/probe``), keyed by everything that changes with the
    interpreter; whenever the reading cannot be sure to equal the probe, the probe runs.

    Only for deciding: a path that changes the target probes it for real afterwards."""
    exe = find_python(python)
    if fast:
        data = _fast_document(exe, cache_dir or defaults.cache_dir() / "probe")
        if data is not None:
            return snapshot_from_json(exe, data)
    return probe(exe)


def _interpreter_key(exe: Path) -> str | None:
    """A hash of what the interpreter facts depend on (and of the ``.pth`` files); ``None``
    for a target the fast path does not take (not a venv, system site-packages visible)."""
    prefix = exe.parent.parent
    config = sitepackages.venv_config(prefix)
    if config is None or config.get("include-system-site-packages", "false").lower() != "false":
        return None
    try:
        cfg = prefix / "pyvenv.cfg"
        base = exe.resolve()
        base_stat = base.stat()
        sp = [str(p) for p in sorted(prefix.glob("lib*/python*/site-packages"))] or [str(prefix / "Lib/site-packages")]
    except OSError:
        return None
    pth = sitepackages.pth_fingerprint(sp)
    if pth is None:
        return None
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        glibc = None
    # pyvenv.cfg by its text, not its stat: a venv made again at the same path from the same
    # interpreter (a cold sync into a new venv) has the same facts, and reads them from the cache.
    parts = [str(exe), str(base), cfg.read_text(encoding="utf-8", errors="replace"),
             base_stat.st_mtime_ns, base_stat.st_size, list(os.uname()) if hasattr(os, "uname") else None,
             glibc, defaults.PROBE_SCRIPT.read_bytes().hex(), pth,
             os.environ.get("STACKSYNC_PLATFORM")]  # the probe's test hook changes its platform facts
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


def _fast_document(exe: Path, cache: Path) -> dict[str, Any] | None:
    """The probe document read without starting ``exe`` (``None``: run the probe). On a cache miss
    this runs the probe once, keeps its interpreter facts if the fast reading matches it exactly,
    and returns the probe's own document."""
    key = _interpreter_key(exe)
    if key is None:
        return None
    entry = cache / f"{key}.json"
    env = clean_env()
    try:
        cached = json.loads(entry.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cached = None
    if isinstance(cached, dict) and all(k in cached for k in ("fast", *_INTERPRETER_KEYS)):
        return sitepackages.document(cached, env) if cached["fast"] else None
    data = probeshare.run_probes(exe, ["env"])["env"]
    interpreter = {k: data.get(k) for k in _INTERPRETER_KEYS} if isinstance(data, dict) else {}
    try:
        fast = sitepackages.document(interpreter, env)
    except (KeyError, TypeError):
        fast = None
    if fast is not None:
        # Unsure (``None``: an egg-info, a duplicate...) says nothing about the interpreter: try
        # again next time. A reading that differs does: keep probing this interpreter.
        same = json.loads(json.dumps(fast, sort_keys=True)) == data
        _write_json(entry, {"fast": same, **interpreter})
    return data  # type: ignore[no-any-return]


def _write_json(path: Path, data: Any) -> None:
    """Write atomically (two syncs may fill the cache at once); a cache that cannot be written is skipped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(data, sort_keys=True), fsync=False)  # a cache: fsync not worth it
        entries = sorted(path.parent.glob("*.json"), key=lambda p: p.stat().st_mtime)
        for old in entries[:-_CACHE_ENTRIES]:  # one entry per interpreter (and .pth set) seen
            old.unlink(missing_ok=True)
    except OSError:
        return


def find_python(spec: str | os.PathLike[str]) -> Path:
    """An interpreter from a path, a venv folder, or a name on PATH (``python3.11``)."""
    path = Path(spec)
    try:
        return _find_python(path, spec)
    except OSError as exc:  # a folder on the way, or the base interpreter a venv links to, the user cannot read
        raise TargetError(f"{path}: cannot reach its interpreter ({exc.strerror or exc}: {exc.filename or path}) "
                          "(fix: run stacksync as a user who can read and run it, or pass another --venv / "
                          "--python)") from None


def _find_python(path: Path, spec: str | os.PathLike[str]) -> Path:
    if path.is_dir():
        exe = python_in(path)
        if not exe.exists():
            raise TargetError(f"{path}: not a virtual environment (no bin/python)")
        return exe
    if path.exists():
        if not os.access(path, os.X_OK):
            raise TargetError(f"{path}: not an executable file (fix: pass --python an interpreter such as "
                              f"{path.parent / 'python3'}, or --venv a venv folder)")
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


def looks_like_python(path: Path) -> bool:
    """A path a user typed that names an interpreter (an executable file that is not a requirements file)."""
    return path.is_file() and os.access(path, os.X_OK) and path.suffix not in (".txt", ".in")
