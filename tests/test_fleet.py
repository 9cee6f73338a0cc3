"""A team and a fleet, end to end with real pip, pypiserver and `invoke sync` processes: N nodes (here
processes) syncing separate targets against one shared wheelhouse build a deferred key once; a builder
killed mid-build leaves a lease the next node takes over; ``--no-wait`` fails fast in one line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pkgfactory import IndexServer
from stackprofile import LOCK_A, TOKEN_VAR, USER_VAR, freeze, record, virtualenv_at, write_profile

from stacksync.build import lease, wheelhouse
from stacksync.core import runner

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[Path]:
    """A folder every user can traverse (pytest's own tmp folders are 0700): a second OS user reads
    what the first wrote there."""
    folder = Path(tempfile.mkdtemp(prefix="stacksync-shared-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def node_env(index_server: IndexServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    monkeypatch.setenv("STACKSYNC_CACHE_DIR", str(tmp_path / "node-cache"))
    monkeypatch.setenv(USER_VAR, index_server.user)
    monkeypatch.setenv(TOKEN_VAR, index_server.password)
    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST", raising=False)
    return runner.clean_env()


def sync_argv(prof: Path, venv: Path, house: Path, report: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "invoke", "-r", str(ROOT), "sync", "--profile", str(prof), "--venv", str(venv),
            "--wheelhouse", str(house), "--report", str(report), *extra]


def start(argv: list[str], env: dict[str, str], **extra_env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(argv, env={**env, **extra_env}, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, start_new_session=True)


def builds_logged(log: Path) -> int:
    return len(log.read_text().split()) if log.exists() else 0


def test_eight_concurrent_syncs_build_once(shared: Path, stack_packages: Path, index_server: IndexServer,
                                           node_env: dict[str, str], _virtualenv_app_data: Path) -> None:
    """8 nodes, one shared wheelhouse, the key missing everywhere: one build, 8 twins with one digest."""
    n = 8
    prof = write_profile(shared / "locks" / "team", stack_packages, index_server, LOCK_A)
    house, log = shared / "wheelhouse", shared / "builds.log"
    venvs = [virtualenv_at(shared / f"node{i}", _virtualenv_app_data) for i in range(n)]
    t0 = time.monotonic()
    procs = [start(sync_argv(prof, v, house, shared / f"r{i}.json"), node_env, FLASH_ATTN_LIKE_BUILD_LOG=str(log),
                   FLASH_ATTN_LIKE_BUILD_SLEEP="3", STACKSYNC_CACHE_DIR=str(shared / f"cache{i}"))
             for i, v in enumerate(venvs)]
    done = [p.communicate(timeout=600) for p in procs]
    wall = time.monotonic() - t0
    failed = [(i, err[-2000:]) for i, (p, (_, err)) in enumerate(zip(procs, done, strict=True)) if p.returncode]
    assert failed == [], failed
    assert builds_logged(log) == 1, log.read_text()
    receipts = [json.loads((shared / f"r{i}.json").read_text()) for i in range(n)]
    digests = {r["manifest"]["digest"] for r in receipts}
    assert len(digests) == 1 and None not in digests, digests
    kinds = sorted(r["plan"]["deferred_sources"]["flash-attn-like"]["kind"] for r in receipts)
    assert kinds[0] == "build" and kinds.count("build") == 1, kinds
    assert len({record(v)["key_digest"] for v in venvs}) == 1
    assert len(wheelhouse.entries(house)) == 1 and not list((house / lease.LEASE_DIR).glob("*.lease"))
    print(f"8 concurrent syncs: {wall:.1f} s wall")
    # The fleet report over the 8 receipts: one row per node, all the same as the first.
    rep = subprocess.run([sys.executable, "-m", "invoke", "-r", str(ROOT), "fleet-report", str(shared / "r*.json"),
                          "--json"], capture_output=True, text=True, cwd=ROOT, env=node_env)
    assert rep.returncode == 0, rep.stderr
    fleet = json.loads(rep.stdout)
    assert fleet["identical"] and len(fleet["nodes"]) == n and fleet["outliers"] == []
    assert {x["deferred"]["flash-attn-like"]["key"] for x in fleet["nodes"]} == {entry_short(house)}
    # Another OS user (nobody) reads what the nodes wrote: wheel, sidecar, receipt, wheels.txt, state file.
    entry = wheelhouse.entries(house)[0]
    for path in (entry.wheel, wheelhouse.sidecar_of(entry.wheel), shared / "r0.json", prof / "wheels.txt",
                 venvs[0] / "stacksync-state.json"):
        assert lease.mode_of(path) == 0o644, (path, oct(lease.mode_of(path)))
        assert read_as_nobody(path) == path.read_bytes(), path


def entry_short(house: Path) -> str:
    (entry,) = wheelhouse.entries(house)
    return entry.short


def read_as_nobody(path: Path) -> bytes:
    """``path``'s bytes as read by uid/gid 65534 in a forked child (the test runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("reading as another user needs root to switch uid (setuid in a forked child)")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop to nobody, read, write the bytes (or the error) to the pipe
        os.close(r)
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            data = Path(path).read_bytes()
            code = 0
        except OSError as exc:
            data, code = str(exc).encode(), 3
        with os.fdopen(w, "wb") as fh:
            fh.write(data)
        os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        data = fh.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, data.decode(errors="replace")
    return data


def test_a_killed_builder_s_lease_is_taken_over_and_no_wait_fails_fast(
        shared: Path, stack_packages: Path, index_server: IndexServer, node_env: dict[str, str],
        _virtualenv_app_data: Path) -> None:
    prof = write_profile(shared / "locks" / "team", stack_packages, index_server, LOCK_A)
    house, log = shared / "wheelhouse", shared / "builds.log"
    a, b, c = (virtualenv_at(shared / n, _virtualenv_app_data) for n in ("a", "b", "c"))
    builder = start(sync_argv(prof, a, house, shared / "ra.json"), node_env, FLASH_ATTN_LIKE_BUILD_LOG=str(log),
                    FLASH_ATTN_LIKE_BUILD_SLEEP="120")
    deadline = time.monotonic() + 300
    while builds_logged(log) == 0:
        assert builder.poll() is None and time.monotonic() < deadline, builder.communicate()
        time.sleep(0.2)
    (held,) = list((house / lease.LEASE_DIR).glob("*.lease"))
    holder = lease.read_holder(held)
    assert holder is not None and holder.pid == builder.pid
    # --no-wait: one line, who builds what since when; nothing in the target changed.
    before = freeze(c)
    fast = subprocess.run(sync_argv(prof, c, house, shared / "rc.json", "--no-wait"), env=node_env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    errors = [line for line in fast.stderr.splitlines() if line.startswith("stacksync: error:")]
    assert fast.returncode == 1 and len(errors) == 1 and "Traceback" not in fast.stderr, fast.stderr
    assert f"flash-attn-like 2.8.0 (key {held.stem}) is being built by" in fast.stderr
    assert f"pid {builder.pid} since {holder.started}" in fast.stderr and "nothing was changed" in fast.stderr
    assert freeze(c) == before
    os.killpg(builder.pid, signal.SIGKILL)
    builder.communicate()
    assert held.exists() and not wheelhouse.entries(house)  # the dead builder left its lease and no wheel
    took = subprocess.run(sync_argv(prof, b, house, shared / "rb.json"), env={**node_env,
                          "FLASH_ATTN_LIKE_BUILD_LOG": str(log)}, cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert took.returncode == 0, took.stderr
    assert builds_logged(log) == 2 and record(b)["source"]["kind"] == "build"  # type: ignore[index]
    assert len(wheelhouse.entries(house)) == 1 and not held.exists()
