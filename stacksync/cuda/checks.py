"""doctor's checks, all pure: facts and a snapshot in, a list of findings
(:class:`~stacksync.cuda.finding.Finding`) out, each with its fix.

- :func:`host_findings`: the driver and GPUs, glibc.
- :func:`target_findings`: torch's CUDA build against the driver, the CUDA libraries it needs.
- :func:`build_findings`: nvcc / CUDA_HOME / ninja / compiler / memory for deferred builds.
- :func:`preinstall_findings`: a profile's lock against this host *before* installing (``invoke sync``
  stops on its errors unless ``--force``).
- :func:`findings_for`: all of them for one target.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from stacksync.build.buildkey import cuda_build_skipped
from stacksync.cuda import cudalibs
from stacksync.cuda import facts as cuda_facts
from stacksync.cuda.facts import TORCH_MANYLINUX_2_28, Facts, Nvcc, lock_cuda, requires_pins, torch_build
from stacksync.cuda.finding import Finding, Level, err, ok, warn
from stacksync.env.environment import Snapshot
from stacksync.lock.lockfile import LockProblems, Pin, RequirementsFile, parse
from stacksync.lock.profile import Deferred, Profile
from stacksync.lock.variants import platform_admits, platform_name

__all__ = ["GIB_PER_BUILD_JOB", "MIN_GLIBC", "build_findings", "findings_for", "host_findings", "library_findings",
           "preinstall_findings", "target_findings"]


# Rough peak memory of one nvcc job compiling flash-attn-sized kernels; flash-attn's README asks for
# MAX_JOBS on machines with < 96 GB RAM and many cores.
GIB_PER_BUILD_JOB = 4

# manylinux2014: the oldest glibc any current torch / nvidia wheel installs on.
MIN_GLIBC = "2.17"

_HEADER_PYTHON = re.compile(r"with Python (\d+\.\d+)")

_CU_ERROR_FIX = {
    803: "the driver library and the loaded kernel module differ in version: reboot, or reinstall the driver",
    804: "forward compatibility (cuda-compat) is not supported on this GPU: remove cuda-compat from "
         "LD_LIBRARY_PATH or update the driver",
    999: "reload the nvidia kernel module or reboot; check `nvidia-smi` and the kernel log",
    3: "check `nvidia-smi`; reinstall the NVIDIA driver",
}


def _gib(mib: int) -> str:
    return f"{mib / 1024:.1f} GiB"


def _vkey(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


_GPU_FLAGS_FIX = "check CUDA_VISIBLE_DEVICES and the container's GPU flags (--gpus all)"


def host_findings(facts: Facts) -> list[Finding]:
    """The NVIDIA driver and GPUs, and glibc."""
    out: list[Finding] = []
    drv = facts.driver
    if not drv.found:
        out.append(warn("driver", "no NVIDIA driver found (libcuda.so.1 cannot be loaded): CUDA builds of "
                        "torch run on the CPU only here",
                        "install the NVIDIA driver (in a container: run it with --gpus all), or use a CPU "
                        "profile; installing CUDA wheels works without a driver"))
    elif drv.cuda is None:
        out.append(err("driver", f"NVIDIA driver library {drv.library or '(libcuda)'} loaded but reports no "
                       f"CUDA version: {drv.error or 'cuDriverGetVersion failed'}",
                       "reinstall the NVIDIA driver; check `nvidia-smi`"))
    else:
        name = f"NVIDIA driver {drv.version}" if drv.version else "NVIDIA driver"
        if drv.init_error:
            visible = facts.cuda_visible_devices
            shown = f"; CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else ""
            if drv.init_code == 100:
                out.append(warn("driver", f"{name} (CUDA up to {drv.cuda}) found but no GPU is visible: "
                                f"{drv.init_error}{shown}", _GPU_FLAGS_FIX))
            else:
                fix = _CU_ERROR_FIX.get(drv.init_code or -1, "check `nvidia-smi`; reinstall the NVIDIA driver")
                out.append(err("driver", f"{name} (CUDA up to {drv.cuda}) found but cuInit failed: "
                               f"{drv.init_error}", fix))
        elif drv.device_count == 0:
            out.append(warn("driver", f"{name} supports CUDA up to {drv.cuda} but sees no GPU", _GPU_FLAGS_FIX))
        else:
            gpus = ""
            if drv.devices:
                listed = ", ".join(d.describe() for d in drv.devices)
                gpus = f"; {_plural(len(drv.devices), 'GPU')}: {listed}"
            elif drv.device_count:
                gpus = f"; {_plural(drv.device_count, 'GPU')}"
            out.append(ok("driver", f"{name} supports CUDA up to {drv.cuda}{gpus}"))
    if facts.system == "Linux":
        if facts.glibc is None:
            out.append(warn("glibc", "no glibc (musl?): manylinux wheels such as torch and the nvidia-* "
                            "runtime wheels do not install here",
                            "use a glibc-based image (Debian, Ubuntu, RHEL)"))
        elif _vkey(facts.glibc) < _vkey(MIN_GLIBC):
            out.append(err("glibc", f"glibc {facts.glibc} is older than {MIN_GLIBC} (manylinux2014): no "
                           "current torch or nvidia wheel installs", "use a newer base image"))
        else:
            out.append(ok("glibc", f"glibc {facts.glibc}"))
    return out


def _against_driver(label: str, cuda: str, facts: Facts, *, topic: str) -> Finding:
    """``label`` needs CUDA ``cuda``: can this driver run it?"""
    drv = facts.driver
    need_driver = cudalibs.min_driver(cuda)
    update = f"update the NVIDIA driver to >= {need_driver}" if need_driver else "update the NVIDIA driver"
    if not drv.found or drv.cuda is None:
        wanted = need_driver or f"the one for CUDA {cuda}"
        return warn(topic, f"{label} needs CUDA {cuda} runtime; no working NVIDIA driver here, so it runs on "
                    "the CPU only", f"on the GPU machine use an NVIDIA driver >= {wanted}")
    verdict = cudalibs.driver_runs(drv.cuda, cuda)
    if verdict == "yes":
        return ok(topic, f"{label} needs CUDA {cuda} runtime; the driver supports up to {drv.cuda}")
    if verdict == "minor-compat":
        return warn(topic, f"{label} needs CUDA {cuda} runtime; driver supports up to {drv.cuda}: it runs "
                    "through CUDA minor version compatibility, but PTX JIT and newer runtime features fail",
                    update)
    return err(topic, f"{label} needs CUDA {cuda} runtime; driver supports up to {drv.cuda}",
               f"{update}, or pick a cu{drv.cuda.replace('.', '')} profile")


def target_findings(snapshot: Snapshot, facts: Facts,
                    lock_pins: Mapping[NormalizedName, Pin] | None = None) -> list[Finding]:
    """torch's CUDA build against the driver; the CUDA libraries torch needs (``lock_pins`` names
    the locked version of a missing one)."""
    out: list[Finding] = [ok("python", f"Python {snapshot.version} at {snapshot.python}")]
    build = torch_build(snapshot, facts)
    if build is None:
        out.append(ok("torch", "torch is not installed in the target"))
    else:
        label = f"torch {build.version}"
        if build.kind == "cuda" and build.cuda:
            out.append(_against_driver(label, build.cuda, facts, topic="torch"))
        elif build.kind == "cpu":
            if facts.driver.found and (facts.driver.device_count or facts.driver.devices):
                out.append(warn("torch", f"{label} is a CPU build but this machine has an NVIDIA GPU",
                                "install a CUDA build of torch (a profile with cuda = \"X.Y\")"))
            else:
                out.append(ok("torch", f"{label} is a CPU build"))
        elif build.kind == "rocm":
            out.append(ok("torch", f"{label} is a ROCm build (doctor checks NVIDIA setups only)"))
        else:
            out.append(ok("torch", f"{label}: CUDA build unknown (no +cuXYZ version, no version.py cuda, "
                          "no nvidia-* requirements)"))
        if build.conflicts:
            out.append(warn("torch", f"{label}: its files disagree about CUDA: " + "; ".join(build.conflicts),
                            "reinstall torch from the right index: python -m pip install --force-reinstall "
                            "--no-deps torch==VERSION"))
        imported = facts.torch_import
        if imported is not None and not imported.get("ok"):
            error = str(imported.get("error", ""))
            explained = cudalibs.missing_library(error, lock_pins or {}, snapshot.versions())
            out.append(err("torch", f"import torch fails: {explained.message if explained else error}",
                           explained.fix if explained else "read the error; reinstall torch"))
    out += library_findings(snapshot, facts, lock_pins)
    return out


def library_findings(snapshot: Snapshot, facts: Facts,
                     lock_pins: Mapping[NormalizedName, Pin] | None = None) -> list[Finding]:
    """Each nvidia-* package torch requires (or that is installed) must have its library where the
    loader or torch finds it."""
    installed = snapshot.versions()
    required: dict[NormalizedName, str | None] = {}
    torch = snapshot.distributions.get(canonicalize_name("torch"))
    if torch is not None:
        required = {n: v for n, v in requires_pins(torch.requires, snapshot.marker_environment).items()
                    if cudalibs.component_of_package(n) is not None}
    wanted = sorted(set(required) | {n for n in installed if cudalibs.component_of_package(n) is not None})
    out: list[Finding] = []
    found: dict[str, list[tuple[str, str]]] = {}
    missing = 0
    pins = lock_pins or {}
    for name in wanted:
        pin = pins.get(name)
        version = installed.get(name) or required.get(name) or (pin.version if pin is not None else None)
        soname = cudalibs.expected_soname(name, version or "")
        if soname is None:
            continue
        entries = [e for so, es in sorted(facts.libraries.items()) if cudalibs.soname_matches(soname, so)
                   for e in es]
        if entries:
            found[soname] = entries
            continue
        missing += 1
        if name not in installed:
            want = required.get(name) or (pin.version if pin is not None else None)
            spec = f"{name}=={want}" if want else name
            locked = f" (locked at {pin.key()}, {pin.where})" if pin is not None else ""
            out.append(err("libraries", f"{soname} not found: torch {torch.version if torch else ''} "
                           f"requires {spec}{locked}, which is not installed",
                           f"python -m pip install {spec} (a --no-deps install of torch skips it; "
                           "`invoke sync` installs the base phase with its dependencies)"))
            continue
        explained = cudalibs.missing_library(f"{soname}: cannot open shared object file", pins, installed)
        out.append(err("libraries", explained.message if explained else f"{soname} not found",
                       explained.fix if explained else f"python -m pip install --force-reinstall {name}"))
    for name, want in sorted(required.items()):
        if want and name in installed and installed[name] != want:
            out.append(err("libraries", f"torch {torch.version if torch else ''} requires {name}=={want} but "
                           f"{installed[name]} is installed", f"python -m pip install {name}=={want}"))
    if found:
        where: dict[str, int] = {}
        for entries in found.values():
            where[entries[0][1]] = where.get(entries[0][1], 0) + 1
        places = ", ".join(f"{n} from {src}" for src, n in sorted(where.items()))
        out.append(ok("libraries", f"CUDA libraries: {len(found)} of {len(found) + missing} found "
                      f"({places}): {', '.join(sorted(found))}"))
    out += _shadowed(found)
    return out


def _shadowed(found: Mapping[str, list[tuple[str, str]]]) -> list[Finding]:
    """A copy of a wheel's library in LD_LIBRARY_PATH is loaded instead of the wheel's."""
    out = []
    for soname, entries in sorted(found.items()):
        wheel = [Path(p).parent for p, src in entries if src == "site-packages"]
        ld = [Path(p).parent for p, src in entries if src == "LD_LIBRARY_PATH"]
        if wheel and ld:
            out.append(warn("libraries", f"{soname} in LD_LIBRARY_PATH ({ld[0]}) is loaded before the "
                            f"wheel's copy ({wheel[0]}); another version there breaks torch with undefined "
                            "symbols",
                            f"remove {ld[0]} from LD_LIBRARY_PATH"))
    return out


def build_findings(facts: Facts, *, torch_cuda: str | None, deferred: Iterable[str] = (),
                   max_jobs: str | None = None, build_requires: Iterable[str] = (),
                   cuda_deferred: Iterable[str] | None = None) -> list[Finding]:
    """The build side of deferred packages (flash-attn): nvcc and CUDA_HOME against torch's CUDA,
    ninja, a compiler, memory for MAX_JOBS parallel jobs. Without deferred packages: facts only.
    ``cuda_deferred``: those of them that compile CUDA code (default: all); only they need nvcc."""
    names = sorted(canonicalize_name(d) for d in deferred)
    building = bool(names)
    what = ", ".join(names)
    cuda_names = names if cuda_deferred is None else sorted(canonicalize_name(d) for d in cuda_deferred)
    out = _nvcc_findings(facts.nvcc, torch_cuda, ", ".join(cuda_names))
    if facts.ninja is None:
        if building and "ninja" in {canonicalize_name(n) for n in build_requires}:
            out.append(ok("ninja", "ninja is not on PATH; the profile's build_requires install it into the "
                          "target before the build"))
        elif building:
            out.append(warn("ninja", f"no ninja: {what} falls back to torch's slow one-file-at-a-time build "
                            "(hours for flash-attn)",
                            "add \"ninja\" to build_requires in stack.toml (or pip install ninja)"))
        else:
            out.append(ok("ninja", "no ninja (needed only to build extensions)"))
    else:
        where = "" if facts.ninja.on_path else " (in the target's bin folder, not on PATH)"
        out.append(ok("ninja", f"ninja {facts.ninja.version or '?'} at {facts.ninja.path}{where}"))
    install_cc = "install gcc and g++ (Debian/Ubuntu: apt-get install build-essential)"
    if facts.compiler is None:
        if building:
            out.append(err("compiler", f"no C compiler (cc, gcc, clang): {what} cannot build", install_cc))
        else:
            out.append(ok("compiler", "no C compiler (needed only to build extensions)"))
    else:
        cxx = f", C++: {facts.cxx}" if facts.cxx else ""
        out.append(ok("compiler", f"{facts.compiler.line or 'compiler'} at {facts.compiler.path}{cxx}"))
        if building and not facts.cxx:
            out.append(err("compiler", f"no C++ compiler (c++, g++): {what} cannot build", install_cc))
    if building:
        out += _memory_findings(facts, max_jobs)
    return out


def _nvcc_findings(nv: Nvcc, torch_cuda: str | None, what: str) -> list[Finding]:
    home = f"CUDA_HOME={nv.cuda_home} (from {nv.cuda_home_source})" if nv.cuda_home else "no CUDA_HOME"
    toolkit = (f"install the CUDA {torch_cuda} toolkit and export CUDA_HOME to it "
               f"(e.g. /usr/local/cuda-{torch_cuda})")
    if nv.path is None or nv.version is None:
        if what and torch_cuda:
            return [warn("nvcc", f"no nvcc ({home}; none on PATH): {what} cannot compile its CUDA code "
                         "unless a prebuilt wheel is found", toolkit)]
        return [ok("nvcc", f"no nvcc ({home}): needed only to build CUDA extensions")]
    out: list[Finding] = []
    line = f"nvcc {nv.version} at {nv.path} ({home})"
    if torch_cuda and nv.version.split(".")[0] != torch_cuda.split(".")[0]:
        if what:
            out.append(err("nvcc", f"{line} but torch is built for CUDA {torch_cuda}: torch refuses to build "
                           f"{what} across CUDA majors", toolkit))
        else:
            out.append(warn("nvcc", f"{line} but torch is built for CUDA {torch_cuda}: CUDA extensions will "
                            "not build", toolkit))
    elif torch_cuda and "." in torch_cuda and nv.version != torch_cuda:
        out.append(ok("nvcc", f"{line}; torch is built for CUDA {torch_cuda} (same major: torch only warns)"))
    else:
        out.append(ok("nvcc", line + (f", matching torch's CUDA {torch_cuda}" if torch_cuda else "")))
    if what and not nv.cuda_h:
        out.append(warn("nvcc", f"{nv.cuda_home} has no include/cuda.h: the build will not find the CUDA "
                        "headers",
                        "export CUDA_HOME to the toolkit root (the folder with bin/nvcc and include/cuda.h)"))
    if nv.path_version and nv.path_version != nv.version:
        out.append(warn("nvcc", f"nvcc on PATH ({nv.on_path}) is {nv.path_version} but CUDA_HOME's is "
                        f"{nv.version}",
                        "put $CUDA_HOME/bin first on PATH, or export CUDA_HOME to the other one"))
    return out


def _memory_findings(facts: Facts, max_jobs: str | None) -> list[Finding]:
    memory = facts.memory_for_builds_mib
    if memory is None:
        return []
    if max_jobs and max_jobs.isdigit() and int(max_jobs) > 0:
        jobs, source = int(max_jobs), f"MAX_JOBS={max_jobs}"
    else:
        jobs = (facts.cpu_count or 1) + 2
        source = f"MAX_JOBS unset (ninja runs {jobs} jobs)"
    limit = " (cgroup limit)" if facts.cgroup_limit_mib and facts.cgroup_limit_mib == memory else ""
    if jobs * GIB_PER_BUILD_JOB * 1024 > memory:
        fit = max(1, memory // (GIB_PER_BUILD_JOB * 1024))
        return [warn("memory", f"{source}: about {jobs * GIB_PER_BUILD_JOB} GiB for parallel nvcc jobs, "
                     f"{_gib(memory)} available{limit}: the build can be killed for memory",
                     f"set build_env = {{ MAX_JOBS = \"{fit}\" }} for the deferred package in stack.toml")]
    return [ok("memory", f"{_gib(memory)} available{limit} for {source}")]


def _lock_for(profile: Profile, lock: RequirementsFile | None) -> tuple[RequirementsFile | None, list[Finding]]:
    """The profile's lock; its requirements.in (with a warning) when there is no lock yet."""
    if lock is not None:
        return lock, []
    fix = f"compile it: invoke compile --profile {profile.name}"
    try:
        if profile.lock_path.is_file():
            return parse(profile.lock_path), []
        found = parse(profile.requirements_in)
    except LockProblems as exc:
        return None, [err("lock", str(exc.problems[0]), f"fix the file, or {fix}")]
    return found, [warn("lock", f"no lock yet ({profile.lock_path}): checked {profile.requirements_in}", fix)]


