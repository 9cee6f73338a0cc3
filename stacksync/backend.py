"""Installer backends: the one interface that ``compile`` and every sync phase go through.

A backend turns a request (resolve these inputs; download these pins; install this file into that
interpreter; sync that interpreter to these files) into argv lists and hands them to
:func:`stacksync.runner.run`, the only place that starts processes. The rest of stacksync decides
*what* to do (plans, filtered files, flags such as ``--only-binary``); a backend decides *how* its
tools spell it.

``pip-tools`` (pip-compile / pip-sync / pip, pinned together in pyproject.toml) is the default: it is
what the users' recipes use. ``uv`` is a faster backend behind the same methods. ``auto`` picks uv when
it is installed. Precedence: ``--backend`` > ``STACKSYNC_BACKEND`` > ``stack.toml`` ``backend`` >
``pip-tools``.

Sections below: selection, compile (resolve + hash), install / sync (target interpreters).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .errors import StacksyncError

if TYPE_CHECKING:  # compile section
    from .compile import ResolveRequest
    from .runner import Result

__all__ = ["Backend", "PipTools", "get_backend", "resolve_name"]

BACKEND_ENV = "STACKSYNC_BACKEND"
KNOWN = ("pip-tools", "uv", "auto")


class Backend(Protocol):
    """What compile and the sync phases need from an installer toolchain."""

    name: str

    def versions(self) -> dict[str, str]:
        """Versions of the tools this backend runs (recorded in lock headers and reports)."""
        ...

    # --- compile: resolve + hash (see PipTools) ---
    def compile_lock(self, request: ResolveRequest) -> str:
        """Resolve ``request.inputs`` (files in ``request.workdir``) into a lock body: exact pins sorted
        as pip-compile sorts them, ``--hash=sha256:`` lines for every file of each pinned version,
        ``# via`` annotations, no header and no index / find-links lines. Existing pins in
        ``workdir/output`` are kept unless ``upgrade`` / ``upgrade_packages`` say otherwise."""
        ...

    # --- install / sync: target interpreters (see PipTools) ---
    def download(self, python: Path, requirements: Path, dest: Path, index_args: Sequence[str]) -> Result:
        """Download the hashed pins of ``requirements`` (binary only, no dependencies) into ``dest``
        with the target's own installer, so that wheel tags match the target."""
        ...

    def install(self, python: Path, requirements: Path, find_links: Path, *, only_binary: bool = True,
                no_deps: bool = False, force_reinstall: bool = False, build_isolation: bool = True,
                env: Mapping[str, str] | None = None, stream: bool = False) -> Result:
        """Install ``requirements`` (hash-checked) into ``python``, offline from ``find_links``."""
        ...

    def sync(self, python: Path, requirements: Sequence[Path], find_links: Path, *,
             stream: bool = False) -> Result:
        """Make ``python`` hold exactly ``requirements`` (uninstalling the rest), offline from
        ``find_links``, binary only, hash-checked."""
        ...

    def check(self, python: Path) -> Result:
        """The installer's dependency check of ``python`` (``pip check``); not raising on failure."""
        ...



def uv_executable() -> str | None:
    """The uv binary: the one installed beside this interpreter (``pip install stacksync[uv]``), else
    one on PATH."""
    here = Path(sys.executable).parent / "uv"
    if here.is_file():
        return str(here)
    return shutil.which("uv")


def resolve_name(cli: str | None, profile_backend: str | None) -> str:
    """The backend name after precedence (argument > env > profile > default), ``auto`` resolved."""
    name = cli or os.environ.get(BACKEND_ENV) or profile_backend or "pip-tools"
    if name not in KNOWN:
        raise StacksyncError(f"unknown backend {name!r} (fix: use one of {', '.join(KNOWN)})")
    if name == "auto":
        return "uv" if uv_executable() else "pip-tools"
    return name


