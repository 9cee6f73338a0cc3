"""``invoke fleet-report``: many nodes synced to one profile, compared in one table.

Each input is what one node wrote: a sync receipt (``invoke sync --report FILE``: node name, profile,
lock sha256, manifest digest, each deferred package's build key and where its wheel came from) or a
manifest (``invoke freeze --manifest FILE``: the digest, and each deferred wheel's key from its
build tag ``0ss<key>``; the node is the file's name). The first input is the reference; every other
node is compared with it field by field, and where both sides are manifests, file by file
(:func:`stacksync.env.manifest.compare`, as ``invoke diff --files``).

Pure: :func:`load_node` reads one file, :func:`compare_fleet` and :func:`render` do no I/O.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stacksync.core.defaults import BUILD_TAG_PREFIX
from stacksync.core.errors import StacksyncError
from stacksync.env import manifest as manifest_mod

__all__ = ["Node", "Outlier", "FleetReport", "expand_inputs", "load_node", "compare_fleet", "render"]


@dataclass(frozen=True)
class Node:
    """One node's row. ``deferred``: package -> (key short, where its wheel came from)."""

    name: str
    path: str
    kind: str  # receipt | manifest
    profile: str | None
    lock_sha256: str | None
    digest: str | None
    verdict: str | None
    deferred: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    manifest: Mapping[str, Any] | None = None

    def deferred_text(self) -> str:
        return "; ".join(f"{n} {k} ({src})" for n, (k, src) in sorted(self.deferred.items())) or "-"

    def to_json(self) -> dict[str, Any]:
        return {"node": self.name, "file": self.path, "kind": self.kind, "profile": self.profile,
                "lock_sha256": self.lock_sha256, "manifest_digest": self.digest, "verdict": self.verdict,
                "deferred": {n: {"key": k, "source": s} for n, (k, s) in sorted(self.deferred.items())}}


@dataclass
class Outlier:
    node: Node
    differences: list[str]
    files: manifest_mod.FileDiff | None = None


@dataclass
class FleetReport:
    nodes: list[Node]
    outliers: list[Outlier]

    @property
    def identical(self) -> bool:
        return not self.outliers

    def to_json(self) -> dict[str, Any]:
        ref = self.nodes[0].name if self.nodes else None
        return {"reference": ref, "identical": self.identical, "nodes": [n.to_json() for n in self.nodes],
                "outliers": [{"node": o.node.name, "differences": o.differences,
                              "files": o.files.to_json(ref or "A", o.node.name) if o.files else None}
                             for o in self.outliers]}


def expand_inputs(specs: Sequence[str]) -> list[Path]:
    """Each spec is a file, a folder (its ``*.json``) or a glob; comma-separated lists too. The order
    is kept (the first file is the reference); a spec that matches nothing is an error."""
    out: list[Path] = []
    for spec in [s.strip() for raw in specs for s in raw.split(",") if s.strip()]:
        path = Path(spec)
        if path.is_dir():
            found = sorted(path.glob("*.json"))
        elif any(ch in spec for ch in "*?["):
            found = [Path(p) for p in sorted(glob.glob(spec))]
        else:
            found = [path]
        if not found:
            raise StacksyncError(f"{spec}: no receipts or manifests there (fix: give the files nodes wrote with "
                                 "invoke sync --report FILE or invoke freeze --manifest FILE)")
        out += [p for p in found if p not in out]
    return out


