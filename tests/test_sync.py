"""`invoke sync` end to end: real pip, pip-tools and pypiserver over the stand-in stack, offline.

One module-scoped venv is synced once and reused by the assertions that leave it synced; tests that
change it put it back (a re-sync) before they end. Fault cases run against that synced target with a
lock that would change it, and compare its freeze before and after.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pkgfactory
import pytest
from clihelp import invoke
from pkgfactory import IndexServer
from stackprofile import (
    LOCK_A,
    LOCK_B,
    PY_XY,
    TOKEN_VAR,
    USER_VAR,
    dist_file,
    expected_a,
    freeze,
    setuptools_wheel,
    virtualenv_at,
    write_profile,
)

from stacksync.core import runner
from stacksync.core.errors import FetchError, StacksyncError, SyncError, TargetError
from stacksync.env import targetlock
from stacksync.sync.deferred import STATE_FILE
from stacksync.sync.run import run
from stacksync.sync.state import Options

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def pip_starts(history: list[list[str]]) -> list[list[str]]:
    """Commands in ``runner.history`` that run pip or pip-tools."""
    return [argv for argv in history if "pip" in argv or "piptools" in argv or any(a.endswith("/pip") for a in argv)]


# --- module fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def env(index_server: IndexServer) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(USER_VAR, index_server.user)
        mp.setenv(TOKEN_VAR, index_server.password)
        yield


@pytest.fixture(scope="module")
def synced(env: None, index_server: IndexServer, stack_packages: Path, _virtualenv_app_data: Path,
           tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A venv synced to lock A, and what the sync said."""
    root = tmp_path_factory.mktemp("synced")
    prof = write_profile(root / "standin", stack_packages, index_server, LOCK_A)
    venv = virtualenv_at(root / "venv", _virtualenv_app_data)
    cache = root / "cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(root / "xdg"))
        runner.history.clear()
        outcome = run(Options(profile=str(prof), venv=str(venv), cache_dir=cache, report=str(root / "r.json")))
        started = [list(argv) for argv in runner.history]
    return {"profile": prof, "venv": venv, "cache": cache, "outcome": outcome, "root": root,
            "report": root / "r.json", "started": started}


def opts(synced: dict[str, object], **kw: object) -> Options:
    base: dict[str, object] = {"profile": str(synced["profile"]), "venv": str(synced["venv"]),
                               "cache_dir": synced["cache"]}
    base.update(kw)
    return Options(**base)  # type: ignore[arg-type]




# --- the seed's failures, and sync on the same index ------------------------------------------------

