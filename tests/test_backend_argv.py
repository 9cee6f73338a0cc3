"""The exact argv each backend hands to stacksync.core.runner.run (the one place that starts
processes), asserted at that seam without running pip, pip-tools or uv: what is tested here is the
command line itself (flags that keep the machine's pip config, caches and unhashed files out). Real
runs of the same commands are in test_sync.py, test_compile.py and test_uv_backend.py."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stacksync.backends.base import ResolveRequest
from stacksync.backends.piptools import PipTools
from stacksync.backends.uv import Uv
from stacksync.core import runner
from stacksync.lock.profile import IndexConfig

PY = Path("/t/bin/python")
REQ = Path("/w/req/lock.txt")
LINKS = Path("/w/cache")
INDEX = IndexConfig(index_url="https://u:tok@idx.example/simple", extra_index_urls=("https://extra.example/simple",))


class Stop(Exception):
    """Raised by the fake runner after recording the call (nothing after the process is exercised)."""


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []

    def fake_run(argv: Any, **kwargs: Any) -> runner.Result:
        seen.append({"argv": [str(a) for a in argv], **kwargs})
        if kwargs.get("hint", "").endswith("could not resolve the inputs"):
            raise Stop
        return runner.Result([str(a) for a in argv], 0, "", "", 0.0)

    monkeypatch.setattr(runner, "run", fake_run)
    yield seen


def test_pip_tools_download_install_build(calls: list[dict[str, Any]]) -> None:
    backend = PipTools()
    backend.download(PY, REQ, Path("/w/dl"), ["--index-url", "https://idx.example/simple"])
    backend.install(PY, REQ, LINKS)
    backend.install(PY, REQ, LINKS, only_binary=False, no_deps=True, force_reinstall=True, build_isolation=False)
    backend.build_wheel(PY, REQ, LINKS, Path("/w/out"))
    argvs = [c["argv"] for c in calls]
    assert argvs[0] == [str(PY), "-m", "pip", "download", "--require-hashes", "--only-binary", ":all:", "--no-deps",
                        "--progress-bar", "off", "-d", "/w/dl", "-r", str(REQ),
                        "--index-url", "https://idx.example/simple"]
    assert argvs[1] == [str(PY), "-m", "pip", "install", "--require-hashes", "--no-index", "--find-links",
                        str(LINKS), "--progress-bar", "off", "-r", str(REQ), "--only-binary", ":all:"]
    assert argvs[2] == [str(PY), "-m", "pip", "install", "--require-hashes", "--no-index", "--find-links",
                        str(LINKS), "--progress-bar", "off", "-r", str(REQ), "--no-deps", "--force-reinstall",
                        "--no-build-isolation", "--no-cache-dir"]
    assert argvs[3] == [str(PY), "-m", "pip", "wheel", "--require-hashes", "--no-index", "--find-links", str(LINKS),
                        "--no-deps", "--no-build-isolation", "--no-cache-dir", "--progress-bar", "off",
                        "--wheel-dir", "/w/out", "-r", str(REQ)]
    # `python -m pip` puts the cwd on sys.path: every pip call runs from the requirements' own folder
    assert {str(c["cwd"]) for c in calls} == {str(REQ.parent)}


def test_pip_tools_sync_and_compile(calls: list[dict[str, Any]], tmp_path: Path) -> None:
    backend = PipTools()
    backend.sync(PY, [REQ, Path("/w/req/keep.txt")], LINKS)
    assert calls[0]["argv"] == [sys.executable, "-m", "piptools", "sync", "--python-executable", str(PY),
                                "--no-index", "--find-links", str(LINKS), "--pip-args",
                                "--only-binary :all: --require-hashes --progress-bar off",
                                str(REQ), "/w/req/keep.txt"]
    request = ResolveRequest(workdir=tmp_path, inputs=("requirements.in",), output="lock.txt", index=INDEX,
                             python_version="3.11.9", upgrade_packages=("torch",))
    with pytest.raises(Stop):
        backend.compile_lock(request)
    assert calls[1]["argv"] == [
        sys.executable, "-m", "piptools", "compile", "--quiet", "--allow-unsafe", "--no-strip-extras", "--no-header",
        "--no-emit-index-url", "--no-emit-trusted-host", "--no-emit-find-links", "--newline", "LF",
        "--pip-args=--use-feature=fast-deps", "--index-url", "https://u:tok@idx.example/simple",
        "--extra-index-url", "https://extra.example/simple", "--output-file", "lock.txt",
        "--upgrade-package", "torch", "requirements.in"]
    assert calls[1]["cwd"] == tmp_path  # `# via -r requirements.in`, never a temporary path


def test_uv_install_sync_vcs_and_compile(calls: list[dict[str, Any]], tmp_path: Path) -> None:
    backend = Uv("/opt/uv")
    backend._version = "0.13.9"  # no process for the version
    backend.install(PY, REQ, LINKS, force_reinstall=True, build_isolation=False)
    backend.sync(PY, [REQ], LINKS)
    backend.install_vcs(PY, REQ, INDEX.pip_args())
    head = ["/opt/uv", "pip"]
    tail = ["--no-config", "--no-python-downloads", "--python", str(PY)]
    assert calls[0]["argv"] == [*head, "install", *tail, "--require-hashes", "--no-index", "--find-links",
                                str(LINKS), "-r", str(REQ), "--only-binary", ":all:", "--reinstall",
                                "--no-build-isolation", "--no-cache"]
    assert calls[1]["argv"] == [*head, "sync", *tail, "--no-index", "--find-links", str(LINKS),
                                "--only-binary", ":all:", str(REQ)]
    assert calls[2]["argv"] == [*head, "install", *tail, "--no-deps", "--reinstall", "-r", str(REQ),
                                "--index-url", "https://u:tok@idx.example/simple",
                                "--extra-index-url", "https://extra.example/simple",
                                "--index-strategy", "unsafe-best-match"]
    request = ResolveRequest(workdir=tmp_path, inputs=("requirements.in",), output="lock.txt", index=INDEX,
                             python_version="3.11", platforms=("linux",))
    with pytest.raises(Stop):
        backend.compile_lock(request)
    argv = calls[3]["argv"]
    assert argv[:9] == ["/opt/uv", "pip", "compile", "--quiet", "--no-config", "--no-python-downloads",
                        "--python", sys.executable, "--python-version"]
    assert argv[9] == "3.11" and argv[10] == "--python-platform"
    assert argv[12:] == ["--generate-hashes", "--no-header", "--no-strip-extras",
                         "--index-url", "https://u:tok@idx.example/simple",
                         "--extra-index-url", "https://extra.example/simple", "--index-strategy", "unsafe-best-match",
                         "--output-file", "lock.txt", "requirements.in"]
