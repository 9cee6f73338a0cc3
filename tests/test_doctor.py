"""``invoke doctor``: every finding and its fix, from prepared inputs (no GPU needed).

Pure checks get facts built from a ``probe.py cuda``-shaped dict. The real probe script runs too: against
a fake ``libcuda`` built here with gcc (exports cuDriverGetVersion, cuInit, cuDeviceGetCount ... with
chosen values), fake ``nvcc`` scripts on PATH / CUDA_HOME, and a fake nvidia wheel layout in a real
venv's site-packages.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from clihelp import invoke

from stacksync.core.errors import ProbeError
from stacksync.core.runner import run_script
from stacksync.cuda import checks, doctor
from stacksync.cuda import facts as cuda_facts
from stacksync.cuda.finding import Finding
from stacksync.env.environment import Snapshot, snapshot_from_json
from stacksync.lock import profile as profile_mod
from stacksync.lock.lockfile import parse

REPO = Path(__file__).resolve().parent.parent  # this checkout: its tasks.py and locks/

# ------------------------------------------------------------------------------------------ helpers

TORCH_REQUIRES = [
    'nvidia-cudnn-cu12==9.1.0.70; platform_system == "Linux" and platform_machine == "x86_64"',
    'nvidia-cublas-cu12==12.1.3.1; platform_system == "Linux" and platform_machine == "x86_64"',
    'nvidia-cuda-runtime-cu12==12.1.105; platform_system == "Linux" and platform_machine == "x86_64"',
    "filelock",
]
MARKERS = {"implementation_name": "cpython", "implementation_version": "3.11.7", "os_name": "posix",
           "platform_machine": "x86_64", "platform_release": "6.1", "platform_system": "Linux",
           "platform_version": "#1", "python_full_version": "3.11.7", "platform_python_implementation": "CPython",
           "python_version": "3.11", "sys_platform": "linux"}


def make_facts(**changes: Any) -> cuda_facts.Facts:
    """Facts as ``probe.py cuda`` prints them: a healthy host (driver 550 / CUDA 12.4, one H100, nvcc 12.1,
    ninja, gcc, 64 GiB, glibc 2.36) with ``changes`` applied to the top-level keys."""
    data: dict[str, Any] = {
        "probe_cuda": 1,
        "python": {"version": "3.11.7"},
        "platform": {"system": "Linux", "machine": "x86_64"},
        "driver": {"found": True, "source": "libcuda", "library": "/usr/lib/libcuda.so.550.54.14",
                   "cuda_int": 12040, "version": "550.54.14", "device_count": 1, "init_error": None,
                   "devices": [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_mib": 81559,
                                "capability": "9.0"}]},
        "nvcc": {"cuda_home": "/usr/local/cuda-12.1", "cuda_home_source": "CUDA_HOME",
                 "path": "/usr/local/cuda-12.1/bin/nvcc", "version": "12.1", "on_path": None,
                 "path_version": None, "cuda_h": True},
        "ninja": {"path": "/usr/bin/ninja", "version": "1.11.1", "line": "1.11.1", "on_path": True},
        "compiler": {"path": "/usr/bin/cc", "version": "12.2.0", "line": "cc (Debian 12.2.0) 12.2.0",
                     "on_path": True, "cxx": "/usr/bin/c++"},
        "memory": {"total_mib": 65536, "available_mib": 60000, "cgroup_limit_mib": None},
        "cpu_count": 8, "max_jobs": None, "glibc": "2.36", "libraries": {}, "torch": None,
    }
    data.update(changes)
    return cuda_facts.facts_from_json(data)


NO_DRIVER = {"found": False, "source": "libcuda", "error": "libcuda.so.1: cannot open shared object file"}


def driver(cuda_int: int, **extra: Any) -> dict[str, Any]:
    return {"found": True, "cuda_int": cuda_int, "version": "520.61.05", "device_count": 1,
            "devices": [{"index": 0, "name": "Tesla T4", "memory_mib": 15360, "capability": "7.5"}], **extra}


def make_snapshot(dists: dict[str, tuple[str, list[str]]] | None = None, *, python: str = "3.11.7",
                  soabi: str = "cpython-311-x86_64-linux-gnu") -> Snapshot:
    doc = {"probe": 1, "python": {"version": python, "soabi": soabi},
           "marker_environment": {**MARKERS, "python_version": ".".join(python.split(".")[:2]),
                                  "python_full_version": python},
           "distributions": [{"name": n, "version": v, "requires": r} for n, (v, r) in (dists or {}).items()]}
    return snapshot_from_json(Path("/target/bin/python"), doc)


def lib(path: str, source: str = "site-packages") -> list[dict[str, str]]:
    return [{"path": path, "source": source}]


def by_topic(findings: list[Finding], topic: str) -> list[Finding]:
    return [f for f in findings if f.topic == topic]


def one(findings: list[Finding], topic: str, level: str) -> Finding:
    hits = [f for f in findings if f.topic == topic and f.level == level]
    assert len(hits) == 1, f"expected one {level} about {topic}, got {findings}"
    return hits[0]


def levels(findings: list[Finding]) -> set[str]:
    return {f.level for f in findings}


def write_profile(root: Path, name: str, stack_toml: str, requirements_in: str,
                  lock: str | None = None) -> profile_mod.Profile:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "stack.toml").write_text(textwrap.dedent(stack_toml))
    (folder / "requirements.in").write_text(textwrap.dedent(requirements_in))
    if lock is not None:
        (folder / "requirements.txt").write_text(textwrap.dedent(lock))
    return profile_mod.load(name, root)


GPU_TOML = """\
python = "3.11"
platforms = ["linux"]
cuda = "12.1"
base = ["torch"]

