"""The pieces of crash consistency, each on real files and processes: the journal, the damage scan
and its repair, lock validation, probe timeouts (process group killed), the probe's own JSON
channel, and the one-line errors of include cycles / odd profile names / non-UTF-8 stack.toml."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pkgfactory import installed_dist as _dist

from stacksync.compile.compiler import header
from stacksync.core import runner
from stacksync.core.errors import CommandFailed, ProbeError, ProfileError
from stacksync.env import damage, journal, sitepackages
from stacksync.env.environment import probe
from stacksync.lock import lockcheck
from stacksync.lock import profile as profile_mod
from stacksync.lock.lockfile import LockProblems, parse
from stacksync.sync import repair
from stacksync.sync.plan import Action, Plan

HASH = "a" * 64


# --- journal ----------------------------------------------------------------------------------------------

def test_journal_round_trip_is_atomic_and_removed_at_the_end(tmp_path: Path) -> None:
    data = journal.begin(tmp_path, plan={"summary": "1 install"}, lock_sha256=HASH, deferred_sha256=None,
                         profile="demo", steps=["plan", "base"])
    assert journal.read(tmp_path) == data and data.phase == "begin"
    journal.phase(tmp_path, data, "base")
    journal.phase(tmp_path, data, "rest")
    got = journal.read(tmp_path)
    assert got is not None and got.phase == "rest" and got.done == ["base"] and got.lock_sha256 == HASH
    on_disk = json.loads(journal.path(tmp_path).read_text(encoding="utf-8"))  # the document's keys, unchanged
    assert set(on_disk) == {"stacksync_journal", "pid", "started", "updated", "profile", "lock_sha256",
                            "deferred_sha256", "steps", "phase", "done", "plan"}
    assert on_disk["stacksync_journal"] == 1 and on_disk["plan"] == {"summary": "1 install"}
    assert [p.name for p in tmp_path.iterdir()] == [journal.JOURNAL_FILE]  # no temporary file left
    assert "stopped in phase 'rest' (phases done: base)" in journal.describe(got)
    journal.finish(tmp_path)
    assert journal.read(tmp_path) is None


def test_journal_text_is_the_documents_json_with_the_plan_encoded_once(tmp_path: Path) -> None:
    plan = {"phases": {"rest": [{"name": "a", "action": "install", "installed": None, "locked": "1.0",
                                 "reason": "caf\u00e9 \"x\""}]}, "summary": "1 install", "empty": False}
    data = journal.begin(tmp_path, plan=plan, lock_sha256=HASH, deferred_sha256=None, profile="demo",
                         steps=["plan", "rest"])

    def on_disk() -> str:
        return journal.path(tmp_path).read_text(encoding="utf-8")

    assert on_disk() == json.dumps(data.to_json(), sort_keys=True) + "\n"
    for name in ("rest", "verify"):
        journal.phase(tmp_path, data, name)
        assert on_disk() == json.dumps(data.to_json(), sort_keys=True) + "\n"  # byte for byte, as before
    data.plan = {"summary": "another plan"}  # another object: encoded anew, never the kept text
    journal.phase(tmp_path, data, "done")
    assert json.loads(on_disk())["plan"] == {"summary": "another plan"}
    assert journal.read(tmp_path) == data  # the kept encoding is no part of the journal's value


def test_an_unreadable_journal_still_counts_as_left_over(tmp_path: Path) -> None:
    journal.path(tmp_path).write_bytes(b"\xff{not json")
    assert journal.read(tmp_path) == journal.Journal(readable=False)
    assert damage.scan(tmp_path, []).found


# --- damage and repair ---------------------------------------------------------------------------------------

def test_damage_scan_finds_stashes_recordless_and_missing_files(tmp_path: Path) -> None:
    sp = tmp_path / "lib" / "python3.11" / "site-packages"
    _dist(sp, "good", "1.0", {"good/__init__.py": ""}, extra_record=("good/__pycache__/x.cpython-311.pyc",
                                                                     "good/__pycache__", "../../../bin/good"))
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "good").write_text("")
    _dist(sp, "torch-like", "2.4.0", {"torch_like/__init__.py": ""}, record=False)
    _dist(sp, "plain-a", "1.0", {"plain_a/__init__.py": ""})
    (sp / "plain_a" / "__init__.py").unlink()
    conda = _dist(sp, "conda-made", "1.0", {}, record=False)  # another installer's records: not ours to judge
    (conda / "INSTALLER").write_text("conda\n")
    stash = _dist(sp, "torch-like", "2.3.0", {}).rename(sp / "~orch_like-2.3.0.dist-info")
    (sp / "~lain_b").mkdir()
    found = damage.scan(tmp_path, [str(sp)])
    assert [p.name for p in found.stashes] == ["~lain_b", stash.name]
    assert {(b.name, b.has_record, b.missing) for b in found.broken} == {
        ("torch-like", False, ()), ("plain-a", True, ("plain_a/__init__.py",))}
    assert found.names() == {"torch-like", "plain-a"} and found.journal is None
    text = found.summary()
    assert "2 pip stash entries" in text and "no RECORD" in text and "plain_a/__init__.py" in text
    # the fast reader skips the stash (as pip and the probe do): torch-like is the 2.4.0 one
    dists = sitepackages.read_distributions([str(sp)])
    assert dists is not None and {d["name"]: d["version"] for d in dists}["torch-like"] == "2.4.0"

    plan = Plan(phases={"base": [Action("base", "torch-like", "keep", "2.4.0", "2.4.0")],  # type: ignore[arg-type]
                        "rest": [Action("rest", "plain-a", "keep", "1.0", "1.0"),  # type: ignore[arg-type]
                                 Action("rest", "good", "remove", "1.0", None)],  # type: ignore[arg-type]
                        "deferred": []})
    marked = repair.mark_reinstall(plan, found)
    assert {a.name: a.kind for a in marked.actions()} == {"torch-like": "reinstall", "plain-a": "reinstall",
                                                          "good": "remove"}
    assert "damaged" in marked.actions("base")[0].reason
    done = repair.clear_debris(found)
    assert len(done) == 3  # two stashes, the RECORD-less dist-info (pip could not uninstall it)
    assert not any(p.name.startswith("~") for p in sp.iterdir()) and not (sp / "torch_like-2.4.0.dist-info").exists()
    assert (sp / "plain_a-1.0.dist-info").exists()  # pip uninstalls it fine; the plan reinstalls it


def test_probe_and_fast_reader_agree_on_a_stash(make_venv) -> None:  # type: ignore[no-untyped-def]
    """importlib.metadata lists a `~orch_like-2.3.0.dist-info` under torch-like's own name; the probe
    (what the twin check reads) skips it, as pip does, and so does the in-process reader."""
    venv = make_venv("stashed")
    sp = next(venv.glob("lib/python*/site-packages"))
    _dist(sp, "torch-like", "2.3.0", {}).rename(sp / "~orch_like-2.3.0.dist-info")
    snap = probe(venv)
    assert "torch-like" not in snap.versions()
    fast = sitepackages.read_distributions([str(sp)])
    assert fast is not None and "torch-like" not in {d["name"] for d in fast}
    found = repair.detect(snap, quiet=True)
    assert [p.name for p in found.stashes] == ["~orch_like-2.3.0.dist-info"]


# --- lock validation --------------------------------------------------------------------------------------------

def _profile(tmp_path: Path, lock: str, deferred: str | None = None) -> profile_mod.Profile:
    folder = tmp_path / "prof"
    folder.mkdir(exist_ok=True)
    (folder / "stack.toml").write_text('python = "3.11"\nbase = ["plain-a"]\n' +
                                       ('[deferred.flash-like]\nrequires = []\n' if deferred is not None else ""))
    (folder / "requirements.in").write_text("plain-a\n" + ("flash-like==1.0\n" if deferred is not None else ""))
    (folder / "requirements.txt").write_text(lock)
    if deferred is not None:
        (folder / "deferred.txt").write_text(deferred)
    return profile_mod.load(folder)


def _head(name: str = "prof", python: str = "3.11", title: str = "") -> str:
    return header(name, {"pip": "26.3"}, "pip-tools", python, [title or f"Hashed lock of profile {name!r}."])


def _check(prof: profile_mod.Profile, *, accept: bool = False) -> None:
    lock = parse(prof.lock_path, lock=True)
    deferred = parse(prof.deferred_path, lock=True) if prof.deferred_path.is_file() else None
    lockcheck.check(prof, lock, deferred, accept_foreign=accept)


PIN = f"plain-a==1.0 \\\n    --hash=sha256:{HASH}\n"


@pytest.mark.parametrize("body,expect", [
    ("", "has no requirements"),
    ("# only a comment\n", "has no requirements"),
    (PIN.replace(HASH, HASH[:63]), "63 hex digits, not 64"),
    (PIN.replace(HASH, HASH + "b"), "65 hex digits, not 64"),
    (PIN.replace("sha256:" + HASH, "sha512:" + HASH), "64 hex digits, not 128"),
    (f"plain-b==1.0 \\\n    --hash=sha256:{HASH}\n", "base package plain-a"),
])
def test_lockcheck_refuses(tmp_path: Path, body: str, expect: str) -> None:
    prof = _profile(tmp_path, _head() + body)
    with pytest.raises(LockProblems) as info:
        _check(prof)
    assert expect in str(info.value) and len(str(info.value).splitlines()) == 1


def test_lockcheck_header_names_profile_and_python_and_can_be_overridden(tmp_path: Path) -> None:
    from stacksync.compile.compiler import regenerate_command

    _check(_profile(tmp_path, _head() + PIN))  # stacksync's own output (compile.header) passes
    assert lockcheck.GENERATED_LINE in _head().splitlines()
    assert f"#    {regenerate_command('prof')}" in _head().splitlines()
    for head, why in [("# This file is autogenerated by pip-compile with Python 3.11\n", "not stacksync's"),
                      (_head("other"), "'prof'"), (_head(python="3.10"), "Python 3.11")]:
        prof = _profile(tmp_path, head + PIN)
        with pytest.raises(LockProblems) as info:
            _check(prof)
        assert why in str(info.value) and "--accept-foreign-lock" in str(info.value)
        _check(prof, accept=True)  # on purpose


def test_lockcheck_deferred_txt_pins_only_deferred_packages(tmp_path: Path) -> None:
    dhead = _head(title="Deferred packages of profile 'prof': pinned in requirements.in,")
    _check(_profile(tmp_path, _head() + PIN, dhead + f"flash-like==1.0 \\\n    --hash=sha256:{HASH}\n"))
    prof = _profile(tmp_path, _head() + PIN, dhead + PIN)
    with pytest.raises(LockProblems, match="plain-a is not a deferred package"):
        _check(prof)
    prof = _profile(tmp_path, _head() + PIN, _head() + f"flash-like==1.0 \\\n    --hash=sha256:{HASH}\n")
    with pytest.raises(LockProblems, match="not stacksync's deferred.txt"):
        _check(prof)


def test_only_a_run_that_changes_the_target_promises_the_repair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from stacksync.env.environment import Snapshot

    sp = tmp_path / "lib" / "python3.11" / "site-packages"
    (sp / "~lain_b").mkdir(parents=True)
    snap = Snapshot(tmp_path / "bin" / "python", "3.11.0", {}, {},
                    raw={"python": {"prefix": str(tmp_path), "site_packages": [str(sp)]}})
    monkeypatch.setattr(repair, "_memo_path", lambda prefix: tmp_path / "memo.json")
    assert repair.detect(snap, repairs=False).found
    said = capsys.readouterr().err
    assert "this run changes nothing; invoke sync repairs it" in said and "repaired before" not in said
    assert repair.detect(snap).found
    assert "it is repaired before the sync goes on" in capsys.readouterr().err


@pytest.mark.parametrize("line,expect", [
    ("--find-links /srv/wheels", "--find-links /srv/wheels: sync does not act on this option in a lock"),
    ("--no-index", "--no-index: sync does not act on this option"),
    ("--pre", "--pre: sync does not act on this option"),
    ("--no-require-hashes", "--no-require-hashes: sync installs every pin hash-checked"),
    ("--extra-index-url https://other.example/simple", "--extra-index-url https://other.example/simple: not the "
                                                       "index of profile 'prof'"),
    ("--index-url https://me:s3cret@x.invalid/simple", "--index-url https://x.invalid/simple: not the index"),
])
def test_lockcheck_refuses_option_lines_sync_would_ignore(tmp_path: Path, line: str, expect: str) -> None:
    prof = _profile(tmp_path, _head() + line + "\n\n" + PIN)
    with pytest.raises(LockProblems) as info:
        _check(prof)
    text = str(info.value)
    assert len(text.splitlines()) == 1 and "s3cret" not in text
    assert f"requirements.txt:{len(_head().splitlines()) + 1}: {expect}" in text and "(fix: remove the line" in text
    with pytest.raises(LockProblems):  # --accept-foreign-lock does not make the line honoured
        _check(prof, accept=True)


def test_lockcheck_refuses_an_option_on_a_requirement_line_and_in_vcs_txt(tmp_path: Path) -> None:
    from stacksync.sync import vcsphase

    prof = _profile(tmp_path, _head() + PIN.replace(" \\\n", " --index-url https://x.invalid/simple \\\n", 1))
    with pytest.raises(LockProblems, match="--index-url https://x.invalid/simple: not the index"):
        _check(prof)
    prof = _profile(tmp_path, _head() + PIN)
    (prof.folder / "vcs.txt").write_text("--find-links /srv/wheels\ntrainer @ git+https://example.org/t.git@" +
                                         "a" * 40 + "\n")
    with pytest.raises(LockProblems, match=r"vcs.txt:1: --find-links /srv/wheels: sync does not act"):
        vcsphase.load(prof, {})


def test_lockcheck_keeps_the_index_lines_compile_writes_for_the_profile(tmp_path: Path) -> None:
    prof = _profile(tmp_path, "")
    toml = prof.stack_toml.read_text()
    prof.stack_toml.write_text(toml + 'index_url = "https://${ART_USER}:${ART_TOKEN}@art.example/api/pypi/simple"\n'
                               'extra_index_urls = ["https://download.example/whl/cu121"]\n'
                               'trusted_hosts = ["art.example"]\nemit_index_urls = true\n')
    lines = profile_mod.load(prof.folder).index.lock_lines()
    assert lines[0] == "--index-url https://art.example/api/pypi/simple"
    prof = _profile(tmp_path, _head() + "\n".join([*lines, "--require-hashes"]) + "\n\n" + PIN)
    prof.stack_toml.write_text(toml + 'index_url = "https://${ART_USER}:${ART_TOKEN}@art.example/api/pypi/simple"\n'
                               'extra_index_urls = ["https://download.example/whl/cu121"]\n'
                               'trusted_hosts = ["art.example"]\nemit_index_urls = true\n')
    _check(profile_mod.load(prof.folder))  # the profile's own index, credential-free: kept


def test_include_cycles_are_one_error(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("-r b.txt\nplain-a==1.0\n")
    (tmp_path / "b.txt").write_text("-r ./a.txt\n")
    (tmp_path / "self.txt").write_text("-r self.txt\n")
    for name in ("a.txt", "self.txt"):
        with pytest.raises(LockProblems, match="include cycle"):
            parse(tmp_path / name)


def test_profile_names_and_encodings_give_one_line(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="not a usable folder name"):
        profile_mod.load("n" * 400, tmp_path)
    folder = tmp_path / "latin"
    folder.mkdir()
    (folder / "stack.toml").write_bytes(b'description = "caf\xe9"\n')
    with pytest.raises(ProfileError, match="not UTF-8 text"):
        profile_mod.load(folder)


# --- probes: timeouts kill the group, the JSON has its own channel ---------------------------------------------

def test_a_hanging_interpreter_is_killed_with_its_children(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wrapper = tmp_path / "python"
    wrapper.write_text(f"#!/bin/sh\nsleep 300 &\necho $! > {tmp_path}/child\nwait\n")
    wrapper.chmod(0o755)
    monkeypatch.setenv(runner.PROBE_TIMEOUT_ENV, "1")
    start = time.monotonic()
    with pytest.raises(ProbeError) as info:
        probe(wrapper)
    assert time.monotonic() - start < 10
    text = str(info.value)
    assert str(wrapper) in text and "within 1 s" in text and runner.PROBE_TIMEOUT_ENV in text
    pid = int((tmp_path / "child").read_text())
    status = Path(f"/proc/{pid}/status")
    deadline = time.monotonic() + 5
    while status.exists() and "State:\tZ" not in status.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not status.exists() or "State:\tZ" in status.read_text()  # the wrapper's child died too


def test_a_program_that_cannot_start_is_one_line(tmp_path: Path) -> None:
    target = tmp_path / "python"
    target.write_text("#!/bin/sh\n")  # not executable
    with pytest.raises(CommandFailed) as info:
        runner.run([target, "-c", "pass"], check=False)
    assert "cannot start" in str(info.value) and "\n" not in str(info.value)


def test_noise_on_stdout_does_not_reach_the_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A target whose start-up prints on stdout (a sitecustomize, an import that warns, as vllm's does)."""
    wrapper = tmp_path / "python"
    wrapper.write_text(f"#!/bin/sh\necho 'WARNING 12-02 noisy start-up'\nexec {sys.executable} \"$@\"\n")
    wrapper.chmod(0o755)
    data = runner.run_script(wrapper, "smoke", "json", "no_such_module_here")
    assert [m["ok"] for m in data["modules"]] == [True, False]
    assert "noisy start-up" in capsys.readouterr().err
    plain = subprocess.run([sys.executable, "-I", str(runner.PROBE_SCRIPT), "env"], capture_output=True,
                           text=True, check=True)
    assert json.loads(plain.stdout)["probe"] == 1  # without --json-out: stdout, as before
    assert os.environ.get("STACKSYNC_FAULT") is None  # the fault seam is inert here


