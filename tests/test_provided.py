"""Packages the machine provides: provided.txt and the check that refuses a changed machine (pure but for
reading the file)."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from stacksync.core.errors import StacksyncError
from stacksync.lock import provided
from stacksync.lock.profile import Profile


def prof(tmp_path: Path) -> Profile:
    return Profile(name="ngc", folder=tmp_path, provided=(canonicalize_name("torch"),))


def test_provided_versions_recorded_and_checked(tmp_path: Path) -> None:
    p = prof(tmp_path)
    assert provided.check(p, {"torch": "2.4.0a0+nv24", "numpy": "1.26"}, "/t/python") == {"torch": "2.4.0a0+nv24"}
    provided.provided_path(p).write_text(provided.render_provided(p, {canonicalize_name("torch"): "2.4.0a0+nv24"},
                                                                  "/usr/bin/python"))
    assert provided.read_provided(provided.provided_path(p)) == {"torch": "2.4.0a0+nv24"}
    assert provided.check(p, {"torch": "2.4.0a0+nv24"}, "/t/python") == {"torch": "2.4.0a0+nv24"}
    with pytest.raises(provided.ProvidedChanged, match=r"/t/python: the machine's provided packages changed since "
                       r"the lock was made \(torch 2\.4\.0a0\+nv24 -> 2\.5\.0\+cu124;.*\(fix: invoke compile "
                       r"--profile ngc --provided-from /t/python"):
        provided.check(p, {"torch": "2.5.0+cu124"}, "/t/python")
    with pytest.raises(provided.ProvidedChanged, match=r"torch should be provided by the machine but is not "
                       r"installed there \(fix: .*--system-site-packages"):
        provided.check(p, {"numpy": "1.26"}, "/t/python")


def test_a_broken_provided_txt_is_one_line(tmp_path: Path) -> None:
    p = prof(tmp_path)
    provided.provided_path(p).write_text("# x\ntorch>=2\n")
    with pytest.raises(StacksyncError, match=r"provided.txt:2: 'torch>=2' is not name==version"):
        provided.check(p, {"torch": "2.4.0"}, "/t/python")


def test_what_a_provided_package_brings_along() -> None:
    """The installed dependencies of an image's torch that the lock does not pin are the machine's too
    (transitively, markers evaluated for the target); locked ones and absent ones are not."""
    requires = {"torch": ("nvidia-cudnn-cu12==9.1; platform_machine == 'x86_64'", "sympy", "filelock",
                          "triton==3.5; platform_machine == 'aarch64'"),
                "nvidia-cudnn-cu12": ("nvidia-cublas-cu12",), "nvidia-cublas-cu12": (), "sympy": ("mpmath",),
                "mpmath": (), "filelock": (), "plain": ()}
    env = {"platform_machine": "x86_64", "sys_platform": "linux", "python_version": "3.12"}
    found = provided.brought_along([canonicalize_name("torch")], requires, {"filelock"}, env)
    assert found == ["mpmath", "nvidia-cublas-cu12", "nvidia-cudnn-cu12", "sympy"]
    assert provided.brought_along([canonicalize_name("numpy")], requires, set(), env) == []
