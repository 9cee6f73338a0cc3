"""invoke compile against the real password-protected pypiserver (stand-in stack) and, for two
``network`` tests, against PyPI: hashes from the simple API, deferred pins, credentials never written,
byte-identical output, --check, one-line errors with no lock written."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pkgfactory
import pytest
from clihelp import invoke
from packaging.utils import canonicalize_name
from packaging.version import Version
from pkgfactory import IndexServer

from stacksync.backends import indexapi, lockhashes
from stacksync.compile import compiler as comp
from stacksync.compile import installable
from stacksync.core.errors import IndexUnavailable, LockError, ProfileError
from stacksync.lock import profile
from stacksync.lock.lockfile import parse, parse_text
from stacksync.lock.profile import IndexConfig

REPO = Path(__file__).resolve().parent.parent  # this checkout: its tasks.py and locks/

PY_XY = f"{sys.version_info.major}.{sys.version_info.minor}"
SHIPPED_PROFILES = ("demo", "gpu-cu121")  # the profiles this checkout ships under locks/
IDX_URL = "http://${IDX_USER}:${IDX_PASS}@127.0.0.1:%d/simple/"
BOGUS = "bogus-leak-marker"

STAND_IN = """\
# the stand-in GPU stack
torch-like==2.4.0
plain-b
flash-attn-like==2.8.0
"""

STAND_TOML = """\
python = "{py}"
index_url = "{url}"
base = ["torch-like"]

[deferred.flash-attn-like]
requires = ["torch-like", "einops-like"]
imports = ["torch_like"]
build_requires = ["setuptools", "wheel"]
"""


def write_profile(locks: Path, name: str, port: int, requirements: str = STAND_IN, toml: str = STAND_TOML,
                  py: str = PY_XY) -> Path:
    folder = locks / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "requirements.in").write_text(requirements)
    (folder / "stack.toml").write_text(toml.format(py=py, url=IDX_URL % port))
    return folder


def set_auth(monkeypatch: pytest.MonkeyPatch, server: IndexServer, password: str | None = None) -> None:
    monkeypatch.setenv("IDX_USER", server.user)
    monkeypatch.setenv("IDX_PASS", server.password if password is None else password)


def published(stack: Path) -> dict[str, str]:
    """file name -> sha256 of every dist the test server serves."""
    return {p.name: pkgfactory.sha256_of(p) for p in stack.iterdir() if p.is_file()}


@pytest.fixture(scope="module")
def compiled(index_server: IndexServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One real compile of the stand-in profile, shared by the read-only tests below. The machine's pip
    settings are set to bogus values meanwhile: the lock must not pick them up."""
    locks = tmp_path_factory.mktemp("locks")
    folder = write_profile(locks, "stand", index_server.port)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg")))
        set_auth(mp, index_server)
        mp.setenv("PIP_FIND_LINKS", f"/nonexistent/{BOGUS}")
        mp.setenv("PIP_EXTRA_INDEX_URL", f"file:///nonexistent/{BOGUS}")
        mp.setenv("PIP_CONFIG_FILE", str(_bogus_pip_conf(tmp_path_factory.mktemp("pipconf"))))
        results = comp.compile_profiles(["stand"], locks_dir=locks)
    assert results[0].written
    yield folder


def _bogus_pip_conf(folder: Path) -> Path:
    conf = folder / "pip.conf"
    conf.write_text(f"[global]\nfind-links = /nonexistent/{BOGUS}\nextra-index-url = file:///nonexistent/{BOGUS}\n")
    return conf


def test_lock_pins_every_package_with_the_hashes_the_server_publishes(compiled: Path, stack_packages: Path) -> None:
    lock = parse(compiled / "requirements.txt", lock=True)
    hashes = published(stack_packages)
    got = {p.name: (p.version, p.hashes) for p in lock.pins}
    assert set(got) == {"torch-like", "nvidia-cudnn-like", "nvidia-cublas-like", "plain-b", "einops-like",
                        "setuptools", "wheel", "packaging"}  # packaging: wheel needs it
    # `torch-like==2.4.0` admits the local build 2.4.0+cu121 (PEP 440), and pip prefers it: only its hash
    assert got["torch-like"] == ("2.4.0+cu121", (f"sha256:{hashes['torch_like-2.4.0+cu121-py3-none-any.whl']}",))
    assert got["einops-like"][1] == (f"sha256:{hashes['einops_like-0.8.0-py3-none-any.whl']}",)
    for name, (version, digests) in got.items():
        files = [h for f, h in hashes.items() if f.startswith(f"{name.replace('-', '_')}-{version}-")]
        assert files and {f"sha256:{h}" for h in files} == set(digests), name
    # the deferred package's requirements are resolved into the main lock, with where they come from
    einops = next(p for p in lock.pins if p.name == "einops-like")
    assert any("deferred-flash-attn-like.in" in v for v in einops.via)


