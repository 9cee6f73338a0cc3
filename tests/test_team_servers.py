"""Real team indexes: `invoke publish` (twine) to a password-protected pypiserver and to a devpi-server,
two builds of one version under two build keys side by side, and fresh targets with empty wheelhouses
that install the wheel of their own key from there (no build), trusted through wheels.txt."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pkgfactory import DevpiServer, IndexServer
from stackprofile import LOCK_A, LOCK_B, TOKEN_VAR, USER_VAR, builds, record, virtualenv_at, write_profile

from stacksync.backends import indexapi
from stacksync.build import wheelhouse
from stacksync.build.publish import publish
from stacksync.core import runner
from stacksync.lock import wheelrecord
from stacksync.sync.run import Options, run

pytestmark = pytest.mark.slow
TEAM_USER, TEAM_TOKEN = "SS_TEAM_USER", "SS_TEAM_TOKEN"


@pytest.fixture(scope="module")
def two_builds(index_server: IndexServer, stack_packages: Path, _virtualenv_app_data: Path,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """flash-attn-like 2.8.0 built twice into one wheelhouse: against torch-like 2.4.0 (lock A) and 2.3.0 (B)."""
    root = tmp_path_factory.mktemp("team-servers")
    house = root / "wheelhouse"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(USER_VAR, index_server.user)
        mp.setenv(TOKEN_VAR, index_server.password)
        mp.delenv("TORCH_CUDA_ARCH_LIST", raising=False)
        for name, pins in (("a", LOCK_A), ("b", LOCK_B)):
            prof = write_profile(root / f"built-{name}", stack_packages, index_server, pins)
            venv = virtualenv_at(root / f"venv-{name}", _virtualenv_app_data)
            assert run(Options(profile=str(prof), venv=str(venv), cache_dir=root / f"cache-{name}",
                               wheelhouse=str(house), yes=True)).verdict == "synced"
        yield {"root": root, "wheelhouse": house, "app_data": _virtualenv_app_data}


@pytest.fixture(params=["pypiserver", "devpi"])
def team(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """(stack.toml lines naming the team index, a simple URL to read it with) for a live server."""
    if request.param == "pypiserver":
        (tmp_path / "team-packages").mkdir()
        server: IndexServer | DevpiServer = IndexServer(tmp_path / "team-packages", tmp_path / "team-server",
                                                        user="ci-uploader", password="t3am-Secret")
        toml = f'team_index = "http://${{{TEAM_USER}}}:${{{TEAM_TOKEN}}}@127.0.0.1:{server.port}/simple/"'
    else:
        if not DevpiServer.available():
            pytest.skip("devpi-server is not installed (pip install -e .[test])")
        server = DevpiServer(tmp_path / "devpi")
        toml = (f'team_index = "{server.url}"\n'
                f'team_upload_url = "http://${{{TEAM_USER}}}:${{{TEAM_TOKEN}}}@127.0.0.1:{server.port}/root/team/"')
    server.start()
    monkeypatch.setenv(TEAM_USER, server.user)
    monkeypatch.setenv(TEAM_TOKEN, server.password)
    yield toml, server.auth_url if isinstance(server, IndexServer) else server.url
    server.stop()


def test_publish_two_builds_and_install_each_from_the_team_index(
        two_builds: dict[str, Path], team: tuple[str, str], stack_packages: Path, index_server: IndexServer,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml, url = team
    monkeypatch.setenv(USER_VAR, index_server.user)
    monkeypatch.setenv(TOKEN_VAR, index_server.password)
    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST", raising=False)
    stored = {e.key["base"]["torch-like"]: e for e in wheelhouse.entries(two_builds["wheelhouse"])}
    assert set(stored) == {"2.4.0", "2.3.0"}
    prof_b = write_profile(tmp_path / "team-b", stack_packages, index_server, LOCK_B, toml_extra=toml)
    published = publish(str(prof_b), wheelhouse_dir=str(two_builds["wheelhouse"]))
    assert sorted(e.wheel.name for e in published.uploaded) == sorted(e.wheel.name for e in stored.values())
    # Both builds of flash-attn-like 2.8.0 are served side by side, each with its sha256 and build tag.
    listed = {f.filename: f.sha256 for f in indexapi.project_files(url, "flash-attn-like")}
    assert listed == {e.wheel.name: e.sha256 for e in stored.values()}
    assert set(wheelrecord.read(prof_b)) == {e.digest for e in stored.values()}  # publish recorded both
    prof_a = write_profile(tmp_path / "team-a", stack_packages, index_server, LOCK_A, toml_extra=toml)
    shutil.copy(prof_b / wheelrecord.WHEELS_TXT, prof_a / wheelrecord.WHEELS_TXT)  # committed with the locks
    for prof, torch in ((prof_b, "2.3.0"), (prof_a, "2.4.0")):
        venv = virtualenv_at(tmp_path / f"venv-{torch}", two_builds["app_data"])
        runner.history.clear()
        outcome = run(Options(profile=str(prof), venv=str(venv), cache_dir=tmp_path / f"cache-{torch}",
                              wheelhouse=str(tmp_path / f"empty-{torch}")))
        assert outcome.verdict == "synced" and builds(runner.history) == [], builds(runner.history)
        rec = record(venv)
        assert rec["key_digest"] == stored[torch].digest and rec["source"]["kind"] == "team-index"  # type: ignore[index]
        ok = subprocess.run([str(venv / "bin" / "python"), "-c", "import flash_attn_like"], capture_output=True,
                            text=True)
        assert ok.returncode == 0, ok.stderr  # the build of its own torch-like: imports