def test_an_index_that_stalls_mid_response_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every index request has a timeout, reads included: a server that sends headers and then
    nothing gives one IndexUnavailable line, not a hang or a traceback."""
    import socket
    import threading

    from stacksync.backends import indexapi
    from stacksync.core.errors import IndexUnavailable

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    done = threading.Event()

    def serve() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5000\r\n\r\n<html>")
        done.wait(10)
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    monkeypatch.setenv("STACKSYNC_INDEX_TIMEOUT", "0.5")
    try:
        with pytest.raises(IndexUnavailable) as info:
            indexapi.project_files(f"http://127.0.0.1:{port}/simple/", "plain-a")
    finally:
        done.set()
        server.close()
    assert "stalled" in str(info.value) and "STACKSYNC_INDEX_TIMEOUT" in str(info.value)
    assert "\n" not in str(info.value)


def test_memo_of_intact_distributions_still_sees_a_removed_file(tmp_path: Path) -> None:
    """The memo (no-op path: a stat per folder instead of a listing) never hides damage: removing a
    file changes its folder's mtime, and a folder changed within 2 s of a check is not memoized."""
    sp = tmp_path / "site-packages"
    info = _dist(sp, "plain-a", "1.0", {"plain_a/__init__.py": "", "plain_a/sub/mod.py": ""})
    memo: damage.Memo = {}
    assert not damage.broken_distributions([sp], memo) and memo == {}  # just written: racy, not kept
    old = time.time() - 60
    for path in [info / "RECORD", sp / "plain_a", sp / "plain_a" / "sub", info, sp]:
        os.utime(path, (old, old))
    assert not damage.broken_distributions([sp], memo) and str(info) in memo
    assert not damage.broken_distributions([sp], memo)  # from the memo
    (sp / "plain_a" / "sub" / "mod.py").unlink()
    broken = damage.broken_distributions([sp], memo)
    assert [(b.name, b.missing) for b in broken] == [("plain-a", ("plain_a/sub/mod.py",))]
    assert str(info) not in memo


