"""Trust comes from the repository: a deferred wheel is taken from a wheelhouse or team index only when
its sha256 is the one ``locks/<profile>/wheels.txt`` records for its key. And nothing built is lost: a
wheelhouse that cannot store the wheel keeps it in the sync cache; one that cannot be written at all
stops the sync before the target changes. Real pip, pypiserver and twine."""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pkgfactory import IndexServer
from stackprofile import (
    LOCK_A,
    TEAM_TOKEN,
    TEAM_USER,
    builds,
    first_build,
    freeze,
    index_env,
    record,
    team_server,
    virtualenv_at,
    write_profile,
)

from stacksync.build import wheelhouse
from stacksync.build.publish import publish
from stacksync.core import runner
from stacksync.core.errors import LockError
from stacksync.lock import wheelrecord
from stacksync.lock.wheelrecord import WheelRecord
from stacksync.sync.deferred import UntrustedWheel
from stacksync.sync.run import Options, run

H1, H2 = "1" * 64, "2" * 64


# ------------------------------------------------------------------------------------------ wheels.txt

def test_wheels_txt_round_trip_sorted_and_mode_kept(tmp_path: Path) -> None:
    a = WheelRecord("flash-attn", "2.8.0", H2, H1, "flash_attn-2.8.0-0ss222222222222-py3-none-any.whl")
    b = WheelRecord("flash-attn", "2.8.0", H1, H2, "flash_attn-2.8.0-0ss111111111111-py3-none-any.whl")
    old = os.umask(0o022)
    try:
        assert wheelrecord.record(tmp_path, "gpu", [a])
        assert (tmp_path / "wheels.txt").stat().st_mode & 0o777 == 0o644
        (tmp_path / "wheels.txt").chmod(0o664)
        assert wheelrecord.record(tmp_path, "gpu", [b]) and not wheelrecord.record(tmp_path, "gpu", [b])
        assert (tmp_path / "wheels.txt").stat().st_mode & 0o777 == 0o664  # a replaced file keeps its mode
    finally:
        os.umask(old)
    text = (tmp_path / "wheels.txt").read_text()
    assert text.splitlines()[2:] == [b.line(), a.line()]  # sorted by package, version, key
    assert wheelrecord.read(tmp_path) == {H1: b, H2: a}
    (tmp_path / "wheels.txt").write_text(text + "flash-attn 2.8.0 nothex\n")
    with pytest.raises(LockError, match=r"wheels.txt:5: not a wheel record"):
        wheelrecord.read(tmp_path)


# ------------------------------------------------------------------------------------------ end to end

@pytest.fixture(scope="module")
def env(index_server: IndexServer) -> Iterator[None]:
    with index_env(index_server):
        yield


