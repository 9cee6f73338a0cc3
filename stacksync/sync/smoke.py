"""Smoke imports: the profile's modules imported in the target after each phase that changed it; a
failure names the locked package that provides a missing shared library."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stacksync.build.buildkey import cuda_build_skipped
from stacksync.core import console, runner
from stacksync.core.errors import SyncError
from stacksync.cuda import cudalibs
from stacksync.env.environment import probe
from stacksync.sync.state import State

__all__ = ["smoke", "smoke_phase", "explain_smoke", "skipped_modules"]


def skipped_modules(state: State, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Deferred smoke modules not imported, with why: those of a package built without its CUDA part
    (``FLASH_ATTENTION_SKIP_CUDA_BUILD=TRUE`` on a GPU-less host: ``import flash_attn`` needs the CUDA
    extension that was not built)."""
    env = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for d in state.profile.deferred:
        why = cuda_build_skipped(d.name, d.build_env, env)
        if why is None:
            continue
        for module in state.profile.smoke.get("deferred", ()):
            if module.split(".")[0] == d.name.replace("-", "_"):
                out[module] = f"{d.name} built without its CUDA part ({why})"
    return out


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
    skipped = skipped_modules(state)
    for module, why in sorted(skipped.items()) if phase == "deferred" else ():
        console.warn(f"{phase}: smoke import {module} not run: {why}")
    modules = [m for m in state.profile.smoke_modules(through=phase) if m not in skipped]
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
    deferred_modules = set(state.profile.smoke.get("deferred", ()))
    built = sorted(d.name for d in state.profile.deferred if d.name in installed)
    lines = []
    for r in failed:
        error = " ".join(str(r.get("error") or "").split())  # one line, even for multi-line ImportErrors
        why = cudalibs.explain_missing_library(error, pins, installed)
        if not why and r["name"] in deferred_modules and built:
            # A deferred build that imports wrong (built against another torch, a record that claims
            # the wrong build): a plain sync keeps it; only a rebuild replaces it.
            why = (f"{error} (fix: build it again from its sdist: invoke sync --profile {state.profile.name} "
                   + " ".join(f"--rebuild {n}" for n in built) + ")")
        lines.append(f"{phase} smoke: import {r['name']} failed: " + (why or f"{error} (fix: invoke sync "
                     f"--profile {state.profile.name}; if the lock is synced, the import needs something "
                     "the lock does not have)"))
    return "\n".join(lines)

