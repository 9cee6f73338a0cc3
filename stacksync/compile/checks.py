"""What ``invoke compile`` checks in ``requirements.in`` before the resolver runs, and how a resolver
failure is turned back into the ``requirements.in`` line that caused it (pure; no process).

Before: lines no resolver can lock are refused with their ``file:line`` and the fix for that line
(a conda ``name @ file:///croot/...`` path that is not on this machine, an editable, a VCS reference
without a commit). After: pip-compile's / uv's error text names a requirement (``No matching
distribution found for torch==9``, ``Cannot install a and b because these package versions have
conflicting dependencies``, a URL it cannot fetch); :func:`explain_failure` finds the input line that
asks for it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from packaging.utils import canonicalize_name

from stacksync.core.errors import CommandFailed, LockError
from stacksync.lock.lockfile import LockProblems, Pin

__all__ = ["precheck", "explain_failure"]


def _fix_for_local_file(pin: Pin) -> str:
    version = pin.file_version
    if version:
        return f"write {pin.name}=={version} (the version its file name says)"
    return (f"write {pin.name}==VERSION (pip freeze in a conda env prints build paths; "
            "`invoke freeze --from FREEZE --profile NAME` repairs them)")


def precheck(pins: Sequence[Pin]) -> None:
    """Refuse, before resolving, what no resolver can lock; every problem, each with its line."""
    problems: list[LockError] = []
    for pin in pins:
        if pin.editable:
            if pin.is_vcs and pin.commit:
                fix = f"write it without -e, at its commit: {pin.name} @ {pin.url.split('#', 1)[0] if pin.url else ''}"
            elif pin.is_vcs:
                fix = f"pin a commit and drop -e: {pin.name} @ git+URL@<40-hex sha>"
            else:
                fix = (f"commit and push it, then pin {pin.name} @ git+URL@<sha>; or install it separately "
                       "in the twin")
            problems.append(LockError(pin.path, pin.line, f"{pin.requirement}: an editable cannot be locked or "
                                      "hash-checked; the twin installs VCS pins at their commit, not editable", fix))
        elif pin.is_vcs and pin.commit is None:
            rev = f"at {pin.revision!r} (a branch or tag)" if pin.revision else "without a commit"
            problems.append(LockError(pin.path, pin.line, f"{pin.name}: VCS reference {rev}: the lock would move "
                                      "with the branch", f"append @<40-hex commit sha> to the URL of {pin.name}"))
        elif pin.is_local_file and pin.url is not None:
            path = Path(unquote(urlsplit(pin.url).path))
            if not path.exists():
                problems.append(LockError(pin.path, pin.line, f"{pin.name} @ {pin.url}: {path} is not on this "
                                          "machine (a conda build path)", _fix_for_local_file(pin)))
    if problems:
        raise LockProblems(problems)


_NAMED = [
    re.compile(r"No matching distribution found for ([^\s;]+)", re.I),
    re.compile(r"Could not find a version that satisfies the requirement ([^\s;(]+)", re.I),
    re.compile(r"Because (?:only )?([A-Za-z0-9._-]+)", re.I),  # uv: "Because foo==9 was not found..."
    re.compile(r"No solution found when resolving dependencies:.*?\b([A-Za-z0-9._-]+)(?:[=<>!~]=|\s)", re.I | re.S),
    re.compile(r"Cannot install ([A-Za-z0-9._-]+)", re.I),
]


def explain_failure(exc: CommandFailed, pins: Sequence[Pin], tool: str) -> LockError | None:
    """The ``requirements.in`` line a resolver failure is about, as one :class:`LockError` with the
    resolver's own words and a fix; ``None`` when the output names no input line."""
    output = exc.output
    tail = [ln.strip() for ln in output.strip().splitlines() if ln.strip()][-12:]
    by_name = {p.name: p for p in pins}
    candidates: list[str] = []
    for pattern in _NAMED:
        candidates += [m.group(1) for m in pattern.finditer(output)]
    for pin in pins:  # a URL it could not fetch names no project
        if pin.url and pin.url.split("#", 1)[0] in output:
            return LockError(pin.path, pin.line, f"{tool} could not get {pin.name} @ {pin.url}: {_last(tail)}",
                             "check that the URL is reachable from here, or pin a version from the index")
    for raw in candidates:
        name = canonicalize_name(re.split(r"[\[=<>!~;@ ]", raw, maxsplit=1)[0])
        found = by_name.get(name)
        if found is not None:
            return LockError(found.path, found.line, f"{tool} cannot resolve {found.requirement}: {_last(tail)}",
                             _fix_for(found, output))
    for pin in pins:  # a name mentioned anywhere in the last lines
        if any(re.search(rf"\b{re.escape(pin.name)}\b", ln, re.I) or
               re.search(rf"\b{re.escape(pin.name.replace('-', '_'))}\b", ln, re.I) for ln in tail):
            return LockError(pin.path, pin.line, f"{tool} failed on {pin.requirement}: {_last(tail)}",
                             _fix_for(pin, output))
    return None


def _fix_for(pin: Pin, output: str) -> str:
    low = output.lower()
    missing = "no matching distribution" in low or "could not find a version" in low or "was not found" in low
    if missing and pin.version is not None:
        return f"pin a version of {pin.name} the index serves (see the index's page for {pin.name})"
    if missing:
        return f"check the name of {pin.name}, and that the index serves it"
    if "conflict" in low or "resolutionimpossible" in low or "no solution found" in low:
        return f"relax {pin.requirement} (or what it conflicts with) so that both can be installed"
    if pin.version is not None:
        return f"pin a version of {pin.name} the index serves (see the index's page for {pin.name})"
    return f"check the name and version of {pin.name}, and that the index serves it"


def _last(tail: Sequence[str]) -> str:
    for line in reversed(tail):
        if not line.lower().startswith(("hint:", "note:", "[notice]")):
            return line[:300]
    return ""
