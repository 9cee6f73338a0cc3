"""The no-op stamp (stacksync.core.stamp): a second no-op ``invoke sync`` is answered from stats, and
every kind of change to what the full no-op reads sends the next sync down the full path, which tells
the truth. ``STACKSYNC_TRACE_NOOP=1`` makes each run say which path it took; one test also counts the
modules a fast answer imports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from clihelp import ROOT, invoke

from devtools import bench
from stacksync.core import stamp
from stacksync.env import targetlock

# --- core.stamp alone (no venv) ----------------------------------------------------------------------


def test_recording_keeps_reads_not_writes_nor_imports(tmp_path: Path) -> None:
    read, written, listed = tmp_path / "read.txt", tmp_path / "written.txt", tmp_path / "folder"
    read.write_text("x")
    listed.mkdir()
    with stamp.recording() as rec:
        read.read_text()
        written.write_text("y")
        os.listdir(listed)
        import stacksync.cli.noop  # noqa: F401  (the import system's own reads are left out)
    read.read_text()  # after the block: not kept
    assert ("f", str(read)) in rec.paths and ("d", str(listed)) in rec.paths
    assert ("f", str(written)) not in rec.paths
    assert not [p for _, p in rec.paths if p.endswith(".py") or "__pycache__" in p]
    assert str(written) in rec.written and not rec.processes
    with stamp.recording() as rec:
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        read.read_text()
    assert rec.processes  # what a child read is not recorded: no stamp for such a run
    assert ("f", str(read)) not in rec.paths  # so the recording stopped at the first process
    assert not rec.first  # a second run in one process: an in-memory cache may stand in for a read


def test_write_refuses_recent_changes_then_check_matches_until_a_change(tmp_path: Path) -> None:
    prefix = tmp_path / "venv"
    prefix.mkdir()
    (prefix / targetlock.LOCK_NAME).write_text("")
    lock = tmp_path / "requirements.txt"
    lock.write_text("a==1\n")
    target = str(tmp_path / "cache" / "noop" / "k.json")
    lines = [("stderr", "in sync")]
    read = [("f", str(lock)), ("d", str(prefix))]
    # just written: within the timestamp grain of the run's start, so not trusted
    why = stamp.write(target, "k", str(prefix), lines, read, [], started_ns=time.time_ns())
    assert why is not None and "changed less than" in why and not os.path.exists(target)
    later = time.time_ns() + stamp.RACY_NS + 1
    assert stamp.write(target, "k", str(prefix), lines, read, [], started_ns=later) is None
    assert stamp.check(target, "k") == lines
    assert stamp.check(target, "other request") is None
    with targetlock.hold(prefix):  # another run holds the target: the full path waits or fails
        assert stamp.check(target, "k") is None
    lock.write_text("a==2\n")  # same size, new mtime and ctime
    assert stamp.check(target, "k") is None
    doc = json.loads(Path(target).read_text())
    assert {tuple(e[:2]) for e in doc["entries"]} >= {("f", str(lock)), ("f", str(tmp_path)), ("d", str(prefix))}
    for broken in ([["f"]], [None], [["x", "/", None]], "entries", [["f", 3, None]]):  # a hostile stamp
        Path(target).write_text(json.dumps({**doc, "entries": broken}))
        assert stamp.check(target, "k") is None
    for text in ("", "[]", '{"format": 1, "key": "k", "prefix": 3, "lines": 5, "entries": []}'):
        Path(target).write_text(text)
        assert stamp.check(target, "k") is None


def test_a_new_file_in_a_listed_folder_or_beside_a_read_file_is_a_change(tmp_path: Path) -> None:
    prefix = tmp_path / "venv"
    (prefix / "site").mkdir(parents=True)
    (prefix / targetlock.LOCK_NAME).write_text("")
    lock = tmp_path / "locks" / "requirements.txt"
    lock.parent.mkdir()
    lock.write_text("a==1\n")
    target = str(tmp_path / ".stacksync-cache" / "noop" / "k.json")
    later = time.time_ns() + stamp.RACY_NS + 1
    assert stamp.write(target, "k", str(prefix), [], [("f", str(lock)), ("d", str(prefix / "site"))], [],
                       started_ns=later) is None
    assert stamp.check(target, "k") == []
    (prefix / "site" / "~ip").mkdir()  # a pip stash
    assert stamp.check(target, "k") is None
    shutil.rmtree(prefix / "site" / "~ip")
    later = time.time_ns() + stamp.RACY_NS + 1
    assert stamp.write(target, "k", str(prefix), [], [("f", str(lock)), ("d", str(prefix / "site"))], [],
                       started_ns=later) is None
    (lock.parent / "deferred.txt").write_text("")  # a file a stat-only check would see
    assert stamp.check(target, "k") is None



def test_an_entry_written_beside_a_cache_entry_is_no_change(tmp_path: Path) -> None:
    """Another target's sync sharing the cache writes its own probe document and memo there: the
    stamp keeps the stat of the entries this run read, not of the cache's folders."""
    prefix = tmp_path / "venv"
    prefix.mkdir()
    (prefix / targetlock.LOCK_NAME).write_text("")
    cache = tmp_path / "cache"
    entry = cache / "probe" / "mine.json"
    entry.parent.mkdir(parents=True)
    entry.write_text("{}")
    target = str(cache / "noop" / "k.json")
    later = time.time_ns() + stamp.RACY_NS + 1
    assert stamp.write(target, "k", str(prefix), [], [("f", str(entry))], [], started_ns=later) is None
    (cache / "probe" / "another-target.json").write_text("{}")
    (cache / "records").mkdir()
    assert stamp.check(target, "k") == []
    entry.write_text('{"changed": 1}')  # the entry itself: a change
    assert stamp.check(target, "k") is None

