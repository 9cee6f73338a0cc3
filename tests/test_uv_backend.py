"""The uv backend on the real pypiserver fixture with the real uv, offline: the same lock as pip-tools
(packages, versions, hashes), a lock for another Python X.Y, and a full phased sync into a venv made
by ``uv venv`` (no pip in it) that passes the twin check and re-syncs without starting uv or pip.

The profile and lock writers are test_sync's (imported, not copied)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pkgfactory
import pytest
from pkgfactory import IndexServer
from stackprofile import LOCK_A, PY_XY, TOKEN_VAR, USER_VAR, expected_a, freeze, write_profile

from stacksync.backends import backend as backend_mod
from stacksync.backends import uv as uv_mod
from stacksync.compile import compiler as comp
from stacksync.core import runner
from stacksync.core.errors import ProfileError
from stacksync.lock import profile
from stacksync.lock.lockfile import parse_text
from stacksync.sync.run import run
from stacksync.sync.state import Options

UV = uv_mod.uv_executable()
pytestmark = pytest.mark.skipif(UV is None, reason="uv is not installed (pip install -e .[uv])")
OTHER_PY = "3.10" if PY_XY != "3.10" else "3.12"


def lock_table(text: str) -> dict[str, tuple[str | None, tuple[str, ...]]]:
    """name -> (version, sorted hashes): what two backends' locks must agree on."""
    pins = parse_text(text, "<lock>", lock=True, follow_includes=False).pins
    return {p.name: (p.version, tuple(sorted(p.hashes))) for p in pins}


@pytest.fixture
def auth(index_server: IndexServer, monkeypatch: pytest.MonkeyPatch) -> IndexServer:
    monkeypatch.setenv(USER_VAR, index_server.user)
    monkeypatch.setenv(TOKEN_VAR, index_server.password)
    return index_server


def standin(tmp_path: Path, stack: Path, server: IndexServer, *, python: str = PY_XY) -> profile.Profile:
    """test_sync's stand-in profile without its hand-written locks: compile resolves from scratch."""
    folder = write_profile(tmp_path / "standin", stack, server, LOCK_A, python=python)
    (folder / "requirements.txt").unlink()
    (folder / "deferred.txt").unlink()
    return profile.load(folder)


# --- pure parts -------------------------------------------------------------------------------------

def test_backend_selection_reaches_uv(monkeypatch: pytest.MonkeyPatch) -> None:
    assert backend_mod.resolve_name("auto", None) == "uv"  # uv is installed here
    assert backend_mod.resolve_name(None, "uv") == "uv"
    monkeypatch.setenv("STACKSYNC_BACKEND", "uv")
    assert backend_mod.resolve_name(None, "pip-tools") == "uv"
    assert backend_mod.resolve_name("pip-tools", "uv") == "pip-tools"
    uv = backend_mod.get_backend("uv")
    runner.history.clear()
    assert uv.name == "uv" and uv.versions()["uv"] and not uv.needs_target_pip and uv.cross_target
    assert runner.history == []  # the uv beside this interpreter: version from its metadata, no process


def test_uv_spelling_of_index_options_and_platforms() -> None:
    args = ["--index-url", "http://u:p@a/simple", "--extra-index-url", "http://b/simple", "--trusted-host", "b"]
    assert uv_mod.uv_index_args(args) == [
        "--index-url", "http://u:p@a/simple", "--extra-index-url", "http://b/simple",
        "--allow-insecure-host", "b", "--index-strategy", "unsafe-best-match"]
    assert uv_mod.index_urls_from_args(args) == ["http://u:p@a/simple", "http://b/simple"]
    host = uv_mod.uv_python_platform(["linux"], host="linux", machine="x86_64", glibc="2.36")
    assert host == ("x86_64-manylinux_2_36", "")
    assert uv_mod.uv_python_platform(["darwin"], host="linux", machine="x86_64", glibc="2.36") == (
        "x86_64-apple-darwin", "")
    plat, note = uv_mod.uv_python_platform(["win32", "darwin"], host="linux", machine="AMD64", glibc=None)
    assert plat == "x86_64-pc-windows-msvc" and "resolved for win32 only" in note


