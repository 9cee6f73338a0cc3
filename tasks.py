"""invoke tasks: thin wrappers that parse options and call stacksync.

`invoke --list` shows them; `invoke --help TASK` shows each option. Errors become one line on
stderr and a non-zero exit (stacksync.edge).
"""

from __future__ import annotations

import json
import sys

from invoke import task
from invoke.context import Context

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
