"""Prebuilt wheels from elsewhere, pinned: a flash-attn-release-named wheel served by a local
http.server, its URL filled from the locked base by ``invoke compile`` (fetched once, sha256 into
deferred.txt), installed by hash by the sync with no build; a changed file is refused with the target
unchanged; a missing one falls back to the build (``prefer``) or is refused (``require``)."""

from __future__ import annotations

import functools
import http.server
import platform
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pkgfactory
import pytest
from pkgfactory import IndexServer
from stackprofile import LOCK_A, TOKEN_VAR, USER_VAR, builds, freeze, record, virtualenv_at, write_profile

from stacksync.compile import compiler as comp
from stacksync.core import runner
from stacksync.core.errors import FetchError
from stacksync.lock import profile as profile_mod
from stacksync.lock.lockfile import parse
from stacksync.sync.run import run
from stacksync.sync.state import Options

pytestmark = pytest.mark.slow
XY = f"{sys.version_info[0]}{sys.version_info[1]}"
PLAT = f"linux_{platform.machine()}"
RELEASE = f"flash_attn_like-2.8.0+cu12torch2.4cxx11abiFALSE-cp{XY}-cp{XY}-{PLAT}.whl"


class _Handler(http.server.SimpleHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        _Handler.hits.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(base URL, served folder): ``<folder>/releases/v2.8.0/<RELEASE>``, the prebuilt wheel."""
    folder = tmp_path_factory.mktemp("releases")
    dest = folder / "releases" / "v2.8.0"
    wheel = pkgfactory.build_wheel(dest, "flash-attn-like", "2.8.0", requires=["torch-like", "einops-like"],
                                   tag=f"cp{XY}-cp{XY}-{PLAT}", files={
                                       "flash_attn_like/__init__.py":
                                           pkgfactory._FLASH_INIT.replace("{version}", "2.8.0") + "PREBUILT = True\n",
                                       "flash_attn_like/_built_against.py": 'TORCH = "2.4.0+cu121"\n'})
    wheel.rename(dest / RELEASE)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_Handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder
    server.shutdown()


@pytest.fixture(scope="module")
def compiled(index_server: IndexServer, stack_packages: Path, releases: tuple[str, Path], _virtualenv_app_data: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """The stand-in profile with a ``wheels`` template, compiled for real (pip-compile on pypiserver)."""
    base_url, folder = releases
    root = tmp_path_factory.mktemp("prebuilt")
    prof = write_profile(root / "standin", stack_packages, index_server, LOCK_A)
    template = (base_url + "/releases/v{version}/flash_attn_like-{version}+cu{cuda_major}torch{torch_mm}"
                "cxx11abi{abi}-cp{py}-cp{py}-" + PLAT + ".whl")
    with open(prof / "stack.toml", "a", encoding="utf-8") as fh:  # the [deferred.flash-attn-like] table is last
        fh.write(f'wheels = "{template}"\n')
    for lock in ("requirements.txt", "deferred.txt"):  # resolved afresh: torch-like 2.4.0+cu121, as pip prefers
        (prof / lock).unlink()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(USER_VAR, index_server.user)
        mp.setenv(TOKEN_VAR, index_server.password)
        mp.setenv("XDG_CACHE_HOME", str(root / "xdg"))
        _Handler.hits.clear()
        first = comp.compile_profile(profile_mod.load(str(prof)))
        hits_after_first = len(_Handler.hits)
        again = comp.compile_profile(profile_mod.load(str(prof)))
        yield {"root": root, "profile": prof, "folder": folder, "first": first, "again": again,
               "hits_after_first": hits_after_first, "hits_after_again": len(_Handler.hits),
               "app_data": _virtualenv_app_data}


def test_compile_pins_the_prebuilt_wheel_once(compiled: dict[str, object], stack_packages: Path) -> None:
    prof, folder = Path(str(compiled["profile"])), Path(str(compiled["folder"]))
    wheel = folder / "releases" / "v2.8.0" / RELEASE
    text = (prof / "deferred.txt").read_text()
    (pin,) = parse(prof / "deferred.txt", lock=True).pins
    sdist = pkgfactory.sha256_of(stack_packages / "flash_attn_like-2.8.0.tar.gz")
    assert set(pin.hashes) == {f"sha256:{pkgfactory.sha256_of(wheel)}", f"sha256:{sdist}"}
    assert "# prebuilt: http://127.0.0.1:" in text and f"/{RELEASE} sha256:{pkgfactory.sha256_of(wheel)}" in text
    # filled from the locked base: torch-like 2.4.0+cu121 -> cu12, torch 2.4, ABI FALSE (before 2.7)
    assert compiled["hits_after_first"] == 1 and compiled["hits_after_again"] == 1  # fetched once
    assert not compiled["again"].changed  # type: ignore[attr-defined]


def _sync(compiled: dict[str, object], name: str, profile: Path | None = None) -> tuple[Path, object]:
    root = Path(str(compiled["root"]))
    venv = virtualenv_at(root / name, Path(str(compiled["app_data"])))
    runner.history.clear()
    outcome = run(Options(profile=str(profile or compiled["profile"]), venv=str(venv), cache_dir=root / f"cache-{name}",
                          wheelhouse=str(root / f"house-{name}")))
    return venv, outcome


def test_sync_installs_the_pinned_prebuilt_wheel_without_building(compiled: dict[str, object],
                                                                  index_server: IndexServer,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(USER_VAR, index_server.user)
    monkeypatch.setenv(TOKEN_VAR, index_server.password)
    venv, outcome = _sync(compiled, "venv-prebuilt")
    assert outcome.verdict == "synced" and builds(runner.history) == []  # type: ignore[attr-defined]
    assert record(venv)["source"]["kind"] == "prebuilt"  # type: ignore[index]
    assert freeze(venv)["flash-attn-like"] == "2.8.0"
    ok = subprocess.run([str(venv / "bin" / "python"), "-c", "import flash_attn_like as f; assert f.PREBUILT"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr


def test_a_changed_prebuilt_file_is_refused_and_a_missing_one_builds_or_refuses(
        compiled: dict[str, object], index_server: IndexServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(USER_VAR, index_server.user)
    monkeypatch.setenv(TOKEN_VAR, index_server.password)
    served = Path(str(compiled["folder"])) / "releases" / "v2.8.0" / RELEASE
    original = served.read_bytes()
    try:
        served.write_bytes(original + b"\0")
        root = Path(str(compiled["root"]))
        venv = virtualenv_at(root / "venv-changed", Path(str(compiled["app_data"])))
        before = freeze(venv)
        with pytest.raises(FetchError, match=r"is not one the lock lists \(.*\); refusing it"):
            run(Options(profile=str(compiled["profile"]), venv=str(venv), cache_dir=root / "cache-changed"))
        assert freeze(venv) == before
        served.unlink()
        venv, outcome = _sync(compiled, "venv-missing")  # prefer: the sdist is built instead
        assert outcome.verdict == "synced" and len(builds(runner.history)) == 1  # type: ignore[attr-defined]
        assert record(venv)["source"]["kind"] == "build"  # type: ignore[index]
        prof = Path(str(compiled["profile"]))
        strict = root / "strict"
        strict.mkdir()
        for f in ("requirements.in", "requirements.txt", "deferred.txt"):  # the headers name the profile
            (strict / f).write_text((prof / f).read_text().replace(f"'{prof.name}'", "'strict'")
                                    .replace(f"--profile {prof.name}\n", "--profile strict\n"))
        (strict / "stack.toml").write_text((prof / "stack.toml").read_text() + 'prebuilt = "require"\n')
        with pytest.raises(FetchError, match="HTTP 404"):
            _sync(compiled, "venv-strict", profile=strict)
    finally:
        served.write_bytes(original)