def test_deferred_sdist_is_pinned_with_the_server_hash_without_building(compiled: Path, stack_packages: Path) -> None:
    deferred = parse(compiled / "deferred.txt", lock=True)
    sdist = pkgfactory.sha256_of(stack_packages / "flash_attn_like-2.8.0.tar.gz")
    assert [(p.name, p.version, p.hashes) for p in deferred.pins] == [
        ("flash-attn-like", "2.8.0", (f"sha256:{sdist}",))]
    assert "flash-attn-like" not in parse(compiled / "requirements.txt").names()


def test_no_credentials_paths_or_machine_pip_config_in_the_files(compiled: Path, index_server: IndexServer) -> None:
    for name in ("requirements.txt", "deferred.txt"):
        text = (compiled / name).read_text()
        assert index_server.password not in text and index_server.user not in text
        for leak in (BOGUS, "file://", "/tmp", str(compiled), "127.0.0.1", "--index-url", "--find-links"):
            assert leak not in text, (name, leak)
        assert text.startswith("#\n") and "invoke compile --profile stand" in text
        assert f"Python {PY_XY}" in text
    assert "# via -r requirements.in" in (compiled / "requirements.txt").read_text()


def test_same_inputs_give_byte_identical_files(compiled: Path, index_server: IndexServer,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    set_auth(monkeypatch, index_server)
    before = {n: (compiled / n).read_bytes() for n in ("requirements.txt", "deferred.txt")}
    result = comp.compile_profile(profile.load(compiled), check=True)
    assert not result.changed and not result.written
    assert {o.path.name: (o.new or "").encode() for o in result.files} == before


def test_same_body_as_plain_pip_compile_generate_hashes(compiled: Path, index_server: IndexServer,
                                                        tmp_path: Path) -> None:
    """The lock body (after our header) is what `pip-compile --generate-hashes --allow-unsafe` writes for
    the same resolver input: pip-compile hashes every file of the pinned version by downloading it."""
    prof = profile.load(compiled)
    pins = comp.deferred_pins(prof, parse(prof.requirements_in).pins)
    for name, text in comp.resolver_inputs(prof, prof.requirements_in.read_text(), pins).items():
        (tmp_path / name).write_text(text)
    subprocess.run([sys.executable, "-m", "piptools", "compile", "-q", "--generate-hashes", "--allow-unsafe",
                    "--no-header", "--no-emit-index-url", "--index-url", index_server.auth_url, "-o", "plain.txt",
                    "requirements.in", "deferred-flash-attn-like.in"],
                   cwd=tmp_path, check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=300)
    ours = (compiled / "requirements.txt").read_text()
    lines = ours.splitlines(keepends=True)
    body = "".join(lines[next(i for i, line in enumerate(lines) if not line.startswith("#")):])
    assert body == (tmp_path / "plain.txt").read_text()


def test_check_task_exit_0_when_fresh_then_1_with_a_diff_after_requirements_change(
        compiled: Path, index_server: IndexServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locks = tmp_path / "locks"
    shutil.copytree(compiled, locks / "stand")
    set_auth(monkeypatch, index_server)
    monkeypatch.setenv("STACKSYNC_LOCKS_DIR", str(locks))
    fresh = invoke("compile", "--check", "--profile", "stand", cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    assert "fresh" in fresh.stderr
    req_in = locks / "stand" / "requirements.in"
    req_in.write_text(req_in.read_text() + "plain-a==1.0\n")
    before = (locks / "stand" / "requirements.txt").read_bytes()
    stale = invoke("compile", "--check", "--profile", "stand", cwd=tmp_path)
    assert stale.returncode == 1, stale.stderr
    assert "+plain-a==1.0" in stale.stdout
    assert "requirements.txt is stale" in stale.stderr and "deferred.txt" not in stale.stderr
    assert (locks / "stand" / "requirements.txt").read_bytes() == before  # --check writes nothing
    assert index_server.password not in stale.stdout + stale.stderr


def test_check_sees_a_stack_toml_change(compiled: Path, index_server: IndexServer, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "stand"
    shutil.copytree(compiled, folder)
    toml = folder / "stack.toml"
    toml.write_text(toml.read_text().replace('requires = ["torch-like", "einops-like"]',
                                             'requires = ["torch-like", "einops-like", "plain-a<2"]'))
    set_auth(monkeypatch, index_server)
    result = comp.compile_profile(profile.load(folder), check=True)
    assert [o.path.name for o in result.stale] == ["requirements.txt"]
    assert "+plain-a==1.0 \\" in result.stale[0].diff()
    assert (folder / "requirements.txt").read_bytes() == (compiled / "requirements.txt").read_bytes()


def test_index_down_is_one_line_and_writes_nothing(fresh_index_server: IndexServer, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    locks = tmp_path / "locks"
    folder = write_profile(locks, "stand", fresh_index_server.port)
    (folder / "requirements.txt").write_text("# committed lock\n")
    set_auth(monkeypatch, fresh_index_server)
    monkeypatch.setenv("STACKSYNC_LOCKS_DIR", str(locks))
    fresh_index_server.stop()
    proc = invoke("compile", "--profile", "stand", cwd=tmp_path)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "is unreachable" in lines[0] and "(fix:" in lines[0], proc.stderr
    assert f"127.0.0.1:{fresh_index_server.port}" in lines[0]
    assert fresh_index_server.password not in proc.stderr + proc.stdout
    assert (folder / "requirements.txt").read_text() == "# committed lock\n"
    assert not (folder / "deferred.txt").exists()


def test_wrong_password_is_one_line_without_the_secret(index_server: IndexServer, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    locks = tmp_path / "locks"
    folder = write_profile(locks, "stand", index_server.port)
    set_auth(monkeypatch, index_server, password="Wr0ng-Secret-Value")
    monkeypatch.setenv("STACKSYNC_LOCKS_DIR", str(locks))
    proc = invoke("compile", "--profile", "stand", cwd=tmp_path)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "403" in lines[0] and "(fix:" in lines[0], proc.stderr
    assert "Wr0ng-Secret-Value" not in proc.stderr + proc.stdout
    assert not (folder / "requirements.txt").exists() and not (folder / "deferred.txt").exists()


def test_unpinned_deferred_package_names_requirements_in_line(index_server: IndexServer, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_profile(tmp_path, "stand", index_server.port,
                           requirements=STAND_IN.replace("flash-attn-like==2.8.0", "flash-attn-like>=2"))
    set_auth(monkeypatch, index_server)
    with pytest.raises(LockError) as err:
        comp.compile_profile(profile.load(folder))
    assert f"{folder / 'requirements.in'}:4:" in str(err.value)
    assert "flash-attn-like==VERSION" in str(err.value)
    assert not (folder / "requirements.txt").exists()


def test_deferred_version_missing_on_the_index(index_server: IndexServer, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_profile(tmp_path, "stand", index_server.port,
                           requirements=STAND_IN.replace("flash-attn-like==2.8.0", "flash-attn-like==9.9"))
    set_auth(monkeypatch, index_server)
    with pytest.raises(IndexUnavailable, match=r"flash-attn-like==9\.9: no file of that version"):
        comp.compile_profile(profile.load(folder))
    assert not (folder / "requirements.txt").exists()


def test_pip_index_url_is_honoured_when_the_profile_names_no_index(index_server: IndexServer, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "env-index"
    folder.mkdir()
    (folder / "requirements.in").write_text("plain-b\n")
    (folder / "stack.toml").write_text(f'python = "{PY_XY}"\n')
    monkeypatch.setenv("PIP_INDEX_URL", index_server.auth_url)  # runner.clean_env drops it for children
    comp.compile_profile(profile.load(folder))
    text = (folder / "requirements.txt").read_text()
    (pin,) = parse(folder / "requirements.txt", lock=True).pins
    assert (pin.name, pin.version) == ("plain-b", "1.0")
    assert index_server.password not in text and "127.0.0.1" not in text
    assert not (folder / "deferred.txt").exists()


def test_compile_refuses_another_python(tmp_path: Path) -> None:
    folder = write_profile(tmp_path, "stand", 9, py="3.99")
    with pytest.raises(ProfileError, match=r"python: the lock is for Python 3\.99.*installed under Python 3\.99"):
        comp.compile_profile(profile.load(folder))


def test_add_hashes_and_index_lines_are_pure_and_credential_free() -> None:
    body = "a==1.0\n    # via -r requirements.in\nb==2.0 ; python_version >= \"3\"\n    # via a\n"
    out = lockhashes.add_hashes(body, {"a": ["sha256:bb", "sha256:aa"], "b": ["sha256:cc"]})
    assert out == ("a==1.0 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n    # via -r requirements.in\n"
                   "b==2.0 ; python_version >= \"3\" \\\n    --hash=sha256:cc\n    # via a\n")
    lines = IndexConfig("https://u:tok@art.example/simple", emit=True).lock_lines()
    assert comp.render_lock("#\n", "a==1\n", lines) == "#\n--index-url https://art.example/simple\n\na==1\n"


# --- the simple-API client -----------------------------------------------------------------------------

def test_project_files_from_pep503_html_with_auth(index_server: IndexServer, stack_packages: Path) -> None:
    files = indexapi.project_files(index_server.auth_url, "Torch_Like")
    hashes = published(stack_packages)
    assert sorted((str(f.version), f.sha256) for f in files) == sorted(
        (v, hashes[f"torch_like-{v}-py3-none-any.whl"]) for v in pkgfactory.TORCH_LIKE_VERSIONS)
    assert all(f.url.startswith(index_server.base_url) and "@" not in f.url for f in files)
    # 2.4.0 does not take 2.4.0+cu121's files
    exact = indexapi.files_for_pins(index_server.auth_url, {"torch-like": "2.4.0"}, python_version="3.11.0")
    assert [f.filename for f in exact["torch-like"]] == ["torch_like-2.4.0-py3-none-any.whl"]


def test_project_files_errors_are_one_redacted_line(index_server: IndexServer) -> None:
    with pytest.raises(IndexUnavailable, match=r"credentials refused \(HTTP 401\)") as e401:
        indexapi.project_files(index_server.url, "torch-like")
    wrong = index_server.auth_url.replace(index_server.password, "nope-secret")
    with pytest.raises(IndexUnavailable, match=r"HTTP 403") as e403:
        indexapi.project_files(wrong, "torch-like")
    with pytest.raises(indexapi.ProjectNotFound, match="no project 'no-such-thing'"):
        indexapi.project_files(index_server.auth_url, "no-such-thing")
    for err in (e401, e403):
        assert "\n" not in str(err.value) and "nope-secret" not in str(err.value)
        assert index_server.password not in str(err.value)


def test_fetch_file_verifies_sha256_and_leaves_nothing_on_mismatch(index_server: IndexServer,
                                                                  tmp_path: Path) -> None:
    (sdist,) = indexapi.project_files(index_server.auth_url, "flash-attn-like")
    got = indexapi.fetch_file(sdist, tmp_path / "good")
    assert got.name == "flash_attn_like-2.8.0.tar.gz" and hashlib.sha256(got.read_bytes()).hexdigest() == sdist.sha256
    # an index that publishes no sha256: the file is downloaded and hashed, as pip-compile does
    unhashed = dataclasses.replace(sdist, sha256=None)
    assert indexapi.sha256_options([unhashed]) == [f"sha256:{sdist.sha256}"]
    with pytest.raises(indexapi.HashMismatch, match="does not match"):
        indexapi.fetch_file(sdist, tmp_path / "bad", sha256="0" * 64)
    assert list((tmp_path / "bad").iterdir()) == []


def test_json_page_parsing() -> None:
    page = json.dumps({"meta": {"api-version": "1.0"}, "files": [
        {"filename": "six-1.16.0-py2.py3-none-any.whl", "url": "../../f/six-1.16.0-py2.py3-none-any.whl",
         "hashes": {"sha256": "AB"}, "requires-python": ">=3.99", "yanked": "bad"},
        {"filename": "six-1.16.0.tar.gz", "url": "https://files.example/six-1.16.0.tar.gz", "hashes": {}},
        {"filename": "six-1.16.0.egg", "url": "x.egg", "hashes": {}},
    ]})
    files = indexapi.parse_json_page("six", page, "https://idx.example/simple/six/")
    assert [(f.url, f.sha256, f.yanked) for f in files] == [
        ("https://idx.example/f/six-1.16.0-py2.py3-none-any.whl", "ab", True),
        ("https://files.example/six-1.16.0.tar.gz", None, False)]
    assert not indexapi.python_accepts(files[0].requires_python, "3.11.7")


# --- real PyPI ------------------------------------------------------------------------------------------

@pytest.mark.network
def test_compile_a_tiny_real_profile_against_pypi(tmp_path: Path) -> None:
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "requirements.in").write_text("six==1.16.0\n")
    (folder / "stack.toml").write_text(f'python = "{PY_XY}"\nindex_url = "https://pypi.org/simple"\n')
    comp.compile_profile(profile.load(folder))
    request = urllib.request.Request("https://pypi.org/simple/six/",
                                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        data = json.load(resp)
    want = {f"sha256:{f['hashes']['sha256']}" for f in data["files"] if "-1.16.0" in f["filename"]}
    (pin,) = parse(folder / "requirements.txt", lock=True).pins
    assert (pin.name, pin.version, set(pin.hashes)) == ("six", "1.16.0", want) and len(want) == 2


@pytest.mark.network
@pytest.mark.slow  # ~75 s: resolves each shipped profile against the index
def test_committed_locks_are_fresh(tmp_path: Path) -> None:
    """The shipped profiles, by name (not whatever else a user keeps under locks/)."""
    for name in SHIPPED_PROFILES:
        proc = invoke("compile", "--check", "--profile", name, cwd=REPO,
                      env={**os.environ, "STACKSYNC_LOCKS_DIR": str(REPO / "locks")})
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
        assert proc.stderr.count("lock is fresh") == 1, proc.stderr


@pytest.mark.network
@pytest.mark.parametrize("name", SHIPPED_PROFILES)
def test_shipped_locks_have_an_install_path_for_every_pin(name: str) -> None:
    """Every pin has a wheel for the profile's Python / platform or an sdist the sync builds."""
    assert installable.check_profile(profile.load(name, REPO / "locks")) == []


@pytest.mark.network
def test_the_example_team_profile_is_fresh_for_every_machine() -> None:
    """locks/team (docs/variants.md, "Example"), kept out of `nox -s lock` in CI: each variant's lock
    (linux x86_64 CUDA 12.8, linux aarch64, macOS arm64, NGC 25.12) is fresh against PyPI, resolved by uv
    from metadata only (~20 s, a few MB), and every pin has a file its platform installs."""
    proc = invoke("compile", "--check", "--profile", "team", cwd=REPO,
                  env={**os.environ, "STACKSYNC_LOCKS_DIR": str(REPO / "locks")})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert proc.stderr.count("lock is fresh") == 4, proc.stderr
    team = profile.load("team", REPO / "locks")
    for name in team.variants:
        assert installable.check_profile(team.for_variant(name)) == [], name


def test_a_pin_without_a_wheel_for_the_target_or_an_sdist_has_no_install_path() -> None:
    def file(name: str, filename: str) -> indexapi.IndexFile:
        return indexapi.IndexFile(filename=filename, url=f"https://idx.example/{filename}", sha256=name * 64,
                                  requires_python=None, yanked=False, name=canonicalize_name(filename.split("-")[0]),
                                  version=Version("1.0"), index_url="https://idx.example/simple/")

    body = "".join(f"{n}==1.0 \\\n    --hash=sha256:{h * 64}\n" for n, h in
                   (("winonly", "a"), ("sdistonly", "b"), ("manylinux", "c"), ("abi3", "d")))
    pins = parse_text(body, "requirements.txt", lock=True).pins
    files = {canonicalize_name(n): [file(h, f)] for n, h, f in (
        ("winonly", "a", "winonly-1.0-cp311-cp311-win_amd64.whl"), ("sdistonly", "b", "sdistonly-1.0.tar.gz"),
        ("manylinux", "c", "manylinux-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"),
        ("abi3", "d", "abi3-1.0-cp38-abi3-manylinux_2_28_x86_64.whl"))}
    problems = installable.no_install_path(pins, files, "3.11")
    assert len(problems) == 1 and problems[0].startswith("requirements.txt:1: winonly==1.0: no wheel for Python 3.11")
    assert "winonly-1.0-cp311-cp311-win_amd64.whl" in problems[0]
    assert [p.split(": ")[1] for p in installable.no_install_path(pins, files, "3.12")] == [
        "winonly==1.0", "manylinux==1.0"]