def test_uv_body_gets_pip_compile_layout() -> None:
    uv_body = ("a==1 \\\n    --hash=sha256:aa\n    # via -r requirements.in\n"
               "setuptools==80 \\\n    --hash=sha256:ss\n    # via a\n"
               "zz==2 \\\n    --hash=sha256:zz\n    # via a\n")
    assert uv_mod.pip_compile_layout(uv_body) == (
        "a==1 \\\n    --hash=sha256:aa\n    # via -r requirements.in\n"
        "zz==2 \\\n    --hash=sha256:zz\n    # via a\n\n"
        "# The following packages are considered to be unsafe in a requirements file:\n"
        "setuptools==80 \\\n    --hash=sha256:ss\n    # via a\n")
    assert uv_mod.pip_compile_layout("a==1\n") == "a==1\n"


def test_target_tags_and_wheel_choice() -> None:
    import packaging.tags
    from packaging.tags import Tag
    from packaging.version import Version

    from stacksync.backends.indexapi import IndexFile
    from stacksync.env import tags as tags_mod

    tags = tags_mod.cpython_tags("3.11", "cpython-311-x86_64-linux-gnu", list(packaging.tags.platform_tags()))
    assert Tag("py3", "none", "any") in tags and Tag("cp311", "abi3", tags[0].platform) in tags

    def f(name: str, sha: str | None) -> IndexFile:
        return IndexFile(name, f"http://x/{name}", sha, None, False, "torch", Version("2.4.0"), "http://x")

    files = [f("torch-2.4.0-cp311-cp311-manylinux1_x86_64.whl", "aa"), f("torch-2.4.0-py3-none-any.whl", "bb"),
             f("torch-2.4.0-cp310-cp310-manylinux1_x86_64.whl", "cc"), f("torch-2.4.0.tar.gz", "dd")]
    if sys.platform == "linux":
        assert uv_mod.pick_wheel(files, ["sha256:aa", "sha256:bb"], tags) is files[0]
    assert uv_mod.pick_wheel(files, ["sha256:bb"], tags) is files[1]
    assert uv_mod.pick_wheel(files, ["sha256:cc", "sha256:dd"], tags) is None  # other Python / sdist


# --- compile -----------------------------------------------------------------------------------------

def test_uv_lock_equals_pip_tools_lock(auth: IndexServer, stack_packages: Path, tmp_path: Path) -> None:
    prof = standin(tmp_path, stack_packages, auth)
    by_backend, texts = {}, {}
    for name in ("pip-tools", "uv"):
        result = comp.compile_profile(prof, backend=name, check=True)
        lock, deferred = (o.new or "" for o in result.files)
        assert auth.password not in lock + deferred and "127.0.0.1" not in lock
        assert f"# backend: {name}" in lock and "# via" in lock
        by_backend[name] = (lock_table(lock), lock_table(deferred))
        texts[name] = (lock, deferred)
    assert by_backend["uv"] == by_backend["pip-tools"]
    main, deferred = by_backend["uv"]
    assert {"torch-like", "nvidia-cudnn-like", "nvidia-cublas-like", "setuptools"} <= set(main)
    assert all(hashes for _, hashes in main.values()) and set(deferred) == {"flash-attn-like"}
    # Same layout too (setuptools last, under pip-compile's "unsafe" comment): only the backend line differs.
    for old, new in zip(texts["pip-tools"], texts["uv"], strict=True):
        assert old != new and comp.same_but_backend(old, new) == old
    # So a lock pip-tools wrote is fresh for `invoke compile --check --backend uv`.
    comp.compile_profile(prof, backend="pip-tools")
    assert not comp.compile_profile(prof, backend="uv", check=True).changed


