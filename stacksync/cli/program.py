"""The ``stacksync`` command (and ``python -m stacksync``): invoke's :class:`~invoke.program.Program` over
the same tasks as ``invoke`` in a project whose tasks.py imports :data:`stacksync.tasks.ns`, with the
same flags and help (``stacksync --list``, ``stacksync --help sync``, ``stacksync sync -p NAME``)."""

from __future__ import annotations

from invoke.program import Program

from stacksync.cli.tasks import ns

__all__ = ["main", "program"]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("stacksync")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown"


class _Program(Program):
    """invoke's Program, with the version looked up when ``--version`` asks for it: finding the
    installed distribution scans ``sys.path`` (~2-3 ms that every other command would pay)."""

    def print_version(self) -> None:
        self.version = _version()
        super().print_version()


def program() -> Program:
    return _Program(namespace=ns, name="stacksync", binary="stacksync", binary_names=["stacksync"])


def main() -> None:
    """Console-script entry point (``[project.scripts]``)."""
    program().run()
