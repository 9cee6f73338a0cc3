"""The ``uv`` backend: the same methods as pip-tools', spelled in uv's flags, and the helpers that
translate between them (index flags, platforms, pip-compile's file layout, wheel tags)."""

from __future__ import annotations

import os
import platform
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from stacksync.backends.base import ResolveRequest
from stacksync.core.errors import FetchError, IndexUnavailable, StacksyncError
from stacksync.lock.variants import normal_machine, platform_admits, split_platform

if TYPE_CHECKING:
    from stacksync.backends.indexapi import IndexFile
    from stacksync.core.runner import Result
    from stacksync.lock.lockfile import Pin


__all__ = [
    "Uv", "index_urls_from_args", "pick_wheel", "pip_compile_layout", "uv_executable",
    "uv_index_args", "uv_python_platform"
]


def uv_executable() -> str | None:
    """The uv binary: the one installed beside this interpreter (``pip install stacksync[uv]``), else
    one on PATH."""
    here = Path(sys.executable).parent / "uv"
    if here.is_file():
        return str(here)
    return shutil.which("uv")


_UV_INDEX_FLAGS = {"--index-url": "--index-url", "--extra-index-url": "--extra-index-url",
                   "--trusted-host": "--allow-insecure-host"}


_UV_PLATFORM_ALIASES = {"linux": "unknown-linux-gnu", "darwin": "apple-darwin", "win32": "pc-windows-msvc"}


_UV_MANYLINUX = range(17, 41)  # the x86_64/aarch64-manylinux_2_NN values uv 0.13 accepts


def uv_index_args(index_args: Sequence[str]) -> list[str]:
    """pip's index options (``IndexConfig.pip_args()``) in uv's spelling. pip looks at every index and
    takes the best version; uv's default (``first-index``) stops at the first index that has the
    project, so with extra indexes uv is told to behave as pip does (same lock from both backends)."""
    out: list[str] = []
    args = list(index_args)
    for flag, value in zip(args[::2], args[1::2], strict=True):
        if flag not in _UV_INDEX_FLAGS:
            raise StacksyncError(f"uv backend: unexpected index option {flag!r} (fix: report this as a bug)")
        out += [_UV_INDEX_FLAGS[flag], value]
    if "--extra-index-url" in args:
        out += ["--index-strategy", "unsafe-best-match"]
    return out


def index_urls_from_args(index_args: Sequence[str]) -> list[str]:
    """The index URLs (``--index-url`` first, then ``--extra-index-url``) of pip-style index options."""
    args = list(index_args)
    pairs = list(zip(args[::2], args[1::2], strict=True))
    return [v for f, v in pairs if f == "--index-url"] + [v for f, v in pairs if f == "--extra-index-url"]


#: the glibc a lock for another Linux is resolved for: manylinux_2_28 (RHEL 8, Ubuntu 20.04 and newer; torch's
#: aarch64 and x86_64 wheels on PyPI need it since 2.6). The target's own glibc is checked at sync (doctor).
FOREIGN_MANYLINUX = "2_28"


def uv_python_platform(platforms: Sequence[str], *, host: str, machine: str, glibc: str | None) -> tuple[str, str]:
    """``--python-platform`` for a profile's ``platforms`` (``linux``, ``linux_aarch64``, ``darwin_arm64``)
    and why.

    On a host the profile admits (or when it lists none) this is the host itself, manylinux at the
    host's glibc: pip-compile resolves for the host, so the same wheels decide the same pins. For
    another platform it is the first entry: its machine (the host's when the entry names none), Linux
    as manylinux_2_28 (:data:`FOREIGN_MANYLINUX`), macOS as uv's default (a supported macOS)."""
    arch = normal_machine(machine)
    if platform_admits(platforms, host, machine):
        target, target_arch = host, arch
    else:
        target, entry_arch = split_platform(platforms[0])
        target_arch = entry_arch or arch
    here = target == host and target_arch == arch
    note = "" if len(platforms) <= 1 or here else (
        f"profile lists platforms {', '.join(platforms)}: the lock is resolved for {platforms[0]} only")
    if here and target == "linux" and glibc and arch in ("x86_64", "aarch64"):
        major, _, minor = glibc.partition(".")
        if major == "2" and minor.isdigit() and int(minor) in _UV_MANYLINUX:
            return f"{arch}-manylinux_2_{minor}", note
    if target == "linux" and not here and target_arch in ("x86_64", "aarch64"):
        return f"{target_arch}-manylinux_{FOREIGN_MANYLINUX}", note
    if target == "darwin" and target_arch not in ("x86_64", "aarch64"):
        target_arch = "aarch64"
    suffix = _UV_PLATFORM_ALIASES.get(target)
    if suffix is None:
        raise StacksyncError(f"uv backend: cannot resolve for platform {target!r} (fix: set platforms in stack.toml "
                             f"to one of {', '.join(_UV_PLATFORM_ALIASES)}, e.g. linux_aarch64)")
    return f"{target_arch}-{suffix}", note


