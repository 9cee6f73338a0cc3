"""The byte-exact twin: ``verify --files``, manifests, ``diff --files`` and PEP 751 ``pylock.toml``, with real
pip / pip-tools / uv installs from the local pypiserver (stand-in stack).

One module fixture exports the stand-in profile's lock as pylock.toml and syncs two venvs: A from the
pylock.toml (``--lock``), B from requirements.txt. Damage is done to a copy of B, never to A or B.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pkgfactory
import pytest
from clihelp import invoke
from pkgfactory import IndexServer
from stackprofile import LOCK_A, TOKEN_VAR, USER_VAR, virtualenv_at, write_profile

from stacksync.backends.uv import uv_executable
from stacksync.build import export
from stacksync.env import manifest, record, verify_files
from stacksync.lock import pylock
from stacksync.lock.lockfile import parse
from stacksync.sync.run import run
from stacksync.sync.state import Options

ROOT = Path(__file__).resolve().parent.parent
SP = f"lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def twins(index_server: IndexServer, stack_packages: Path, _virtualenv_app_data: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    root = tmp_path_factory.mktemp("twins")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {USER_VAR: index_server.user, TOKEN_VAR: index_server.password,
                           "PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": "", "PIP_NO_INPUT": "1",
                           "UV_NO_CONFIG": "1", "XDG_CACHE_HOME": str(root / "xdg")}.items():
            mp.setenv(key, value)
        prof = write_profile(root / "standin", stack_packages, index_server, LOCK_A)
        lock = root / "pylock.toml"
        exported = invoke("export", "--format", "pylock", "--profile", str(prof), "--out", str(lock))
        assert exported.returncode == 0, exported.stdout + exported.stderr
        a, b = virtualenv_at(root / "a", _virtualenv_app_data), virtualenv_at(root / "b", _virtualenv_app_data)
        cache = root / "cache" / "standin"  # where STACKSYNC_CACHE_DIR=root/cache puts the profile's
        run(Options(profile=str(prof), venv=str(a), cache_dir=cache, lock=lock, report=str(root / "a.json")))
        run(Options(profile=str(prof), venv=str(b), cache_dir=cache, report=str(root / "b.json")))
        yield {"root": root, "profile": prof, "pylock": lock, "a": a, "b": b, "cache": cache}


# --- pylock.toml ---------------------------------------------------------------------------------------

def _pins(files: list[Path]) -> set[tuple[str, str | None, tuple[str, ...], str | None]]:
    out = set()
    for f in files:
        lock = pylock.read(f) if pylock.is_pylock(f) else parse(f, lock=True)
        out |= {(p.name, p.version, p.hashes, str(p.marker) if p.marker else None) for p in lock.pins}
    return out


def test_pylock_round_trips_and_uv_accepts_it(twins: dict[str, Path], index_server: IndexServer,
                                              make_venv) -> None:  # type: ignore[no-untyped-def]
    text = twins["pylock"].read_text()
    assert text.splitlines()[2:6] == ['lock-version = "1.0"', "environments = [\"sys_platform == 'linux'\"]",
                                      f'requires-python = "=={sys.version_info[0]}.{sys.version_info[1]}.*"',
                                      'created-by = "stacksync"']
    assert index_server.password not in text and index_server.user not in text
    # export -> read gives the same pins and hashes as requirements.txt + deferred.txt
    prof = twins["profile"]
    assert _pins([twins["pylock"]]) == _pins([prof / "requirements.txt", prof / "deferred.txt"])
    got = pylock.read(twins["pylock"])
    assert got.get("torch-like")[0].via == ("flash-attn-like",)  # dependencies read back as `# via`
    assert 'sdist = { name = "flash_attn_like-2.8.0.tar.gz", url = "' + index_server.base_url in text
    uv = uv_executable()
    if uv is None:
        pytest.skip("uv is not installed (pip install -e '.[uv]'): the second reader of pylock.toml")
    venv = make_venv("uv-target")
    proc = subprocess.run([uv, "pip", "install", "--dry-run", "--python", str(venv / "bin" / "python"),
                           "-r", str(twins["pylock"])], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    planned = {line.strip()[2:] for line in proc.stderr.splitlines() if line.strip().startswith("+ ")}
    # setuptools is already there at the locked version (virtualenv seeds the same wheel)
    assert planned >= {"torch-like==2.4.0", "nvidia-cudnn-like==9.1.0", "nvidia-cublas-like==12.1.0",
                       "einops-like==0.8.0", "plain-a==1.0", "flash-attn-like==2.8.0"}, proc.stderr


def test_sync_from_pylock_equals_sync_from_requirements(twins: dict[str, Path]) -> None:
    receipt_a = json.loads((twins["root"] / "a.json").read_text())
    receipt_b = json.loads((twins["root"] / "b.json").read_text())
    assert receipt_a["verdict"] == receipt_b["verdict"] == "synced"
    assert receipt_a["lock"]["path"] == str(twins["pylock"])
    # the two runs compare by one hash: every installed file is the same
    assert receipt_a["manifest"]["digest"] == receipt_b["manifest"]["digest"]
    assert receipt_a["manifest"]["verified"] and receipt_a["manifest"]["files"] > 10
    # A (synced from pylock.toml) is already in sync with requirements.txt, and the other way round
    assert run(Options(profile=str(twins["profile"]), venv=str(twins["a"]), cache_dir=twins["cache"])).verdict \
        == "in-sync"
    assert run(Options(profile=str(twins["profile"]), venv=str(twins["b"]), cache_dir=twins["cache"],
                       lock=twins["pylock"])).verdict == "in-sync"
    same = invoke("diff", str(twins["pylock"]), str(twins["b"]))
    assert same.returncode == 0 and "identical" in same.stdout, same.stdout + same.stderr


def test_a_profile_locked_by_pylock_toml_alone(twins: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "pylocked"
    shutil.copytree(twins["profile"], folder)
    (folder / "requirements.txt").unlink()
    (folder / "deferred.txt").unlink()
    shutil.copyfile(twins["pylock"], folder / "pylock.toml")
    outcome = run(Options(profile=str(folder), venv=str(twins["b"]), cache_dir=twins["cache"]))
    assert outcome.verdict == "in-sync" and str(folder / "pylock.toml") in outcome.summary
    same = invoke("diff", str(folder), str(twins["b"]))
    assert same.returncode == 0 and "identical" in same.stdout, same.stdout + same.stderr


# --- manifests, verify --files, diff --files ------------------------------------------------------------

def test_twins_have_byte_identical_manifests(twins: dict[str, Path], tmp_path: Path) -> None:
    ma, mb = tmp_path / "a.json", tmp_path / "b.json"
    for venv, out in ((twins["a"], ma), (twins["b"], mb)):
        proc = invoke("freeze", "--python", str(venv), "--manifest", str(out))
        assert proc.returncode == 0, proc.stderr
    assert ma.read_bytes() == mb.read_bytes()
    data = json.loads(ma.read_text())
    assert data["digest"] == manifest.digest(data) == json.loads((twins["root"] / "a.json").read_text())[
        "manifest"]["digest"]
    torch = data["distributions"]["torch-like"]
    assert torch["version"] == "2.4.0" and torch["installer"] == "pip" and torch["wheel"]["tags"] == ["py3-none-any"]
    assert torch["files"]["torch_like/version.py"].startswith("sha256=")
    assert not any(p.endswith(".pyc") for p in torch["files"])  # byte-code is derived: not in the manifest
    ok = invoke("verify", "--files", "--venv", str(twins["a"]))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "every file matches its RECORD" in ok.stderr and " GB/s" in ok.stderr
    for other in (str(twins["b"]), str(mb)):
        same = invoke("diff", "--files", str(twins["a"]), other)
        assert same.returncode == 0, same.stdout + same.stderr
        assert same.stdout.startswith("identical")


def _other_build(tmp_path: Path) -> Path:
    """einops-like 0.8.0 again, another build: other file content and wheel tag, the same version."""
    return pkgfactory.build_wheel(tmp_path / "other-build", "einops-like", pkgfactory.EINOPS_LIKE_VERSION,
                                  files={"einops_like/__init__.py": "# rebuilt elsewhere\n__version__ = '0.8.0'\n"},
                                  tag="py3-none-linux_x86_64")


def test_damage_is_found_by_verify_files_and_diff_files(twins: dict[str, Path], tmp_path: Path) -> None:
    b = twins["b"]
    base = tmp_path / "b-manifest.json"
    assert invoke("freeze", "--python", str(b), "--manifest", str(base)).returncode == 0
    c = tmp_path / "c"
    shutil.copytree(b, c, symlinks=True)
    sp = c / SP
    (sp / "torch_like" / "version.py").write_text("__version__ = '2.4.0'\ncuda = None  # patched by hand\n")
    (sp / "plain_a" / "__init__.py").unlink()
    (sp / "~orch_like").mkdir()  # what pip leaves when it is killed while replacing torch_like/
    (sp / "~orch_like" / "__init__.py").write_text("# stashed\n")
    subprocess.run([str(c / "bin" / "python"), "-c", "import torch_like"], check=True)  # writes __pycache__
    wheel = _other_build(tmp_path)
    subprocess.run([str(c / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall",
                    "--no-index", "--find-links", str(wheel.parent), "einops-like==0.8.0"],
                   check=True, capture_output=True, stdin=subprocess.DEVNULL)

    found = invoke("verify", "--files", "--venv", str(c), "--profile", str(twins["profile"]),
                   env={"STACKSYNC_CACHE_DIR": str(twins["cache"].parent)})
    assert found.returncode == 1, found.stdout + found.stderr
    out = found.stdout
    assert "  modified: torch_like/version.py" in out
    assert "  missing: plain_a/__init__.py" in out
    assert "~orch_like/__init__.py (pip's stash of a killed install or uninstall, of torch_like/ (torch-like))" in out
    # RECORD agrees with the other build's files; the locked wheel in the sync cache does not
    assert "not the locked build: 2 file(s) differ from the locked wheel einops_like-0.8.0-py3-none-any.whl" in out
    assert "other build: einops_like/__init__.py" in out
    assert "__pycache__" not in out  # byte-code written at import time is not noise
    assert "1 modified, 1 missing, 1 unrecorded" in found.stderr and "1 not the locked build" in found.stderr

    for side in (str(b), str(base)):
        proc = invoke("diff", "--files", side, str(c), "--json")
        assert proc.returncode == 1, proc.stdout + proc.stderr
        data = json.loads(proc.stdout)
        by = {p["name"]: p for p in data["packages"]}
        assert set(by) == {"einops-like", "plain-a", "torch-like"}
        assert by["einops-like"]["kind"] == "build" and by["einops-like"]["a"] == by["einops-like"]["b"] == "0.8.0"
        assert by["einops-like"]["changed"] == ["einops_like-0.8.0.dist-info/WHEEL", "einops_like/__init__.py"]
        assert "wheel tags: py3-none-any -> py3-none-linux_x86_64" in by["einops-like"]["notes"]
        assert by["torch-like"]["changed"] == ["torch_like/version.py"]
        assert by["plain-a"]["only_in_a"] == ["plain_a/__init__.py (missing in B)"]
        assert data["unrecorded_only_in_b"] == ["~orch_like/__init__.py"]
    table = invoke("diff", "--files", str(b), str(c))
    assert table.returncode == 1 and "same version, other files: einops-like 0.8.0" in table.stdout


def test_verify_files_flags_orphan_bytecode_and_a_missing_record(twins: dict[str, Path], tmp_path: Path) -> None:
    c = tmp_path / "c"
    shutil.copytree(twins["b"], c, symlinks=True)
    sp = c / SP
    (sp / "gone" / "__pycache__").mkdir(parents=True)
    (sp / "gone" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0" * 16)
    (sp / "plain_a" / "notes.txt").write_text("added by hand\n")
    (sp / "plain_a-1.0.dist-info" / "RECORD").unlink()
    result = record.verify_environment(c)
    assert not result.ok
    by = {d.name: d for d in result.dists}
    assert by["plain-a"].record is None
    assert [(u.path, u.kind) for u in result.unowned] == [("gone/__pycache__/mod.cpython-311.pyc", "orphan-bytecode"),
                                                          ("plain_a/__init__.py", "file"),
                                                          ("plain_a/notes.txt", "file")]
    lines = verify_files.report_lines(result)
    assert "  no RECORD: RECORD is missing; its files cannot be verified" in lines


def test_shipped_byte_code_that_pip_recompiles_is_not_modified(make_venv, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """numpy's wheel ships a .pyc with its hash in RECORD; pip's compile step rewrites it (RECORD then
    lists it twice). Byte-code is checked for presence only, and never lands in a manifest."""
    pyc = f"shipped/__pycache__/m.{sys.implementation.cache_tag}.pyc"
    wheel = pkgfactory.build_wheel(tmp_path / "w", "shipped", "1.0", files={
        "shipped/__init__.py": "", "shipped/m.py": "X = 1\n", pyc: b"not the byte-code pip writes"})
    venv = make_venv("shipped")
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index", str(wheel)],
                   check=True, capture_output=True, stdin=subprocess.DEVNULL)
    assert (venv / SP / pyc).read_bytes() != b"not the byte-code pip writes"  # pip compiled over it
    result = record.verify_environment(venv)
    assert result.ok, verify_files.report_lines(result)
    assert pyc not in manifest.build(result)["distributions"]["shipped"]["files"]


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.txt"
    lock.write_text("plain-a==1.0 --hash=sha256:" + "a" * 64 + "\n")
    proc = invoke("diff", "--files", str(lock), str(tmp_path))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "a lock has no file hashes" in proc.stderr
    edited = tmp_path / "m.json"
    edited.write_text(json.dumps({"stacksync_manifest": 1, "distributions": {}, "unrecorded": [],
                                  "digest": "sha256:" + "0" * 64}))
    proc = invoke("diff", "--files", str(edited), str(edited))
    assert proc.returncode == 2 and "does not match its content" in proc.stderr
    proc = invoke("export", "--format", "pylock", "--out", str(tmp_path / "lock.toml"))
    assert proc.returncode == 2 and "pylock.<name>.toml" in proc.stderr


def test_pylock_reader_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "pylock.toml"
    path.write_text('lock-version = "1.0"\ncreated-by = "x"\n\n[[packages]]\nname = "ok"\nversion = "1.0"\n'
                    'wheels = [{ url = "https://h/ok-1.0-py3-none-any.whl", hashes = { sha256 = "ab" } }]\n\n'
                    '[[packages]]\nname = "nohash"\nversion = "2.0"\n')
    with pytest.raises(pylock.LockProblems) as info:
        pylock.read(path)
    assert str(info.value) == (f"{path}:9: nohash==2.0: no hashes for any wheel or sdist "
                               "(fix: export the lock again: every artifact needs hashes)")
    path.write_text('lock-version = "2.0"\n')
    with pytest.raises(pylock.LockProblems, match="is not a PEP 751 1.x lock"):
        pylock.read(path)


def test_export_adds_the_wheelhouse_wheels_built_for_the_lock(tmp_path: Path) -> None:
    """Wheels the wheelhouse holds for a deferred package at its locked version, built against the base
    the lock pins, are written beside its sdist; one built against another base is not this lock's."""
    from stacksync.build import wheelhouse
    from stacksync.build.buildkey import BuildKey
    from stacksync.lock import profile as profile_mod
    from stacksync.lock.lockfile import parse_text

    folder = tmp_path / "locks" / "p"
    folder.mkdir(parents=True)
    (folder / "stack.toml").write_text('base = ["torch-like"]\n'
                                       '[deferred.flash-attn-like]\nrebuild_on = ["torch-like"]\n')
    (folder / "requirements.in").write_text("torch-like==2.4.0\nflash-attn-like==2.8.0\n")
    prof = profile_mod.load("p", tmp_path / "locks")
    pins = parse_text("torch-like==2.4.0 --hash=sha256:" + "a" * 64 + "\nflash-attn-like==2.8.0 --hash=sha256:"
                      + "b" * 64 + "\n", folder / "requirements.txt", lock=True).pins
    root = tmp_path / "wheelhouse"
    wheel = pkgfactory.build_wheel(tmp_path / "built", "flash-attn-like", "2.8.0",
                                   files={"flash_attn_like/__init__.py": ""}, tag="cp311-cp311-linux_x86_64")

    def key(torch: str) -> BuildKey:
        return BuildKey(package="flash-attn-like", version="2.8.0", source_sha256=("sha256:" + "b" * 64,),
                        base=(("torch-like", torch),), cuda=None, cxx11_abi=None, cuda_from=None, python="cp311",
                        platform="linux_x86_64", glibc="2.36", build_env=())

    ours = wheelhouse.add(root, wheel, key("2.4.0"), profile="p", source="built")
    wheelhouse.add(root, wheel, key("2.3.0"), profile="p", source="built")  # another torch: another key
    got = export.built_wheels(prof, pins, root)
    assert [a.to_toml() for a in got["flash-attn-like"]] == [
        {"name": ours.wheel.name, "path": str(ours.wheel), "hashes": {"sha256": pkgfactory.sha256_of(wheel)}}]
    assert export.built_wheels(prof, pins, tmp_path / "empty-wheelhouse") == {}
    # Read back, the built wheel is not an input of the lock: the pin keeps the sdist's hash alone (the
    # build key hashes the lock's inputs; sync finds the wheel again by its key).
    sdist = pylock.Artifact({"sha256": "b" * 64}, url="https://example.invalid/flash_attn_like-2.8.0.tar.gz",
                            name="flash_attn_like-2.8.0.tar.gz")
    text = pylock.render([pylock.Package(pins[1].name, "2.8.0", sdist=sdist, wheels=got["flash-attn-like"])])
    assert ours.wheel.name in text
    (tmp_path / "pylock.toml").write_text(text)
    (back,) = pylock.read(tmp_path / "pylock.toml").pins
    assert back.hashes == ("sha256:" + "b" * 64,)


