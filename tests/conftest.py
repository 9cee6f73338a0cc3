"""Shared fixtures: pip isolation for every test, the stand-in ML stack, a real password-protected
pypiserver serving it, and real virtualenvs.

Fixture API (see each docstring):
  * autouse ``_isolate_pip_env``: ``PIP_CONFIG_FILE=/dev/null``, ``PIP_FIND_LINKS=""``, ``PIP_NO_INPUT=1``,
    ``PIP_DISABLE_PIP_VERSION_CHECK=1``, ``UV_NO_CONFIG=1``; other ``PIP_*`` / ``UV_*`` / ``VIRTUALENV_*``
    variables dropped; ``XDG_CACHE_HOME`` per test (pip's and uv's caches never leak between tests).
  * ``stack_packages`` (session): directory of dists built by :func:`pkgfactory.build_stack`.
  * ``index_server`` (session, shared: never stop it or change its files) and ``fresh_index_server``
    (function, own copy of the packages): :class:`pkgfactory.IndexServer`.
  * ``make_venv(name="venv", *, pip=True, setuptools=True, wheel=False) -> Path`` (function).
  * ``STACKSYNC_WHEELHOUSE``: a folder per test (autouse) and one per session for module fixtures.

How pypiserver 2.4.2 publishes hashes: only in its PEP 503 HTML simple pages, as a URL fragment on each
link, ``<a href="/packages/torch_like-2.4.0-py3-none-any.whl#sha256=<hex>">`` (``--hash-algo sha256``,
also its default). There is no PEP 691 JSON simple API (the Accept header is ignored, HTML comes back),
no PEP 658 metadata and no ``data-requires-python``; ``/<project>/json`` exists but lists URLs without
digests. Auth here covers download, list and update: 401 without credentials, 403 with a wrong password;
``/health`` answers 200 without credentials.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pkgfactory
import pytest
from pkgfactory import IndexServer

# Transport-only pip settings may stay (as stacksync.core.runner keeps them); everything else is dropped,
# the cache locations included: each test gets its own cache (below).
_PIP_KEEP = frozenset({"PIP_CERT", "PIP_CLIENT_CERT", "PIP_DEFAULT_TIMEOUT", "PIP_RETRIES", "PIP_PROXY"})


@pytest.fixture(autouse=True)
def _forget_registered_secrets() -> Iterator[None]:
    """stacksync masks every credential value it has seen for the life of its process; a test is one
    command, not the whole pytest run: a value one test registered ("root" as a user name) must not
    mask another test's paths."""
    from stacksync.core import redact

    redact.forget_secrets()
    yield
    redact.forget_secrets()


@pytest.fixture(autouse=True)
def _isolate_pip_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep the machine's pip.conf, find-links and index variables out of every test."""
    for key in list(os.environ):
        if key.startswith(("PIP_", "UV_", "VIRTUALENV_")) and key not in _PIP_KEEP:
            monkeypatch.delenv(key)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_NO_INPUT", "1")
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    monkeypatch.setenv("UV_NO_CONFIG", "1")
    # pip reuses a wheel it built from an sdist even after torch changed (measured): a cache per
    # test keeps one test's flash-attn-like build out of the next one. uv's cache follows it too.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
    # A wheelhouse per test too (built deferred wheels are reused by key: never across tests unless a
    # test shares one on purpose); module fixtures get the session's (below).
    monkeypatch.setenv("STACKSYNC_WHEELHOUSE", str(tmp_path_factory.mktemp("wheelhouse")))


@pytest.fixture(scope="session", autouse=True)
def _session_wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep module- and session-scoped syncs out of the project's .stacksync-cache/wheelhouse."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STACKSYNC_WHEELHOUSE", str(tmp_path_factory.mktemp("session-wheelhouse")))
        yield


@pytest.fixture(scope="session")
def stack_packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of the stand-in stack's dists (read-only by convention; copy it to change it):

    nvidia_cudnn_like-9.1.0, nvidia_cublas_like-12.1.0, torch_like-2.3.0 / 2.4.0 / 2.4.0+cu121 wheels,
    flash_attn_like-2.8.0.tar.gz, einops_like-0.8.0, plain_a-1.0 / 2.0, plain_b-1.0 wheels, and
    setuptools (virtualenv's embedded wheel), wheel and packaging wheels for offline builds.
    """
    return pkgfactory.build_stack(tmp_path_factory.mktemp("stack-packages"))


@pytest.fixture(scope="session")
def index_server(stack_packages: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    """Shared pypiserver over ``stack_packages`` for the whole session: read-only, do not stop it.
    Tests that add, replace or remove files, or stop the server, use ``fresh_index_server``."""
    server = IndexServer(stack_packages, tmp_path_factory.mktemp("index-server"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_index_server(stack_packages: Path, tmp_path: Path) -> Iterator[IndexServer]:
    """A pypiserver of this test's own, over a copy of ``stack_packages`` (``.packages_dir``)."""
    packages = tmp_path / "index-packages"
    shutil.copytree(stack_packages, packages)
    server = IndexServer(packages, tmp_path / "index-server")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def _virtualenv_app_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """virtualenv's wheel/app-data cache, shared by the session (first venv ~1 s, then ~0.5 s)."""
    return tmp_path_factory.mktemp("virtualenv-app-data")


@pytest.fixture
def make_venv(tmp_path: Path, _virtualenv_app_data: Path,
              request: pytest.FixtureRequest) -> Callable[..., Path]:
    """Factory: ``make_venv(name="venv", *, pip=True, setuptools=True, wheel=False) -> Path`` creates
    ``tmp_path/name`` with virtualenv (Python of this test run), seeded offline with virtualenv's
    embedded pip 26.3 and setuptools. virtualenv 21 no longer seeds ``wheel``, and setuptools >= 70.1
    builds wheels without it (``--no-build-isolation`` of flash-attn-like works without it);
    ``wheel=True`` installs wheel (and its dependency packaging) from ``stack_packages``.
    The interpreter is ``<venv>/bin/python``."""

    def make(name: str = "venv", *, pip: bool = True, setuptools: bool = True, wheel: bool = False) -> Path:
        venv = tmp_path / name
        if venv.exists():
            raise ValueError(f"make_venv: {venv} already exists; pick another name")
        argv = [sys.executable, "-m", "virtualenv", "-q", "--python", sys.executable, "--no-periodic-update",
                "--no-download", "--app-data", str(_virtualenv_app_data), "--no-vcs-ignore",
                "--activators", ""]
        argv += [] if pip else ["--no-pip"]
        argv += [] if setuptools else ["--no-setuptools"]
        subprocess.run([*argv, str(venv)], check=True, stdin=subprocess.DEVNULL, capture_output=True)
        if wheel:
            stack = request.getfixturevalue("stack_packages")
            subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index",
                            "--find-links", str(stack), "wheel"], check=True, stdin=subprocess.DEVNULL,
                           capture_output=True)
        return venv

    return make


#: fixtures that build a virtualenv (directly or through the fixtures they use): a test that needs one
#: is end-to-end and runs outside the fast loop (`pytest -m "not slow"`); CI runs everything
_VENV_FIXTURES = frozenset({"make_venv", "_virtualenv_app_data"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that builds a venv ``slow`` (its fixture closure names a venv fixture), so the
    rule "a test that builds venvs is slow" needs no marker to be remembered."""
    for item in items:
        if _VENV_FIXTURES & set(getattr(item, "fixturenames", ())) and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.slow)
