"""``invoke sync``: make a target environment the exact twin of a profile's lock, in phases.

Plain functions chained in order (nox's workflow style), each also usable alone:

1. :func:`prepare`     find or create the target, refuse the wrong one, lock it, probe it, plan
                        (:mod:`stacksync.sync.plan`, pure). ``--dry-run`` stops after printing the plan.
2. :func:`preflight`   doctor's pre-install checks and the confirmation of removals / downgrades.
3. :func:`fetch`       download and hash-verify every artifact the plan needs into the cache *before
                        anything is uninstalled*; every later install runs offline from it.
4. :func:`install_base` base packages and their locked dependencies, binary only, hash-checked; smoke.
5. :func:`sync_rest`   pip-sync of the lock plus the deferred packages already satisfied (a hashed
                        install when nothing is removed); smoke of the phases so far.
6. :func:`install_deferred` build what is not satisfied, without build isolation; record what it was
                        built against in ``<prefix>/stacksync-state.json``; smoke (:mod:`stacksync.sync.deferred`).
7. :func:`verify`      dependency check, twin check, smoke imports; one summary line; JSON receipt.

This module holds the driver; the steps live in :mod:`~stacksync.sync.prepare` (prepare, preflight),
:mod:`~stacksync.sync.fetch`, :mod:`~stacksync.sync.phases` (base, rest), :mod:`~stacksync.sync.deferred`,
:mod:`~stacksync.sync.verify` and :mod:`~stacksync.sync.receipt`.

A synced target re-plans to nothing: :func:`run` then prints "already in sync" and starts no pip
process at all (the probe and the lock decide). The backend (``stacksync.backends.base.Backend``) builds every pip /
pip-sync command; this module decides what to run and in which order.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack

from stacksync.core import console, faults, stamp
from stacksync.core.errors import StacksyncError
from stacksync.env import probeshare
from stacksync.sync import provenance, repair, vcsphase
from stacksync.sync.deferred import adopt_unrecorded, install_deferred
from stacksync.sync.prepare import preflight, prepare, scope_of
from stacksync.sync.state import STEPS, Options, Outcome, State
from stacksync.sync.verify import verify

__all__ = ["STEPS", "Options", "Outcome", "run"]  # run(opts: Options, steps) -> Outcome

# ------------------------------------------------------------------------------------------- entry point

def run(opts: Options, steps: Sequence[str] = STEPS) -> Outcome:
    """Run ``steps`` (a subset of :data:`STEPS`, in that order) against the target of ``opts``.
    ``plan`` is always done; ``--dry-run`` stops after it. Raises :class:`StacksyncError` subclasses."""
    unknown = set(steps) - set(STEPS)
    if unknown:
        raise StacksyncError(f"unknown sync step(s) {', '.join(sorted(unknown))} (fix: use {', '.join(STEPS)})")
    outcome = Outcome()
    started = _dt.datetime.now(_dt.timezone.utc)
    started_ns = time.time_ns()
    holder: list[State] = []
    with ExitStack() as stack:
        stack.enter_context(probeshare.shared())  # one run: facts probed once are reused until a change
        # The sync task's request: what this run reads and prints is kept for a no-op stamp.
        recorder = stack.enter_context(stamp.recording()) if opts.noop_stamp and tuple(steps) == STEPS else None
        printed: list[tuple[str, str]] = []
        if recorder is not None:
            console.recorded(printed)
            stack.callback(console.recorded, None)
        try:
            holder.append(prepare(opts, tuple(s for s in STEPS if s in steps or s == "plan"), outcome, stack))
            _drive(holder[0])
        except StacksyncError as exc:
            from stacksync.sync.receipt import write_receipt  # lazy: start-up cost (only with --report)

            outcome.verdict = "failed"
            outcome.summary = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if opts.report:
                write_receipt(opts, outcome, holder[0] if holder else None, started, error=str(exc))
            raise
        if opts.report:
            from stacksync.sync.receipt import write_receipt  # lazy: start-up cost (only with --report)

            write_receipt(opts, outcome, holder[0], started)
        if recorder is not None:  # while the target's lock is held: nothing changed it since it was read
            recorder.active = False
            console.recorded(None)
            from stacksync.sync.noopstamp import write_stamp  # lazy: only the sync task's runs

            write_stamp(holder[0], list(recorder.paths), printed, started_ns, sorted(recorder.written),
                        recorder.processes, first=recorder.first)
    return outcome


def _drive(state: State) -> None:
    opts, plan, outcome, steps = state.opts, state.plan, state.outcome, state.steps
    acting = [s for s in ("base", "rest", "deferred", "vcs") if s in steps]
    pending = [a for s in scope_of(steps) for a in plan.changes(s)]
    if opts.dry_run or steps == ("plan",):
        outcome.verdict, outcome.summary = "planned", f"plan: {plan.summary()}"
        return
    if not pending and not (state.damage.found and scope_of(steps)):
        # The no-op path: no pip, no doctor; what the probe and the lock say is enough (and the
        # damage check found nothing an interrupted run left).
        if "deferred" in acting:
            adopt_unrecorded(state)
        if acting:  # installed artifacts confirmed by evidence: recorded, so the next check is a stat
            provenance.adopt(state.snapshot, state.provenance)
        if scope_of(steps):
            outcome.verdict = "in-sync"
            scope = scope_of(steps)
            what = "" if len(scope) >= 3 else f"{' and '.join(scope)} phase{'s' if len(scope) > 1 else ''} "
            outcome.summary = (f"{state.python}: {what}already in sync with {state.lock_file.path} "
                               f"({len(state.lock) + len(state.deferred) + len(state.vcs)} packages); nothing to do")
            console.info(outcome.summary)
        if "verify" in steps and not scope_of(steps):
            _timed(state, "verify", lambda: verify(state, smoke=True))
        elif "verify" in steps:
            # A re-sync: the twin and dependency checks come from the probe already taken; the smoke
            # imports (seconds for torch) are `invoke verify`'s job, not the no-op path's.
            _timed(state, "verify", lambda: verify(state, smoke=False, snapshot=state.snapshot, quiet=True),
                   show=False)
        return
    # lazy: start-up cost (a no-op sync never fetches or installs)
    from stacksync.sync.fetch import fetch
    from stacksync.sync.phases import install_base, sync_rest
    from stacksync.sync.receipt import sha256_or_none

    _timed(state, "preflight", lambda: preflight(state))
    _timed(state, "fetch", lambda: fetch(state))
    if acting:  # the first change: journal first, then the debris of an interrupted run cleared
        state.journal = repair.begin(state.snapshot.prefix, state.damage, plan=state.plan.to_json(),
                                     lock_sha256=sha256_or_none(state.lock_file.path), profile=state.profile.name,
                                     deferred_sha256=sha256_or_none(state.deferred_file.path if state.deferred_file
                                                                  else None), steps=list(steps))
    if "base" in steps:
        _timed(state, "base", lambda: install_base(state))
    if "rest" in steps:
        _timed(state, "rest", lambda: sync_rest(state))
    if "deferred" in steps:
        _timed(state, "deferred", lambda: install_deferred(state))
    if "vcs" in steps:
        _timed(state, "vcs", lambda: vcsphase.install(state, state.vcs))
    if acting:
        kept = [a.name for a in state.plan.actions() if a.kind == "keep"]
        provenance.adopt(state.snapshot, state.provenance, kept)
    outcome.verdict = "synced" if acting else "fetched"
    outcome.summary = f"{state.python}: {outcome.verdict} ({plan.summary()})"
    if "verify" in steps:
        _timed(state, "verify", lambda: verify(state, smoke=True))
    else:
        console.info(outcome.summary)
    faults.point("after:verify")
    repair.end(state.snapshot.prefix, state.journal)


def _timed(state: State, name: str, step: Callable[[], object], *, show: bool = True) -> None:
    """Run one phase and keep its time; a phase that ends says how long it took (not the no-op's check)."""
    faults.point(f"before:{name}")
    repair.phase(state.snapshot.prefix, state.journal, name)
    start = time.perf_counter()
    try:
        step()
    finally:
        state.outcome.timings[name] = round(time.perf_counter() - start, 3)
    if show:
        console.info(f"{name}: done in {state.outcome.timings[name]:.1f} s")
