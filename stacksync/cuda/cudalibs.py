"""CUDA knowledge, no I/O: which nvidia-* wheel ships which shared library, and which driver runs
which CUDA runtime.

Used by ``doctor`` (is every library torch needs present?) and by ``sync`` (turn
``libcudnn.so.9: cannot open shared object file`` into the package, its locked version and the fix:
:func:`explain_missing_library`).

Package names: CUDA 11/12 runtime wheels are ``nvidia-<component>-cu<major>`` (``nvidia-cudnn-cu12``);
some CUDA 13 wheels drop the suffix (``nvidia-cublas``). A library's soname major follows the package's
own version major (``nvidia-cudnn-cu12 9.1.0.70`` ships ``libcudnn.so.9``), except where listed in
:data:`_FIXED_SONAME_MAJOR`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from stacksync.lock.lockfile import Pin

__all__ = [
    "MIN_DRIVER", "MINOR_COMPAT_DRIVER", "MissingLibrary", "component_of_package", "cuda_from_driver_int",
    "driver_runs", "expected_soname", "explain_missing_library", "find_library", "max_cuda_for_driver",
    "min_driver", "missing_library", "package_for_soname", "provider_component", "soname_matches",
]

# Library stem (the soname without ``.so.N``) -> the nvidia component whose wheel ships it.
_STEM_COMPONENT: dict[str, str] = {
    "libcudart": "cuda-runtime",
    "libcublas": "cublas",
    "libcublasLt": "cublas",
    "libcudnn": "cudnn",
    "libnccl": "nccl",
    "libcusparse": "cusparse",
    "libcusparseLt": "cusparselt",
    "libcufft": "cufft",
    "libcufftw": "cufft",
    "libcurand": "curand",
    "libcusolver": "cusolver",
    "libcusolverMg": "cusolver",
    "libnvJitLink": "nvjitlink",
    "libnvrtc": "cuda-nvrtc",
    "libnvrtc-builtins": "cuda-nvrtc",
    "libcupti": "cuda-cupti",
    "libnvToolsExt": "nvtx",
    "libcufile": "cufile",
    "libnvshmem_host": "nvshmem",
}
# Component -> the main library its wheel ships (what doctor looks for).
_COMPONENT_STEM: dict[str, str] = {
    "cuda-runtime": "libcudart", "cublas": "libcublas", "cudnn": "libcudnn", "nccl": "libnccl",
    "cusparse": "libcusparse", "cusparselt": "libcusparseLt", "cufft": "libcufft", "curand": "libcurand",
    "cusolver": "libcusolver", "nvjitlink": "libnvJitLink", "cuda-nvrtc": "libnvrtc",
    "cuda-cupti": "libcupti",
    "nvtx": "libnvToolsExt", "cufile": "libcufile", "nvshmem": "libnvshmem_host",
}
# Libraries whose soname major is not the package's version major.
_FIXED_SONAME_MAJOR: dict[str, str] = {"nvtx": "1", "cufile": "0"}
# Component libraries whose soname major is the CUDA major (so the soname names the -cuXX package).
_CUDA_VERSIONED = frozenset({"cuda-runtime", "cublas", "cusparse", "nvjitlink", "cuda-nvrtc", "cuda-cupti"})

_PACKAGE = re.compile(r"^nvidia-(?P<component>[a-z0-9-]+?)(?:-cu(?P<cuda>\d+))?$")
_SONAME = re.compile(r"^(?P<stem>lib[A-Za-z0-9_+-]+?)\.so(?:\.(?P<major>\d+)(?:\.[\d.]+)?)?$")
_MISSING = re.compile(r"(?P<soname>lib[A-Za-z0-9_+.-]+?\.so(?:\.\d+)*)\s*:\s*cannot open shared object file")

# Minimum Linux x86_64 driver of each CUDA toolkit's GA release (NVIDIA CUDA Toolkit release notes,
# "CUDA Toolkit and Corresponding Driver Versions"). A driver runs every CUDA up to the newest row it meets.
MIN_DRIVER: dict[str, str] = {
    "13.0": "580.65.06",
    "12.9": "575.51.03",
    "12.8": "570.26",
    "12.6": "560.28.03",
    "12.5": "555.42.02",
    "12.4": "550.54.14",
    "12.3": "545.23.06",
    "12.2": "535.54.03",
    "12.1": "530.30.02",
    "12.0": "525.60.13",
    "11.8": "520.61.05",
    "11.7": "515.43.04",
    "11.6": "510.39.01",
    "11.5": "495.29.05",
    "11.4": "470.42.01",
    "11.3": "465.19.01",
    "11.2": "460.27.03",
    "11.1": "455.23",
    "11.0": "450.51.05",
    "10.2": "440.33",
    "10.1": "418.39",
    "10.0": "410.48",
}
# CUDA minor version compatibility: a driver at least this runs any runtime of the same major, except
# features that need a newer driver (PTX JIT of code built by a newer toolkit among them).
MINOR_COMPAT_DRIVER: dict[str, str] = {"11": "450.80.02", "12": "525.60.13", "13": "580.65.06"}


def _xy(version: str) -> tuple[int, int]:
    parts = (version.split(".") + ["0"])[:2]
    return int(parts[0]), int(parts[1])


def _driver_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version))


def cuda_from_driver_int(value: int) -> str:
    """``cuDriverGetVersion``'s integer as ``X.Y``: ``12040`` -> ``"12.4"``."""
    return f"{value // 1000}.{(value % 1000) // 10}"


