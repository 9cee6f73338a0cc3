"""The ``stacksync`` command (and ``python -m stacksync``): invoke's :class:`~invoke.program.Program` over
the same tasks as ``invoke`` in a project whose tasks.py imports :data:`stacksync.tasks.ns`, with the
same flags and help (``stacksync --list``, ``stacksync --help sync``, ``stacksync sync -p NAME``)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from invoke.program import Program

from stacksync.cli.tasks import ns

__all__ = ["main", "program"]


def _version() -> str:
    try:
        return version("stacksync")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown"


def program() -> Program:
    return Program(namespace=ns, name="stacksync", version=_version(), binary="stacksync",
                   binary_names=["stacksync"])


def main() -> None:
    """Console-script entry point (``[project.scripts]``)."""
    program().run()
