"""Environment manifests (``invoke freeze --manifest FILE``) and the file-level diff (``invoke diff A B --files``).

A manifest is JSON: per distribution its version, installer, ``direct_url``, wheel tags (the WHEEL
file) and the hash *on disk* of every file its RECORD lists with a hash, plus the unrecorded files
(:mod:`stacksync.env.record`). No paths of the environment, no dates: two byte-identical environments give
byte-identical manifests, and ``digest`` (sha256 of the canonical JSON of everything else) names one
with a single hash (the sync receipt and ``nox -s reproduce`` carry it).

Left out on purpose, so that the same bytes compare the same wherever the venv lives and whichever
installer wrote it: byte-code (RECORD lists it without a hash; its bytes hold source mtimes), the
files an installer writes about the install (RECORD, INSTALLER, REQUESTED, direct_url.json: installer
and direct_url are fields of their own) and the ``#!`` line of installed scripts (it names the venv's
own python; the rest of the script is hashed, marked ``#!sha256=``).

:func:`compare` is pure: two manifests in, a :class:`FileDiff` out.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stacksync.core.defaults import INSTALLER_PACKAGES
from stacksync.core.errors import StacksyncError
from stacksync.core.fs import atomic_write_text
from stacksync.core.redact import redact, strip_credentials
from stacksync.env.environment import looks_like_python
from stacksync.env.record import INSTALL_RECORDS, Dist, Scan, verify_environment

__all__ = ["MANIFEST_KEY", "build", "digest", "dumps", "load", "manifest_of", "write", "compare", "FileDiff",
           "PackageDiff", "load_side", "diff_files", "receipt_entry"]

MANIFEST_KEY = "stacksync_manifest"


def _clean_direct_url(info: Mapping[str, Any] | None) -> Any:
    """``direct_url.json`` without credentials (a URL's userinfo is dropped, never written)."""
    if not info:
        return None
    out = dict(info)
    if isinstance(out.get("url"), str):
        out["url"] = strip_credentials(out["url"])
    return out


def _dist_entry(d: Dist) -> dict[str, Any]:
    dist_info = os.path.basename(d.folder)
    files = {path: digest for path, digest in sorted(d.actual.items())
             if not (path.startswith(dist_info + "/") and path.split("/", 1)[1] in INSTALL_RECORDS)}
    entry: dict[str, Any] = {
        "version": d.version,
        "installer": d.installer,
        "direct_url": _clean_direct_url(d.direct_url),
        "wheel": dict(d.wheel),
        "record": d.record is not None,
        "files": files,
        "modified": list(d.modified),
        "missing": list(d.missing),
    }
    if d.unrecorded:
        entry["unrecorded"] = sorted(u.path for u in d.unrecorded)
    if d.outside:  # RECORD rows outside the environment: never opened, named so the digest sees them
        entry["outside"] = sorted(d.outside)
    return entry


def build(result: Scan) -> dict[str, Any]:
    """The manifest of a checked :class:`~stacksync.env.record.Scan` (with its ``digest``)."""
    dists: dict[str, Any] = {}
    for d in result.dists:
        key = d.name if d.name not in dists else f"{d.name} ({os.path.basename(d.folder)})"
        dists[key] = _dist_entry(d)
    body: dict[str, Any] = {
        MANIFEST_KEY: 1,
        "distributions": dists,
        "unrecorded": sorted(f"{u.path}" for u in result.unowned),
    }
    return {**body, "digest": digest(body)}


def _canonical(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def digest(manifest: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of the canonical JSON of ``manifest`` without its ``digest`` key."""
    body = {k: v for k, v in manifest.items() if k != "digest"}
    return "sha256:" + hashlib.sha256(_canonical(body)).hexdigest()


def dumps(manifest: Mapping[str, Any]) -> str:
    """The file's text: sorted keys, one indent, a final newline (stable: same input, same bytes)."""
    return redact(json.dumps(manifest, sort_keys=True, indent=1, ensure_ascii=True)) + "\n"


def manifest_of(target: str | os.PathLike[str]) -> tuple[dict[str, Any], Scan]:
    """Verify the environment at ``target`` (venv folder or python) and build its manifest."""
    result = verify_environment(target)
    return build(result), result


def write(target: str | os.PathLike[str], out: str | os.PathLike[str]) -> tuple[dict[str, Any], Scan]:
    """Write the manifest of ``target`` to ``out`` atomically; return it and the scan."""
    manifest, result = manifest_of(target)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, dumps(manifest))
    return manifest, result


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a manifest file; a wrong shape or a digest that does not match is one line naming the file."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StacksyncError(f"{p}: no such manifest (fix: write one with invoke freeze --manifest {p})") from None
    except (OSError, ValueError) as exc:
        raise StacksyncError(f"{p}: not a JSON manifest ({exc}) "
                             "(fix: write it with invoke freeze --manifest)") from None
    if not isinstance(data, dict) or data.get(MANIFEST_KEY) != 1 or not isinstance(data.get("distributions"), dict):
        raise StacksyncError(f"{p}: not a stacksync manifest (no \"{MANIFEST_KEY}\": 1) "
                             "(fix: write it with invoke freeze --manifest FILE)")
    if data.get("digest") != digest(data):
        raise StacksyncError(f"{p}: digest {data.get('digest')} does not match its content ({digest(data)}): "
                             "the file was edited or cut (fix: write it again with invoke freeze --manifest)")
    return data


def receipt_entry(python: str | os.PathLike[str]) -> dict[str, Any]:
    """What the sync receipt and the reproduce report carry: the manifest digest and its counts."""
    manifest, result = manifest_of(python)
    return {"digest": manifest["digest"], "distributions": len(result.dists), "files": result.files,
            "bytes": result.bytes, "verified": result.ok, "problems": result.counts(),
            "seconds": round(result.seconds, 3)}


# ------------------------------------------------------------------------------------------- compare

@dataclass
class PackageDiff:
    """How one package differs. ``kind``: ``only-a``, ``only-b``, ``version`` (other version strings),
    ``build`` (same version, other files or wheel tags: another build) or ``install`` (same files,
    another installer / direct_url / RECORD state)."""

    name: str
    kind: str
    a: str | None
    b: str | None
    changed: list[str] = field(default_factory=list)
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "a": self.a, "b": self.b, "changed": self.changed,
                "only_in_a": self.only_a, "only_in_b": self.only_b, "notes": self.notes}


@dataclass
class FileDiff:
    packages: list[PackageDiff] = field(default_factory=list)
    unrecorded_a: list[str] = field(default_factory=list)
    unrecorded_b: list[str] = field(default_factory=list)
    installers: list[PackageDiff] = field(default_factory=list)
    same: int = 0
    digest_a: str = ""
    digest_b: str = ""

    @property
    def identical(self) -> bool:
        return not (self.packages or self.unrecorded_a or self.unrecorded_b)

    def counts(self) -> str:
        by = {k: sum(p.kind == k for p in self.packages) for k in ("only-a", "only-b", "version", "build",
                                                                    "install")}
        return (f"{by['only-a']} only in A, {by['only-b']} only in B, {by['version']} at another version, "
                f"{by['build']} same version with other files, {by['install']} installed "
                f"otherwise, {len(self.unrecorded_a)} / {len(self.unrecorded_b)} unrecorded files in A / B, "
                f"{self.same} identical")

    def to_json(self, a: str = "A", b: str = "B") -> dict[str, Any]:
        return {"a": redact(a), "b": redact(b), "identical": self.identical, "digest_a": self.digest_a,
                "digest_b": self.digest_b, "packages": [p.to_json() for p in self.packages],
                "unrecorded_only_in_a": self.unrecorded_a, "unrecorded_only_in_b": self.unrecorded_b,
                "installers": [p.to_json() for p in self.installers], "same": self.same,
                "summary": self.counts()}


def _unrecorded(m: Mapping[str, Any]) -> set[str]:
    out = set(m.get("unrecorded") or [])
    for d in m["distributions"].values():
        out.update(d.get("unrecorded") or [])
    return out


def _package(name: str, da: Mapping[str, Any], db: Mapping[str, Any]) -> PackageDiff | None:
    fa, fb = da.get("files") or {}, db.get("files") or {}
    changed = sorted(p for p in set(fa) & set(fb) if fa[p] != fb[p])
    only_a, only_b = sorted(set(fa) - set(fb)), sorted(set(fb) - set(fa))
    # A file RECORD lists that is missing on disk is `null`: shown as missing on that side.
    only_a += [f"{p} (missing in B)" for p in changed if fb[p] is None]
    only_b += [f"{p} (missing in A)" for p in changed if fa[p] is None]
    changed = [p for p in changed if fa[p] is not None and fb[p] is not None]
    notes = []
    if (da.get("wheel") or {}).get("tags") != (db.get("wheel") or {}).get("tags"):
        notes.append(f"wheel tags: {', '.join((da.get('wheel') or {}).get('tags') or ['-'])} -> "
                     f"{', '.join((db.get('wheel') or {}).get('tags') or ['-'])}")
    if (da.get("wheel") or {}).get("build") != (db.get("wheel") or {}).get("build"):
        notes.append(f"build tag: {(da.get('wheel') or {}).get('build')} -> {(db.get('wheel') or {}).get('build')}")
    for key in ("installer", "direct_url", "record"):
        if da.get(key) != db.get(key):
            notes.append(f"{key}: {redact(json.dumps(da.get(key)))} -> {redact(json.dumps(db.get(key)))}")
    for side, d in (("A", da), ("B", db)):
        if d.get("modified"):
            notes.append(f"{side}: {len(d['modified'])} file(s) differ from their RECORD")
        if d.get("outside"):
            notes.append(f"{side}: RECORD names {len(d['outside'])} path(s) outside the environment: "
                         f"{', '.join(d['outside'][:3])}")
    # Scripts outside site-packages (`../../../bin/x`) that differ are their entry-point wrappers: the
    # installer writes them, each its own (uv's has no `import re`; pip's template changed between pip
    # 23.2 and 26.3, the pip of `python -m venv` and of virtualenv): installed otherwise, not another build.
    wrappers = bool(changed) and all(p.startswith("../") for p in changed)
    if wrappers:
        notes.append(f"entry-point scripts written by the installers differ: {', '.join(changed)}")
    if da["version"] != db["version"]:
        kind = "version"
    elif (changed and not wrappers) or only_a or only_b or any(n.startswith(("wheel tags", "build tag"))
                                                                for n in notes):
        kind = "build"
    elif wrappers or da.get("outside") != db.get("outside") or \
            any(n.startswith(("installer", "direct_url", "record")) for n in notes):
        kind = "install"
    else:
        return None
    return PackageDiff(name, kind, da["version"], db["version"], changed, only_a, only_b, notes)


def compare(a: Mapping[str, Any], b: Mapping[str, Any], *, include_installers: bool = False) -> FileDiff:
    """Two manifests compared package by package and file by file (pure). pip, setuptools and wheel
    are listed apart in ``installers`` unless ``include_installers``."""
    result = FileDiff(digest_a=str(a.get("digest", "")), digest_b=str(b.get("digest", "")))
    pa, pb = a["distributions"], b["distributions"]
    for name in sorted(set(pa) | set(pb)):
        if name not in pb:
            diff: PackageDiff | None = PackageDiff(name, "only-a", pa[name]["version"], None)
        elif name not in pa:
            diff = PackageDiff(name, "only-b", None, pb[name]["version"])
        else:
            diff = _package(name, pa[name], pb[name])
        if diff is None:
            result.same += 1
        elif name.split(" ", 1)[0] in INSTALLER_PACKAGES and not include_installers:
            result.installers.append(diff)
        else:
            result.packages.append(diff)
    ua, ub = _unrecorded(a), _unrecorded(b)
    result.unrecorded_a, result.unrecorded_b = sorted(ua - ub), sorted(ub - ua)
    return result


def load_side(spec: str) -> dict[str, Any]:
    """A manifest file (``*.json``), or the manifest of a live venv folder / interpreter."""
    path = Path(spec)
    if path.is_file() and path.suffix == ".json":
        return load(path)
    if path.is_dir() and ((path / "pyvenv.cfg").exists() or (path / "bin" / "python").exists()):
        return manifest_of(path)[0]
    if looks_like_python(path):
        return manifest_of(path)[0]
    import shutil

    found = shutil.which(spec) if os.sep not in spec else None
    if found:
        return manifest_of(found)[0]
    raise StacksyncError(f"{spec}: diff --files compares environments: give a venv folder, a python or a manifest "
                         "written by `invoke freeze --manifest FILE` (a lock has no file hashes)")


def diff_files(spec_a: str, spec_b: str, *, include_installers: bool = False) -> FileDiff:
    return compare(load_side(spec_a), load_side(spec_b), include_installers=include_installers)


def render_lines(result: FileDiff, label_a: str, label_b: str, *, limit: int = 20) -> list[str]:
    """The file-level diff as text lines."""
    lines: list[str] = []
    titles = {"only-a": "only in A", "only-b": "only in B", "version": "another version",
              "build": "same version, other files", "install": "same package files, installed otherwise"}
    for p in result.packages + result.installers:
        counted = "" if p in result.packages else " (installer, not counted)"
        versions = p.a if p.a == p.b else f"{p.a or '-'} -> {p.b or '-'}"
        lines.append(f"{titles[p.kind]}: {p.name} {versions}{counted}")
        for label, items in (("changed", p.changed), ("only in A", p.only_a), ("only in B", p.only_b)):
            for item in items[:limit]:
                lines.append(f"  {label}: {item}")
            if len(items) > limit:
                lines.append(f"  {label}: ... and {len(items) - limit} more")
        lines += [f"  {n}" for n in p.notes]
    for side, items in (("A", result.unrecorded_a), ("B", result.unrecorded_b)):
        for item in items[:limit]:
            lines.append(f"unrecorded file only in {side}: {item}")
        if len(items) > limit:
            lines.append(f"unrecorded files only in {side}: ... and {len(items) - limit} more")
    verdict = "identical" if result.identical else "differ"
    lines.append(f"{verdict} (A {redact(label_a)} {result.digest_a[:19]}, B {redact(label_b)} "
                 f"{result.digest_b[:19]}): {result.counts()}")
    return lines