def preinstall_findings(profile: Profile, snapshot: Snapshot, facts: Facts | None,
                        lock: RequirementsFile | None = None, have_wheels: Iterable[str] = (), *,
                        to_build: Iterable[str] | None = None,
                        environ: Mapping[str, str] | None = None) -> list[Finding]:
    """The profile's lock checked against this host and target *before* installing: Python version
    and platform, the CUDA runtime the lock needs against the driver, glibc against the lock's
    wheels, and the build side of its deferred packages. ``lock`` defaults to the profile's
    ``requirements.txt`` (``requirements.in`` when there is no lock yet). ``invoke sync`` stops on
    any error unless ``--force``. ``have_wheels``: deferred packages a wheel is there for (the
    wheelhouse, the team index, a pinned prebuilt wheel): installed, not built, so no build checks.
    ``to_build``: the deferred packages this run builds (a sync's plan); default: those not installed
    as locked. nvcc is asked only of those that compile CUDA code against a base (``rebuild_on``) and
    whose own switch does not skip it (``FLASH_ATTENTION_SKIP_CUDA_BUILD=TRUE`` in build_env or
    ``environ``): a pure-Python sdist is no CUDA build. ``facts=None``: see ``cuda.facts.preinstall_wants_facts``."""
    environ = os.environ if environ is None else environ
    name = f"profile {profile.name!r}"
    lock, out = _lock_for(profile, lock)
    out += _python_findings(profile, snapshot, lock)
    sys_platform = snapshot.marker_environment.get("sys_platform", "")
    machine = snapshot.marker_environment.get("platform_machine", "")
    if not platform_admits(profile.platforms, sys_platform, machine):
        shown = platform_name(sys_platform, machine) if any("_" in p for p in profile.platforms) else sys_platform
        what = f"{name} variant {profile.variant!r}" if profile.variant else name
        out.append(err("platform", f"{what} is for {', '.join(profile.platforms)}; the target is {shown}",
                       f"use a profile for {shown}"))
    pins = lock.for_environment(snapshot.marker_environment) if lock is not None else {}
    need = lock_cuda(profile, pins)
    if need is None:
        out.append(ok("cuda", f"{name} needs no CUDA runtime (no cuda key, no CUDA torch, no nvidia-* pins)"))
    elif facts is not None:
        out.append(_against_driver("this lock", need.cuda, facts, topic="cuda"))
        if need.conflicts:
            majors = {c.rsplit("CUDA ", 1)[-1].split(".")[0] for c in need.conflicts}
            level: Level = "error" if majors - {need.cuda.split(".")[0]} else "warning"
            out.append(Finding(level, "cuda", f"{name} disagrees with itself about CUDA {need.cuda}: "
                               + "; ".join(need.conflicts),
                               f"make stack.toml's cuda key and the torch / nvidia-* pins name one CUDA "
                               f"(e.g. torch==X+{need.cu_tag}), then compile again"))
        machine = snapshot.marker_environment.get("platform_machine", facts.machine)
        if sys_platform == "linux" and machine not in ("x86_64", "aarch64"):
            out.append(err("platform", f"{name} needs CUDA wheels; none exist for {machine}",
                           "use an x86_64 or aarch64 machine, or a CPU profile"))
    out += _glibc_findings(name, pins, facts, sys_platform) if facts is not None else []
    wheels = set(have_wheels)
    chosen = set(to_build) if to_build is not None else None
    building = [d for d in (_to_build(profile, snapshot, pins) if chosen is None else
                            [d for d in profile.deferred if d.name in chosen]) if d.name not in wheels]
    built = sorted({d.name for d in profile.deferred} - {d.name for d in building} - wheels)
    if built:
        out.append(ok("build", f"{', '.join(built)} already installed as locked: nothing to build"))
    if wheels:
        out.append(ok("build", f"{', '.join(sorted(wheels))}: a wheel is there (deferred phase): nothing to build"))
    skipped = {d.name: why for d in building if (why := cuda_build_skipped(d.name, d.build_env, environ))}
    if skipped:
        out.append(ok("build", "; ".join(f"{n}: CUDA part not built ({why}): no nvcc needed"
                                         for n, why in sorted(skipped.items()))))
    if facts is None:  # the facts' findings would be "ok" lines only, unless the lock or a build needs them:
        if building or cuda_facts.preinstall_wants_facts(profile, pins, building=False):
            raise ValueError(f"{name}: checked against the CUDA facts (probe.py cuda); none were given")
        return out
    max_jobs = next((d.build_env["MAX_JOBS"] for d in building if "MAX_JOBS" in d.build_env), facts.max_jobs)
    out += build_findings(facts, torch_cuda=need.cuda if need is not None else None,
                          deferred=[d.name for d in building], max_jobs=max_jobs,
                          build_requires=[n for d in building for n in d.build_requires],
                          cuda_deferred=[d.name for d in building if d.rebuild_on and d.name not in skipped])
    return out


