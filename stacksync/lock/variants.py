"""Variants of one profile: ``[variants.NAME]`` tables in ``stack.toml`` that share ``requirements.in`` and
override what differs between machines (the index of the base packages, ``cuda``, ``platforms``, the
packages the machine provides, deferred build settings). Each variant has its own hashed lock in
``locks/<profile>/<variant>/`` (requirements.txt, deferred.txt); sync picks one from the target's driver
(stacksync.cuda.variant)::

    provided = []                    # packages the machine provides (kept, never installed or removed)

    [variants.cpu]
    base_index_url = "https://download.pytorch.org/whl/cpu"     # searched first for every package
    [variants.cu121]
    cuda = "12.1"                    # the driver must support CUDA >= 12.1
    base_index_url = "https://download.pytorch.org/whl/cu121"
    [variants.cu124]
    cuda = "12.4"
    base_index_url = "https://download.pytorch.org/whl/cu124"
    platforms = ["linux"]            # sys_platform (or sys_platform_machine, e.g. linux_aarch64) values
    [variants.cu124.deferred.flash-attn]
    wheels = "https://host/flash_attn-{version}+cu124torch{torch_mm}-cp{py}-cp{py}-linux_x86_64.whl"
    build_env = { TORCH_CUDA_ARCH_LIST = "9.0" }
    [variants.ngc]
    cuda = "12.4"
    provided = ["torch"]             # from the image: lock against its versions (--provided-from)

Every key is optional; a key a variant leaves out is the profile's. ``base_index_url`` is put first among
the extra indexes: the resolver takes the highest version, and a local label (``2.4.0+cu121``) sorts above
the plain release, so a pin like ``torch==2.4.0`` locks the variant's build. ``index_url`` /
``extra_index_urls`` replace the profile's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from packaging.utils import NormalizedName, canonicalize_name

from stacksync.core.errors import ProfileError, close_matches

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["BACKENDS", "Variant", "parse_variants", "parse_provided", "overridden", "VARIANT_KEYS",
           "DEFERRED_OVERRIDES", "platform_admits", "platform_name", "split_platform", "normal_machine"]

VARIANT_KEYS = {"description", "cuda", "platforms", "index_url", "extra_index_urls", "base_index_url", "provided",
                "deferred", "auto", "python", "backend"}
#: the resolver / installer backends a profile or variant may name
BACKENDS = ("pip-tools", "uv", "auto")
#: the deferred settings a variant may override (the rest stay the profile's)
DEFERRED_OVERRIDES = {"wheels", "prebuilt", "wheel_vars", "build_env"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_CUDA = re.compile(r"^\d+\.\d+$")
_PYTHON = re.compile(r"^3\.\d+$")


@dataclass(frozen=True)
class Variant:
    """One ``[variants.NAME]`` table; ``None`` means "the profile's"."""

    name: str
    description: str = ""
    cuda: str | None = None
    #: the Python X.Y of this variant's machines (an NGC image has its own)
    python: str | None = None
    #: ``uv`` for a variant of another platform (pip-tools resolves for the machine it runs on)
    backend: str | None = None
    platforms: tuple[str, ...] | None = None
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] | None = None
    base_index_url: str | None = None
    provided: tuple[NormalizedName, ...] | None = None
    #: deferred package -> the settings it overrides (keys of :data:`DEFERRED_OVERRIDES`)
    deferred: Mapping[NormalizedName, Mapping[str, Any]] = field(default_factory=dict)
    #: ``auto = false``: never picked by the machine, only by ``--variant`` (an NGC container's variant
    #: needs the same driver as a plain CUDA one; only the user knows they are inside the container)
    auto: bool = True

    def needs(self) -> str:
        """What a machine needs for this variant, in words (for a refusal)."""
        if not self.auto:
            return f"--variant {self.name} (auto = false)"
        parts = [f"a driver with CUDA >= {self.cuda}" if self.cuda else "no GPU driver"]
        if self.platforms:
            parts.append(f"platform {' or '.join(self.platforms)}")
        return ", ".join(parts)


_D = TypeVar("_D", bound="DataclassInstance")


#: ``platform.machine()`` spellings of one architecture (macOS says arm64, Linux aarch64, Windows AMD64)
_MACHINE_ALIASES = {"arm64": "aarch64", "amd64": "x86_64"}


def normal_machine(machine: str) -> str:
    """``aarch64`` for arm64 / aarch64, ``x86_64`` for AMD64 / x86_64; others lower-cased."""
    low = machine.lower()
    return _MACHINE_ALIASES.get(low, low)


def split_platform(entry: str) -> tuple[str, str | None]:
    """A ``platforms`` entry as (sys_platform, machine or ``None``): ``linux`` -> (linux, None),
    ``linux_aarch64`` -> (linux, aarch64), ``darwin_arm64`` -> (darwin, aarch64)."""
    plat, _, machine = entry.partition("_")
    return plat, normal_machine(machine) if machine else None


def platform_admits(platforms: Sequence[str], sys_platform: str, machine: str) -> bool:
    """Whether ``platforms`` (a profile's or a variant's; empty: any) admit a target whose
    ``sys.platform`` is ``sys_platform`` and ``platform.machine()`` is ``machine``."""
    if not platforms:
        return True
    for entry in platforms:
        plat, arch = split_platform(entry)
        if plat == sys_platform and (arch is None or arch == normal_machine(machine)):
            return True
    return False


def platform_name(sys_platform: str, machine: str) -> str:
    """``linux_x86_64``, ``darwin_arm64``: a target's platform in the ``platforms`` spelling."""
    return f"{sys_platform}_{machine}" if machine else sys_platform