def test_old_stamps_are_pruned(tmp_path: Path) -> None:
    prefix = tmp_path / "venv"
    prefix.mkdir()
    later = time.time_ns() + stamp.RACY_NS + 1
    for i in range(stamp.KEEP + 3):
        assert stamp.write(str(tmp_path / "noop" / f"{i:02d}.json"), str(i), str(prefix), [], [], [],
                           started_ns=later) is None
        t = time.time() - 1000 + i  # written in this order
        os.utime(tmp_path / "noop" / f"{i:02d}.json", (t, t))
    kept = sorted(p.name for p in (tmp_path / "noop").iterdir())
    assert len(kept) == stamp.KEEP and "00.json" not in kept and f"{stamp.KEEP + 2:02d}.json" in kept


def test_request_key_covers_options_settings_and_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    base = stamp.request_key("sync", {"backend": "uv"}, {"STACKSYNC_CACHE_DIR": "/c"})
    assert base == stamp.request_key("sync", {"backend": "uv"}, {"STACKSYNC_CACHE_DIR": "/c", "OLDPWD": "/x",
                                                                  stamp.TRACE_ENV: "1"})
    assert base != stamp.request_key("sync", {"backend": "uv"}, {"STACKSYNC_CACHE_DIR": "/c", "CUDA_HOME": "/x"})
    assert base != stamp.request_key("sync", {"backend": "pip-tools"}, {"STACKSYNC_CACHE_DIR": "/c"})
    assert base != stamp.request_key("sync", {"backend": "uv"}, {"STACKSYNC_CACHE_DIR": "/d"})
    assert base != stamp.request_key("sync", {"backend": "uv"}, {"STACKSYNC_CACHE_DIR": "/c",
                                                                 "STACKSYNC_SMOKE_TIMEOUT": "9"})
    monkeypatch.chdir(tmp_path)
    assert base != stamp.request_key("sync", {"backend": "uv"}, {"STACKSYNC_CACHE_DIR": "/c"})


# --- end to end: real venvs, real pip / uv, the CLI --------------------------------------------------

PROFILE = bench.NOOP_PROFILE