[deferred.flash-attn]
requires = ["torch", "einops"]
build_requires = ["setuptools", "wheel", "ninja"]
build_env = { MAX_JOBS = "4" }
"""
GPU_IN = "torch==2.4.0\nflash-attn==2.8.0.post2\neinops\n"
GPU_LOCK = """\
#
# This file is autogenerated by pip-compile with Python 3.11
#
einops==0.8.0
flash-attn==2.8.0.post2
nvidia-cublas-cu12==12.1.3.1
nvidia-cuda-runtime-cu12==12.1.105
nvidia-cudnn-cu12==9.1.0.70
torch==2.4.0
"""


@pytest.fixture
def gpu_profile(tmp_path: Path) -> profile_mod.Profile:
    return write_profile(tmp_path / "locks", "gpu", GPU_TOML, GPU_IN, GPU_LOCK)


# ------------------------------------------------------------------------------ host: the driver


def test_no_gpu_is_a_warning_not_a_crash() -> None:
    findings = checks.host_findings(make_facts(driver=NO_DRIVER))
    found = one(findings, "driver", "warning")
    assert found.message.startswith("no NVIDIA driver found")
    assert "install the NVIDIA driver" in found.fix
    assert "error" not in levels(findings)


def test_driver_ok_lists_gpus() -> None:
    found = one(checks.host_findings(make_facts()), "driver", "ok")
    assert found.message == ("NVIDIA driver 550.54.14 supports CUDA up to 12.4; 1 GPU: NVIDIA H100 80GB HBM3 "
                             "(79 GiB, compute 9.0)")


def test_driver_without_visible_gpu() -> None:
    facts = make_facts(driver=driver(12040, init_error="CUDA_ERROR_NO_DEVICE (100)", device_count=None, devices=[]),
                       cuda_visible_devices="")
    found = one(checks.host_findings(facts), "driver", "warning")
    assert "no GPU is visible" in found.message and "CUDA_VISIBLE_DEVICES=''" in found.message
    assert "--gpus all" in found.fix


def test_driver_library_mismatch_is_an_error_with_its_fix() -> None:
    facts = make_facts(driver=driver(12040, init_error="CUDA_ERROR_SYSTEM_DRIVER_MISMATCH (803)"))
    found = one(checks.host_findings(facts), "driver", "error")
    assert "cuInit failed" in found.message
    assert "kernel module differ" in found.fix


def test_driver_that_reports_no_cuda_version() -> None:
    facts = make_facts(driver={"found": True, "library": "/x/libcuda.so", "cuda_int": None,
                               "error": "the library has no cuDriverGetVersion"})
    found = one(checks.host_findings(facts), "driver", "error")
    assert "no cuDriverGetVersion" in found.message and "reinstall the NVIDIA driver" in found.fix


def test_glibc_findings() -> None:
    assert one(checks.host_findings(make_facts()), "glibc", "ok").message == "glibc 2.36"
    musl = one(checks.host_findings(make_facts(glibc=None)), "glibc", "warning")
    assert "musl" in musl.message and "glibc-based image" in musl.fix
    old = one(checks.host_findings(make_facts(glibc="2.12")), "glibc", "error")
    assert "older than 2.17" in old.message


# --------------------------------------------------------------------------- target: torch vs driver


def test_torch_cuda_build_runs_on_a_newer_driver() -> None:
    snap = make_snapshot({"torch": ("2.4.0+cu121", TORCH_REQUIRES)})
    build = cuda_facts.torch_build(snap, make_facts())
    assert build is not None and (build.kind, build.cuda, build.conflicts) == ("cuda", "12.1", ())
    assert "torch==2.4.0+cu121 (CUDA 12.1)" in build.evidence
    assert "nvidia-cuda-runtime-cu12==12.1.105 (CUDA 12.1)" in build.evidence
    found = one(checks.target_findings(snap, make_facts()), "torch", "ok")
    assert found.message == "torch 2.4.0+cu121 needs CUDA 12.1 runtime; the driver supports up to 12.4"


def test_torch_newer_than_the_driver_is_an_error_naming_the_fix() -> None:
    # torch 2.4.0 from PyPI has no local version: its nvidia-cuda-runtime-cu12 requirement says 12.1.
    snap = make_snapshot({"torch": ("2.4.0", TORCH_REQUIRES)})
    found = one(checks.target_findings(snap, make_facts(driver=driver(11080))), "torch", "error")
    assert found.message == "torch 2.4.0 needs CUDA 12.1 runtime; driver supports up to 11.8"
    assert found.fix == "update the NVIDIA driver to >= 530.30.02, or pick a cu118 profile"


def test_same_major_older_driver_is_minor_version_compatibility() -> None:
    snap = make_snapshot({"torch": ("2.5.1+cu124", [])})
    found = one(checks.target_findings(snap, make_facts(driver=driver(12020))), "torch", "warning")
    assert "minor version compatibility" in found.message
    assert found.fix == "update the NVIDIA driver to >= 550.54.14"


def test_cuda_torch_without_driver_says_cpu_only() -> None:
    snap = make_snapshot({"torch": ("2.4.0+cu121", [])})
    found = one(checks.target_findings(snap, make_facts(driver=NO_DRIVER)), "torch", "warning")
    assert "runs on the CPU only" in found.message and "530.30.02" in found.fix


def test_cpu_torch_on_a_gpu_machine() -> None:
    snap = make_snapshot({"torch": ("2.13.0+cpu", [])})
    found = one(checks.target_findings(snap, make_facts()), "torch", "warning")
    assert "CPU build" in found.message and "CUDA build" in found.fix
    assert one(checks.target_findings(snap, make_facts(driver=NO_DRIVER)), "torch", "ok").message.endswith(
        "is a CPU build")


def test_torch_files_that_disagree() -> None:
    facts = make_facts(torch={"version_py": "/sp/torch/version.py", "version": "2.4.0+cu118", "cuda": "11.8"})
    snap = make_snapshot({"torch": ("2.4.0+cu121", [])})
    found = one(checks.target_findings(snap, facts), "torch", "warning")
    assert "disagree about CUDA" in found.message and "version.py: cuda = '11.8'" in found.message
    assert "--force-reinstall" in found.fix


def test_no_torch_is_fine() -> None:
    found = one(checks.target_findings(make_snapshot({}), make_facts()), "torch", "ok")
    assert found.message == "torch is not installed in the target"


def test_failed_torch_import_is_explained() -> None:
    facts = make_facts(torch_import={"ok": False, "error": "ImportError: libcudnn.so.9: cannot open shared "
                                                           "object file: No such file or directory"})
    snap = make_snapshot({"torch": ("2.4.0", TORCH_REQUIRES)})
    found = [f for f in checks.target_findings(snap, facts) if f.message.startswith("import torch fails")]
    assert len(found) == 1 and found[0].level == "error"
    assert "nvidia-cudnn-cu12" in found[0].message


# ------------------------------------------------------------------------------------- libraries


def test_missing_cuda_library_names_the_package_and_version() -> None:
    snap = make_snapshot({"torch": ("2.4.0", TORCH_REQUIRES), "nvidia-cublas-cu12": ("12.1.3.1", []),
                          "nvidia-cuda-runtime-cu12": ("12.1.105", [])})
    facts = make_facts(libraries={"libcublas.so.12": lib("/sp/nvidia/cublas/lib/libcublas.so.12"),
                                  "libcudart.so.12": lib("/sp/nvidia/cuda_runtime/lib/libcudart.so.12")})
    findings = by_topic(checks.target_findings(snap, facts), "libraries")
    missing = one(findings, "libraries", "error")
    assert missing.message == ("libcudnn.so.9 not found: torch 2.4.0 requires nvidia-cudnn-cu12==9.1.0.70, "
                               "which is not installed")
    assert missing.fix.startswith("python -m pip install nvidia-cudnn-cu12==9.1.0.70")
    summary = one(findings, "libraries", "ok")
    assert summary.message == ("CUDA libraries: 2 of 3 found (2 from site-packages): libcublas.so.12, "
                               "libcudart.so.12")


def test_missing_library_with_a_lock_names_the_lock_line(gpu_profile: profile_mod.Profile) -> None:
    snap = make_snapshot({"torch": ("2.4.0", TORCH_REQUIRES), "nvidia-cublas-cu12": ("12.1.3.1", []),
                          "nvidia-cuda-runtime-cu12": ("12.1.105", [])})
    facts = make_facts(libraries={"libcublas.so.12": lib("/sp/libcublas.so.12"),
                                  "libcudart.so.12": lib("/sp/libcudart.so.12")})
    found = one(checks.findings_for(snap, facts, gpu_profile), "libraries", "error")
    assert f"(locked at 9.1.0.70, {gpu_profile.lock_path}:8)" in found.message


def test_installed_package_whose_library_file_is_gone() -> None:
    snap = make_snapshot({"nvidia-cudnn-cu12": ("9.1.0.70", [])})
    found = one(checks.target_findings(snap, make_facts()), "libraries", "error")
    assert "libcudnn.so.9 is missing although nvidia-cudnn-cu12 9.1.0.70 is installed" in found.message
    assert "--force-reinstall --no-deps nvidia-cudnn-cu12==9.1.0.70" in found.fix


def test_installed_version_other_than_torch_requires() -> None:
    snap = make_snapshot({"torch": ("2.4.0", TORCH_REQUIRES[:1]), "nvidia-cudnn-cu12": ("8.9.2.26", [])})
    facts = make_facts(libraries={"libcudnn.so.8": lib("/sp/nvidia/cudnn/lib/libcudnn.so.8")})
    found = one(checks.target_findings(snap, facts), "libraries", "error")
    assert found.message == "torch 2.4.0 requires nvidia-cudnn-cu12==9.1.0.70 but 8.9.2.26 is installed"
    assert found.fix == "python -m pip install nvidia-cudnn-cu12==9.1.0.70"


def test_system_library_counts_and_ld_library_path_shadowing_warns() -> None:
    snap = make_snapshot({"nvidia-cudnn-cu12": ("9.1.0.70", [])})
    facts = make_facts(libraries={"libcudnn.so.9": [
        {"path": "/sp/nvidia/cudnn/lib/libcudnn.so.9", "source": "site-packages"},
        {"path": "/opt/cudnn/lib/libcudnn.so.9", "source": "LD_LIBRARY_PATH"}]})
    findings = checks.target_findings(snap, facts)
    assert "1 of 1 found" in one(findings, "libraries", "ok").message
    shadow = one(findings, "libraries", "warning")
    assert "/opt/cudnn/lib" in shadow.message and shadow.fix == "remove /opt/cudnn/lib from LD_LIBRARY_PATH"


def test_markers_decide_which_nvidia_requirements_count() -> None:
    # On aarch64 the x86_64-only nvidia requirements do not apply: nothing is missing.
    snap = make_snapshot({"torch": ("2.4.0", TORCH_REQUIRES)})
    snap = Snapshot(snap.python, snap.version, {**MARKERS, "platform_machine": "aarch64"}, snap.distributions,
                    raw=snap.raw)
    assert "error" not in levels(checks.target_findings(snap, make_facts(driver=NO_DRIVER)))


# ----------------------------------------------------------------------------------- build side


def test_nvcc_major_mismatch_is_an_error_only_when_something_builds() -> None:
    facts = make_facts(nvcc={"cuda_home": "/usr/local/cuda", "cuda_home_source": "/usr/local/cuda",
                             "path": "/usr/local/cuda/bin/nvcc", "version": "11.8", "cuda_h": True})
    building = one(checks.build_findings(facts, torch_cuda="12.1", deferred=["flash_attn"]), "nvcc", "error")
    assert "nvcc 11.8" in building.message and "torch refuses to build flash-attn" in building.message
    assert "CUDA_HOME" in building.fix and "12.1" in building.fix
    assert one(checks.build_findings(facts, torch_cuda="12.1"), "nvcc", "warning")


def test_nvcc_same_major_and_missing_nvcc() -> None:
    assert "matching torch's CUDA 12.1" in one(checks.build_findings(make_facts(), torch_cuda="12.1"),
                                               "nvcc", "ok").message
    facts = make_facts(nvcc={"cuda_home": None, "path": None, "version": None})
    missing = one(checks.build_findings(facts, torch_cuda="12.1", deferred=["flash-attn"]), "nvcc", "warning")
    assert missing.message.startswith("no nvcc (no CUDA_HOME; none on PATH): flash-attn cannot compile")
    assert "install the CUDA 12.1 toolkit" in missing.fix
    assert one(checks.build_findings(facts, torch_cuda=None), "nvcc", "ok")


def test_cuda_home_without_headers_and_two_nvccs() -> None:
    facts = make_facts(nvcc={"cuda_home": "/usr/local", "cuda_home_source": "nvcc on PATH",
                             "path": "/usr/local/bin/nvcc", "version": "12.1", "on_path": "/opt/bin/nvcc",
                             "path_version": "11.8", "cuda_h": False})
    warnings = [f for f in checks.build_findings(facts, torch_cuda="12.1", deferred=["x"]) if f.level == "warning"]
    assert any("/usr/local has no include/cuda.h" in f.message for f in warnings)
    assert any("nvcc on PATH (/opt/bin/nvcc) is 11.8 but CUDA_HOME's is 12.1" in f.message for f in warnings)


def test_ninja_and_compiler() -> None:
    facts = make_facts(ninja=None, compiler=None)
    findings = checks.build_findings(facts, torch_cuda="12.1", deferred=["flash-attn"])
    assert "ninja" in one(findings, "ninja", "warning").fix
    compiler = one(findings, "compiler", "error")
    assert "no C compiler" in compiler.message and "build-essential" in compiler.fix
    with_req = checks.build_findings(facts, torch_cuda="12.1", deferred=["flash-attn"], build_requires=["ninja"])
    assert "build_requires install it" in one(with_req, "ninja", "ok").message
    # Nothing to build: a missing compiler is a fact, not a problem.
    assert levels(checks.build_findings(facts, torch_cuda="12.1")) == {"ok"}


def test_memory_for_parallel_jobs() -> None:
    facts = make_facts(memory={"total_mib": 16384, "available_mib": 12288, "cgroup_limit_mib": None}, cpu_count=32)
    unset = one(checks.build_findings(facts, torch_cuda="12.1", deferred=["flash-attn"]), "memory", "warning")
    assert unset.message.startswith("MAX_JOBS unset (ninja runs 34 jobs): about 136 GiB")
    assert unset.fix == 'set build_env = { MAX_JOBS = "3" } for the deferred package in stack.toml'
    fine = one(checks.build_findings(facts, torch_cuda="12.1", deferred=["flash-attn"], max_jobs="2"), "memory", "ok")
    assert fine.message == "12.0 GiB available for MAX_JOBS=2"
    limited = make_facts(memory={"available_mib": 60000, "cgroup_limit_mib": 8192})
    found = one(checks.build_findings(limited, torch_cuda="12.1", deferred=["x"], max_jobs="4"), "memory", "warning")
    assert "8.0 GiB available (cgroup limit)" in found.message


# ------------------------------------------------------------------------------- pre-install


def test_preinstall_lock_needs_newer_cuda_than_the_driver(gpu_profile: profile_mod.Profile) -> None:
    findings = checks.preinstall_findings(gpu_profile, make_snapshot({}), make_facts(driver=driver(11080)))
    found = one(findings, "cuda", "error")
    assert found.message == "this lock needs CUDA 12.1 runtime; driver supports up to 11.8"
    assert found.fix == "update the NVIDIA driver to >= 530.30.02, or pick a cu118 profile"


def test_preinstall_healthy_gpu_host(gpu_profile: profile_mod.Profile) -> None:
    findings = checks.preinstall_findings(gpu_profile, make_snapshot({}), make_facts())
    assert "error" not in levels(findings), findings
    assert one(findings, "python", "ok").message == "target Python 3.11.7 matches profile 'gpu' (3.11)"
    assert one(findings, "cuda", "ok")
    assert one(findings, "memory", "ok").message.endswith("for MAX_JOBS=4")  # the profile's build_env wins


def test_preinstall_without_gpu_is_only_a_warning(gpu_profile: profile_mod.Profile) -> None:
    findings = checks.preinstall_findings(gpu_profile, make_snapshot({}), make_facts(driver=NO_DRIVER))
    assert "error" not in levels(findings)
    assert "CPU only" in one(findings, "cuda", "warning").message


def test_preinstall_python_mismatch(gpu_profile: profile_mod.Profile) -> None:
    findings = checks.preinstall_findings(gpu_profile, make_snapshot({}, python="3.10.12"), make_facts())
    found = one(findings, "python", "error")
    assert "locked for Python 3.11" in found.message and "runs Python 3.10.12" in found.message
    assert "python3.11 -m venv" in found.fix


def test_preinstall_free_threaded_and_platform(tmp_path: Path) -> None:
    prof = write_profile(tmp_path, "mac", 'platforms = ["darwin"]\n', "plain-a==1.0\n")
    findings = checks.preinstall_findings(prof, make_snapshot({}, soabi="cpython-313t-x86_64-linux-gnu"),
                                          make_facts())
    assert one(findings, "platform", "error").message == "profile 'mac' is for darwin; the target is linux"
    assert "free-threaded" in one(findings, "python", "warning").message
    assert one(findings, "lock", "warning").message.startswith("no lock yet")
    assert one(findings, "cuda", "ok").message.startswith("profile 'mac' needs no CUDA runtime")


def test_preinstall_cuda_from_pins_without_a_cuda_key(tmp_path: Path) -> None:
    prof = write_profile(tmp_path, "p", 'python = "3.11"\n', "torch==2.4.0\n", GPU_LOCK)
    need = cuda_facts.lock_cuda(prof, parse(prof.lock_path).for_environment(MARKERS))
    assert need is not None and need.cuda == "12.1"
    assert "nvidia-cuda-runtime-cu12==12.1.105 (CUDA 12.1)" in need.evidence
    found = one(checks.preinstall_findings(prof, make_snapshot({}), make_facts(driver=driver(11080))), "cuda",
                "error")
    assert "needs CUDA 12.1 runtime" in found.message


def test_preinstall_lock_that_contradicts_its_cuda_key(tmp_path: Path) -> None:
    prof = write_profile(tmp_path, "p", 'cuda = "12.1"\n', "torch==2.4.0+cu118\n",
                         "torch==2.4.0+cu118\nnvidia-cudnn-cu11==9.1.0.70\n")
    found = one(checks.preinstall_findings(prof, make_snapshot({}), make_facts()), "cuda", "error")
    assert "disagrees with itself" in found.message and "torch==2.4.0+cu118 says CUDA 11.8" in found.message
    assert "torch==X+cu121" in found.fix


def test_preinstall_glibc_too_old_for_new_torch(tmp_path: Path) -> None:
    prof = write_profile(tmp_path, "p", "", "torch==2.7.0\n", "torch==2.7.0\n")
    found = one(checks.preinstall_findings(prof, make_snapshot({}), make_facts(glibc="2.27")), "glibc", "error")
    assert "manylinux_2_28" in found.message and "has 2.27" in found.message
    assert "torch < 2.7" in found.fix
    musl = one(checks.preinstall_findings(prof, make_snapshot({}), make_facts(glibc=None)), "glibc", "error")
    assert "no glibc" in musl.message


def test_preinstall_skips_build_checks_when_deferred_is_installed(gpu_profile: profile_mod.Profile) -> None:
    facts = make_facts(compiler=None, nvcc={"path": None})
    snap = make_snapshot({"torch": ("2.4.0", []), "flash-attn": ("2.8.0.post2", [])})
    findings = checks.preinstall_findings(gpu_profile, snap, facts)
    assert one(findings, "build", "ok").message == "flash-attn already installed as locked: nothing to build"
    assert "error" not in levels(findings)
    # A torch change means a rebuild: the build checks are back.
    changed = make_snapshot({"torch": ("2.3.0", []), "flash-attn": ("2.8.0.post2", [])})
    assert one(checks.preinstall_findings(gpu_profile, changed, facts), "compiler", "error")


def test_preinstall_broken_lock_is_an_error_finding(tmp_path: Path) -> None:
    prof = write_profile(tmp_path, "p", "", "torch\n", "torch==2.4.0\n--hash=sha256:zz\n")
    found = one(checks.preinstall_findings(prof, make_snapshot({}), make_facts()), "lock", "error")
    assert "requirements.txt:2" in found.message


@pytest.mark.parametrize("facts", [
    make_facts(), make_facts(driver=NO_DRIVER), make_facts(compiler=None, ninja=None, nvcc={"path": None}),
    make_facts(glibc="2.5"), make_facts(glibc=None), make_facts(memory={"total_mib": 512, "available_mib": 256}),
])
def test_a_lock_without_cuda_manylinux_or_builds_warns_the_same_without_the_cuda_facts(
        tmp_path: Path, facts: cuda_facts.Facts) -> None:
    """Issue 21: a sync of such a lock does not start probe.py's cuda half; what it prints (warnings and
    errors) is what it printed with the facts, whatever they say, but doctor's nvcc-on-PATH warning (below)."""
    prof = write_profile(tmp_path, "p", 'python = "3.11"\n', "plain-a\n", "plain-a==1.0\nrequests==2.32.3\n")
    names = parse(prof.lock_path).names()
    assert not cuda_facts.preinstall_wants_facts(prof, names, building=False)
    for snap in (make_snapshot({}), make_snapshot({}, python="3.10.12")):
        shown = [f for f in checks.preinstall_findings(prof, snap, facts) if f.level != "ok"]
        assert shown == [f for f in checks.preinstall_findings(prof, snap, None) if f.level != "ok"]
    assert cuda_facts.preinstall_wants_facts(prof, names, building=True)


