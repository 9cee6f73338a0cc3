"""stacksync.core.runner: the child environment (what of the machine's pip / uv configuration reaches pip,
pip-tools and uv) and a real run against this interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stacksync.core import defaults, runner
from stacksync.core.errors import CommandFailed, StacksyncError


def test_clean_env_drops_index_and_config_keeps_transport_and_cache_location() -> None:
    machine = {
        "PATH": "/usr/bin", "HOME": "/home/u",
        # what this machine's pip configuration and a user's shell put there: never reaches a lock
        "PIP_FIND_LINKS": "/wheels", "PIP_INDEX_URL": "https://u:tok@idx/simple", "PIP_EXTRA_INDEX_URL": "file:///x",
        "PIP_CONFIG_FILE": "/etc/pip.conf", "UV_INDEX_URL": "https://idx/simple", "UV_EXTRA_INDEX_URL": "file:///y",
        "PYTHONPATH": "/elsewhere", "VIRTUAL_ENV": "/some/venv",
        # transport and cache location: kept
        "PIP_CERT": "/ca.pem", "PIP_RETRIES": "0", "PIP_CACHE_DIR": "/big/pip", "UV_CACHE_DIR": "/big/uv",
        "UV_HTTP_TIMEOUT": "90",
    }
    env = runner.clean_env(base=machine)
    for gone in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL",
                 "PYTHONPATH", "VIRTUAL_ENV"):
        assert gone not in env, gone
    for kept in ("PATH", "HOME", "PIP_CERT", "PIP_RETRIES", "PIP_CACHE_DIR", "UV_CACHE_DIR", "UV_HTTP_TIMEOUT"):
        assert env[kept] == machine[kept], kept
    assert env["PIP_CONFIG_FILE"] == os.devnull and env["PIP_NO_INPUT"] == "1" and env["UV_NO_CONFIG"] == "1"
    assert runner.clean_env({"MAX_JOBS": "4"}, base=machine)["MAX_JOBS"] == "4"


def test_run_records_redacted_argv_and_raises_with_the_output() -> None:
    runner.history.clear()
    ok = runner.run([sys.executable, "-c", "print(123)"])
    assert ok.returncode == 0 and ok.stdout.strip() == "123"
    with pytest.raises(CommandFailed) as info:  # (a URL with credentials never goes into an argv: via env)
        runner.run([sys.executable, "-c", "import os, sys; print(os.environ['URL']); sys.exit(3)"],
                   hint="a hint", env=runner.clean_env({"URL": "https://u:s3cret@idx/simple"}))
    assert info.value.returncode == 3 and "s3cret" not in str(info.value)
    assert len(runner.history) == 2 and "s3cret" not in repr(runner.history)


@pytest.mark.parametrize("raw", ["abc", "0", "-5", "nan", "inf", "1e999"])
def test_a_numeric_setting_that_is_not_a_positive_number_is_refused(raw: str) -> None:
    with pytest.raises(StacksyncError) as caught:
        runner.timeout_from_env(runner.PROBE_TIMEOUT_ENV, 60.0, environ={runner.PROBE_TIMEOUT_ENV: raw})
    text = str(caught.value)
    assert text.startswith(f"STACKSYNC_PROBE_TIMEOUT={raw!r}: not a positive number of seconds")
    assert "fix: set STACKSYNC_PROBE_TIMEOUT to a number such as 60" in text
    assert runner.timeout_from_env("X", 5.0, environ={"X": " 2.5 "}) == 2.5
    assert runner.timeout_from_env("X", 5.0, environ={"X": ""}) == 5.0
    assert runner.timeout_from_env("X", 5.0, environ={}) == 5.0


@pytest.mark.parametrize("var", sorted(runner.NUMERIC_ENV))
def test_the_edge_refuses_a_bad_numeric_setting_before_the_task_runs(var: str, tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(root), "verify", "--files",
                           "--venv", str(tmp_path / "no-such-venv")], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, cwd=root, env={**os.environ, var: "abc"})
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and f"{var}='abc': not a positive number of seconds" in lines[0], lines
    assert "no such venv" not in done.stderr  # refused before the task looked at its arguments


def test_one_probe_script_with_three_commands() -> None:
    """stacksync/probes/probe.py (shipped in the package) answers env, cuda and smoke, each with its own
    document; anything else is a usage line and exit 2."""
    assert defaults.PROBE_SCRIPT.is_file() and defaults.PROBE_SCRIPT.parent.parent.name == "stacksync"
    env = runner.run_script(sys.executable, "env")
    assert env["probe"] == 1 and env["python"]["executable"]
    cuda = runner.run_script(sys.executable, "cuda")
    assert cuda["probe_cuda"] == 1 and "driver" in cuda
    smoke = runner.run_script(sys.executable, "smoke", "json", "no_such_module_here")
    assert [(m["name"], m["ok"]) for m in smoke["modules"]] == [("json", True), ("no_such_module_here", False)]
    for argv in ([], ["nope"]):
        proc = subprocess.run([sys.executable, "-I", str(defaults.PROBE_SCRIPT), *argv], capture_output=True,
                              text=True)
        assert proc.returncode == 2 and "usage: probe.py {env,cuda,smoke}" in proc.stderr


def test_several_probe_commands_share_one_process_and_one_document() -> None:
    """Issue 21: ``env+cuda+smoke`` answers all three from one interpreter, each part the document the
    command alone writes; the facts are read before the imports, whatever order they are given in."""
    before = len(runner.history)
    doc = runner.run_script(sys.executable, "smoke+cuda+env", "json", "no_such_module_here")
    assert len(runner.history) == before + 1 and doc["probes"] == 1
    assert doc["env"]["probe"] == 1 and doc["cuda"]["probe_cuda"] == 1 and "torch_import" not in doc["cuda"]
    assert [(m["name"], m["ok"]) for m in doc["smoke"]["modules"]] == [("json", True), ("no_such_module_here", False)]
    alone = runner.run_script(sys.executable, "env")
    assert {d["name"] for d in doc["env"]["distributions"]} == {d["name"] for d in alone["distributions"]}
    proc = subprocess.run([sys.executable, "-I", str(defaults.PROBE_SCRIPT), "env+nope"], capture_output=True,
                          text=True)
    assert proc.returncode == 2 and "usage: probe.py" in proc.stderr


def test_a_launcher_that_starts_no_python_is_one_line_with_its_reason(tmp_path: Path) -> None:
    """A pyenv shim for a Python that is not installed exits 127 and explains itself on its first line
    (the last line is advice); the probe's error names the interpreter, that first line and the fix."""
    shim = tmp_path / "python3.12"
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.12: command not found' >&2\necho '' >&2\n"
                    "echo '  Python versions to be found at the same time.' >&2\nexit 127\n")
    shim.chmod(0o755)
    with pytest.raises(StacksyncError) as caught:
        runner.run_script(shim, "env")
    text = str(caught.value)
    assert text.count("\n") == 0
    assert f"{shim}: does not start a Python (exit 127: pyenv: python3.12: command not found)" in text
    assert "fix: install that Python, or pass --python" in text
