"""Hostile and careless input (issue 20, the input and transport side): secrets masked as values, not
only as URL shapes; lock includes kept inside the profile folder; empty option values refused; deep
TOML and an unusable cache folder as one line; pylock.toml validated; the index client going through
the proxies, netrc credentials and certificates pip would use.

Real pieces throughout: the task edge run as a user runs it (``python -m invoke``), the password-protected
pypiserver of ``conftest.py``, and a small forwarding HTTP proxy on 127.0.0.1 that counts requests.
"""

from __future__ import annotations

import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pkgfactory
import pytest
from pkgfactory import IndexServer
from stackprofile import LOCK_A, TOKEN_VAR, USER_VAR, write_profile

from stacksync.backends import indexapi, transport
from stacksync.core import defaults, redact
from stacksync.core.cachedir import CacheDirError, ensure_dir
from stacksync.core.errors import EmptySetting, IndexUnavailable, ProfileError
from stacksync.lock import profile, pylock
from stacksync.lock.lockfile import LockProblems, parse
from stacksync.sync.run import run
from stacksync.sync.state import Options

PY_XY = f"{sys.version_info.major}.{sys.version_info.minor}"
REPO = Path(__file__).resolve().parent.parent  # this checkout: its tasks.py and locks/
TOKEN = "tok-9f8e7d6c5b4a-SECRET"


def invoke(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The task edge, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "invoke", "-r", str(REPO), *args],
                          cwd=cwd, env=env if env is not None else dict(os.environ), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=300)


@pytest.fixture(autouse=True)
def _empty_registry() -> Iterator[None]:
    """Each test starts with no registered secret (the registry is per process)."""
    redact.forget_secrets()
    yield
    redact.forget_secrets()


# --- 1. values are masked, not only URL shapes --------------------------------------------------------

def test_an_expanded_value_is_masked_wherever_it_appears() -> None:
    url = redact.expand("http://ci:${TOKEN}@host/simple/", {"TOKEN": TOKEN})
    assert url == f"http://ci:{TOKEN}@host/simple/"
    text = f"error: bad line {TOKEN} here; see http://other/{TOKEN}/x and {TOKEN[:6]}"
    shown = redact.redact(text)
    assert TOKEN not in shown
    assert shown == "error: bad line **** here; see http://other/****/x and tok-9f"


def test_values_shorter_than_four_characters_are_not_registered() -> None:
    redact.expand("${A}${B}", {"A": "dev", "B": "x"})
    assert redact.registered_secrets() == frozenset()
    assert redact.redact("a dev build of x") == "a dev build of x"


def test_a_cut_line_never_shows_part_of_a_secret() -> None:
    redact.register_secret(TOKEN)
    line = "x" * 110 + TOKEN + "y" * 50
    shown = redact.shown_line(line)
    assert TOKEN[:5] not in shown and "****" in shown and len(shown) < 160


def test_profile_token_never_printed_in_error_or_verbose_output(index_server: IndexServer, tmp_path: Path) -> None:
    """A profile's index URL holds ${TOKEN}; the value also appears without any URL shape around it: in a
    path segment of an extra index (which the -v log shows in pip-compile's argv and the index client's
    error quotes) and literally in a requirements.in line (the 'not a requirement' error quotes it)."""
    locks = tmp_path / "locks"
    folder = locks / "tok"
    folder.mkdir(parents=True)
    (folder / "stack.toml").write_text(
        f'python = "{PY_XY}"\n'
        f'index_url = "http://${{IDX_USER}}:${{TOKEN}}@127.0.0.1:{index_server.port}/simple/"\n'
        f'extra_index_urls = ["http://127.0.0.1:{index_server.port}/${{TOKEN}}/simple/"]\n')
    (folder / "requirements.in").write_text("plain-b\n")
    token = index_server.password
    env = {**os.environ, "STACKSYNC_LOCKS_DIR": str(locks), "IDX_USER": index_server.user, "TOKEN": token}
    verbose = invoke("compile", "-p", "tok", "-v", cwd=tmp_path, env=env)
    out = verbose.stdout + verbose.stderr
    assert "stacksync: $ " in verbose.stderr, out  # -v logged the commands it started
    assert "/****/simple/" in out, out
    assert token not in out
    (folder / "requirements.in").write_text(f"plain-b\nnot a requirement {token} !!\n")
    bad = invoke("compile", "-p", "tok", cwd=tmp_path, env=env)
    assert bad.returncode == 2, bad.stderr
    assert "not a requirement" in bad.stderr and "****" in bad.stderr
    assert token not in bad.stdout + bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.slow
