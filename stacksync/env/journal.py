"""The sync journal: ``<prefix>/stacksync-journal.json``, beside ``stacksync-state.json``.

Written before the first change a sync makes to a target (what it is about to do: the plan, the
locks' sha256, the phase), rewritten at each phase, removed when the run ends well. A journal found
at the start of a run means an earlier one was killed part-way: the target is reported as
interrupted, repaired (:mod:`stacksync.env.damage`) and never called "in sync" without a real check.

Pure file I/O: every write goes to a temporary file in the same folder, is fsynced, renamed over the
journal, and the folder is fsynced, so a kill at any instant leaves the old journal or the new one.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stacksync.core.fs import atomic_write_text, fsync_dir

__all__ = ["JOURNAL_FILE", "path", "read", "write", "begin", "phase", "finish"]

JOURNAL_FILE = "stacksync-journal.json"
VERSION = 1


def path(prefix: Path) -> Path:
    return Path(prefix) / JOURNAL_FILE


def read(prefix: Path) -> dict[str, Any] | None:
    """The journal left in ``prefix`` (``{}`` for one that cannot be read: still a leftover), or
    ``None`` when there is none."""
    p = path(prefix)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def write(prefix: Path, data: Mapping[str, Any]) -> Path:
    """Replace the journal atomically with ``data`` (fsynced file and folder)."""
    target = path(prefix)
    atomic_write_text(target, json.dumps(dict(data), indent=2, sort_keys=True) + "\n")
    fsync_dir(target.parent)
    return target


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def begin(prefix: Path, *, plan: Mapping[str, Any], lock_sha256: str | None, deferred_sha256: str | None,
          profile: str, steps: list[str]) -> dict[str, Any]:
    """The first journal of a run, written before anything in the target changes."""
    data: dict[str, Any] = {"stacksync_journal": VERSION, "pid": os.getpid(), "started": _now(), "profile": profile,
                            "lock_sha256": lock_sha256, "deferred_sha256": deferred_sha256, "steps": steps,
                            "phase": "begin", "done": [], "plan": dict(plan)}
    write(prefix, data)
    return data


def phase(prefix: Path, data: dict[str, Any], name: str) -> None:
    """Record that phase ``name`` starts (the one before it, if any, finished)."""
    if data.get("phase") not in (None, "begin"):
        data.setdefault("done", []).append(data["phase"])
    data["phase"] = name
    data["updated"] = _now()
    write(prefix, data)


def finish(prefix: Path) -> None:
    """Remove the journal: the run ended with the target as the lock says."""
    path(prefix).unlink(missing_ok=True)
    fsync_dir(Path(prefix))


def describe(data: Mapping[str, Any]) -> str:
    """One phrase for a leftover journal: which run, which phase."""
    if not data:
        return "an unreadable journal"
    done = ", ".join(data.get("done") or []) or "none"
    return (f"a sync started {data.get('started', '?')} (pid {data.get('pid', '?')}, profile "
            f"{data.get('profile', '?')!r}) stopped in phase {data.get('phase', '?')!r} (phases done: {done})")
