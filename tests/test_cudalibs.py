"""stacksync.cuda.cudalibs: soname -> nvidia package, the driver/CUDA table, and the one-line explanation
of ``libX.so.N: cannot open shared object file`` that sync and doctor print."""

from __future__ import annotations

import pkgfactory
import pytest
from packaging.utils import canonicalize_name

from stacksync.cuda import cudalibs
from stacksync.lock.lockfile import parse_text

CUDNN_ERROR = ("ImportError: libcudnn.so.9: cannot open shared object file: No such file or directory")


@pytest.mark.parametrize(("soname", "package"), [
    ("libcudnn.so.9", "nvidia-cudnn-cu12"),
    ("libcudnn_ops_infer.so.8", "nvidia-cudnn-cu12"),
    ("libcudnn_graph.so.9", "nvidia-cudnn-cu12"),
    ("libcublas.so.12", "nvidia-cublas-cu12"),
    ("libcublasLt.so.12", "nvidia-cublas-cu12"),
    ("libcublas.so.11", "nvidia-cublas-cu11"),
    ("libnccl.so.2", "nvidia-nccl-cu12"),
    ("libcusparse.so.12", "nvidia-cusparse-cu12"),
    ("libcusparseLt.so.0", "nvidia-cusparselt-cu12"),
    ("libcufft.so.11", "nvidia-cufft-cu12"),
    ("libcurand.so.10", "nvidia-curand-cu12"),
    ("libcusolver.so.11", "nvidia-cusolver-cu12"),
    ("libnvJitLink.so.12", "nvidia-nvjitlink-cu12"),
    ("libcudart.so.12", "nvidia-cuda-runtime-cu12"),
    ("libcudart.so.11.0", "nvidia-cuda-runtime-cu11"),
    ("libnvrtc.so.12", "nvidia-cuda-nvrtc-cu12"),
    ("libcupti.so.12", "nvidia-cuda-cupti-cu12"),
    ("libnvToolsExt.so.1", "nvidia-nvtx-cu12"),
])
def test_soname_names_the_nvidia_package(soname: str, package: str) -> None:
    assert cudalibs.package_for_soname(soname) == package


def test_a_locked_candidate_wins_over_the_default_cuda_major() -> None:
    # cuDNN 9 exists for cu11 and cu12: the lock decides which one provides it.
    assert cudalibs.package_for_soname("libcudnn.so.9", ["nvidia-cudnn-cu11", "requests"]) == "nvidia-cudnn-cu11"
    # Without a cudnn candidate, another nvidia-*-cu11 pin sets the major.
    assert cudalibs.package_for_soname("libcudnn.so.9", ["nvidia-cublas-cu11"]) == "nvidia-cudnn-cu11"
    # CUDA 13 wheels without the -cuXX suffix are recognised too.
    assert cudalibs.package_for_soname("libcublas.so.13", ["nvidia-cublas"]) == "nvidia-cublas"


def test_non_cuda_libraries_have_no_provider() -> None:
    assert cudalibs.package_for_soname("libssl.so.3") is None
    assert cudalibs.provider_component("libgomp.so.1") is None
    assert cudalibs.component_of_package("nvidia-ml-py") is None


@pytest.mark.parametrize(("package", "version", "soname"), [
    ("nvidia-cudnn-cu12", "9.1.0.70", "libcudnn.so.9"),
    ("nvidia-cudnn-cu12", "8.9.2.26", "libcudnn.so.8"),
    ("nvidia-cublas-cu12", "12.1.3.1", "libcublas.so.12"),
    ("nvidia-nccl-cu12", "2.20.5", "libnccl.so.2"),
    ("nvidia-cufft-cu12", "11.0.2.54", "libcufft.so.11"),
    ("nvidia-nvtx-cu12", "12.1.105", "libnvToolsExt.so.1"),
    ("nvidia-cufile-cu12", "1.11.1.6", "libcufile.so.0"),
    ("nvidia_cuda_runtime_cu12", "12.1.105", "libcudart.so.12"),
    ("nvidia-ml-py", "12.535.161", None),
    ("requests", "2.32.0", None),
])
def test_expected_soname_of_a_wheel(package: str, version: str, soname: str | None) -> None:
    assert cudalibs.expected_soname(package, version) == soname


def test_soname_matching_accepts_longer_versions_only_after_a_dot() -> None:
    assert cudalibs.soname_matches("libcudart.so.11", "libcudart.so.11.0")
    assert cudalibs.soname_matches("libcudnn.so.9", "libcudnn.so.9")
    assert not cudalibs.soname_matches("libcudnn.so.9", "libcudnn.so.90")
    assert not cudalibs.soname_matches("libcublas.so.12", "libcublasLt.so.12")
    libs = {"libcudart.so.12": ["/a/libcudart.so.12"], "libcudart.so.13": ["/b/libcudart.so.13"]}
    assert cudalibs.find_library("libcudart.so.12", libs) == ["/a/libcudart.so.12"]


