"""invoke fleet-report's logic (stacksync.env.fleet) on receipts and manifests written as nodes write them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stacksync.core import runner
from stacksync.core.errors import StacksyncError
from stacksync.env import fleet
from stacksync.env import manifest as manifest_mod

ROOT = Path(__file__).resolve().parent.parent
KEY = "831cd4a8dc37" + "0" * 52


def receipt(node: str, *, lock: str = "a" * 64, digest: str = "d" * 64, key: str = KEY,
            kind: str = "wheelhouse") -> dict[str, Any]:
    return {"stacksync_receipt": 1, "node": node, "profile": "gpu", "verdict": "synced",
            "lock": {"sha256": lock}, "manifest": {"digest": digest},
            "deferred": {"flash-attn": {"version": "2.8.0", "key_digest": key,
                                        "source": {"kind": kind, "from": "/shared/wheelhouse", "key": key}}},
            "plan": {"deferred_sources": {}}}


def manifest(build: str, extra_file: bool = False) -> dict[str, Any]:
    files = {"flash_attn/__init__.py": "sha256=" + "1" * 64}
    if extra_file:
        files["flash_attn/evil.py"] = "sha256=" + "2" * 64
    body: dict[str, Any] = {manifest_mod.MANIFEST_KEY: 1, "distributions": {
        "flash-attn": {"version": "2.8.0", "installer": "pip", "direct_url": None, "record": True,
                       "wheel": {"tags": ["py3-none-any"], "build": build}, "files": files},
        "torch": {"version": "2.4.0", "installer": "pip", "direct_url": None, "record": True,
                  "wheel": {"tags": ["py3-none-any"], "build": None}, "files": {"torch/__init__.py": "sha256=x"}}}}
    body["digest"] = manifest_mod.digest(body)
    return body


def write(folder: Path, name: str, doc: dict[str, Any]) -> Path:
    path = folder / f"{name}.json"
    path.write_text(json.dumps(doc))
    return path


def test_receipts_alike_and_one_outlier(tmp_path: Path) -> None:
    paths = [write(tmp_path, f"n{i}", receipt(f"node{i}")) for i in range(3)]
    paths.append(write(tmp_path, "n3", receipt("node3", lock="b" * 64, digest="e" * 64, key="f" * 64, kind="build")))
    rep = fleet.compare_fleet([fleet.load_node(p) for p in fleet.expand_inputs([str(tmp_path)])])
    assert [n.name for n in rep.nodes] == ["node0", "node1", "node2", "node3"]
    (odd,) = rep.outliers
    assert odd.node.name == "node3" and odd.differences == [
        f"lock sha256 {'a' * 64} -> {'b' * 64}", f"manifest digest {'d' * 16} -> {'e' * 16}",
        f"deferred flash-attn key {KEY[:12]} -> {'f' * 12}"]
    text = fleet.render(rep)
    assert "node3 differs from node0: lock sha256" in text and "wheelhouse /shared/wheelhouse" in text
    assert fleet.compare_fleet([fleet.load_node(p) for p in paths[:3]]).identical


def test_manifests_are_compared_file_by_file(tmp_path: Path) -> None:
    a = write(tmp_path, "nodeA", manifest("0ss831cd4a8dc37"))
    b = write(tmp_path, "nodeB", manifest("0ss831cd4a8dc37", extra_file=True))
    rep = fleet.compare_fleet([fleet.load_node(a), fleet.load_node(b)])
    assert rep.nodes[0].deferred == {"flash-attn": ("831cd4a8dc37", "wheel build tag")}
    (odd,) = rep.outliers
    assert odd.files is not None and [p.name for p in odd.files.packages] == ["flash-attn"]
    assert "  same version, other files: flash-attn 2.8.0" in fleet.render(rep)
    assert "  only in B: flash_attn/evil.py" in fleet.render(rep)


def test_bad_inputs_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("[]")
    with pytest.raises(StacksyncError, match=r"x.json: neither a sync receipt nor a manifest"):
        fleet.load_node(tmp_path / "x.json")
    with pytest.raises(StacksyncError, match=r"nothing-\*.json: no receipts or manifests there"):
        fleet.expand_inputs([str(tmp_path / "nothing-*.json")])
    edited = manifest("0ss1")
    edited["distributions"]["torch"]["version"] = "9"
    with pytest.raises(StacksyncError, match="does not match its content"):
        fleet.load_node(write(tmp_path, "edited", edited))


def test_invoke_fleet_report_exit_codes(tmp_path: Path) -> None:
    write(tmp_path, "n0", receipt("node0"))
    write(tmp_path, "n1", receipt("node1", digest="e" * 64))
    inv = [sys.executable, "-m", "invoke", "-r", str(ROOT), "fleet-report"]
    differ = subprocess.run([*inv, str(tmp_path)], capture_output=True, text=True, cwd=ROOT, env=runner.clean_env())
    assert differ.returncode == 1 and "node1 differs from node0: manifest digest" in differ.stdout, differ.stderr
    bad = subprocess.run([*inv, str(tmp_path / "missing.json")], capture_output=True, text=True, cwd=ROOT,
                         env=runner.clean_env())
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "missing.json: no such file" in bad.stderr
