"""``nox -s bench -- --case deferred``: the deferred phase, first build vs wheelhouse hit vs team-index
hit vs a bare ``pip install`` of the same wheel (the floor any installer pays for it).

Built offline, like the noop case: a torch-like base wheel (``bench-torch``, with a ``version.py``
that says ``cuda = '12.1'``) and an sdist ``bench-ext`` whose setup.py imports it (flash-attn's
shape: it builds only without build isolation), served by a local pypiserver; a second pypiserver
with a password (htpasswd) is the team index, filled with ``invoke publish``'s code. Four venvs are
synced once (base and rest) before timing; each run first uninstalls ``bench-ext`` (untimed).

Rows (pip-tools backend):

* ``first build``: an empty wheelhouse, so the sdist is fetched, built with ``pip wheel``, stored,
  installed;
* ``wheelhouse hit``: the wheel for the key is in the wheelhouse;
* ``team-index hit``: an empty wheelhouse, the wheel on the team index (downloaded, stored, installed);
* ``bare pip install of the same wheel``: ``python -m pip install --no-deps --no-index WHEEL``.

stacksync's rows are the ``fetch`` + ``deferred`` phase seconds of ``sync.run`` (its receipt's
timings: the plan and the probe before them are left out); each counts the builds it started, and
a hit that starts one fails. Goal: a hit is <= 1.2x the bare wheel install. The window holds all of a
hit's own work once: the deferred phase's one target process after the install (``probe.py
env+smoke``) is also what verify checks, and verify starts none; what it leaves out (the plan,
doctor's probe, verify's in-process checks) is in each row's JSON detail: ``whole_run_s`` per run,
the last run's phase times and the processes it started (docs/benchmarks.md).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import socket
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from devtools.bench import Contender, Goal, build_wheel, new_venv, quiet_sync, scoped_environ
from stacksync.compile.compiler import header
from stacksync.core import defaults, runner

__all__ = ["deferred_contenders", "BARE", "FIRST", "WHEELHOUSE_HIT", "TEAM_HIT", "write_deferred_profile"]

PROFILE = "bench-deferred"
LOCAL_PROFILE = "bench-deferred-local"  # the same without a team index: the first-build row
BARE = "bare pip install of the same wheel"
FIRST = "stacksync: first build (pip wheel, then install)"
WHEELHOUSE_HIT = "stacksync: wheelhouse hit"
TEAM_HIT = "stacksync: team-index hit"
_USER_VAR, _TOKEN_VAR = "BENCH_TEAM_USER", "BENCH_TEAM_TOKEN"
_MTIME = 1704067200  # 2024-01-01: the same inputs give the same sdist bytes

SETUP_PY = '''\
import os
import sys
import time

import bench_torch  # needs the base at build time, like flash-attn: no build isolation
from setuptools import setup

if any("bdist_wheel" in a for a in sys.argv):  # the fleet case: count builds, make one take time
    if os.environ.get("BENCH_EXT_BUILD_LOG"):
        with open(os.environ["BENCH_EXT_BUILD_LOG"], "a") as log:
            log.write("%d\\n" % os.getpid())
    time.sleep(float(os.environ.get("BENCH_EXT_BUILD_SLEEP") or 0))

with open("bench_ext/_built_against.py", "w") as fh:
    fh.write("TORCH = %r\\n" % bench_torch.__version__)
setup(name="bench-ext", version="1.0", packages=["bench_ext"], install_requires=["bench-torch"])
'''


def build_sdist(dest: Path) -> Path:
    """``bench_ext-1.0.tar.gz`` (stdlib tarfile, fixed mtimes)."""
    entries = {
        "PKG-INFO": b"Metadata-Version: 2.1\nName: bench-ext\nVersion: 1.0\nRequires-Dist: bench-torch\n\n",
        "setup.py": SETUP_PY.encode(),
        "bench_ext/__init__.py": b"from ._built_against import TORCH\n",
    }
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "bench_ext-1.0.tar.gz"
    with open(path, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=_MTIME) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for rel, data in sorted(entries.items()):
            info = tarfile.TarInfo(f"bench_ext-1.0/{rel}")
            info.size, info.mtime, info.mode = len(data), _MTIME, 0o644
            tf.addfile(info, io.BytesIO(data))
    return path


def setuptools_wheel(dest: Path) -> Path:
    """The setuptools wheel virtualenv embeds for this Python (>= 70.1 builds wheels without the
    ``wheel`` package; a venv's own ensurepip setuptools may be older): copied, offline."""
    from virtualenv.seed.wheels.embed import BUNDLE_FOLDER, BUNDLE_SUPPORT

    filename = BUNDLE_SUPPORT[f"{sys.version_info[0]}.{sys.version_info[1]}"]["setuptools"]
    dest.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(Path(BUNDLE_FOLDER) / filename, dest / filename))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_deferred_profile(root: Path, index_port: int, team_port: int) -> tuple[Path, Path]:
    """The dists in ``root/packages`` and ``root/locks/bench-deferred`` (stack.toml with the team index,
    requirements.in, hashed requirements.txt and deferred.txt). Returns (locks folder, packages)."""
    packages = root / "packages"
    torch = build_wheel(packages, "bench-torch", "2.4.0", files={
        "bench_torch/__init__.py": b'__version__ = "2.4.0"\n', "bench_torch/version.py": b"cuda = '12.1'\n"})
    sdist = build_sdist(packages)
    setuptools = setuptools_wheel(packages)
    st_version = setuptools.name.split("-")[1]
    xy = f"{sys.version_info[0]}.{sys.version_info[1]}"
    team = f'team_index = "http://${{{_USER_VAR}}}:${{{_TOKEN_VAR}}}@127.0.0.1:{team_port}/simple/"\n'
    for name, extra in ((PROFILE, team), (LOCAL_PROFILE, "")):
        folder = root / "locks" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / defaults.STACK_TOML).write_text(
            f'python = "{xy}"\nplatforms = ["{sys.platform}"]\nindex_url = "http://127.0.0.1:{index_port}/simple/"\n'
            + extra + 'base = ["bench-torch"]\n\n[smoke]\nbase = ["bench_torch"]\ndeferred = ["bench_ext"]\n\n'
            '[deferred.bench-ext]\nrequires = ["bench-torch"]\nimports = ["bench_torch"]\n'
            'build_requires = ["setuptools"]\nbuild_env = { MAX_JOBS = "2" }\n', encoding="utf-8")
        (folder / defaults.REQUIREMENTS_IN).write_text("bench-torch\nbench-ext==1.0\nsetuptools\n", encoding="utf-8")
        # The headers `invoke compile` writes: sync refuses a lock without its profile's (stacksync.lock.lockcheck).
        lock_head = header(name, {}, "bench", xy, [f"Hashed lock of profile {name!r}.", "(written by devtools.bench)"])
        deferred_head = header(name, {}, "bench", xy, [
            f"Deferred packages of profile {name!r}: pinned in requirements.in,", "(written by devtools.bench)"])
        (folder / defaults.LOCK_TXT).write_text(
            lock_head + f"bench-torch==2.4.0 \\\n    --hash=sha256:{_sha(torch)}\n    # via -r requirements.in\n"
            f"setuptools=={st_version} \\\n    --hash=sha256:{_sha(setuptools)}\n    # via -r requirements.in\n",
            encoding="utf-8")
        (folder / defaults.DEFERRED_TXT).write_text(
            deferred_head + f"bench-ext==1.0 \\\n    --hash=sha256:{_sha(sdist)}\n    # via -r requirements.in\n",
            encoding="utf-8")
    return root / "locks", packages


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _pypiserver(packages: Path, port: int, log_dir: Path, htpasswd: Path | None) -> Iterator[None]:
    auth = ["-P", str(htpasswd), "-a", "download,list,update"] if htpasswd else ["-P", ".", "-a", "."]
    proc = runner.start([sys.executable, "-m", "pypiserver", "run", "-p", str(port), "-i", "127.0.0.1",
                         "--disable-fallback", *auth, "--hash-algo", "sha256", "--backend", "simple-dir",
                         packages], log_path=log_dir / f"pypiserver-{port}.log")
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                    break
            except (urllib.error.URLError, OSError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"pypiserver on port {port} did not start (see {log_dir})") from None
                time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _builds(history: list[list[str]]) -> int:
    return sum(1 for a in history if a[1:4] == ["-m", "pip", "wheel"] or ("build" in a and Path(a[0]).name == "uv"))


