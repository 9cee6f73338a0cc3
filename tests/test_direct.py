"""cli.direct: ``stacksync sync ...`` without invoke calls the sync task's body exactly as invoke's
Program does, and leaves every other command line to the Program."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stacksync.cli import direct, syncing
from stacksync.cli.program import program

ROOT = Path(__file__).resolve().parent.parent

#: command lines the direct path takes (after the program name)
TAKEN = [
    ["sync"],
    ["sync", "-p", "demo"],
    ["sync", "--profile", "demo", "-y", "--backend", "uv", "--venv", "/tmp/v"],
    ["sync", "--profile=demo", "--dry-run", "--json"],
    ["sync", "-n", "-v", "-q"],
    ["sync", "--rebuild", "flash-attn", "--rebuild=xformers", "--no-wait", "--accept-foreign-lock"],
    ["sync", "--lock", "pylock.toml", "--variant", "cu121", "--wheelhouse", "wh", "--report", "r.json", "--force",
     "--wait"],
    ["sync", "--python", "/usr/bin/python3", "--report=-"],
    ["sync", "--report", "-", "--venv=-x"],
    ["sync", "--venv", "plan"],  # a task's name as a value is a value
    ["sync", "--venv", "a b", "-p", "x=y"],
    ["sync", "--yes", "--quiet", "--verbose", "--profile", "p", "--python", "py", "--backend", "pip-tools"],
]

#: command lines left to invoke's Program (help, other tasks, core options, spellings and mistakes it judges)
LEFT = [
    [], ["--list"], ["--help", "sync"], ["sync", "--help"], ["sync", "-h"], ["plan"], ["verify", "-p", "demo"],
    ["sync", "plan"], ["sync", "-pdemo"], ["sync", "-yq"], ["sync", "--profile"], ["sync", "--profile", ""],
    ["sync", "--profile="], ["sync", "-p", " "], ["sync", "-p", "a", "-p", "b"], ["sync", "-y", "-y"],
    ["sync", "--yes=1"], ["sync", "--venv", "-y"], ["sync", "--venv", "-x"], ["--echo", "sync"],
    ["-d", "sync"], ["sync", "--unknown"], ["sync", "--json_"], ["sync", "--dry_run"], ["sync", "-o", "x"],
    ["sync", "--", "x"], ["sync", "-"], ["sync", "--out", "x"], ["sync", "--files"],
]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every call of the sync task's body, as its parameters by name (the body itself not run)."""
    seen: list[dict[str, Any]] = []
    signature = inspect.signature(syncing.sync)

    def record(*args: Any, **kwargs: Any) -> None:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        seen.append(dict(bound.arguments))

    record.__signature__ = signature  # type: ignore[attr-defined]
    monkeypatch.setattr(syncing, "sync", record)
    return seen


@pytest.mark.parametrize("argv", TAKEN, ids=" ".join)
def test_the_direct_path_calls_the_body_as_invoke_does(argv: list[str], calls: list[dict[str, Any]]) -> None:
    program().run(["stacksync", *argv], exit=False)
    assert direct.run(argv) is True
    assert len(calls) == 2
    by_invoke, by_direct = calls
    assert by_direct == by_invoke
    assert {type(v) for v in by_direct.values()} <= {str, bool, list}


@pytest.mark.parametrize("argv", LEFT, ids=lambda a: " ".join(a) or "(none)")
def test_other_command_lines_are_left_to_invoke(argv: list[str], calls: list[dict[str, Any]]) -> None:
    assert direct.parse(argv) is None
    assert direct.run(argv) is False
    assert calls == []


def test_the_taken_options_are_the_tasks_options() -> None:
    """Every option of invoke's sync task is one the direct path knows, with the same short flag, and no
    other: a new option added to the task is taken by both or by neither."""
    task = program().namespace["sync"]
    by_invoke = {}
    for arg in task.get_arguments():
        longs = sorted(n for n in arg.names if len(n) > 1)
        by_invoke[f"--{longs[0]}"] = sorted(n for n in arg.names if len(n) == 1)
    longs, shorts = direct._options()
    assert sorted(longs) == sorted(by_invoke)
    assert {name: sorted(s for s, p in shorts.items() if p is param) for name, param in longs.items()} == by_invoke
    plain = [(p.name, p.default) for p in inspect.signature(syncing.sync).parameters.values()]
    wrapped = [(p.name, p.default) for p in inspect.signature(task.body).parameters.values()]
    assert wrapped[1:] == plain and wrapped[0][0] == "c"


def _run(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STACKSYNC_")}
    env.update(STACKSYNC_LOCKS_DIR=str(tmp_path / "locks"), STACKSYNC_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=str(ROOT))
    (tmp_path / "locks").mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_console_scripts_sync_loads_no_invoke_and_says_what_invoke_would(tmp_path: Path) -> None:
    """The same one line and exit status for a profile that does not exist, through the direct path
    (invoke never imported) and through invoke's Program."""
    probe = ("import atexit, sys\n"
             "atexit.register(lambda: print('invoke loaded:', 'invoke' in sys.modules, file=sys.stderr))\n"
             "sys.argv = ['stacksync', 'sync', '-p', 'no-such-profile', '-y']\n")
    by_direct = _run(probe + "from stacksync.cli.program import main\nmain()\n", tmp_path)
    by_invoke = _run(probe + "from stacksync.cli.program import program\nprogram().run()\n", tmp_path)
    assert by_direct.returncode == by_invoke.returncode != 0
    direct_lines, invoke_lines = by_direct.stderr.splitlines(), by_invoke.stderr.splitlines()
    assert direct_lines[-1] == "invoke loaded: False" and invoke_lines[-1] == "invoke loaded: True"
    assert direct_lines[:-1] == invoke_lines[:-1]
    assert "no-such-profile" in direct_lines[0] and len(direct_lines) == 2
    assert by_direct.stdout == by_invoke.stdout == ""


def test_a_reader_that_goes_away_stops_the_command_without_a_traceback(tmp_path: Path) -> None:
    """``stacksync --help sync | head -1``: stdout's reader is gone before the help is written (the pipe's
    read end closed at once, so the first write fails every time): exit 141 and nothing on stderr."""
    from stacksync.cli.program import BROKEN_PIPE_EXIT

    read, write = os.pipe()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "stacksync", "--help", "sync"], cwd=tmp_path, env=env,
                            stdout=write, stderr=subprocess.PIPE, text=True)
    os.close(write)
    os.close(read)
    _, err = proc.communicate(timeout=120)
    assert (proc.returncode, err) == (BROKEN_PIPE_EXIT, "")
