"""The VCS phase's pure parts (stacksync.sync.vcsphase): which pins load for a target, the plan it
adds (install / reinstall at another commit / keep, and no removal by the rest phase), pip-sync's keep
lines. No venv: snapshots are built in place."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from packaging.utils import canonicalize_name

from stacksync.env.environment import Installed, Snapshot
from stacksync.lock.lockfile import parse
from stacksync.lock.profile import IndexConfig
from stacksync.sync import vcsphase
from stacksync.sync.plan import Action, Plan

SHA_A = "3f1c2a9b8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a"
SHA_B = "8fa9bff7e8f5e5f5b2c1a6f1e0a1c2d3e4f5a6b7"
LINUX = {"sys_platform": "linux", "python_version": "3.11", "platform_machine": "x86_64"}


def _vcs_txt(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vcs.txt").write_text(
        f"trainer @ git+https://github.com/org/trainer.git@{SHA_A}\n"
        f"peft @ git+https://github.com/huggingface/peft.git@{SHA_B}\n"
        f"winonly @ git+https://h/w.git@{SHA_A} ; sys_platform == \"win32\"\n", encoding="utf-8")
    return folder


def _installed(name: str, version: str, direct_url: dict[str, Any] | None = None) -> Installed:
    return Installed(name=canonicalize_name(name), version=version, direct_url=direct_url)


def _vcs_dist(name: str, url: str, commit: str) -> Installed:
    return _installed(name, "0.1", {"url": url, "vcs_info": {"vcs": "git", "commit_id": commit}})


def _snapshot(*dists: Installed) -> Snapshot:
    return Snapshot(python=Path("/t/bin/python"), version="3.11.9", marker_environment=LINUX,
                    distributions={d.name: d for d in dists})


def test_load_keeps_the_pins_whose_markers_hold(tmp_path: Path) -> None:
    folder = _vcs_txt(tmp_path / "p")
    # load reads the profile's folder, and its index (an option line in vcs.txt must be the profile's own)
    prof = SimpleNamespace(folder=folder, locks_folder=folder, name="p", stack_toml=folder / "stack.toml",
                           index=IndexConfig())
    pins = vcsphase.load(prof, LINUX)  # type: ignore[arg-type]
    assert sorted(pins) == ["peft", "trainer"]
    assert pins[canonicalize_name("trainer")].commit == SHA_A
    assert vcsphase.load(SimpleNamespace(folder=tmp_path / "none", locks_folder=tmp_path / "none"), LINUX) == {}  # type: ignore[arg-type]


def test_adjust_plan_install_reinstall_keep_and_no_removal(tmp_path: Path) -> None:
    pins = parse(_vcs_txt(tmp_path / "p") / "vcs.txt", lock=True).for_environment(LINUX)
    snapshot = _snapshot(
        _vcs_dist("trainer", "https://github.com/org/trainer.git", SHA_A),        # at the locked commit
        _installed("other", "1.0"))
    plan = Plan()
    plan.phases["rest"] = [Action("rest", canonicalize_name("trainer"), "remove", "0.1", None),
                           Action("rest", canonicalize_name("other"), "remove", "1.0", None)]
    out = vcsphase.adjust_plan(plan, pins, snapshot)
    assert [(a.name, a.kind) for a in out.phases["rest"]] == [("other", "remove")]  # the VCS pin stays
    got = {a.name: (a.kind, a.have, a.want) for a in out.phases["vcs"]}
    assert got == {"peft": ("install", None, SHA_B), "trainer": ("keep", SHA_A, SHA_A)}

    moved = _snapshot(_vcs_dist("trainer", "https://github.com/org/trainer.git", SHA_B),
                      _installed("peft", "0.12.0"))  # from an index, not from git
    again = {a.name: (a.kind, a.have) for a in vcsphase.adjust_plan(Plan(), pins, moved).phases["vcs"]}
    assert again == {"peft": ("reinstall", "0.12.0 (index)"), "trainer": ("reinstall", SHA_B)}


def test_adjust_plan_without_pins_is_the_same_plan() -> None:
    plan = Plan()
    assert vcsphase.adjust_plan(plan, {}, _snapshot()) is plan and plan.phases.get("vcs", []) == []


def test_keep_lines_name_the_installed_vcs_pins(tmp_path: Path) -> None:
    pins = parse(_vcs_txt(tmp_path / "p") / "vcs.txt", lock=True).for_environment(LINUX)
    snapshot = _snapshot(_vcs_dist("trainer", "https://github.com/org/trainer.git", SHA_A))
    assert vcsphase.keep_lines(snapshot, pins) == ["trainer==0.1"]
    assert set(vcsphase.lock_entries(pins)) == {"peft", "trainer"}
