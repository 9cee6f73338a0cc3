"""Writing the no-op stamp (:mod:`stacksync.core.stamp`) at the end of a full no-op sync.

Only a run that had nothing to do, printed nothing but its "already in sync" line and read nothing a
stat cannot vouch for gets a stamp: not a profile with ``[variants]`` (the driver chooses, through a
probe process), not one with VCS pins (a checkout's state is git's to say), not a target with
damage. Everything else the run read is in the recorder; what it only stat-ed is added here.
"""

from __future__ import annotations

from stacksync.core import stamp
from stacksync.core.redact import redact
from stacksync.sync import repair
from stacksync.sync.state import State

__all__ = ["write_stamp"]


def write_stamp(state: State, read: list[tuple[str, str]], printed: list[tuple[str, str]], started_ns: int,
                written: list[str], processes: list[str], *, first: bool = True) -> None:
    """Keep the stamp of this no-op at ``state.opts.noop_stamp`` (or say with the trace why not)."""
    opts, outcome = state.opts, state.outcome
    if opts.noop_stamp is None:
        return
    line = ("stderr", redact(outcome.summary))
    why = None
    if outcome.verdict != "in-sync":
        why = f"verdict {outcome.verdict}"
    elif state.profile.variants:
        why = "a profile with [variants] (the driver picks)"
    elif state.vcs:
        why = "VCS pins"
    elif state.damage.found:
        why = "damage found"
    elif not first:  # an earlier run in this process may have cached what this one did not read again
        why = "not the first run of this process"
    elif processes:  # a probe: what it read is not in the recording
        why = f"the run started a process ({processes[0]})"
    elif printed not in ([line], []):  # normal: the one line; -q: nothing (the task prints the verdict)
        why = "the run printed more than its verdict"
    if why is None:
        prefix = str(state.snapshot.prefix)
        # the prefix (a journal, the state file) and site-packages (a stash, a .pth) are listed, whatever
        # the reading path did this time
        listed = [("d", prefix), *(("d", str(sp)) for sp in state.snapshot.site_packages)]
        why = stamp.write(opts.noop_stamp, opts.noop_key, prefix, [line], [*read, *listed],
                          [str(state.python), *repair.memo_folders(state.snapshot.prefix)], started_ns=started_ns,
                          exclude=[str(state.workdir)], written=written)
    stamp.trace(f"not written ({why})" if why else f"written ({opts.noop_stamp})")
