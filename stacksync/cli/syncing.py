"""The sync family's shared body, without invoke: :func:`run_steps` runs the phases a task names, and
:func:`sync` is the ``sync`` task's body. :mod:`stacksync.cli.tasks` wraps them as invoke tasks, and
:mod:`stacksync.cli.direct` runs :func:`sync` for the ``stacksync`` command without loading invoke."""

from __future__ import annotations

import sys
from pathlib import Path

from stacksync.cli.edge import one_line_errors
from stacksync.core import console

__all__ = ["ITERABLE", "SYNC_HELP", "VARIANT_HELP", "run_steps", "sync"]


#: the sync task's options that take a value each time they are given (``--rebuild A --rebuild B``)
ITERABLE = ("rebuild",)

SYNC_HELP = {
    "profile": "profile whose lock to sync to (default: STACKSYNC_PROFILE, else demo)",
    "python": "target interpreter (default: the project's .venv, created when missing)",
    "venv": "target venv folder (created with the profile's Python when missing)",
    "dry-run": "print the plan and stop; change nothing",
    "yes": "go on without asking when the plan removes or downgrades packages",
    "force": "go on despite doctor's pre-install errors",
    "wait": "wait for another sync of the same target instead of failing",
    "report": "write a JSON receipt to this file (-: to stdout; messages stay on stderr)",
    "backend": "pip-tools (default), uv or auto",
    "verbose": "show every command started, and pip's output",
    "accept-foreign-lock": "sync a lock that is not stacksync's output for this profile (header, deferred pins)",
}

VARIANT_HELP = ("a profile with [variants]: sync to this variant's lock (default: the highest CUDA variant the "
                 "target's driver supports, else the cpu one)")


def run_steps(steps: tuple[str, ...], profile: str, python: str, venv: str, dry_run: bool, yes: bool, force: bool,
          wait: bool, report: str, backend: str, verbose: bool, accept_foreign_lock: bool = False, *,
          wheelhouse: str = "", lock: str = "", variant: str = "", json_: bool = False,
          quiet: bool = False, rebuild: list[str] | None = None, no_wait: bool = False,
          noop_stamp: tuple[str | None, str] = (None, "")) -> None:
    from stacksync.core import defaults
    from stacksync.sync.run import run
    from stacksync.sync.state import Options

    def ask(question: str) -> bool:
        return console.err.input(f"{question} [y/N] ").strip().lower() in ("y", "yes")

    console.set_level("quiet" if quiet else "verbose" if verbose else "normal")
    with one_line_errors(verbose):
        if json_ and not dry_run and steps != ("plan",):
            from stacksync.core.errors import StacksyncError

            raise StacksyncError("--json prints the plan as data (fix: invoke plan --json, or add --dry-run)")
        outcome = run(Options(profile=profile or defaults.profile_name(), python=python or None, venv=venv or None,
                    dry_run=dry_run, json=json_, yes=yes, force=force, wait=wait, report=report or None,
                    backend=backend or None, verbose=verbose, accept_foreign_lock=accept_foreign_lock,
                    wheelhouse=wheelhouse or None, confirm=ask if sys.stdin.isatty() else None,
                    lock=Path(lock) if lock else None, variant=variant or None, rebuild=tuple(rebuild or ()),
                    no_wait=no_wait, noop_stamp=noop_stamp[0], noop_key=noop_stamp[1]),
            steps)
        if quiet and outcome.summary and not (json_ or dry_run):
            console.verdict(outcome.summary)  # the one line -q keeps (the others went through info)


def sync(profile: str = "", python: str = "", venv: str = "", dry_run: bool = False, yes: bool = False,
         force: bool = False, wait: bool = False, report: str = "", backend: str = "", wheelhouse: str = "",
         lock: str = "", verbose: bool = False, accept_foreign_lock: bool = False, variant: str = "",
         json_: bool = False, quiet: bool = False, rebuild: list[str] | None = None, no_wait: bool = False) -> None:
    """Make the target the exact twin of the profile's lock, in phases; a second run does nothing."""
    from stacksync.cli.noop import answer

    answered, where, key = answer(dict(profile=profile, python=python, venv=venv, dry_run=dry_run, yes=yes,
                                       force=force, wait=wait, report=report, backend=backend, wheelhouse=wheelhouse,
                                       lock=lock, verbose=verbose, accept_foreign_lock=accept_foreign_lock,
                                       variant=variant, json_=json_, quiet=quiet, rebuild=rebuild, no_wait=no_wait))
    if answered:  # the no-op stamp matched: the full no-op's line, printed without loading the rest
        return
    run_steps(("plan", "fetch", "base", "rest", "deferred", "vcs", "verify"), profile, python, venv, dry_run, yes,
              force, wait, report, backend, verbose, accept_foreign_lock, wheelhouse=wheelhouse, lock=lock,
              variant=variant, json_=json_, quiet=quiet, rebuild=rebuild, no_wait=no_wait, noop_stamp=(where, key))

