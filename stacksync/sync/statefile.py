"""The target's own files, read strictly before a sync plans: ``<prefix>/stacksync-state.json`` (the
deferred packages' build records, :func:`stacksync.sync.deferred.write_state`) and the journal
(:mod:`stacksync.env.journal`).

stacksync writes both atomically, so a kill never leaves either half-written: one that is not what
stacksync writes (``[]``, garbage, a directory in its place, unreadable) was made by someone else, and
a sync stops with one line naming it and the fix, never rewriting it (a state file rewritten from
``{}`` would drop every other deferred package's build record).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stacksync.core.errors import TargetError
from stacksync.env import journal

__all__ = ["STATE_FILE", "STATE_KEY", "LocalStateError", "read_state_file", "check_local_files"]

STATE_FILE = "stacksync-state.json"
STATE_KEY = "deferred"


class LocalStateError(TargetError):
    """A state file or journal in the target that stacksync did not write as it is."""

    exit_code = 1


def _state_fix(path: Path) -> str:
    return (f"fix: move it away (mv {path} {path}.bad); the next `invoke sync` records the deferred packages "
            "anew, and `invoke sync --rebuild NAME` rebuilds one you do not trust")


def read_state_file(prefix: Path) -> dict[str, Any]:
    """The state document of the target at ``prefix`` (``{}`` when there is none). Raises
    :class:`LocalStateError` for one that is unreadable or not a state document."""
    path = Path(prefix) / STATE_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or type(exc).__name__
        raise LocalStateError(f"{path}: cannot read the target's build records ({why}) ({_state_fix(path)})") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise LocalStateError(f"{path}: not a stacksync state file (invalid JSON: {exc}) "
                              f"({_state_fix(path)})") from None
    problem = _state_problem(data)
    if problem:
        raise LocalStateError(f"{path}: not a stacksync state file ({problem}) ({_state_fix(path)})")
    return data  # type: ignore[no-any-return]


def _state_problem(data: Any) -> str:
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not an object"
    records = data.get(STATE_KEY, {})
    if not isinstance(records, dict):
        return f"{STATE_KEY!r} is a {type(records).__name__}, not an object"
    for name, record in records.items():
        if not isinstance(record, dict):
            return f"the record of {name!r} is a {type(record).__name__}, not an object"
        if not isinstance(record.get("version"), str):
            return f"the record of {name!r} has no version"
        against = record.get("built_against")
        if not isinstance(against, dict) or not all(isinstance(v, str) for v in against.values()):
            return f"the record of {name!r} has no built_against table of versions"
    return ""


def check_local_files(prefix: Path) -> None:
    """Refuse a target whose state file or journal stacksync did not write as it is."""
    read_state_file(prefix)
    path = journal.path(prefix)
    left = journal.read(prefix)
    if left is not None and not left.readable:
        what = "a directory" if path.is_dir() else "not a journal stacksync writes"
        raise LocalStateError(
            f"{path}: {what}; it would say whether an earlier sync of this target was interrupted (fix: check "
            f"that no stacksync run is under way, remove it (rm -r {path}), then `invoke verify --files` and "
            "`invoke sync`: they still find what an interrupted pip left)")
