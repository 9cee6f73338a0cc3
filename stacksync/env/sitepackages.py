"""Read a venv's installed distributions straight from its site-packages, without starting it.

The no-op path of ``invoke sync`` only needs the target's distributions and a few facts about its
interpreter. Starting the interpreter to run ``probe.py env`` costs ~0.1 s; reading the
``*.dist-info`` folders costs a few milliseconds (as pypa/build's ``installed_versions`` does).

This module is pure reading (no processes). Every function answers ``None`` when it cannot be sure
that its answer equals what ``probe.py env`` would print inside the target; the caller then runs the
real probe. Unsure means: an ``*.egg-info`` or ``*.egg`` entry, a ``.pth`` file that adds a path (or is
unreadable), the same project twice, a METADATA file that is missing, unreadable, has no Version or
folds a header we read, or a ``requires.txt`` next to a METADATA without Requires-Dist.
"""

from __future__ import annotations

import glob
import hashlib
import importlib.util
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

from stacksync.core.defaults import PROBE_SCRIPT
from stacksync.env.distinfo import SiteReading, metadata_headers, read_json, read_text

STATE_FILE = "stacksync-state.json"



@lru_cache(maxsize=1)
def probe_module() -> ModuleType:
    """The probe (stacksync/probes/probe.py) loaded in-process, so that the CUDA facts and name rules read here are
    the probe's own functions (standard library only; importing it runs nothing)."""
    spec = importlib.util.spec_from_file_location("_stacksync_probe", PROBE_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_dist_info(folder: str, location: str, *, full: bool = True) -> dict[str, Any] | None:
    """One distribution as the probe prints it, from its ``*.dist-info`` folder; ``None`` if unsure.
    Without ``full``: its name, display name and version only (METADATA is the one file read)."""
    join = os.path.join
    try:
        text = read_text(join(folder, "METADATA"))
    except (OSError, UnicodeDecodeError):
        return None
    if not text:
        return None
    headers = metadata_headers(text, name_version=not full)
    if headers is None or not headers["version"]:
        return None
    if not headers["name"] or not headers["name"][0]:
        return {}  # the probe skips a distribution without a Name
    name = headers["name"][0]
    if not full:
        return {"name": probe_module().canonical(name), "display_name": name, "version": headers["version"][0]}
    requires = headers["requires-dist"]
    if not requires and os.path.exists(join(folder, "requires.txt")):
        return None
    try:
        installer = read_text(join(folder, "INSTALLER"))
    except (OSError, UnicodeDecodeError):
        return None
    return {
        "name": probe_module().canonical(name),
        "display_name": name,
        "version": headers["version"][0],
        "direct_url": read_json(join(folder, "direct_url.json")),
        "installer": (installer or "").strip() or None,
        "location": location,
        "requires": requires,
    }


def read_distributions(dirs: Sequence[str], *, full: bool = True,
                       reading: SiteReading | None = None) -> list[dict[str, Any]] | None:
    """The probe's ``distributions`` list for a target whose distributions all live in ``dirs`` (its
    site-packages), sorted by name; ``None`` when unsure. Without ``full``, each with its name and
    version only (:func:`read_dist_info`): what the check of the probe's versions reads. ``reading``:
    the listings come from it (a check's one reading of site-packages)."""
    seen: dict[str, dict[str, Any]] = {}
    for entry in dirs:
        location = str(Path(entry))
        try:
            children = reading.listdir(entry) if reading is not None else os.listdir(entry)
        except FileNotFoundError:
            continue
        except OSError:
            return None
        for child in children:
            if child.startswith("~"):
                continue  # pip's stash of an uncommitted uninstall: the probe skips it too (damage.py)
            low = child.lower()
            if low.endswith((".egg-info", ".egg")):
                return None  # egg metadata is read differently (requires.txt, PKG-INFO): probe it
            if not low.endswith(".dist-info"):
                continue
            dist = read_dist_info(os.path.join(entry, child), location, full=full)
            if dist is None:
                return None
            if not dist:
                continue
            if dist["name"] in seen:
                return None  # which copy wins depends on listing order: let the interpreter say
            seen[dist["name"]] = dist
    return [seen[k] for k in sorted(seen)]


def pth_fingerprint(dirs: Iterable[str]) -> list[list[str]] | None:
    """``[[path, sha256], ...]`` of the ``.pth`` files in ``dirs``, or ``None`` if one adds a path
    entry (whether it takes effect depends on folders existing at start-up) or cannot be read.
    ``import`` lines are allowed: they are the same code when the content is the same, and the cache
    of interpreter facts is keyed by this fingerprint."""
    found: list[list[str]] = []
    for entry in dirs:
        try:
            names = sorted(n for n in os.listdir(entry) if n.endswith(".pth"))
        except FileNotFoundError:
            continue
        except OSError:
            return None
        for name in names:
            try:
                data = Path(entry, name).read_bytes()
                text = data.decode("utf-8")
            except (OSError, UnicodeDecodeError):
                return None
            for line in text.splitlines():
                stripped = line.strip()
                if stripped and not line.startswith(("#", "import ", "import\t")):
                    return None
            found.append([os.path.join(entry, name), hashlib.sha256(data).hexdigest()])
    return found


def read_state(prefix: str) -> Mapping[str, Any]:
    """The probe's ``state``: ``<prefix>/stacksync-state.json``, ``{}`` when missing or invalid."""
    try:
        with open(os.path.join(prefix, STATE_FILE), encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}
    return data  # type: ignore[no-any-return]


def venv_config(prefix: Path) -> dict[str, str] | None:
    """``pyvenv.cfg`` as a dict of lower-cased keys (``None`` when there is none or it is unreadable)."""
    try:
        text = (prefix / "pyvenv.cfg").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    config = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            config[key.strip().lower()] = value.strip()
    return config



def venv_site_folders(prefix: Path) -> list[str]:
    """The site-packages folders inside the venv folder ``prefix`` (``lib*/python*/site-packages``, else
    Windows' ``Lib/site-packages``), globbed: no process."""
    return sorted(glob.glob(str(prefix / "lib*" / "python*" / "site-packages"))) or \
        [str(p) for p in [prefix / "Lib" / "site-packages"] if p.is_dir()]


def distinct_dirs(found: Iterable[str]) -> list[str]:
    """``found`` without the folders that do not exist or repeat another's real path (lib64 is often a
    link to lib), in order."""
    out: list[str] = []
    seen: set[str] = set()
    for d in found:
        real = os.path.realpath(d)
        if real not in seen and os.path.isdir(real):
            seen.add(real)
            out.append(d)
    return out


def document(interpreter: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any] | None:
    """The whole probe document for a target, from ``interpreter`` (the interpreter-bound part of an
    earlier real probe: ``python``, ``marker_environment``, ``platform``) and the files on disk now;
    ``None`` when unsure. ``env`` is the environment the probe would have run with."""
    sp = list(interpreter["python"]["site_packages"])
    dists = read_distributions(sp)
    if dists is None:
        return None
    pip = [d["version"] for d in dists if d["name"] == "pip"]
    probe = probe_module()
    cuda = {
        "torch_cuda": probe.torch_cuda_from_files(sp),
        "nvidia_libraries": probe.nvidia_libraries(sp),
        "cuda_home": env.get("CUDA_HOME") or env.get("CUDA_PATH"),
        "visible_devices": env.get("CUDA_VISIBLE_DEVICES"),
    }
    return {
        "probe": 1,
        "python": dict(interpreter["python"]),
        "marker_environment": dict(interpreter["marker_environment"]),
        "platform": dict(interpreter["platform"]),
        "pip_version": pip[0] if pip else None,
        "distributions": dists,
        "cuda": cuda,
        "state": read_state(interpreter["python"]["prefix"]),
    }