def overridden(d: _D, overrides: Mapping[str, Any]) -> _D:
    """A deferred package as a variant sets it: tables (build_env, wheel_vars) merged, the variant's keys
    winning; other keys replaced."""
    changes: dict[str, Any] = {k: {**getattr(d, k), **o} if isinstance(o, dict) else o for k, o in overrides.items()}
    return replace(d, **changes)


def parse_provided(path: Path, key: str, value: Any) -> tuple[NormalizedName, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ProfileError(path, key, "must be a list of package names", f'write {key.rsplit(".", 1)[-1]} = ["torch"]')
    return tuple(canonicalize_name(v) for v in value)


def parse_variants(path: Path, raw: Any, deferred_names: set[NormalizedName]) -> dict[str, Variant]:
    """The ``[variants]`` table of ``path``, validated: one :class:`ProfileError` naming the key and the fix."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not raw:
        raise ProfileError(path, "variants", "must hold one table per variant",
                           'write [variants.cpu] and [variants.cu121] with cuda = "12.1"')
    return {name: _variant(path, name, table, deferred_names) for name, table in raw.items()}


def _variant(path: Path, name: str, table: Any, deferred_names: set[NormalizedName]) -> Variant:
    key = f"variants.{name}"
    if not _NAME.match(name):
        raise ProfileError(path, key, f"{name!r} is not a usable variant name (it names a lock folder)",
                           "use letters, digits, '.', '_' and '-', e.g. cu121")
    if not isinstance(table, dict):
        raise ProfileError(path, key, "must be a table", f'write [{key}] with cuda = "12.1"')
    _no_unknown(path, key, table, VARIANT_KEYS)
    cuda = _opt_str(path, f"{key}.cuda", table.get("cuda"))
    if cuda is not None and not _CUDA.match(cuda):
        raise ProfileError(path, f"{key}.cuda", f"{cuda!r} is not a CUDA X.Y version", 'write e.g. cuda = "12.1"')
    for url_key in ("index_url", "base_index_url"):
        url = _opt_str(path, f"{key}.{url_key}", table.get(url_key))
        if url is not None and "@" in url.split("//", 1)[-1].split("/", 1)[0] and "${" not in url:
            raise ProfileError(path, f"{key}.{url_key}", "the URL holds a literal credential",
                               "write it as ${ENV_VAR} references, e.g. https://${USER}:${TOKEN}@host/simple")
    deferred: dict[NormalizedName, dict[str, Any]] = {}
    raw_deferred = table.get("deferred", {})
    if not isinstance(raw_deferred, dict):
        raise ProfileError(path, f"{key}.deferred", "must be a table", f"write [{key}.deferred.PACKAGE]")
    for dname, overrides in raw_deferred.items():
        dkey = f"{key}.deferred.{dname}"
        if canonicalize_name(dname) not in deferred_names:
            raise ProfileError(path, dkey, f"{dname} is not a deferred package of the profile",
                               f"add [deferred.{dname}] to the profile, or remove [{dkey}]")
        if not isinstance(overrides, dict):
            raise ProfileError(path, dkey, "must be a table", f'write [{dkey}] with wheels = "URL template"')
        _no_unknown(path, dkey, overrides, DEFERRED_OVERRIDES)
        for mapping in ("wheel_vars", "build_env"):
            value = overrides.get(mapping, {})
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise ProfileError(path, f"{dkey}.{mapping}", "must be a table of strings", 'write { MAX_JOBS = "4" }')
        _opt_str(path, f"{dkey}.wheels", overrides.get("wheels"))
        if overrides.get("prebuilt", "prefer") not in ("prefer", "require"):
            raise ProfileError(path, f"{dkey}.prebuilt", f"unknown mode {overrides['prebuilt']!r}",
                               "use one of prefer, require")
        deferred[canonicalize_name(dname)] = dict(overrides)
    python = _opt_str(path, f"{key}.python", table.get("python"))
    if python is not None and not _PYTHON.match(python):
        raise ProfileError(path, f"{key}.python", f"{python!r} is not a CPython X.Y version",
                           'write e.g. python = "3.12"')
    backend = _opt_str(path, f"{key}.backend", table.get("backend"))
    if backend is not None and backend not in BACKENDS:
        raise ProfileError(path, f"{key}.backend", f"unknown backend {backend!r}", f"use one of {', '.join(BACKENDS)}")
    auto = table.get("auto", True)
    if not isinstance(auto, bool):
        raise ProfileError(path, f"{key}.auto", f"must be true or false, found {auto!r}",
                           "write auto = false for a variant taken only with --variant")
    return Variant(
        name=name, auto=auto, cuda=cuda, python=python, backend=backend,
        description=_opt_str(path, f"{key}.description", table.get("description")) or "",
        platforms=_opt_list(path, f"{key}.platforms", table.get("platforms")),
        index_url=_opt_str(path, f"{key}.index_url", table.get("index_url")),
        extra_index_urls=_opt_list(path, f"{key}.extra_index_urls", table.get("extra_index_urls")),
        base_index_url=_opt_str(path, f"{key}.base_index_url", table.get("base_index_url")),
        provided=parse_provided(path, f"{key}.provided", table.get("provided")), deferred=deferred,
    )


def _no_unknown(path: Path, where: str, table: dict[str, Any], allowed: set[str]) -> None:
    for key in table:
        if key not in allowed:
            close = close_matches(key, sorted(allowed), n=1)
            fix = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(sorted(allowed))}"
            raise ProfileError(path, f"{where}.{key}", "unknown key", fix)


def _opt_str(path: Path, key: str, value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ProfileError(path, key, f"must be a string, found {type(value).__name__}")
    return value


def _opt_list(path: Path, key: str, value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProfileError(path, key, "must be a list of strings", f'write {key.rsplit(".", 1)[-1]} = ["..."]')
    return tuple(value)