def test_driver_table() -> None:
    assert cudalibs.cuda_from_driver_int(12040) == "12.4"
    assert cudalibs.cuda_from_driver_int(11080) == "11.8"
    assert cudalibs.cuda_from_driver_int(13000) == "13.0"
    assert cudalibs.min_driver("12.1") == "530.30.02"
    assert cudalibs.min_driver("11.8") == "520.61.05"
    assert cudalibs.min_driver("12.7") is None  # there is no CUDA 12.7
    assert cudalibs.max_cuda_for_driver("535.104.05") == "12.2"
    assert cudalibs.max_cuda_for_driver("470.82.01") == "11.4"
    assert cudalibs.max_cuda_for_driver("390.1") is None
    # Newer CUDA never needs an older driver (the table is typed in by hand: keep it ordered).
    rows = sorted(cudalibs.MIN_DRIVER.items(), key=lambda kv: tuple(map(int, kv[0].split("."))))
    drivers = [tuple(map(int, d.split("."))) for _, d in rows]
    assert drivers == sorted(drivers)


@pytest.mark.parametrize(("driver", "needed", "verdict"), [
    ("12.4", "12.1", "yes"),
    ("12.1", "12.1", "yes"),
    ("12.2", "12.4", "minor-compat"),
    ("11.8", "12.1", "no"),
    ("12.4", "11.8", "yes"),
    ("11.8", "12", "no"),
    ("12.0", "12", "yes"),
    ("13.0", "12.8", "yes"),
])
def test_driver_runs(driver: str, needed: str, verdict: str) -> None:
    assert cudalibs.driver_runs(driver, needed) == verdict


LOCK = """\
# This file is autogenerated by pip-compile with Python 3.11
nvidia-cudnn-cu12==9.1.0.70
    # via torch
torch==2.4.0
"""


def _pins() -> dict:
    return {p.name: p for p in parse_text(LOCK, "locks/gpu/requirements.txt").pins}


def test_explain_locked_but_not_installed_names_package_version_and_line() -> None:
    text = cudalibs.explain_missing_library(CUDNN_ERROR, _pins(), {canonicalize_name("torch"): "2.4.0"})
    assert text is not None
    assert "libcudnn.so.9" in text and "nvidia-cudnn-cu12" in text
    assert "locked at 9.1.0.70 (locks/gpu/requirements.txt:2)" in text
    assert "not installed" in text
    assert "python -m pip install nvidia-cudnn-cu12==9.1.0.70" in text


def test_explain_installed_at_another_version() -> None:
    found = cudalibs.missing_library(CUDNN_ERROR, _pins(), {"nvidia-cudnn-cu12": "8.9.2.26"})
    assert found is not None
    assert (found.package, found.locked, found.installed) == ("nvidia-cudnn-cu12", "9.1.0.70", "8.9.2.26")
    assert "the lock pins 9.1.0.70" in found.message and "8.9.2.26 is installed" in found.message
    assert "which ships libcudnn.so.8" in found.message
    assert found.fix.startswith("python -m pip install nvidia-cudnn-cu12==9.1.0.70")


def test_explain_installed_as_locked_means_damaged_files() -> None:
    found = cudalibs.missing_library(CUDNN_ERROR, {"nvidia-cudnn-cu12": "9.1.0.70"},
                                     {"nvidia-cudnn-cu12": "9.1.0.70"})
    assert found is not None
    assert "installed as locked" in found.message
    assert "--force-reinstall --no-deps nvidia-cudnn-cu12==9.1.0.70" in found.fix
    assert "LD_LIBRARY_PATH" in found.fix


def test_explain_a_library_of_another_major_than_installed() -> None:
    found = cudalibs.missing_library("OSError: libcudnn.so.8: cannot open shared object file", {},
                                     {"nvidia-cudnn-cu12": "9.1.0.70"})
    assert found is not None
    assert "ships libcudnn.so.9" in found.message
    assert "another major version" in found.message


def test_explain_neither_locked_nor_installed() -> None:
    text = cudalibs.explain_missing_library("libnccl.so.2: cannot open shared object file: No such file", {}, {})
    assert text is not None
    assert "nvidia-nccl-cu12, which is neither locked nor installed" in text
    assert "add nvidia-nccl-cu12 to requirements.in" in text


def test_explain_the_driver_library() -> None:
    text = cudalibs.explain_missing_library("OSError: libcuda.so.1: cannot open shared object file", {}, {})
    assert text is not None and "NVIDIA driver" in text and "not a pip package" in text


def test_explain_returns_none_for_other_errors() -> None:
    assert cudalibs.explain_missing_library("ImportError: libssl.so.3: cannot open shared object file", {},
                                            {}) is None
    assert cudalibs.explain_missing_library("ModuleNotFoundError: No module named 'torch'", {}, {}) is None
    assert cudalibs.explain_missing_library("", {}, {}) is None


def test_explain_the_stand_in_stack_error() -> None:
    # The test stack's torch-like fails with exactly this text when nvidia-cudnn-like is missing.
    text = cudalibs.explain_missing_library(
        f"ImportError: {pkgfactory.CUDNN_IMPORT_ERROR}",
        {"nvidia-cudnn-like": pkgfactory.CUDNN_LIKE_VERSION, "torch-like": "2.4.0"}, {"torch-like": "2.4.0"})
    assert text is not None
    assert f"nvidia-cudnn-like, locked at {pkgfactory.CUDNN_LIKE_VERSION}" in text