def test_a_lock_without_cuda_or_builds_leaves_the_nvcc_on_path_warning_to_doctor(tmp_path: Path) -> None:
    """A second nvcc on PATH matters to a build; a sync of a lock that builds nothing and needs no CUDA
    does not start the cuda half to say so (doctor's build findings, made from the facts, still do)."""
    two = make_facts(nvcc={"cuda_home": "/usr/local/cuda-12.1", "cuda_home_source": "CUDA_HOME",
                           "path": "/usr/local/cuda-12.1/bin/nvcc", "version": "12.1", "on_path": "/opt/bin/nvcc",
                           "path_version": "11.8", "cuda_h": True})
    prof = write_profile(tmp_path, "p", 'python = "3.11"\n', "plain-a\n", "plain-a==1.0\n")
    assert not cuda_facts.preinstall_wants_facts(prof, parse(prof.lock_path).names(), building=False)
    path_warning = "nvcc on PATH (/opt/bin/nvcc) is 11.8 but CUDA_HOME's is 12.1"
    assert any(path_warning in f.message for f in checks.build_findings(two, torch_cuda=None) if f.level == "warning")
    assert not any(f.topic == "nvcc" for f in checks.preinstall_findings(prof, make_snapshot({}), None))


@pytest.mark.parametrize(("stack_toml", "lock"), [('cuda = "12.1"\n', "plain-a==1.0\n"),
                                                  ("", "torch==2.4.0\n"), ("", "nvidia-cudnn-cu12==9.1.0.70\n"),
                                                  ("", "triton==3.0.0\n")])
