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
