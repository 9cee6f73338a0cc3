"""The JSON receipt of ``invoke sync --report FILE`` (every string redacted)."""

from __future__ import annotations

import datetime as _dt
import json
import socket
import sys
from pathlib import Path
from typing import Any

from stacksync.core.errors import StacksyncError
from stacksync.core.fs import atomic_write_text
from stacksync.core.redact import redact
from stacksync.lock.lockfile import file_sha256
from stacksync.sync.deferred import records as deferred_records
from stacksync.sync.prepare import variant_json
from stacksync.sync.state import Options, Outcome, State

__all__ = ["write_receipt", "sha256_or_none"]


def sha256_or_none(path: Path | None) -> str | None:
    return file_sha256(path) if path is not None and path.is_file() else None


def _manifest_entry(python: Path) -> dict[str, Any] | None:
    """The target's file-level manifest digest (:mod:`stacksync.env.manifest`): two runs compare by one hash."""
    from stacksync.env.manifest import receipt_entry

    try:
        return receipt_entry(python)
    except (StacksyncError, OSError) as exc:
        return {"digest": None, "error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}


def write_receipt(opts: Options, outcome: Outcome, state: State | None, started: _dt.datetime, *,
                   error: str | None = None) -> None:
    """The JSON receipt of ``--report FILE``; every string redacted."""
    receipt: dict[str, Any] = {
        "stacksync_receipt": 1,
        "node": socket.gethostname(),  # invoke fleet-report's row name
        "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "finished": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "profile": opts.profile,
        "verdict": outcome.verdict,
        "summary": outcome.summary,
        "timings_s": outcome.timings,
    }
    if error is not None:
        receipt["error"] = error
    if state is not None:
        receipt.update({
            "profile": state.profile.name,
            "variant": variant_json(state.profile, state.variant_why),
            "lock": {"path": str(state.lock_file.path), "sha256": sha256_or_none(state.lock_file.path),
                     "deferred_path": str(state.deferred_file.path) if state.deferred_file else None,
                     "deferred_sha256": sha256_or_none(state.deferred_file.path if state.deferred_file else None)},
            "target": {"python": str(state.python), "version": state.snapshot.version,
                       "prefix": str(state.snapshot.prefix), "pip": state.snapshot.pip_version,
                       "platform": dict(state.snapshot.platform)},
            "backend": {"name": state.backend.name, "versions": state.backend.versions()},
            "plan": {**state.plan.to_json(),
                     "deferred_sources": {n: s.to_json() for n, s in sorted(state.deferred_sources.items())}},
            "twin": outcome.twin.to_json("lock", "target") if outcome.twin is not None else None,
            "manifest": _manifest_entry(state.python),
            "deferred": deferred_records(state.snapshot.prefix),
        })
    elif outcome.plan is not None:
        receipt["plan"] = outcome.plan.to_json()
    outcome.receipt = receipt
    text = redact(json.dumps(receipt, indent=2, sort_keys=True)) + "\n"
    if opts.report == "-":  # --report -: the receipt on stdout (messages stay on stderr)
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    path = Path(opts.report or "")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
