"""Checks a sync makes before it trusts a target or a lock (issue 23, sync side):

* the twin check by artifact: which wheel each installed distribution came from
  (``<prefix>/stacksync-artifacts.json``, :mod:`stacksync.sync.provenance`), so that another build of
  the locked version is not called a twin, by ``verify`` nor by the no-op path;
* a lock missing a dependency is refused before anything changes (:mod:`stacksync.sync.depcheck`).

The pure parts run without a venv; the end-to-end ones use real pip, pypiserver and the stand-in stack
(one module venv synced once; a test that changes it puts it back).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pkgfactory
import pytest
from clihelp import invoke
from pkgfactory import IndexServer
from stackprofile import LOCK_A, TOKEN_VAR, USER_VAR, dist_file, expected_a, freeze, virtualenv_at, write_profile

from stacksync.core import fs, runner
from stacksync.core.errors import FetchError, SyncError
from stacksync.env import artifacts
from stacksync.sync.depcheck import Package, problems
from stacksync.sync.run import run
from stacksync.sync.state import Options

ENV = {"python_version": "3.11", "sys_platform": "linux", "platform_machine": "x86_64", "os_name": "posix"}


# --- pure parts ----------------------------------------------------------------------------------------

def test_depcheck_names_the_package_and_the_missing_dependency() -> None:
    pkgs = {"flash-attn-like": Package("2.8.0", ("torch-like", "einops-like")), "torch-like": Package("2.4.0", ())}
    found = problems(pkgs, ENV)  # type: ignore[arg-type]
    assert [p.describe() for p in found] == ["flash-attn-like 2.8.0 requires einops-like, which is not in the lock"]


def test_depcheck_evaluates_markers_and_respects_extras() -> None:
    pkgs = {
        "a": Package("1.0", ('b; sys_platform == "win32"', 'c; extra == "cli"', 'd[fast]; python_version >= "3"')),
        "d": Package("1.0", ('e; extra == "fast"', 'f; extra == "slow"')),
    }
    # win32 only, an extra nobody asks for (a's cli, d's slow): not needed. d[fast] asks for e.
    assert [(p.package, p.dependency) for p in problems(pkgs, ENV)] == [("d", "e")]  # type: ignore[arg-type]
    asked = {**pkgs, "a": Package("1.0", pkgs["a"].requires, frozenset({"cli"}))}  # the lock pins a[cli]
    assert {(p.package, p.dependency) for p in problems(asked, ENV)} == {("a", "c"), ("d", "e")}  # type: ignore[arg-type]


def test_depcheck_reports_a_version_the_requirement_does_not_admit() -> None:
    pkgs = {"torch-like": Package("2.4.0", ("nvidia-cudnn-like==9.1.0",)), "nvidia-cudnn-like": Package("9.0.0", ())}
    (p,) = problems(pkgs, ENV)  # type: ignore[arg-type]
    assert p.describe() == ("torch-like 2.4.0 requires nvidia-cudnn-like==9.1.0, "
                            "but the lock has nvidia-cudnn-like 9.0.0")
    unknown = {**pkgs, "nvidia-cudnn-like": Package(None)}  # a VCS pin: its version is known once cloned
    assert problems(unknown, ENV) == []  # type: ignore[arg-type]


@pytest.mark.parametrize(("line", "version"), [
    ("x==1.0", "1.0"), ("x==1.0", "1.0.0"), ("x==1.0", "1.0+cu121"), ("x==1.0+cu121", "1.0+cu121"),
    ("x==1.0+cu121", "1.0"), ("x==1.0", "2.0"), ("x==1.0rc1", "1.0rc1"), ("x>=1", "1.0"), ("x == 1.0", "1.0"),
    ("x===1.0", "1.0"), ("x==1.0", "not a version"), ("x==1.*", "1.5"), ("x==1.0,>=2", "1.0"),
])
def test_depcheck_admits_a_version_as_packaging_does(line: str, version: str) -> None:
    """The shortcut for a requirement that is the pin itself gives what packaging's contains() gives."""
    from packaging.version import InvalidVersion, Version

    from stacksync.lock.reqshape import requirement
    from stacksync.sync.depcheck import _admits

    req = requirement(line)
    try:
        expected = req.specifier.contains(Version(version), prereleases=True)
    except InvalidVersion:
        expected = True  # not judged, as before
    assert _admits(req, version) == expected


