"""What every installer backend offers: the :class:`Backend` protocol that ``compile`` and every sync
phase go through, and the :class:`ResolveRequest` a backend resolves. The backends:
:mod:`stacksync.backends.piptools`, :mod:`stacksync.backends.uv`; picking one:
:mod:`stacksync.backends.backend`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from stacksync.core.runner import Result
    from stacksync.lock.profile import IndexConfig


__all__ = ["Backend", "ResolveRequest"]


@dataclass(frozen=True)
class ResolveRequest:
    """What a backend resolves. File names are relative to ``workdir`` (so pip-compile's ``# via -r``
    annotations say ``requirements.in``, never a temp path); ``index`` is expanded (credentials in it,
    never shown unredacted); ``python_version`` is X.Y.Z of the interpreter resolved for (X.Y when a
    cross-target backend resolves for the profile's Python); ``platforms`` are the profile's."""

    workdir: Path
    inputs: tuple[str, ...]
    output: str
    index: IndexConfig
    python_version: str
    upgrade: bool = False
    upgrade_packages: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    #: a file in ``workdir`` naming packages left out of the resolution (uv's ``--excludes``): provided
    #: packages whose machine's version no index serves
    excludes: str | None = None


class Backend(Protocol):
    """What compile and the sync phases need from an installer toolchain."""

    name: str
    #: whether compile can resolve for a Python X.Y / platform other than the one running stacksync
    cross_target: bool
    #: whether the target interpreter must have pip (>= 22.2) for install / sync
    needs_target_pip: bool

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

    def sync(self, python: Path, requirements: Sequence[Path], find_links: Path, *, no_deps: bool = False,
             stream: bool = False) -> Result:
        """Make ``python`` hold exactly ``requirements`` (uninstalling the rest), offline from
        ``find_links``, binary only, hash-checked; ``no_deps``: without resolving dependencies."""
        ...

    def check(self, python: Path) -> Result:
        """The installer's dependency check of ``python`` (``pip check``); not raising on failure."""
        ...

    def install_vcs(self, python: Path, requirements: Path, index_args: Sequence[str], *,
                    stream: bool = False) -> Result:
        """Install the VCS pins of ``requirements`` (``name @ git+URL@sha``) at their commit, no
        dependencies, reinstalled; build requirements from the index (no hash covers a checkout)."""
        ...

    def build_wheel(self, python: Path, requirements: Path, find_links: Path, out_dir: Path, *,
                    env: Mapping[str, str] | None = None, stream: bool = False) -> Result:
        """Build the one hashed pin of ``requirements`` (a deferred sdist in ``find_links``) into a wheel
        in ``out_dir`` with the target's interpreter and what is installed in it: no build isolation,
        no dependencies, no index, no cache (a cached wheel may be built against another torch)."""
        ...

    def build_sdist(self, python: Path, sdist: Path, out_dir: Path, index_args: Sequence[str],
                    constraints: Path, *, stream: bool = False) -> Result:
        """Build ``sdist`` (a file whose sha256 the caller checked) into a wheel in ``out_dir`` with the
        target's interpreter, *with* build isolation: its build requirements from the index
        (``index_args``), constrained by ``constraints`` (the lock's versions); no dependencies."""
        ...

    def ensure_installer(self, python: Path) -> None:
        """Give a fresh ``python`` what this backend drives in it (pip for pip-tools; nothing for uv)."""
        ...

    def create_venv(self, venv: Path, base_python: str) -> None:
        """Create the venv ``venv`` from the interpreter ``base_python``, holding what this backend
        needs in it (pip for pip-tools)."""
        ...

