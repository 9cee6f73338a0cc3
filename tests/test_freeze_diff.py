"""`invoke freeze` and `invoke diff` on real venvs, real `pip freeze` output (with `@ file://` lines)
and real pip-compile output with hashes and markers, through the real invoke CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pkgfactory
import pytest
from clihelp import invoke

from stacksync.env.diff import compare, diff_sides, direction
from stacksync.env.environment import probe
from stacksync.env.freeze import render
from stacksync.lock.lockfile import parse

ROOT = Path(__file__).resolve().parent.parent


def pip(venv: Path, *args: str) -> str:
    return subprocess.run([str(venv / "bin" / "python"), "-m", "pip", *args], check=True,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL).stdout


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    d = tmp_path / "wheels"
    d.mkdir()
    for name, version, requires in [("alpha", "1.0", ["beta>=1"]), ("alpha", "2.0", ["beta>=1"]),
                                    ("beta", "1.0", []), ("Gamma_Pkg", "0.5", []),
                                    ("delta", "3.0+cpu", []), ("delta", "3.0+cu121", [])]:
        top = name.lower()
        pkgfactory.build_wheel(d, name, version, requires=requires, files={f"{top}/__init__.py": ""})
    return d


@pytest.fixture
def env_a(make_venv, wheels: Path) -> Path:  # type: ignore[no-untyped-def]
    venv = make_venv("a")
    pip(venv, "install", "-q", "--no-index", "--find-links", str(wheels), "alpha==1.0", "delta==3.0+cpu")
    pip(venv, "install", "-q", "--no-index", str(wheels / "gamma_pkg-0.5-py3-none-any.whl"))  # @ file://
    return venv


def test_freeze_is_sorted_canonical_and_byte_identical(env_a: Path, tmp_path: Path) -> None:
    out1, out2 = tmp_path / "f1.txt", tmp_path / "f2.txt"
    r1 = invoke("freeze", "--python", str(env_a / "bin" / "python"), "--out", str(out1))
    r2 = invoke("freeze", "--python", str(env_a), "--out", str(out2))
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr + r2.stderr
    assert out1.read_bytes() == out2.read_bytes()
    lines = out1.read_text().splitlines()
    assert lines[0].startswith("# stacksync freeze of ") and lines[1].startswith("# python 3.")
    assert lines[2].startswith("# date: ")
    # gamma_pkg installed from a local file (`@ file://` in pip freeze) becomes name==version, with a warning
    assert lines[3:] == ["alpha==1.0", "beta==1.0", "delta==3.0+cpu", "gamma-pkg==0.5"]
    assert "gamma-pkg==0.5" in r1.stderr and "file://" in r1.stderr
    # pip/setuptools are left out unless --all
    r_all = invoke("freeze", "--python", str(env_a), "--all")
    assert any(line.startswith("pip==") for line in r_all.stdout.splitlines())
    assert "setuptools==" in r_all.stdout


def test_freeze_reports_editable_installs_and_keeps_vcs_commits(make_venv, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    if shutil.which("git") is None:
        pytest.skip("git is not installed: the VCS case needs a real repository")
    venv = make_venv("v")
    proj = tmp_path / "proj"
    (proj / "proj").mkdir(parents=True)
    (proj / "proj" / "__init__.py").write_text("")
    (proj / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools"]\n'
                                         'build-backend = "setuptools.build_meta"\n'
                                         '[project]\nname = "proj"\nversion = "0.1"\n')
    git = ["git", "-C", str(proj), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    sha = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    pip(venv, "install", "-q", "--no-build-isolation", "--no-index", f"proj @ git+file://{proj}@{sha}")
    edit = tmp_path / "edit"
    shutil.copytree(proj, edit, ignore=shutil.ignore_patterns(".git"))
    (edit / "pyproject.toml").write_text((edit / "pyproject.toml").read_text().replace('"proj"', '"editme"'))
    pip(venv, "install", "-q", "--no-build-isolation", "--no-index", "-e", str(edit))
    text, frozen = render(probe(venv))
    assert f"proj @ git+file://{proj}@{sha}" in text.splitlines()
    assert "editme" not in text and frozen.left_out == ["editme"]
    assert any("editme" in w and "editable" in w for w in frozen.warnings)


def test_diff_venv_against_real_pip_freeze_with_file_urls(env_a: Path, tmp_path: Path) -> None:
    freeze_file = tmp_path / "pip-freeze.txt"
    freeze_file.write_text(pip(env_a, "freeze"))
    assert "gamma_pkg @ file://" in freeze_file.read_text().replace("Gamma_Pkg", "gamma_pkg")
    result = invoke("diff", str(freeze_file), str(env_a))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "identical" in result.stdout


def test_diff_real_pip_compile_lock_with_hashes_and_markers(env_a: Path, wheels: Path, tmp_path: Path) -> None:
    req_in = tmp_path / "requirements.in"
    req_in.write_text('alpha==1.0\ndelta==3.0+cpu\ngamma-pkg==0.5 ; python_version >= "3.8"\n'
                      'never-installed==1.0 ; sys_platform == "nonexistent-os"\n')
    lock = tmp_path / "requirements.txt"
    subprocess.run([sys.executable, "-m", "piptools", "compile", "-q", "--generate-hashes", "--no-index",
                    "--find-links", str(wheels), "--no-emit-find-links", "--output-file", str(lock),
                    str(req_in)], check=True, capture_output=True, text=True, cwd=tmp_path)
    parsed = parse(lock, lock=True)
    assert parsed.get("gamma-pkg")[0].marker is not None
    assert all(p.hashes for p in parsed.pins)
    # the marker that does not hold for the venv does not count: never-installed is skipped
    result = invoke("diff", str(lock), str(env_a), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["identical"] and data["only_in_a"] == [] and data["same"] == 4


def test_diff_reports_sections_directions_and_exit_codes(env_a: Path, wheels: Path, make_venv) -> None:  # type: ignore[no-untyped-def]
    env_b = make_venv("b")
    pip(env_b, "install", "-q", "--no-index", "--find-links", str(wheels), "alpha==2.0", "delta==3.0+cu121")
    result = invoke("diff", str(env_a), str(env_b), "--json")
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["only_in_a"] == [{"name": "gamma-pkg", "version": "0.5"}]
    assert data["only_in_b"] == []
    assert {(c["name"], c["a"], c["b"], c["direction"]) for c in data["changed"]} == {
        ("alpha", "1.0", "2.0", "upgrade"), ("delta", "3.0+cpu", "3.0+cu121", "local")}
    table = invoke("diff", str(env_b), str(env_a))
    assert table.returncode == 1
    assert "only in B" in table.stdout and "down" in table.stdout
    assert "1 only in A" not in table.stdout and "0 only in A, 1 only in B, 2 changed (0 up, 1 down" in table.stdout


def test_diff_bad_input_exits_2_with_one_line(tmp_path: Path) -> None:
    result = invoke("diff", str(tmp_path / "nothing-here.txt"), "demo")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "nothing-here.txt" in result.stderr
    bad = tmp_path / "bad.txt"
    bad.write_text("alpha==1.0\nbeta>=2\n")
    result = invoke("diff", str(bad), str(bad))
    assert result.returncode == 2 and f"{bad}:2: beta is not pinned" in result.stderr


def test_compare_is_pure_and_separates_installers_and_rehashes() -> None:
    from stacksync.env.diff import Entry

    a = {"pip": Entry("pip", "23.2.1"), "x": Entry("x", "1.0", hashes=("sha256:aa",)),  # type: ignore[arg-type]
         "y": Entry("y", "1.0")}  # type: ignore[arg-type]
    b = {"pip": Entry("pip", "26.3"), "x": Entry("x", "1.0", hashes=("sha256:bb",)),  # type: ignore[arg-type]
         "y": Entry("y", "1.0")}  # type: ignore[arg-type]
    result = compare(a, b)  # type: ignore[arg-type]
    assert result.identical and result.rehashed == ["x"] and result.installers == ["pip: 23.2.1 -> 26.3"]
    assert not compare(a, b, include_installers=True).identical  # type: ignore[arg-type]
    assert direction("2.4.0", "2.3.1") == "downgrade" and direction("2.4.0+cpu", "2.4.0+cu121") == "local"


def test_diff_profile_side_uses_lock_and_deferred(tmp_path: Path) -> None:
    folder = tmp_path / "locks" / "p"
    folder.mkdir(parents=True)
    (folder / "stack.toml").write_text('[deferred.flash-attn]\nrequires = ["torch"]\n')
    (folder / "requirements.in").write_text("torch==2.4.0\nflash-attn==2.8.0.post2\n")
    (folder / "requirements.txt").write_text("torch==2.4.0 --hash=sha256:" + "a" * 64 + "\n")
    (folder / "deferred.txt").write_text("flash-attn==2.8.0.post2 --hash=sha256:" + "b" * 64 + "\n")
    other = tmp_path / "freeze.txt"
    other.write_text("torch==2.4.0\nflash_attn==2.8.0\n")
    _, _, result = diff_sides("p", str(other), locks_dir=tmp_path / "locks")
    assert [(c.name, c.a, c.b) for c in result.changed] == [("flash-attn", "2.8.0.post2", "2.8.0")]