def test_reads_the_pylock_toml_uv_writes(stack_packages: Path, tmp_path: Path) -> None:
    """The other direction: uv's own PEP 751 output is read into the same pins (sync / diff take it)."""
    uv = uv_executable()
    if uv is None:
        pytest.skip("uv is not installed (pip install -e '.[uv]'): it writes the pylock.toml read here")
    (tmp_path / "requirements.in").write_text("plain-a==1.0\nplain-b==1.0\n")
    subprocess.run([uv, "pip", "compile", "-q", "--no-index", "--find-links", str(stack_packages),
                    "--generate-hashes", "requirements.in", "-o", "pylock.toml"],
                   check=True, capture_output=True, cwd=tmp_path, stdin=subprocess.DEVNULL)
    pins = {p.name: p for p in pylock.read(tmp_path / "pylock.toml").pins}
    assert {n: (p.version, p.hashes) for n, p in pins.items()} == {
        "plain-a": ("1.0", (f"sha256:{pkgfactory.sha256_of(stack_packages / 'plain_a-1.0-py3-none-any.whl')}",)),
        "plain-b": ("1.0", (f"sha256:{pkgfactory.sha256_of(stack_packages / 'plain_b-1.0-py3-none-any.whl')}",))}


def test_direct_references_round_trip_without_credentials(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.txt"
    sha = "ab" * 32
    lock.write_text(f"proj @ git+https://tok:secret@git.example/o/proj@{'c' * 40}\n"
                    f"wheelish @ https://u:pw@files.example/wheelish-1.2-py3-none-any.whl --hash=sha256:{sha}\n"
                    "tarball @ https://files.example/tarball-0.1.tar.gz ; sys_platform == 'linux' "
                    f"--hash=sha256:{sha}\n")
    pins = parse(lock, lock=True).pins
    text = pylock.render(export.packages_from_lock(pins, []))
    assert "secret" not in text and "pw@" not in text and "tok" not in text
    (tmp_path / "pylock.toml").write_text(text)
    back = {p.name: p for p in pylock.read(tmp_path / "pylock.toml").pins}
    assert back["proj"].url == f"git+https://git.example/o/proj@{'c' * 40}"
    assert (back["wheelish"].version, back["wheelish"].hashes) == ("1.2", (f"sha256:{sha}",))
    assert back["tarball"].url == "https://files.example/tarball-0.1.tar.gz"
    assert str(back["tarball"].marker) == 'sys_platform == "linux"'


def test_entry_point_wrappers_alone_are_installed_otherwise_not_the_same() -> None:
    """Only a bin/ wrapper differs (pip 23.2's template vs 26.3's, same installer name): reported as
    installed otherwise, never as identical and never as another build."""
    from stacksync.env.manifest import compare

    def side(script: str) -> dict[str, object]:
        return {"digest": script, "distributions": {"numpy 2.2.6": {
            "version": "2.2.6", "installer": "pip",
            "files": {"../../../bin/f2py": script, "numpy/__init__.py": "sha256=same"}}}}

    found = compare(side("sha256=old-template"), side("sha256=new-template"))
    assert not found.identical
    (pkg,) = found.packages
    assert pkg.kind == "install" and pkg.changed == ["../../../bin/f2py"]
    assert compare(side("sha256=x"), side("sha256=x")).identical
