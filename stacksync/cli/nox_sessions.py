"""nox sessions a project runs with stacksync: ``reproduce`` (rebuild each profile's lock in a fresh venv and
prove the twin) and ``lock`` (regenerate every profile's lock; ``-- --check`` in CI).

A project's ``noxfile.py`` imports them (importing registers the sessions with nox)::

    from stacksync.cli.nox_sessions import lock, reproduce

    __all__ = ["lock", "reproduce"]

Then ``nox -l`` lists them, ``nox -s "reproduce(profile='NAME')"`` runs one. They run in the project folder
(the folder holding ``locks/``), where nox reads the noxfile.

The venv backend is nox's: virtualenv by default, ``nox -db uv`` for uv; reproduce uses uv when the
stacksync backend is uv (``-- --backend uv``, STACKSYNC_BACKEND, stack.toml).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nox

from stacksync.backends.backend import reproduce_venv_backend
from stacksync.core.errors import StacksyncError
from stacksync.sync.reproduce import selected_profiles

__all__ = ["lock", "reproduce"]


@nox.session(venv_backend=reproduce_venv_backend(sys.argv))
@nox.parametrize("python,profile", [nox.param(py, name, id=f"profile='{name}'") for py, name in selected_profiles()])
def reproduce(session: nox.Session, profile: str) -> None:
    """Rebuild a profile's lock in a fresh venv and prove the exact twin (-- --profile X, --force, --variant V)."""
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
        reason = hardware_skip_reason(profile_mod.load(profile), variant=args.variant)
        if reason and not args.force:
            session.skip(reason)
        result = run_reproduce(profile, Path(session.virtualenv.location), venv_backend=session.venv_backend,
                               backend=args.backend, force=args.force, variant=args.variant)
    except StacksyncError as exc:
        session.error(str(exc))
    session.log(summary(result.report))
    session.log(f"report: {result.report_path}")


@nox.session(python=False)
def lock(session: nox.Session) -> None:
    """Regenerate every profile's hashed lock (`-- --check`: exit non-zero when one is stale; `-- --skip NAME`:
    leave that profile out, e.g. an example that needs the network of its own machines)."""
    from stacksync.compile.compiler import compile_profiles, report
    from stacksync.lock import profile as profile_mod

    check = "--check" in session.posargs
    args = list(session.posargs)
    skip = {args[i + 1] for i, a in enumerate(args[:-1]) if a == "--skip"}
    try:
        names = [n for n in profile_mod.available() if n not in skip]
        if not names:
            session.skip(f"every profile skipped (--skip {' '.join(sorted(skip))})")
        stale = report(compile_profiles(names, check=check), check=check)
    except StacksyncError as exc:
        session.error(str(exc))
    if stale:
        session.error("stale lock(s): run `nox -s lock` (or `invoke compile --all`) and commit the result")
