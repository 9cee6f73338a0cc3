"""``nox -s bench -- --case fleet``: N nodes (``invoke sync`` processes) syncing N separate targets at
once, sharing one wheelhouse and one team index, all missing the same deferred build key.

The deferred case's offline stack (:mod:`devtools.bench_deferred`: ``bench-torch`` and the sdist
``bench-ext`` on a local pypiserver, a password-protected pypiserver as the (empty) team index), with
a build that takes measurable time: ``bench-ext``'s setup.py sleeps ``BUILD_SLEEP_S`` seconds and
logs each build it starts. The N venvs are synced once beforehand (base and rest); before each timed
run ``bench-ext`` is uninstalled from them and the wheelhouse emptied (untimed).

Rows, for N = 1, 4, 8:

* ``N=n: stacksync, n concurrent syncs``: the wall time from starting the n processes to the last
  one's exit. The run fails unless exactly one build started, every sync succeeded, and every target
  has the same manifest digest (their receipts). Goal: <= 1.5x the reference row.
* ``N=n: one build + n bare wheel installs``: ``pip wheel`` of the sdist (same sleep), then n
  ``pip install --no-deps --no-index --force-reinstall`` of that wheel, one after the other: what a
  perfect coordinator would pay.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from devtools.bench import REPO, Contender, Goal, new_venv, quiet_sync, scoped_environ
from devtools.bench_deferred import _TOKEN_VAR, _USER_VAR, PROFILE, _free_port, _pypiserver, write_deferred_profile
from stacksync.core import runner

__all__ = ["fleet_contenders", "SIZES", "BUILD_SLEEP_S"]

SIZES = (1, 4, 8)
BUILD_SLEEP_S = 3.0


def _builds(log: Path) -> int:
    return len(log.read_text().split()) if log.exists() else 0


@contextmanager
def fleet_contenders(work: Path, sizes: Sequence[int] = SIZES) -> Iterator[list[Contender]]:
    """The rows (module docstring), with the two pypiservers running while they are measured."""
    import importlib.util
    import logging
    import warnings

    from stacksync.sync.run import Options

    rows = [f"N={n}: {what}" for n in sizes for what in (f"stacksync, {n} concurrent syncs",
                                                         f"one build + {n} bare wheel installs")]
    if any(importlib.util.find_spec(m) is None for m in ("pypiserver", "passlib", "invoke")):
        yield [Contender(t, lambda: None, skip="not available (pip install 'stacksync[test]')") for t in rows]
        return
    logging.getLogger("passlib").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from passlib.apache import HtpasswdFile  # type: ignore[import-untyped]

    root = work / "fleet"
    if root.exists():
        shutil.rmtree(root)
    index_port, team_port = _free_port(), _free_port()
    locks, packages = write_deferred_profile(root, index_port, team_port)
    (root / "team-packages").mkdir()
    ht = HtpasswdFile(str(root / "htpasswd"), new=True)
    ht.set_password("bench", "bench-Secret")
    ht.save()
    house, log = root / "shared-wheelhouse", root / "builds.log"
    sleep = {"BENCH_EXT_BUILD_SLEEP": str(BUILD_SLEEP_S), "BENCH_EXT_BUILD_LOG": str(log)}
    with _pypiserver(packages, index_port, root, None), \
            _pypiserver(root / "team-packages", team_port, root, root / "htpasswd"), \
            scoped_environ(**{_USER_VAR: "bench", _TOKEN_VAR: "bench-Secret"}):
        nodes = [new_venv(root / f"node{i}") for i in range(max(sizes))]
        for i, py in enumerate(nodes):  # base and rest (and the deferred package once), untimed
            quiet_sync(Options(profile=PROFILE, venv=str(py.parent.parent), locks_dir=locks,
                                cache_dir=root / f"cache{i}", wheelhouse=str(root / "warm-house"), yes=True))
        ref = new_venv(root / "reference")
        quiet_sync(Options(profile=PROFILE, venv=str(ref.parent.parent), locks_dir=locks, cache_dir=root / "cache-ref",
                            wheelhouse=str(root / "warm-house"), yes=True))
        sdist = next(packages.glob("bench_ext-*.tar.gz"))
        details: dict[str, dict[str, Any]] = {}

        def prepare(n: int) -> None:
            for py in nodes[:n]:
                runner.run([py, "-m", "pip", "uninstall", "-y", "-q", "bench-ext"], check=False)
            shutil.rmtree(house, ignore_errors=True)
            log.unlink(missing_ok=True)
            for old in root.glob("receipt-*.json"):
                old.unlink()

        def concurrent(n: int, tool: str) -> float:
            env = runner.clean_env({**sleep, _USER_VAR: "bench", _TOKEN_VAR: "bench-Secret",
                                    "STACKSYNC_LOCKS_DIR": str(locks)})
            start = time.perf_counter()
            procs = [runner.start([sys.executable, "-m", "invoke", "-r", REPO, "sync", "--profile",
                                   PROFILE, "--venv", py.parent.parent, "--wheelhouse", house, "--yes", "--report",
                                   root / f"receipt-{i}.json"], log_path=root / f"node{i}.log",
                                  env={**env, "STACKSYNC_CACHE_DIR": str(root / f"cache{i}")})
                     for i, py in enumerate(nodes[:n])]
            codes = [p.wait() for p in procs]
            wall = time.perf_counter() - start
            digests = set()
            for i in range(n):
                try:
                    digests.add(json.loads((root / f"receipt-{i}.json").read_text())["manifest"]["digest"])
                except (OSError, ValueError, KeyError, TypeError):
                    digests.add(None)
            details[tool] = {"builds_started": _builds(log), "failures": sum(c != 0 for c in codes),
                             "identical_digests": len(digests) == 1 and None not in digests}
            if details[tool]["failures"] or details[tool]["builds_started"] != 1 \
                    or not details[tool]["identical_digests"]:
                raise RuntimeError(f"{tool}: {details[tool]} (logs: {root}/node*.log)")
            return wall

        def detail_of(tool: str) -> dict[str, Any]:
            return details.get(tool, {})

        def reference(n: int) -> float:
            out = root / "ref-wheel"
            shutil.rmtree(out, ignore_errors=True)
            start = time.perf_counter()
            with scoped_environ(**sleep):
                runner.run([ref, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "--no-index", "-q",
                            "-w", out, sdist])
            wheel = next(out.glob("*.whl"))
            for _ in range(n):
                runner.run([ref, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--force-reinstall",
                            "--progress-bar", "off", wheel])
            return time.perf_counter() - start

        contenders: list[Contender] = []
        for n in sizes:
            mine, base = f"N={n}: stacksync, {n} concurrent syncs", f"N={n}: one build + {n} bare wheel installs"
            contenders += [
                Contender(mine, partial(concurrent, n, mine), prepare=partial(prepare, n), self_timed=True,
                          warmup=False, goal=Goal(f"<= 1.5x {base}; 1 build, 0 failures", ratio=1.5, ratio_of=base),
                          detail=partial(detail_of, mine)),
                Contender(base, partial(reference, n), self_timed=True, warmup=False),
            ]
        yield contenders
