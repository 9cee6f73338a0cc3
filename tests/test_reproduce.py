"""`nox -s reproduce` through real nox runs: a fresh venv per run, the stand-in stack from the local
password-protected pypiserver, the same sync code as `invoke sync`, and the twin proof."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pkgfactory
import pytest
from pkgfactory import IndexServer
from stackprofile import LOCK_A, TOKEN_VAR, USER_VAR, write_profile

from stacksync.core.errors import StacksyncError
from stacksync.cuda.facts import probe_facts
from stacksync.sync.reproduce import Posargs, parse_posargs, summary

ROOT = Path(__file__).resolve().parent.parent


def nox(tmp: Path, server: IndexServer, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the project's noxfile for real against profiles in ``tmp/locks``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STACKSYNC_")}
    env.update({
        "STACKSYNC_LOCKS_DIR": str(tmp / "locks"),
        "STACKSYNC_CACHE_DIR": str(tmp / "cache"),
        "STACKSYNC_REPORTS_DIR": str(tmp / "reports"),
        USER_VAR: server.user,
        TOKEN_VAR: server.password,
    })
    return subprocess.run([sys.executable, "-m", "nox", "-f", str(ROOT / "noxfile.py"), "--envdir", str(tmp / "nox"),
                           "--no-color", *args], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
                          timeout=300)


def test_posargs() -> None:
    assert parse_posargs([]) == Posargs()
    assert parse_posargs(["--profile", "a", "--profile", "b", "--force", "--backend", "uv"]) == \
        Posargs(("a", "b"), True, "uv")
    assert parse_posargs(["--variant", "cu121"]) == Posargs(variant="cu121")
    with pytest.raises(StacksyncError, match="unknown argument.*--frobnicate"):
        parse_posargs(["--frobnicate"])


def test_summary_names_verdict_phases_and_problems() -> None:
    report = {"profile": "p", "verdict": "failed", "problems": ["differs: torch-like: lock 2.4.0, target 2.4.0+cu121"],
              "venv": {"path": "/v", "backend": "virtualenv", "python": "3.11.7"},
              "installers": {"backend": "pip-tools", "pip": "26.3"}, "lock": {"path": "l", "sha256": "ab" * 32},
              "packages": 7, "freeze_sha256": "cd" * 32, "timings_s": {"base": 1.25}}
    text = summary(report)
    assert text.splitlines()[0] == "reproduce p: FAILED"
    assert "base 1.2s" in text and "pip-tools" in text and "problem: differs: torch-like" in text


@pytest.mark.slow
def test_reproduce_twice_gives_the_same_freeze(tmp_path: Path, index_server: IndexServer,
                                               stack_packages: Path) -> None:
    write_profile(tmp_path / "locks" / "standin", stack_packages, index_server, LOCK_A)
    listed = nox(tmp_path, index_server, "-l")
    assert "reproduce(profile='standin') -> Rebuild a profile's lock in a fresh venv" in listed.stdout

    freezes, digests = [], []
    for _ in range(2):
        proc = nox(tmp_path, index_server, "-s", "reproduce(profile='standin')")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "reproduce standin: TWIN" in proc.stderr
        report = json.loads((tmp_path / "reports" / "reproduce-standin.json").read_text())
        assert report["verdict"] == "twin" and report["problems"] == []
        assert report["venv"]["backend"] == "virtualenv"
        assert report["installers"]["pip-tools"] and report["lock"]["sha256"]
        assert set(report["timings_s"]) >= {"fetch", "base", "rest", "deferred", "verify"}
        freezes.append((tmp_path / "reports" / "reproduce-standin.freeze.txt").read_bytes())
        assert report["freeze_sha256"] == hashlib.sha256(freezes[-1]).hexdigest()
        digests.append(report["manifest_sha256"])
    assert freezes[0] == freezes[1]
    # every installed file's hash, in one digest: the two fresh venvs are byte-identical
    assert digests[0] == digests[1] and digests[0].startswith("sha256:")
    assert b"flash-attn-like==2.8.0\n" in freezes[0] and b"torch-like==2.4.0\n" in freezes[0]
    assert index_server.password not in (tmp_path / "reports" / "reproduce-standin.json").read_text()


@pytest.mark.slow
def test_hand_edited_lock_fails_naming_the_package(tmp_path: Path, index_server: IndexServer,
                                                   stack_packages: Path) -> None:
    """The lock says torch-like==2.4.0 but carries the hash of the 2.4.0+cu121 wheel: `==2.4.0` admits
    the local version, pip installs it, and only the twin check notices."""
    folder = write_profile(tmp_path / "locks" / "edited", stack_packages, index_server, LOCK_A)
    lock = folder / "requirements.txt"
    plain = pkgfactory.sha256_of(stack_packages / "torch_like-2.4.0-py3-none-any.whl")
    cuda = pkgfactory.sha256_of(stack_packages / "torch_like-2.4.0+cu121-py3-none-any.whl")
    lock.write_text(lock.read_text().replace(plain, cuda))
    proc = nox(tmp_path, index_server, "-s", "reproduce", "--", "--profile", "edited")
    assert proc.returncode != 0
    assert "NOT the lock's twin" in proc.stderr
    assert "differs: torch-like: lock 2.4.0, target 2.4.0+cu121" in proc.stderr
    report = json.loads((tmp_path / "reports" / "reproduce-edited.json").read_text())
    assert report["verdict"] == "failed"
    assert any("torch-like" in p for p in report["problems"])


@pytest.mark.slow
def test_profile_needing_a_gpu_is_skipped_with_the_reason(tmp_path: Path, index_server: IndexServer,
                                                          stack_packages: Path) -> None:
    if probe_facts(sys.executable).driver.found:
        pytest.skip("this machine has an NVIDIA driver: the CUDA profile would run, not skip")
    write_profile(tmp_path / "locks" / "gpuish", stack_packages, index_server, LOCK_A, toml_extra='cuda = "12.1"')
    proc = nox(tmp_path, index_server, "-s", "reproduce")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "reproduce(profile='gpuish') skipped: profile 'gpuish' needs CUDA 12.1 and an NVIDIA driver" in proc.stderr
    assert "--profile gpuish --force" in proc.stderr
    unknown = nox(tmp_path, index_server, "-s", "reproduce", "--", "--profile", "nope")
    assert unknown.returncode != 0 and "unknown profile 'nope'" in unknown.stderr