def test_a_lock_the_cuda_facts_judge_is_never_checked_without_them(tmp_path: Path, stack_toml: str,
                                                                  lock: str) -> None:
    prof = write_profile(tmp_path, "p", stack_toml, lock.split("=")[0] + "\n", lock)
    assert cuda_facts.preinstall_wants_facts(prof, parse(prof.lock_path).names(), building=False)
    with pytest.raises(ValueError, match="probe.py cuda"):
        checks.preinstall_findings(prof, make_snapshot({}), None)


def test_a_build_is_never_checked_without_the_cuda_facts(gpu_profile: profile_mod.Profile, tmp_path: Path) -> None:
    prof = write_profile(tmp_path, "p", "", "plain-a\n", "plain-a==1.0\n")
    prof = dataclasses.replace(prof, deferred=gpu_profile.deferred)
    with pytest.raises(ValueError, match="probe.py cuda"):
        checks.preinstall_findings(prof, make_snapshot({}), None, to_build=[d.name for d in prof.deferred])


def test_facts_with_the_wrong_shape_are_a_probe_error() -> None:
    with pytest.raises(ProbeError, match="probe.py cuda printed an unexpected document"):
        cuda_facts.facts_from_json({"probe_cuda": 1, "driver": {"found": True, "cuda_int": "12040"}})
    with pytest.raises(ProbeError):
        cuda_facts.facts_from_json({"probe": 1})


