"""SIGTERM and SIGHUP (what ``timeout``, systemd and a CI cancel send) are handled as Ctrl-C: the
running command's whole process group is killed and reaped before stacksync exits (143 / 129), and
the target's lock is released only then; a second sync started right after runs alone and repairs."""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pkgfactory
import pytest
from clihelp import ROOT, invoke
from pkgfactory import IndexServer
from stackprofile import LOCK_A, TOKEN_VAR, USER_VAR, expected_a, freeze, virtualenv_at, write_profile

from stacksync.core import runner
from stacksync.env import journal

CHILD_SCRIPT = """
import sys
from stacksync.cli.edge import one_line_errors
from stacksync.core import runner

with one_line_errors():
    runner.run(["sh", "-c", "sleep 120 & echo $! > " + sys.argv[1] + "; wait"])
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for(path: Path, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_a_signal_kills_the_childs_group_and_exits_with_its_code(tmp_path: Path, sig: int, code: int) -> None:
    pidfile = tmp_path / "grandchild.pid"
    proc = subprocess.Popen([sys.executable, "-c", CHILD_SCRIPT, str(pidfile)], cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        grandchild = int(_wait_for(pidfile, 30))
        os.kill(proc.pid, sig)  # stacksync alone, as `kill PID` / systemd's stop do
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == code, err
    assert not _alive(grandchild), "the command's own child outlived stacksync"
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("stacksync: error: "), err


SLOW_SETUP_PY = '''\
import os
import time

import torch_like
from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))
flag = os.environ.get("SLOW_BUILD_FLAG", "")
if flag and os.path.exists(flag):  # the test's slow build: says where it runs, then takes its time
    with open(flag + ".pids", "a") as fh:
        fh.write("%d\\n" % os.getpid())
    time.sleep(300)
with open(os.path.join(HERE, "flash_attn_like", "_built_against.py"), "w") as fh:
    fh.write('TORCH = "%s"\\n' % torch_like.__version__)

setup(name="flash-attn-like", version="2.8.0", packages=["flash_attn_like"],
      install_requires=["torch-like", "einops-like"], python_requires=">=3.8")
'''


@pytest.mark.slow
def test_sigterm_during_a_deferred_build_stops_the_build(stack_packages: Path, _virtualenv_app_data: Path,
                                                         tmp_path: Path) -> None:
    packages = tmp_path / "packages"
    shutil.copytree(stack_packages, packages)
    sdist = packages / "flash_attn_like-2.8.0.tar.gz"
    init = pkgfactory._FLASH_INIT.replace("{version}", "2.8.0")  # the stand-in's own module, slow setup.py
    sdist.unlink()
    pkgfactory.build_sdist(packages, "flash-attn-like", "2.8.0", setup_py=SLOW_SETUP_PY,
                           requires=["torch-like", "einops-like"], files={"flash_attn_like/__init__.py": init})
    server = IndexServer(packages, tmp_path / "server", password=f"sig-{secrets.token_hex(6)}")
    server.start()
    try:
        prof = write_profile(tmp_path / "standin", packages, server, LOCK_A)
        flag = tmp_path / "slow.flag"
        flag.write_text("on\n")
        toml = prof / "stack.toml"
        toml.write_text(toml.read_text().replace('MAX_JOBS = "2"', f'MAX_JOBS = "2", SLOW_BUILD_FLAG = "{flag}"'))
        venv = virtualenv_at(tmp_path / "venv", _virtualenv_app_data)
        env = runner.clean_env({USER_VAR: server.user, TOKEN_VAR: server.password,
                                "STACKSYNC_CACHE_DIR": str(tmp_path / "cache"), "XDG_CACHE_HOME": str(tmp_path / "x")})
        args = [sys.executable, "-m", "invoke", "-r", str(ROOT), "sync", "--profile", str(prof), "--venv", str(venv),
                "--yes"]
        proc = subprocess.Popen(args, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            builds = Path(str(flag) + ".pids")
            build_pid = int(_wait_for(builds, 400).split()[0])
            os.kill(proc.pid, signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        assert proc.returncode == 143, err[-2000:]
        assert "terminated by SIGTERM" in err and "Traceback" not in err, err[-2000:]
        assert not _alive(build_pid), "the build outlived stacksync"
        # the lock is free at once, and no process of the target is left
        with open(venv / ".stacksync.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert journal.path(venv).exists()  # the next run knows it was interrupted
        flag.unlink()
        again = invoke("sync", "--profile", str(prof), "--venv", str(venv), "--yes", env=env, timeout=400)
        assert again.returncode == 0, again.stderr[-2000:]
        assert "interrupted" in again.stderr
        got = freeze(venv)
        assert {k: got.get(k) for k in expected_a(packages)} == expected_a(packages)
        assert len(builds.read_text().split()) == 1  # the second run built once, quickly, alone
    finally:
        server.stop()


def test_a_child_left_running_keeps_the_target_lock(tmp_path: Path) -> None:
    """kill -9 of stacksync alone leaves its children running (they have process groups of their own):
    they inherit the target's lock file, so the lock stays taken until the last of them is gone."""
    from stacksync.env import targetlock

    pidfile = tmp_path / "pid"
    with targetlock.hold(tmp_path):
        # the child exits at once; the background sleep it started lives on, as a killed sync's pip would
        runner.run(["sh", "-c", f"sleep 30 > /dev/null 2>&1 & echo $! > {pidfile}"])
    orphan = int(pidfile.read_text())
    try:
        with pytest.raises(targetlock.TargetBusy):
            with targetlock.hold(tmp_path):
                pass
    finally:
        os.kill(orphan, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _alive(orphan) and time.monotonic() < deadline:
        time.sleep(0.05)
    with targetlock.hold(tmp_path):  # free again once it is gone
        pass
