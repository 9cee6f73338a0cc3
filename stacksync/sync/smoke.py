"""Smoke imports: the profile's modules imported in the target after each phase that changed it; a
failure names the locked package that provides a missing shared library."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stacksync.core import console, runner
from stacksync.core.errors import SyncError
from stacksync.cuda import cudalibs
from stacksync.env.environment import probe
from stacksync.sync.state import State

__all__ = ["smoke", "smoke_phase", "explain_smoke"]


def smoke(python: Path, modules: Sequence[str]) -> list[dict[str, Any]]:
    """Import ``modules`` in the target (``probe.py smoke``); one entry per module."""
    if not modules:
        return []
    data = runner.run_script(python, "smoke", *modules, timeout_var=runner.SMOKE_TIMEOUT_ENV,
                             timeout=runner.timeout_from_env(runner.SMOKE_TIMEOUT_ENV, runner.DEFAULT_SMOKE_TIMEOUT))
    try:
        results = data["modules"]
        assert isinstance(results, list) and all(isinstance(r, dict) and "ok" in r for r in results)
    except (KeyError, TypeError, AssertionError) as exc:
        raise SyncError(f"probe.py smoke in {python} printed an unexpected document ({exc!r})") from exc
    return results


def smoke_phase(state: State, phase: str) -> None:
    """After a phase changed the target: its own smoke imports and those of the phases before it, in
    one process (a rest phase can break torch as well as vllm). What passes here is not imported
    again by verify or by a deferred build's ``imports`` check, unless something changes in between."""
    modules = state.profile.smoke_modules(through=phase)
    failed = [r for r in smoke(state.python, modules) if not r["ok"]]
    if not failed:
        state.smoked.update(modules)
        if modules:
            console.info(f"{phase}: smoke imports ok ({', '.join(modules)})")
        return
    raise SyncError(explain_smoke(state, phase, failed))


def explain_smoke(state: State, phase: str, failed: Sequence[Mapping[str, Any]]) -> str:
    installed = probe(state.python).versions()
    pins = {**state.lock, **state.deferred}
    lines = []
    for r in failed:
        error = " ".join(str(r.get("error") or "").split())  # one line, even for multi-line ImportErrors
        why = cudalibs.explain_missing_library(error, pins, installed)
        lines.append(f"{phase} smoke: import {r['name']} failed: " + (why or f"{error} (fix: invoke sync "
                     f"--profile {state.profile.name}; if the lock is synced, the import needs something "
                     "the lock does not have)"))
    return "\n".join(lines)

