"""What doctor reads: the facts ``probe.py cuda`` reports from the target interpreter (driver
through libcuda, GPUs, nvcc, ninja, compiler, memory, glibc, CUDA libraries; :class:`Facts`), and the
CUDA build a target's torch or a profile's lock needs (:func:`torch_build`, :func:`lock_cuda`).
:func:`probe_facts` is the only function here that starts a process (through the runner)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from stacksync.core.errors import ProbeError
from stacksync.cuda import cudalibs
from stacksync.env.environment import Snapshot
from stacksync.env.probeshare import run_probes
from stacksync.lock.lockfile import Pin
from stacksync.lock.profile import Profile

__all__ = [
    "CudaNeed", "Device", "Driver", "Facts", "Nvcc", "TORCH_MANYLINUX_2_28", "Tool", "TorchBuild", "TorchFiles",
    "facts_from_json", "lock_cuda", "preinstall_wants_facts", "probe_facts", "requires_pins", "torch_build"
]


# torch >= 2.7 Linux wheels are manylinux_2_28 (2.6 moved its CUDA 12.6 builds first).
TORCH_MANYLINUX_2_28 = Version("2.7")


_LOCAL_CUDA = re.compile(r"^cu(?P<major>\d{2,3}?)(?P<minor>\d)$")


_CU_RESULT = re.compile(r"\((\d+)\)")


@dataclass(frozen=True)
class Device:
    index: int
    name: str | None
    memory_mib: int | None
    capability: str | None

    def describe(self) -> str:
        extra = [f"{self.memory_mib // 1024} GiB" if self.memory_mib else "",
                 f"compute {self.capability}" if self.capability else ""]
        detail = ", ".join(e for e in extra if e)
        return f"{self.name or f'GPU {self.index}'}" + (f" ({detail})" if detail else "")


@dataclass(frozen=True)
class Driver:
    """The NVIDIA driver as libcuda (or nvidia-smi) reports it. ``cuda`` is the newest CUDA it runs."""

    found: bool
    cuda: str | None = None
    version: str | None = None
    library: str | None = None
    source: str = "libcuda"
    devices: tuple[Device, ...] = ()
    device_count: int | None = None
    init_error: str | None = None
    error: str | None = None

    @property
    def init_code(self) -> int | None:
        match = _CU_RESULT.search(self.init_error or "")
        return int(match.group(1)) if match else None


@dataclass(frozen=True)
class Tool:
    path: str
    version: str | None = None
    line: str | None = None
    on_path: bool = True


@dataclass(frozen=True)
class Nvcc:
    """The nvcc a torch extension build uses: ``$CUDA_HOME/bin/nvcc``, CUDA_HOME found as
    ``torch.utils.cpp_extension`` finds it (CUDA_HOME, CUDA_PATH, nvcc on PATH, /usr/local/cuda)."""

    cuda_home: str | None = None
    cuda_home_source: str | None = None
    path: str | None = None
    version: str | None = None
    on_path: str | None = None
    path_version: str | None = None
    cuda_h: bool = False


@dataclass(frozen=True)
class TorchFiles:
    """torch/version.py read as text."""

    path: str
    version: str | None
    cuda: str | None
    hip: str | None


@dataclass(frozen=True)
class Facts:
    """What ``probe.py cuda`` saw in the target."""

    driver: Driver
    nvcc: Nvcc
    ninja: Tool | None
    compiler: Tool | None
    cxx: str | None
    memory_total_mib: int | None
    memory_available_mib: int | None
    cgroup_limit_mib: int | None
    cpu_count: int | None
    max_jobs: str | None
    glibc: str | None
    system: str
    machine: str
    libraries: Mapping[str, tuple[tuple[str, str], ...]]
    torch: TorchFiles | None = None
    torch_import: Mapping[str, Any] | None = None
    cuda_visible_devices: str | None = None
    ld_library_path: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def memory_for_builds_mib(self) -> int | None:
        values = [v for v in (self.memory_available_mib, self.cgroup_limit_mib) if v]
        return min(values) if values else None


def _opt_str(value: Any) -> str | None:
    if value is None:
        return None
    assert isinstance(value, str), value
    return value


def _opt_int(value: Any) -> int | None:
    if value is None:
        return None
    assert isinstance(value, int) and not isinstance(value, bool), value
    return value


def _tool(data: Any) -> Tool | None:
    if data is None:
        return None
    assert isinstance(data, dict) and isinstance(data["path"], str)
    return Tool(data["path"], _opt_str(data.get("version")), _opt_str(data.get("line")),
                bool(data.get("on_path", True)))


def facts_from_json(data: Any, *, source: str = "probe.py cuda") -> Facts:
    """Check the shape of what ``probe.py cuda`` printed and build :class:`Facts` (a wrong shape is a
    :class:`ProbeError`)."""
    try:
        assert isinstance(data, dict) and data.get("probe_cuda") == 1, "not a probe_cuda document"
        drv = data["driver"]
        assert isinstance(drv, dict)
        cuda_int = _opt_int(drv.get("cuda_int"))
        devices = tuple(Device(_opt_int(d.get("index")) or 0, _opt_str(d.get("name")),
                               _opt_int(d.get("memory_mib")), _opt_str(d.get("capability")))
                        for d in drv.get("devices") or [])
        driver = Driver(
            found=bool(drv["found"]), cuda=cudalibs.cuda_from_driver_int(cuda_int) if cuda_int else None,
            version=_opt_str(drv.get("version")), library=_opt_str(drv.get("library")),
            source=str(drv.get("source") or "libcuda"), devices=devices,
            device_count=_opt_int(drv.get("device_count")), init_error=_opt_str(drv.get("init_error")),
            error=_opt_str(drv.get("error")),
        )
        nv = data["nvcc"]
        assert isinstance(nv, dict)
        nvcc = Nvcc(cuda_home=_opt_str(nv.get("cuda_home")),
                    cuda_home_source=_opt_str(nv.get("cuda_home_source")), path=_opt_str(nv.get("path")),
                    version=_opt_str(nv.get("version")),
                    on_path=_opt_str(nv.get("on_path")), path_version=_opt_str(nv.get("path_version")),
                    cuda_h=bool(nv.get("cuda_h")))
        libs: dict[str, tuple[tuple[str, str], ...]] = {}
        for soname, entries in (data.get("libraries") or {}).items():
            assert isinstance(soname, str) and isinstance(entries, list)
            libs[soname] = tuple((str(e["path"]), str(e["source"])) for e in entries)
        torch = data.get("torch")
        torch_files = None
        if torch is not None:
            assert isinstance(torch, dict)
            torch_files = TorchFiles(str(torch.get("version_py", "")), _opt_str(torch.get("version")),
                                     _opt_str(torch.get("cuda")), _opt_str(torch.get("hip")))
        memory = data.get("memory") or {}
        compiler = data.get("compiler")
        plat = data.get("platform") or {}
        ti = data.get("torch_import")
        assert ti is None or isinstance(ti, dict)
        return Facts(
            driver=driver, nvcc=nvcc, ninja=_tool(data.get("ninja")), compiler=_tool(compiler),
            cxx=_opt_str(compiler.get("cxx")) if isinstance(compiler, dict) else None,
            memory_total_mib=_opt_int(memory.get("total_mib")),
            memory_available_mib=_opt_int(memory.get("available_mib")),
            cgroup_limit_mib=_opt_int(memory.get("cgroup_limit_mib")),
            cpu_count=_opt_int(data.get("cpu_count")), max_jobs=_opt_str(data.get("max_jobs")),
            glibc=_opt_str(data.get("glibc")), system=str(plat.get("system") or ""),
            machine=str(plat.get("machine") or ""), libraries=libs, torch=torch_files, torch_import=ti,
            cuda_visible_devices=_opt_str(data.get("cuda_visible_devices")),
            ld_library_path=_opt_str(data.get("ld_library_path")), raw=data,
        )
    except (AssertionError, KeyError, TypeError, AttributeError) as exc:
        raise ProbeError(f"{source} printed an unexpected document ({exc!r})") from exc


def probe_facts(python: str | Path, *, import_torch: bool = False) -> Facts:
    """Run ``probe.py cuda`` in ``python`` (an interpreter path)."""
    args = ["--import-torch"] if import_torch else []
    return facts_from_json(run_probes(python, ["cuda"], *args)["cuda"], source=f"probe.py cuda in {python}")


@dataclass(frozen=True)
class TorchBuild:
    """What torch was built for. ``cuda`` is ``X.Y``, or a bare major when only nvidia-*-cuXX
    requirements say it; ``kind`` is cuda / cpu / rocm / unknown."""

    version: str
    kind: str
    cuda: str | None = None
    evidence: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()


@dataclass(frozen=True)
class CudaNeed:
    """The CUDA runtime a lock needs, and why (``evidence``); ``conflicts`` when sources disagree."""

    cuda: str
    evidence: tuple[str, ...]
    conflicts: tuple[str, ...] = ()

    @property
    def cu_tag(self) -> str:
        return "cu" + self.cuda.replace(".", "")


def _local_cuda(version: str) -> tuple[str, str | None] | None:
    """``2.4.0+cu121`` -> ("cuda", "12.1"); ``+cpu`` -> ("cpu", None); ``+rocm6.0`` -> ("rocm", None)."""
    try:
        local = Version(version).local
    except InvalidVersion:
        return None
    if not local:
        return None
    if local == "cpu":
        return "cpu", None
    if local.startswith("rocm"):
        return "rocm", None
    match = _LOCAL_CUDA.match(local)
    if match:
        return "cuda", f"{int(match.group('major'))}.{match.group('minor')}"
    return None


def _cuda_evidence(torch_version: str | None,
                   nvidia: Mapping[NormalizedName, str | None]) -> list[tuple[str, str]]:
    """(cuda, why) pairs from torch's local version and the nvidia-* packages pinned beside it."""
    found: list[tuple[str, str]] = []
    if torch_version:
        local = _local_cuda(torch_version)
        if local and local[0] == "cuda" and local[1]:
            found.append((local[1], f"torch=={torch_version}"))
    majors: dict[str, str] = {}
    for name, version in sorted(nvidia.items()):
        comp = cudalibs.component_of_package(name)
        if comp is None:
            continue
        if comp[0] == "cuda-runtime" and version:
            try:
                rel = Version(version).release
            except InvalidVersion:
                rel = ()
            if len(rel) >= 2:
                found.append((f"{rel[0]}.{rel[1]}", f"{name}=={version}"))
                continue
        if comp[1]:
            majors.setdefault(comp[1], f"{name}" + (f"=={version}" if version else ""))
    for major, why in majors.items():
        if not any(c.split(".")[0] == major for c, _ in found):
            found.append((major, why))
    return found