def test_backends_record_the_same_hashes_with_a_wheel_on_an_extra_index(
        fresh_index_server: IndexServer, stack_packages: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sdist on the main index, its wheel on an extra one: uv hashed only the first index's files
    (the sdist), pip-tools both; now both locks list both."""
    monkeypatch.setenv(USER_VAR, fresh_index_server.user)
    monkeypatch.setenv(TOKEN_VAR, fresh_index_server.password)
    sdist = pkgfactory.build_sdist(tmp_path / "main", "split-like", "1.0", setup_py="from setuptools import setup\n"
                                   "setup(name='split-like', version='1.0', py_modules=[])\n")
    wheel = pkgfactory.build_wheel(tmp_path / "extra-packages", "split-like", "1.0",
                                   files={"split_like/__init__.py": ""})
    fresh_index_server.add(sdist)
    extra = IndexServer(tmp_path / "extra-packages", tmp_path / "extra-server")
    extra.start()
    try:
        url = f"http://${{{USER_VAR}}}:${{{TOKEN_VAR}}}@127.0.0.1:{extra.port}/simple/"
        folder = write_profile(tmp_path / "split", stack_packages, fresh_index_server, LOCK_A,
                               toml_extra=f'extra_index_urls = ["{url}"]')
        with (folder / "requirements.in").open("a") as fh:
            fh.write("split-like==1.0\n")
        (folder / "requirements.txt").unlink()
        (folder / "deferred.txt").unlink()
        prof = profile.load(folder)
        tables = {name: lock_table(comp.compile_profile(prof, backend=name, check=True).files[0].new or "")
                  for name in ("pip-tools", "uv")}
    finally:
        extra.stop()
    want = tuple(sorted(f"sha256:{pkgfactory.sha256_of(f)}" for f in (sdist, wheel)))
    assert tables["uv"]["split-like"] == tables["pip-tools"]["split-like"] == ("1.0", want)
    assert tables["uv"] == tables["pip-tools"]


def test_uv_compiles_for_another_python_pip_tools_refuses(auth: IndexServer, stack_packages: Path,
                                                          tmp_path: Path) -> None:
    prof = standin(tmp_path, stack_packages, auth, python=OTHER_PY)
    with pytest.raises(ProfileError, match=rf"Python {OTHER_PY}.*--backend uv"):
        comp.compile_profile(prof, backend="pip-tools")
    assert not prof.lock_path.exists()
    runner.history.clear()
    result = comp.compile_profile(prof, backend="uv")
    text = prof.lock_path.read_text()
    assert result.written and f"resolved for: Python {OTHER_PY} " in text
    assert "torch-like" in lock_table(text) and prof.deferred_path.is_file()
    (uv_argv,) = [a for a in runner.history if "compile" in a]
    assert uv_argv[uv_argv.index("--python-version") + 1] == OTHER_PY
    assert auth.password not in json.dumps(runner.history)


# --- sync ----------------------------------------------------------------------------------------------

def uv_or_pip_starts(history: list[list[str]]) -> list[list[str]]:
    return [a for a in history if any(Path(x).name in ("uv", "pip") for x in a) or "pip" in a or "piptools" in a]


@pytest.mark.slow
def test_sync_with_uv_creates_a_uv_venv_and_syncs_it(auth: IndexServer, stack_packages: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_profile(tmp_path / "standin", stack_packages, auth, LOCK_A)
    venv = tmp_path / "venv"  # missing: the uv backend creates it with `uv venv` (no pip in it)
    cache, report = tmp_path / "cache", tmp_path / "receipt.json"
    runner.history.clear()
    outcome = run(Options(profile=str(folder), venv=str(venv), cache_dir=cache, backend="uv", report=str(report)))
    assert [a[1] for a in runner.history if Path(a[0]).name == "uv"][0] == "venv"
    assert not (venv / "bin" / "pip").exists()
    assert outcome.verdict == "synced" and outcome.twin is not None and outcome.twin.identical
    assert freeze(venv) == expected_a(stack_packages)  # nothing else: no pip, no wheel
    started = uv_or_pip_starts(runner.history)
    assert started and all(Path(a[0]).name == "uv" for a in started), started
    # A new venv has nothing to remove: the rest phase is `uv pip install` of the hashed lock.
    assert not any("sync" in a for a in started) and any("--no-build-isolation" in a for a in started)
    # ...without resolving it again: fetch's dependency check already held the lock's closure
    (rest,) = [a for a in started if a[1:3] == ["pip", "install"] and "rest.txt" in a[a.index("-r") + 1]]
    assert "--no-deps" in rest and "--require-hashes" in rest and "--no-index" in rest
    ok = subprocess.run([str(venv / "bin" / "python"), "-c", "import flash_attn_like, torch_like"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    receipt = report.read_text()
    assert json.loads(receipt)["backend"]["name"] == "uv"
    # Re-sync: decided from the probe and the lock; neither uv nor pip starts.
    runner.history.clear()
    assert run(Options(profile=str(folder), venv=str(venv), cache_dir=cache, backend="uv",
                       report=str(report))).verdict == "in-sync"
    assert uv_or_pip_starts(runner.history) == [], runner.history
    # An extra package is removed by `uv pip sync`, and the deferred build survives it.
    subprocess.run([str(UV), "pip", "install", "--no-config", "-q", "--python", str(venv / "bin" / "python"),
                    "--no-index", "--find-links", str(stack_packages), "plain-b"], check=True, capture_output=True)
    runner.history.clear()
    again = run(Options(profile=str(folder), venv=str(venv), cache_dir=cache, backend="uv", yes=True))
    assert again.plan is not None and {a.name: a.kind for a in again.plan.changes()} == {"plain-b": "remove"}
    assert any(Path(a[0]).name == "uv" and a[1:3] == ["pip", "sync"] for a in runner.history), runner.history
    assert freeze(venv) == expected_a(stack_packages)
    out = capsys.readouterr()
    assert auth.password not in out.out + out.err + receipt + json.dumps(runner.history)


@pytest.mark.slow
def test_uv_fetch_failure_leaves_the_target_alone(auth: IndexServer, stack_packages: Path, tmp_path: Path) -> None:
    """A lock hash the index does not serve: one line naming the pin, nothing installed."""
    folder = write_profile(tmp_path / "standin", stack_packages, auth, LOCK_A)
    lock = folder / "requirements.txt"
    text = lock.read_text()
    start = text.index("plain-a==1.0")
    digest = text.index("sha256:", start) + len("sha256:")
    lock.write_text(text[:digest] + "0" * 64 + text[digest + 64:])
    venv = tmp_path / "venv"
    subprocess.run([str(UV), "venv", "--no-config", "-q", "--python", sys.executable, str(venv)], check=True,
                   capture_output=True)
    from stacksync.core.errors import FetchError

    with pytest.raises(FetchError, match=r"plain-a==1\.0.*nothing was installed or removed"):
        run(Options(profile=str(folder), venv=str(venv), cache_dir=tmp_path / "cache", backend="uv"))
    assert freeze(venv) == {}
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)


# --- nox -s reproduce with the uv backend ---------------------------------------------------------------

def test_reproduce_venv_backend_follows_the_stacksync_backend(tmp_path: Path, index_server: IndexServer,
                                                              stack_packages: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    locks = tmp_path / "locks"
    write_profile(locks / "standin", stack_packages, index_server, LOCK_A)
    write_profile(locks / "uvprof", stack_packages, index_server, LOCK_A, toml_extra='backend = "uv"')
    pick = backend_mod.reproduce_venv_backend
    assert pick(["nox", "-s", "reproduce"], locks) is None  # standin is pip-tools
    assert pick(["nox", "-s", "reproduce", "--", "--profile", "uvprof"], locks) == "uv"
    assert pick(["nox", "--", "--backend=uv"], locks) == "uv"
    assert pick(["nox", "--", "--backend", "pip-tools", "--profile", "uvprof"], locks) is None
    monkeypatch.setenv("STACKSYNC_BACKEND", "uv")
    assert pick(["nox"], locks) == "uv"
    assert pick(["nox", "--", "--backend", "bogus"], locks) is None  # the session reports it


@pytest.mark.slow
def test_nox_reproduce_with_backend_uv(tmp_path: Path, index_server: IndexServer, stack_packages: Path) -> None:
    from test_reproduce import nox

    write_profile(tmp_path / "locks" / "standin", stack_packages, index_server, LOCK_A)
    proc = nox(tmp_path, index_server, "-s", "reproduce", "--", "--backend", "uv")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "reports" / "reproduce-standin.json").read_text())
    assert report["verdict"] == "twin" and report["venv"]["backend"] == "uv"
    assert report["installers"]["backend"] == "uv" and report["installers"]["uv"]
    assert report["installers"]["target_pip"] is None  # a uv venv, synced without pip
    assert index_server.password not in proc.stdout + proc.stderr


def other_python() -> str | None:
    """A working python{OTHER_PY}: on PATH, else a pyenv install (its shim fails unless selected)."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    for exe in [shutil.which(f"python{OTHER_PY}"), *sorted(pyenv.glob(f"versions/{OTHER_PY}.*/bin/python{OTHER_PY}"))]:
        if exe and subprocess.run([str(exe), "-c", "pass"], capture_output=True).returncode == 0:
            return str(exe)
    return None


OTHER_EXE = other_python()


@pytest.mark.slow
@pytest.mark.skipif(OTHER_EXE is None, reason=f"no working python{OTHER_PY}")
def test_lock_compiled_for_another_python_syncs_into_it(auth: IndexServer, stack_packages: Path,
                                                        tmp_path: Path) -> None:
    """Compiled from this Python with uv for OTHER_PY, then synced with uv into an OTHER_PY venv."""
    prof = standin(tmp_path, stack_packages, auth, python=OTHER_PY)
    comp.compile_profile(prof, backend="uv")
    venv = tmp_path / "venv"
    subprocess.run([str(UV), "venv", "--no-config", "-q", "--no-python-downloads", "--python", str(OTHER_EXE),
                    str(venv)], check=True, capture_output=True)
    outcome = run(Options(profile=str(prof.folder), venv=str(venv), cache_dir=tmp_path / "cache", backend="uv"))
    assert outcome.verdict == "synced" and outcome.twin is not None and outcome.twin.identical
    assert probe_version(venv).startswith(OTHER_PY + ".")


def probe_version(venv: Path) -> str:
    from stacksync.env.environment import probe

    return probe(venv).version


@pytest.mark.slow
def test_a_cold_sync_of_a_lock_without_cuda_leaves_out_the_cuda_probe(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 21: a new venv synced to a lock of plain wheels (no CUDA, no torch / triton / nvidia-*, nothing
    to build) never asks the target `cuda`, whatever nvcc is on PATH: doctor's facts would give "ok" lines
    only (and its nvcc-on-PATH warning, which matters to a build). The first such sync asks `env` before
    the install; a venv made again at the same path from the same interpreter has the same interpreter
    facts, read from the cache: no probe before the install, and the same twin after it."""
    from test_sync import target_probes

    from devtools import bench_scale

    monkeypatch.setenv("STACKSYNC_CACHE_DIR", str(tmp_path / "ss-cache"))
    port = bench_scale._free_port()
    locks = bench_scale.write_scale_profiles(tmp_path, port, sizes=(4,))
    venv = tmp_path / "venv"
    seen: list[list[str]] = []
    with bench_scale._http_index(tmp_path, port):
        for _ in range(2):
            shutil.rmtree(venv, ignore_errors=True)
            runner.history.clear()
            outcome = run(Options(profile=bench_scale.profile_name(4), locks_dir=locks, venv=str(venv),
                                  cache_dir=tmp_path / "cache", backend="uv", yes=True))
            assert outcome.verdict == "synced" and outcome.twin is not None and outcome.twin.identical
            seen.append(target_probes(runner.history, venv))
            assert set(freeze(venv)) == set(bench_scale.scale_names(4))
    assert seen[0][0] == "env" and not any("cuda" in p for probes in seen for p in probes), seen
    assert seen[1] == seen[0][1:], seen  # the second cold sync: no probe before the install
