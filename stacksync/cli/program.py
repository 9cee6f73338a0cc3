"""The ``stacksync`` command (and ``python -m stacksync``): invoke's :class:`~invoke.program.Program` over
the same tasks as ``invoke`` in a project whose tasks.py imports :data:`stacksync.tasks.ns`, with the
same flags and help (``stacksync --list``, ``stacksync --help sync``, ``stacksync sync -p NAME``).

A plain ``stacksync sync ...`` command line is run without loading invoke (:mod:`stacksync.cli.direct`):
the same task body with the same arguments, about 0.17 s of CPU less per run."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from invoke.program import Program

__all__ = ["BROKEN_PIPE_EXIT", "main", "program"]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("stacksync")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown"


def program() -> Program:
    """invoke's Program over :data:`stacksync.cli.tasks.ns`, with the version looked up only when
    ``--version`` asks for it: finding the installed distribution scans ``sys.path`` (~2-3 ms that every
    other command would pay)."""
    from invoke.program import Program

    from stacksync.cli.tasks import ns

    class _Program(Program):
        def print_version(self) -> None:
            self.version = _version()
            super().print_version()

    return _Program(namespace=ns, name="stacksync", binary="stacksync", binary_names=["stacksync"])


#: the exit status of a command whose reader went away (128 + SIGPIPE, as a shell reports ``cat | head``)
BROKEN_PIPE_EXIT = 141


def main() -> None:
    """Console-script entry point (``[project.scripts]``)."""
    from stacksync.cli import direct

    try:
        if not direct.run(sys.argv[1:]):
            program().run()
    except BrokenPipeError:
        # the reader of stdout went away (``stacksync --help sync | head -3``): stop without a traceback, and
        # point stdout at /dev/null so that the interpreter's last flush at exit does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(BROKEN_PIPE_EXIT) from None