@pytest.fixture(scope="module")
def built(env: None, index_server: IndexServer, stack_packages: Path, _virtualenv_app_data: Path,
          tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One build of flash-attn-like into a wheelhouse; the profile records it in wheels.txt."""
    root = tmp_path_factory.mktemp("trust")
    prof, house, _, outcome = first_build(root, stack_packages, index_server, _virtualenv_app_data)
    assert outcome.verdict == "synced"
    return {"root": root, "profile": prof, "wheelhouse": house, "app_data": _virtualenv_app_data}


def refusing(prof: Path) -> Path:
    """``prof`` with ``untrusted = "refuse"`` in its [deferred.flash-attn-like] table (the last one)."""
    with (prof / "stack.toml").open("a") as fh:
        fh.write('untrusted = "refuse"\n')
    return prof


def swapped(wheel: Path) -> bytes:
    """Another wheel of the same name: one more file in it (what a replaced upload would be)."""
    buf = io.BytesIO(wheel.read_bytes())
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr("flash_attn_like/evil.py", "print('ran')\n")
    return buf.getvalue()


@pytest.mark.slow
def test_the_build_is_recorded_in_wheels_txt(built: dict[str, Path]) -> None:
    (entry,) = wheelhouse.entries(built["wheelhouse"])
    recs = wheelrecord.read(built["profile"])
    assert recs == {entry.digest: WheelRecord("flash-attn-like", "2.8.0", entry.digest, entry.sha256,
                                              entry.wheel.name)}


@pytest.mark.slow
def test_an_edited_shared_sidecar_is_refused_or_rebuilt(built: dict[str, Path], tmp_path: Path,
                                                        stack_packages: Path, index_server: IndexServer,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    house = tmp_path / "shared-house"
    shutil.copytree(built["wheelhouse"], house)
    (entry,) = wheelhouse.entries(house)
    entry.wheel.write_bytes(swapped(entry.wheel))
    side = wheelhouse.sidecar_of(entry.wheel)
    doc = json.loads(side.read_text())
    doc["sha256"] = wheelhouse.file_sha256(entry.wheel)  # the sidecar edited to match: its own check passes
    side.write_text(json.dumps(doc))
    prof = refusing(write_profile(tmp_path / "standin", stack_packages, index_server, LOCK_A))
    shutil.copy(built["profile"] / "wheels.txt", prof / "wheels.txt")
    venv = virtualenv_at(tmp_path / "venv", built["app_data"])
    before = freeze(venv)
    # The plan (and doctor's build checks) count only recorded wheels: this one means a build.
    run(Options(profile=str(prof), venv=str(venv), cache_dir=built["root"] / "cache1", wheelhouse=str(house),
                dry_run=True))
    assert f"deferred source: flash-attn-like: build from the sdist (key {entry.short}; no wheel recorded" \
        in capsys.readouterr().out
    with pytest.raises(UntrustedWheel) as info:
        run(Options(profile=str(prof), venv=str(venv), cache_dir=tmp_path / "cache", wheelhouse=str(house)))
    msg = str(info.value)
    assert f"{entry.wheel}: sha256 {doc['sha256']} is not the {entry.sha256}" in msg and "wheels.txt" in msg
    assert "nothing was installed" in msg and "\n" not in msg
    assert freeze(venv) == before
    # untrusted = "build" (the default): not installed, built instead; the record keeps what was built here.
    runner.history.clear()
    default = write_profile(tmp_path / "standin-build", stack_packages, index_server, LOCK_A)
    shutil.copy(built["profile"] / "wheels.txt", default / "wheels.txt")
    assert run(Options(profile=str(default), venv=str(venv), cache_dir=tmp_path / "cache",
                       wheelhouse=str(house))).verdict == "synced"
    assert len(builds(runner.history)) == 1
    assert record(venv)["source"]["sha256"] != doc["sha256"]  # type: ignore[index]


@pytest.fixture
def team_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[IndexServer]:
    with team_server(tmp_path, monkeypatch) as server:
        yield server


@pytest.mark.slow
def test_a_swapped_team_index_wheel_is_refused(built: dict[str, Path], tmp_path: Path, stack_packages: Path,
                                               index_server: IndexServer, team_index: IndexServer) -> None:
    team = f"http://${{{TEAM_USER}}}:${{{TEAM_TOKEN}}}@127.0.0.1:{team_index.port}/simple/"
    prof = refusing(write_profile(tmp_path / "teamed", stack_packages, index_server, LOCK_A,
                                  toml_extra=f'team_index = "{team}"'))
    published = publish(str(prof), wheelhouse_dir=str(built["wheelhouse"]))
    (entry,) = published.uploaded
    assert wheelrecord.read(prof)[entry.digest].sha256 == entry.sha256  # publish records what it uploaded
    on_index = team_index.packages_dir / entry.wheel.name
    on_index.write_bytes(swapped(entry.wheel))
    venv = virtualenv_at(tmp_path / "venv", built["app_data"])
    before = freeze(venv)
    empty = tmp_path / "empty-house"
    with pytest.raises(UntrustedWheel, match=rf"team index {team_index.url} {entry.wheel.name}: sha256 "
                                             rf"[0-9a-f]{{64}} is not the {entry.sha256}"):
        run(Options(profile=str(prof), venv=str(venv), cache_dir=tmp_path / "cache", wheelhouse=str(empty)))
    assert freeze(venv) == before and wheelhouse.entries(empty) == []
    # Put back, it installs from the team index with no build.
    shutil.copy(entry.wheel, on_index)
    runner.history.clear()
    assert run(Options(profile=str(prof), venv=str(venv), cache_dir=tmp_path / "cache",
                       wheelhouse=str(empty))).verdict == "synced"
    assert builds(runner.history) == [] and record(venv)["source"]["kind"] == "team-index"  # type: ignore[index]


@pytest.mark.slow
def test_a_full_wheelhouse_keeps_the_built_wheel(built: dict[str, Path], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    venv = virtualenv_at(tmp_path / "venv", built["app_data"])
    house, cache = tmp_path / "full-house", tmp_path / "cache"
    monkeypatch.setenv("STACKSYNC_FAULT", "enospc:deferred:store")  # the disk fills as the wheel is stored
    outcome = run(Options(profile=str(built["profile"]), venv=str(venv), cache_dir=cache, wheelhouse=str(house)))
    assert outcome.verdict == "synced" and wheelhouse.entries(house) == []
    (kept,) = (cache / "built").glob("*/*.whl")
    err = capsys.readouterr().err
    assert "could not store" in err and f"the wheel is kept at {kept}" in err and "No space left" in err
    assert "Traceback" not in err
    assert record(venv)["source"] == {"kind": "build", "file": kept.name, "sha256": wheelhouse.file_sha256(kept),  # type: ignore[index]
                                      "from": str(kept.parent), "key": record(venv)["key_digest"]}


@pytest.mark.slow
def test_an_unwritable_wheelhouse_stops_the_sync_before_any_change(built: dict[str, Path], tmp_path: Path) -> None:
    venv = virtualenv_at(tmp_path / "venv", built["app_data"])
    before = freeze(venv)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(wheelhouse.Unwritable, match=r"a-file/house: the wheelhouse is not writable .*nothing was "
                                                    r"changed"):
        run(Options(profile=str(built["profile"]), venv=str(venv), cache_dir=tmp_path / "cache",
                    wheelhouse=str(tmp_path / "a-file" / "house")))
    assert freeze(venv) == before
