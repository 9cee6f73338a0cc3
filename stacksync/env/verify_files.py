"""``invoke verify --files``: every installed file against its RECORD (:mod:`stacksync.env.record` reads and
hashes), each distribution against its locked wheel in the sync cache (``--profile``), and the report:
one line per problem grouped by package, one summary line with the time, the JSON of ``--report``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName

from stacksync.core.fs import atomic_write_text
from stacksync.core.redact import redact
from stacksync.env.record import INSTALL_RECORDS, RecordEntry, Scan, parse_record, verify_environment
from stacksync.lock.lockfile import Pin

__all__ = ["verify_files", "check_locked_builds", "summary", "report_lines", "to_json", "resolve_target"]


# ------------------------------------------------------------------------------------------ report

_KIND_TEXT = {"stash": "pip's stash of a killed install or uninstall", "orphan-bytecode":
              "byte-code without its source", "file": "unrecorded"}


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB" if n < 1e9 else f"{n / 1e9:,.2f} GB"


def summary(result: Scan, target: str) -> str:
    """The one summary line: what was checked, how fast, and the verdict."""
    rate = result.bytes / result.seconds / 1e9 if result.seconds else 0.0
    head = (f"verify --files: {target}: {len(result.dists)} distributions, {result.files:,} files "
            f"({_mb(result.bytes)} hashed) in {result.seconds:.2f} s ({rate:.2f} GB/s, {result.workers} threads)")
    if result.ok:
        return head + ": every file matches its RECORD"
    c = result.counts()
    bad = sum(1 for d in result.dists if d.problems) + (1 if result.unowned else 0)
    parts = [f"{c['modified']} modified", f"{c['missing']} missing", f"{c['unrecorded']} unrecorded"]
    if c["no_record"]:
        parts.append(f"{c['no_record']} without RECORD")
    if c["other_build"]:
        parts.append(f"{c['other_build']} not the locked build")
    if c["outside"]:
        parts.append(f"{c['outside']} outside the environment")
    return head + f": {', '.join(parts)} ({bad} package{'s' if bad != 1 else ''})"


def _stash_of(path: str, result: Scan) -> str:
    """Which package's folder a ``~`` stash stands for: pip replaces the leading character(s) of the
    folder it moves aside with ``~`` (``torch_like/`` -> ``~orch_like/``); "" when no guess is unique."""
    stash = path.split("/", 1)[0]
    if not stash.startswith("~"):
        return ""
    rest = stash.lstrip("~")
    tops = {(e.path.split("/", 1)[0], d.name) for d in result.dists for e in d.record or () if "/" in e.path}
    found = {(top, name) for top, name in tops if top != stash and top.endswith(rest)
             and len(top) == len(stash)}
    return f", of {next(iter(found))[0]}/ ({next(iter(found))[1]})" if len(found) == 1 else ""


def report_lines(result: Scan, *, limit: int = 20) -> list[str]:
    """One line per problem, grouped by package (``limit`` per package and kind; the JSON has all)."""
    lines: list[str] = []

    def some(label: str, items: Iterable[str]) -> None:
        items = list(items)
        for item in items[:limit]:
            lines.append(f"  {label}: {item}")
        if len(items) > limit:
            lines.append(f"  {label}: ... and {len(items) - limit} more")

    for d in result.dists:
        if not d.problems:
            continue
        lines.append(f"{d.name} {d.version} ({os.path.basename(d.folder)}):")
        if d.record is None:
            why = "an egg-info install" if d.folder.endswith(".egg-info") else "RECORD is missing"
            lines.append(f"  no RECORD: {why}; its files cannot be verified")
        for path in d.outside[:limit]:
            lines.append(f"  RECORD of {d.name} names a path outside the environment: {path} (not opened)")
        if len(d.outside) > limit:
            lines.append(f"  RECORD of {d.name} names {len(d.outside) - limit} more paths outside the environment")
        some("modified", [p + (f" ({d.actual[p]})" if str(d.actual.get(p)).startswith(("unreadable", "larger"))
                               else "") for p in d.modified])
        some("missing", d.missing)
        if d.other_build:
            lines.append(f"  not the locked build: {len(d.other_build)} file(s) differ from the locked wheel "
                         f"{d.locked_wheel} (same version, another build)")
            some("other build", d.other_build)
        some("unrecorded", [f"{u.path}" + (f" ({_KIND_TEXT[u.kind]})" if u.kind != "file" else "")
                            for u in d.unrecorded])
        if d.outside:
            lines.append(f"  fix: its RECORD was not written by an installer for this environment: reinstall it "
                         f"(pip install --force-reinstall --no-deps {d.name}=={d.version}) and find what wrote it")
        elif d.problems > len(d.unrecorded):
            lines.append(f"  fix: reinstall it: pip install --force-reinstall --no-deps {d.name}=={d.version} "
                         "(or invoke sync)")
        if d.unrecorded:
            lines.append("  fix: delete the unrecorded files (no installer knows them: a reinstall leaves them)")
    if result.unowned:
        lines.append("files no package owns:")
        some("unrecorded", [f"{u.path}" + (f" ({_KIND_TEXT[u.kind]}{_stash_of(u.path, result)})"
                                           if u.kind != "file" else "") for u in result.unowned])
        if any(u.kind == "stash" for u in result.unowned):
            lines.append("  fix: a `~` folder is pip's leftover stash: delete it, then reinstall the package it "
                         "shadowed (invoke sync)")
    return lines


def to_json(result: Scan, target: str) -> dict[str, Any]:
    """The verification as JSON (every problem, not cut at ``limit``)."""
    return {
        "target": target, "ok": result.ok, "seconds": round(result.seconds, 3), "workers": result.workers,
        "distributions": len(result.dists), "files": result.files, "bytes": result.bytes,
        "counts": result.counts(), "summary": summary(result, target),
        "problems": [{"name": d.name, "version": d.version, "record": d.record is not None,
                      "modified": d.modified, "missing": d.missing, "other_build": d.other_build,
                      "outside": d.outside,
                      "locked_wheel": d.locked_wheel,
                      "unrecorded": [{"path": u.path, "kind": u.kind} for u in d.unrecorded]}
                     for d in result.dists if d.problems],
        "unowned": [{"path": u.path, "kind": u.kind} for u in result.unowned],
    }


def resolve_target(python: str | None, venv: str | None) -> str:
    """The environment ``verify --files`` checks: ``--python``, ``--venv``, else the project's .venv."""
    from stacksync.core import defaults
    from stacksync.core.errors import TargetError

    if python and venv:
        raise TargetError("give --python or --venv, not both (fix: drop one of them)")
    target = python or venv or str(defaults.default_venv())
    if not Path(target).exists() and not python:
        raise TargetError(f"{target}: no such venv (fix: invoke sync creates it, or pass --venv/--python)")
    return target