def _pick(evidence: list[tuple[str, str]]) -> tuple[str, tuple[str, ...], tuple[str, ...]] | None:
    if not evidence:
        return None
    full = [e for e in evidence if "." in e[0]]
    best = max(full or evidence, key=lambda e: tuple(int(p) for p in e[0].split(".")))
    conflicts = tuple(f"{why} says CUDA {cuda}" for cuda, why in evidence
                      if cuda.split(".")[0] != best[0].split(".")[0] or ("." in cuda and cuda != best[0]))
    return best[0], tuple(f"{why} (CUDA {cuda})" for cuda, why in evidence), conflicts


def requires_pins(requires: Iterable[str],
                   environment: Mapping[str, str]) -> dict[NormalizedName, str | None]:
    """``name -> exact version or None`` of the requirements whose markers hold for ``environment``."""
    env = {**environment, "extra": ""}
    pins: dict[NormalizedName, str | None] = {}
    for text in requires:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        try:
            if req.marker is not None and not req.marker.evaluate(env):
                continue
        except Exception:  # an undefined marker variable: treat as not applying  # noqa: BLE001
            continue
        specs = list(req.specifier)
        exact = specs[0].version if len(specs) == 1 and specs[0].operator in ("==", "===") else None
        pins[canonicalize_name(req.name)] = exact
    return pins