def test_naive_recipe_fails_for_real(index_server: IndexServer, make_venv, stack_packages: Path) -> None:  # type: ignore[no-untyped-def]
    venv = make_venv("naive")
    py = str(venv / "bin" / "python")
    idx = ["--index-url", index_server.auth_url]
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", "torch-like==2.4.0", *idx], check=True,
                   capture_output=True, stdin=subprocess.DEVNULL)
    imp = subprocess.run([py, "-c", "import torch_like"], capture_output=True, text=True)
    assert imp.returncode != 0 and pkgfactory.CUDNN_IMPORT_ERROR in imp.stderr
    build = subprocess.run([py, "-m", "pip", "install", "--no-deps", "flash-attn-like==2.8.0", *idx],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert build.returncode != 0
    assert "No module named 'torch_like'" in build.stdout + build.stderr


def test_sync_makes_the_target_the_lock_twin(synced: dict[str, object], stack_packages: Path) -> None:
    venv = synced["venv"]
    assert isinstance(venv, Path)
    outcome = synced["outcome"]
    assert outcome.verdict == "synced"  # type: ignore[attr-defined]
    assert outcome.twin is not None and outcome.twin.identical  # type: ignore[attr-defined]
    got = {n: v for n, v in freeze(venv).items() if n not in ("pip", "wheel")}
    assert got == expected_a(stack_packages)
    ok = subprocess.run([str(venv / "bin" / "python"), "-c", "import flash_attn_like, torch_like"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    state = json.loads((venv / STATE_FILE).read_text())
    assert state["deferred"]["flash-attn-like"]["built_against"] == {"torch-like": "2.4.0"}
    receipt = json.loads(Path(str(synced["report"])).read_text())
    assert receipt["verdict"] == "synced" and receipt["lock"]["sha256"]
    assert {a["name"] for a in receipt["plan"]["phases"]["base"]} == {"torch-like", "nvidia-cudnn-like",
                                                                      "nvidia-cublas-like"}
    assert "s3cret" not in Path(str(synced["report"])).read_text()


def smoke_runs(history: list[list[str]]) -> list[list[str]]:
    """The module lists of the ``probe.py smoke`` runs in ``history``, in order."""
    runs = [argv[argv.index(a) + 2:] for argv in history for i, a in enumerate(argv)
            if a.endswith("probe.py") and "smoke" in "".join(argv[i + 1:i + 2]).split("+")]
    return [run[2:] if run[:1] == ["--json-out"] else run for run in runs]  # the document's own file


def target_probes(history: list[list[str]], venv: object) -> list[str]:
    """The probe commands (``env``, ``env+smoke``...) of the processes in ``history`` that started the
    target's interpreter to ask it for facts (pip runs in it are not counted here)."""
    python = str(Path(str(venv)) / "bin" / "python")
    return [argv[i + 1] for argv in history if argv[:1] == [python]
            for i, a in enumerate(argv) if a.endswith("probe.py")]


def test_facts_are_asked_once_per_change_of_the_target(synced: dict[str, object]) -> None:
    """Issue 21: smoke imports and probes share processes, and facts probed earlier in the run are
    reused while nothing was installed in between. A cold sync asks the target at most 5 times (the
    plan's probe, doctor's, and one per phase that changed it: the env read with the rest and
    deferred smoke imports is what the deferred build check and verify use); a no-op sync never;
    ``verify`` once (its probe and its imports in one process). Counted from the runner's log."""
    started = synced["started"]
    assert isinstance(started, list)
    assert target_probes(started, synced["venv"]) == ["env", "cuda", "smoke", "env+smoke", "env+smoke"]
    runner.history.clear()
    assert run(opts(synced)).verdict == "in-sync"
    assert target_probes(runner.history, synced["venv"]) == []
    runner.history.clear()
    outcome = run(opts(synced), steps=("plan", "verify"))
    assert outcome.verdict == "verified" and "smoke 4/4 ok" in outcome.summary
    assert target_probes(runner.history, synced["venv"]) == ["env+smoke"]


def test_first_sync_installs_rest_without_pip_sync_and_smokes_each_module_once(synced: dict[str, object]) -> None:
    """A new venv: nothing to remove, so the rest phase is one hashed pip install (no pip-tools start).
    Each smoke run covers the phases before it, so nothing is imported twice without a change in
    between: the deferred build's ``imports`` check and verify start no smoke process of their own."""
    started = synced["started"]
    assert isinstance(started, list)
    assert not any("piptools" in argv for argv in started), started
    installs = [argv for argv in started if argv[1:4] == ["-m", "pip", "install"]]
    builds = [argv for argv in started if argv[1:4] == ["-m", "pip", "wheel"]]
    assert len(builds) == 1 and "--no-build-isolation" in builds[0]  # the deferred build, into the wheelhouse
    assert len(installs) == 3 and "--require-hashes" in installs[2]  # base, rest, deferred (from that wheel)
    assert "--no-deps" in installs[2] and "--no-index" in installs[2]
    assert smoke_runs(started) == [["torch_like"], ["torch_like", "einops_like", "plain_a"],
                                   ["torch_like", "einops_like", "plain_a", "flash_attn_like"]]
    assert "smoke 4/4 ok" in synced["outcome"].summary  # type: ignore[attr-defined]


def test_resync_is_a_noop_without_pip(synced: dict[str, object], capsys: pytest.CaptureFixture[str]) -> None:
    before = freeze(synced["venv"])  # type: ignore[arg-type]
    runner.history.clear()
    outcome = run(opts(synced))
    assert outcome.verdict == "in-sync"
    assert pip_starts(runner.history) == [], runner.history
    assert "already in sync" in capsys.readouterr().err
    runner.history.clear()
    assert run(opts(synced), ("plan", "fetch", "rest")).verdict == "in-sync"  # sync-rest alone
    assert pip_starts(runner.history) == []
    assert freeze(synced["venv"]) == before  # type: ignore[arg-type]


def test_sync_rest_keeps_the_built_deferred_package(synced: dict[str, object]) -> None:
    """Remove plain-a by hand: sync-rest puts it back (a hashed install: nothing to remove) and leaves
    flash-attn-like alone."""
    venv = synced["venv"]
    assert isinstance(venv, Path)
    py = str(venv / "bin" / "python")
    subprocess.run([py, "-m", "pip", "uninstall", "-y", "-q", "plain-a"], check=True, capture_output=True)
    runner.history.clear()
    outcome = run(opts(synced), ("plan", "fetch", "rest"))
    assert outcome.verdict == "synced"
    assert not any("piptools" in argv for argv in runner.history)
    assert any(argv[1:4] == ["-m", "pip", "install"] and "--require-hashes" in argv for argv in runner.history)
    after = freeze(venv)
    assert after["plain-a"] == "1.0" and after["flash-attn-like"] == "2.8.0"
    assert run(opts(synced), ("plan", "verify")).verdict == "verified"


def test_verify_of_an_interrupted_target_repairs_nothing_and_says_so(synced: dict[str, object],
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    venv = synced["venv"]
    assert isinstance(venv, Path)
    (site,) = venv.glob("lib/python*/site-packages")
    stash = site / "~lain_a"  # what pip leaves when an uninstall of plain_a/ is killed
    stash.mkdir()
    try:
        capsys.readouterr()
        with pytest.raises(StacksyncError):
            run(opts(synced), ("plan", "verify"))
        said = capsys.readouterr().err
        assert "target was interrupted" in said and "this run changes nothing; invoke sync repairs it" in said
        assert "repaired before the sync goes on" not in said
        assert stash.is_dir()  # verify changed nothing
    finally:
        stash.rmdir()


def test_a_missing_venv_is_created_with_pip_and_synced(synced: dict[str, object], stack_packages: Path,
                                                       tmp_path: Path) -> None:
    """What README's first command does to .venv: the pip-tools backend creates a missing target with
    `python -m venv` (so it has pip), then syncs it."""
    venv = tmp_path / "new-venv"
    runner.history.clear()
    outcome = run(opts(synced, venv=str(venv)))
    started = [list(argv) for argv in runner.history]
    assert [argv[1:3] for argv in started][0] == ["-m", "venv"]
    assert outcome.verdict == "synced" and (venv / "bin" / "pip").exists()
    assert {n: v for n, v in freeze(venv).items() if n not in ("pip", "wheel")} == expected_a(stack_packages)
    # a venv this run made: doctor's facts come with the first probe (issue 21); 4 processes ask it
    assert target_probes(started, venv) == ["env+cuda", "smoke", "env+smoke", "env+smoke"]


def _count_hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the files fetch hashes from now on (fetch's own file_sha256, counted)."""
    from stacksync.sync import fetch as fetch_mod

    hashed: list[str] = []
    real = fetch_mod.file_sha256

    def counting(path: Path) -> str:
        hashed.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(fetch_mod, "file_sha256", counting)
    return hashed


def test_fetch_hashes_each_cached_wheel_once(synced: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> None:
    """A wheel the cache already holds is hashed once per run, not once to find it and again to
    confirm it (a CUDA stack's wheels are GBs); the installer verifies the hashes itself."""
    venv = synced["venv"]
    assert isinstance(venv, Path)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "uninstall", "-y", "-q", "plain-a"], check=True,
                   capture_output=True)
    hashed = _count_hashes(monkeypatch)
    runner.history.clear()
    assert run(opts(synced)).verdict == "synced"
    assert not any("download" in argv for argv in runner.history)  # taken from the cache
    # at most once; not at all when an earlier run verified it with the same stat (the digest memo)
    assert [n for n in hashed if n.startswith("plain_a-1.0-")] in ([], ["plain_a-1.0-py3-none-any.whl"])
    assert freeze(venv)["plain-a"] == "1.0"


def test_a_cached_wheel_changed_in_place_after_it_was_memoized_is_hashed_again_and_refused(
        synced: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache's digest memo (stacksync.sync.cacheindex) answers a wheel an earlier run verified; the
    same wheel rewritten in place (same name, size and mtime) is hashed again, does not match the lock,
    and is downloaded again instead of installed."""
    from stacksync.sync import cacheindex

    venv, cache = synced["venv"], synced["cache"]
    assert isinstance(venv, Path) and isinstance(cache, Path)
    py = str(venv / "bin" / "python")
    wheel = cache / "plain_a-1.0-py3-none-any.whl"
    good = wheel.read_bytes()
    monkeypatch.setattr(cacheindex, "RACY_NS", -3600 * 10**9)  # trust stats this recent (no 2 s wait)
    hashed = _count_hashes(monkeypatch)
    for _ in range(2):  # the first run may hash it (and keeps its digest), the second answers from the memo
        subprocess.run([py, "-m", "pip", "uninstall", "-y", "-q", "plain-a"], check=True, capture_output=True)
        hashed.clear()
        assert run(opts(synced)).verdict == "synced"
    assert wheel.name in json.loads((cache / cacheindex.SHA256_MEMO).read_text())["files"]
    assert wheel.name not in hashed
    subprocess.run([py, "-m", "pip", "uninstall", "-y", "-q", "plain-a"], check=True, capture_output=True)
    st = wheel.stat()
    bad = bytearray(good)
    bad[-1] ^= 0xFF  # the zip's last byte, in place: same inode and size
    with open(wheel, "r+b") as fh:
        fh.write(bad)
    os.utime(wheel, ns=(st.st_atime_ns, st.st_mtime_ns))  # the mtime set back; the ctime moved
    runner.history.clear()
    hashed.clear()
    assert run(opts(synced)).verdict == "synced"
    assert wheel.name in hashed  # hashed again, found wrong, fetched again
    assert any("download" in argv for argv in runner.history)
    assert wheel.read_bytes() == good and freeze(venv)["plain-a"] == "1.0"


def test_locked_setuptools_is_an_ordinary_package(synced: dict[str, object], stack_packages: Path) -> None:
    """setuptools is shown apart when unlocked, but this lock pins it: verify fails without it, and a
    sync puts it back."""
    venv = synced["venv"]
    assert isinstance(venv, Path)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "uninstall", "-y", "-q", "setuptools"], check=True,
                   capture_output=True)
    with pytest.raises(SyncError) as info:
        run(opts(synced), ("plan", "verify"))
    assert f"differs: setuptools: lock {setuptools_wheel(stack_packages)[0]}, target missing" in str(info.value)
    outcome = run(opts(synced))
    assert {a.name: a.kind for a in outcome.plan.changes()} == {"setuptools": "install"}  # type: ignore[union-attr]
    assert freeze(venv)["setuptools"] == setuptools_wheel(stack_packages)[0]


def test_changes_removal_downgrade_upgrade_and_rebuild(synced: dict[str, object], stack_packages: Path,
                                                       index_server: IndexServer) -> None:
    venv = synced["venv"]
    assert isinstance(venv, Path)
    py = str(venv / "bin" / "python")
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(stack_packages), "plain-b"],
                   check=True, capture_output=True)
    prof_b = write_profile(Path(str(synced["root"])) / "standin-b", stack_packages, index_server, LOCK_B)
    before = freeze(venv)
    # A destructive plan without --yes and without a terminal: refused, nothing changed.
    with pytest.raises(SyncError, match="--yes"):
        run(opts(synced, profile=str(prof_b)))
    assert freeze(venv) == before
    runner.history.clear()
    outcome = run(opts(synced, profile=str(prof_b), yes=True))
    assert any("piptools" in argv and "sync" in argv for argv in runner.history)  # a removal: pip-sync
    assert outcome.plan is not None
    kinds = {a.name: a.kind for a in outcome.plan.changes()}
    assert kinds == {"torch-like": "downgrade", "plain-a": "upgrade", "plain-b": "remove",
                     "flash-attn-like": "reinstall"}
    after = freeze(venv)
    assert after["torch-like"] == "2.3.0" and after["plain-a"] == "2.0" and "plain-b" not in after
    state = json.loads((venv / STATE_FILE).read_text())
    assert state["deferred"]["flash-attn-like"]["built_against"] == {"torch-like": "2.3.0"}
    # flash-attn-like was rebuilt: it imports under torch-like 2.3.0 (it refuses a foreign torch-like).
    ok = subprocess.run([py, "-c", "import flash_attn_like"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    # And back: torch-like 2.3.0 -> 2.4.0 rebuilds flash-attn-like again.
    back = run(opts(synced, yes=True))
    assert {a.name: a.kind for a in back.plan.changes()} == {  # type: ignore[union-attr]
        "torch-like": "upgrade", "plain-a": "downgrade", "flash-attn-like": "reinstall"}
    assert {n: v for n, v in freeze(venv).items() if n not in ("pip", "wheel")} == expected_a(stack_packages)


def test_missing_library_is_explained(synced: dict[str, object]) -> None:
    venv = synced["venv"]
    assert isinstance(venv, Path)
    lib = next(venv.glob(f"lib/python*/site-packages/{pkgfactory.CUDNN_LIB}"))
    saved = lib.read_bytes()
    lib.unlink()
    try:
        with pytest.raises(SyncError) as info:
            run(opts(synced), ("plan", "verify"))
        text = str(info.value)
        assert "libcudnn_like.so.9 is missing" in text and "nvidia-cudnn-like" in text
        assert "Traceback" not in text
    finally:
        lib.write_bytes(saved)


# --- fault cases: the target is left exactly as it was ------------------------------------------------

def _fault_profile(synced: dict[str, object], server: IndexServer, stack: Path, name: str,
                   extra: str = "") -> Path:
    return write_profile(Path(str(synced["root"])) / name, stack, server, LOCK_B, extra_lock_lines=extra)


def test_index_down_leaves_target_unchanged(synced: dict[str, object], fresh_index_server: IndexServer,
                                            stack_packages: Path, monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.setenv("PIP_RETRIES", "0")
    prof = _fault_profile(synced, fresh_index_server, stack_packages, "down")
    before = freeze(synced["venv"])  # type: ignore[arg-type]
    fresh_index_server.stop()
    report = tmp_path / "receipt.json"
    with pytest.raises(FetchError, match="unreachable"):
        run(opts(synced, profile=str(prof), yes=True, cache_dir=tmp_path / "cache", report=str(report)))
    assert freeze(synced["venv"]) == before  # type: ignore[arg-type]
    receipt = json.loads(report.read_text())
    assert receipt["verdict"] == "failed" and "unreachable" in receipt["error"]
    assert "s3cret" not in report.read_text() and receipt["target"]["pip"]


def test_tampered_artifact_leaves_target_unchanged(synced: dict[str, object], fresh_index_server: IndexServer,
                                                   stack_packages: Path, tmp_path: Path) -> None:
    prof = _fault_profile(synced, fresh_index_server, stack_packages, "tampered")
    victim = dist_file(fresh_index_server.packages_dir, "torch-like", "2.3.0")
    other = pkgfactory.build_wheel(tmp_path / "evil", "torch-like", "2.3.0", files={"torch_like/__init__.py": "x=1\n"})
    shutil.copyfile(other, victim)
    before = freeze(synced["venv"])  # type: ignore[arg-type]
    with pytest.raises(FetchError, match="hash mismatch"):
        run(opts(synced, profile=str(prof), yes=True, cache_dir=tmp_path / "cache"))
    assert freeze(synced["venv"]) == before  # type: ignore[arg-type]


def test_tampered_deferred_sdist_leaves_target_unchanged(synced: dict[str, object], fresh_index_server: IndexServer,
                                                         stack_packages: Path, tmp_path: Path) -> None:
    prof = _fault_profile(synced, fresh_index_server, stack_packages, "tampered-sdist")
    victim = dist_file(fresh_index_server.packages_dir, "flash-attn-like", "2.8.0")
    victim.write_bytes(victim.read_bytes() + b"\0")
    before = freeze(synced["venv"])  # type: ignore[arg-type]
    with pytest.raises(FetchError, match="hash mismatch"):
        run(opts(synced, profile=str(prof), yes=True, cache_dir=tmp_path / "cache"))
    assert freeze(synced["venv"]) == before  # type: ignore[arg-type]


def test_version_missing_on_index_leaves_target_unchanged(synced: dict[str, object], index_server: IndexServer,
                                                          stack_packages: Path, tmp_path: Path) -> None:
    missing = "plain-b==9.9 \\\n    --hash=sha256:" + "0" * 64 + "\n    # via -r requirements.in\n"
    prof = _fault_profile(synced, index_server, stack_packages, "missing", extra=missing)
    before = freeze(synced["venv"])  # type: ignore[arg-type]
    with pytest.raises(FetchError) as info:
        run(opts(synced, profile=str(prof), yes=True, cache_dir=tmp_path / "cache"))
    assert "plain-b==9.9 is not on the index" in str(info.value)
    assert "requirements.txt:" in str(info.value)
    assert freeze(synced["venv"]) == before  # type: ignore[arg-type]


def test_doctor_errors_stop_the_sync_unless_forced(synced: dict[str, object], index_server: IndexServer,
                                                  stack_packages: Path, tmp_path: Path) -> None:
    """A lock that disagrees with stack.toml about the CUDA major: doctor's error stops the sync before
    anything is fetched; --force goes on (and the fetch then fails: no such wheel on the index)."""
    cuda = "nvidia-cuda-runtime-cu12==12.1.105 \\\n    --hash=sha256:" + "1" * 64 + "\n    # via torch-like\n"
    prof = write_profile(tmp_path / "cu", stack_packages, index_server, LOCK_A, extra_lock_lines=cuda,
                         toml_extra='cuda = "11.8"')
    before = freeze(synced["venv"])  # type: ignore[arg-type]
    with pytest.raises(SyncError) as info:
        run(opts(synced, profile=str(prof), cache_dir=tmp_path / "cache"))
    assert "doctor:" in str(info.value) and "CUDA" in str(info.value) and "--force" in str(info.value)
    with pytest.raises(FetchError, match="nvidia-cuda-runtime-cu12"):
        run(opts(synced, profile=str(prof), force=True, cache_dir=tmp_path / "cache"))
    assert freeze(synced["venv"]) == before  # type: ignore[arg-type]


# --- refusals -------------------------------------------------------------------------------------------

def test_refuses_own_interpreter_wrong_python_and_missing_lock(synced: dict[str, object], index_server: IndexServer,
                                                               stack_packages: Path, tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="interpreter running stacksync"):
        run(opts(synced, venv=None, python=sys.executable))
    other = "3.9" if PY_XY != "3.9" else "3.10"
    prof = write_profile(tmp_path / "wrongpy", stack_packages, index_server, LOCK_A, python=other)
    before = freeze(synced["venv"])  # type: ignore[arg-type]
    with pytest.raises(TargetError, match=f"locked for Python {other}"):
        run(opts(synced, profile=str(prof)))
    assert freeze(synced["venv"]) == before  # type: ignore[arg-type]
    nolock = write_profile(tmp_path / "nolock", stack_packages, index_server, LOCK_A)
    (nolock / "requirements.txt").unlink()
    with pytest.raises(StacksyncError) as info:
        run(opts(synced, profile=str(nolock)))
    assert str(info.value) == (f"{nolock / 'requirements.txt'}: profile 'nolock' has no lock yet "
                               "(fix: invoke compile --profile nolock)")


def test_cli_refuses_a_second_concurrent_sync(synced: dict[str, object]) -> None:
    venv = synced["venv"]
    assert isinstance(venv, Path)
    env = runner.clean_env()
    with targetlock.hold(venv):
        proc = invoke("sync", "--profile", str(synced["profile"]), "--venv", str(venv), env=env)
    assert proc.returncode == 1, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("stacksync: error: ")
    assert "another stacksync run" in lines[0] and "--wait" in lines[0]
    assert os.getpid() == int((venv / targetlock.LOCK_NAME).read_text())


def test_plan_json_is_the_plan_as_data_on_stdout(synced: dict[str, object], capsys: pytest.CaptureFixture[str]
                                                 ) -> None:
    """`plan --json` (issue 21): one document on stdout that matches docs/plan-json.schema.json; a
    package missing from the target is an install in its phase."""
    from schemacheck import errors

    schema = json.loads((Path(__file__).resolve().parents[1] / "docs" / "plan-json.schema.json").read_text())
    venv = synced["venv"]
    assert isinstance(venv, Path)
    capsys.readouterr()
    run(opts(synced, json=True), ("plan",))
    doc = json.loads(capsys.readouterr().out)
    assert errors(doc, schema) == [] and doc["verdict"] == "in-sync"
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "uninstall", "-y", "-q", "plain-a"], check=True,
                   capture_output=True)
    try:
        run(opts(synced, json=True, dry_run=True))
        doc = json.loads(capsys.readouterr().out)
        assert errors(doc, schema) == [] and doc["verdict"] == "changes"
        assert [a["name"] for p in doc["phases"].values() for a in p if a["action"] == "install"] == ["plain-a"]
    finally:
        assert run(opts(synced)).verdict == "synced"


def test_cli_report_dash_puts_the_receipt_alone_on_stdout(synced: dict[str, object]) -> None:
    proc = invoke("sync", "--profile", str(synced["profile"]), "--venv", str(synced["venv"]), "--report", "-",
                  env=runner.clean_env({"STACKSYNC_CACHE_DIR": str(synced["cache"])}))
    assert proc.returncode == 0, proc.stderr
    receipt = json.loads(proc.stdout)
    assert receipt["verdict"] == "in-sync" and "already in sync" in proc.stderr
    bad = invoke("sync", "--profile", str(synced["profile"]), "--venv", str(synced["venv"]), "--json")
    assert bad.returncode != 0 and "--dry-run" in bad.stderr and bad.stdout == ""


def test_quiet_prints_errors_and_the_verdict_line_only(synced: dict[str, object]) -> None:
    """Issue 21: ``-q`` prints no plan, progress, phase or warning line: the final verdict alone (on
    stderr; stdout stays empty), for a sync and for verify."""
    environ = runner.clean_env({"STACKSYNC_CACHE_DIR": str(synced["cache"])})
    for task, verdict in (("sync", "already in sync"), ("verify", "twin of the lock")):
        proc = invoke(task, "--profile", str(synced["profile"]), "--venv", str(synced["venv"]), "-q", env=environ)
        assert proc.returncode == 0 and proc.stdout == "", proc.stderr
        assert len(proc.stderr.splitlines()) == 1 and verdict in proc.stderr, proc.stderr


def test_a_sync_on_a_terminal_shows_download_progress_and_a_build_heartbeat(
        env: None, index_server: IndexServer, stack_packages: Path, _virtualenv_app_data: Path, tmp_path: Path
) -> None:
    """Issue 21: driven through a pseudo-terminal, a cold sync draws the download as a rich progress bar
    (percentage, files, bytes, rate) and, while the stand-in deferred build sleeps, its heartbeat as a
    live status line (elapsed, pip's last line: pip keeps a build's own output to itself unless -v);
    each phase ends with its time; the log is kept."""
    import pty
    import select

    prof = write_profile(tmp_path / "tty", stack_packages, index_server, LOCK_A)
    venv = virtualenv_at(tmp_path / "venv", _virtualenv_app_data)
    environ = runner.clean_env({"STACKSYNC_CACHE_DIR": str(tmp_path / "cache"), "STACKSYNC_HEARTBEAT_S": "0.5",
                                "STACKSYNC_WHEELHOUSE": str(tmp_path / "wheelhouse"), "STANDIN_BUILD_SLEEP": "4",
                                "XDG_CACHE_HOME": str(tmp_path / "xdg"), "TERM": "xterm",
                                "COLUMNS": "200"})  # a live line is cut at the width
    environ.pop("CI", None)  # a CI job's own variable would ask for plain lines
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "invoke", "-r", str(Path(__file__).resolve().parents[1]), "sync",
                             "--profile", str(prof), "--venv", str(venv)], stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=slave, env=environ, close_fds=True)
    os.close(slave)
    seen = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 600)
            if not ready:
                break
            try:
                data = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            seen += data
    finally:
        os.close(master)
        code = proc.wait(timeout=60)
    raw = seen.decode("utf-8", "replace")
    # what a reader of the terminal saw: rich's cursor and colour codes taken out, each redraw a line
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw).replace("\r\n", "\n").replace("\r", "\n")
    assert code == 0, text
    # the rich bar (percentage of the files, then files, bytes, rate), cleared when done ...
    assert re.search(r"^fetch\s.*\s\d+%\s+\d+/\d+ files, [\d.]+ [KMG]?B, [\d.]+ [KMG]?B/s", text, re.M), text
    # ... then the plain last line stays
    assert re.search(r"^fetch: \d+/\d+ files, [\d.]+ [KMG]?B, [\d.]+ [KMG]?B/s", text, re.M), text
    # the build's live status line, redrawn each second: elapsed time and pip's last line
    beats = re.findall(r"deferred: building flash-attn-like: (\d+) s, last: (.*)$", text, re.M)
    assert len({b[0] for b in beats}) >= 3 and any("Building wheel for flash-attn-like" in b[1] for b in beats), text
    assert "\x1b[" in raw  # drawn live, not as plain lines
    for phase in ("plan", "preflight", "fetch", "base", "rest", "deferred", "verify"):  # each ends with its time
        assert re.search(rf"^{phase}: done in [\d.]+ s$", text, re.M), (phase, text)
    [log] = (tmp_path / "cache").rglob("logs/build-flash-attn-like.log")  # <cache>/<profile>/logs
    assert "Building wheel for flash-attn-like" in log.read_text()