@dataclass
class Workspace:
    root: Path
    locks: Path
    wheels: Path
    venv: Path
    cache: Path

    def env(self, **more: str) -> dict[str, str]:
        return {"STACKSYNC_LOCKS_DIR": str(self.locks), "STACKSYNC_CACHE_DIR": str(self.cache),
                stamp.TRACE_ENV: "1", **more}

    def sync(self, *args: str, venv: Path | None = None, **more: str) -> subprocess.CompletedProcess[str]:
        return invoke("sync", "--profile", PROFILE, "--venv", str(venv or self.venv), "--yes", *args,
                      cwd=self.root, extra=self.env(**more))

    def pip(self, *args: str) -> None:
        subprocess.run([str(self.venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", *args],
                       check=True, capture_output=True, env={**os.environ, "PIP_NO_INDEX": "1"})

    def site(self) -> Path:
        return next((self.venv / "lib").glob("python*/site-packages"))


def fast(proc: subprocess.CompletedProcess[str]) -> bool:
    return "no-op stamp: fast path" in proc.stderr


def stamped(ws: Workspace) -> None:
    """Make the stamp (a full no-op that ends in sync, its inputs older than the timestamp grain) and
    check that the next sync is answered by it, with the full no-op's exact line."""
    first = ws.sync()
    assert first.returncode == 0, first.stderr
    if fast(first):  # the stamp of an earlier test still holds
        first = ws.sync("--no-wait")  # the same no-op, another request: a full path to compare with
        time.sleep(stamp.RACY_NS / 1e9 + 0.1)
    elif "no-op stamp: written" not in first.stderr:
        time.sleep(stamp.RACY_NS / 1e9 + 0.1)
        first = ws.sync()
        assert first.returncode == 0 and "no-op stamp: written" in first.stderr, first.stderr
    second = ws.sync()
    assert second.returncode == 0 and fast(second), second.stderr
    verdict = [line for line in first.stderr.splitlines() if "no-op stamp" not in line]
    assert [line for line in second.stderr.splitlines() if "no-op stamp" not in line] == verdict
    assert len(verdict) == 1 and "already in sync" in verdict[0]
    assert second.stdout == first.stdout == ""


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("noopstamp")
    locks, wheels = bench.write_noop_profile(root, count=6)
    venv = root / "venv"
    bench.new_venv(venv)
    space = Workspace(root, locks, wheels, venv, root / "cache")
    first = space.sync()
    assert first.returncode == 0 and "synced" in first.stderr, first.stderr
    yield space


pytestmark_slow = pytest.mark.slow


@pytestmark_slow
def test_the_second_noop_is_answered_without_loading_the_sync(ws: Workspace) -> None:
    stamped(ws)
    code = ("import sys\n"
            "from invoke.main import program\n"
            "try:\n    program.run()\n"
            "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "loaded = sorted(m for m in sys.modules if m.startswith(('stacksync.', 'packaging', 'rich')))\n"
            "print(' '.join(loaded))\n")
    argv = [sys.executable, "-c", code, "-r", str(ROOT), "sync", "--profile", PROFILE, "--venv", str(ws.venv),
            "--yes"]
    proc = subprocess.run(argv, cwd=ws.root, env={**os.environ, **ws.env()}, capture_output=True, text=True)
    assert proc.returncode == 0 and fast(proc), proc.stderr
    loaded = proc.stdout.split()
    assert "stacksync.cli.noop" in loaded and "stacksync.core.stamp" in loaded
    assert not [m for m in loaded if m.startswith(("stacksync.sync", "stacksync.lock", "stacksync.env",
                                                    "packaging", "rich"))], loaded


@pytestmark_slow
def test_verify_and_flags_with_more_output_never_use_the_stamp(ws: Workspace) -> None:
    stamped(ws)
    ok = invoke("verify", "--profile", PROFILE, "--venv", str(ws.venv), cwd=ws.root, extra=ws.env())
    assert ok.returncode == 0 and "no-op stamp" not in ok.stderr, ok.stderr
    for flags in (["--dry-run"], ["--verbose"], ["--report", str(ws.root / "r.json")]):
        proc = ws.sync(*flags)
        assert proc.returncode == 0 and "no-op stamp" not in proc.stderr, (flags, proc.stderr)
    off = ws.sync(STACKSYNC_NOOP_STAMP="0")  # the switch: the full no-op, nothing read or written
    assert off.returncode == 0 and "no-op stamp" not in off.stderr and "already in sync" in off.stderr
    quiet = ws.sync("-q")  # another request: its own stamp, with the one line -q prints
    assert quiet.returncode == 0 and not fast(quiet) and "already in sync" in quiet.stderr


@pytestmark_slow
def test_a_lock_edit_takes_the_full_path(ws: Workspace) -> None:
    stamped(ws)
    lock = ws.locks / PROFILE / "requirements.txt"
    text = lock.read_text()
    lock.write_text(text + "# a comment\n")
    try:
        proc = ws.sync()
        assert proc.returncode == 0 and not fast(proc) and "requirements.txt changed" in proc.stderr, proc.stderr
        assert "already in sync" in proc.stderr
    finally:
        lock.write_text(text)


@pytestmark_slow
def test_a_removed_recorded_file_takes_the_full_path_and_is_repaired(ws: Workspace) -> None:
    stamped(ws)
    module = ws.site() / "bench_pkg_002" / "__init__.py"
    module.unlink()
    proc = ws.sync()
    assert proc.returncode == 0 and not fast(proc) and "already in sync" not in proc.stderr, proc.stderr
    assert module.is_file()


@pytestmark_slow
def test_pip_uninstall_and_install_take_the_full_path(ws: Workspace) -> None:
    stamped(ws)
    ws.pip("uninstall", "-y", "bench-pkg-003")
    proc = ws.sync()
    assert proc.returncode == 0 and not fast(proc) and "synced" in proc.stderr, proc.stderr
    assert (ws.site() / "bench_pkg_003").is_dir()
    stamped(ws)
    extra = bench.build_wheel(ws.root / "extra", "extra-pkg", "1.0")
    ws.pip("install", str(extra))
    proc = ws.sync()
    assert proc.returncode == 0 and not fast(proc) and "synced" in proc.stderr, proc.stderr
    assert not (ws.site() / "extra_pkg").exists()


@pytestmark_slow
def test_a_stash_or_a_new_pth_takes_the_full_path(ws: Workspace) -> None:
    stamped(ws)
    stash = ws.site() / "~ench_pkg_001"
    shutil.copytree(ws.site() / "bench_pkg_001", stash)
    proc = ws.sync()
    assert proc.returncode == 0 and not fast(proc) and "interrupted" in proc.stderr, proc.stderr
    assert not stash.exists()
    stamped(ws)
    pth = ws.site() / "zz-extra.pth"
    pth.write_text("")
    try:
        proc = ws.sync()
        assert proc.returncode == 0 and not fast(proc), proc.stderr
    finally:
        pth.unlink()


@pytestmark_slow
def test_another_setting_backend_or_venv_takes_the_full_path(ws: Workspace, tmp_path: Path) -> None:
    stamped(ws)
    proc = ws.sync(STACKSYNC_SMOKE_TIMEOUT="99")
    assert proc.returncode == 0 and not fast(proc) and "no stamp" in proc.stderr, proc.stderr
    if shutil.which("uv") or bench.backend_unavailable("uv") is None:
        proc = ws.sync("--backend", "uv")
        assert proc.returncode == 0 and not fast(proc), proc.stderr
    other = tmp_path / "other"
    bench.new_venv(other)
    proc = ws.sync(venv=other)
    assert proc.returncode == 0 and not fast(proc) and "synced" in proc.stderr, proc.stderr
    # the same path made anew (rm -rf .venv, then a new venv): the stamp does not hold for it
    proc = ws.sync(venv=other)
    time.sleep(stamp.RACY_NS / 1e9 + 0.1)
    proc = ws.sync(venv=other)
    assert "written" in proc.stderr, proc.stderr
    bench.new_venv(other)
    proc = ws.sync(venv=other)
    assert proc.returncode == 0 and not fast(proc) and "synced" in proc.stderr, proc.stderr


@pytestmark_slow
def test_a_held_lock_or_a_journal_takes_the_full_path(ws: Workspace) -> None:
    stamped(ws)
    with targetlock.hold(ws.venv):
        proc = ws.sync()
    assert proc.returncode == 1 and not fast(proc) and "another stacksync run" in proc.stderr, proc.stderr
    stamped(ws)
    from stacksync.env.damage import Damage
    from stacksync.sync import repair

    repair.begin(ws.venv, Damage(), plan={}, lock_sha256=None, profile=PROFILE, deferred_sha256=None,
                 steps=["base"])
    proc = ws.sync()
    assert proc.returncode == 0 and not fast(proc) and "already in sync" not in proc.stderr, proc.stderr
    assert not (ws.venv / "stacksync-journal.json").exists()
