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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stacksync.core.fs import atomic_write_text, fsync_dir

__all__ = ["JOURNAL_FILE", "Journal", "path", "read", "write", "begin", "phase", "finish", "describe"]

JOURNAL_FILE = "stacksync-journal.json"
VERSION = 1


@dataclass
class Journal:
    """One run's journal. A leftover one is read leniently: a field it lacks is ``None`` / empty, and
    one that cannot be read at all is ``Journal(readable=False)`` (still a leftover)."""

    profile: str | None = None
    started: str | None = None
    pid: int | None = None
    lock_sha256: str | None = None
    deferred_sha256: str | None = None
    steps: list[str] = field(default_factory=list)
    plan: dict[str, Any] = field(default_factory=dict)
    #: the phase under way ("begin" until the first one starts) and the phases finished before it
    phase: str | None = None
    done: list[str] = field(default_factory=list)
    updated: str | None = None
    readable: bool = True
    #: ``plan`` as JSON text, encoded by the first write (:func:`_text`) with the object it encodes
    _plan_json: tuple[object, str] | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The on-disk document (``updated`` once a phase has started)."""
        data: dict[str, Any] = {"stacksync_journal": VERSION, "pid": self.pid, "started": self.started,
                                "profile": self.profile, "lock_sha256": self.lock_sha256,
                                "deferred_sha256": self.deferred_sha256, "steps": list(self.steps),
                                "phase": self.phase, "done": list(self.done), "plan": dict(self.plan)}
        if self.updated is not None:
            data["updated"] = self.updated
        return data

    @classmethod
    def from_json(cls, data: Any) -> Journal:
        if not isinstance(data, dict) or not data:
            return cls(readable=False)

        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) else None

        def texts(key: str) -> list[str]:
            value = data.get(key)
            return [str(v) for v in value] if isinstance(value, list) else []

        pid = data.get("pid")
        plan = data.get("plan")
        return cls(profile=text("profile"), started=text("started"),
                   pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
                   lock_sha256=text("lock_sha256"), deferred_sha256=text("deferred_sha256"), steps=texts("steps"),
                   plan=plan if isinstance(plan, dict) else {}, phase=text("phase"), done=texts("done"),
                   updated=text("updated"))


def path(prefix: Path) -> Path:
    return Path(prefix) / JOURNAL_FILE


def read(prefix: Path) -> Journal | None:
    """The journal left in ``prefix`` (``Journal(readable=False)`` for one that cannot be read: still a
    leftover), or ``None`` when there is none."""
    p = path(prefix)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        return Journal(readable=False)
    try:
        data = json.loads(text)
    except ValueError:
        return Journal(readable=False)
    return Journal.from_json(data)


def write(prefix: Path, data: Mapping[str, Any] | Journal) -> Path:
    """Replace the journal atomically with ``data`` (fsynced file and folder). One line: ``indent``
    makes :mod:`json` use its pure-Python encoder, and the journal, with the whole plan in it, is
    written at every phase. A :class:`Journal` is written as its :meth:`~Journal.to_json` document,
    with its plan encoded once (:func:`_text`)."""
    target = path(prefix)
    text = _text(data) if isinstance(data, Journal) else json.dumps(dict(data), sort_keys=True) + "\n"
    atomic_write_text(target, text)
    fsync_dir(target.parent)
    return target


def _text(data: Journal) -> str:
    """``json.dumps(data.to_json(), sort_keys=True) + "\\n"``, byte for byte, with the plan encoded by
    the first write only: a run's plan does not change once the journal is begun, while the phase
    changes up to six times (re-encoding an 800-package plan at each write cost ~2 ms of the ~3 ms it
    took). The encoding is kept with the plan object it was made from; another object is encoded anew."""
    doc = data.to_json()
    kept = data._plan_json
    if kept is None or kept[0] is not data.plan:
        kept = data._plan_json = (data.plan, json.dumps(doc["plan"], sort_keys=True))
    parts = [f"{json.dumps(key)}: " + (kept[1] if key == "plan" else json.dumps(value, sort_keys=True))
             for key, value in sorted(doc.items())]
    return "{" + ", ".join(parts) + "}\n"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def begin(prefix: Path, *, plan: Mapping[str, Any], lock_sha256: str | None, deferred_sha256: str | None,
          profile: str, steps: list[str]) -> Journal:
    """The first journal of a run, written before anything in the target changes."""
    data = Journal(profile=profile, started=_now(), pid=os.getpid(), lock_sha256=lock_sha256,
                   deferred_sha256=deferred_sha256, steps=list(steps), plan=dict(plan), phase="begin")
    write(prefix, data)
    return data


def phase(prefix: Path, data: Journal, name: str) -> None:
    """Record that phase ``name`` starts (the one before it, if any, finished)."""
    if data.phase not in (None, "begin"):
        data.done.append(data.phase)
    data.phase = name
    data.updated = _now()
    write(prefix, data)


def finish(prefix: Path) -> None:
    """Remove the journal: the run ended with the target as the lock says."""
    path(prefix).unlink(missing_ok=True)
    fsync_dir(Path(prefix))


def describe(data: Journal) -> str:
    """One phrase for a leftover journal: which run, which phase."""
    if not data.readable:
        return "an unreadable journal"
    done = ", ".join(data.done) or "none"
    return (f"a sync started {data.started or '?'} (pid {data.pid if data.pid is not None else '?'}, profile "
            f"{data.profile or '?'!r}) stopped in phase {data.phase or '?'!r} (phases done: {done})")