def min_driver(cuda: str) -> str | None:
    """The oldest Linux driver that fully supports CUDA ``X.Y`` (``None`` when the table lacks it)."""
    return MIN_DRIVER.get(".".join(str(p) for p in _xy(cuda)))


def max_cuda_for_driver(driver_version: str) -> str | None:
    """The newest CUDA ``X.Y`` in the table that ``driver_version`` (``"535.104.05"``) fully supports."""
    have = _driver_key(driver_version)
    fits = [cuda for cuda, need in MIN_DRIVER.items() if _driver_key(need) <= have]
    return max(fits, key=_xy) if fits else None


def driver_runs(driver_cuda: str, needed_cuda: str) -> Literal["yes", "minor-compat", "no"]:
    """Whether a driver supporting CUDA up to ``driver_cuda`` runs a ``needed_cuda`` runtime.

    ``needed_cuda`` may be a bare major (``"12"``: any 12.x). Same major but an older minor runs
    through minor version compatibility (``"minor-compat"``); an older major does not run at all."""
    have = _xy(driver_cuda)
    if "." not in needed_cuda:
        return "yes" if have[0] >= int(needed_cuda) else "no"
    need = _xy(needed_cuda)
    if have >= need:
        return "yes"
    if have[0] == need[0] and have[0] >= 11:
        return "minor-compat"
    return "no"


def component_of_package(name: str) -> tuple[str, str | None] | None:
    """``nvidia-cudnn-cu12`` -> ``("cudnn", "12")``; ``nvidia-cublas`` -> ``("cublas", None)``;
    ``None`` for a package that ships no library stacksync knows."""
    match = _PACKAGE.match(canonicalize_name(name))
    if not match or match.group("component") not in _COMPONENT_STEM:
        return None
    return match.group("component"), match.group("cuda")


def expected_soname(package: str, version: str) -> str | None:
    """The main library an nvidia wheel ships, as ``stem.so.MAJOR``:
    ``("nvidia-cudnn-cu12", "9.1.0.70")`` -> ``"libcudnn.so.9"``."""
    found = component_of_package(package)
    if found is None:
        return None
    component = found[0]
    major = _FIXED_SONAME_MAJOR.get(component)
    if major is None:
        try:
            major = str(Version(version).major)
        except InvalidVersion:
            return None
    return f"{_COMPONENT_STEM[component]}.so.{major}"


def soname_matches(wanted: str, found: str) -> bool:
    """``libcudart.so.11`` is satisfied by ``libcudart.so.11.0``; ``libcudnn.so.9`` by itself."""
    return found == wanted or found.startswith(wanted + ".")


def find_library(wanted: str, libraries: Mapping[str, Iterable[str]]) -> list[str]:
    """Paths of every found soname that satisfies ``wanted`` (``libraries``: soname -> paths)."""
    return [path for soname, paths in sorted(libraries.items()) if soname_matches(wanted, soname)
            for path in paths]


def _split_soname(soname: str) -> tuple[str, str | None] | None:
    match = _SONAME.match(soname)
    return (match.group("stem"), match.group("major")) if match else None


def provider_component(soname: str) -> str | None:
    """The nvidia component whose wheel ships ``soname`` (``libcudnn_ops.so.9`` -> ``cudnn``)."""
    split = _split_soname(soname)
    if split is None:
        return None
    stem = split[0]
    if stem in _STEM_COMPONENT:
        return _STEM_COMPONENT[stem]
    # cuDNN and friends split into sub-libraries: libcudnn_ops_infer.so.8, libcudnn_graph.so.9.
    for known in sorted(_STEM_COMPONENT, key=len, reverse=True):
        if stem.startswith(known + "_"):
            return _STEM_COMPONENT[known]
    return None