# ------------------------------------------------------------------------------ against the lock

def _wheel_record(path: Path) -> tuple[str, list[RecordEntry]] | None:
    """(dist-info folder name, RECORD rows) of a wheel file, read from the zip (nothing extracted)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            name = next((n for n in zf.namelist() if n.endswith(".dist-info/RECORD") and n.count("/") == 1), None)
            if name is None:
                return None
            return name.split("/", 1)[0], parse_record(zf.read(name).decode("utf-8", errors="replace"))
    except (OSError, zipfile.BadZipFile, KeyError):
        return None


def check_locked_builds(result: Scan, pins: Mapping[NormalizedName, Pin], cache: Path) -> int:
    """Compare each installed distribution with the locked wheel it should have come from: the wheel of
    exactly its pinned version in the sync cache whose sha256 the lock lists (only those files are
    hashed). A file whose installed RECORD hash is not the wheel's (``+cpu`` files under a ``+cu121``
    lock with the same version string, a hand-installed build) goes to ``other_build``. A
    distribution without such a wheel (built here from an sdist, or not in the cache) is not compared.
    Returns how many distributions were compared."""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    from stacksync.lock.lockfile import file_sha256

    wheels: dict[tuple[str, str], list[Path]] = {}
    for path in sorted(cache.glob("*.whl")) if cache.is_dir() else []:
        try:
            name, version, _, _ = parse_wheel_filename(path.name)
        except InvalidWheelFilename:
            continue
        wheels.setdefault((name, str(version)), []).append(path)
    compared = 0
    for d in result.dists:
        pin = pins.get(d.name)
        if pin is None or d.record is None or pin.version != d.version:
            continue
        wanted = {h.split(":", 1)[1] for h in pin.hashes if h.startswith("sha256:")}
        for path in wheels.get((d.name, d.version), []):
            if file_sha256(path) not in wanted:
                continue
            found = _wheel_record(path)
            if found is None:
                continue
            dist_info, rows = found
            installed = {e.path: e.hash for e in d.record}
            differ = sorted(e.path for e in rows
                            if e.hash and not e.path.startswith(dist_info.replace(".dist-info", ".data") + "/")
                            and not (e.path.startswith(dist_info + "/")
                                     and e.path.split("/", 1)[1] in INSTALL_RECORDS)
                            and installed.get(e.path) != e.hash)
            compared += 1
            d.locked_wheel, d.other_build = path.name, differ
            break
    return compared


def verify_files(python: str | None, venv: str | None, *, report: str | None = None, profile: str | None = None,
                 cache_dir: Path | None = None, locks_dir: Path | None = None) -> bool:
    """``invoke verify --files``: check the target's files against their RECORD (and, with ``profile``,
    each distribution against the locked wheel in the sync cache), print the problems and one summary
    line, write the JSON (with the manifest digest) to ``report``; ``True`` when clean."""
    import time

    from stacksync.core import console, defaults
    from stacksync.env.manifest import build

    target = resolve_target(python, venv)
    result = verify_environment(target)
    compared = None
    if profile:
        from stacksync.lock import profile as profile_mod
        from stacksync.lock.load import load_locks

        start = time.perf_counter()
        prof = profile_mod.load(profile, locks_dir)
        lock_file, deferred_file = load_locks(prof)
        pins = {p.name: p for f in (lock_file, deferred_file) if f is not None for p in f.pins}
        compared = check_locked_builds(result, pins, cache_dir or defaults.cache_dir() / prof.name)
        console.info(f"verify --files: {compared} distribution(s) compared with their locked wheel in the sync "
                     f"cache ({time.perf_counter() - start:.2f} s); the others were built here or are not cached")
    for line in report_lines(result):
        console.out.print(line, markup=False, highlight=False)
    line = summary(result, target)
    if result.ok:
        console.info(line)
    else:
        console.error(line)
    if report:
        data = {**to_json(result, target), "manifest_digest": build(result)["digest"]}
        path = Path(report)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, redact(json.dumps(data, indent=2, sort_keys=True)) + "\n")
    return result.ok
