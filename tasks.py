"""invoke tasks: thin wrappers that parse options and call stacksync.

`invoke --list` shows them; `invoke --help TASK` shows each option. Errors become one line on
stderr and a non-zero exit (stacksync.edge).
"""

from __future__ import annotations

import json
import sys

from invoke.context import Context
from invoke.tasks import task

from stacksync import console
from stacksync.edge import one_line_errors


@task(help={
    "python": "interpreter or venv to capture (default: the python running invoke)",
    "out": "write to this file instead of stdout",
    "profile": "write locks/<profile>/requirements.in (a starter stack.toml too, if the profile is new)",
    "all": "keep pip, setuptools and wheel",
    "verbose": "show every command started",
})
def freeze(c: Context, python: str = "", out: str = "", profile: str = "", all: bool = False,
           verbose: bool = False) -> None:
    """Capture an environment as sorted, canonical name==version lines."""
    from stacksync.freeze import write_freeze

    with one_line_errors(verbose):
        text, frozen, written = write_freeze(python or sys.executable, out=out or None,
                                             profile_name=profile or None, include_installers=all)
        for warning in frozen.warnings:
            console.warn(warning)
        if written:
            console.info(f"wrote {written} ({len(frozen.lines)} packages)")
        else:
            sys.stdout.write(text)


@task(positional=["a", "b"], help={
    "a": "lock/freeze file, python interpreter, venv folder or profile name",
    "b": "the other side",
    "json": "print JSON instead of a table",
    "all": "count pip, setuptools and wheel differences too",
    "verbose": "show every command started",
})
def diff(c: Context, a: str, b: str, json_: bool = False, all: bool = False, verbose: bool = False) -> None:
    """Compare two environments: exit 0 identical, 1 different, 2 bad input."""
    from stacksync.diff import diff_sides, render

    with one_line_errors(verbose):
        _, _, result = diff_sides(a, b, include_installers=all)
        if json_:
            print(json.dumps(result.to_json(a, b), indent=2))
        else:
            console.out.print(render(result, a, b))
    if not result.identical:
        raise SystemExit(1)


@task(help={
    "python": "interpreter to check (default: the project's .venv, else the python running invoke)",
    "venv": "venv folder to check",
    "profile": "also check this profile's lock against the host before installing",
    "json": "print JSON instead of a list",
    "verbose": "show every command started",
})
def doctor(c: Context, python: str = "", venv: str = "", profile: str = "", json_: bool = False,
           verbose: bool = False) -> None:
    """Diagnose the CUDA / torch / build side of a target: exit 1 when any finding is an error."""
    from stacksync.doctor import diagnose, render

    with one_line_errors(verbose):
        report = diagnose(python=python or None, venv=venv or None, profile=profile or None)
        if json_:
            print(json.dumps(report.to_json(), indent=2))
        else:
            console.out.print(render(report))
    if report.errors:
        raise SystemExit(1)


@task(name="compile", iterable=["upgrade_package"], help={
    "profile": "profile to compile (default: STACKSYNC_PROFILE, else demo)",
    "all": "compile every profile in locks/",
    "upgrade": "ignore the committed pins and pick the newest allowed versions",
    "upgrade-package": "upgrade only this package (repeat the option for more)",
    "check": "do not write: exit 1 with a diff when a committed lock is stale, 0 when fresh",
    "backend": "pip-tools (default), uv or auto",
    "verbose": "show every command started",
})
def compile_(c: Context, profile: str = "", all: bool = False, upgrade: bool = False,
             upgrade_package: list[str] | None = None, check: bool = False, backend: str = "",
             verbose: bool = False) -> None:
    """Write locks/<profile>/requirements.txt (+ deferred.txt): every pin hashed from the index."""
    from stacksync.compile import compile_profiles, report

    with one_line_errors(verbose):
        results = compile_profiles([profile] if profile else [], all_profiles=all, backend=backend or None,
                                   upgrade=upgrade, upgrade_packages=upgrade_package or [], check=check)
        stale = report(results, check=check)
    if stale:
        raise SystemExit(1)


# --- sync: `invoke sync` runs plan, fetch, install-base, sync-rest, install-deferred, verify in order ------

_SYNC_HELP = {
    "profile": "profile whose lock to sync to (default: STACKSYNC_PROFILE, else demo)",
    "python": "target interpreter (default: the project's .venv, created when missing)",
    "venv": "target venv folder (created with the profile's Python when missing)",
    "dry-run": "print the plan and stop; change nothing",
    "yes": "go on without asking when the plan removes or downgrades packages",
    "force": "go on despite doctor's pre-install errors",
    "wait": "wait for another sync of the same target instead of failing",
    "report": "write a JSON receipt to this file",
    "backend": "pip-tools (default), uv or auto",
    "verbose": "show every command started, and pip's output",
    "accept-foreign-lock": "sync a lock that is not stacksync's output for this profile (header, deferred pins)",
}