def package_for_soname(soname: str, candidates: Iterable[str] = (), *,
                       cuda_major: str | None = None) -> str | None:
    """The package that provides ``soname``. A candidate (locked or installed name) wins; else
    ``nvidia-<component>-cu<major>`` with the major read from the soname where it is the CUDA major,
    else ``cuda_major``, else 12. ``None`` when ``soname`` is not a CUDA library."""
    names = [canonicalize_name(c) for c in candidates]
    component = provider_component(soname)
    split = _split_soname(soname)
    if component is not None:
        for name in names:
            found = component_of_package(name)
            if found is not None and found[0] == component:
                return name
    if split is not None:
        # Stand-ins and vendor wheels: libfoo_bar.so.N from nvidia-foo-bar.
        generic = canonicalize_name("nvidia-" + split[0][3:])
        if generic in names:
            return generic
    if component is None:
        return None
    major = split[1] if (split is not None and split[1] and component in _CUDA_VERSIONED) else None
    major = major or cuda_major or _suffix_major(names) or "12"
    return f"nvidia-{component}-cu{major}"


def _suffix_major(names: Iterable[str]) -> str | None:
    for name in names:
        found = component_of_package(name)
        if found is not None and found[1]:
            return found[1]
    return None


@dataclass(frozen=True)
class MissingLibrary:
    """A missing shared library explained: the package that ships it, what the lock pins, what is
    installed, and the fix (one line each)."""

    soname: str
    package: str | None
    locked: str | None
    locked_at: str | None
    installed: str | None
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.message} (fix: {self.fix})"


def missing_library(error_text: str, lock_pins: Mapping[NormalizedName, Pin | str],
                    installed: Mapping[NormalizedName, str]) -> MissingLibrary | None:
    """Structured form of :func:`explain_missing_library`."""
    match = _MISSING.search(error_text)
    if match is None:
        return None
    soname = match.group("soname")
    if soname.startswith("libcuda.so"):
        return MissingLibrary(
            soname, None, None, None, None,
            f"{soname} is the NVIDIA driver's library, not a pip package: no NVIDIA driver is visible here",
            "install the NVIDIA driver (containers: run with --gpus all / the NVIDIA container toolkit), "
            "or use a CPU build of torch")
    pins = {canonicalize_name(k): v for k, v in lock_pins.items()}
    have = {canonicalize_name(k): v for k, v in installed.items()}
    package = package_for_soname(soname, [*pins, *have])
    if package is None:
        return None
    pin = pins.get(canonicalize_name(package))
    locked = pin if isinstance(pin, str) or pin is None else pin.key()
    where = pin.where if isinstance(pin, Pin) else None
    got = have.get(canonicalize_name(package))
    at = f" ({where})" if where else ""
    if locked and got is None:
        message = (f"{soname} is missing: it comes from {package}, locked at {locked}{at}, which is not "
                   "installed")
        fix = (f"install the lock's base phase with its dependencies (a --no-deps install skips {package}): "
               f"python -m pip install {package}=={locked}")
    elif locked and got != locked:
        message = (f"{soname} is missing: it comes from {package}; the lock pins {locked}{at} but "
                   f"{got} is installed")
        if got is not None:
            shipped = expected_soname(package, got)
            if shipped and not soname_matches(soname, shipped):
                message += f", which ships {shipped}"
        fix = f"python -m pip install {package}=={locked} (or run the sync again)"
    elif got is not None:
        shipped = expected_soname(package, got)
        same_library = shipped is not None and shipped.split(".so")[0] == soname.split(".so")[0]
        if shipped and same_library and not soname_matches(soname, shipped):
            message = (f"{soname} is missing: {package} {got} is installed but ships {shipped}; something "
                       f"in the environment was built for another major version of it")
            fix = (f"pin the {package} version that ships {soname} in requirements.in, or install the "
                   f"build of the failing package made for {package} {got}")
        else:
            message = (f"{soname} is missing although {package} {got} is installed"
                       f"{' as locked' if locked else ''}: its files are damaged or hidden")
            fix = (f"python -m pip install --force-reinstall --no-deps {package}=={got}, and check that "
                   f"LD_LIBRARY_PATH does not point at another CUDA")
    else:
        message = f"{soname} is missing: it comes from {package}, which is neither locked nor installed"
        fix = (f"add {package} to requirements.in and compile the lock again (torch's CUDA wheels depend "
               f"on it), or install the CUDA library system-wide")
    return MissingLibrary(soname, package, locked, where, got, message, fix)


def explain_missing_library(error_text: str, lock_pins: Mapping[NormalizedName, Pin | str],
                            installed: Mapping[NormalizedName, str]) -> str | None:
    """Explain ``libX.so.N: cannot open shared object file`` in ``error_text`` as one line: the
    package that ships the library, its locked version (``lock_pins``: name -> :class:`Pin` or
    version) and installed version (``installed``: name -> version), and the fix. ``None`` when the
    text names no missing CUDA library."""
    found = missing_library(error_text, lock_pins, installed)
    return str(found) if found is not None else None