# --- Ctrl-C -------------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
#: a sitecustomize that sends this very process SIGINT when the compile task starts importing its module:
#: the early window (before the task's one_line_errors block) where invoke used to exit 1 without a word
_SIGINT_AT_IMPORT = '''
import os, signal, sys

class _InterruptAtImport:
    def find_spec(self, name, path=None, target=None):
        if name == "stacksync.compile.compiler":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, _InterruptAtImport())
'''


def _compile_argv(prof: Path) -> list[str]:
    return [sys.executable, "-m", "invoke", "--search-root", str(ROOT), "compile", "--profile", str(prof)]


def _interrupted(done: subprocess.CompletedProcess[str] | tuple[int, str]) -> tuple[int, list[str]]:
    rc, err = (done.returncode, done.stderr) if isinstance(done, subprocess.CompletedProcess) else done
    return rc, [line for line in err.splitlines() if line.strip()]


def test_ctrl_c_while_compile_loads_its_modules_is_one_line_and_exit_130(tmp_path: Path) -> None:
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_SIGINT_AT_IMPORT)
    prof = tmp_path / "prof"
    prof.mkdir()
    (prof / "stack.toml").write_text('index_url = "http://127.0.0.1:9/simple"\n')
    (prof / "requirements.in").write_text("plain-a\n")
    done = subprocess.run(_compile_argv(prof), capture_output=True, text=True, timeout=120, cwd=ROOT,
                          stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(hook)})
    rc, lines = _interrupted(done)
    assert (rc, lines) == (130, ["stacksync: error: interrupted"]), done.stdout + done.stderr


def test_ctrl_c_during_compile_is_one_line_and_exit_130(tmp_path: Path) -> None:
    import signal
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    connected = threading.Event()

    def accept() -> None:  # an index that takes the connection and never answers
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)
            connected.set()

    threading.Thread(target=accept, daemon=True).start()
    prof = tmp_path / "prof"
    prof.mkdir()
    (prof / "stack.toml").write_text(f'index_url = "http://127.0.0.1:{server.getsockname()[1]}/simple"\n')
    (prof / "requirements.in").write_text("plain-a\n")
    proc = subprocess.Popen(_compile_argv(prof), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, stdin=subprocess.DEVNULL)
    try:
        assert connected.wait(90), "compile never reached the index"  # it is well inside the task now
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        server.close()
        for conn in held:
            conn.close()
    rc, lines = _interrupted((proc.returncode, err))
    assert (rc, lines) == (130, ["stacksync: error: interrupted"]), err
