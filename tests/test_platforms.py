"""Variants for other platforms (linux aarch64 / GH200, macOS arm64) compiled on this x86_64 machine with
the uv backend, and a target of that platform played at the probe seam (``STACKSYNC_PLATFORM``): the
platform spelling, the tags such a target installs, pip-tools' refusal, and end to end on a local index
serving stand-in wheels tagged ``manylinux_2_17_x86_64`` / ``manylinux_2_17_aarch64`` /
``macosx_11_0_arm64``. A sync into a real venv is only possible for this host's platform: for the foreign
one the tests run fetch, plan and the twin check."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pkgfactory
import pytest
from clihelp import invoke
from pkgfactory import IndexServer, sha256_of
from stackprofile import PY_XY, stand_in_profile

from stacksync.backends.uv import uv_executable, uv_python_platform
from stacksync.compile.compiler import compile_profile
from stacksync.core.errors import ProfileError
from stacksync.env.environment import Snapshot
from stacksync.env.tags import supported_tags, wheel_fits
from stacksync.lock import profile
from stacksync.lock.lockfile import parse
from stacksync.lock.variants import platform_admits

CP = f"cp{PY_XY.replace('.', '')}"
TAGS = {"x86": f"{CP}-{CP}-manylinux_2_17_x86_64", "gh200": f"{CP}-{CP}-manylinux_2_17_aarch64",
        "mac": f"{CP}-{CP}-macosx_11_0_arm64"}
FAKE = {"gh200": "linux aarch64 2.35", "mac": "darwin arm64 14.0"}
NO_DRIVER = {"STACKSYNC_LIBCUDA": "/nonexistent/libcuda.so.1", "STACKSYNC_NVIDIA_SMI": ""}


def test_platform_spelling() -> None:
    assert platform_admits((), "linux", "x86_64")
    assert platform_admits(("linux",), "linux", "aarch64")
    assert platform_admits(("linux_aarch64",), "linux", "aarch64")
    assert not platform_admits(("linux_aarch64",), "linux", "x86_64")
    assert platform_admits(("darwin_arm64",), "darwin", "arm64") and platform_admits(("darwin_aarch64",), "darwin",
                                                                                       "arm64")
    assert not platform_admits(("darwin_arm64",), "linux", "aarch64")
    assert platform_admits(("win32", "linux_x86_64"), "linux", "x86_64")
    host = {"host": "linux", "machine": "x86_64", "glibc": "2.36"}
    assert uv_python_platform(["linux_aarch64"], **host) == ("aarch64-manylinux_2_28", "")
    assert uv_python_platform(["darwin_arm64"], **host) == ("aarch64-apple-darwin", "")
    assert uv_python_platform(["linux_x86_64"], **host) == ("x86_64-manylinux_2_36", "")  # the host itself
    plat, note = uv_python_platform(["linux_aarch64", "darwin_arm64"], **host)
    assert plat == "aarch64-manylinux_2_28" and "resolved for linux_aarch64 only" in note


def _snapshot(sys_platform: str, machine: str, platform_facts: dict[str, Any], platform_tag: str) -> Snapshot:
    return Snapshot(python=Path("/t/bin/python"), version="3.11.9",
                    marker_environment={"sys_platform": sys_platform, "platform_machine": machine},
                    distributions={}, platform=platform_facts,
                    raw={"python": {"soabi": "cpython-311-x86_64-linux-gnu", "platform_tag": platform_tag}})


def test_tags_of_an_aarch64_and_a_mac_target() -> None:
    gh200 = frozenset(supported_tags(_snapshot("linux", "aarch64", {"system": "Linux", "machine": "aarch64",
                                                                     "glibc": "2.35"}, "linux-aarch64")))
    assert wheel_fits("torch-2.9.1-cp311-cp311-manylinux_2_28_aarch64.whl", gh200)
    assert wheel_fits("x-1-cp311-cp311-manylinux2014_aarch64.whl", gh200)
    assert not wheel_fits("torch-2.9.1-cp311-cp311-manylinux_2_28_x86_64.whl", gh200)
    mac = frozenset(supported_tags(_snapshot("darwin", "arm64", {"system": "Darwin", "machine": "arm64",
                                                                  "glibc": None, "mac_version": "14.0"},
                                             "macosx-11.0-arm64")))
    assert wheel_fits("torch-2.9.1-cp311-none-macosx_11_0_arm64.whl", mac)
    assert wheel_fits("x-1-cp311-cp311-macosx_10_9_universal2.whl", mac)
    assert not wheel_fits("x-1-cp311-cp311-macosx_15_0_arm64.whl", mac)  # newer macOS than the target's
    assert not wheel_fits("x-1-cp311-cp311-macosx_11_0_x86_64.whl", mac)
    assert not wheel_fits("torch-2.9.1-cp311-cp311-manylinux_2_28_aarch64.whl", mac)


GH200_TOML = '''
python = "{py}"
index_url = "https://pypi.example/simple"
[variants.gh200]
platforms = ["linux_aarch64"]
[variants.here]
'''


def test_pip_tools_refuses_a_foreign_platform_in_one_line(tmp_path: Path) -> None:
    if platform.machine() == "aarch64":
        pytest.skip("this host is linux aarch64: the variant is not foreign here")
    folder = tmp_path / "locks" / "p"
    folder.mkdir(parents=True)
    (folder / "stack.toml").write_text(GH200_TOML.format(py=PY_XY))
    (folder / "requirements.in").write_text("plain-b\n")
    with pytest.raises(ProfileError) as caught:
        compile_profile(profile.load(folder).for_variant("gh200"), backend="pip-tools")
    text = str(caught.value)
    assert "stack.toml: variants.gh200.platforms: variant 'gh200' is for linux_aarch64; the pip-tools backend " \
           "resolves only for this machine (linux_x86_64)" in text
    assert '(fix: set backend = "uv" in stack.toml ([variants.gh200] or the profile; uv resolves for another ' \
           'platform), or pass --backend uv)' in text and "\n" not in text
    # the variant's own backend = "uv" is the fix: it resolves for linux aarch64 (checked up to the index)
    fixed = profile.load(folder).variants["gh200"]
    assert fixed.backend is None
    (folder / "stack.toml").write_text(GH200_TOML.format(py=PY_XY).replace('[variants.gh200]\n',
                                                                           '[variants.gh200]\nbackend = "uv"\n'))
    assert profile.load(folder).for_variant("gh200").backend == "uv"
    assert profile.load(folder).for_variant("here").backend == "pip-tools"
    assert not (folder / "gh200").exists()


def test_sync_of_another_platforms_variant_is_one_line(tmp_path: Path) -> None:
    """``invoke sync --variant gh200`` on this x86_64 machine: refused before the target is made."""
    if platform.machine() == "aarch64":
        pytest.skip("this host is linux aarch64: the variant is not foreign here")
    folder = tmp_path / "locks" / "p"
    folder.mkdir(parents=True)
    (folder / "stack.toml").write_text(GH200_TOML.format(py=PY_XY))
    (folder / "requirements.in").write_text("plain-b\n")
    venv = tmp_path / "venv"
    result = invoke("sync", "--profile", str(folder), "--venv", str(venv), "--variant", "gh200", "--yes",
                    extra=NO_DRIVER)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "is for linux_aarch64" in line]
    assert len(errors) == 1, result.stderr
    assert "variant gh200 of profile 'p' is for linux_aarch64; this machine is linux_x86_64" in errors[0]
    assert not venv.exists()


# --- end to end on a local index ------------------------------------------------------------------------

@pytest.fixture
def platform_index(stack_packages: Path, tmp_path: Path) -> Iterator[IndexServer]:
    """The stand-in stack, torch-like replaced by per-platform builds: 2.4.0 for x86_64 (needing the
    nvidia-*-like libraries there, as torch does), aarch64 and macOS arm64; 2.5.0 for x86_64 only."""
    folder = tmp_path / "packages"
    shutil.copytree(stack_packages, folder, ignore=shutil.ignore_patterns("torch_like-*"))
    nvidia = [f"nvidia-cudnn-like=={pkgfactory.CUDNN_LIKE_VERSION}; platform_machine == 'x86_64'",
              f"nvidia-cublas-like=={pkgfactory.CUBLAS_LIKE_VERSION}; platform_machine == 'x86_64'"]
    for name, tag in TAGS.items():
        pkgfactory.build_torch_like(folder, "2.4.0", tag=tag, requires=nvidia, cuda=name == "x86")
    pkgfactory.build_torch_like(folder, "2.5.0", tag=TAGS["x86"], requires=nvidia)
    server = IndexServer(folder, tmp_path / "srv")
    server.start()
    yield server
    server.stop()


def _profile(folder: Path, server: IndexServer) -> Path:
    return stand_in_profile(folder, "torch-like>=2.4\neinops-like\nplain-b\nflash-attn-like==2.8.0\n",
                            f"http://${{PUSER}}:${{PPASS}}@127.0.0.1:{server.port}/simple/", backend="uv",
                            deferred=True, smoke_deferred=False, extra=textwrap.dedent("""\
        [variants.x86]
        platforms = ["linux_x86_64"]
        [variants.gh200]
        platforms = ["linux_aarch64"]
        [variants.mac]
        platforms = ["darwin_arm64"]
        """))


def _hashes(lock: Path, name: str) -> tuple[str | None, set[str]]:
    pin = {p.name: p for p in parse(lock, lock=True).pins}[name]
    return pin.version, {h.split(":", 1)[1] for h in pin.hashes}


@pytest.mark.slow
def test_foreign_platform_locks_fetch_plan_and_twin_check(platform_index: IndexServer, tmp_path: Path) -> None:
    server = platform_index
    auth = {"PUSER": server.user, "PPASS": server.password}
    folder = _profile(tmp_path / "locks" / "fleet", server)
    compiled = invoke("compile", "--profile", str(folder), extra=auth)
    assert compiled.returncode == 0, compiled.stderr

    packages = server.packages_dir
    wheel = {n: packages / f"torch_like-2.4.0-{t}.whl" for n, t in TAGS.items()}
    # each lock resolved for its platform: x86_64 takes 2.5.0 (with the nvidia libraries its marker asks for),
    # aarch64 and macOS the 2.4.0 build they have, without them; the hashes cover that platform's wheel
    for variant in ("x86", "gh200", "mac"):
        lock = folder / variant / "requirements.txt"
        names = {p.name for p in parse(lock, lock=True).pins}
        version, hashes = _hashes(lock, "torch-like")
        if variant == "x86":
            assert version == "2.5.0" and "nvidia-cudnn-like" in names
            assert sha256_of(packages / f"torch_like-2.5.0-{TAGS['x86']}.whl") in hashes
        else:
            assert version == "2.4.0" and "nvidia-cudnn-like" not in names, (variant, names)
            assert sha256_of(wheel[variant]) in hashes
        # the deferred package's sdist hash is the file's, read from the index (nothing built)
        d_version, d_hashes = _hashes(folder / variant / "deferred.txt", "flash-attn-like")
        assert d_version == "2.8.0"
        assert d_hashes == {sha256_of(packages / "flash_attn_like-2.8.0.tar.gz")}
    header = {"x86": f"linux {platform.machine()}", "gh200": "linux aarch64", "mac": "darwin arm64"}
    for variant, on in header.items():
        assert f"# resolved for: Python {PY_XY} on {on}\n" in (folder / variant / "requirements.txt").read_text()
    checked = invoke("compile", "--profile", str(folder), "--check", extra=auth)
    assert checked.returncode == 0 and checked.stderr.count("lock is fresh") == 3, checked.stderr

    uv = uv_executable()
    assert uv is not None
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "--no-config", "--quiet", "--python", sys.executable, str(venv)], check=True)
    cache = tmp_path / "cache"
    for variant, fake in FAKE.items():
        env = {**auth, **NO_DRIVER, "STACKSYNC_PLATFORM": fake, "STACKSYNC_CACHE_DIR": str(cache / variant)}
        planned = invoke("plan", "--profile", str(folder), "--venv", str(venv), extra=env)
        assert planned.returncode == 0, planned.stderr
        assert f"variant {variant} of profile 'fleet': no NVIDIA driver, platform " in planned.stderr
        assert f"lock {folder / variant / 'requirements.txt'}" in planned.stdout + planned.stderr
        assert "install   torch-like 2.4.0" in planned.stdout and "nvidia" not in planned.stdout
        first = {"gh200": "linux_aarch64 (glibc 2.35): takes cp311-cp311-manylinux_2_35_aarch64 wheels first",
                 "mac": "darwin_arm64 (macOS 14.0): takes cp311-cp311-macosx_14_0_arm64 wheels first"}[variant]
        assert f"platform: {first.replace('cp311', CP)}" in planned.stdout, planned.stdout

        fetched = invoke("fetch", "--profile", str(folder), "--venv", str(venv), extra=env)
        assert fetched.returncode == 0, fetched.stderr
        got = {p.name for p in (cache / variant).rglob("*") if p.is_file()}
        assert wheel[variant].name in got, got  # that platform's wheel, not this host's
        assert not {wheel[n].name for n in TAGS if n != variant} & got
        assert "flash_attn_like-2.8.0.tar.gz" in got

    # The twin check of an aarch64 target, judged against the gh200 lock: the venv gets that lock's
    # wheels with uv's --python-platform (a sync cannot put them into this host's venv).
    gh200_lock = folder / "gh200" / "requirements.txt"
    links = [a for d in sorted({p.parent for p in (cache / "gh200").rglob("*.whl")}) for a in ("--find-links", str(d))]
    subprocess.run([uv, "pip", "install", "--no-config", "--quiet", "--python", str(venv / "bin" / "python"),
                    "--python-platform", "aarch64-manylinux_2_28", "--no-index", *links,
                    "--no-deps", "-r", str(gh200_lock)], check=True)
    env = {**auth, **NO_DRIVER, "STACKSYNC_PLATFORM": FAKE["gh200"], "STACKSYNC_CACHE_DIR": str(cache / "gh200")}
    verified = invoke("verify", "--profile", str(folder), "--venv", str(venv), extra=env)
    assert "variant gh200 of profile 'fleet'" in verified.stderr
    assert f"{gh200_lock} (3 packages as locked)" in verified.stderr, verified.stderr
    # every pin of the gh200 lock is there as the very wheel it locks; only the deferred package (which a
    # sync builds) is missing
    assert "(1 missing, 0 extra, 0 at another version)" in verified.stderr, verified.stderr
    assert "only in the lock: flash-attn-like==2.8.0" in verified.stderr and "another build" not in verified.stderr
    assert "smoke 1/1 ok" in verified.stderr and verified.returncode != 0
