"""The one answer to "can this target install this wheel": the target's wheel tags from its probe
snapshot (packaging.tags), and a check of a wheel file name against them.

The interpreter part (``cp311``, ``cp313t``, ``abi3``, ``py3``) comes from the target's version and
SOABI. The platform part comes from the target's probe where it says enough (Linux with glibc: the
``manylinux`` tags its glibc takes, newest first, with the legacy ``manylinux2014`` / ``2010`` / ``1``
aliases, then ``linux_<arch>``; macOS: ``packaging.tags.mac_platforms`` for its version and arch);
otherwise (musl, Windows) from ``packaging.tags.platform_tags()``, which reads this host: the target is an
interpreter on this host, so it has the same C library.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from packaging import tags
from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from stacksync.env.environment import Snapshot

__all__ = ["cpython_tags", "describe", "supported_tags", "wheel_fits"]

# glibc versions with a legacy manylinux name (PEP 600), and the architectures each was defined for.
_LEGACY = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}
_LEGACY_ARCHS = {"manylinux2014": {"x86_64", "i686", "aarch64", "armv7l", "ppc64", "ppc64le", "s390x"},
                 "manylinux2010": {"x86_64", "i686"}, "manylinux1": {"x86_64", "i686"}}


def _arch(snapshot: Snapshot) -> str:
    """``x86_64`` / ``aarch64`` / ``i686``: from ``sysconfig.get_platform()`` in the target (a 32-bit
    Python on a 64-bit kernel says ``linux-i686`` there while ``platform.machine()`` says ``x86_64``)."""
    platform_tag = snapshot.platform_tag or ""
    if platform_tag.startswith("linux-"):
        return platform_tag.split("-", 1)[1].replace("-", "_").replace(".", "_")
    return str(snapshot.platform.get("machine") or snapshot.marker_environment.get("platform_machine", ""))


def _manylinux(glibc: tuple[int, int], arch: str) -> Iterator[str]:
    """``manylinux_2_<minor>_<arch>`` for every glibc up to the target's, newest first (PEP 600), with
    the legacy aliases where they apply (what packaging.tags yields for the running interpreter)."""
    floor = 4 if arch in {"x86_64", "i686"} else 16
    for minor in range(glibc[1], floor, -1):
        yield f"manylinux_2_{minor}_{arch}"
        legacy = _LEGACY.get((2, minor))
        if legacy is not None and arch in _LEGACY_ARCHS[legacy]:
            yield f"{legacy}_{arch}"


def _platforms(snapshot: Snapshot) -> list[str]:
    env = snapshot.marker_environment
    glibc = str(snapshot.platform.get("glibc") or "")
    arch = _arch(snapshot)
    if env.get("sys_platform") == "linux" and glibc and arch:
        try:
            major, minor = (int(x) for x in glibc.split(".")[:2])
        except ValueError:
            pass
        else:
            if major == 2:
                return [*_manylinux((2, minor), arch), f"linux_{arch}"]
    if env.get("sys_platform") == "darwin" and arch:
        mac = str(snapshot.platform.get("mac_version") or "")
        if not mac and (snapshot.platform_tag or "").startswith("macosx-"):
            mac = (snapshot.platform_tag or "").split("-")[1]
        try:
            version = tuple(int(x) for x in mac.split(".")[:2])
        except ValueError:
            version = ()
        if len(version) == 2:  # what packaging.tags.mac_platforms yields on that Mac
            return list(tags.mac_platforms((version[0], version[1]), "arm64" if arch == "aarch64" else arch))
    host = list(tags.platform_tags())
    if arch:  # a target of another architecture than the tool's Python: keep its own
        own = [p for p in host if p.endswith(f"_{arch}")]
        return own or host
    return host


def cpython_tags(python_xy: str, soabi: str | None, platforms: Sequence[str]) -> list[Tag]:
    """The tags a CPython ``python_xy`` with ``soabi`` installs on ``platforms``, most preferred first."""
    major, minor = (int(x) for x in python_xy.split(".")[:2])
    interpreter = f"cp{major}{minor}"
    abi = interpreter
    if soabi and soabi.startswith("cpython-"):
        abi = "cp" + soabi.split("-")[1]  # cpython-313t-x86_64-linux-gnu -> cp313t
    return [*tags.cpython_tags((major, minor), [abi], platforms),
            *tags.compatible_tags((major, minor), interpreter, platforms)]


def supported_tags(snapshot: Snapshot) -> list[Tag]:
    """The wheel tags the probed target installs, most preferred first (pip's order)."""
    return cpython_tags(snapshot.python_xy, snapshot.soabi, _platforms(snapshot))


def wheel_fits(filename: str, supported: Sequence[Tag] | frozenset[Tag]) -> bool:
    """Whether a wheel named ``filename`` installs on a target with ``supported`` tags (any of the
    name's tags is supported). Not a wheel name: ``False``."""
    try:
        file_tags = parse_wheel_filename(filename)[3]
    except InvalidWheelFilename:
        return False
    have = supported if isinstance(supported, frozenset) else frozenset(supported)
    return not have.isdisjoint(file_tags)


def describe(snapshot: Snapshot) -> str:
    """The target's platform and the wheels it takes, in words: ``linux_aarch64 (glibc 2.35): takes
    cp311-cp311-manylinux_2_35_aarch64 wheels first (N tags)`` (what a fetch for it downloads)."""
    env = snapshot.marker_environment
    machine = str(env.get("platform_machine", ""))
    name = f"{env.get('sys_platform', '')}_{machine}" if machine else str(env.get("sys_platform", ""))
    glibc, mac = snapshot.platform.get("glibc"), snapshot.platform.get("mac_version")
    libc = f" (glibc {glibc})" if glibc else f" (macOS {mac})" if mac else ""
    supported = supported_tags(snapshot)
    return f"{name}{libc}: takes {supported[0]} wheels first ({len(supported)} tags)"