def _to_build(profile: Profile, snapshot: Snapshot, pins: Mapping[NormalizedName, Pin]) -> list[Deferred]:
    """Deferred packages a sync would build: not installed at the locked version, or a base package
    they are rebuilt on is not at its locked version yet."""
    installed = snapshot.versions()
    result = []
    for d in profile.deferred:
        pin = pins.get(d.name)
        current = pin is not None and pin.version is not None and installed.get(d.name) == pin.version
        bases_current = all(installed.get(b) == pins[b].version for b in d.rebuild_on if b in pins)
        if not (current and bases_current):
            result.append(d)
    return result


def _python_findings(profile: Profile, snapshot: Snapshot, lock: RequirementsFile | None) -> list[Finding]:
    name = f"profile {profile.name!r}"
    out: list[Finding] = []
    match = _HEADER_PYTHON.search("\n".join(lock.header)) if lock is not None else None
    header = match.group(1) if match else None
    wanted = [(profile.python, f"{profile.stack_toml}: python")]
    if header and header != profile.python:
        wanted.append((header, f"header of {lock.path if lock is not None else 'the lock'}"))
    for want, source in wanted:
        if want is None:
            continue
        if snapshot.python_xy != want:
            out.append(err("python", f"{name} is locked for Python {want} ({source}); the target runs Python "
                           f"{snapshot.version}",
                           f"create the target with python{want} (python{want} -m venv DIR), or compile a "
                           f"profile for Python {snapshot.python_xy}"))
        else:
            out.append(ok("python", f"target Python {snapshot.version} matches {name} ({want})"))
    impl = snapshot.marker_environment.get("implementation_name", "cpython")
    if impl != "cpython":
        out.append(warn("python", f"the target runs {impl}; ML wheels (torch, nvidia-*) are CPython-only",
                        "use a CPython target"))
    soabi = snapshot.soabi or ""
    if re.match(r"cpython-\d+t-", soabi):
        out.append(warn("python", f"the target is a free-threaded build ({soabi}): few ML packages ship "
                        "cp3XXt wheels", "use the regular (GIL) build of the same Python"))
    return out


