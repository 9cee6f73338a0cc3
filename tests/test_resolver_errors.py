"""Resolver failures keep their cause: real pip-compile 7.6.2 (pip 26.3) and uv 0.13.9 outputs
(tests/data/resolver, captured on a local find-links folder / pypiserver built with tests/pkgfactory.py:
no such version, a version that needs Python >= 3.12, a Windows-only wheel, a conflict, an sdist that
fails to build, an unreachable index and git host, refused credentials) are classified, keep the
resolver's derivation (bounded) and get a fix of their own naming the requirements.in line(s)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacksync.compile.checks import classify, explain_failure, reasoning
from stacksync.core.errors import CommandFailed
from stacksync.lock.lockfile import parse_text

DATA = Path(__file__).parent / "data" / "resolver"
REQ_IN = ("numpy-like==9.9\nwinonly==1.0\nalpha==1.0\nbeta==2.0\nbroken==1.0\n"
          "mylib @ git+https://127.0.0.1:9/acme/mylib.git@3f1c2a9b8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a\n")


def explain(name: str, req_in: str = REQ_IN, **kw: object) -> str:
    pins = parse_text(req_in, "locks/p/requirements.in").pins
    found = explain_failure(CommandFailed(["x"], 1, (DATA / name).read_text()), pins,
                            "uv pip compile" if ".uv." in name else "pip-compile", **kw)  # type: ignore[arg-type]
    assert found is not None
    return str(found)


@pytest.mark.parametrize(("name", "kind"), [
    ("nover.pip.txt", "no-version"), ("nover.uv.txt", "no-version"), ("newpy.pip.txt", "python"),
    ("newpy.uv.txt", "python"), ("plat.uv.txt", "platform"), ("plat.pip.txt", "no-version"), ("abi.uv.txt", "python"),
    ("conflict.pip.txt", "conflict"), ("conflict.uv.txt", "conflict"), ("build.pip.txt", "build"),
    ("net.pip.txt", "network"), ("net.uv.txt", "network"), ("vcs.pip.txt", "vcs"), ("vcs.uv.txt", "vcs"),
    ("noauth.uv.txt", "credentials"), ("badauth.uv.txt", "credentials"),
])
def test_each_real_failure_is_classified(name: str, kind: str) -> None:
    text = (DATA / name).read_text()
    assert classify(text) == kind
    why = reasoning(text)
    assert 1 <= len(why) <= 6 and all(len(line) <= 300 and "Traceback" not in line for line in why)


def test_the_python_cause_is_kept_and_the_fix_is_the_python_version() -> None:
    req = "numpy-like==2.5.2\n"
    uv = explain("newpy.uv.txt", req, python="3.11")
    assert uv.startswith("locks/p/requirements.in:1: uv pip compile cannot resolve numpy-like==2.5.2: no version "
                         "for this Python")
    assert "Because numpy-like==2.5.2 requires Python >=3.12" in uv
    assert "the cause is the Python version (numpy-like needs Python >=3.12): the lock is for Python 3.11" in uv
    assert 'set python = "X.Y" in stack.toml' in uv and "locks/p/requirements.in:1" in uv.split("(fix:")[1]
    pip = explain("newpy.pip.txt", req)
    assert "numpy-like 2.5.2 depends on Python>=3.12" in pip and "the lock is for Python 3.11" in pip


def test_the_issues_uv_text_keeps_the_current_python_line() -> None:
    """The text quoted in the issue (uv resolving for the running interpreter)."""
    text = ("error: No solution found when resolving dependencies:\n  cause: Because the current Python version "
            "(3.11.7) does not satisfy Python>=3.12 and numpy==2.5.2 depends on Python>=3.12, we can conclude "
            "that numpy==2.5.2 cannot be used.\n  And because you require numpy==2.5.2, we can conclude that your "
            "requirements are unsatisfiable.\n")
    pins = parse_text("torch==2.3.1\nnumpy==2.5.2\n", "requirements.in").pins
    found = str(explain_failure(CommandFailed(["uv"], 1, text), pins, "uv pip compile"))
    assert found.startswith("requirements.in:2: uv pip compile cannot resolve numpy==2.5.2: no version for this")
    assert "the current Python version (3.11.7) does not satisfy Python>=3.12" in found
    assert "And because you require numpy==2.5.2" in found and "the lock is for Python 3.11" in found


def test_a_conflict_names_both_lines() -> None:
    for name in ("conflict.uv.txt", "conflict.pip.txt"):
        found = explain(name)
        assert "conflicting requirements" in found, name
        fix = found.split("(fix:")[1]
        assert "alpha==1.0 (locks/p/requirements.in:3)" in fix and "beta==2.0 (locks/p/requirements.in:4)" in fix
    assert "alpha 1.0 depends on beta<2" in explain("conflict.pip.txt")


def test_no_version_platform_build_network_vcs_credentials_fixes() -> None:
    assert "(fix: pin a version of numpy-like the index serves" in explain("nover.uv.txt")
    assert "from versions: 1.0, 2.5.2" in explain("nover.pip.txt")
    plat = explain("plat.uv.txt", platforms=["linux"])
    assert "no wheel for this platform" in plat and "the index has wheels for `win_amd64`" in plat
    assert "no file of winonly that installs here" in explain("plat.pip.txt", python="3.11")
    build = explain("build.pip.txt")
    assert build.startswith("locks/p/requirements.in:5: pip-compile cannot resolve broken==1.0: a source")
    assert "Cannot import build backend 'setuptools.build_meta'" in build and "pin a version with a wheel" in build
    net = explain("net.uv.txt", "numpy-like==1.0\n")
    assert "the index could not be reached" in net and "Connection refused" in net and "index_url" in net
    assert "Connection refused" in explain("net.pip.txt", "numpy-like==1.0\n")
    for name in ("vcs.pip.txt", "vcs.uv.txt"):
        vcs = explain(name)
        assert vcs.startswith("locks/p/requirements.in:6: git could not fetch mylib @ git+https://127.0.0.1:9/"), name
        assert "Failed to connect to 127.0.0.1 port 9" in vcs and "git clone it by hand" in vcs
    auth = explain("badauth.uv.txt", "numpy-like==1.0\n")
    assert "the index refused the credentials" in auth and "403 Forbidden" in auth


def test_an_abi_tag_miss_is_the_python_version() -> None:
    """uv against PyPI for a 2020 freeze read as Python 3.11 (the file did not say its Python)."""
    found = explain("abi.uv.txt", "torch==1.6.0+cpu\nopen3d==0.10.0.1\n")
    assert classify((DATA / "abi.uv.txt").read_text()) == "python"
    assert found.startswith("locks/p/requirements.in:2: uv pip compile cannot resolve open3d==0.10.0.1: no version "
                            "for this Python")
    assert "the lock is for Python 3.11" in found and "`cp35m`, `cp36m`, `cp37m`, `cp38` only" in found
    assert "--python-version X.Y" in found


def test_a_local_cuda_build_missing_points_at_the_pytorch_index() -> None:
    text = ("error: No solution found when resolving dependencies\n  cause: Because there is no version of "
            "torch==2.4.0+cu121 and you require torch==2.4.0+cu121, we can conclude that your requirements are "
            "unsatisfiable.\n")  # uv 0.13.9 against PyPI, for a pip list of a TinyZero environment
    pins = parse_text("numpy==1.26.4\ntorch==2.4.0+cu121\n", "requirements.in").pins
    found = str(explain_failure(CommandFailed(["uv"], 1, text), pins, "uv pip compile"))
    assert found.startswith("requirements.in:2: uv pip compile cannot resolve torch==2.4.0+cu121: no such version")
    assert 'extra_index_urls = ["https://download.pytorch.org/whl/cu121"]' in found
    assert "pin torch==2.4.0 at requirements.in:2" in found