def _deferred_from_receipt(data: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for name, rec in dict(data.get("deferred") or {}).items():  # the target's records (every run)
        src = dict(rec.get("source") or {})
        key = str(rec.get("key_digest") or src.get("key") or "")[:12] or "-"
        out[str(name)] = (key, f"{src.get('kind', '?')} {src.get('from', '')}".strip())
    for name, src in dict((data.get("plan") or {}).get("deferred_sources") or {}).items():  # this run's choice
        if name not in out:
            out[str(name)] = (str(src.get("key") or "-")[:12], f"{src.get('kind', '?')} {src.get('from', '')}".strip())
    return out


def _deferred_from_manifest(data: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for name, dist in dict(data.get("distributions") or {}).items():
        build = str((dist.get("wheel") or {}).get("build") or "")
        if build.startswith(BUILD_TAG_PREFIX):
            out[str(name)] = (build[len(BUILD_TAG_PREFIX):], "wheel build tag")
    return out


def load_node(path: Path) -> Node:
    """One receipt or manifest; anything else is one line naming the file and the fix."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StacksyncError(f"{path}: no such file (fix: give receipts or manifests the nodes wrote)") from None
    except (OSError, ValueError) as exc:
        raise StacksyncError(f"{path}: not JSON ({exc}) (fix: give receipts from invoke sync --report or "
                             "manifests from invoke freeze --manifest)") from None
    if isinstance(data, dict) and data.get(manifest_mod.MANIFEST_KEY) == 1:
        checked = manifest_mod.load(path)  # its digest checked against its content
        return Node(name=path.stem, path=str(path), kind="manifest", profile=None, lock_sha256=None,
                    digest=str(checked.get("digest")), verdict=None, deferred=_deferred_from_manifest(checked),
                    manifest=checked)
    if isinstance(data, dict) and data.get("stacksync_receipt") == 1:
        lock = dict(data.get("lock") or {})
        return Node(name=str(data.get("node") or path.stem), path=str(path), kind="receipt",
                    profile=data.get("profile"), lock_sha256=lock.get("sha256"),
                    digest=(data.get("manifest") or {}).get("digest"), verdict=data.get("verdict"),
                    deferred=_deferred_from_receipt(data))
    raise StacksyncError(f"{path}: neither a sync receipt nor a manifest (fix: write one with invoke sync --report "
                         "FILE or invoke freeze --manifest FILE)")


def _differences(ref: Node, node: Node) -> list[str]:
    out: list[str] = []
    for label, a, b in (("profile", ref.profile, node.profile), ("lock sha256", ref.lock_sha256, node.lock_sha256),
                        ("verdict", ref.verdict, node.verdict)):
        if a is not None and b is not None and a != b:
            out.append(f"{label} {a} -> {b}")
    if ref.digest != node.digest:
        out.append(f"manifest digest {(ref.digest or '-')[:16]} -> {(node.digest or '-')[:16]}")
    for name in sorted(set(ref.deferred) | set(node.deferred)):
        a_key = ref.deferred.get(name, ("absent", ""))[0]
        b_key = node.deferred.get(name, ("absent", ""))[0]
        if a_key != b_key:
            out.append(f"deferred {name} key {a_key} -> {b_key}")
    return out


def compare_fleet(nodes: Sequence[Node]) -> FleetReport:
    """Every node against the first: what differs, and file by file where both are manifests."""
    report = FleetReport(nodes=list(nodes), outliers=[])
    if not nodes:
        return report
    ref = nodes[0]
    for node in nodes[1:]:
        diffs = _differences(ref, node)
        files = None
        if ref.manifest is not None and node.manifest is not None and ref.digest != node.digest:
            files = manifest_mod.compare(ref.manifest, node.manifest)
            diffs.append(f"files: {files.counts()}")
        if diffs:
            report.outliers.append(Outlier(node, diffs, files))
    return report


def render(report: FleetReport, *, limit: int = 10) -> str:
    """The table (rich, no colour), then one block per node that differs from the first."""
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    ref = report.nodes[0].name if report.nodes else "-"
    table = Table(title=f"fleet: {len(report.nodes)} node(s), reference {ref}")
    for head in ("node", "profile", "lock sha256", "manifest digest", "deferred: key (source)", "same as first"):
        table.add_column(head)
    odd = {o.node.name for o in report.outliers}
    for i, n in enumerate(report.nodes):
        table.add_row(n.name, n.profile or "-", (n.lock_sha256 or "-")[:16], (n.digest or "-")[:16],
                      n.deferred_text(), "reference" if i == 0 else ("no" if n.name in odd else "yes"))
    console = Console(file=StringIO(), width=220, color_system=None, highlight=False)
    console.print(table)
    text = str(console.file.getvalue())  # type: ignore[attr-defined]
    lines = [text.rstrip("\n")]
    if report.nodes and not report.outliers:
        lines.append(f"all {len(report.nodes)} node(s) are the same as {report.nodes[0].name}")
    for o in report.outliers:
        lines.append(f"{o.node.name} differs from {report.nodes[0].name}: " + "; ".join(o.differences))
        if o.files is not None:
            lines += ["  " + line for line in manifest_mod.render_lines(o.files, report.nodes[0].name, o.node.name,
                                                                        limit=limit)]
    return "\n".join(lines) + "\n"
