"""End to end: a torch the machine provides (an "image" site folder the target venv sees through a .pth, as a
``--system-site-packages`` venv sees the system's) is compiled against with ``--provided-from``, kept across
syncs, never installed into the venv, and a change of it is refused with what changed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pkgfactory
import pytest
from clihelp import invoke
from pkgfactory import IndexServer
from stackprofile import TOKEN_VAR, USER_VAR, freeze, index_url, stand_in_profile


def _image_install(stack: Path, image: Path, *reqs: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(stack),
                    "--target", str(image), "--upgrade", *reqs], check=True, capture_output=True,
                   stdin=subprocess.DEVNULL)


@pytest.mark.slow
def test_provided_torch_is_kept_and_a_change_of_it_is_refused(
        index_server: IndexServer, stack_packages: Path, make_venv: Callable[..., Path], tmp_path: Path) -> None:
    image = tmp_path / "image-site"
    _image_install(stack_packages, image, "torch-like==2.4.0+cu121")
    venv = make_venv("target")
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "image.pth").write_text(f"{image}\n")
    assert freeze(venv)["torch-like"] == "2.4.0+cu121"

    folder = stand_in_profile(tmp_path / "locks" / "ngc", "torch-like==2.4.0\nplain-b\n", index_url(index_server),
                              provided=True)
    auth = {USER_VAR: index_server.user, TOKEN_VAR: index_server.password}
    compiled = invoke("compile", "--profile", str(folder), "--provided-from", str(venv / "bin" / "python"),
                      extra=auth)
    assert compiled.returncode == 0, compiled.stderr
    assert (folder / "provided.txt").read_text().splitlines()[-1] == "torch-like==2.4.0+cu121"
    assert "torch-like==2.4.0+cu121" in (folder / "requirements.txt").read_text()

    synced = invoke("sync", "--profile", str(folder), "--venv", str(venv), "--yes", extra=auth)
    assert synced.returncode == 0, synced.stderr
    assert "provided by the machine (kept): torch-like 2.4.0+cu121" in synced.stdout
    assert "provided by the machine: torch-like 2.4.0+cu121" in synced.stderr
    assert not list(site.glob("torch_like*")), "the machine's torch must not be installed into the venv"
    assert freeze(venv)["plain-b"] == "1.0" and freeze(venv)["torch-like"] == "2.4.0+cu121"

    again = invoke("sync", "--profile", str(folder), "--venv", str(venv), "--yes", extra=auth)
    assert again.returncode == 0 and "already in sync" in again.stderr, again.stderr
    assert (image / "torch_like").is_dir()  # still the image's

    for old in image.glob("torch_like*"):  # pip --target leaves the old dist-info of another version
        shutil.rmtree(old)
    _image_install(stack_packages, image, "--no-deps", "torch-like==2.3.0")
    refused = invoke("sync", "--profile", str(folder), "--venv", str(venv), "--yes", extra=auth)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "the machine's provided packages changed since the lock was made (torch-like 2.4.0+cu121 -> 2.3.0" \
        in refused.stderr
    assert freeze(venv)["torch-like"] == "2.3.0" and not list(site.glob("torch_like*"))


@pytest.mark.slow
def test_an_image_only_build_is_left_out_of_the_resolution(
        index_server: IndexServer, stack_packages: Path, make_venv: Callable[..., Path], tmp_path: Path) -> None:
    """An NGC-style torch (``2.4.0a0+nv25``, on no index): uv resolves the rest without it (``--excludes``),
    the lock does not pin it, sync keeps the image's; pip-tools, which cannot, is refused in one line."""
    builds = tmp_path / "image-builds"
    builds.mkdir()
    pkgfactory.build_torch_like(builds, "2.4.0a0+nv25")
    image = tmp_path / "image-site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(stack_packages),
                    "--find-links", str(builds), "--target", str(image), "torch-like==2.4.0a0+nv25"],
                   check=True, capture_output=True, stdin=subprocess.DEVNULL)
    venv = make_venv("target")
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "image.pth").write_text(f"{image}\n")

    folder = stand_in_profile(tmp_path / "locks" / "ngc", "torch-like==2.4.0\nplain-b\n", index_url(index_server),
                              backend="uv", provided=True)
    auth = {USER_VAR: index_server.user, TOKEN_VAR: index_server.password}
    compiled = invoke("compile", "--profile", str(folder), "--provided-from", str(venv / "bin" / "python"),
                      extra=auth)
    assert compiled.returncode == 0, compiled.stderr
    assert (folder / "provided.txt").read_text().splitlines()[-1] == "torch-like==2.4.0a0+nv25"
    lock = (folder / "requirements.txt").read_text()
    assert "plain-b==1.0" in lock and "torch-like" not in lock and "nvidia" not in lock

    refused = invoke("compile", "--profile", str(folder), "--backend", "pip-tools", extra=auth)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert ("provided.txt: torch-like 2.4.0a0+nv25 (the machine's) is on no index: pip-tools cannot resolve the "
            'other packages against it (fix: set backend = "uv" in stack.toml') in refused.stderr, refused.stderr

    synced = invoke("sync", "--profile", str(folder), "--venv", str(venv), "--yes", extra=auth)
    assert synced.returncode == 0, synced.stderr
    kept = next(line for line in synced.stdout.splitlines() if line.startswith("provided by the machine (kept): "))
    assert "torch-like 2.4.0a0+nv25" in kept
    assert "nvidia-cudnn-like 9.1.0" in kept, kept  # what the image's torch needs comes from the image with it
    assert not list(site.glob("torch_like*")), "the machine's torch must not be installed into the venv"
    assert freeze(venv)["plain-b"] == "1.0" and freeze(venv)["torch-like"] == "2.4.0a0+nv25"
    again = invoke("sync", "--profile", str(folder), "--venv", str(venv), "--yes", extra=auth)
    assert again.returncode == 0 and "already in sync" in again.stdout + again.stderr, again.stdout + again.stderr
