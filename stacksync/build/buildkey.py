"""The build key of a deferred package: everything its compiled binary depends on, and nothing else.

A wheel built from flash-attn's sdist works only with the torch it was compiled against (same exact
version, same CUDA, same C++ ABI), on the Python and platform it was built on, with the CUDA
architectures it was compiled for. Two builds with equal keys are interchangeable; any other key
needs its own build. pip's wheel cache keys on the sdist alone and reuses a stale build after a
torch change (measured: its cache key ignores torch); this key does not.

The parts (:class:`BuildKey`):

* ``package``, ``version`` and ``source_sha256``: the deferred pin and the sha256 hashes the lock
  gives for it (the sdist's; a prebuilt wheel's too when compile pinned one).
* ``base``: the exact version strings, local labels kept (``2.4.0+cu121``), of the base packages it
  is built against (``rebuild_on`` in stack.toml, default: its ``requires`` that are base packages).
* ``cuda`` and ``cxx11_abi``: read from the files of the base package that ships them (torch's
  layout: ``torch/version.py`` holds ``cuda = '12.1'``; the ABI is ``-D_GLIBCXX_USE_CXX11_ABI=0|1``
  in ``torch/share/cmake/Torch/TorchConfig.cmake`` where torch writes it there, else whether
  ``torch/lib/libc10.so`` has ``std::__cxx11`` symbols (torch 2.13 / 2.14 wheels no longer write the
  cmake flag; their libc10.so has them: ABI 1)), never by importing it. ``None`` when the base has no
  such file (a CPU-only torch has no cuda; a stand-in torch has neither): the key then says "absent"
  and still differs from one that has.
* ``python`` (``cp311``; ``cp313t`` for a free-threaded build), ``platform`` (``linux_x86_64``) and
  ``glibc``: what the wheel's binary links against.
* ``build_env``: the profile's ``build_env`` plus ``TORCH_CUDA_ARCH_LIST`` from the environment,
  minus the variables that only change how fast it builds (``MAX_JOBS``, ``NVCC_THREADS``, ...).

:meth:`BuildKey.digest` is the sha256 of the key's canonical JSON; its first 12 hex digits
(:attr:`BuildKey.short`) name the wheel in a wheelhouse and, as the wheel's build tag
(``0ss<short>``), on a team index. Pure: facts are read by the callers (:mod:`stacksync.sync.deferred`).
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName

from stacksync.core import defaults

__all__ = ["BuildKey", "CUDA_SKIP_SWITCHES", "KEY_FORMAT", "cuda_build_skipped", "PARALLELISM_VARS", "KEY_ENV_VARS",
           "build_tag", "differences",
           "key_env", "files_facts", "wheel_facts", "python_tag", "platform_tag"]

KEY_FORMAT = 1
#: build_env variables that change how fast a build runs, not what it produces
PARALLELISM_VARS = frozenset({"MAX_JOBS", "NVCC_THREADS", "CMAKE_BUILD_PARALLEL_LEVEL", "MAKEFLAGS"})
#: a package's own switch that builds it without its CUDA part (a GPU-less host): package -> variable
CUDA_SKIP_SWITCHES = {"flash-attn": "FLASH_ATTENTION_SKIP_CUDA_BUILD"}
#: variables read from the environment when build_env does not set them (they change the binary: a
#: wheel built without its CUDA kernels must never be taken for one built with them)
KEY_ENV_VARS = ("TORCH_CUDA_ARCH_LIST", *CUDA_SKIP_SWITCHES.values())
BUILD_TAG_PREFIX = defaults.BUILD_TAG_PREFIX

_CUDA = re.compile(r"^cuda\s*(?::\s*\S+)?\s*=\s*['\"]([^'\"]+)['\"]", re.M)
_ABI = re.compile(r"_GLIBCXX_USE_CXX11_ABI=([01])")
_CXX11_SYMBOL = b"St7__cxx11"  # mangled std::__cxx11:: (basic_string, list...): only with the new ABI


@dataclass(frozen=True)
class BuildKey:
    package: str
    version: str
    source_sha256: tuple[str, ...]
    base: tuple[tuple[str, str], ...]
    cuda: str | None
    cxx11_abi: bool | None
    cuda_from: str | None
    python: str
    platform: str
    glibc: str | None
    build_env: tuple[tuple[str, str], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": KEY_FORMAT, "package": self.package, "version": self.version,
            "source_sha256": list(self.source_sha256), "base": dict(self.base),
            "cuda": self.cuda, "cxx11_abi": self.cxx11_abi, "cuda_from": self.cuda_from,
            "python": self.python, "platform": self.platform, "glibc": self.glibc,
            "build_env": dict(self.build_env),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BuildKey:
        """The key a sidecar or a build record holds (``KeyError`` / ``TypeError`` for another shape)."""
        return cls(
            package=str(data["package"]), version=str(data["version"]),
            source_sha256=tuple(str(h) for h in data["source_sha256"]),
            base=tuple(sorted((str(k), str(v)) for k, v in dict(data["base"]).items())),
            cuda=data.get("cuda"), cxx11_abi=data.get("cxx11_abi"), cuda_from=data.get("cuda_from"),
            python=str(data["python"]), platform=str(data["platform"]), glibc=data.get("glibc"),
            build_env=tuple(sorted((str(k), str(v)) for k, v in dict(data["build_env"]).items())),
        )

    @property
    def digest(self) -> str:
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    @property
    def short(self) -> str:
        return self.digest[:12]

    def describe(self) -> str:
        """One line: ``flash-attn 2.8.0.post2 for torch 2.4.0+cu121, cuda 12.1, cxx11abi FALSE, cp311 linux_x86_64
        (glibc 2.36)[, TORCH_CUDA_ARCH_LIST=8.0]``."""
        base = ", ".join(f"{n} {v}" for n, v in self.base) or "no base"
        abi = "absent" if self.cxx11_abi is None else ("TRUE" if self.cxx11_abi else "FALSE")
        env = "".join(f", {k}={v}" for k, v in self.build_env)
        return (f"{self.package} {self.version} for {base}, cuda {self.cuda or 'absent'}, cxx11abi {abi}, "
                f"{self.python} {self.platform}" + (f" (glibc {self.glibc})" if self.glibc else "") + env)


def build_tag(short: str) -> str:
    """The wheel build tag that carries a key on a team index: ``0ss<short>``."""
    return f"{BUILD_TAG_PREFIX}{short}"


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The parts of two key documents that differ, as ``part old -> new`` (base packages one by one)."""
    out: list[str] = []
    for part in sorted(set(old) | set(new)):
        a, b = old.get(part), new.get(part)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{part}.{k} {a.get(k, 'unset')} -> {b.get(k, 'unset')}" for k in sorted(set(a) | set(b))
                    if a.get(k) != b.get(k)]
        elif part == "source_sha256":
            out.append("source sha256 changed")
        else:
            out.append(f"{part} {a} -> {b}")
    return out


