"""Typed errors. Library code raises these; only the edges (the tasks and nox sessions of
stacksync.cli) turn them into one line and an exit code.

Every error formats itself in ``__str__`` so the one line names the file, the line or key, what was
wanted, what was found, and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class StacksyncError(Exception):
    """Base class. ``exit_code`` is what the edge exits with (2 = bad input, as diff(1) does)."""

    exit_code = 2


@dataclass
class LockError(StacksyncError):
    """A problem in a requirements / lock file at ``path:line``."""

    path: Path | str
    line: int
    message: str
    fix: str = ""

    def __str__(self) -> str:
        fix = f" (fix: {self.fix})" if self.fix else ""
        return f"{self.path}:{self.line}: {self.message}{fix}"


@dataclass
class ProfileError(StacksyncError):
    """A problem in a profile's ``stack.toml`` (or a missing profile)."""

    path: Path | str
    key: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        where = f"{self.path}: {self.key}: " if self.key else f"{self.path}: "
        fix = f" (fix: {self.fix})" if self.fix else ""
        return f"{where}{self.message}{fix}"


@dataclass
class NoProjectFolder(StacksyncError):
    """No project folder: no ``locks/`` in ``cwd`` or above it, no ``$STACKSYNC_PROJECT`` and no
    ``$STACKSYNC_LOCKS_DIR``."""

    cwd: Path

    def __str__(self) -> str:
        return (f"{self.cwd}: not in a stacksync project (no locks/ folder here or in any folder above) "
                "(fix: cd to the folder holding locks/<profile>/, or set STACKSYNC_PROJECT=DIR; start one "
                "with `stacksync freeze --profile NAME`)")


class EmptySetting(StacksyncError):
    """A ``STACKSYNC_*`` setting is set to the empty string (an unset variable expanded in CI)."""

    exit_code = 2

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return (f"{self.name} is set but empty (an unset variable, as in {self.name}=\"$NAME\"?); nothing was "
                f"done (fix: unset {self.name} for the default, or give it a value)")


class CommandFailed(StacksyncError):
    """A spawned program exited non-zero. ``argv`` is already redacted."""

    exit_code = 1

    def __init__(self, argv: list[str], returncode: int, output: str = "", hint: str = "") -> None:
        super().__init__(argv, returncode)
        self.argv = argv
        self.returncode = returncode
        self.output = output
        self.hint = hint

    def __str__(self) -> str:
        import shlex

        tail = _last_meaningful_line(self.output)
        msg = f"command failed with exit code {self.returncode}: {shlex.join(self.argv)}"
        if tail:
            msg += f" -- {tail}"
        if self.hint:
            msg += f" ({self.hint})"
        return msg


class TimedOut(CommandFailed):
    """A spawned program did not finish within its time limit; its whole process group was killed."""

    def __init__(self, argv: list[str], seconds: float, hint: str = "") -> None:
        super().__init__(argv, -9, "", hint)
        self.seconds = seconds

    def __str__(self) -> str:
        import shlex

        msg = f"no answer within {self.seconds:g} s (killed): {shlex.join(self.argv)}"
        return msg + (f" ({self.hint})" if self.hint else "")


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (what ``timeout``, systemd and a CI cancel send), handled as Ctrl-C is: the
    running child's process group is killed and reaped, the journal stays for the next run, and the
    target's lock goes last. The edge exits ``128 + signum`` (143 for SIGTERM, 129 for SIGHUP)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class TargetError(StacksyncError):
    """The target interpreter / venv is missing, wrong, or is stacksync's own interpreter."""


class ProbeError(StacksyncError):
    """A probe script in the target printed something that is not the JSON we expect."""


class IndexUnavailable(StacksyncError):
    """The package index is unreachable, refuses credentials, or lacks a file."""

    exit_code = 1


class SyncError(StacksyncError):
    """A sync phase could not finish (a failed smoke import, a missing build requirement, a twin check
    that does not hold). The message names the package and the fix."""

    exit_code = 1


class FetchError(IndexUnavailable):
    """The fetch phase could not download or hash-verify an artifact; nothing was installed or removed."""


def _last_meaningful_line(output: str) -> str:
    for line in reversed(output.strip().splitlines()):
        line = line.strip()
        if line and not line.startswith(("hint:", "note:")):
            return line[:300]
    return ""


def close_matches(word: str, choices: list[str], n: int = 1, cutoff: float = 0.6) -> list[str]:
    """difflib's ``get_close_matches``, for the "did you mean" of an error's fix (difflib is imported
    when a mistake needs a suggestion, not by every run)."""
    import difflib

    return difflib.get_close_matches(word, choices, n=n, cutoff=cutoff)
