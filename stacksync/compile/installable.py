"""Whether every pin of a lock has an install path on the profile's Python and platform: a wheel the
target takes, or an sdist that the sync builds (stacksync.sync.sdists; deferred packages are built in
their own phase). A pin with neither cannot be synced however the phases run.

:func:`no_install_path` is pure (the index's file listings are given); :func:`check_profile` asks the
index once per pin (the JSON simple API: hashes, nothing downloaded)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from packaging.tags import Tag
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    parse_sdist_filename,
    parse_wheel_filename,
)

from stacksync.backends import indexapi
from stacksync.backends.indexapi import IndexFile
from stacksync.lock.lockfile import Pin, parse
from stacksync.lock.profile import Profile
from stacksync.lock.variants import split_platform

__all__ = ["check_profile", "marker_environment", "no_install_path", "tag_fits_target"]


def marker_environment(python_xy: str, sys_platform: str = "linux", machine: str = "x86_64") -> dict[str, str]:
    """The marker environment of a CPython ``python_xy`` target (for evaluating a lock's markers)."""
    system = {"linux": "Linux", "darwin": "Darwin", "win32": "Windows"}.get(sys_platform, sys_platform)
    return {"python_version": python_xy, "python_full_version": f"{python_xy}.0", "sys_platform": sys_platform,
            "platform_machine": machine, "platform_system": system, "os_name": "nt" if sys_platform == "win32"
            else "posix", "implementation_name": "cpython", "platform_python_implementation": "CPython",
            "platform_release": "", "platform_version": "", "implementation_version": f"{python_xy}.0"}


def tag_fits_target(tag: Tag, python_xy: str, sys_platform: str = "linux", machine: str = "x86_64") -> bool:
    """Whether a CPython ``python_xy`` on ``sys_platform`` / ``machine`` installs a wheel with ``tag``
    (glibc not checked: any manylinux / linux tag of the machine counts)."""
    xy = python_xy.replace(".", "")
    interp, abi, plat = tag.interpreter, tag.abi, tag.platform
    if interp.startswith("py"):
        ok_interp = interp in ("py3", f"py{xy}", "py2.py3") or interp == "py" + xy[0]
    elif interp.startswith("cp3"):
        ok_interp = interp == f"cp{xy}" or (abi == "abi3" and int(interp[3:] or 0) <= int(xy[1:]))
    else:
        ok_interp = False
    ok_abi = abi in ("none", "abi3", f"cp{xy}")
    if plat == "any":
        return ok_interp and ok_abi
    if sys_platform == "linux":
        ok_plat = plat.startswith(("manylinux", "linux", "musllinux")) and plat.endswith(machine)
    elif sys_platform == "darwin":
        ok_plat = plat.startswith("macosx") and (plat.endswith(machine) or plat.endswith("universal2"))
    else:
        ok_plat = plat.startswith("win") and plat.endswith("amd64" if machine in ("x86_64", "AMD64") else machine)
    return ok_interp and ok_abi and ok_plat


def _kind(file: IndexFile, python_xy: str, sys_platform: str, machine: str) -> str | None:
    """``wheel`` (one the target takes), ``sdist``, or ``None`` (a wheel for another target)."""
    try:
        _, _, _, tags = parse_wheel_filename(file.filename)
    except InvalidWheelFilename:
        try:
            parse_sdist_filename(file.filename)
        except InvalidSdistFilename:
            return None
        return "sdist"
    return "wheel" if any(tag_fits_target(t, python_xy, sys_platform, machine) for t in tags) else None


def no_install_path(pins: Iterable[Pin], files: Mapping[NormalizedName, Sequence[IndexFile]], python_xy: str,
                    sys_platform: str = "linux", machine: str = "x86_64") -> list[str]:
    """One line per pin with no file whose sha256 the lock lists that is a wheel the target takes or an
    sdist: ``FILE:LINE: name==version: ...`` with what the index has for it."""
    out: list[str] = []
    for pin in pins:
        if pin.version is None or pin.url is not None:
            continue  # direct references: not on the index's pages
        listed = list(files.get(pin.name, ()))
        hashed = [f for f in listed if f.sha256 is None or f"sha256:{f.sha256}" in pin.hashes]
        kinds = {_kind(f, python_xy, sys_platform, machine) for f in hashed}
        if "wheel" in kinds or "sdist" in kinds:
            continue
        shown = ", ".join(sorted(f.filename for f in listed)[:4]) or "no file of that version"
        out.append(f"{pin.where}: {pin.name}=={pin.version}: no wheel for Python {python_xy} on {sys_platform} "
                   f"{machine} and no sdist among the lock's hashes (the index has: {shown})")
    return out


def check_profile(prof: Profile, machine: str = "x86_64") -> list[str]:
    """:func:`no_install_path` for the profile's lock and deferred file, on each of its platforms."""
    python_xy = prof.python or "3.11"
    problems: list[str] = []
    index = prof.index.expanded(source=str(prof.stack_toml))
    for path in (prof.lock_path, prof.deferred_path):
        if not path.is_file():
            continue
        lock = parse(path, lock=True)
        for entry in prof.platforms or ["linux"]:
            sys_platform, arch = split_platform(entry)  # linux_aarch64: a variant for another machine
            here = arch or machine
            if sys_platform == "darwin" and here == "aarch64":
                here = "arm64"  # macOS's name for it, in markers and wheel tags
            pins = lock.for_environment(marker_environment(python_xy, sys_platform, here))
            files = indexapi.files_for_pins(index, {p.name: p.version for p in pins.values()
                                                    if p.version is not None and p.url is None},
                                            python_version=python_xy)
            problems += no_install_path(pins.values(), files, python_xy, sys_platform, here)
    return problems
