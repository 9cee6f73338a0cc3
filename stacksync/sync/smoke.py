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
from stacksync.env.environment import Snapshot, probe, snapshot_from_json
from stacksync.env.probeshare import run_probes
from stacksync.sync.state import State

__all__ = ["smoke", "smoke_and_probe", "smoke_phase", "explain_smoke", "skipped_modules"]


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
    return smoke_and_probe(python, modules, env=False)[0]


def smoke_and_probe(python: Path, modules: Sequence[str], *, env: bool = True
                    ) -> tuple[list[dict[str, Any]], Snapshot | None]:
    """Import ``modules`` in the target and, with ``env``, probe it, in one process
    (``probe.py env+smoke``; the env document read before any import). Inside a run
    (:func:`stacksync.env.probeshare.shared`) the env document is kept for the next probe of the
    target, or taken from an earlier one: then no process starts when there is nothing to import."""
    if not modules and not env:
        return [], None
    commands = (["env"] if env else []) + (["smoke"] if modules else [])
    docs = run_probes(python, commands, *modules, timeout_var=runner.SMOKE_TIMEOUT_ENV,
                      timeout=runner.timeout_from_env(runner.SMOKE_TIMEOUT_ENV, runner.DEFAULT_SMOKE_TIMEOUT))
    snapshot = snapshot_from_json(python, docs["env"]) if env else None
    if not modules:
        return [], snapshot
    try:
        results = docs["smoke"]["modules"]
        assert isinstance(results, list) and all(isinstance(r, dict) and "ok" in r for r in results)
    except (KeyError, TypeError, AssertionError) as exc:
        raise SyncError(f"probe.py smoke in {python} printed an unexpected document ({exc!r})") from exc
    return results, snapshot


def env_wanted_after(state: State, phase: str) -> bool:
    """Whether the next probe of this run's target comes before its next change: the env document
    read with ``phase``'s smoke imports is then reused (verify after the last changing phase, the
    deferred phase's build check after the rest phase); otherwise it would be read for nothing."""
    order = ("base", "rest", "deferred", "vcs")
    later = [p for p in order[order.index(phase) + 1:] if p in state.steps and state.plan.changes(p)]
    if not later:
        return "verify" in state.steps
    return later[0] == "deferred"


def smoke_phase(state: State, phase: str) -> None:
    """After a phase changed the target: its own smoke imports and those of the phases before it, in
    one process (a rest phase can break torch as well as vllm). What passes here is not imported
    again by verify or by a deferred build's ``imports`` check, unless something changes in between."""
    skipped = skipped_modules(state)
    for module, why in sorted(skipped.items()) if phase == "deferred" else ():
        console.warn(f"{phase}: smoke import {module} not run: {why}")
    modules = [m for m in state.profile.smoke_modules(through=phase) if m not in skipped]
    results, _ = smoke_and_probe(state.python, modules, env=env_wanted_after(state, phase))
    failed = [r for r in results if not r["ok"]]
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