def key_env(build_env: Mapping[str, str], environ: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The key's build_env part: the profile's build_env without the parallelism variables, plus
    :data:`KEY_ENV_VARS` from ``environ`` where build_env does not set them."""
    env = {k: v for k, v in build_env.items() if k not in PARALLELISM_VARS}
    for var in KEY_ENV_VARS:
        if var not in env and environ.get(var):
            env[var] = environ[var]
    return tuple(sorted(env.items()))


def python_tag(python_xy: str, soabi: str | None) -> str:
    """``cp311`` for CPython 3.11 (``cp313t`` when the SOABI says free-threaded)."""
    tag = "cp" + python_xy.replace(".", "")
    if soabi and soabi.startswith("cpython-"):
        tag = "cp" + soabi.split("-")[1]
    return tag


def platform_tag(sysconfig_platform: str | None, machine: str) -> str:
    """``linux_x86_64`` from sysconfig's ``linux-x86_64``."""
    text = sysconfig_platform or f"unknown-{machine}"
    return text.replace("-", "_").replace(".", "_")


def _module_dir(name: str) -> str:
    return name.replace("-", "_")


def _parse_facts(version_py: str | None, cmake: str | None, lib: bytes | None) -> tuple[str | None, bool | None]:
    cuda_match = _CUDA.search(version_py or "")
    abi_match = _ABI.search(cmake or "")
    abi = (abi_match.group(1) == "1") if abi_match else (None if lib is None else _CXX11_SYMBOL in lib)
    return (cuda_match.group(1) if cuda_match else None, abi)


def _rel_paths(name: str) -> tuple[str, str, str]:
    module = _module_dir(name)
    return f"{module}/version.py", f"{module}/share/cmake/Torch/TorchConfig.cmake", f"{module}/lib/libc10.so"


def files_facts(site_packages: Iterable[str | Path], name: str) -> tuple[str | None, bool | None] | None:
    """(cuda, cxx11_abi) of installed base package ``name`` read from its files in ``site_packages``;
    ``None`` when its module folder is not there."""
    version_rel, cmake_rel, lib_rel = _rel_paths(name)
    for sp in site_packages:
        root = Path(sp)
        if not (root / _module_dir(name)).is_dir():
            continue

        def read(rel: str, root: Path = root) -> bytes | None:
            try:
                return (root / rel).read_bytes()
            except OSError:
                return None

        cmake = _text(read(cmake_rel))
        lib = read(lib_rel) if cmake is None or not _ABI.search(cmake) else None  # 1.5 MB: only when needed
        return _parse_facts(_text(read(version_rel)), cmake, lib)
    return None


def _text(data: bytes | None) -> str | None:
    return data.decode("utf-8", errors="replace") if data is not None else None


def wheel_facts(wheel: Path, name: str) -> tuple[str | None, bool | None] | None:
    """(cuda, cxx11_abi) read from the same files inside a (not yet installed) wheel of ``name``;
    ``None`` when the wheel cannot be read."""
    version_rel, cmake_rel, lib_rel = _rel_paths(name)
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = set(zf.namelist())

            def read(rel: str) -> bytes | None:
                return zf.read(rel) if rel in names else None

            cmake = _text(read(cmake_rel))
            lib = read(lib_rel) if cmake is None or not _ABI.search(cmake) else None
            return _parse_facts(_text(read(version_rel)), cmake, lib)
    except (OSError, zipfile.BadZipFile):
        return None


def cuda_source(rebuild_on: Sequence[NormalizedName]) -> NormalizedName | None:
    """Which base package's files give the key's cuda / ABI facts: torch when it is one, else the
    first base package (a torch stand-in)."""
    for name in rebuild_on:
        if name == "torch":
            return name
    return rebuild_on[0] if rebuild_on else None


def cuda_build_skipped(name: str, build_env: Mapping[str, str], environ: Mapping[str, str]) -> str | None:
    """``VAR=value`` when package ``name``'s own switch skips its CUDA part (build_env first, then the
    environment), else ``None``."""
    var = CUDA_SKIP_SWITCHES.get(name)
    value = (build_env.get(var) or environ.get(var) or "") if var else ""
    return f"{var}={value}" if var and value.strip().upper() in ("TRUE", "1", "YES", "ON") else None
