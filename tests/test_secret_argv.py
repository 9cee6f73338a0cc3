"""No credential in any process list: while compile, fetch and sync run against the password-protected
local index, a sampler thread reads ``/proc/PID/cmdline`` of every process on the machine (world-readable:
what any local user sees) and records each one that holds the index password. The ``-v`` log is
checked too. Unit tests pin the runner's move of index options into the child's environment."""

from __future__ import annotations

import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clihelp import invoke
from pkgfactory import IndexServer
from stackprofile import LOCK_A, TOKEN_VAR, USER_VAR, expected_a, freeze, virtualenv_at, write_profile

from stacksync.backends.uv import uv_executable
from stacksync.core import runner


class ArgvSampler:
    """Polls every ``/proc/PID/cmdline`` until stopped; ``hits`` holds the argvs that contain ``secret``,
    ``seen`` counts the distinct processes read (to show that the sampler saw the children at all)."""

    def __init__(self, secret: str, interval: float = 0.002) -> None:
        self.secret = secret.encode()
        self.interval = interval
        self.hits: list[str] = []
        self.seen: set[tuple[str, bytes]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        me = str(os.getpid())
        while not self._stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit() or pid == me:
                    continue
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as fh:
                        cmd = fh.read()
                except OSError:
                    continue
                self.seen.add((pid, cmd[:200]))
                if self.secret in cmd:
                    self.hits.append(cmd.replace(b"\0", b" ").decode(errors="replace")[:400])
            time.sleep(self.interval)

    def __enter__(self) -> ArgvSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def saw(self, word: str) -> bool:
        return any(word.encode() in cmd for _, cmd in self.seen)


# --- the runner's move (no process) ---------------------------------------------------------------------

def test_index_options_move_to_the_environment() -> None:
    args, env = runner.index_options_to_env(
        ["pip", "download", "--index-url", "https://u:tok@idx.example/simple", "--extra-index-url",
         "https://a.example/simple", "--trusted-host", "a.example", "--extra-index-url=https://t@b.example/s",
         "--no-emit-index-url", "-r", "req.txt"])
    assert args == ["pip", "download", "--trusted-host", "a.example", "--no-emit-index-url", "-r", "req.txt"]
    assert env == {"PIP_INDEX_URL": "https://u:tok@idx.example/simple", "UV_INDEX_URL": "https://u:tok@idx.example/simple",
                   "PIP_EXTRA_INDEX_URL": "https://a.example/simple https://t@b.example/s",
                   "UV_EXTRA_INDEX_URL": "https://a.example/simple https://t@b.example/s"}
    assert runner.index_options_to_env(["python", "-I", "x.py"]) == (["python", "-I", "x.py"], {})


def test_a_credential_left_in_argv_is_refused_before_starting(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(runner.SecretInArgv) as err:
        runner.run(["touch", str(marker), "--find-links", "https://me:s3cret-X@h.example/links"])
    assert not marker.exists() and "s3cret-X" not in str(err.value)
    # an ssh git URL names no secret; a plain URL neither
    assert runner.run(["echo", "git+ssh://git@github.com/x.git", "https://h.example/simple"]).returncode == 0


def test_the_child_gets_the_index_in_its_environment(tmp_path: Path) -> None:
    script = '[ "$PIP_INDEX_URL" = "$WANT" ] && [ "$UV_INDEX_URL" = "$WANT" ] && echo "same|$UV_EXTRA_INDEX_URL|$#"'
    out = runner.run(["sh", "-c", script, "sh", "--index-url", "https://u:tok@idx.example/simple",
                      "--extra-index-url", "https://x/simple"],
                     env=runner.clean_env({"WANT": "https://u:tok@idx.example/simple"}))
    assert out.stdout.strip() == "same|https://x/simple|0"
    assert all("tok" not in a for a in out.argv)


# --- real runs against the password-protected index ------------------------------------------------------

@pytest.fixture(scope="module")
def world(stack_packages: Path, _virtualenv_app_data: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("secret-argv")
    # a password of this module's own: other tests on the machine use the fixture's default one
    index_server = IndexServer(stack_packages, root / "server", password=f"argv-{secrets.token_hex(8)}")
    index_server.start()
    prof = write_profile(root / "standin", stack_packages, index_server, LOCK_A)
    env = runner.clean_env({USER_VAR: index_server.user, TOKEN_VAR: index_server.password,
                            "STACKSYNC_CACHE_DIR": str(root / "cache"), "XDG_CACHE_HOME": str(root / "xdg"),
                            "STACKSYNC_WHEELHOUSE": str(root / "wheelhouse")})
    try:
        yield {"root": root, "profile": prof, "env": env, "server": index_server, "stack": stack_packages,
               "app_data": _virtualenv_app_data}
    finally:
        index_server.stop()


def _checked(world: dict[str, Any], *args: str, word: str) -> str:
    server: IndexServer = world["server"]
    with ArgvSampler(server.password) as sampler:
        proc = invoke(*args, "--verbose", env=world["env"], timeout=600)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    assert sampler.saw(word), f"the sampler never saw a {word!r} process"
    assert not sampler.hits, sampler.hits
    assert server.password not in text
    return text


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["pip-tools", "uv"])
def test_no_secret_in_any_argv_or_log(world: dict[str, Any], backend: str) -> None:
    if backend == "uv" and uv_executable() is None:
        pytest.skip("uv is not installed")
    root = Path(world["root"])
    prof = root / f"p-{backend}" / "standin"
    shutil.copytree(world["profile"], prof)
    # compile: pip-compile (or uv pip compile) resolves from the index
    text = _checked(world, "compile", "--profile", str(prof), "--backend", backend, word="compile")
    assert "PIP_INDEX_URL=" in text or backend == "uv"  # -v shows where the index went (redacted)
    lock = (prof / "requirements.txt").read_text(encoding="utf-8")
    assert world["server"].password not in lock and "127.0.0.1" not in lock
    # fetch, then a full sync (base, rest, deferred build, verify) of a fresh venv
    venv = virtualenv_at(root / f"venv-{backend}", world["app_data"])
    common = ["--profile", str(prof), "--venv", str(venv), "--yes", "--backend", backend]
    _checked(world, "fetch", *common, word="download" if backend == "pip-tools" else "stacksync")
    _checked(world, "sync", *common, word="pip")
    got = freeze(venv)  # (uv may pick a local-version build of a pin from the index: names only then)
    want = expected_a(world["stack"])
    assert {k: got.get(k) for k in want} == want if backend == "pip-tools" else set(want) <= set(got)


@pytest.mark.slow
def test_no_secret_in_argv_during_publish_and_nox_reproduce(world: dict[str, Any]) -> None:
    from test_reproduce import nox

    root = Path(world["root"])
    server: IndexServer = world["server"]
    if not list((root / "wheelhouse").rglob("*.whl")):  # run alone: the sync above fills the wheelhouse
        venv = virtualenv_at(root / "venv-publish", world["app_data"])
        _checked(world, "sync", "--profile", str(world["profile"]), "--venv", str(venv), "--yes", word="pip")
    team = IndexServer(root / "team-packages", root / "team-server", user=server.user, password=server.password)
    (root / "team-packages").mkdir(exist_ok=True)
    team.start()
    try:
        to = f"http://${{{USER_VAR}}}:${{{TOKEN_VAR}}}@127.0.0.1:{team.port}/"
        _checked(world, "publish", "--profile", str(world["profile"]), "--to", to, word="twine")
        assert list((root / "team-packages").glob("*.whl"))
    finally:
        team.stop()
    locks = root / "nox-run" / "locks"
    shutil.copytree(world["profile"], locks / "standin")
    with ArgvSampler(server.password) as sampler:
        proc = nox(root / "nox-run", server, "-s", "reproduce(profile='standin')")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sampler.saw("reproduce") and not sampler.hits, sampler.hits
    assert server.password not in proc.stdout + proc.stderr
