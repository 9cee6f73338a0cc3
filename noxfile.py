"""nox sessions of this repository. `nox -l` lists them.

`reproduce` and `lock` are stacksync's own (stacksync.cli.nox_sessions), imported as any project's noxfile
imports them; `tests`, `lint`, `bench` and `chaos` are for developing stacksync (bench and chaos drive devtools/).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nox

from stacksync.cli.nox_sessions import lock, reproduce
from stacksync.core.errors import StacksyncError

__all__ = ["lock", "reproduce", "tests", "lint", "bench", "chaos"]

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = False

PYTHON = "3.11"

# devtools/ sits beside this file, outside the package: `python -m nox` finds it through the current
# directory, the `nox` console script (sys.path[0] = its bin folder) did not ("No module named 'devtools'")
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


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
    """The fault suite alone: kill -9 a real sync at every phase and inside pip, kill it at 50 random
    instants that land (STACKSYNC_CHAOS_KILLS), fuzz hostile inputs; prints the table (counts in
    reports/chaos.json) and writes docs/results/chaos.md. Extra pytest options after `--`."""
    from devtools.chaos import main

    if not main(session.posargs, log=session.log):
        session.error("the fault suite failed (see above)")