def torch_build(snapshot: Snapshot, facts: Facts | None = None) -> TorchBuild | None:
    """torch's CUDA build in the target, from its local version, torch/version.py, the nvidia-*
    packages it requires and (with ``--import-torch``) torch itself. ``None`` without torch."""
    dist = snapshot.distributions.get(canonicalize_name("torch"))
    if dist is None:
        return None
    local = _local_cuda(dist.version)
    nvidia = {n: v for n, v in requires_pins(dist.requires, snapshot.marker_environment).items()
              if n.startswith("nvidia-")}
    evidence = _cuda_evidence(dist.version, nvidia)
    files = facts.torch if facts is not None else None
    if files is not None and files.cuda:
        evidence.append((files.cuda, f"{Path(files.path).name}: cuda = '{files.cuda}'"))
    imported = facts.torch_import if facts is not None else None
    if imported and imported.get("ok") and imported.get("cuda"):
        evidence.append((str(imported["cuda"]), f"torch.version.cuda = '{imported['cuda']}'"))
    if local and local[0] in ("cpu", "rocm"):
        conflicts = tuple(f"{why} says CUDA {cuda}" for cuda, why in evidence if "." in cuda)
        return TorchBuild(dist.version, local[0], None, (f"torch=={dist.version}",), conflicts)
    if files is not None and files.hip:
        return TorchBuild(dist.version, "rocm", None, (f"version.py: hip = '{files.hip}'",))
    picked = _pick(evidence)
    if picked is None:
        return TorchBuild(dist.version, "unknown")
    return TorchBuild(dist.version, "cuda", picked[0], picked[1], picked[2])


