"""Build once, install everywhere, end to end with real pip, pypiserver and twine: the flash-attn-like
sdist is built once into a wheelhouse; a second fresh venv installs that wheel with no build and no
sdist download; a torch-like change picks a new key and rebuilds (and going back builds nothing); a
tampered wheel is refused before anything changes; the wheel is published to a password-protected
pypiserver and a third venv with an empty wheelhouse installs it from there.

One module-scoped build (``built``) is shared by every test."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from clihelp import invoke
from pkgfactory import IndexServer
from stackprofile import (
    LOCK_A,
    LOCK_B,
    TEAM_TOKEN,
    TEAM_USER,
    builds,
    expected_a,
    first_build,
    freeze,
    index_env,
    record,
    team_server,
    virtualenv_at,
    write_profile,
)

from stacksync.backends.uv import uv_executable
from stacksync.build import wheelhouse
from stacksync.build.publish import PublishError, publish
from stacksync.core import runner
from stacksync.core.errors import SyncError
from stacksync.sync.run import run
from stacksync.sync.state import Options

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def env(index_server: IndexServer) -> Iterator[None]:
    with index_env(index_server):
        yield


@pytest.fixture(scope="module")
def built(env: None, index_server: IndexServer, stack_packages: Path, _virtualenv_app_data: Path,
          tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Lock A synced into a first venv: the one build of flash-attn-like, into ``wheelhouse``."""
    root = tmp_path_factory.mktemp("wheelhouse-e2e")
    runner.history.clear()
    prof, house, venv, outcome = first_build(root, stack_packages, index_server, _virtualenv_app_data,
                                             report=root / "r1.json")
    return {"root": root, "profile": prof, "wheelhouse": house, "venv": venv, "outcome": outcome,
            "started": [list(a) for a in runner.history], "app_data": _virtualenv_app_data}


def fresh(built: dict[str, object], name: str) -> Path:
    return virtualenv_at(Path(str(built["root"])) / name, Path(str(built["app_data"])))


def test_first_sync_builds_once_and_records_the_key(built: dict[str, object]) -> None:
    started = built["started"]
    assert isinstance(started, list)
    assert len(builds(started)) == 1 and "--no-build-isolation" in builds(started)[0]
    found = wheelhouse.entries(Path(str(built["wheelhouse"])))
    assert len(found) == 1
    entry = found[0]
    assert entry.wheel.name == f"flash_attn_like-2.8.0-0ss{entry.short}-py3-none-any.whl"
    assert entry.key["base"] == {"torch-like": "2.4.0"} and entry.key["build_env"] == {}  # MAX_JOBS left out
    assert entry.key["cuda"] == "12.1" and entry.key["cxx11_abi"] is None  # torch-like ships no TorchConfig.cmake
    rec = record(Path(str(built["venv"])))
    assert rec["key_digest"] == entry.digest and rec["source"]["kind"] == "build"  # type: ignore[index]
    assert wheelhouse.for_target(Path(str(built["venv"])), "flash_attn_like", Path(str(built["wheelhouse"]))) == entry
    receipt = json.loads((Path(str(built["root"])) / "r1.json").read_text())
    assert receipt["plan"]["deferred_sources"]["flash-attn-like"]["kind"] == "build"


