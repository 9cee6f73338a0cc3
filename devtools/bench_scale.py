"""``nox -s bench -- --case scale``: a cold sync of N = 50, 200, 800 small wheels (issue 21), uv backend.

Built offline: N tiny pure-Python wheels (:func:`devtools.bench.build_wheel`; package 2k requires
2k+1, so every N even closes its dependencies), a static PEP 503 index for them served over HTTP on
127.0.0.1 (``python -m http.server``, a child that the bench does not wait for while timing, so its
CPU is not counted), one profile per N with a hashed lock of the first N packages and ten smoke
imports (a profile smokes its top-level packages, not every dependency).

Rows per N, round robin with every other N (caches warm: an untimed warm-up round fills stacksync's
and uv's; the venvs are removed before each run, untimed):

* ``stacksync sync (uv), new venv``: the console script, which creates the venv itself (``uv venv``);
* ``bare uv venv && uv pip sync``: the same without verification;
* ``smoke floor``: the same ten imports in a plain interpreter of the bare venv (``python -c``);
* ``no-op``: the console script and ``uv pip sync`` again on venvs already in sync.

Goals (CPU of the process tree, medians): at N = 800 the stacksync row <= 2x (bare + smoke floor);
and the CPU per package between N = 50 and 800 (the slope: (CPU at 800 - CPU at 50) / 750, per run,
pairing the runs of one round) <= 2x the same slope of (bare + smoke floor): derived rows
(:func:`slope_rows`) after the measured ones.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from devtools.bench import (
    Contender,
    Goal,
    Row,
    _uv,
    backend_unavailable,
    base_python,
    build_wheel,
    console_script,
    smoke_floor_argv,
)
from devtools.bench_deferred import _free_port
from stacksync.compile.compiler import header
from stacksync.core import defaults, runner

__all__ = ["SIZES", "SCALE_RATIO", "scale_contenders", "write_scale_profiles", "slope_rows", "scale_names",
           "tool_name"]

SIZES = (50, 200, 800)
SCALE_RATIO = 2.0  # issue 21: within 2x (bare uv + smoke floor) at N = 800, and per package
SMOKE_COUNT = 10
PREFIX = "bench-scale"
STACKSYNC = "stacksync sync (uv), new venv"
BARE = "bare uv venv && uv pip sync"
FLOOR = "smoke floor (the same imports, plain python -c)"
NOOP = "no-op: stacksync sync (uv)"
UV_NOOP = "no-op: uv pip sync"


def tool_name(n: int, what: str) -> str:
    return f"N={n}: {what}"


def scale_names(count: int) -> list[str]:
    return [f"{PREFIX}-{i:03d}" for i in range(count)]


def _requires(names: Sequence[str], i: int) -> list[str]:
    return [f"{names[i + 1]}==1.0"] if i % 2 == 0 and i + 1 < len(names) else []


def _module(name: str) -> str:
    return name.replace("-", "_")


def profile_name(n: int) -> str:
    return f"{PREFIX}-{n}"


def write_scale_profiles(root: Path, port: int, sizes: Sequence[int] = SIZES) -> Path:
    """``max(sizes)`` wheels in ``root/wheels``, their index in ``root/simple`` (relative links, served
    from ``root``), and ``root/locks/bench-scale-N`` per size. Returns the locks folder."""
    names = scale_names(max(sizes))
    simple = root / "simple"
    lines: list[str] = []
    links = []
    for i, name in enumerate(names):
        whl = build_wheel(root / "wheels", name, "1.0", _requires(names, i))
        digest = hashlib.sha256(whl.read_bytes()).hexdigest()
        (simple / name).mkdir(parents=True, exist_ok=True)
        (simple / name / "index.html").write_text(
            f'<!DOCTYPE html><html><body><a href="../../wheels/{whl.name}#sha256={digest}">{whl.name}</a>'
            "</body></html>\n", encoding="utf-8")
        links.append(f'<a href="{name}/">{name}</a>')
        via = names[i - 1] if i % 2 == 1 else "-r requirements.in"
        lines.append(f"{name}==1.0 \\\n    --hash=sha256:{digest}\n    # via {via}\n")
    (simple / "index.html").write_text("<!DOCTYPE html><html><body>" + "".join(links) + "</body></html>\n",
                                       encoding="utf-8")
    xy = f"{sys.version_info[0]}.{sys.version_info[1]}"
    for n in sizes:
        folder = root / "locks" / profile_name(n)
        folder.mkdir(parents=True, exist_ok=True)
        smoke = ", ".join(f'"{_module(m)}"' for m in names[:n:2][:SMOKE_COUNT])
        (folder / defaults.STACK_TOML).write_text(
            f'description = "benchmark: {n} tiny wheels from a local HTTP index"\npython = "{xy}"\n'
            f'platforms = ["{sys.platform}"]\nbackend = "uv"\nindex_url = "http://127.0.0.1:{port}/simple/"\n\n'
            f"[smoke]\nrest = [{smoke}]\n", encoding="utf-8")
        (folder / defaults.REQUIREMENTS_IN).write_text("\n".join(names[:n:2]) + "\n", encoding="utf-8")
        head = header(profile_name(n), {}, "bench", xy, [f"Hashed lock of profile {profile_name(n)!r}.",
                                                         "(written by devtools.bench_scale)"])
        (folder / defaults.LOCK_TXT).write_text(head + "".join(lines[:n]), encoding="utf-8")
    return root / "locks"


def smoke_modules(n: int) -> list[str]:
    return [_module(m) for m in scale_names(n)[::2][:SMOKE_COUNT]]


@contextmanager
def _http_index(root: Path, port: int) -> Iterator[str]:
    proc = runner.start([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(root),
                         str(port)], log_path=root / "http-server.log")
    url = f"http://127.0.0.1:{port}/simple/"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(url, timeout=1):
                    break
            except (urllib.error.URLError, OSError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the index server on port {port} did not start (see {root})") from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def scale_contenders(work: Path, sizes: Sequence[int] = SIZES) -> Iterator[list[Contender]]:
    """The rows (module docstring), with the index server running while they are measured."""
    unavailable = backend_unavailable("uv") or (None if console_script() else "no stacksync console script")
    if unavailable:
        yield [Contender(tool_name(n, t), lambda: None, skip=unavailable)
               for n in sizes for t in (STACKSYNC, BARE, FLOOR, NOOP, UV_NOOP)]
        return
    root = work / "scale"
    if root.exists():
        shutil.rmtree(root)
    port = _free_port()
    locks = write_scale_profiles(root, port, sizes)
    script = console_script() or "stacksync"
    env = runner.clean_env({"STACKSYNC_LOCKS_DIR": str(locks), "STACKSYNC_CACHE_DIR": str(root / "cache"),
                            "UV_CACHE_DIR": str(root / "uv-cache")})
    with _http_index(root, port) as url:
        def sync(n: int, venv: Path) -> None:
            runner.run([script, "sync", "--profile", profile_name(n), "--venv", venv, "--backend", "uv", "--yes"],
                       env=env, cwd=root)

        def bare(n: int, venv: Path) -> None:
            runner.run([_uv(), "venv", "--no-config", "--quiet", "--python", base_python(), venv], env=env, cwd=root)
            uv_sync(n, venv)

        def uv_sync(n: int, venv: Path) -> None:
            runner.run([_uv(), "pip", "sync", "--no-config", "--python", runner.python_in(venv), "--require-hashes",
                        "--index-url", url, locks / profile_name(n) / defaults.LOCK_TXT], env=env, cwd=root)

        out: list[Contender] = []
        for n in sizes:
            cold, bare_venv = root / f"cold-{n}", root / f"bare-{n}"
            noop, uv_noop = root / f"noop-{n}", root / f"uv-noop-{n}"
            sync(n, noop)  # untimed: the venvs the no-op rows re-sync (and the floor imports from)
            bare(n, uv_noop)
            goal = (Goal(f"<= {SCALE_RATIO:g}x {tool_name(n, BARE)} + smoke floor (CPU median)", ratio=SCALE_RATIO,
                         ratio_of=tool_name(n, BARE), plus=(tool_name(n, FLOOR),), cpu=True)
                    if n == max(sizes) else None)
            out += [
                Contender(tool_name(n, STACKSYNC), lambda n=n, v=cold: sync(n, v),  # type: ignore[misc]
                          prepare=lambda v=cold: shutil.rmtree(v, ignore_errors=True), goal=goal),  # type: ignore[misc]
                Contender(tool_name(n, BARE), lambda n=n, v=bare_venv: bare(n, v),  # type: ignore[misc]
                          prepare=lambda v=bare_venv: shutil.rmtree(v, ignore_errors=True)),  # type: ignore[misc]
                Contender(tool_name(n, FLOOR),
                          lambda n=n, v=uv_noop: runner.run(smoke_floor_argv(runner.python_in(v),  # type: ignore[misc]
                                                                             smoke_modules(n)), cwd=root)),
                Contender(tool_name(n, NOOP), lambda n=n, v=noop: sync(n, v)),  # type: ignore[misc]
                Contender(tool_name(n, UV_NOOP), lambda n=n, v=uv_noop: uv_sync(n, v)),  # type: ignore[misc]
            ]
        yield out


SLOPE = "CPU ms per package, N={lo} to {hi}: {what}"  # in ms: the figures columns show three decimals


def slope_rows(rows: Sequence[Row], case: str = "scale", sizes: Sequence[int] = SIZES) -> list[Row]:
    """Derived rows: per round, (CPU at the largest N - CPU at the smallest) / (difference in N), in
    milliseconds, for stacksync, bare uv, and bare uv + smoke floor; stacksync's judged against the
    last (<= 2x)."""
    lo, hi = min(sizes), max(sizes)
    by_tool = {r.tool: r for r in rows if r.case == case and r.status == "ok"}

    def cpu(n: int, what: str) -> list[float] | None:
        row = by_tool.get(tool_name(n, what))
        return row.cpu_samples if row is not None else None

    def slope(whats: Sequence[str]) -> list[float]:
        los, his = [cpu(lo, w) for w in whats], [cpu(hi, w) for w in whats]
        if any(x is None for x in [*los, *his]):
            return []
        runs = min(len(x or []) for x in [*los, *his])
        return [1000 * (sum((h or [])[i] for h in his) - sum((x or [])[i] for x in los)) / (hi - lo)
                for i in range(runs)]

    reference = SLOPE.format(lo=lo, hi=hi, what="bare uv + smoke floor")
    out = [Row(case, SLOPE.format(lo=lo, hi=hi, what="stacksync"), goal=Goal(
               f"<= {SCALE_RATIO:g}x {reference} (CPU median)", ratio=SCALE_RATIO, ratio_of=reference, cpu=True)),
           Row(case, SLOPE.format(lo=lo, hi=hi, what="bare uv")),
           Row(case, reference)]
    for row, whats in zip(out, ((STACKSYNC,), (BARE,), (BARE, FLOOR)), strict=True):
        row.cpu_samples = slope(whats)  # derived from CPU only: no wall figures
        if not row.cpu_samples:
            row.status = f"not measured (a row at N={lo} or N={hi} did not run)"
    return out
