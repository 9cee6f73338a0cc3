"""The shared fixtures do what conftest.py / pkgfactory.py promise: real dists, a real password-protected
pypiserver, real venvs, and the stand-in stack's failure modes (missing cuDNN-like library, flash-attn-like
failing under build isolation and breaking when torch-like changes under it)."""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.metadata
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

import pkgfactory
import pytest
from pkgfactory import IndexServer

MakeVenv = Callable[..., Path]


def py(venv: Path) -> str:
    return str(venv / "bin" / "python")


def pip(venv: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([py(venv), "-m", "pip", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)
    if check and proc.returncode != 0:
        pytest.fail(f"pip {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def python_c(venv: Path, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([py(venv), "-c", code], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=60)


def http_get(url: str, auth: tuple[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, ""


# --- pkgfactory ----------------------------------------------------------------------------------------

def test_build_wheel_metadata_and_record(tmp_path: Path) -> None:
    whl = pkgfactory.build_wheel(tmp_path, "My.Pkg", "1.2+local", requires=["dep-x>=1", "dep-y"],
                                 files={"my_pkg/__init__.py": "X = 1\n", "my_pkg/data.bin": b"\x00\x01"})
    assert whl.name == "my_pkg-1.2+local-py3-none-any.whl"
    with zipfile.ZipFile(whl) as zf:
        names = zf.namelist()
        meta = zf.read("my_pkg-1.2+local.dist-info/METADATA").decode()
        record = list(csv.reader(io.StringIO(zf.read("my_pkg-1.2+local.dist-info/RECORD").decode())))
        wheel_file = zf.read("my_pkg-1.2+local.dist-info/WHEEL").decode()
        # every file but RECORD itself is listed with its real sha256 and size
        for path, digest, size in record:
            if path.endswith("/RECORD"):
                assert (digest, size) == ("", "")
                continue
            data = zf.read(path)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert digest == f"sha256={expected}" and int(size) == len(data)
        assert sorted(r[0] for r in record) == sorted(names)
    assert "Name: My.Pkg\nVersion: 1.2+local\n" in meta
    assert "Requires-Dist: dep-x>=1\nRequires-Dist: dep-y\n" in meta
    assert "Requires-Python: >=3.8" in meta
    assert "Tag: py3-none-any" in wheel_file
    # byte-identical rebuilds: hashes in a lock stay valid within and across sessions
    again = pkgfactory.build_wheel(tmp_path / "again", "My.Pkg", "1.2+local", requires=["dep-x>=1", "dep-y"],
                                   files={"my_pkg/__init__.py": "X = 1\n", "my_pkg/data.bin": b"\x00\x01"})
    assert pkgfactory.sha256_of(again) == pkgfactory.sha256_of(whl)


def test_build_sdist_layout(tmp_path: Path) -> None:
    sdist = pkgfactory.build_sdist(tmp_path, "Some-Thing", "0.1", setup_py="from setuptools import setup\n",
                                   requires=["torch-like"], files={"some_thing/__init__.py": ""})
    assert sdist.name == "some_thing-0.1.tar.gz"
    with tarfile.open(sdist) as tf:
        names = set(tf.getnames())
        pkg_info = tf.extractfile("some_thing-0.1/PKG-INFO").read().decode()  # type: ignore[union-attr]
        pyproject = tf.extractfile("some_thing-0.1/pyproject.toml").read().decode()  # type: ignore[union-attr]
    assert names == {"some_thing-0.1/PKG-INFO", "some_thing-0.1/setup.py", "some_thing-0.1/pyproject.toml",
                     "some_thing-0.1/some_thing/__init__.py"}
    assert "Requires-Dist: torch-like\n" in pkg_info
    assert 'build-backend = "setuptools.build_meta"' in pyproject
    again = pkgfactory.build_sdist(tmp_path / "again", "Some-Thing", "0.1",
                                   setup_py="from setuptools import setup\n", requires=["torch-like"],
                                   files={"some_thing/__init__.py": ""})
    assert pkgfactory.sha256_of(again) == pkgfactory.sha256_of(sdist)


def test_stack_packages_contents(stack_packages: Path) -> None:
    names = {p.name for p in stack_packages.iterdir()}
    expected = {
        "nvidia_cudnn_like-9.1.0-py3-none-any.whl", "nvidia_cublas_like-12.1.0-py3-none-any.whl",
        "torch_like-2.3.0-py3-none-any.whl", "torch_like-2.4.0-py3-none-any.whl",
        "torch_like-2.4.0+cu121-py3-none-any.whl", "flash_attn_like-2.8.0.tar.gz",
        "einops_like-0.8.0-py3-none-any.whl", "plain_a-1.0-py3-none-any.whl", "plain_a-2.0-py3-none-any.whl",
        "plain_b-1.0-py3-none-any.whl",
    }
    assert expected <= names
    assert {n.split("-")[0] for n in names - expected} == {"setuptools", "wheel", "packaging"}
    with zipfile.ZipFile(stack_packages / "nvidia_cudnn_like-9.1.0-py3-none-any.whl") as zf:
        assert pkgfactory.CUDNN_LIB in zf.namelist()
    with zipfile.ZipFile(stack_packages / "torch_like-2.4.0-py3-none-any.whl") as zf:
        assert "cuda = '12.1'" in zf.read("torch_like/version.py").decode()
        meta = zf.read("torch_like-2.4.0.dist-info/METADATA").decode()
    assert "Requires-Dist: nvidia-cudnn-like==9.1.0" in meta and "Requires-Dist: nvidia-cublas-like==12.1.0" in meta


# --- environment isolation -----------------------------------------------------------------------------

def test_pip_env_is_isolated(make_venv: MakeVenv) -> None:
    assert os.environ["PIP_CONFIG_FILE"] == os.devnull
    assert os.environ["PIP_FIND_LINKS"] == ""  # this machine sets it to a wheel folder
    assert os.environ["PIP_NO_INPUT"] == "1"
    assert not {k for k in os.environ if k in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "UV_INDEX_URL")}
    venv = make_venv()
    # no config file reaches pip: only the variables above (and transport ones such as PIP_CERT) remain
    settings = dict(line.split("=", 1) for line in pip(venv, "config", "list").stdout.splitlines())
    assert all(key.startswith(":env:.") for key in settings), settings
    assert settings[":env:.find-links"] == "''" and ":env:.index-url" not in settings
    assert "Python 3" in python_c(venv, "import sys; print('Python', sys.version)").stdout
    listed = {d["name"]: d["version"] for d in json.loads(pip(venv, "list", "--format=json").stdout)}
    assert listed["pip"] == "26.3" and "setuptools" in listed and "wheel" not in listed


def test_make_venv_refuses_existing_name(make_venv: MakeVenv) -> None:
    venv = make_venv("twice", pip=False, setuptools=False)
    assert (venv / "bin" / "python").exists() and not list(venv.glob("lib/python*/site-packages/pip"))
    with pytest.raises(ValueError, match="already exists"):
        make_venv("twice")


# --- the index server ----------------------------------------------------------------------------------

def test_index_requires_credentials(index_server: IndexServer) -> None:
    assert index_server.url == f"http://127.0.0.1:{index_server.port}/simple/"
    assert f"{index_server.user}:{index_server.password}@" in index_server.auth_url
    assert index_server.password not in repr(index_server)
    assert http_get(index_server.url)[0] == 401
    assert http_get(index_server.url, (index_server.user, "wrong"))[0] == 403
    status, page = http_get(index_server.url, (index_server.user, index_server.password))
    assert status == 200 and 'href="torch-like/"' in page and 'href="flash-attn-like/"' in page


def test_index_links_carry_sha256_and_no_fallback(index_server: IndexServer) -> None:
    auth = (index_server.user, index_server.password)
    status, page = http_get(index_server.url + "torch-like/", auth)
    assert status == 200
    links = dict(re.findall(r'href="/packages/([^"#]+)#sha256=([0-9a-f]{64})"', page))
    assert set(links) == {f"torch_like-{v}-py3-none-any.whl" for v in pkgfactory.TORCH_LIKE_VERSIONS}
    for filename, digest in links.items():
        assert digest == pkgfactory.sha256_of(index_server.packages_dir / filename)
    # --disable-fallback: an unknown name is a 404 here, not a redirect to PyPI
    assert http_get(index_server.url + "requests/", auth)[0] == 404


def test_fresh_index_server_add_stop_start(fresh_index_server: IndexServer, tmp_path: Path) -> None:
    server = fresh_index_server
    auth = (server.user, server.password)
    new = pkgfactory.build_wheel(tmp_path / "new", "plain-c", "3.0", files={"plain_c/__init__.py": ""})
    server.add(new)
    status, page = http_get(server.url + "plain-c/", auth)
    assert status == 200 and f"plain_c-3.0-py3-none-any.whl#sha256={pkgfactory.sha256_of(new)}" in page
    server.stop()
    assert not server.running
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(server.base_url + "/health", timeout=2)
    server.start()
    assert http_get(server.url + "plain-c/", auth)[0] == 200


# --- the stand-in stack, installed with real pip -------------------------------------------------------

def test_torch_like_installs_with_deps_and_imports(index_server: IndexServer, make_venv: MakeVenv) -> None:
    venv = make_venv()
    pip(venv, "install", "-q", "--index-url", index_server.auth_url, "torch-like===2.4.0")
    done = python_c(venv, "import torch_like, torch_like.version as v; print(torch_like.__version__, v.cuda)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2.4.0", "12.1"]
    listed = {d["name"]: d["version"] for d in json.loads(pip(venv, "list", "--format=json").stdout)}
    assert listed["nvidia-cudnn-like"] == "9.1.0" and listed["nvidia-cublas-like"] == "12.1.0"


def test_torch_like_without_its_cuda_wheels_fails_to_import(index_server: IndexServer,
                                                           make_venv: MakeVenv) -> None:
    venv = make_venv()
    pip(venv, "install", "-q", "--no-deps", "--index-url", index_server.auth_url, "torch-like===2.4.0")
    done = python_c(venv, "import torch_like")
    assert done.returncode == 1
    assert f"ImportError: {pkgfactory.CUDNN_IMPORT_ERROR}" in done.stderr


def test_pin_matches_local_version_and_pip_prefers_it(index_server: IndexServer, make_venv: MakeVenv,
                                                      tmp_path: Path) -> None:
    """PEP 440: ``==2.4.0`` also matches ``2.4.0+cu121``, and pip takes the local version (as with real
    torch on the CUDA index). ``===2.4.0`` or a hash pin gets the plain one."""
    venv = make_venv()
    report = tmp_path / "report.json"
    pip(venv, "install", "-q", "--dry-run", "--ignore-installed", "--report", str(report),
        "--index-url", index_server.auth_url, "torch-like==2.4.0")
    picked = {i["metadata"]["name"]: i["metadata"]["version"] for i in json.loads(report.read_text())["install"]}
    assert picked["torch-like"] == "2.4.0+cu121"


def test_flash_attn_like_build_isolation_and_torch_change(index_server: IndexServer,
                                                         make_venv: MakeVenv) -> None:
    venv = make_venv()
    index = ["--index-url", index_server.auth_url]
    pip(venv, "install", "-q", *index, "torch-like===2.3.0")
    isolated = pip(venv, "install", *index, "flash-attn-like", check=False)
    assert isolated.returncode != 0
    assert "No module named 'torch_like'" in isolated.stdout + isolated.stderr
    pip(venv, "install", "-q", "--no-cache-dir", "--no-build-isolation", *index, "flash-attn-like")
    done = python_c(venv, "import flash_attn_like as f, einops_like; from flash_attn_like import _built_against as b;"
                          "print(f.__version__, b.TORCH)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2.8.0", "2.3.0"]
    # torch changes under the built package: it no longer imports (like an undefined-symbol failure)
    pip(venv, "install", "-q", *index, "torch-like===2.4.0")
    broken = python_c(venv, "import flash_attn_like")
    assert broken.returncode == 1
    assert "undefined symbol: built against torch-like 2.3.0, running 2.4.0" in broken.stderr


def test_make_venv_with_wheel(make_venv: MakeVenv) -> None:
    venv = make_venv("with-wheel", wheel=True)
    listed = {d["name"]: d["version"] for d in json.loads(pip(venv, "list", "--format=json").stdout)}
    assert listed["wheel"] == importlib.metadata.version("wheel")
    assert "packaging" in listed
    assert python_c(venv, "import sys; print(sys.version_info[:2])").stdout.strip() == str(sys.version_info[:2])
