"""Build leases (stacksync.build.lease): taken once, waited for, taken over when stale, readable by all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stacksync.build import lease


def test_one_holder_and_the_busy_line(tmp_path: Path) -> None:
    path = lease.path_for(tmp_path, "abc123abc123")
    held = lease.try_acquire(path, "flash-attn 2.8.0 (key abc123abc123)", stale_s=60)
    assert isinstance(held, lease.Lease)
    doc = json.loads(path.read_text())
    assert doc["pid"] == os.getpid() and doc["host"] and doc["started"].endswith("Z")
    assert lease.mode_of(path) == 0o644 & ~_umask()
    other = lease.try_acquire(path, "x", stale_s=60)
    assert isinstance(other, lease.Holder) and other.token == held.holder.token
    line = lease.busy_line(path, other)
    assert line.startswith("flash-attn 2.8.0 (key abc123abc123) is being built by ") and f"pid {os.getpid()}" in line
    assert f"since {doc['started']}" in line and str(path) in line
    with pytest.raises(lease.LeaseBusy, match=r"is being built by .*\(fix: wait for it"):
        lease.acquire(path, "x", wait=False, stale_s=60, timeout_s=5)
    held.release()
    assert not path.exists()
    assert isinstance(lease.try_acquire(path, "x", stale_s=60), lease.Lease)


def _umask() -> int:
    old = os.umask(0o022)
    os.umask(old)
    return old


def test_the_heartbeat_keeps_it_fresh(tmp_path: Path) -> None:
    path = lease.path_for(tmp_path, "k")
    held = lease.try_acquire(path, "x", stale_s=0.5)
    assert isinstance(held, lease.Lease)
    os.utime(path, (time.time() - 100, time.time() - 100))
    time.sleep(0.4)  # beats every 0.1 s
    assert time.time() - path.stat().st_mtime < 0.5
    held.release()


def _foreign(path: Path, *, host: str, pid: int, age: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": host, "pid": pid, "started": "2026-01-01T00:00:00Z", "what": "w",
                                "token": "t0"}))
    os.utime(path, (time.time() - age, time.time() - age))


def test_a_lease_without_heartbeat_is_taken_over(tmp_path: Path) -> None:
    path = lease.path_for(tmp_path, "k")
    _foreign(path, host="node-gone", pid=1, age=5)
    busy = lease.try_acquire(path, "x", stale_s=60)
    assert isinstance(busy, lease.Holder) and busy.host == "node-gone"  # another host, recent: live
    _foreign(path, host="node-gone", pid=1, age=120)
    got = lease.try_acquire(path, "x", stale_s=60)
    assert isinstance(got, lease.Lease) and json.loads(path.read_text())["pid"] == os.getpid()
    got.release()


def test_a_dead_builder_on_this_host_is_taken_over_at_once(tmp_path: Path) -> None:
    import socket

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    path = lease.path_for(tmp_path, "k")
    _foreign(path, host=socket.gethostname(), pid=int(dead.stdout), age=0)
    holder = lease.read_holder(path)
    assert holder is not None
    assert lease.stale_reason(holder, now=time.time(), stale_s=600) == f"pid {dead.stdout.strip()} on " \
        f"{socket.gethostname()} is gone"
    got = lease.try_acquire(path, "x", stale_s=600)
    assert isinstance(got, lease.Lease)
    got.release()


def test_waiting_ends_when_the_wheel_appears_or_the_limit_runs_out(tmp_path: Path) -> None:
    path = lease.path_for(tmp_path, "k")
    _foreign(path, host="node-busy", pid=1, age=0)
    said: list[str] = []
    calls = iter([False, False, True])
    assert lease.acquire(path, "x", wait=True, stale_s=60, timeout_s=30, poll_s=0.01, ready=lambda: next(calls),
                         say=said.append) is None
    assert len(said) == 1 and said[0].startswith("deferred: waiting: w is being built by node-busy pid 1")
    with pytest.raises(lease.LeaseTimeout, match="gave up after waiting .* STACKSYNC_BUILD_WAIT_S"):
        lease.acquire(path, "x", wait=True, stale_s=60, timeout_s=0.05, poll_s=0.01)


def test_settings_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(lease.STALE_ENV, "abc")
    with pytest.raises(lease.SyncError, match="STACKSYNC_LEASE_STALE_S='abc': not a number"):
        lease.stale_after()
    monkeypatch.setenv(lease.STALE_ENV, "7.5")
    assert lease.stale_after() == 7.5 and lease.wait_limit({}) == lease.DEFAULT_WAIT_S


def test_two_processes_racing_get_one_lease(tmp_path: Path) -> None:
    """Eight processes try at once; exactly one holds it."""
    path = lease.path_for(tmp_path, "race")
    code = ("import sys, time; from pathlib import Path; from stacksync.build import lease; "
            "t = float(sys.argv[1]); time.sleep(max(0, t - time.time())); "
            "got = lease.try_acquire(Path(sys.argv[2]), 'x', stale_s=60); "
            "print(isinstance(got, lease.Lease)); time.sleep(1.0)")
    start = time.time() + 1.5
    procs = [subprocess.Popen([sys.executable, "-c", code, str(start), str(path)], stdout=subprocess.PIPE, text=True)
             for _ in range(8)]
    results = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(results) == ["False"] * 7 + ["True"]