def test_a_verbose_sync_masks_what_a_child_prints(stack_packages: Path, index_server: IndexServer,
                                                 make_venv: pytest.FixtureRequest, tmp_path: Path) -> None:
    """``sync -v`` streams pip's output: a deferred build that prints the index token (the profile's
    ``${VAR}``, from its environment) shows it masked on the console, in the build log and in the receipt."""
    folder = write_profile(tmp_path / "standin", stack_packages, index_server, LOCK_A)
    venv = make_venv()  # type: ignore[operator]
    cache, receipt = tmp_path / "cache", tmp_path / "receipt.json"
    token = index_server.password
    env = {**os.environ, USER_VAR: index_server.user, TOKEN_VAR: token, "STACKSYNC_CACHE_DIR": str(cache),
           "STANDIN_BUILD_ECHO": TOKEN_VAR}  # the stand-in's setup.py prints $SS_TEST_INDEX_TOKEN and fails
    proc = invoke("sync", "--profile", str(folder), "--venv", str(venv), "-y", "-v", "--report", str(receipt),
                  cwd=tmp_path, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert f"standin build env: {TOKEN_VAR}=****" in out, out[-3000:]  # the child's line came through, masked
    assert "stacksync: $ " in proc.stderr  # -v
    assert token not in out
    logs = sorted(cache.rglob("logs/build-flash-attn-like.log"))
    assert logs, sorted(str(p) for p in cache.rglob("*"))
    log = logs[0].read_text(encoding="utf-8")
    assert f"{TOKEN_VAR}=****" in log and token not in log, log
    if receipt.exists():
        assert token not in receipt.read_text(encoding="utf-8")


# --- 2. includes stay inside the folder of the lock ---------------------------------------------------

@pytest.mark.parametrize("target", ["/proc/self/environ", "/etc/passwd", "../../x", "../outside.txt"])
def test_an_include_outside_the_lock_folder_is_refused_not_followed(tmp_path: Path, target: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACKSYNC_TEST_SECRET", TOKEN)
    (tmp_path / "outside.txt").write_text(f"leak=={TOKEN}\n")
    folder = tmp_path / "prof"
    folder.mkdir()
    lock = folder / "requirements.txt"
    lock.write_text(f"a==1.0 --hash=sha256:{'a' * 64}\n-r {target}\n")
    with pytest.raises(LockProblems) as info:
        parse(lock, lock=True)
    text = str(info.value)
    assert text.splitlines() == [text]
    assert text.startswith(f"{lock}:2: -r {target} names a file outside the folder {folder}")
    assert "(fix: copy the file into" in text
    assert TOKEN not in text and "root:" not in text


def test_a_symlink_out_of_the_folder_is_refused_and_an_include_inside_is_followed(tmp_path: Path) -> None:
    folder = tmp_path / "prof"
    folder.mkdir()
    (folder / "link.txt").symlink_to("/etc/passwd")
    (folder / "base.txt").write_text(f"b==2.0 --hash=sha256:{'b' * 64}\n")
    lock = folder / "requirements.txt"
    lock.write_text(f"a==1.0 --hash=sha256:{'a' * 64}\n-r base.txt\n")
    assert {p.name for p in parse(lock, lock=True).pins} == {"a", "b"}
    lock.write_text(f"a==1.0 --hash=sha256:{'a' * 64}\n-c link.txt\n")
    with pytest.raises(LockProblems, match=r"requirements.txt:2: -c link.txt names a file outside"):
        parse(lock, lock=True)


def test_proc_environ_through_the_task_edge_prints_no_secret(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.txt"
    lock.write_text("-r /proc/self/environ\n")
    env = {**os.environ, "STACKSYNC_TEST_SECRET": TOKEN}
    proc = invoke("diff", str(lock), str(lock), cwd=tmp_path, env=env)
    assert proc.returncode == 2
    assert TOKEN not in proc.stdout + proc.stderr
    assert "names a file outside the folder" in proc.stderr and "Traceback" not in proc.stderr


def test_requirements_in_including_etc_passwd_is_refused_by_compile(tmp_path: Path) -> None:
    folder = tmp_path / "locks" / "inc"
    folder.mkdir(parents=True)
    (folder / "stack.toml").write_text(f'python = "{PY_XY}"\nindex_url = "http://127.0.0.1:9/simple/"\n')
    (folder / "requirements.in").write_text("plain-b\n-r /etc/passwd\n")
    env = {**os.environ, "STACKSYNC_LOCKS_DIR": str(tmp_path / "locks")}
    proc = invoke("compile", "-p", "inc", cwd=tmp_path, env=env)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "requirements.in:2: -r /etc/passwd names a file outside the folder" in lines[0], lines
    assert "root:" not in proc.stdout + proc.stderr
    assert not (folder / "requirements.txt").exists()


def test_a_huge_bad_line_is_shown_cut_and_masked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINE_TOKEN", TOKEN)
    lock = tmp_path / "requirements.in"
    lock.write_text("ok==1\n" + "z" * 50 + " ${LINE_TOKEN} " + "q\x00" * 20_000 + "\n")
    with pytest.raises(LockProblems) as info:
        parse(lock)
    text = str(info.value)
    assert len(text.splitlines()) == 1 and len(text) < 600, text[:800]
    assert text.startswith(f"{lock}:2: not a requirement: 'zzz")
    assert TOKEN not in text and "****" in text and "\x00" not in text


# --- 3. empty option values ---------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("argv", [("-p", ""), ("--venv", ""), ("--python", ""), ("--lock", ""),
                                  ("--backend", ""), ("--profile=",)])
def test_an_empty_option_value_is_refused_and_the_target_unchanged(argv: tuple[str, ...], tmp_path: Path,
                                                                   make_venv: pytest.FixtureRequest) -> None:
    venv = make_venv()  # type: ignore[operator]
    site = sorted(p.name for p in (venv / "lib").rglob("site-packages/*"))
    target = [] if argv[0] in ("--venv", "--python") else ["--venv", str(venv)]
    proc = invoke("sync", *target, *argv, "-y", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "was given an empty value" in lines[0] and "(fix:" in lines[0], proc.stderr
    assert sorted(p.name for p in (venv / "lib").rglob("site-packages/*")) == site


@pytest.mark.slow
def test_an_option_left_out_still_takes_its_default(tmp_path: Path, make_venv: pytest.FixtureRequest) -> None:
    venv = make_venv()  # type: ignore[operator]
    env = {**os.environ, "STACKSYNC_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("STACKSYNC_PROFILE", None)
    proc = invoke("plan", "--venv", str(venv), cwd=REPO, env=env)  # no -p: the repository's demo profile
    assert proc.returncode == 0, proc.stderr
    assert "plan:" in proc.stdout + proc.stderr


def test_an_empty_positional_argument_is_refused(tmp_path: Path) -> None:
    proc = invoke("diff", "", "x", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("stacksync: error: diff: A is empty (an unset variable?); nothing was done "
                                   "(fix: give A a value)")


def test_an_empty_profile_name_is_refused_by_the_loader(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="the profile name is empty"):
        profile.load("", locks_dir=tmp_path)


@pytest.mark.parametrize("name", defaults.VALUE_SETTINGS)
def test_an_empty_setting_is_refused_naming_it(name: str) -> None:
    with pytest.raises(EmptySetting) as info:
        defaults.check_settings({**{n: "x" for n in defaults.VALUE_SETTINGS}, name: ""})
    text = str(info.value)
    assert len(text.splitlines()) == 1 and text.startswith(f"{name} is set but empty"), text
    assert f"fix: unset {name} for the default, or give it a value" in text
    defaults.check_settings({n: "x" for n in defaults.VALUE_SETTINGS})  # set ones pass
    defaults.check_settings({})  # unset ones mean the default


def test_every_stacksync_setting_read_is_checked_for_emptiness() -> None:
    """Each ``STACKSYNC_*`` name the package reads (other than test hooks) is in VALUE_SETTINGS."""
    hooks = {"STACKSYNC_FAULT", "STACKSYNC_FAULT_", "STACKSYNC_FAULT_PATH", "STACKSYNC_FAULT_PGID",
             "STACKSYNC_FAULT_EVENT", "STACKSYNC_LIBCUDA", "STACKSYNC_NVIDIA_SMI", "STACKSYNC_PLATFORM",
             "STACKSYNC_TRACE_NOOP"}
    names = set()
    for path in (REPO / "stacksync").rglob("*.py"):
        names |= set(re.findall(r"\"(STACKSYNC_[A-Z_]+)\"", path.read_text(encoding="utf-8")))
    assert names - hooks <= set(defaults.VALUE_SETTINGS), sorted(names - hooks - set(defaults.VALUE_SETTINGS))


@pytest.mark.slow
def test_an_empty_profile_setting_is_refused_and_a_synced_target_unchanged(
        stack_packages: Path, index_server: IndexServer, make_venv: pytest.FixtureRequest, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``STACKSYNC_PROFILE=""`` (``$PROFILE`` unset in CI) meant the default profile: ``sync -y`` in this
    repository re-synced a twin to ``demo``. Now one line naming the variable, and the twin as it was."""
    monkeypatch.setenv(USER_VAR, index_server.user)
    monkeypatch.setenv(TOKEN_VAR, index_server.password)
    folder = write_profile(tmp_path / "standin", stack_packages, index_server, LOCK_A)
    venv = make_venv()  # type: ignore[operator]
    run(Options(profile=str(folder), venv=str(venv), cache_dir=tmp_path / "cache", yes=True))

    def pip_freeze() -> str:
        return subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "freeze", "--all"], capture_output=True,
                              text=True, check=True, stdin=subprocess.DEVNULL).stdout

    before = pip_freeze()
    assert "torch-like==2.4.0" in before.replace("_", "-")
    env = {**os.environ, "STACKSYNC_PROFILE": "", "STACKSYNC_CACHE_DIR": str(tmp_path / "cache-demo")}
    proc = invoke("sync", "-y", "--venv", str(venv), cwd=REPO, env=env)  # REPO has locks/demo: the old default
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == ["stacksync: error: STACKSYNC_PROFILE is set but empty (an unset variable, as in "
                     "STACKSYNC_PROFILE=\"$NAME\"?); nothing was done (fix: unset STACKSYNC_PROFILE for the "
                     "default, or give it a value)"], proc.stderr
    assert pip_freeze() == before


# --- 4. deep TOML, unusable cache folder --------------------------------------------------------------

def test_a_3000_deep_stack_toml_is_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "locks" / "deep"
    folder.mkdir(parents=True)
    (folder / "stack.toml").write_text("x = " + "[" * 3000 + "]" * 3000 + "\n")
    with pytest.raises(ProfileError, match="nested too deeply"):
        profile.load("deep", locks_dir=tmp_path / "locks")
    env = {**os.environ, "STACKSYNC_LOCKS_DIR": str(tmp_path / "locks")}
    proc = invoke("plan", "-p", "deep", cwd=tmp_path, env=env)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "nested too deeply" in proc.stderr, proc.stderr[-2000:]


def test_a_3000_deep_pylock_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "pylock.toml"
    path.write_text('lock-version = "1.0"\nx = ' + "[" * 3000 + "]" * 3000 + "\n")
    with pytest.raises(LockProblems, match="nested too deeply"):
        pylock.read(path)


@pytest.mark.slow
def test_fetch_into_a_cache_under_dev_null_is_one_line_and_the_target_unchanged(
        index_server: IndexServer, stack_packages: Path, tmp_path: Path, make_venv: pytest.FixtureRequest) -> None:
    wheel = next(stack_packages.glob("plain_b-1.0-*.whl"))
    folder = tmp_path / "locks" / "cache"
    folder.mkdir(parents=True)
    (folder / "stack.toml").write_text(f'python = "{PY_XY}"\nindex_url = "http://${{IDX_USER}}:${{IDX_PASS}}@'
                                       f'127.0.0.1:{index_server.port}/simple/"\n')
    (folder / "requirements.in").write_text("plain-b\n")
    (folder / "requirements.txt").write_text(f"plain-b==1.0 \\\n    --hash=sha256:{pkgfactory.sha256_of(wheel)}\n")
    venv = make_venv()  # type: ignore[operator]
    site = sorted(p.name for p in (venv / "lib").rglob("site-packages/*"))
    env = {**os.environ, "STACKSYNC_LOCKS_DIR": str(tmp_path / "locks"), "STACKSYNC_CACHE_DIR": "/dev/null",
           "IDX_USER": index_server.user, "IDX_PASS": index_server.password}
    proc = invoke("sync", "-p", "cache", "--venv", str(venv), "-y", "--accept-foreign-lock", cwd=tmp_path, env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("stacksync: error:")]
    assert errors == ["stacksync: error: /dev/null/cache: cannot use it as a folder for stacksync's files (Not a "
                      "directory); nothing was changed (fix: set STACKSYNC_CACHE_DIR to a folder you can write, or "
                      "make this one writable)"], proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in (venv / "lib").rglob("site-packages/*")) == site


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() == 0 and not shutil.which("setpriv"),
                    reason="root writes into a read-only folder; dropping to another user needs setpriv")
def test_a_read_only_cache_folder_is_one_line_and_the_target_unchanged(
        index_server: IndexServer, stack_packages: Path, _virtualenv_app_data: Path) -> None:
    """A cache folder the user cannot write (mode 555, owned by someone else). Root writes through any
    mode, so under root the sync runs as user ``nobody`` (setpriv), in a folder ``nobody`` can read, on a
    target venv ``nobody`` owns."""
    base = Path(tempfile.mkdtemp(prefix="stacksync-ro-cache-"))
    try:
        base.chmod(0o755)
        wheel = next(stack_packages.glob("plain_b-1.0-*.whl"))
        folder = base / "locks" / "cache"
        folder.mkdir(parents=True)
        (folder / "stack.toml").write_text(f'python = "{PY_XY}"\nindex_url = "http://${{IDX_USER}}:${{IDX_PASS}}@'
                                           f'127.0.0.1:{index_server.port}/simple/"\n')
        (folder / "requirements.in").write_text("plain-b\n")
        (folder / "requirements.txt").write_text(f"plain-b==1.0 \\\n    --hash=sha256:{pkgfactory.sha256_of(wheel)}\n")
        # the other user must be able to run the target's base interpreter (this one may sit under /root)
        python = next((p for p in (f"/usr/bin/python{PY_XY}", f"/usr/local/bin/python{PY_XY}")
                       if os.path.exists(p)), sys.executable)
        venv = base / "venv"
        subprocess.run([sys.executable, "-m", "virtualenv", "-q", "--python", python, "--no-periodic-update",
                        "--no-download", "--app-data", str(_virtualenv_app_data), "--no-vcs-ignore", "--activators",
                        "", str(venv)], check=True, stdin=subprocess.DEVNULL, capture_output=True)
        (base / "home").mkdir()
        cache = base / "cache"
        cache.mkdir()
        cache.chmod(0o555)
        drop: list[str] = []
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "65534:65534", str(venv), str(base / "home")], check=True)
            drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]
        site = sorted(p.name for p in (venv / "lib").rglob("site-packages/*"))
        env = {**os.environ, "HOME": str(base / "home"), "STACKSYNC_LOCKS_DIR": str(base / "locks"),
               "STACKSYNC_CACHE_DIR": str(cache), "STACKSYNC_WHEELHOUSE": str(base / "home" / "wheelhouse"),
               "IDX_USER": index_server.user, "IDX_PASS": index_server.password}
        proc = subprocess.run([*drop, sys.executable, "-m", "invoke", "-r", str(REPO), "sync", "-p", "cache", "--venv",
                               str(venv), "-y", "--accept-foreign-lock"], cwd=base / "home", env=env,
                              capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        errors = [line for line in proc.stderr.splitlines() if line.startswith("stacksync: error:")]
        assert len(errors) == 1 and errors[0].startswith(f"stacksync: error: {cache}"), proc.stderr
        assert "Traceback" not in proc.stdout + proc.stderr
        assert "cannot use it as a folder for stacksync's files (Permission denied)" in errors[0], errors
        assert "fix: set STACKSYNC_CACHE_DIR to a folder you can write" in errors[0], errors
        assert sorted(p.name for p in (venv / "lib").rglob("site-packages/*")) == site
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() == 0 and not shutil.which("setpriv"),
                    reason="root reads any folder; dropping to another user needs setpriv")
def test_a_venv_the_user_cannot_read_is_one_line_not_a_traceback() -> None:
    """``--venv`` naming a folder the user cannot enter: ``Path.exists`` raised PermissionError (a
    traceback); now the TargetError line."""
    base = Path(tempfile.mkdtemp(prefix="stacksync-unreadable-"))
    try:
        base.chmod(0o755)
        (base / "venv" / "bin").mkdir(parents=True)
        (base / "venv").chmod(0o700)
        drop = (["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]
                if os.geteuid() == 0 else [])
        if not drop:
            (base / "venv").chmod(0o000)
        code = ("import sys\nfrom stacksync.env.environment import find_python\nfrom stacksync.core.errors import "
                "StacksyncError\ntry:\n    find_python(sys.argv[1])\nexcept StacksyncError as exc:\n    print(exc)\n")
        proc = subprocess.run([*drop, sys.executable, "-c", code, str(base / "venv")], cwd="/", capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, timeout=60,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        assert "Traceback" not in proc.stderr, proc.stderr
        assert proc.stdout.startswith(f"{base / 'venv'}: cannot reach its interpreter (Permission denied"), proc.stdout
    finally:
        (base / "venv").chmod(0o700)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("where", ["/dev/null/demo", "file/cache"])
def test_an_unusable_cache_folder_is_one_line_naming_the_variable(where: str, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder\n")
    path = Path(where) if where.startswith("/") else tmp_path / where
    with pytest.raises(CacheDirError) as info:
        ensure_dir(path)
    assert str(info.value) == (f"{path}: cannot use it as a folder for stacksync's files (Not a directory); nothing "
                               "was changed (fix: set STACKSYNC_CACHE_DIR to a folder you can write, or make this "
                               "one writable)")
    assert ensure_dir(tmp_path / "ok" / "cache").is_dir()


# --- 5. pylock.toml -----------------------------------------------------------------------------------

_WHEEL = '{{ url = "https://h/{n}-{v}-py3-none-any.whl", hashes = {{ sha256 = "{h}" }} }}'


def _entry(name: str, version: str, marker: str = "") -> str:
    wheel = _WHEEL.format(n=name, v=version, h="ab" * 32)
    return (f'[[packages]]\nname = "{name}"\nversion = "{version}"\n' + (f"marker = '{marker}'\n" if marker else "")
            + f"wheels = [{wheel}]\n\n")


def test_pylock_two_unconditional_entries_for_one_package_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "pylock.toml"
    path.write_text('lock-version = "1.0"\ncreated-by = "x"\n\n' + _entry("a", "1.0") + _entry("b", "1.0")
                    + _entry("a", "2.0"))
    with pytest.raises(LockProblems) as info:
        pylock.read(path)
    assert str(info.value) == (f"{path}:14: a is listed twice without a marker: lines 4 and 14 (fix: keep one "
                               "[[packages]] entry, or give each a marker that tells them apart)")


def test_pylock_entries_apart_by_marker_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "pylock.toml"
    path.write_text('lock-version = "1.0"\ncreated-by = "x"\n\n' + _entry("a", "1.0", 'sys_platform == "linux"')
                    + _entry("a", "2.0", 'sys_platform == "win32"'))
    assert [p.version for p in pylock.read(path).pins] == ["1.0", "2.0"]


def test_pylock_is_validated_by_packaging(tmp_path: Path) -> None:
    pytest.importorskip("packaging.pylock", reason="packaging < 26 has no pylock validation")
    path = tmp_path / "pylock.toml"
    path.write_text('lock-version = "1.0"\ncreated-by = "x"\n\n' + _entry("a", "1.0")
                    + _entry("b", "1.0").replace('version = "1.0"\n', 'version = "1.0"\nrequires-python = "=>3"\n'))
    with pytest.raises(LockProblems) as info:
        pylock.read(path)
    assert str(info.value).startswith(f"{path}:9: not a valid PEP 751 lock: ")
    assert "packages[1].requires-python" in str(info.value)


# --- 6. the index client's transport ------------------------------------------------------------------

class _CountingProxy(ThreadingHTTPServer):
    """A forwarding proxy for plain http: counts the requests it forwards."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.seen: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(BaseHTTPRequestHandler):
    server: _CountingProxy

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.server.seen.append(self.path)
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "accept", "user-agent")}
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with direct.open(urllib.request.Request(self.path, headers=headers), timeout=30) as resp:
                status, body, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            status, body, ctype = exc.code, exc.read(), exc.headers.get("Content-Type", "")
        self.send_response(status)
        self.send_header("Content-Type", ctype or "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[_CountingProxy]:
    for key in ("http_proxy", "https_proxy", "no_proxy", "all_proxy"):
        monkeypatch.delenv(key, raising=False)
        monkeypatch.delenv(key.upper(), raising=False)
    server = _CountingProxy()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("variable", ["PIP_PROXY", "HTTP_PROXY"])
def test_the_index_client_goes_through_the_proxy_pip_would_use(variable: str, proxy: _CountingProxy,
                                                               index_server: IndexServer,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable, proxy.url.removeprefix("http://") if variable == "PIP_PROXY" else proxy.url)
    files = indexapi.project_files(index_server.auth_url, "plain-b")
    assert files and all(f.name == "plain-b" for f in files)
    assert proxy.seen == [f"{index_server.base_url}/simple/plain-b/"]


def test_no_proxy_hosts_are_asked_directly(proxy: _CountingProxy, index_server: IndexServer,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert indexapi.project_files(index_server.auth_url, "plain-b")
    assert proxy.seen == []


def test_netrc_credentials_open_a_protected_index(index_server: IndexServer, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(IndexUnavailable, match="credentials refused"):
        indexapi.project_files(index_server.url, "plain-b")
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {index_server.user} password {index_server.password}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    files = indexapi.project_files(index_server.url, "plain-b")
    assert files and all(f.name == "plain-b" for f in files)
    assert redact.redact(f"password {index_server.password}") == "password ****"


def test_keyring_credentials_open_a_protected_index(index_server: IndexServer, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """pip asks keyring for an index URL without userinfo (``PIP_KEYRING_PROVIDER=import``); so does the
    index client. A keyring backend of this test's own holds the password (nothing of pip is mocked)."""
    keyring = pytest.importorskip("keyring", reason="keyring is not installed (it comes with the [dev] extras)")
    from keyring.backend import KeyringBackend
    from keyring.credentials import SimpleCredential

    class Memory(KeyringBackend):  # type: ignore[misc]
        priority = 1

        def __init__(self, store: dict[str, tuple[str, str]]) -> None:
            super().__init__()
            self.store = store
            self.asked: list[str] = []

        def get_password(self, service: str, username: str) -> str | None:
            found = self.store.get(service)
            return found[1] if found else None

        def get_credential(self, service: str, username: str | None) -> SimpleCredential | None:
            self.asked.append(service)
            found = self.store.get(service)
            return SimpleCredential(*found) if found else None

        def set_password(self, service: str, username: str, password: str) -> None:
            self.store[service] = (username, password)

        def delete_password(self, service: str, username: str) -> None:
            self.store.pop(service, None)

    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PIP_KEYRING_PROVIDER", "import")
    previous = keyring.get_keyring()
    backend = Memory({f"127.0.0.1:{index_server.port}": (index_server.user, index_server.password)})
    keyring.set_keyring(backend)
    try:
        files = indexapi.project_files(index_server.url, "plain-b")
        assert files and all(f.name == "plain-b" for f in files)
        assert backend.asked
        backend.store.clear()
        with pytest.raises(IndexUnavailable, match="credentials refused"):
            indexapi.project_files(index_server.url, "plain-c-nope")
        monkeypatch.setenv("PIP_KEYRING_PROVIDER", "disabled")  # as pip: not asked at all
        backend.asked.clear()
        assert transport.stored_credentials(index_server.url) is None and not backend.asked
    finally:
        keyring.set_keyring(previous)
    assert redact.redact(f"password {index_server.password}") == "password ****"


def test_without_pip_cert_the_system_trust_store_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """pip verifies TLS against the system trust store (truststore); the index client does the same:
    truststore's context when it is installed, else Python's default context, which loads the system's
    CA certificates. ``PIP_CERT`` replaces both, as in pip."""
    monkeypatch.delenv("PIP_CERT", raising=False)
    monkeypatch.delenv("PIP_CLIENT_CERT", raising=False)
    ctx = transport._ssl_context(transport.transport_settings())
    try:
        import truststore  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
        if any(os.path.exists(p) for p in (ssl.get_default_verify_paths().cafile or "",
                                           ssl.get_default_verify_paths().capath or "")):
            assert ctx.cert_store_stats()["x509_ca"] > 0 or ssl.get_default_verify_paths().capath
    else:
        assert isinstance(ctx, truststore.SSLContext)
    monkeypatch.setenv("PIP_CERT", "/nonexistent/ca.pem")
    with pytest.raises(IndexUnavailable, match="PIP_CERT=/nonexistent/ca.pem: no such file"):
        transport._ssl_context(transport.transport_settings())


def test_a_client_certificate_that_cannot_be_loaded_is_one_line(index_server: IndexServer, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_CLIENT_CERT", str(tmp_path / "missing.pem"))
    with pytest.raises(IndexUnavailable) as info:
        indexapi.project_files(index_server.auth_url, "plain-b")
    assert str(info.value).startswith(f"PIP_CLIENT_CERT={tmp_path / 'missing.pem'}: cannot load it")
    assert "(fix: point PIP_CLIENT_CERT at one PEM file" in str(info.value)


def test_transport_settings_read_pip_proxy_before_the_environment_proxies() -> None:
    settings = transport.transport_settings({"PIP_PROXY": "u:pw-proxy-secret@proxy:3128",
                                            "HTTPS_PROXY": "http://other:8080", "NO_PROXY": "x"})
    assert dict(settings.proxies) == {"http": "http://u:pw-proxy-secret@proxy:3128",
                                      "https": "http://u:pw-proxy-secret@proxy:3128"}
    assert redact.redact("pw-proxy-secret") == "****"