class PipTools:
    """pip-compile for resolving, pip for downloads and installs, pip-sync for the rest phase."""

    name = "pip-tools"

    def versions(self) -> dict[str, str]:
        from importlib.metadata import version

        return {"pip": version("pip"), "pip-tools": version("pip-tools")}

    # --- compile ----------------------------------------------------------------------------------

    def compile_argv(self, request: ResolveRequest) -> list[str]:
        """pip-compile without ``--generate-hashes`` (that downloads every file of every pin: 24.5 GB for
        the gpu stack on an index without PEP 658) and with fast-deps (range requests for metadata).
        Same interpreter as stacksync, so the pinned pip / pip-tools pair is the one that runs."""
        argv = [sys.executable, "-m", "piptools", "compile", "--quiet", "--allow-unsafe", "--no-strip-extras",
                "--no-header", "--no-emit-index-url", "--no-emit-trusted-host", "--no-emit-find-links",
                "--newline", "LF", "--pip-args=--use-feature=fast-deps", *request.index.pip_args(),
                "--output-file", request.output]
        if request.upgrade:
            argv.append("--upgrade")
        for name in request.upgrade_packages:
            argv += ["--upgrade-package", name]
        return [*argv, *request.inputs]

    def compile_lock(self, request: ResolveRequest) -> str:
        from . import runner
        from .compile import add_index_hashes

        runner.run(self.compile_argv(request), cwd=request.workdir,
                   hint="pip-compile could not resolve the inputs; the line above says which requirement")
        body = (request.workdir / request.output).read_text(encoding="utf-8")
        return add_index_hashes(body, request.index, python_version=request.python_version)

    # --- install / sync ---------------------------------------------------------------------------

    def download(self, python: Path, requirements: Path, dest: Path, index_args: Sequence[str]) -> Result:
        from . import runner

        # cwd: `python -m pip` puts the current directory on sys.path, and a project folder holding an
        # *.egg-info (this one) would look installed to pip and pip-sync. Requirement files live in a
        # temporary folder of their own.
        return runner.run([python, "-m", "pip", "download", "--require-hashes", "--only-binary", ":all:",
                           "--no-deps", "--progress-bar", "off", "-d", dest, "-r", requirements, *index_args],
                          cwd=requirements.parent)

    def install(self, python: Path, requirements: Path, find_links: Path, *, only_binary: bool = True,
                no_deps: bool = False, force_reinstall: bool = False, build_isolation: bool = True,
                env: Mapping[str, str] | None = None, stream: bool = False) -> Result:
        from . import runner

        argv: list[str | os.PathLike[str]] = [
            python, "-m", "pip", "install", "--require-hashes", "--no-index", "--find-links", find_links,
            "--progress-bar", "off", "-r", requirements]
        argv += ["--only-binary", ":all:"] if only_binary else []
        argv += ["--no-deps"] if no_deps else []
        argv += ["--force-reinstall"] if force_reinstall else []
        # A deferred build must not reuse a wheel pip cached when it was built against another torch.
        argv += [] if build_isolation else ["--no-build-isolation", "--no-cache-dir"]
        return runner.run(argv, env=runner.clean_env(env), stream=stream, cwd=requirements.parent)

    def sync(self, python: Path, requirements: Sequence[Path], find_links: Path, *,
             stream: bool = False) -> Result:
        from . import runner

        # pip-sync evaluates markers for the interpreter running it, not the target: callers pass
        # files that are already marker-evaluated for the target.
        return runner.run([sys.executable, "-m", "piptools", "sync", "--python-executable", python,
                           "--no-index", "--find-links", find_links,
                           "--pip-args", "--only-binary :all: --require-hashes --progress-bar off",
                           *requirements], stream=stream, cwd=requirements[0].parent)

    def check(self, python: Path) -> Result:
        from . import runner

        return runner.run([python, "-I", "-m", "pip", "check"], check=False)


def get_backend(name: str) -> Backend:
    """The backend object for a resolved name (see :func:`resolve_name`)."""
    if name == "pip-tools":
        return PipTools()
    raise StacksyncError(f"backend {name!r} is not available yet (fix: use --backend pip-tools)")
