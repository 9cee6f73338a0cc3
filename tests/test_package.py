"""stacksync installs like a tool: a wheel built from this checkout, installed (not editable) into a fresh
venv outside it, runs every step of the user's path in a project folder that holds only ``locks/demo/``.

The wheel's dependencies come from PyPI (``network``); the demo profile resolves from the local test index.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from pkgfactory import IndexServer

REPO = Path(__file__).resolve().parent.parent
PY_XY = f"{sys.version_info[0]}.{sys.version_info[1]}"
# Left out of the copy, so that it is what a clean checkout holds: nothing built, no venvs, no caches (at the
# top only: stacksync/build/ is code).
_NOT_SOURCE_TOP = {".git", ".tools", ".venv", ".nox", "build", "dist", "stacksync.egg-info", ".stacksync-cache",
                   "reports", ".mypy_cache", ".ruff_cache", ".pytest_cache", "tests"}


def _not_source(folder: str, names: list[str]) -> set[str]:
    top = Path(folder) == REPO
    return {n for n in names if n == "__pycache__" or (top and n in _NOT_SOURCE_TOP)}


def _build_wheel(tmp: Path) -> Path:
    """``python -m build --wheel`` of a copy of this checkout (no build isolation: this run's setuptools,
    so no index is needed; the copy keeps build/ and *.egg-info out of the checkout)."""
    src, out = tmp / "src", tmp / "dist"
    shutil.copytree(REPO, src, ignore=_not_source)
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(src)],
                   check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=600)
    (wheel,) = out.glob("stacksync-*.whl")
    return wheel


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STACKSYNC_", "VIRTUAL_ENV", "PYTHON"))}
    return {**env, **extra}


@pytest.mark.slow
@pytest.mark.network
def test_the_wheel_installs_like_a_tool_and_runs_the_users_path(
        tmp_path: Path, make_venv: Callable[..., Path], index_server: IndexServer) -> None:
    wheel = _build_wheel(tmp_path / "wheel")
    names = zipfile.ZipFile(wheel).namelist()
    assert "stacksync/probes/probe.py" in names and "stacksync/tasks.py" in names
    assert {f"stacksync/{sub}/__init__.py" for sub in ("core", "lock", "env", "backends", "build", "cuda", "compile",
                                                       "sync", "cli", "probes")} <= set(names)
    assert not [n for n in names if n.startswith(("scripts/", "tests/", "devtools/"))]
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "stacksync = stacksync.cli.program:main" in zipfile.ZipFile(wheel).read(entry_points).decode()

    tool = make_venv("tool")  # outside the checkout: a pytest temporary folder
    assert REPO not in tool.parents
    subprocess.run([str(tool / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], check=True,
                   capture_output=True, stdin=subprocess.DEVNULL, timeout=900, env=_clean_env())
    stacksync = str(tool / "bin" / "stacksync")

    project = tmp_path / "project"
    demo = project / "locks" / "demo"
    demo.mkdir(parents=True)
    (demo / "requirements.in").write_text("plain-a\n", encoding="utf-8")
    (demo / "stack.toml").write_text(
        f'python = "{PY_XY}"\n'
        f'index_url = "http://${{IDX_USER}}:${{IDX_PASS}}@127.0.0.1:{index_server.port}/simple/"\n',
        encoding="utf-8")
    env = _clean_env(IDX_USER=index_server.user, IDX_PASS=index_server.password)

    def run(*argv: str, cwd: Path = project) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=900)
        assert proc.returncode == 0, (argv, proc.stdout[-2000:], proc.stderr[-2000:])
        return proc

    shown = run(stacksync, "--help")
    assert "Usage: stacksync" in shown.stdout
    listed = run(stacksync, "--list").stdout
    assert all(task in listed for task in ("freeze", "compile", "sync", "verify", "doctor", "diff"))
    assert "-p STRING, --profile=STRING" in run(stacksync, "--help", "sync").stdout
    assert "Usage: stacksync" in run(str(tool / "bin" / "python"), "-m", "stacksync", "--help").stdout

    frozen = run(stacksync, "freeze").stdout
    assert "invoke==" in frozen and "stacksync==0.1.0" in frozen  # the tool venv, from its own interpreter

    run(stacksync, "compile", "-p", "demo")
    lock = (demo / "requirements.txt").read_text(encoding="utf-8")
    assert "plain-a==2.0" in lock and "--hash=sha256:" in lock

    venv = project / ".venv"  # the project's default target, given explicitly
    synced = run(stacksync, "sync", "-p", "demo", "--venv", str(venv), "-y")
    assert (venv / "bin" / "python").exists(), synced.stderr
    assert list((venv / "lib").glob("python*/site-packages/plain_a-2.0.dist-info"))

    (project / "src").mkdir()
    verified = run(stacksync, "verify", cwd=project / "src")  # the project folder is found upwards
    assert "twin of the lock" in verified.stdout + verified.stderr

    # Everything stacksync wrote is in the project folder, nothing next to where it is installed.
    assert (project / ".stacksync-cache").is_dir()
    site = next((tool / "lib").glob("python*/site-packages"))
    assert not [p.name for p in site.iterdir() if p.name in ("locks", ".stacksync-cache", "reports", ".venv")]

    # Outside any project: one line naming the fix, no traceback.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    refused = subprocess.run([stacksync, "sync", "-p", "demo", "-y"], cwd=elsewhere, env=env, capture_output=True,
                             text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "not in a stacksync project" in refused.stderr and "STACKSYNC_PROJECT" in refused.stderr
