"""nox sessions: thin wrappers over stacksync. `nox -l` lists them.

Fresh venvs prove that a lock rebuilds from nothing; the install logic is the same stacksync code
that `invoke sync` runs. The venv backend is nox's: virtualenv by default, `nox -db uv` for uv;
reproduce uses uv when the stacksync backend is uv (`-- --backend uv`, STACKSYNC_BACKEND, stack.toml).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nox

from stacksync.backends.backend import reproduce_venv_backend
from stacksync.core.errors import StacksyncError
from stacksync.sync.reproduce import selected_profiles

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = False

PYTHON = "3.11"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the pytest suite (the same command README gives)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff and strict mypy over stacksync/, tasks.py and noxfile.py."""
    session.install("-e", ".[dev]")
    session.run("ruff", "check", "stacksync", "tasks.py", "noxfile.py", "tests")
    session.run("mypy")


@nox.session(venv_backend=reproduce_venv_backend(sys.argv))
@nox.parametrize("python,profile", [nox.param(py, name, id=f"profile='{name}'") for py, name in selected_profiles()])
def reproduce(session: nox.Session, profile: str) -> None:
    """Rebuild a profile's lock in a fresh venv and prove it is the exact twin (-- --profile X, --force)."""
    from stacksync.lock import profile as profile_mod
    from stacksync.sync.reproduce import hardware_skip_reason, parse_posargs, summary
    from stacksync.sync.reproduce import reproduce as run_reproduce

    try:
        args = parse_posargs(session.posargs)
        unknown = [p for p in args.profiles if p not in profile_mod.available()]
        if unknown:
            profile_mod.load(unknown[0])  # raises the one-line "unknown profile" error with its fix
        if args.profiles and profile not in args.profiles:
            session.skip(f"not selected (-- --profile {' '.join(args.profiles)})")
        reason = hardware_skip_reason(profile_mod.load(profile))
        if reason and not args.force:
            session.skip(reason)
        result = run_reproduce(profile, Path(session.virtualenv.location), venv_backend=session.venv_backend,
                               backend=args.backend, force=args.force)
    except StacksyncError as exc:
        session.error(str(exc))
    session.log(summary(result.report))
    session.log(f"report: {result.report_path}")


@nox.session(python=False)
def lock(session: nox.Session) -> None:
    """Regenerate every profile's hashed lock (`-- --check`: exit non-zero when one is stale)."""
    from stacksync.compile.compiler import compile_profiles, report

    check = "--check" in session.posargs
    try:
        stale = report(compile_profiles([], all_profiles=True, check=check), check=check)
    except StacksyncError as exc:
        session.error(str(exc))
    if stale:
        session.error("stale lock(s): run `nox -s lock` (or `invoke compile --all`) and commit the result")


@nox.session(python=False)
def bench(session: nox.Session) -> None:
    """Benchmarks against the bare tools (-- --runs 5 --case noop|cold|compile|verify --quick
    --with-bare-pip-compile --verify-venv DIR); prints the table, writes reports/bench.json."""
    from devtools.bench import main

    try:
        failed = main(session.posargs, log=session.log)
    except StacksyncError as exc:
        session.error(str(exc))
    if failed:
        session.error("a benchmark contender failed (see its row)")


@nox.session(python=False)
def chaos(session: nox.Session) -> None:
    """The fault suite alone: kill -9 a real sync at every phase and inside pip, fuzz hostile inputs;
    prints the table (counts in reports/chaos.json). Extra pytest options after `--`."""
    from devtools.chaos import main

    if not main(session.posargs, log=session.log):
        session.error("the fault suite failed (see above)")