def test_artifact_record_round_trip_and_a_rewritten_record_no_longer_holds(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    folder = site / "plain_a-1.0.dist-info"
    folder.mkdir(parents=True)
    (folder / "RECORD").write_text("plain_a/__init__.py,sha256=x,1\n")
    stat = artifacts.record_stat(folder)
    assert stat is not None
    entry = artifacts.Artifact("1.0", "ab" * 32, folder.name, stat)
    path = artifacts.write(tmp_path, {"plain-a": entry})  # type: ignore[dict-item]
    assert artifacts.read(tmp_path) == {"plain-a": entry}
    assert oct(path.stat().st_mode & 0o777) == oct(fs.new_file_mode())  # not mkstemp's 0600
    # one distribution per line, written without json's indent (its slow encoder); the same document
    other = artifacts.Artifact("2.0", "cd" * 32, "plain_b-2.0.dist-info", stat, "wheelhouse")
    artifacts.write(tmp_path, {"plain-b": other})  # type: ignore[dict-item]
    text = path.read_text(encoding="utf-8")
    assert json.loads(text) == {"artifacts": 1, "dists": {"plain-a": entry.to_json(), "plain-b": other.to_json()}}
    assert text.splitlines()[1].startswith(' "plain-a": {') and len(text.splitlines()) == 4
    assert artifacts.read(tmp_path) == {"plain-a": entry, "plain-b": other}
    artifacts.write(tmp_path, {}, installed=[])  # nothing installed any more: an empty record
    assert json.loads(path.read_text(encoding="utf-8")) == {"artifacts": 1, "dists": {}}
    assert artifacts.read(tmp_path) == {}
    artifacts.write(tmp_path, {"plain-a": entry})  # type: ignore[dict-item]
    assert entry.holds(str(site))
    (folder / "RECORD").unlink()  # what an installer does: a new dist-info, a new RECORD
    (folder / "RECORD").write_text("plain_a/__init__.py,sha256=y,1\n")
    assert not entry.holds(str(site))
    (tmp_path / artifacts.ARTIFACTS_FILE).write_text("{not json")
    assert artifacts.read(tmp_path) == {}


def test_a_record_that_is_not_a_regular_file_is_not_read(tmp_path: Path) -> None:
    folder = tmp_path / "plain_a-1.0.dist-info"
    folder.mkdir()
    os.mkfifo(folder / "RECORD")  # opening it would block until a writer came
    assert artifacts.installed_rows(folder) is None


def test_installed_files_compared_with_the_wheel(tmp_path: Path) -> None:
    """Rows an installer writes itself (INSTALLER, REQUESTED, direct_url.json, RECORD, byte-code,
    scripts outside site-packages) do not count; a changed file does."""
    wheel = pkgfactory.build_wheel(tmp_path / "w", "plain-a", "1.0", files={"plain_a/__init__.py": "x = 1\n"})
    packed = artifacts.wheel_rows(wheel)
    assert packed is not None and ("plain_a/__init__.py" in {p for p, _ in packed})
    folder = tmp_path / "site" / "plain_a-1.0.dist-info"
    folder.mkdir(parents=True)
    extra = ["plain_a-1.0.dist-info/INSTALLER,sha256=abc,4", "plain_a-1.0.dist-info/RECORD,,",
             "plain_a/__pycache__/__init__.cpython-311.pyc,,", "../../../bin/plain-a,sha256=def,10"]
    (folder / "RECORD").write_text("\n".join([f"{p},{h},1" for p, h in sorted(packed)] + extra) + "\n")
    assert artifacts.same_files(folder, wheel) is True
    other = pkgfactory.build_wheel(tmp_path / "o", "plain-a", "1.0", files={"plain_a/__init__.py": "x = 2\n"})
    assert artifacts.same_files(folder, other) is False


def test_direct_url_hash_is_read_in_both_spellings() -> None:
    assert artifacts.direct_url_sha256({"url": "file:///w.whl", "archive_info": {"hashes": {"sha256": "AB"}}}) == "ab"
    assert artifacts.direct_url_sha256({"url": "file:///w.whl", "archive_info": {"hash": "sha256=cd"}}) == "cd"
    assert artifacts.direct_url_sha256({"url": "file:///w.whl", "archive_info": {}}) is None
    assert artifacts.direct_url_sha256(None) is None


# --- end to end -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def synced(index_server: IndexServer, stack_packages: Path, _virtualenv_app_data: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """A venv synced to lock A (with the index credentials and a wheelhouse of its own set for the module)."""
    root = tmp_path_factory.mktemp("checks")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(USER_VAR, index_server.user)
        mp.setenv(TOKEN_VAR, index_server.password)
        mp.setenv("XDG_CACHE_HOME", str(root / "xdg"))
        # A wheelhouse of its own: the session's would hand this module's flash-attn-like wheel to the
        # next module's first sync (which then builds nothing).
        mp.setenv("STACKSYNC_WHEELHOUSE", str(root / "wheelhouse"))
        prof = write_profile(root / "standin", stack_packages, index_server, LOCK_A)
        venv = virtualenv_at(root / "venv", _virtualenv_app_data)
        outcome = run(Options(profile=str(prof), venv=str(venv), cache_dir=root / "cache"))
        assert outcome.verdict == "synced", outcome.summary
        yield {"profile": prof, "venv": venv, "cache": root / "cache", "root": root}


def _opts(synced: dict[str, Path], **kw: object) -> Options:
    base: dict[str, object] = {"profile": str(synced["profile"]), "venv": str(synced["venv"]),
                               "cache_dir": synced["cache"]}
    return Options(**{**base, **kw})  # type: ignore[arg-type]


def _pip(venv: Path, *args: str) -> str:
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", *args], check=True, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL)
    return proc.stdout


def _record(venv: Path) -> dict[str, dict[str, object]]:
    data = json.loads((venv / artifacts.ARTIFACTS_FILE).read_text())
    dists = data["dists"]
    assert isinstance(dists, dict)
    return dists


def _other_build(tmp_path: Path) -> Path:
    """Another wheel of plain-a 1.0: same name and version, other files (a local rebuild)."""
    return pkgfactory.build_wheel(tmp_path / "other", "plain-a", "1.0",
                                  files={"plain_a/__init__.py": '__version__ = "1.0"  # rebuilt\n'})


def _resync(synced: dict[str, Path], stack: Path) -> None:
    run(_opts(synced, yes=True))
    assert {n: v for n, v in freeze(synced["venv"]).items() if n not in ("pip", "wheel")} == expected_a(stack)
    assert run(_opts(synced), ("plan", "verify")).verdict == "verified"


@pytest.mark.slow
def test_sync_records_which_wheel_each_package_came_from(synced: dict[str, Path], stack_packages: Path) -> None:
    record = _record(synced["venv"])
    for name, version in LOCK_A.items():
        want = pkgfactory.sha256_of(dist_file(stack_packages, name, version))
        assert record[name]["sha256"] == want and record[name]["version"] == version, name
        assert record[name]["source"] == "fetch"
    assert record["flash-attn-like"]["source"] == "build"  # the wheel built from the sdist
    runner.history.clear()
    assert run(_opts(synced)).verdict == "in-sync"
    assert not [a for a in runner.history if "pip" in a], runner.history


@pytest.mark.slow
def test_lock_hash_of_another_file_is_another_build(synced: dict[str, Path], stack_packages: Path,
                                                    index_server: IndexServer, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The lock's hash for plain-a 1.0 replaced by another file's: the installed plain-a is not the
    locked file. verify says so (exit 1); the no-op path plans a reinstall instead of 'already in sync'
    (whose fetch then fails on the hash, target unchanged)."""
    prof = write_profile(tmp_path / "standin", stack_packages, index_server, LOCK_A)
    lock = prof / "requirements.txt"
    real = pkgfactory.sha256_of(dist_file(stack_packages, "plain-a", "1.0"))
    other = pkgfactory.sha256_of(dist_file(stack_packages, "plain-b", "1.0"))
    lock.write_text(lock.read_text().replace(real, other))
    venv = synced["venv"]
    proc = invoke("verify", "--profile", str(prof), "--venv", str(venv), env=runner.clean_env())
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 at the locked version but another build" in proc.stderr
    assert f"differs: plain-a: another build of 1.0: installed sha256 {real[:12]}" in proc.stderr
    assert "twin of the lock" not in proc.stderr.replace("NOT the lock's twin", "")
    before = _pip(venv, "freeze", "--all")
    planned = run(_opts(synced, profile=str(prof), dry_run=True))
    assert planned.plan is not None
    assert [(a.name, a.kind) for a in planned.plan.changes()] == [("plain-a", "reinstall")]
    assert "another build" in planned.plan.changes()[0].reason
    capsys.readouterr()
    with pytest.raises(FetchError, match="hash mismatch"):
        run(_opts(synced, profile=str(prof), cache_dir=tmp_path / "cache"))
    assert "already in sync" not in capsys.readouterr().err
    assert _pip(venv, "freeze", "--all") == before


@pytest.mark.slow
@pytest.mark.parametrize("how", ["index", "file"])
def test_same_version_other_build_installed_by_hand(synced: dict[str, Path], stack_packages: Path, tmp_path: Path,
                                                    how: str) -> None:
    """Another wheel of plain-a 1.0 installed with pip behind stacksync's back, from a folder (no
    direct_url.json: the files are compared with the locked wheel in the cache) or from the file
    (direct_url.json carries its sha256): plain verify and the no-op path both see it; the sync
    reinstalls the locked wheel."""
    venv = synced["venv"]
    wheel = _other_build(tmp_path)
    if how == "index":
        _pip(venv, "install", "-q", "--force-reinstall", "--no-deps", "--no-index", "--find-links",
             str(wheel.parent), "plain-a==1.0")
        evidence = "its files differ from the locked wheel plain_a-1.0-py3-none-any.whl"
    else:
        _pip(venv, "install", "-q", "--force-reinstall", "--no-deps", str(wheel))
        evidence = f"installed from a file with sha256 {pkgfactory.sha256_of(wheel)[:12]}... (direct_url.json)"
    assert freeze(venv)["plain-a"] == "1.0"
    try:
        with pytest.raises(SyncError) as info:
            run(_opts(synced), ("plan", "verify"))
        assert f"differs: plain-a: another build of 1.0: {evidence}" in str(info.value)
        runner.history.clear()
        outcome = run(_opts(synced))
        assert outcome.verdict == "synced" and outcome.plan is not None
        assert [(a.name, a.kind) for a in outcome.plan.changes()] == [("plain-a", "reinstall")]
        assert any("--force-reinstall" in a and "--no-deps" in a for a in runner.history)
        installed = next(venv.glob("lib/python*/site-packages/plain_a/__init__.py")).read_text()
        assert "rebuilt" not in installed
        assert run(_opts(synced)).verdict == "in-sync"
    finally:
        _resync(synced, stack_packages)


@pytest.mark.slow
def test_the_locked_wheel_reinstalled_by_hand_is_still_a_twin(synced: dict[str, Path], stack_packages: Path) -> None:
    """pip reinstalling the very locked wheel (from the cache) rewrites RECORD: the record no longer
    holds, the files equal the locked wheel's, so it is the twin and the record is renewed."""
    venv = synced["venv"]
    _pip(venv, "install", "-q", "--force-reinstall", "--no-deps", "--no-index", "--find-links", str(synced["cache"]),
         "plain-a==1.0")
    old = _record(venv)["plain-a"]
    assert run(_opts(synced), ("plan", "verify")).verdict == "verified"
    assert run(_opts(synced)).verdict == "in-sync"
    new = _record(venv)["plain-a"]
    assert new["sha256"] == old["sha256"] and new["record"] != old["record"]
    assert new["source"] == "same files as the cached wheel"
    folder = next(venv.glob("lib/python*/site-packages/plain_a-1.0.dist-info"))
    assert tuple(new["record"]) == artifacts.record_stat(folder)  # type: ignore[arg-type]


@pytest.mark.slow
def test_a_target_without_a_record_is_compared_by_files_then_recorded(synced: dict[str, Path]) -> None:
    """A target synced before stacksync recorded artifacts: the no-op path is still a no-op, and it
    records what the cached wheels confirm (the next no-op is a stat per distribution)."""
    venv = synced["venv"]
    before = _record(venv)
    (venv / artifacts.ARTIFACTS_FILE).unlink()
    assert run(_opts(synced)).verdict == "in-sync"
    after = _record(venv)
    assert {n: e["sha256"] for n, e in after.items()} == {n: e["sha256"] for n, e in before.items()
                                                         if n != "flash-attn-like"}  # built: no locked wheel
    assert {e["source"] for e in after.values()} == {"same files as the cached wheel"}


@pytest.mark.slow
def test_lock_missing_a_deferred_dependency_is_refused(synced: dict[str, Path], stack_packages: Path,
                                                       index_server: IndexServer, tmp_path: Path) -> None:
    """einops-like (flash-attn-like needs it) taken out of the lock: before, pip-sync removed it and the
    smoke import failed, target broken. Now refused before any change, naming both and the fix."""
    pins = {n: v for n, v in LOCK_A.items() if n != "einops-like"}
    prof = write_profile(tmp_path / "noeinops", stack_packages, index_server, pins)
    venv = synced["venv"]
    before = _pip(venv, "freeze", "--all")
    with pytest.raises(SyncError) as info:
        run(_opts(synced, profile=str(prof), yes=True))
    text = str(info.value)
    assert "flash-attn-like 2.8.0 requires einops-like, which is not in the lock" in text
    assert "nothing was installed or removed" in text and "invoke compile --profile noeinops" in text
    assert text.startswith(str(prof / "requirements.txt"))
    assert _pip(venv, "freeze", "--all") == before


@pytest.mark.slow
def test_lock_missing_a_dependency_of_a_wheel_is_refused_on_a_new_venv(synced: dict[str, Path], stack_packages: Path,
                                                                       index_server: IndexServer, tmp_path: Path,
                                                                       make_venv) -> None:  # type: ignore[no-untyped-def]
    """nvidia-cublas-like (torch-like's wheel requires it) taken out of the lock: the fetched wheel's
    Requires-Dist shows it before the base phase installs anything."""
    pins = {n: v for n, v in LOCK_A.items() if n != "nvidia-cublas-like"}
    prof = write_profile(tmp_path / "nocublas", stack_packages, index_server, pins)
    venv = make_venv("fresh")
    before = _pip(venv, "freeze", "--all")
    with pytest.raises(SyncError) as info:
        run(_opts(synced, profile=str(prof), venv=str(venv), cache_dir=tmp_path / "cache"))
    assert "torch-like 2.4.0 requires nvidia-cublas-like==12.1.0, which is not in the lock" in str(info.value)
    assert _pip(venv, "freeze", "--all") == before