def lock_cuda(profile: Profile | None, pins: Mapping[NormalizedName, Pin]) -> CudaNeed | None:
    """The CUDA runtime a lock needs: the profile's ``cuda`` key, torch's ``+cuXYZ`` local version,
    ``nvidia-cuda-runtime-cuXX``'s version, or (major only) any ``nvidia-*-cuXX`` pin."""
    evidence: list[tuple[str, str]] = []
    if profile is not None and profile.cuda:
        evidence.append((profile.cuda, f"{profile.stack_toml.name}: cuda = \"{profile.cuda}\""))
    torch = pins.get(canonicalize_name("torch"))
    nvidia = {n: p.version for n, p in pins.items() if n.startswith("nvidia-")}
    evidence += _cuda_evidence(torch.version if torch else None, nvidia)
    picked = _pick(evidence)
    if picked is None:
        return None
    # The profile's key is what the user declared: it wins when it is there.
    cuda = profile.cuda if (profile is not None and profile.cuda) else picked[0]
    conflicts = tuple(f"{why} says CUDA {c}" for c, why in evidence
                      if c.split(".")[0] != cuda.split(".")[0] or ("." in c and c != cuda))
    return CudaNeed(cuda, picked[1], conflicts)


def preinstall_wants_facts(profile: Profile, pin_names: Iterable[str], *, building: bool) -> bool:
    """Whether a warning or error of ``cuda.checks.preinstall_findings`` can come from ``probe.py cuda``'s facts:
    a lock that needs CUDA (the driver; the profile's ``cuda`` key, torch, ``nvidia-*`` pins), manylinux
    wheels (glibc; torch, triton, ``nvidia-*``), or a deferred package to build (nvcc, ninja, compiler,
    memory). Otherwise every finding a sync would print from the facts is an "ok" line, or doctor's warning
    that the ``nvcc`` on PATH is not CUDA_HOME's, which matters to a build and to nothing such a lock
    installs (``invoke doctor`` still says it): the sync need not start the probe's cuda half
    (``facts=None``). ``pin_names``: the lock's, canonical."""
    if building or profile.cuda:
        return True
    return any(n in ("torch", "triton") or n.startswith("nvidia-") for n in pin_names)