def _sync(steps: tuple[str, ...], profile: str, python: str, venv: str, dry_run: bool, yes: bool, force: bool,
          wait: bool, report: str, backend: str, verbose: bool, accept_foreign_lock: bool = False) -> None:
    from stacksync import defaults
    from stacksync.sync import Options, run

    def ask(question: str) -> bool:
        return console.err.input(f"{question} [y/N] ").strip().lower() in ("y", "yes")

    with one_line_errors(verbose):
        run(Options(profile=profile or defaults.DEFAULT_PROFILE, python=python or None, venv=venv or None,
                    dry_run=dry_run, yes=yes, force=force, wait=wait, report=report or None,
                    backend=backend or None, verbose=verbose, accept_foreign_lock=accept_foreign_lock,
                    confirm=ask if sys.stdin.isatty() else None),
            steps)


@task(help=_SYNC_HELP)
def sync(c: Context, profile: str = "", python: str = "", venv: str = "", dry_run: bool = False, yes: bool = False,
         force: bool = False, wait: bool = False, report: str = "", backend: str = "", verbose: bool = False,
         accept_foreign_lock: bool = False) -> None:
    """Make the target the exact twin of the profile's lock, in phases; a second run does nothing."""
    _sync(("plan", "fetch", "base", "rest", "deferred", "verify"), profile, python, venv, dry_run, yes, force,
          wait, report, backend, verbose,
          accept_foreign_lock)


@task(help=_SYNC_HELP)
def plan(c: Context, profile: str = "", python: str = "", venv: str = "", dry_run: bool = False, yes: bool = False,
         force: bool = False, wait: bool = False, report: str = "", backend: str = "", verbose: bool = False,
         accept_foreign_lock: bool = False) -> None:
    """Print what a sync would install, upgrade, downgrade, rebuild or remove, per phase."""
    _sync(("plan",), profile, python, venv, dry_run, yes, force, wait, report, backend, verbose,
          accept_foreign_lock)


@task(help=_SYNC_HELP)
def fetch(c: Context, profile: str = "", python: str = "", venv: str = "", dry_run: bool = False, yes: bool = False,
          force: bool = False, wait: bool = False, report: str = "", backend: str = "", verbose: bool = False,
         accept_foreign_lock: bool = False) -> None:
    """Download and hash-verify every artifact the plan needs into the cache; change nothing."""
    _sync(("plan", "fetch"), profile, python, venv, dry_run, yes, force, wait, report, backend, verbose,
          accept_foreign_lock)


@task(help=_SYNC_HELP)
def install_base(c: Context, profile: str = "", python: str = "", venv: str = "", dry_run: bool = False,
                 yes: bool = False, force: bool = False, wait: bool = False, report: str = "", backend: str = "",
                 verbose: bool = False,
         accept_foreign_lock: bool = False) -> None:
    """Install the base packages with their locked dependencies (binary only, hashed); smoke-import them."""
    _sync(("plan", "fetch", "base"), profile, python, venv, dry_run, yes, force, wait, report, backend, verbose,
          accept_foreign_lock)


@task(help=_SYNC_HELP)
def sync_rest(c: Context, profile: str = "", python: str = "", venv: str = "", dry_run: bool = False,
              yes: bool = False, force: bool = False, wait: bool = False, report: str = "", backend: str = "",
              verbose: bool = False,
         accept_foreign_lock: bool = False) -> None:
    """pip-sync the rest of the lock (a hashed install when nothing is removed), keeping built deferred packages."""
    _sync(("plan", "fetch", "rest"), profile, python, venv, dry_run, yes, force, wait, report, backend, verbose,
          accept_foreign_lock)


@task(help=_SYNC_HELP)
def install_deferred(c: Context, profile: str = "", python: str = "", venv: str = "", dry_run: bool = False,
                     yes: bool = False, force: bool = False, wait: bool = False, report: str = "",
                     backend: str = "", verbose: bool = False,
         accept_foreign_lock: bool = False) -> None:
    """Build the deferred packages (e.g. flash-attn) that are missing or built against other base versions."""
    _sync(("plan", "fetch", "deferred"), profile, python, venv, dry_run, yes, force, wait, report, backend,
          verbose, accept_foreign_lock)


@task(help=_SYNC_HELP)
def verify(c: Context, profile: str = "", python: str = "", venv: str = "", dry_run: bool = False,
           yes: bool = False, force: bool = False, wait: bool = False, report: str = "", backend: str = "",
           verbose: bool = False,
         accept_foreign_lock: bool = False) -> None:
    """Check the target: dependencies, twin of the lock, smoke imports; one summary line; exit 1 if not."""
    _sync(("plan", "verify"), profile, python, venv, dry_run, yes, force, wait, report, backend, verbose,
          accept_foreign_lock)
