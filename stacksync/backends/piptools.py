"""The ``pip-tools`` backend (pip-compile / pip-sync / pip, pinned together in pyproject.toml), the
default: it is what the users' recipes use."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from stacksync.backends.base import ResolveRequest

if TYPE_CHECKING:
    from stacksync.core.runner import Result


__all__ = ["PipTools"]


class PipTools:
    """pip-compile for resolving, pip for downloads and installs, pip-sync for the rest phase."""

    name = "pip-tools"
    cross_target = False  # pip-compile resolves for the interpreter running it
    needs_target_pip = True  # pip installs run as `target -m pip`; pip-sync drives the target's pip

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
        from stacksync.backends.lockhashes import add_index_hashes
        from stacksync.core import runner

        runner.run(self.compile_argv(request), cwd=request.workdir,
                   hint="pip-compile could not resolve the inputs")
        body = (request.workdir / request.output).read_text(encoding="utf-8")
        return add_index_hashes(body, request.index, python_version=request.python_version)

    # --- install / sync ---------------------------------------------------------------------------

    def download(self, python: Path, requirements: Path, dest: Path, index_args: Sequence[str]) -> Result:
        from stacksync.core import runner

        # cwd: `python -m pip` puts the current directory on sys.path, and a project folder holding an
        # *.egg-info (this one) would look installed to pip and pip-sync. Requirement files live in a
        # temporary folder of their own.
        return runner.run([python, "-m", "pip", "download", "--require-hashes", "--only-binary", ":all:",
                           "--no-deps", "--progress-bar", "off", "-d", dest, "-r", requirements, *index_args],
                          cwd=requirements.parent)

    def install(self, python: Path, requirements: Path, find_links: Path, *, only_binary: bool = True,
                no_deps: bool = False, force_reinstall: bool = False, build_isolation: bool = True,
                env: Mapping[str, str] | None = None, stream: bool = False) -> Result:
        from stacksync.core import runner

        argv: list[str | os.PathLike[str]] = [
            python, "-m", "pip", "install", "--require-hashes", "--no-index", "--find-links", find_links,
            "--progress-bar", "off", "-r", requirements]
        argv += ["--only-binary", ":all:"] if only_binary else []
        argv += ["--no-deps"] if no_deps else []
        argv += ["--force-reinstall"] if force_reinstall else []
        # A deferred build must not reuse a wheel pip cached when it was built against another torch.
        argv += [] if build_isolation else ["--no-build-isolation", "--no-cache-dir"]
        return runner.run(argv, env=runner.clean_env(env), stream=stream, cwd=requirements.parent)

    def build_wheel(self, python: Path, requirements: Path, find_links: Path, out_dir: Path, *,
                    env: Mapping[str, str] | None = None, stream: bool = False) -> Result:
        """``pip wheel`` in the target: the sdist's hash checked, built against the target's torch."""
        from stacksync.core import runner

        return runner.run([python, "-m", "pip", "wheel", "--require-hashes", "--no-index", "--find-links", find_links,
                           "--no-deps", "--no-build-isolation", "--no-cache-dir", "--progress-bar", "off",
                           "--wheel-dir", out_dir, "-r", requirements],
                          env=runner.clean_env(env), stream=stream, cwd=requirements.parent)

    def sync(self, python: Path, requirements: Sequence[Path], find_links: Path, *,
             stream: bool = False) -> Result:
        from stacksync.core import runner

        # pip-sync evaluates markers for the interpreter running it, not the target: callers pass
        # files that are already marker-evaluated for the target.
        return runner.run([sys.executable, "-m", "piptools", "sync", "--python-executable", python,
                           "--no-index", "--find-links", find_links,
                           "--pip-args", "--only-binary :all: --require-hashes --progress-bar off",
                           *requirements], stream=stream, cwd=requirements[0].parent)

    def check(self, python: Path) -> Result:
        from stacksync.core import runner

        return runner.run([python, "-I", "-m", "pip", "check"], check=False)

    def install_vcs(self, python: Path, requirements: Path, index_args: Sequence[str], *,
                    stream: bool = False) -> Result:
        from stacksync.core import runner

        return runner.run([python, "-m", "pip", "install", "--no-deps", "--force-reinstall", "--progress-bar", "off",
                           "-r", requirements, *index_args], env=runner.clean_env(), stream=stream,
                          cwd=requirements.parent, hint="could not install the VCS pins (vcs.txt)")

    def ensure_installer(self, python: Path) -> None:
        """pip-sync drives the target's own pip; a venv made by uv has none. ensurepip installs the
        interpreter's bundled pip offline (pip is an installer, shown apart from the twin check)."""
        from stacksync.core import runner

        probe: list[str | os.PathLike[str]] = [python, "-I", "-c", "import pip"]
        limit = runner.timeout_from_env(runner.PROBE_TIMEOUT_ENV, runner.DEFAULT_PROBE_TIMEOUT)
        if runner.run(probe, check=False, timeout=limit, hint=f"set {runner.PROBE_TIMEOUT_ENV}=SECONDS for a slow "
                      "interpreter").returncode != 0:
            runner.run([python, "-I", "-m", "ensurepip", "--default-pip"], hint=f"could not give {python} a pip")

    def create_venv(self, venv: Path, base_python: str) -> None:
        """``python -m venv``: seeds the interpreter's bundled pip, offline."""
        from stacksync.core import runner

        runner.run([base_python, "-m", "venv", venv], hint=f"could not create the venv {venv}")