def _what(argv: list[str]) -> str:
    """A started process in words: ``probe env+smoke``, ``pip install``, else the program's name."""
    probe = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a.endswith("probe.py")), None)
    if probe is not None:
        return f"probe {probe}"
    if argv[1:3] == ["-m", "pip"] and len(argv) > 3:
        return f"pip {argv[3]}"
    return Path(argv[0]).name


@contextmanager
def deferred_contenders(work: Path) -> Iterator[list[Contender]]:
    """The four rows (module docstring), with their servers running while they are measured."""
    import importlib.util
    import warnings

    from stacksync.build.publish import publish
    from stacksync.sync.state import Options

    if any(importlib.util.find_spec(m) is None for m in ("pypiserver", "passlib", "virtualenv")):
        yield [Contender(t, lambda: None, skip="not available (pip install 'stacksync[test]': pypiserver, virtualenv)")
               for t in (FIRST, WHEELHOUSE_HIT, TEAM_HIT, BARE)]
        return
    import logging

    logging.getLogger("passlib").setLevel(logging.WARNING)  # its debug lines would flood nox's log
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from passlib.apache import HtpasswdFile  # type: ignore[import-untyped]

    root = work / "deferred"
    if root.exists():
        shutil.rmtree(root)
    index_port, team_port = _free_port(), _free_port()
    locks, packages = write_deferred_profile(root, index_port, team_port)
    team_dir = root / "team-packages"
    team_dir.mkdir()
    ht = HtpasswdFile(str(root / "htpasswd"), new=True)
    ht.set_password("bench", "bench-Secret")
    ht.save()
    with _pypiserver(packages, index_port, root, None), _pypiserver(team_dir, team_port, root, root / "htpasswd"), \
            scoped_environ(**{_USER_VAR: "bench", _TOKEN_VAR: "bench-Secret"}):
        venvs = {name: new_venv(root / f"venv-{name}") for name in ("first", "hit", "team", "bare")}
        cache = root / "cache"
        houses = {name: root / f"house-{name}" for name in ("first", "hit", "team")}

        def profile_of(name: str) -> str:
            return LOCAL_PROFILE if name == "first" else PROFILE

        def sync(name: str) -> Any:
            return quiet_sync(Options(profile=profile_of(name), venv=str(venvs[name].parent.parent), locks_dir=locks,
                                       cache_dir=cache, wheelhouse=str(houses.get(name, root / "house-bare")),
                                       yes=True))

        for name in venvs:  # base, rest and (once) the deferred package: the build fills house-<name>
            sync(name)
        publish(PROFILE, locks_dir=locks, wheelhouse_dir=str(houses["hit"]))
        wheel = next(houses["hit"].glob("*/*.whl"))
        counts: dict[str, int] = {}

        def uninstall(name: str) -> None:
            runner.run([venvs[name], "-m", "pip", "uninstall", "-y", "-q", "bench-ext"])

        def prepare(name: str) -> None:
            uninstall(name)
            if name in ("first", "team"):
                shutil.rmtree(houses[name], ignore_errors=True)

        seen: dict[str, dict[str, Any]] = {}

        def timed(name: str, tool: str) -> float:
            mark = len(runner.history)
            start = time.perf_counter()
            outcome = quiet_sync(Options(profile=profile_of(name), venv=str(venvs[name].parent.parent),
                                          locks_dir=locks, cache_dir=cache if name != "first" else root / "cache-first",
                                          wheelhouse=str(houses[name]), yes=True))
            whole = time.perf_counter() - start
            counts[tool] = _builds(runner.history[mark:])
            # What the row leaves out, in the JSON report: the whole run's seconds, the other phases'
            # and every process the run started (docs/benchmarks.md: what the window holds).
            info = seen.setdefault(tool, {"whole_run_s": []})
            info["whole_run_s"].append(round(whole, 3))
            info["phases_s_last_run"] = dict(outcome.timings)
            info["processes_last_run"] = [_what(a) for a in runner.history[mark:]]
            if counts[tool] != (1 if name == "first" else 0):
                raise RuntimeError(f"{tool}: started {counts[tool]} build(s)")
            if outcome.verdict != "synced":
                raise RuntimeError(f"expected a sync, got {outcome.verdict}: {outcome.summary}")
            return float(outcome.timings.get("fetch", 0.0) + outcome.timings.get("deferred", 0.0))

        def prepare_first() -> None:
            prepare("first")
            shutil.rmtree(root / "cache-first", ignore_errors=True)  # the sdist is fetched again too

        def detail(tool: str) -> dict[str, Any]:
            return {"builds_started": counts.get(tool), **seen.get(tool, {})}

        # Issue 21: by the minimum of the paired runs (the goal sits near this machine's noise).
        goal = Goal(f"<= 1.2x {BARE} (minimums), no build", ratio=1.2, ratio_of=BARE, by_min=True)
        yield [
            Contender(FIRST, lambda: timed("first", FIRST), prepare=prepare_first, self_timed=True,
                      detail=lambda: detail(FIRST)),
            Contender(WHEELHOUSE_HIT, lambda: timed("hit", WHEELHOUSE_HIT), prepare=lambda: prepare("hit"),
                      self_timed=True, goal=goal, detail=lambda: detail(WHEELHOUSE_HIT)),
            Contender(TEAM_HIT, lambda: timed("team", TEAM_HIT), prepare=lambda: prepare("team"), self_timed=True,
                      goal=goal, detail=lambda: detail(TEAM_HIT)),
            Contender(BARE, lambda: runner.run([venvs["bare"], "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                                                "--progress-bar", "off", wheel]),
                      prepare=lambda: uninstall("bare")),
        ]