def pick_wheel(files: Sequence[IndexFile], hashes: Sequence[str], supported: Sequence[Tag]) -> IndexFile | None:
    """The file to download for one pin: a wheel whose sha256 the lock lists and whose tags the target
    takes, best tag first (what pip would choose among the lock's files). Files the index publishes
    without a sha256 come last; the download checks them against the lock."""
    wanted = {h.split(":", 1)[1].lower() for h in hashes if h.startswith("sha256:")}
    rank = {t: i for i, t in enumerate(supported)}
    best: tuple[int, int, IndexFile] | None = None
    for f in files:
        if not f.is_wheel or (f.sha256 is not None and f.sha256 not in wanted):
            continue
        try:
            file_tags = parse_wheel_filename(f.filename)[3]
        except InvalidWheelFilename:
            continue
        score = min((rank[t] for t in file_tags if t in rank), default=None)
        if score is None:
            continue
        key = (0 if f.sha256 is not None else 1, score, f)
        if best is None or key[:2] < best[:2]:
            best = key
    return best[2] if best is not None else None


_UNSAFE = frozenset({"setuptools", "distribute", "pip"})


_UNSAFE_COMMENT = "# The following packages are considered to be unsafe in a requirements file:"


def pip_compile_layout(body: str) -> str:
    """A ``uv pip compile`` body laid out as pip-compile lays it out: uv sorts setuptools / pip among
    the other pins, pip-compile moves them to the end under its "unsafe" comment. Nothing else
    differs (same pins, hashes and ``# via`` lines), so both backends write the same lock body."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    blocks: list[list[str]] = []
    for line in body.splitlines():
        if line and not line[0].isspace() and not line.startswith("#") or not blocks:
            blocks.append([line])
        else:
            blocks[-1].append(line)

    def unsafe(block: list[str]) -> bool:
        try:
            return canonicalize_name(Requirement(block[0].split(" \\", 1)[0].strip()).name) in _UNSAFE
        except InvalidRequirement:
            return False

    safe = [line for b in blocks if not unsafe(b) for line in b]
    moved = [line for b in blocks if unsafe(b) for line in b]
    lines = safe + (["", _UNSAFE_COMMENT, *moved] if moved else [])
    return "\n".join(lines) + "\n" if lines else ""


class Uv:
    """uv for everything: ``uv pip compile`` (resolves for any Python X.Y / platform, hashes included),
    ``uv pip install`` / ``uv pip sync`` / ``uv pip check`` against the target (``--python``: the
    target needs no pip). uv has no ``pip download``: the fetch phase reads the lock's wheels straight
    from the index (:mod:`stacksync.backends.indexapi`, sha256 verified) into the cache, touching no target.

    Every command gets ``--no-config`` (and ``UV_NO_CONFIG=1`` from ``runner.clean_env``) and only the
    profile's indexes; uv ignores pip.conf and ``PIP_*``."""

    name = "uv"
    cross_target = True  # resolves for a Python X.Y / platform other than the one running stacksync
    needs_target_pip = False  # uv installs into the target with `--python`: a venv made by uv has no pip

    def __init__(self, executable: str | None = None) -> None:
        exe = executable or uv_executable()
        if exe is None:
            raise StacksyncError("backend uv: uv is not installed (fix: pip install 'stacksync[uv]', "
                                 "or use --backend pip-tools)")
        self.exe = exe
        self._version: str | None = None

    def versions(self) -> dict[str, str]:
        if self._version is None:
            self._version = self._read_version()
        return {"uv": self._version}

    def _read_version(self) -> str:
        # The uv beside this interpreter is the `uv` distribution: its metadata says the version, no
        # process needed (receipts of a no-op sync start nothing).
        if Path(self.exe).parent == Path(sys.executable).parent:
            from importlib.metadata import PackageNotFoundError, version

            try:
                return version("uv")
            except PackageNotFoundError:
                pass
        from stacksync.core import runner

        out = runner.run([self.exe, "--version"]).stdout.split()
        return out[1] if len(out) > 1 else "unknown"

    # --- compile ----------------------------------------------------------------------------------

    def compile_argv(self, request: ResolveRequest) -> list[str]:
        """``uv pip compile`` with hashes, for ``request.python_version`` and the profile's platform.
        uv always keeps setuptools / pip in the lock (pip-compile's ``--allow-unsafe``); ``--python``
        is the interpreter uv may build sdists with for metadata (never downloads one)."""
        host_glibc = platform.libc_ver()[1] if sys.platform == "linux" else None
        plat, _ = uv_python_platform(request.platforms, host=sys.platform, machine=platform.machine(),
                                     glibc=host_glibc or None)
        argv = [self.exe, "pip", "compile", "--quiet", "--no-config", "--no-python-downloads",
                "--python", sys.executable, "--python-version", request.python_version,
                "--python-platform", plat, "--generate-hashes", "--no-header", "--no-strip-extras",
                *uv_index_args(request.index.pip_args()), "--output-file", request.output]
        if request.excludes:
            argv += ["--excludes", request.excludes]
        if request.upgrade:
            argv.append("--upgrade")
        for name in request.upgrade_packages:
            argv += ["--upgrade-package", name]
        return [*argv, *request.inputs]

    def compile_lock(self, request: ResolveRequest) -> str:
        from stacksync.core import console, runner

        _, note = uv_python_platform(request.platforms, host=sys.platform, machine=platform.machine(), glibc=None)
        if note:
            console.warn(f"uv backend: {note}")
        # uv ignores PIP_CERT (kept by clean_env as pip's CA bundle for a private index): same bundle.
        cert = os.environ.get("PIP_CERT")
        env = runner.clean_env({"SSL_CERT_FILE": cert} if cert and not os.environ.get("SSL_CERT_FILE") else None)
        runner.run(self.compile_argv(request), cwd=request.workdir, env=env,
                   hint="uv pip compile could not resolve the inputs")
        # uv hashes the files of the first index that has the project (its index strategy), pip every
        # index's: with a wheel on an extra index and the sdist on the main one, uv listed only the
        # sdist. Both backends take their hashes from the same index lookup (every file of each pinned
        # version on every index, Requires-Python applied), so their locks agree.
        from stacksync.backends.lockhashes import add_index_hashes, strip_hashes

        body = pip_compile_layout((request.workdir / request.output).read_text(encoding="utf-8"))
        return add_index_hashes(strip_hashes(body), request.index, python_version=request.python_version)

    # --- install / sync ---------------------------------------------------------------------------

    def _pip(self, command: str, python: Path) -> list[str | os.PathLike[str]]:
        return [self.exe, "pip", command, "--no-config", "--no-python-downloads", "--python", python]

    def download(self, python: Path, requirements: Path, dest: Path, index_args: Sequence[str]) -> Result:
        """The lock's wheels for the target, read from the index: for each pin, the wheel whose sha256
        the lock lists and whose tags the target takes (``env.tags.supported_tags`` from its probe),
        downloaded to a temporary name, verified, renamed (:func:`stacksync.backends.indexapi.fetch_file`).
        Nothing touches the target; any failure is a :class:`FetchError` and leaves it as it was."""
        import time
        from concurrent.futures import ThreadPoolExecutor

        from stacksync.backends import indexapi
        from stacksync.core.runner import Result
        from stacksync.env.environment import probe
        from stacksync.env.tags import supported_tags
        from stacksync.lock.lockfile import file_sha256, parse

        start = time.perf_counter()
        tail = "nothing was installed or removed"
        snapshot = probe(python)
        supported = supported_tags(snapshot)
        pins = parse(requirements, lock=True).pins
        for pin in pins:
            if pin.version is None:  # `name @ URL`: not on the index's pages
                raise FetchError(f"{pin.where}: {pin.name} is pinned by URL, which the uv backend does not fetch; "
                                 f"{tail} (fix: pin it by version from an index, or sync with --backend pip-tools)")
        urls = index_urls_from_args(index_args)
        try:
            listed = indexapi.files_for_pins(urls, {p.name: p.version or "" for p in pins})
        except IndexUnavailable as exc:
            raise FetchError(f"{requirements.name}: {exc}; {tail}") from None
        chosen: list[tuple[Pin, IndexFile]] = []
        for pin in pins:
            picked = pick_wheel(listed.get(pin.name, []), pin.hashes, supported)
            if picked is None:
                raise FetchError(f"{pin.where}: {pin.display()}: the index has no wheel with a hash the "
                                 f"lock lists for this target (Python {snapshot.python_xy}, {supported[0]}); {tail} "
                                 "(fix: compile the lock for this target's Python and platform, then sync again)")
            chosen.append((pin, picked))

        def get(item: tuple[Pin, IndexFile]) -> Path:
            pin, file = item
            path = indexapi.fetch_file(file, dest, sha256=file.sha256)
            if file.sha256 is None and f"sha256:{file_sha256(path)}" not in pin.hashes:
                path.unlink(missing_ok=True)
                raise indexapi.HashMismatch(f"{file.filename}: sha256 not among the lock's hashes")
            return path

        try:
            with ThreadPoolExecutor(max_workers=max(1, min(indexapi.WORKERS, len(chosen)))) as pool:
                paths = list(pool.map(get, chosen))
        except IndexUnavailable as exc:
            raise FetchError(f"{requirements.name}: downloading the lock's wheels failed: {exc}; {tail}") from None
        return Result(["stacksync-fetch", str(dest), *(p.name for p in paths)], 0, "", "",
                      time.perf_counter() - start)

    def install(self, python: Path, requirements: Path, find_links: Path, *, only_binary: bool = True,
                no_deps: bool = False, force_reinstall: bool = False, build_isolation: bool = True,
                env: Mapping[str, str] | None = None, stream: bool = False) -> Result:
        from stacksync.core import runner

        argv = [*self._pip("install", python), "--require-hashes", "--no-index", "--find-links", find_links,
                "-r", requirements]
        argv += ["--only-binary", ":all:"] if only_binary else []
        argv += ["--no-deps"] if no_deps else []
        argv += ["--reinstall"] if force_reinstall else []
        # A deferred build uses the target's torch and must not reuse a wheel built against another.
        argv += [] if build_isolation else ["--no-build-isolation", "--no-cache"]
        return runner.run(argv, env=runner.clean_env(env), stream=stream, cwd=requirements.parent)

    def sync(self, python: Path, requirements: Sequence[Path], find_links: Path, *, no_deps: bool = False,
             stream: bool = False) -> Result:
        """``uv pip sync`` of several files (it keeps what any of them lists and removes the rest, pip
        and setuptools included). Hashes are verified where the files give them (uv's default); not
        ``--require-hashes``, because the keep file lists installed, unlocked installers (pip) by
        version only, as pip-sync is given them. Every pin of the lock carries hashes (checked when
        the lock is loaded) and comes from the cache only."""
        from stacksync.core import runner

        return runner.run([*self._pip("sync", python), "--no-index", "--find-links", find_links,
                           "--only-binary", ":all:", *requirements], stream=stream, cwd=requirements[0].parent)

    def check(self, python: Path) -> Result:
        from stacksync.core import runner

        return runner.run([*self._pip("check", python)], check=False)

    def install_vcs(self, python: Path, requirements: Path, index_args: Sequence[str], *,
                    stream: bool = False) -> Result:
        from stacksync.core import runner

        return runner.run([*self._pip("install", python), "--no-deps", "--reinstall", "-r", requirements,
                           *uv_index_args(index_args)], env=runner.clean_env(), stream=stream,
                          cwd=requirements.parent, hint="could not install the VCS pins (vcs.txt)")

    def build_wheel(self, python: Path, requirements: Path, find_links: Path, out_dir: Path, *,
                    env: Mapping[str, str] | None = None, stream: bool = False) -> Result:
        """``uv build --wheel --no-build-isolation --python TARGET`` of the sdist the pin names (found
        in ``find_links`` with a sha256 the pin lists: uv build takes a path, not a hashed requirement)."""
        from stacksync.core import runner
        from stacksync.core.errors import FetchError
        from stacksync.lock.lockfile import file_sha256, parse

        pins = parse(requirements, lock=True).pins
        sdist = next((p for pin in pins for p in sorted(find_links.iterdir())
                      if p.is_file() and not p.name.endswith(".whl") and not p.name.startswith(".")
                      and f"sha256:{file_sha256(p)}" in pin.hashes), None)
        if sdist is None:
            raise FetchError(f"{requirements}: no file in {find_links} has a sha256 the pin lists "
                             "(fix: invoke fetch, then sync again)")
        return runner.run([self.exe, "build", "--no-config", "--wheel", "--no-build-isolation", "--python", python,
                           "--out-dir", out_dir, sdist], env=runner.clean_env(env), stream=stream,
                          cwd=requirements.parent)

    def build_sdist(self, python: Path, sdist: Path, out_dir: Path, index_args: Sequence[str],
                    constraints: Path, *, stream: bool = False) -> Result:
        """``uv build --wheel`` of an sdist-only pin, build isolation on, build requirements from the
        index constrained by ``--build-constraint``."""
        from stacksync.core import runner

        return runner.run([self.exe, "build", "--no-config", "--wheel", "--python", python, "--out-dir", out_dir,
                           "--build-constraint", constraints, *uv_index_args(index_args), sdist],
                          env=runner.clean_env(), stream=stream, cwd=out_dir)

    def ensure_installer(self, python: Path) -> None:
        """uv installs with ``--python``: the target needs nothing of it."""

    def create_venv(self, venv: Path, base_python: str) -> None:
        """``uv venv`` (tens of milliseconds where ``python -m venv`` takes seconds): no pip, which
        uv does not need; offline, no interpreter downloaded. A later sync with the pip-tools backend
        says how to add pip."""
        from stacksync.core import runner

        runner.run([self.exe, "venv", "--no-config", "--no-python-downloads", "--quiet", "--python", base_python,
                    venv], hint=f"could not create the venv {venv}")