def test_second_venv_installs_the_wheel_without_building(built: dict[str, object], stack_packages: Path) -> None:
    venv, cache = fresh(built, "venv2"), Path(str(built["root"])) / "cache2"
    runner.history.clear()
    outcome = run(Options(profile=str(built["profile"]), venv=str(venv), cache_dir=cache,
                          wheelhouse=str(built["wheelhouse"]), report=str(cache.parent / "r2.json")))
    assert outcome.verdict == "synced" and builds(runner.history) == [], builds(runner.history)
    assert not list(cache.glob("flash_attn_like-*")), "the sdist was fetched"
    assert {n: v for n, v in freeze(venv).items() if n not in ("pip", "wheel")} == expected_a(stack_packages)
    ok = subprocess.run([str(venv / "bin" / "python"), "-c", "import flash_attn_like"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    entry = wheelhouse.entries(Path(str(built["wheelhouse"])))[0]
    assert record(venv)["key_digest"] == entry.digest and record(venv)["source"]["kind"] == "wheelhouse"  # type: ignore[index]
    receipt = json.loads((cache.parent / "r2.json").read_text())
    assert receipt["plan"]["deferred_sources"]["flash-attn-like"] == {
        "kind": "wheelhouse", "file": entry.wheel.name, "sha256": entry.sha256, "from": str(built["wheelhouse"]),
        "key": entry.digest}


def test_a_torch_change_picks_a_new_key_and_going_back_builds_nothing(built: dict[str, object],
                                                                      stack_packages: Path,
                                                                      index_server: IndexServer) -> None:
    root = Path(str(built["root"]))
    venv = fresh(built, "venv-b")
    house = str(built["wheelhouse"])
    prof_b = write_profile(root / "standin-b", stack_packages, index_server, LOCK_B)
    runner.history.clear()
    assert run(Options(profile=str(prof_b), venv=str(venv), cache_dir=root / "cache-b", wheelhouse=house,
                       yes=True)).verdict == "synced"
    assert len(builds(runner.history)) == 1  # a key of its own: built
    keys = {e.key["base"]["torch-like"]: e.digest for e in wheelhouse.entries(Path(house))}
    assert set(keys) == {"2.4.0", "2.3.0"} and record(venv)["key_digest"] == keys["2.3.0"]
    # Back to lock A: flash-attn-like is rebuilt in the plan, but the wheel for A's key is there.
    runner.history.clear()
    back = run(Options(profile=str(built["profile"]), venv=str(venv), cache_dir=root / "cache-b", wheelhouse=house,
                       yes=True))
    assert {a.name: a.kind for a in back.plan.changes("deferred")} == {"flash-attn-like": "reinstall"}  # type: ignore[union-attr]
    assert builds(runner.history) == [] and record(venv)["key_digest"] == keys["2.4.0"]
    ok = subprocess.run([str(venv / "bin" / "python"), "-c", "import flash_attn_like"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr


def test_build_env_changes_the_key_but_max_jobs_does_not(built: dict[str, object],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    opts = Options(profile=str(built["profile"]), venv=str(built["venv"]),
                   cache_dir=Path(str(built["root"])) / "cache1", wheelhouse=str(built["wheelhouse"]))
    monkeypatch.setenv("MAX_JOBS", "64")
    assert run(opts, ("plan",)).plan.changes() == []  # type: ignore[union-attr]
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
    plan = run(opts, ("plan",)).plan
    assert plan is not None
    (action,) = plan.changes()
    assert action.kind == "reinstall" and "build_env.TORCH_CUDA_ARCH_LIST unset -> 8.0;9.0" in action.reason


def test_a_tampered_wheelhouse_wheel_is_refused(built: dict[str, object]) -> None:
    root = Path(str(built["root"]))
    house = root / "tampered-house"
    shutil.copytree(Path(str(built["wheelhouse"])), house)
    victim = next(e.wheel for e in wheelhouse.entries(house) if e.key["base"]["torch-like"] == "2.4.0")
    victim.write_bytes(victim.read_bytes() + b"\0")
    venv = fresh(built, "venv-tampered")
    before = freeze(venv)
    with pytest.raises(wheelhouse.TamperedWheel, match="refusing it, nothing was installed"):
        run(Options(profile=str(built["profile"]), venv=str(venv), cache_dir=root / "cache-t", wheelhouse=str(house)))
    assert freeze(venv) == before


@pytest.fixture
def team_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[IndexServer]:
    """An empty, password-protected, upload-enabled pypiserver (the team index)."""
    with team_server(tmp_path, monkeypatch) as server:
        yield server


def test_publish_then_a_venv_installs_from_the_team_index(built: dict[str, object], stack_packages: Path,
                                                          index_server: IndexServer, team_index: IndexServer,
                                                          monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    team = f"http://${{{TEAM_USER}}}:${{{TEAM_TOKEN}}}@127.0.0.1:{team_index.port}/simple/"
    prof = write_profile(tmp_path / "teamed", stack_packages, index_server, LOCK_A,
                         toml_extra=f'team_index = "{team}"')
    house = str(built["wheelhouse"])
    monkeypatch.setenv(TEAM_TOKEN, "wrong")
    with pytest.raises(PublishError, match="403") as info:
        publish(str(prof), wheelhouse_dir=house)
    assert "t3am-Secret" not in str(info.value) and "wrong" not in str(info.value)
    monkeypatch.setenv(TEAM_TOKEN, team_index.password)
    first = publish(str(prof), wheelhouse_dir=house)
    names = sorted(e.wheel.name for e in first.uploaded)
    assert len(names) >= 1 and sorted(p.name for p in team_index.packages_dir.iterdir()) == names
    again = publish(str(prof), wheelhouse_dir=house)
    assert again.uploaded == [] and sorted(e.wheel.name for e in again.already_there) == names
    # A third venv with an empty wheelhouse: the wheel comes from the team index, nothing is built.
    venv, empty = virtualenv_at(tmp_path / "venv3", Path(str(built["app_data"]))), tmp_path / "empty-house"
    report = tmp_path / "r3.json"
    runner.history.clear()
    outcome = run(Options(profile=str(prof), venv=str(venv), cache_dir=tmp_path / "cache3", wheelhouse=str(empty),
                          report=str(report)))
    assert outcome.verdict == "synced" and builds(runner.history) == []
    source = record(venv)["source"]
    assert source["kind"] == "team-index" and source["from"] == team_index.url  # type: ignore[index]
    assert [e.built_on for e in wheelhouse.entries(empty)] == ["team index"]  # kept for the next venv here
    text = report.read_text()
    assert json.loads(text)["plan"]["deferred_sources"]["flash-attn-like"]["kind"] == "team-index"
    assert "t3am-Secret" not in text and "s3cret" not in text


def test_invoke_wheelhouse_lists_and_prunes(built: dict[str, object], tmp_path: Path) -> None:
    house = tmp_path / "house"
    shutil.copytree(Path(str(built["wheelhouse"])), house)
    inv = ["wheelhouse", "--wheelhouse", str(house)]
    listed = invoke(*inv, "--json", env=runner.clean_env())
    assert listed.returncode == 0, listed.stderr
    wheels = json.loads(listed.stdout)["wheels"]
    assert wheels and all(w["key"]["package"] == "flash-attn-like" and w["size"] > 0 for w in wheels)
    table = invoke(*inv, env=runner.clean_env())
    assert wheels[0]["digest"][:12] in table.stdout and "torch-like 2.4.0" in table.stdout
    refused = invoke(*inv, "--prune", env=runner.clean_env())
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "--older-than" in refused.stderr
    pruned = invoke(*inv, "--prune", "--key", wheels[0]["digest"][:8], env=runner.clean_env())
    assert pruned.returncode == 0, pruned.stderr
    assert [e.digest for e in wheelhouse.entries(house)] == [w["digest"] for w in wheels[1:]]


@pytest.mark.skipif(uv_executable() is None, reason="uv is not installed (pip install -e .[uv])")
def test_the_uv_backend_installs_the_wheelhouse_wheel(built: dict[str, object], tmp_path: Path) -> None:
    """A new target made by uv (no pip in it) takes the same wheel: same key, no build."""
    venv = tmp_path / "uv-venv"
    runner.history.clear()
    outcome = run(Options(profile=str(built["profile"]), venv=str(venv), cache_dir=tmp_path / "cache",
                          wheelhouse=str(built["wheelhouse"]), backend="uv"))
    assert outcome.verdict == "synced" and builds(runner.history) == [], builds(runner.history)
    assert not (venv / "bin" / "pip").exists()
    assert record(venv)["source"]["kind"] == "wheelhouse"  # type: ignore[index]
    assert record(venv)["key_digest"] == record(Path(str(built["venv"])))["key_digest"]


def test_a_node_without_a_compiler_installs_the_wheel(built: dict[str, object], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """doctor's build checks (no C compiler: an error) apply only to what will be built: with the wheel
    in the wheelhouse the sync goes on; with an empty one it stops before changing anything."""
    monkeypatch.setenv("CC", "/nonexistent/cc")
    venv = virtualenv_at(tmp_path / "no-cc", Path(str(built["app_data"])))
    before = freeze(venv)
    with pytest.raises(SyncError, match="no C compiler"):
        run(Options(profile=str(built["profile"]), venv=str(venv), cache_dir=tmp_path / "cache",
                    wheelhouse=str(tmp_path / "empty")))
    assert freeze(venv) == before
    runner.history.clear()
    outcome = run(Options(profile=str(built["profile"]), venv=str(venv), cache_dir=tmp_path / "cache",
                          wheelhouse=str(built["wheelhouse"])))
    assert outcome.verdict == "synced" and builds(runner.history) == []


def test_invoke_publish_edge(built: dict[str, object], stack_packages: Path, index_server: IndexServer,
                             tmp_path: Path) -> None:
    """`invoke publish` as a user runs it: a missing credential variable is one line naming the file and
    the fix; --dry-run lists what would go without uploading (the index is asked what it has)."""
    prof = write_profile(tmp_path / "teamed", stack_packages, index_server, LOCK_A,
                         toml_extra=f'team_index = "http://${{{TEAM_USER}}}:${{{TEAM_TOKEN}}}@127.0.0.1:{index_server.port}/simple/"')
    inv = ["publish", "--profile", str(prof), "--wheelhouse", str(built["wheelhouse"])]
    env = {k: v for k, v in runner.clean_env().items() if k not in (TEAM_USER, TEAM_TOKEN)}
    missing = invoke(*inv, env=env)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1, missing.stderr
    assert f"environment variable {TEAM_USER} is not set" in missing.stderr and "stack.toml" in missing.stderr
    env.update({TEAM_USER: index_server.user, TEAM_TOKEN: index_server.password})
    dry = invoke(*inv, "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "would upload flash_attn_like-2.8.0-0ss" in dry.stderr and index_server.password not in dry.stderr


def test_the_plan_says_where_the_deferred_wheel_would_come_from(built: dict[str, object], tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    venv = virtualenv_at(tmp_path / "dry", Path(str(built["app_data"])))
    cache1 = Path(str(built["root"])) / "cache1"  # holds the locked torch-like wheel: the key is known
    house = Path(str(built["wheelhouse"]))
    entry = next(e for e in wheelhouse.entries(house) if e.key["base"]["torch-like"] == "2.4.0")
    run(Options(profile=str(built["profile"]), venv=str(venv), cache_dir=cache1, wheelhouse=str(built["wheelhouse"]),
                dry_run=True))
    out = capsys.readouterr().out
    assert f"deferred source: flash-attn-like: wheelhouse {built['wheelhouse']} (key {entry.short})" in out
    run(Options(profile=str(built["profile"]), venv=str(venv), cache_dir=tmp_path / "empty-cache",
                wheelhouse=str(tmp_path / "empty"), dry_run=True))
    out = capsys.readouterr().out
    assert "deferred source: flash-attn-like: build from the sdist (key known after the fetch" in out
    assert entry.short not in out


def _started(history: list[list[str]], venv: Path) -> list[str]:
    """Each process of ``history``, in words: ``probe <commands>`` / ``pip <subcommand>`` in the target,
    else the program's name (anything else a sync started shows up as itself)."""
    python = str(venv / "bin" / "python")
    out = []
    for argv in history:
        probe = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a.endswith("probe.py")), None)
        if argv[:1] == [python] and probe is not None:
            out.append(f"probe {probe}")
        elif argv[:1] == [python] and argv[1:3] == ["-m", "pip"]:
            out.append(f"pip {argv[3]}")
        else:
            out.append(Path(argv[0]).name)
    return out


def test_a_wheelhouse_hit_starts_the_install_and_two_probes(built: dict[str, object]) -> None:
    """Issue 21: a sync whose only change is the deferred package, its wheel in the wheelhouse, starts
    three processes: doctor's probe before the change, the hash-checked install of that one wheel (no
    build, no download, no pip version probe), and one process after it for the smoke imports and the
    facts verify checks (verify starts none of its own). Counted from the runner's log."""
    venv = Path(str(built["venv"]))
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "uninstall", "-y", "-q", "flash-attn-like"],
                   check=True, capture_output=True)
    runner.history.clear()
    outcome = run(Options(profile=str(built["profile"]), venv=str(venv),
                          cache_dir=Path(str(built["root"])) / "cache1", wheelhouse=str(built["wheelhouse"])))
    assert outcome.verdict == "synced" and "smoke 4/4 ok" in outcome.summary
    assert [a.name for a in outcome.plan.changes()] == ["flash-attn-like"]  # type: ignore[union-attr]
    assert _started(runner.history, venv) == ["probe cuda", "pip install", "probe env+smoke"], runner.history
    install = runner.history[1]
    assert {"--require-hashes", "--no-deps", "--no-index", "--only-binary"} <= set(install)
    assert runner.history[2][-4:] == ["torch_like", "einops_like", "plain_a", "flash_attn_like"]
    assert record(venv)["source"]["kind"] == "wheelhouse"  # type: ignore[index]


def _broken_copy(wheel: Path, dest: Path) -> Path:
    """``wheel`` with its package's ``__init__.py`` replaced by one whose import fails (what a wheel
    built against another torch does), its RECORD line updated; the name without the build tag."""
    import base64
    import hashlib
    import zipfile

    bad = b"raise ImportError('undefined symbol: _ZN3c104cuda9SetDeviceEi')\n"
    digest = base64.urlsafe_b64encode(hashlib.sha256(bad).digest()).rstrip(b"=").decode()
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / "flash_attn_like-2.8.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "flash_attn_like/__init__.py":
                data = bad
            elif info.filename.endswith(".dist-info/RECORD"):
                data = "".join(f"flash_attn_like/__init__.py,sha256={digest},{len(bad)}\n"
                               if line.startswith("flash_attn_like/__init__.py,") else line
                               for line in data.decode().splitlines(keepends=True)).encode()
            zout.writestr(info.filename, data)
    return out


def test_a_deferred_wheel_that_does_not_import_fails_the_sync_in_one_line(built: dict[str, object],
                                                                         tmp_path: Path) -> None:
    """A trusted wheelhouse hit (its sha256 recorded in wheels.txt) whose import fails: installed, then
    the deferred smoke import in the target fails the sync with one line that names the module and
    the fix (a rebuild); the sync does not say "synced"."""
    from stacksync.build.buildkey import BuildKey
    from stacksync.lock import wheelrecord

    good = next(e for e in wheelhouse.entries(Path(str(built["wheelhouse"]))) if e.key["base"]["torch-like"] == "2.4.0")
    prof = tmp_path / "broken" / Path(str(built["profile"])).name
    shutil.copytree(Path(str(built["profile"])), prof)
    key = BuildKey.from_json(good.key)
    entry = wheelhouse.add(tmp_path / "house", _broken_copy(good.wheel, tmp_path / "built"), key,
                           profile=prof.name, source="test")
    assert entry.digest == good.digest and entry.sha256 != good.sha256
    wheelrecord.record(prof, prof.name, [wheelrecord.WheelRecord("flash-attn-like", "2.8.0", key.digest,
                                                                 entry.sha256, entry.wheel.name)])
    venv = fresh(built, "venv-broken-wheel")
    runner.history.clear()
    with pytest.raises(SyncError) as info:
        run(Options(profile=str(prof), venv=str(venv), cache_dir=Path(str(built["root"])) / "cache1",
                    wheelhouse=str(tmp_path / "house")))
    assert builds(runner.history) == []  # the wheel was taken, not rebuilt
    lines = str(info.value).splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("deferred smoke: import flash_attn_like failed: ImportError: undefined symbol")
    assert "--rebuild flash-attn-like" in lines[0]
    # The fix it names: the build's checks (imports, build requirements) ask the target once, the
    # rebuilt wheel replaces the broken one, and one process after it imports and reads the facts.
    runner.history.clear()
    fixed = run(Options(profile=str(prof), venv=str(venv), cache_dir=Path(str(built["root"])) / "cache1",
                        wheelhouse=str(tmp_path / "house"), rebuild=("flash-attn-like",)))
    assert fixed.verdict == "synced" and "smoke 4/4 ok" in fixed.summary
    assert _started(runner.history, venv) == ["probe cuda", "probe env+smoke", "pip wheel", "pip install",
                                              "probe env+smoke"]