def _glibc_findings(name: str, pins: Mapping[NormalizedName, Pin], facts: Facts, sys_platform: str) -> list[Finding]:
    if sys_platform != "linux":
        return []
    binary = sorted(n for n in pins if n in ("torch", "triton") or n.startswith("nvidia-"))
    if not binary:
        return []
    if facts.glibc is None:
        return [err("glibc", f"{name} pins manylinux wheels ({', '.join(binary[:3])}) but the target has no "
                    "glibc (musl?)", "use a glibc-based image (Debian, Ubuntu, RHEL)")]
    torch = pins.get(canonicalize_name("torch"))
    if torch is not None and torch.version:
        try:
            new_torch = Version(torch.version).release >= TORCH_MANYLINUX_2_28.release
        except InvalidVersion:
            new_torch = False
        if new_torch and _vkey(facts.glibc) < (2, 28):
            return [err("glibc", f"torch {torch.version} Linux wheels are manylinux_2_28: glibc 2.28 needed, "
                        f"the host has {facts.glibc}",
                        "use a newer base image (glibc >= 2.28), or a profile with torch < 2.7")]
    if _vkey(facts.glibc) < _vkey(MIN_GLIBC):
        return [err("glibc", f"glibc {facts.glibc} is older than {MIN_GLIBC}: {name}'s wheels do not install",
                    "use a newer base image")]
    return [ok("glibc", f"glibc {facts.glibc} runs the lock's manylinux wheels")]


def findings_for(snapshot: Snapshot, facts: Facts, profile: Profile | None = None,
                 lock: RequirementsFile | None = None) -> list[Finding]:
    """Every check: host, target, and with a profile the pre-install checks of its lock (which
    include the build side of its deferred packages)."""
    out = host_findings(facts)
    pins: Mapping[NormalizedName, Pin] = {}
    if profile is not None:
        loaded, _ = _lock_for(profile, lock)
        pins = loaded.for_environment(snapshot.marker_environment) if loaded is not None else {}
    out += target_findings(snapshot, facts, pins)
    if profile is not None:
        out += preinstall_findings(profile, snapshot, facts, lock)
    else:
        build = torch_build(snapshot, facts)
        out += build_findings(facts, torch_cuda=build.cuda if build is not None else None)
    return out