# ------------------------------------------------------------------- the real probe, prepared inputs

FAKE_LIBCUDA = r"""
#include <stdio.h>
#include <stddef.h>
int cuDriverGetVersion(int *v) { *v = DRIVER_VERSION; return 0; }
#ifndef ONLY_VERSION
int cuInit(unsigned int flags) { (void)flags; return INIT_RESULT; }
int cuDeviceGetCount(int *n) { *n = DEVICE_COUNT; return 0; }
int cuDeviceGet(int *d, int i) { *d = i; return 0; }
int cuDeviceGetName(char *name, int len, int d) { snprintf(name, len, "Fake GPU %d", d); return 0; }
int cuDeviceTotalMem_v2(size_t *bytes, int d) { (void)d; *bytes = (size_t)80 << 30; return 0; }
int cuDeviceGetAttribute(int *v, int attr, int d) { (void)d; *v = attr == 75 ? 9 : 0; return 0; }
int cuGetErrorName(int code, const char **s) {
    *s = code == 100 ? "CUDA_ERROR_NO_DEVICE" : "CUDA_ERROR_UNKNOWN"; return 0; }
#endif
"""


@pytest.fixture(scope="session")
def fake_libcuda(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Build ``libcuda.so.<release>`` with gcc: ``make(cuda_int, *, init=0, count=2, only_version=False)``."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("no gcc/cc on this machine: cannot build the fake libcuda")
    root = tmp_path_factory.mktemp("fake-libcuda")
    source = root / "fake_libcuda.c"
    source.write_text(FAKE_LIBCUDA)

    def make(cuda_int: int, *, init: int = 0, count: int = 2, only_version: bool = False,
             release: str = "550.54.14") -> Path:
        folder = root / f"{cuda_int}-{init}-{count}-{only_version}"
        out = folder / f"libcuda.so.{release}"
        if not out.exists():
            folder.mkdir()
            argv = [gcc, "-shared", "-fPIC", "-o", str(out), str(source), f"-DDRIVER_VERSION={cuda_int}",
                    f"-DINIT_RESULT={init}", f"-DDEVICE_COUNT={count}"]
            subprocess.run([*argv, *(["-DONLY_VERSION"] if only_version else [])], check=True, capture_output=True)
        return out

    return make


def probe(python: str | Path = sys.executable) -> cuda_facts.Facts:
    return cuda_facts.facts_from_json(run_script(python, "cuda"))


def test_probe_reads_the_fake_driver(fake_libcuda: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    library = fake_libcuda(12040)
    monkeypatch.setenv("STACKSYNC_LIBCUDA", str(library))
    facts = probe()
    assert facts.driver.found and facts.driver.cuda == "12.4"
    assert facts.driver.version == "550.54.14"  # from the versioned file name, as libcuda.so.550.54.14
    assert facts.driver.library == str(library)
    assert [d.describe() for d in facts.driver.devices] == ["Fake GPU 0 (80 GiB, compute 9.0)",
                                                             "Fake GPU 1 (80 GiB, compute 9.0)"]
    assert one(checks.host_findings(facts), "driver", "ok").message.startswith(
        "NVIDIA driver 550.54.14 supports CUDA up to 12.4; 2 GPUs: Fake GPU 0")


def test_probe_with_no_visible_device(fake_libcuda: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACKSYNC_LIBCUDA", str(fake_libcuda(11080, init=100)))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    facts = probe()
    assert (facts.driver.cuda, facts.driver.init_error) == ("11.8", "CUDA_ERROR_NO_DEVICE (100)")
    assert "no GPU is visible" in one(checks.host_findings(facts), "driver", "warning").message


def test_probe_of_a_library_with_only_cudrivergetversion(fake_libcuda: Callable[..., Path],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACKSYNC_LIBCUDA", str(fake_libcuda(12010, only_version=True)))
    facts = probe()
    assert facts.driver.cuda == "12.1" and facts.driver.init_error == "the library has no cuInit"
    assert one(checks.host_findings(facts), "driver", "error").message.endswith("the library has no cuInit")


def test_probe_without_driver_does_not_crash(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STACKSYNC_LIBCUDA", str(tmp_path / "no-such-libcuda.so.1"))
    facts = probe()
    assert not facts.driver.found and facts.driver.error
    assert one(checks.host_findings(facts), "driver", "warning").message.startswith("no NVIDIA driver found")


def test_probe_falls_back_to_nvidia_smi(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import ctypes

    try:
        ctypes.CDLL("libcuda.so.1")
        pytest.skip("a real libcuda loads here, so the probe never falls back to nvidia-smi")
    except OSError:
        pass
    smi = tmp_path / "nvidia-smi"
    smi.write_text(textwrap.dedent("""\
        #!/bin/sh
        if [ "$#" -gt 0 ]; then echo 'NVIDIA A100-SXM4-40GB, 535.104.05, 40960'; exit 0; fi
        echo '| NVIDIA-SMI 535.104.05   Driver Version: 535.104.05   CUDA Version: 12.2     |'
        """))
    smi.chmod(0o755)
    monkeypatch.delenv("STACKSYNC_LIBCUDA", raising=False)
    monkeypatch.setenv("STACKSYNC_NVIDIA_SMI", str(smi))
    drv = probe().driver
    assert (drv.found, drv.source, drv.cuda, drv.version) == (True, "nvidia-smi", "12.2", "535.104.05")
    assert [d.describe() for d in drv.devices] == ["NVIDIA A100-SXM4-40GB (40 GiB)"]


def write_nvcc(folder: Path, release: str) -> Path:
    """A fake nvcc that prints what the real one does."""
    folder.mkdir(parents=True, exist_ok=True)
    nvcc = folder / "nvcc"
    nvcc.write_text(f"#!/bin/sh\necho 'nvcc: NVIDIA (R) Cuda compiler driver'\n"
                    f"echo 'Cuda compilation tools, release {release}, V{release}.99'\n")
    nvcc.chmod(0o755)
    return nvcc


def test_probe_finds_nvcc_on_path_and_derives_cuda_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    toolkit = tmp_path / "cuda-11.8"
    write_nvcc(toolkit / "bin", "11.8")
    (toolkit / "include").mkdir()
    (toolkit / "include" / "cuda.h").write_text("")
    monkeypatch.delenv("CUDA_HOME", raising=False)
    monkeypatch.delenv("CUDA_PATH", raising=False)
    monkeypatch.setenv("PATH", f"{toolkit / 'bin'}{os.pathsep}{os.environ['PATH']}")
    nv = probe().nvcc
    assert (nv.cuda_home, nv.cuda_home_source, nv.version, nv.cuda_h) == (str(toolkit), "nvcc on PATH", "11.8", True)
    findings = checks.build_findings(probe(), torch_cuda="12.1", deferred=["flash-attn"])
    assert "torch refuses to build flash-attn" in one(findings, "nvcc", "error").message


def test_probe_prefers_cuda_home_and_reports_the_other_nvcc(monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path) -> None:
    write_nvcc(tmp_path / "cuda-12.1" / "bin", "12.1")
    write_nvcc(tmp_path / "other" / "bin", "11.8")
    monkeypatch.setenv("CUDA_HOME", str(tmp_path / "cuda-12.1"))
    monkeypatch.setenv("PATH", f"{tmp_path / 'other' / 'bin'}{os.pathsep}{os.environ['PATH']}")
    facts = probe()
    assert (facts.nvcc.version, facts.nvcc.path_version, facts.nvcc.cuda_h) == ("12.1", "11.8", False)
    warnings = [f.message for f in checks.build_findings(facts, torch_cuda="12.1", deferred=["x"])
                if f.level == "warning"]
    assert any("has no include/cuda.h" in m for m in warnings)
    assert any("is 11.8 but CUDA_HOME's is 12.1" in m for m in warnings)


def test_probe_with_cuda_home_lacking_nvcc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CUDA_HOME", str(tmp_path))
    facts = probe()
    assert facts.nvcc.path is None and facts.nvcc.cuda_home == str(tmp_path)
    found = one(checks.build_findings(facts, torch_cuda="12.1", deferred=["flash-attn"]), "nvcc", "warning")
    assert f"CUDA_HOME={tmp_path} (from CUDA_HOME)" in found.message


def test_probe_reads_host_facts() -> None:
    facts = probe()
    assert facts.memory_total_mib and facts.memory_available_mib and facts.cpu_count
    if sys.platform == "linux":
        assert facts.glibc == os.confstr("CS_GNU_LIBC_VERSION").split()[-1]
    if shutil.which("cc"):
        assert facts.compiler is not None and facts.compiler.version


def make_fake_gpu_venv(make_venv: Callable[..., Path]) -> Path:
    """A real venv holding a torch 2.4.0+cu121 stand-in (dist-info, torch/version.py) and the
    nvidia-cudnn-cu12 wheel's layout (nvidia/cudnn/lib/libcudnn.so.9); nvidia-cublas-cu12, which
    torch requires, is missing."""
    venv = make_venv("gpu", pip=False, setuptools=False)
    sp = next((venv / "lib").glob("python3*/site-packages"))
    dists = {"torch": ("2.4.0+cu121", ["nvidia-cudnn-cu12==9.1.0.70", "nvidia-cublas-cu12==12.1.3.1"]),
             "nvidia_cudnn_cu12": ("9.1.0.70", [])}
    for name, (version, requires) in dists.items():
        info = sp / f"{name}-{version}.dist-info"
        info.mkdir()
        lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
        lines += [f"Requires-Dist: {r}" for r in requires]
        (info / "METADATA").write_text("\n".join(lines) + "\n")
        (info / "INSTALLER").write_text("pip\n")
    (sp / "torch").mkdir()
    (sp / "torch" / "version.py").write_text("__version__ = '2.4.0+cu121'\ncuda: Optional[str] = '12.1'\nhip = None\n")
    (sp / "torch" / "__init__.py").write_text(
        "raise ImportError('libcublas.so.12: cannot open shared object file: No such file or directory')\n")
    (sp / "nvidia" / "cudnn" / "lib").mkdir(parents=True)
    (sp / "nvidia" / "cudnn" / "lib" / "libcudnn.so.9").write_bytes(b"")
    return venv


def test_doctor_on_a_fake_gpu_venv(make_venv: Callable[..., Path], fake_libcuda: Callable[..., Path],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    venv = make_fake_gpu_venv(make_venv)
    monkeypatch.setenv("STACKSYNC_LIBCUDA", str(fake_libcuda(11080)))
    report = doctor.diagnose(venv=str(venv))
    facts = report.facts
    assert facts.torch is not None and (facts.torch.version, facts.torch.cuda) == ("2.4.0+cu121", "12.1")
    assert facts.libraries["libcudnn.so.9"][0][1] == "site-packages"
    findings = report.findings
    assert one(findings, "torch", "error").message == ("torch 2.4.0+cu121 needs CUDA 12.1 runtime; driver "
                                                       "supports up to 11.8")
    missing = one(findings, "libraries", "error")
    assert "libcublas.so.12 not found" in missing.message and "nvidia-cublas-cu12==12.1.3.1" in missing.message
    assert "libcudnn.so.9" in one(findings, "libraries", "ok").message
    # Importing torch is off by default; with it, the import error is explained.
    assert facts.torch_import is None
    imported = doctor.diagnose(venv=str(venv), import_torch=True)
    failed = [f for f in imported.findings if f.message.startswith("import torch fails")]
    assert failed and "nvidia-cublas-cu12" in failed[0].message


def test_invoke_doctor_exit_codes_and_json(make_venv: Callable[..., Path], fake_libcuda: Callable[..., Path],
                                           tmp_path: Path) -> None:
    venv = make_fake_gpu_venv(make_venv)
    env = {**os.environ, "STACKSYNC_LIBCUDA": str(fake_libcuda(11080))}
    result = invoke("doctor", "--venv", str(venv), "--json", env=env, timeout=120)
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    assert data["summary"]["errors"] >= 2 and data["target"]["version"]
    assert {"level": "error", "topic": "torch",
            "message": "torch 2.4.0+cu121 needs CUDA 12.1 runtime; driver supports up to 11.8",
            "fix": "update the NVIDIA driver to >= 530.30.02, or pick a cu118 profile"} in data["findings"]
    # No GPU at all, plain target: a warning, exit 0, human output with the fix.
    env["STACKSYNC_LIBCUDA"] = str(tmp_path / "missing-libcuda.so.1")
    plain = make_venv("plain", pip=False, setuptools=False)
    result = invoke("doctor", "--python", str(plain / "bin" / "python"), env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning driver: no NVIDIA driver found" in result.stdout
    assert "fix: install the NVIDIA driver" in result.stdout
    # Bad input is one line on stderr and exit 2.
    result = invoke("doctor", "--python", str(tmp_path / "nope"), env=env, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "no such interpreter" in result.stderr


def test_preinstall_build_checks_only_for_what_this_run_builds(gpu_profile: profile_mod.Profile) -> None:
    """nvcc 13.0 against torch's CUDA 12.1: an error for a run that builds flash-attn, none for a re-sync
    that builds nothing, none when FLASH_ATTENTION_SKIP_CUDA_BUILD=TRUE skips its CUDA part."""
    facts = make_facts(nvcc={"cuda_home": "/usr/local", "cuda_home_source": "nvcc on PATH",
                             "path": "/usr/local/bin/nvcc", "version": "13.0", "cuda_h": True})
    building = checks.preinstall_findings(gpu_profile, make_snapshot({}), facts, to_build=["flash-attn"], environ={})
    assert "torch refuses to build flash-attn across CUDA majors" in one(building, "nvcc", "error").message
    nothing = checks.preinstall_findings(gpu_profile, make_snapshot({}), facts, to_build=[], environ={})
    assert "error" not in levels(nothing), nothing
    skipped = checks.preinstall_findings(gpu_profile, make_snapshot({}), facts, to_build=["flash-attn"],
                                         environ={"FLASH_ATTENTION_SKIP_CUDA_BUILD": "TRUE"})
    assert "error" not in levels(skipped), skipped
    assert any("CUDA part not built (FLASH_ATTENTION_SKIP_CUDA_BUILD=TRUE)" in f.message for f in skipped)


def test_a_pure_python_deferred_sdist_is_no_cuda_build(tmp_path: Path) -> None:
    toml = GPU_TOML + '\n[deferred.pyairports]\nbuild_requires = ["setuptools"]\n'
    prof = write_profile(tmp_path / "locks", "gpu", toml, GPU_IN + "pyairports==0.0.1\n",
                         GPU_LOCK + "pyairports==0.0.1\n")
    facts = make_facts(nvcc={"cuda_home": "/usr/local", "cuda_home_source": "nvcc on PATH",
                             "path": "/usr/local/bin/nvcc", "version": "13.0", "cuda_h": True})
    findings = checks.preinstall_findings(prof, make_snapshot({}), facts, to_build=["pyairports"], environ={})
    assert not [f for f in findings if "pyairports" in f.message and f.topic == "nvcc"], findings
    assert "error" not in levels(findings), findings
