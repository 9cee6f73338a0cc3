"""nox sessions: thin wrappers over stacksync. `nox -l` lists them.

Fresh venvs prove that a lock rebuilds from nothing; the install logic is the same stacksync code
that `invoke sync` runs.
"""

from __future__ import annotations

import nox

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
    session.run("ruff", "check", "stacksync", "tasks.py", "noxfile.py", "scripts", "tests")
    session.run("mypy")
