"""A torch the machine provides, on a real image Python (issue 22): an interpreter installation made from
this machine's (devtools/imagepython.py: a copied binary whose prefix holds the stdlib and an empty
site-packages of its own) gets the stand-in torch from real pip; ``IMAGE -m venv --system-site-packages``
makes the target, which sees it as a container's venv sees the image's torch. A profile with
``provided = ["torch-like"]`` is compiled ``--provided-from`` the target and synced: torch is kept across
syncs and never installed into the venv, verify shows it "provided by the machine" with its version, the
deferred build keys on the image's torch, and a changed image torch is refused with what changed while
the target stays as it was."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from clihelp import invoke
from pkgfactory import IndexServer
from stackprofile import PY_XY, STAND_IN_DEFERRED, TOKEN_VAR, USER_VAR, freeze, index_url, record, stand_in_profile

from devtools.imagepython import make_image
from stacksync.build import wheelhouse

pytestmark = pytest.mark.slow


def _pip_into(image: Path, stack: Path, *reqs: str) -> None:
    """``pip --python IMAGE install``: real pip installs into (and uninstalls from) the image's site-packages."""
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(image), "install", "-q", "--no-index",
                           "--find-links", str(stack), *reqs], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr


def _own_dists(venv: Path) -> list[str]:
    """The dist-info folders in the venv's own site-packages (not the image's)."""
    site = next(venv.glob("lib/python*/site-packages"))
    return sorted(p.name for p in site.glob("*.dist-info"))


def test_a_torch_provided_by_a_real_image_python(index_server: IndexServer, stack_packages: Path,
                                                 tmp_path: Path) -> None:
    image_root = tmp_path / "image"
    image = make_image(image_root)  # raises unless the copy's sys.prefix is image_root
    _pip_into(image, stack_packages, "torch-like==2.4.0+cu121")
    image_site = image_root / "lib" / f"python{PY_XY}" / "site-packages"
    assert (image_site / "torch_like").is_dir()

    venv = tmp_path / "target"
    made = subprocess.run([str(image), "-m", "venv", "--system-site-packages", str(venv)], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL)
    assert made.returncode == 0, made.stderr
    seen = subprocess.run([str(venv / "bin" / "python"), "-c", "import json, sys, torch_like; print(json.dumps("
                           "[sys.prefix, sys.base_prefix, torch_like.__file__]))"], capture_output=True, text=True)
    assert seen.returncode == 0, seen.stderr
    prefix, base, torch_file = json.loads(seen.stdout)
    assert (prefix, base) == (str(venv), str(image_root)) and torch_file.startswith(str(image_site))
    assert freeze(venv)["torch-like"] == "2.4.0+cu121"

    folder = stand_in_profile(tmp_path / "locks" / "ngc", STAND_IN_DEFERRED, index_url(index_server), provided=True,
                              deferred=True)
    (tmp_path / "no-cuda-toolkit").mkdir()  # this host's nvcc is another CUDA major than the stand-in torch's
    env = {USER_VAR: index_server.user, TOKEN_VAR: index_server.password,
           "CUDA_HOME": str(tmp_path / "no-cuda-toolkit")}
    compiled = invoke("compile", "--profile", str(folder), "--provided-from", str(venv / "bin" / "python"), extra=env)
    assert compiled.returncode == 0, compiled.stderr
    assert (folder / "provided.txt").read_text().splitlines()[-1] == "torch-like==2.4.0+cu121"

    synced = invoke("sync", "--profile", str(folder), "--venv", str(venv), "--yes", extra=env)
    assert synced.returncode == 0, synced.stderr
    assert "provided by the machine (kept): torch-like 2.4.0+cu121" in synced.stdout
    assert "provided by the machine: torch-like 2.4.0+cu121" in synced.stderr
    assert not [d for d in _own_dists(venv) if d.startswith("torch_like")], "the image's torch was installed over"
    assert freeze(venv)["flash-attn-like"] == "2.8.0" and freeze(venv)["torch-like"] == "2.4.0+cu121"
    # the deferred build keys on the image's torch: its exact version and the CUDA its files say
    [entry] = wheelhouse.entries(wheelhouse.resolve_dir(None, None, folder))
    assert entry.key["base"] == {"torch-like": "2.4.0+cu121"} and entry.key["cuda"] == "12.1"
    assert record(venv)["key_digest"] == entry.digest

    again = invoke("sync", "--profile", str(folder), "--venv", str(venv), "--yes", extra=env)
    assert again.returncode == 0 and "already in sync" in again.stderr, again.stderr
    verified = invoke("verify", "--profile", str(folder), "--venv", str(venv), extra=env)
    assert verified.returncode == 0, verified.stderr
    assert "twin of the lock" in verified.stderr
    assert "provided by the machine: torch-like 2.4.0+cu121" in verified.stderr
    assert (image_site / "torch_like").is_dir()  # still the image's

    before = _own_dists(venv)
    _pip_into(image, stack_packages, "--no-deps", "torch-like==2.3.0")  # the image is updated under the venv
    refused = invoke("sync", "--profile", str(folder), "--venv", str(venv), "--yes", extra=env)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert ("the machine's provided packages changed since the lock was made (torch-like 2.4.0+cu121 -> 2.3.0"
            in refused.stderr), refused.stderr
    assert f"--provided-from {venv / 'bin' / 'python'}" in refused.stderr
    assert _own_dists(venv) == before and freeze(venv)["torch-like"] == "2.3.0"  # the target is unchanged
