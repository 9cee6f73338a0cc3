"""``nox -s bench``: stacksync against the bare tools, measured side by side in one run.

Seven cases (issues 4, 7, 15, 19 and 21), each a list of :class:`Contender` rows timed in the same loop, round
robin, so that drift of the machine or the network hits every row alike:

``noop``     a no-op sync of a 120-package target: ``sync.run`` on a venv already in sync (each
             backend, in-process), the same through ``invoke sync`` (a new process, like the user's
             command), ``pip-sync`` and ``uv pip sync`` of the same lock. Built offline: tiny wheels
             (:func:`build_wheel`, stdlib zipfile), a static PEP 503 ``file://`` index for them, a
             profile with a hashed lock in a temporary locks folder. A reference row times
             ``invoke --version``: what any invoke task pays before it starts.
``cold``     the demo profile (real PyPI) into a fresh venv: ``sync.run`` (each backend) vs bare
             ``pip install --require-hashes --no-deps -r lock`` and bare ``uv pip sync``. Downloads are
             warm (pip / uv / stacksync caches filled by an untimed warm-up round); creating the venvs
             is outside every timing. A reference row times the profile's smoke imports alone in a
             venv bare uv just made: the verification a stacksync sync adds to the install.
``scale``    cold syncs of N = 50, 200, 800 tiny wheels from a local HTTP index, uv backend, vs bare
             ``uv venv && uv pip sync`` plus the smoke floor, and CPU per package (:mod:`devtools.bench_scale`).
``verify``   ``verify --files`` (issue 15) of the demo venv and of each ``--verify-venv DIR`` (a real
             torch stack), the thread pool and 1 thread; goal: the environment's bytes at 5 GB per 30 s.
``fleet``    N = 1, 4, 8 concurrent ``invoke sync`` processes sharing one wheelhouse and team index,
             all missing one deferred key (issue 19, :mod:`devtools.bench_fleet`): one build, no
             failures, one digest, against one build + N bare wheel installs.
``compile``  the gpu-cu121 profile: ``compile_profile(check=True)`` (nothing written) per backend vs
             bare ``uv pip compile --generate-hashes`` on the same inputs, warm and cold caches (cold: a
             new empty ``XDG_CACHE_HOME`` / ``UV_CACHE_DIR`` per run). Bare ``pip-compile
             --generate-hashes`` downloads 24.5 GB per run: only with ``--with-bare-pip-compile``.

Pure parts (statistics, goals, selection, table, JSON) come first; the cases start processes only
through :func:`stacksync.core.runner.run`. A contender that cannot run here (the uv backend before it
exists) is a row saying so, not a failure; a contender that fails is a row with the error's first
line, and :func:`main` returns 1.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import html
import io
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stacksync.core import defaults, runner

__all__ = ["BenchOptions", "Contender", "Goal", "Row", "CASES", "CHEAP_CASES", "RESULTS_PATH", "parse_args",
           "select_cases", "summarize", "judge", "render_table", "to_json", "results_sections", "update_results",
           "build_wheel", "run_bench", "main", "quiet_sync", "scoped_environ"]

# The stacksync checkout (devtools/ lives only there): benchmarks and the fault suite run its code.
REPO = Path(__file__).resolve().parents[1]

CASES = ("noop", "cold", "scale", "compile", "deferred", "verify", "fleet")
CHEAP_CASES = ("noop", "cold")  # what --quick runs (one run each)
NOOP_PACKAGES = 120
NOOP_PROFILE = "bench-noop"
COMPILE_PROFILE = "gpu-cu121"
COLD_PROFILE = "demo"
BARE_PIP_COMPILE_SKIP = "skipped (24.5 GB per run; --with-bare-pip-compile)"
# Reference rows without a goal: the least a contender of that case pays whatever stacksync does.
LAUNCHER_FLOOR = "floor: invoke --version (Python + invoke start-up)"
# The console script is invoke's Program over stacksync's tasks: Python plus importing invoke.program is
# the least it can cost before a task runs (`invoke --version` also reads invoke's config files). A plain
# `stacksync sync` no longer imports invoke (stacksync.cli.direct): PYTHON_FLOOR is what it starts on.
SCRIPT_FLOOR = 'floor: python -c "import invoke.program" (what the console script starts on)'
PYTHON_FLOOR = "floor: python -c pass (Python start-up alone: what a plain stacksync sync starts on)"
NOOP_RATIO = 1.25  # issue 21: a no-op at most 1.25x the launcher it runs under (CPU medians)
SMOKE_FLOOR = "floor: smoke imports alone (after bare uv pip sync)"
BARE_UV_NEW = "bare uv venv && uv pip sync"
COLD_RATIO = 1.5  # issue 21: the uv backend's cold demo sync at most 1.5x (bare uv + smoke floor), CPU
_EPOCH = (2024, 1, 1, 0, 0, 0)
# The measured tables the docs link: one section per case, each replaced only when that case runs.
RESULTS_PATH = REPO / "docs" / "results" / "bench.md"
RESULTS_HEADER = """# Benchmark results

Written by `nox -s bench` (devtools/bench.py): a run replaces the sections of the cases it ran and keeps
the others, so each section says when, on what and at which commit it was measured. What each case
times and what the goals mean: [benchmarks](../benchmarks.md).
"""


# ------------------------------------------------------------------------------------------ pure parts

@dataclass(frozen=True)
class BenchOptions:
    """``nox -s bench -- [--runs N] [--case NAME ...] [--quick] [--with-bare-pip-compile] [--keep]``."""

    runs: int = 5
    cases: tuple[str, ...] = CASES
    quick: bool = False
    with_bare_pip_compile: bool = False
    backends: tuple[str, ...] = ("pip-tools", "uv")
    json_path: Path | None = None
    #: extra environments the verify case checks (``--verify-venv DIR``: e.g. a venv with real torch)
    verify_venvs: tuple[Path, ...] = ()
    #: the Markdown results file the docs link (``--results FILE``; ``--no-results`` writes none)
    results_path: Path | None = RESULTS_PATH
    #: byte-compile stacksync first, as a wheel install leaves it (``--no-bytecode``: the editable
    #: checkout as it is, recompiled by every process where PYTHONDONTWRITEBYTECODE is set)
    bytecode: bool = True


def parse_args(argv: Sequence[str]) -> BenchOptions:
    """Parse the session's posargs. ``--quick``: one run of each cheap case unless ``--case`` /
    ``--runs`` say otherwise."""
    from stacksync.core.errors import StacksyncError

    usage = ("-- [--runs N] [--case noop|cold|scale|compile|deferred|verify|fleet ...] [--quick] "
             "[--with-bare-pip-compile] [--verify-venv DIR ...] [--json FILE] [--results FILE | --no-results] "
             "[--no-bytecode] [--backend pip-tools|uv ...]")
    parser = argparse.ArgumentParser(prog="nox -s bench --", add_help=False, exit_on_error=False)
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--case", action="append", default=[])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--with-bare-pip-compile", action="store_true")
    parser.add_argument("--json", default=None)
    parser.add_argument("--verify-venv", action="append", default=[])
    parser.add_argument("--results", default=None)
    parser.add_argument("--no-results", action="store_true")
    parser.add_argument("--no-bytecode", action="store_true")
    parser.add_argument("--backend", action="append", default=[])
    try:
        ns, rest = parser.parse_known_args(list(argv))
    except argparse.ArgumentError as exc:
        raise StacksyncError(f"nox -s bench: {exc} (fix: {usage})") from None
    if rest:
        raise StacksyncError(f"nox -s bench: unknown argument(s) {' '.join(rest)} (fix: {usage})")
    cases = select_cases(ns.case, quick=ns.quick)
    runs = ns.runs if ns.runs is not None else (1 if ns.quick else 5)
    if runs < 1:
        raise StacksyncError(f"nox -s bench: --runs {runs}: need at least 1 (fix: --runs 5)")
    backends = tuple(b for b in BenchOptions.backends if b in ns.backend) if ns.backend else BenchOptions.backends
    unknown = sorted(set(ns.backend) - set(BenchOptions.backends))
    if unknown:
        raise StacksyncError(f"nox -s bench: unknown backend {unknown[0]!r} (fix: --backend pip-tools or uv)")
    return BenchOptions(runs=runs, cases=cases, quick=bool(ns.quick),
                        with_bare_pip_compile=bool(ns.with_bare_pip_compile),
                        json_path=Path(ns.json) if ns.json else None,
                        verify_venvs=tuple(Path(v) for v in ns.verify_venv), bytecode=not ns.no_bytecode,
                        backends=backends,
                        results_path=None if ns.no_results else Path(ns.results) if ns.results else RESULTS_PATH)


def select_cases(names: Sequence[str], *, quick: bool = False) -> tuple[str, ...]:
    """The cases to run, in :data:`CASES` order: the named ones (comma lists allowed), else the cheap
    ones for ``quick``, else all."""
    from stacksync.core.errors import StacksyncError

    wanted = [n.strip() for name in names for n in name.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in CASES]
    if unknown:
        raise StacksyncError(f"nox -s bench: unknown case {unknown[0]!r} (fix: --case one of {', '.join(CASES)})")
    if not wanted:
        return CHEAP_CASES if quick else CASES
    return tuple(c for c in CASES if c in wanted)


@dataclass(frozen=True)
class Goal:
    """What a row must meet: ``max_s`` seconds (median), at most ``ratio`` times the median of the row
    ``ratio_of`` (plus the medians of the rows in ``plus``: "bare uv + smoke floor"), and faster than
    every row in ``faster_than``. ``cpu``: judged on CPU seconds of the process tree (the action's
    process and its children) instead of wall seconds; ``by_min``: on minimums instead of medians (a
    goal near noise: the least each row took). ``text`` is what the table shows."""

    text: str
    max_s: float | None = None
    ratio: float | None = None
    ratio_of: str | None = None
    faster_than: tuple[str, ...] = ()
    plus: tuple[str, ...] = ()
    cpu: bool = False
    by_min: bool = False


@dataclass
class Row:
    """One measured (or skipped) contender. ``status``: ``ok``, ``skipped: why``, ``not available: why``,
    ``failed: first line``. ``met``: ``None`` when the row has no goal or could not be judged."""

    case: str
    tool: str
    samples: list[float] = field(default_factory=list)
    status: str = "ok"
    goal: Goal | None = None
    met: bool | None = None
    why: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    #: CPU seconds (user + system) of each run: the bench process and the children it waited for
    cpu_samples: list[float] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.case}/{self.tool}"

    @property
    def cpu_median(self) -> float | None:
        return summarize(self.cpu_samples)[0] if self.cpu_samples else None

    @property
    def cpu_min(self) -> float | None:
        return min(self.cpu_samples) if self.cpu_samples else None

    def figure(self, goal: Goal) -> float | None:
        """The figure ``goal`` judges this row by: median or minimum, of wall or CPU seconds."""
        samples = self.cpu_samples if goal.cpu else self.samples
        if not samples:
            return None
        return min(samples) if goal.by_min else summarize(samples)[0]

    @property
    def median(self) -> float | None:
        return summarize(self.samples)[0] if self.samples else None

    @property
    def min(self) -> float | None:
        return min(self.samples) if self.samples else None

    @property
    def max(self) -> float | None:
        return max(self.samples) if self.samples else None


def summarize(samples: Sequence[float]) -> tuple[float, float, float]:
    """(median, min, max) of ``samples`` (at least one)."""
    if not samples:
        raise ValueError("no samples")
    return statistics.median(samples), min(samples), max(samples)


def judge(rows: Sequence[Row]) -> None:
    """Set ``met`` / ``why`` of every row with a goal from the figures (:meth:`Row.figure`) of the rows
    it names (same case). A goal whose reference row has no samples is not judged (``met`` stays
    ``None``)."""
    by_key = {r.key: r for r in rows}
    for row in rows:
        row.met, row.why = None, ""
        goal = row.goal
        if goal is None or row.status != "ok":
            continue
        med = row.figure(goal)
        if med is None:
            continue
        what = ("CPU " if goal.cpu else "") + ("min" if goal.by_min else "median")
        reasons: list[str] = []
        unjudged: list[str] = []

        def ref_figure(name: str, goal: Goal = goal, case: str = row.case) -> float | None:
            ref = by_key.get(f"{case}/{name}")
            if ref is None or ref.status != "ok":
                return None
            return ref.figure(goal)

        if goal.max_s is not None and med > goal.max_s:
            reasons.append(f"{med:.3f} s > {goal.max_s:g} s")
        if goal.ratio is not None and goal.ratio_of is not None:
            names = (goal.ratio_of, *goal.plus)
            figures = [ref_figure(n) for n in names]
            missing = [n for n, f in zip(names, figures, strict=True) if f is None]
            if missing:
                unjudged += missing
            else:
                total = sum(f for f in figures if f is not None)
                row.detail["ratio"] = round(med / total, 3) if total else None
                row.detail["ratio_of"] = what
                if med > goal.ratio * total:
                    reasons.append(f"{what} {med / total:.2f}x {' + '.join(names)} > {goal.ratio:g}x")
        for other in goal.faster_than:
            ref_med = ref_figure(other)
            if ref_med is None:
                unjudged.append(other)
            elif med >= ref_med:
                reasons.append(f"not faster than {other} ({med:.3f} s >= {ref_med:.3f} s)")
        if reasons:
            row.met, row.why = False, "; ".join(reasons)
        elif unjudged:
            row.met, row.why = None, "reference not measured: " + ", ".join(unjudged)
        else:
            row.met = True
            if "ratio" in row.detail and goal.ratio is not None:
                row.why = f"{what} {row.detail['ratio']:.2f}x"


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.3f}" if seconds < 10 else f"{seconds:.1f}"


def _met_text(row: Row) -> str:
    if row.goal is None:
        return ""
    if row.met is None:
        return "n/a" + (f" ({row.why})" if row.why else "")
    if row.met:
        return f"yes ({row.why})" if row.why else "yes"
    return f"NO ({row.why})"


def table_rows(rows: Sequence[Row]) -> list[list[str]]:
    """The table's cells: case, tool, median, min, max (wall seconds), CPU median and min (seconds of the
    process tree), runs, goal, met? (a status instead of the figures for a row that did not run)."""
    out = []
    for r in rows:
        if r.status == "ok":
            figures = [_fmt(r.median), _fmt(r.min), _fmt(r.max), _fmt(r.cpu_median), _fmt(r.cpu_min),
                       str(max(len(r.samples), len(r.cpu_samples)))]
        else:
            figures = [r.status, "", "", "", "", str(len(r.samples))]
        out.append([r.case, r.tool, *figures, r.goal.text if r.goal else "", _met_text(r)])
    return out


HEADERS = ("case", "tool", "median s", "min s", "max s", "CPU median s", "CPU min s", "runs", "goal", "met?")


def render_table(rows: Sequence[Row], *, title: str = "stacksync benchmarks") -> str:
    """The table as text (rich, no colour), as ``nox -s bench`` prints it."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for h in HEADERS:
        table.add_column(h, justify="right" if h.endswith(" s") or h == "runs" else "left")
    for cells in table_rows(rows):
        table.add_row(*cells)
    console = Console(file=io.StringIO(), width=200, color_system=None, highlight=False)
    console.print(table)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    return str(text)


def render_markdown(rows: Sequence[Row]) -> str:
    """The same table in Markdown (reports/bench.md, and each case's section of docs/results/bench.md)."""
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in table_rows(rows)]
    return "\n".join(lines) + "\n"


def case_of(row: Row) -> str:
    """The ``--case`` a row belongs to: ``compile (warm)`` and ``compile (cold)`` are ``compile``."""
    return row.case.split(" (", 1)[0]


def measured_line(machine: dict[str, Any], opts: BenchOptions, argv: Sequence[str]) -> str:
    """One line saying when, how and on what a section was measured."""
    tools = machine.get("tools") or {}
    load = machine.get("load_average_1_5_15")
    commit = (machine.get("stacksync_commit") or "unknown commit")[:7]
    if machine.get("stacksync_tree_modified"):
        commit += " + uncommitted changes"
    parts = [f"{machine.get('cpu_count')} cores {machine.get('machine')}", f"Python {machine.get('python')}",
             *(f"{name} {str(tools[name]).removeprefix(name + ' ').split(' (')[0]}"  # `uv --version`: "uv X (..)"
               for name in ("pip", "pip-tools", "uv") if tools.get(name))]
    if load:
        parts.append("load average " + " / ".join(f"{x:.1f}" for x in load))
    parts.append("stacksync byte-compiled as a wheel install leaves it" if opts.bytecode
                 else "stacksync not byte-compiled (editable checkout, --no-bytecode)")
    command = " ".join(["nox -s bench", *(["--", *argv] if argv else [])])
    return (f"Measured {machine.get('date_utc')} with `{command}` ({opts.runs} run(s) each), "
            f"{', '.join(parts)}, at {commit}.")


def results_sections(rows: Sequence[Row], machine: dict[str, Any], opts: BenchOptions,
                     argv: Sequence[str] = ()) -> dict[str, str]:
    """One Markdown section per case that ran: heading, the measured line, the table."""
    line = measured_line(machine, opts, argv)
    sections: dict[str, str] = {}
    for case in opts.cases:
        case_rows = [r for r in rows if case_of(r) == case]
        if case_rows:
            sections[case] = f"## {case}\n\n{line}\n\n{render_markdown(case_rows)}"
    return sections


def _markers(case: str) -> tuple[str, str]:
    return f"<!-- bench:{case} -->", f"<!-- /bench:{case} -->"


def update_results(text: str, sections: dict[str, str]) -> str:
    """``text`` (the results file, or ``""``) with each case's section replaced between its markers, or
    appended when it has none; sections of cases that did not run are kept as they are."""
    if not text.strip():
        text = RESULTS_HEADER
    for case in sorted(sections, key=lambda c: CASES.index(c) if c in CASES else len(CASES)):
        start, end = _markers(case)
        block = f"{start}\n{sections[case].rstrip()}\n{end}"
        i, j = text.find(start), text.find(end)
        if i >= 0 and j > i:
            text = text[:i] + block + text[j + len(end):]
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
    return text


def to_json(rows: Sequence[Row], machine: dict[str, Any], opts: BenchOptions) -> dict[str, Any]:
    """The JSON document written to ``reports/bench.json``."""
    return {
        "machine": machine,
        "options": {"runs": opts.runs, "cases": list(opts.cases), "quick": opts.quick,
                    "with_bare_pip_compile": opts.with_bare_pip_compile},
        "rows": [{
            "case": r.case, "tool": r.tool, "status": r.status,
            "median_s": r.median, "min_s": r.min, "max_s": r.max, "runs": len(r.samples),
            "samples_s": [round(s, 4) for s in r.samples],
            "cpu_median_s": r.cpu_median, "cpu_min_s": r.cpu_min,
            "cpu_samples_s": [round(s, 4) for s in r.cpu_samples],
            "goal": r.goal.text if r.goal else None, "met": r.met, "why": r.why or None,
            "detail": r.detail,
        } for r in rows],
    }


# ------------------------------------------------------------------------------------- tiny wheels

def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")


def build_wheel(dest: Path, name: str, version: str, requires: Sequence[str] = (),
                files: dict[str, bytes] | None = None) -> Path:
    """A minimal pure-Python wheel ``{name}-{version}-py3-none-any.whl`` with one module (or ``files``,
    paths inside site-packages -> bytes; stdlib zipfile; fixed timestamps, so the same inputs give the
    same bytes and hashes)."""
    escaped = name.replace("-", "_").lower()
    dist_info = f"{escaped}-{version}.dist-info"
    entries: dict[str, bytes] = {
        **(files or {f"{escaped}/__init__.py": f'__version__ = "{version}"\n'.encode()}),
        f"{dist_info}/METADATA": ("Metadata-Version: 2.1\n"
                                  f"Name: {name}\nVersion: {version}\nSummary: stacksync benchmark package\n"
                                  + "".join(f"Requires-Dist: {r}\n" for r in requires) + "\n").encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: stacksync-bench\nRoot-Is-Purelib: true\n"
                              b"Tag: py3-none-any\n\n",
        f"{dist_info}/top_level.txt": f"{escaped}\n".encode(),
    }
    record = f"{dist_info}/RECORD"
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerows([(arc, _record_hash(data), str(len(data))) for arc, data in entries.items()])
    writer.writerow((record, "", ""))
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{escaped}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for arc, data in [*entries.items(), (record, buf.getvalue().encode())]:
            info = zipfile.ZipInfo(arc, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return path


def noop_names(count: int = NOOP_PACKAGES) -> list[str]:
    return [f"bench-pkg-{i:03d}" for i in range(count)]


def noop_requires(names: Sequence[str], i: int) -> list[str]:
    """A little dependency structure (chains of four) so that ``pip check`` has edges to check."""
    return [f"{names[i + 1]}==1.0"] if i % 4 != 3 and i + 1 < len(names) else []


def write_noop_profile(root: Path, count: int = NOOP_PACKAGES) -> tuple[Path, Path]:
    """``count`` tiny wheels in ``root/wheels``, a static PEP 503 index ``root/simple`` for them (pip
    reads ``index.html`` of a ``file://`` folder), and ``root/locks/bench-noop`` (stack.toml,
    requirements.in, hashed requirements.txt). Returns (locks folder, wheels folder)."""
    wheels, simple = root / "wheels", root / "simple"
    names = noop_names(count)
    lock_lines: list[str] = []
    project_links = []
    for i, name in enumerate(names):
        requires = noop_requires(names, i)
        whl = build_wheel(wheels, name, "1.0", requires)
        digest = hashlib.sha256(whl.read_bytes()).hexdigest()
        page = simple / name
        page.mkdir(parents=True, exist_ok=True)
        (page / "index.html").write_text(
            f'<!DOCTYPE html><html><body><a href="{html.escape(whl.as_uri())}#sha256={digest}">{whl.name}</a>'
            "</body></html>\n", encoding="utf-8")
        project_links.append(f'<a href="{name}/">{name}</a>')
        via = [n for j, n in enumerate(names) if name in [r.split("==")[0] for r in noop_requires(names, j)]]
        lock_lines.append(f"{name}==1.0 \\\n    --hash=sha256:{digest}\n    # via "
                          + (via[0] if via else "-r requirements.in"))
    (simple / "index.html").write_text("<!DOCTYPE html><html><body>" + "".join(project_links) + "</body></html>\n",
                                       encoding="utf-8")
    folder = root / "locks" / NOOP_PROFILE
    folder.mkdir(parents=True, exist_ok=True)
    xy = f"{sys.version_info[0]}.{sys.version_info[1]}"
    (folder / defaults.STACK_TOML).write_text(
        f'description = "benchmark: {count} tiny wheels from a static file:// index"\n'
        f'python = "{xy}"\nplatforms = ["{sys.platform}"]\nindex_url = "{simple.as_uri()}"\n', encoding="utf-8")
    (folder / defaults.REQUIREMENTS_IN).write_text("\n".join(names) + "\n", encoding="utf-8")
    from stacksync.compile.compiler import header  # the header sync checks (stacksync.lock.lockcheck)

    head = header(NOOP_PROFILE, {}, "bench", xy, [f"Hashed lock of profile {NOOP_PROFILE!r}.",
                                                   "(written by devtools.bench)"])
    (folder / defaults.LOCK_TXT).write_text(head + "\n".join(lock_lines) + "\n", encoding="utf-8")
    return root / "locks", wheels


# ---------------------------------------------------------------------------------------- contenders

@dataclass
class Contender:
    """One row of a case. ``prepare`` (untimed) runs before each timed ``action``; ``unavailable``
    says why it cannot run here (``None``: it can); ``skip`` shows a reason instead of running."""

    tool: str
    action: Callable[[], object]
    prepare: Callable[[], object] = lambda: None
    goal: Goal | None = None
    unavailable: Callable[[], str | None] = lambda: None
    skip: str | None = None
    runs: int | None = None  # overrides the run count (bare pip-compile: 1)
    warmup: bool = True
    detail: Callable[[], dict[str, Any]] | None = None
    #: the action returns the seconds to record (one phase of a larger run) instead of its wall time
    self_timed: bool = False


def backend_unavailable(name: str) -> str | None:
    """Why the stacksync backend ``name`` cannot run here, ``None`` when it can."""
    from stacksync.backends.backend import get_backend
    from stacksync.backends.uv import uv_executable
    from stacksync.core.errors import StacksyncError

    if name == "uv" and uv_executable() is None:
        return "backend not available (no uv executable)"
    try:
        get_backend(name)
    except StacksyncError:
        return "backend not available"
    return None


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (all its threads) and of the children it has waited
    for (theirs included): a delta around an action is the CPU of its whole process tree. Servers the
    bench started and still runs (the index servers) are not waited for, so they are not counted."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def measure(case: str, contenders: Sequence[Contender], runs: int, *, log: Callable[[str], None]) -> list[Row]:
    """Time every contender ``runs`` times, round robin (prepare untimed, then the timed action), after
    one untimed warm-up round for those with ``warmup``. A failing contender stops being run; its row
    carries the error's first line."""
    rows = {c.tool: Row(case, c.tool, goal=c.goal) for c in contenders}
    live: list[Contender] = []
    for c in contenders:
        reason = c.skip or c.unavailable()
        if reason:
            rows[c.tool].status = reason
            log(f"{case} / {c.tool}: {reason}")
        else:
            live.append(c)

    def attempt(c: Contender, timed: bool) -> None:
        try:
            c.prepare()
            cpu_start = cpu_seconds()
            start = time.perf_counter()
            returned = c.action()
            elapsed = time.perf_counter() - start
            cpu = cpu_seconds() - cpu_start
            if c.self_timed:
                if not isinstance(returned, float):
                    raise TypeError(f"{c.tool}: a self-timed action returns its seconds")
                elapsed = returned
        except Exception as exc:  # a failing tool is a row, not the end of the benchmark
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            rows[c.tool].status = f"failed: {first[:160]}"
            log(f"{case} / {c.tool}: FAILED: {first}")
            live.remove(c)
            return
        if timed:
            rows[c.tool].samples.append(elapsed)
            if not c.self_timed:  # a phase of a larger run: its CPU cannot be told apart
                rows[c.tool].cpu_samples.append(cpu)
            log(f"{case} / {c.tool}: run {len(rows[c.tool].samples)}: {elapsed:.3f} s, CPU {cpu:.3f} s")
        else:
            log(f"{case} / {c.tool}: warm-up: {elapsed:.3f} s")

    for c in [c for c in live if c.warmup]:
        attempt(c, timed=False)
    for i in range(max([runs, *(c.runs or 0 for c in live)])):
        for c in list(live):
            if i < (c.runs or runs):
                attempt(c, timed=True)
    for c in contenders:
        if c.detail is not None and rows[c.tool].status == "ok":
            rows[c.tool].detail.update(c.detail())
    result = list(rows.values())
    judge(result)
    return result


@contextmanager
def scoped_environ(**values: str) -> Iterator[None]:
    """Set environment variables for in-process runs (their child processes inherit them)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def quiet_sync(opts: Any) -> Any:
    """``sync.run`` with its console output swallowed (the table is what the bench prints)."""
    from stacksync.core import console
    from stacksync.sync import run as sync_mod

    # capture(), not swapping .file: a swapped-back file would pin today's sys.stderr (pytest's capsys).
    with console.out.capture(), console.err.capture():
        return sync_mod.run(opts)


def new_venv(path: Path) -> Path:
    """A fresh venv (``python -m venv``, seeds pip) at ``path``, replacing what is there; untimed."""
    from stacksync.backends.piptools import PipTools

    if path.exists():
        shutil.rmtree(path)
    PipTools().create_venv(path, sys.executable)
    return runner.python_in(path)


def _uv() -> str:
    from stacksync.backends.uv import uv_executable

    return uv_executable() or "uv"


# ---------------------------------------------------------------------------------------------- noop

def noop_contenders(work: Path, backends: Sequence[str], count: int = NOOP_PACKAGES,
                    demo: bool = False) -> list[Contender]:
    """The no-op case: build the 120-package profile, sync a venv to it once (stacksync, pip-tools
    backend, from the file:// index), then every contender re-syncs that venv (uv gets a copy of its
    own: ``uv pip sync`` removes pip and setuptools, which the lock does not list). With ``demo``, the
    demo profile (10 packages, PyPI) too: the no-op issue 21 measured, synced once with the uv backend."""
    from stacksync.sync.state import Options

    locks, wheels = write_noop_profile(work / "noop", count)
    lock = locks / NOOP_PROFILE / defaults.LOCK_TXT
    venv, uv_venv = work / "noop" / "venv", work / "noop" / "venv-uv"
    cache = work / "noop" / "cache"
    python = new_venv(venv)
    quiet_sync(Options(profile=NOOP_PROFILE, venv=str(venv), locks_dir=locks, cache_dir=cache, yes=True))
    uv_python = new_venv(uv_venv)
    quiet_sync(Options(profile=NOOP_PROFILE, venv=str(uv_venv), locks_dir=locks, cache_dir=cache, yes=True))
    env = runner.clean_env({"STACKSYNC_LOCKS_DIR": str(locks), "STACKSYNC_CACHE_DIR": str(cache)})
    goal = Goal("<= 0.3 s, faster than pip-sync and uv pip sync", max_s=0.3,
                faster_than=("pip-sync", "uv pip sync"))
    invoke_goal = Goal(f"<= {NOOP_RATIO}x {LAUNCHER_FLOOR} (CPU median)", ratio=NOOP_RATIO, ratio_of=LAUNCHER_FLOOR,
                       cpu=True)
    script_goal = Goal(f"<= {NOOP_RATIO}x {SCRIPT_FLOOR} (CPU median)", ratio=NOOP_RATIO, ratio_of=SCRIPT_FLOOR,
                       cpu=True)
    script = console_script()
    out: list[Contender] = []

    for name in backends:
        def in_process(name: str = name) -> None:
            outcome = quiet_sync(Options(profile=NOOP_PROFILE, venv=str(venv), locks_dir=locks, cache_dir=cache,
                                          backend=name))
            if outcome.verdict != "in-sync":
                raise RuntimeError(f"expected a no-op, got {outcome.verdict}: {outcome.summary}")

        def cli(name: str = name) -> None:
            runner.run([sys.executable, "-m", "invoke", "-r", REPO, "sync", "--profile",
                        NOOP_PROFILE, "--venv", venv, "--backend", name], env=env, cwd=REPO)

        def script_cli(name: str = name) -> None:
            runner.run([script or "stacksync", "sync", "--profile", NOOP_PROFILE, "--venv", venv, "--backend", name],
                       env=env, cwd=REPO)

        out.append(Contender(f"stacksync sync.run ({name})", in_process, goal=goal,
                             unavailable=lambda name=name: backend_unavailable(name)))  # type: ignore[misc]
        out.append(Contender(f"stacksync CLI: invoke sync ({name})", cli, goal=invoke_goal,
                             unavailable=lambda name=name: backend_unavailable(name)))  # type: ignore[misc]
        def full_cli(name: str = name) -> None:  # the first no-op after a change: no stamp read or written
            runner.run([sys.executable, "-m", "invoke", "-r", REPO, "sync", "--profile", NOOP_PROFILE, "--venv",
                        venv, "--backend", name], env={**env, "STACKSYNC_NOOP_STAMP": "0"}, cwd=REPO)

        out.append(Contender(f"stacksync CLI: invoke sync, full no-op path ({name})", full_cli,
                             unavailable=lambda name=name: backend_unavailable(name)))  # type: ignore[misc]
        out.append(Contender(f"stacksync CLI: stacksync sync ({name})", script_cli, goal=script_goal,
                             unavailable=lambda name=name: (None if script else "no stacksync console script")
                             or backend_unavailable(name)))  # type: ignore[misc]
    out.append(Contender("pip-sync", lambda: runner.run(
        [sys.executable, "-m", "piptools", "sync", "--python-executable", python, "--no-index", "--find-links",
         wheels, lock], cwd=lock.parent)))
    out.append(Contender("uv pip sync", lambda: runner.run(
        [_uv(), "pip", "sync", "--python", uv_python, "--no-index", "--find-links", wheels, lock],
        cwd=lock.parent)))
    # No goal: what any `invoke TASK` costs before a task runs (Python start-up, importing invoke).
    out.append(Contender(LAUNCHER_FLOOR, lambda: runner.run([sys.executable, "-m", "invoke", "--version"],
                                                            env=env, cwd=REPO)))
    out.append(Contender(SCRIPT_FLOOR, lambda: runner.run([sys.executable, "-c", "import invoke.program"],
                                                          env=env, cwd=REPO)))
    out.append(Contender(PYTHON_FLOOR, lambda: runner.run([sys.executable, "-c", "pass"], env=env, cwd=REPO)))
    if demo:
        out += demo_noop_contenders(work / "noop" / "demo", invoke_goal, script_goal)
    return out


def demo_noop_contenders(venv: Path, invoke_goal: Goal, script_goal: Goal) -> list[Contender]:
    """``invoke sync`` and ``stacksync sync`` of the demo profile on a venv already in sync (made once
    here: uv backend, PyPI, the project's cache); rows that say why when that first sync fails."""
    from stacksync.sync.state import Options

    why: str | None = None
    try:
        quiet_sync(Options(profile=COLD_PROFILE, venv=str(venv), yes=True, backend="uv"))
    except Exception as exc:  # no network, no uv: the rows say so, the other rows still run
        why = f"not available: the demo sync failed: {(str(exc).splitlines() or [type(exc).__name__])[0][:120]}"
    script = console_script()
    argv = ["sync", "--profile", COLD_PROFILE, "--venv", str(venv), "--backend", "uv"]
    return [Contender(f"stacksync CLI: invoke sync ({COLD_PROFILE}: 10 packages, uv)",
                      lambda: runner.run([sys.executable, "-m", "invoke", "-r", REPO, *argv], cwd=REPO),
                      goal=invoke_goal, unavailable=lambda: why),
            Contender(f"stacksync CLI: stacksync sync ({COLD_PROFILE}: 10 packages, uv)",
                      lambda: runner.run([script or "stacksync", *argv], cwd=REPO), goal=script_goal,
                      unavailable=lambda: why or (None if script else "no stacksync console script"))]


def base_python() -> str:
    """The interpreter stacksync makes a new venv of this Python from (``python3.X`` on PATH, else this
    one: stacksync.sync.prepare), so that a bare ``uv venv`` row starts from the same one (on a pyenv
    machine that is a shim, ~0.3 s CPU per ``uv venv``)."""
    return shutil.which(f"python{sys.version_info[0]}.{sys.version_info[1]}") or sys.executable


def console_script() -> str | None:
    """The ``stacksync`` console script installed beside this interpreter (the dev venv), if any."""
    path = Path(sys.executable).with_name("stacksync")
    return str(path) if path.is_file() else None


# ---------------------------------------------------------------------------------------------- cold

def cold_contenders(work: Path, backends: Sequence[str]) -> list[Contender]:
    """The cold case: the demo profile into a new venv per run (created in ``prepare``, untimed)."""
    from stacksync.lock import profile as profile_mod
    from stacksync.sync.state import Options

    prof = profile_mod.load(COLD_PROFILE)
    lock = prof.lock_path
    index = prof.index.expanded(source=str(prof.stack_toml))
    root = work / "cold"
    out: list[Contender] = []
    bare_pip, bare_uv = "bare pip install --require-hashes", "bare uv pip sync"
    goals = {"pip-tools": Goal(f"<= 1.10x {bare_pip}", ratio=1.10, ratio_of=bare_pip),
             "uv": Goal(f"<= 1.10x {bare_uv}", ratio=1.10, ratio_of=bare_uv)}
    timings: dict[str, dict[str, float]] = {}

    for name in backends:
        venv = root / f"stacksync-{name}"

        def action(name: str = name, venv: Path = venv) -> None:
            outcome = quiet_sync(Options(profile=COLD_PROFILE, venv=str(venv), yes=True, backend=name))
            if outcome.verdict != "synced":
                raise RuntimeError(f"expected a sync, got {outcome.verdict}: {outcome.summary}")
            timings[name] = dict(outcome.timings)

        out.append(Contender(f"stacksync sync.run ({name})", action,
                             prepare=lambda venv=venv: new_venv(venv),  # type: ignore[misc]
                             goal=goals.get(name), unavailable=lambda name=name: backend_unavailable(name),  # type: ignore[misc]
                             detail=lambda name=name: {"last_run_phases_s": timings.get(name, {})}))  # type: ignore[misc]
    pip_venv, uv_venv = root / "bare-pip", root / "bare-uv"
    out.append(Contender(bare_pip, lambda: runner.run(
        [runner.python_in(pip_venv), "-m", "pip", "install", "--require-hashes", "--no-deps", "--progress-bar", "off",
         "-r", lock, *index.pip_args()], cwd=root), prepare=lambda: new_venv(pip_venv),
        skip=None if "pip-tools" in backends else "skipped (the pip-tools backend is not measured: --backend)"))

    def bare_uv_sync(venv: Path) -> object:
        return runner.run([_uv(), "pip", "sync", "--python", runner.python_in(venv), "--require-hashes",
                           "--index-url", index.index_url or "https://pypi.org/simple", lock], cwd=root)

    out.append(Contender(bare_uv, lambda: bare_uv_sync(uv_venv), prepare=lambda: new_venv(uv_venv)))
    # The console script with the uv backend into a venv it creates itself (`uv venv`), against bare uv
    # doing the same (`uv venv && uv pip sync`) plus the smoke floor below: the verification stacksync adds.
    script, cli_venv, new_uv_venv = console_script(), root / "stacksync-cli-uv", root / "bare-uv-new"

    def cli_uv() -> None:
        runner.run([script or "stacksync", "sync", "--profile", COLD_PROFILE, "--venv", cli_venv, "--backend", "uv",
                    "--yes"], cwd=REPO)

    def bare_uv_new() -> None:
        runner.run([_uv(), "venv", "--no-config", "--quiet", "--python", base_python(), new_uv_venv], cwd=root)
        bare_uv_sync(new_uv_venv)

    out.append(Contender("stacksync CLI: stacksync sync (uv), new venv", cli_uv,
                         prepare=lambda: shutil.rmtree(cli_venv, ignore_errors=True),
                         goal=Goal(f"<= {COLD_RATIO}x {BARE_UV_NEW} + smoke floor (CPU median)", ratio=COLD_RATIO,
                                   ratio_of=BARE_UV_NEW, plus=(SMOKE_FLOOR,), cpu=True),
                         unavailable=lambda: (None if script else "no stacksync console script")
                         or backend_unavailable("uv")))
    out.append(Contender(BARE_UV_NEW, bare_uv_new, prepare=lambda: shutil.rmtree(new_uv_venv, ignore_errors=True),
                         unavailable=lambda: backend_unavailable("uv")))
    # No goal: the profile's smoke imports alone, which every stacksync sync runs at least once, in a
    # plain interpreter of a venv that bare uv just made (untimed). uv writes no .pyc, so this is what
    # they cost the uv backend's cold sync: verification that bare uv pip sync does not do.
    floor_venv = root / "floor-uv"
    modules = prof.smoke_modules()

    def floor_prepare() -> None:
        new_venv(floor_venv)
        bare_uv_sync(floor_venv)

    out.append(Contender(SMOKE_FLOOR, lambda: runner.run(smoke_floor_argv(runner.python_in(floor_venv), modules)),
                         prepare=floor_prepare, unavailable=lambda: backend_unavailable("uv")))
    return out


def smoke_floor_argv(python: Path | str, modules: Sequence[str]) -> list[str]:
    """The smoke floor: ``python -c "import a; import b"``, the imports stacksync's smoke step runs, in a
    plain interpreter of the target (no probe script, no JSON): what any verification of them costs."""
    return [str(python), "-c", "; ".join(f"import {m}" for m in modules) or "pass"]


# ------------------------------------------------------------------------------------------- compile

def compile_contenders(work: Path, backends: Sequence[str], *, cold: bool,
                       with_bare_pip_compile: bool) -> list[Contender]:
    """The compile case, warm or cold: ``compile_profile(check=True)`` per backend (writes nothing) and
    the bare tools on the same resolver inputs (requirements.in with the deferred flash-attn commented
    out, its requires in deferred-flash-attn.in, the committed lock as the starting pins)."""
    from stacksync.compile import compiler as compile_mod
    from stacksync.lock import profile as profile_mod
    from stacksync.lock.lockfile import parse

    prof = profile_mod.load(COMPILE_PROFILE)
    index = prof.index.expanded(source=str(prof.stack_toml))
    variant = "cold" if cold else "warm"
    root = work / f"compile-{variant}"
    caches = root / "caches"
    counter = [0]

    def fresh_cache() -> dict[str, str]:
        """Cold: a new empty cache folder per run (pip, pip-tools and uv all follow XDG_CACHE_HOME; their
        own cache variables, which runner.clean_env passes on, are pointed there too)."""
        if not cold:
            return {}
        counter[0] += 1
        if caches.exists():  # the previous run's cache (its size is recorded): GBs for pip-tools
            shutil.rmtree(caches)
        folder = caches / f"run-{counter[0]}"
        folder.mkdir(parents=True)
        return {"XDG_CACHE_HOME": str(folder), "UV_CACHE_DIR": str(folder / "uv"), "PIP_CACHE_DIR": str(folder / "pip")}

    def inputs(dest: Path) -> tuple[str, ...]:
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        deferred = compile_mod.deferred_pins(prof, parse(prof.requirements_in).pins)
        files = compile_mod.resolver_inputs(prof, prof.requirements_in.read_text(encoding="utf-8"), deferred)
        for name, text in files.items():
            (dest / name).write_text(text, encoding="utf-8")
        shutil.copyfile(prof.lock_path, dest / defaults.LOCK_TXT)
        return tuple(files)

    env_now: dict[str, str] = {}
    stats: dict[str, dict[str, int]] = {}

    def prepare() -> None:
        env_now.clear()
        env_now.update(fresh_cache())

    bare_uv = "bare uv pip compile --generate-hashes"
    out: list[Contender] = []
    for name in backends:
        goal = None
        if name == "uv":
            goal = (Goal(f"<= 10 s, <= 1.2x {bare_uv}", max_s=10.0, ratio=1.2, ratio_of=bare_uv) if not cold
                    else Goal(f"<= 1.2x {bare_uv}", ratio=1.2, ratio_of=bare_uv))

        def action(name: str = name) -> None:
            with scoped_environ(**env_now):
                result = compile_mod.compile_profile(prof, backend=name, check=True)
            stats[name] = {"packages": result.packages, "hashes": result.hashes,
                           "stale_vs_committed": int(result.changed), **_cache_size(env_now)}

        out.append(Contender(f"stacksync compile ({name})", action, prepare=prepare, goal=goal,
                             unavailable=lambda name=name: backend_unavailable(name),  # type: ignore[misc]
                             detail=lambda name=name: stats.get(name, {}),  # type: ignore[misc]
                             warmup=not cold))

    def bare_uv_action() -> None:
        folder = root / "bare-uv"
        names = inputs(folder)
        runner.run([_uv(), "pip", "compile", "--quiet", "--generate-hashes", "--no-header", "--python-version",
                    prof.python or f"{sys.version_info[0]}.{sys.version_info[1]}", "--index-url",
                    index.index_url or "https://pypi.org/simple", "-o", defaults.LOCK_TXT, *names],
                   env=runner.clean_env(env_now), cwd=folder)
        stats[bare_uv] = _cache_size(env_now)

    def bare_pip_compile_action() -> None:
        folder = root / "bare-pip-compile"
        names = inputs(folder)
        runner.run([sys.executable, "-m", "piptools", "compile", "--quiet", "--generate-hashes", "--allow-unsafe",
                    "--no-header", "--index-url", index.index_url or "https://pypi.org/simple", "--output-file",
                    defaults.LOCK_TXT, *names], env=runner.clean_env(env_now), cwd=folder)

    out.append(Contender(bare_uv, bare_uv_action, prepare=prepare, warmup=not cold,
                         detail=lambda: stats.get(bare_uv, {})))
    out.append(Contender("bare pip-compile --generate-hashes", bare_pip_compile_action, prepare=prepare,
                         skip=None if with_bare_pip_compile else BARE_PIP_COMPILE_SKIP, runs=1, warmup=False))
    return out


# -------------------------------------------------------------------------------------------- verify

VERIFY_GOAL_GB_S = 5 / 30  # a 5 GB stack verified in 30 s ("well under a minute")


def verify_contenders(work: Path, extra: Sequence[Path] = (), *, demo_venv: bool = True) -> list[Contender]:
    """The verify case: ``verify --files`` (every installed file hashed against its RECORD, in-process,
    the default thread pool) of the demo venv (the project's .venv when ``invoke sync`` made it, else
    the demo profile synced into a new venv, untimed) and of each ``--verify-venv`` (a real torch stack).
    Warm page cache (the first run is the untimed warm-up); each row also runs with 1 thread, to show
    what the pool buys. Goal per environment: its bytes at 5 GB per 30 s."""
    from stacksync.env.record import verify_environment

    targets: list[tuple[str, Path]] = []
    demo = defaults.default_venv()
    if demo_venv and not (demo / "pyvenv.cfg").is_file():
        from stacksync.sync.state import Options

        demo = work / "verify-demo"
        new_venv(demo)
        quiet_sync(Options(profile=COLD_PROFILE, venv=str(demo), yes=True))
    if demo_venv:
        targets.append(("demo venv", demo))
    targets += [(f"{p.name}", p) for p in extra]
    out: list[Contender] = []
    for label, venv in targets:
        size = verify_environment(venv)
        goal_s = round(max(size.bytes / 1e9 / VERIFY_GOAL_GB_S, 0.5), 1)
        facts = {"distributions": len(size.dists), "files": size.files, "bytes": size.bytes}
        last: dict[str, float] = {}

        def action(venv: Path = venv, last: dict[str, float] = last, workers: int | None = None) -> None:
            result = verify_environment(venv) if workers is None else verify_environment(venv, workers=workers)
            if not result.ok:
                raise RuntimeError(f"{venv}: verify --files found problems: {result.counts()}")
            last["seconds"], last["gb_s"] = result.seconds, result.bytes / result.seconds / 1e9

        def detail(facts: dict[str, int] = facts, last: dict[str, float] = last) -> dict[str, Any]:
            return {**facts, "last_run_gb_s": round(last.get("gb_s", 0.0), 3)}

        one: dict[str, float] = {}
        out.append(Contender(f"verify --files: {label} ({size.bytes / 1e9:.2f} GB, {size.files:,} files)", action,
                             goal=Goal(f"<= {goal_s:g} s (5 GB per 30 s, pro rata)", max_s=goal_s), detail=detail))
        out.append(Contender(f"verify --files, 1 thread: {label}",
                             lambda venv=venv, one=one: action(venv, one, workers=1),  # type: ignore[misc]
                             detail=lambda facts=facts, one=one: detail(facts, one)))  # type: ignore[misc]
    return out


def _cache_size(env: dict[str, str]) -> dict[str, int]:
    """Bytes in a cold run's cache folder after the run (what it downloaded); nothing when warm."""
    folder = env.get("XDG_CACHE_HOME")
    if not folder:
        return {}
    total = sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file() and not p.is_symlink())
    return {"last_cold_run_cache_bytes": total}


# ------------------------------------------------------------------------------------------- driver

def machine_info() -> dict[str, Any]:
    """What the figures were measured on: CPU count, Python, platform, tool versions."""
    from importlib.metadata import PackageNotFoundError, version

    def v(dist: str) -> str | None:
        try:
            return version(dist)
        except PackageNotFoundError:
            return None

    uv = runner.run([_uv(), "--version"], check=False)
    head = runner.run(["git", "rev-parse", "HEAD"], cwd=REPO, check=False)
    # the results page is what a run rewrites: an earlier run's uncommitted section is not a change
    dirty = runner.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!docs/results"],
                       cwd=REPO, check=False)
    return {
        "stacksync_commit": head.stdout.strip() if head.returncode == 0 else None,
        "stacksync_tree_modified": bool(dirty.stdout.strip()) if dirty.returncode == 0 else None,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "tools": {"stacksync": v("stacksync"), "pip": v("pip"), "pip-tools": v("pip-tools"),
                  "uv": uv.stdout.strip() if uv.returncode == 0 else None, "nox": v("nox")},
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        # Other work on the machine skews every row alike (round robin), but it is worth knowing.
        "load_average_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def run_bench(opts: BenchOptions, *, log: Callable[[str], None] | None = None,
              workdir: Path | None = None) -> list[Row]:
    """Run the selected cases; return their rows (judged)."""
    say = log or (lambda m: None)
    rows: list[Row] = []
    if opts.bytecode:  # what a wheel install leaves (pip compiles it); an editable checkout has none
        runner.run([sys.executable, "-m", "compileall", "-q", REPO / "stacksync"])
    with tempfile.TemporaryDirectory(prefix="stacksync-bench-") as tmp:
        work = workdir or Path(tmp)
        for case in opts.cases:
            say(f"--- {case}")
            if case == "noop":
                rows += measure("noop", noop_contenders(work, opts.backends, demo=True), opts.runs, log=say)
            elif case == "cold":
                rows += measure("cold", cold_contenders(work, opts.backends), opts.runs, log=say)
            elif case == "scale":
                from devtools.bench_scale import scale_contenders, slope_rows

                with scale_contenders(work) as contenders:
                    measured = measure("scale", contenders, opts.runs, log=say)
                rows += measured + slope_rows(measured)
                judge(rows)
            elif case == "deferred":
                from devtools.bench_deferred import deferred_contenders

                with deferred_contenders(work) as contenders:
                    rows += measure("deferred", contenders, opts.runs, log=say)
            elif case == "verify":
                rows += measure("verify", verify_contenders(work, opts.verify_venvs), opts.runs, log=say)
            elif case == "fleet":
                from devtools.bench_fleet import fleet_contenders

                with fleet_contenders(work) as contenders:
                    rows += measure("fleet", contenders, opts.runs, log=say)
            elif case == "compile":
                for cold in (False, True):
                    name = "compile (cold)" if cold else "compile (warm)"
                    rows += measure(name, compile_contenders(work, opts.backends, cold=cold,
                                                             with_bare_pip_compile=opts.with_bare_pip_compile),
                                    opts.runs, log=say)
    return rows


def main(argv: Sequence[str], *, log: Callable[[str], None] | None = None) -> int:
    """Parse posargs, run, print the table, write the JSON (``reports/bench.json`` unless ``--json``).
    Returns 1 when a contender failed, else 0 (goals not met are reported, not an error)."""
    from stacksync.core import console

    opts = parse_args(argv)
    say = log or console.info
    # Under nox the root logger shows debug lines: keep runner's "$ argv" lines out of the bench output.
    logger = logging.getLogger("stacksync")
    level = logger.level
    logger.setLevel(logging.WARNING)
    # The figures are written before the work folder is removed: removing an 800-package venv's files
    # takes minutes on a busy disk, and a run stopped then must not lose its table.
    with tempfile.TemporaryDirectory(prefix="stacksync-bench-") as tmp:
        try:
            rows = run_bench(opts, log=say, workdir=Path(tmp))
            machine = machine_info()
        finally:
            logger.setLevel(level)
        _report(rows, machine, opts, argv, say)
        say("removing the benchmark's work folder")
    return 1 if any(r.status.startswith("failed") for r in rows) else 0


def _report(rows: Sequence[Row], machine: dict[str, Any], opts: BenchOptions, argv: Sequence[str],
            say: Callable[[str], None]) -> None:
    """Print the table; write the JSON and Markdown reports and the results page's sections."""
    from stacksync.core import console

    console.out.print(render_table(rows), markup=False, end="")
    path = opts.json_path or defaults.reports_dir() / "bench.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_json(rows, machine, opts), indent=2) + "\n", encoding="utf-8")
    (path.with_suffix(".md")).write_text(render_markdown(rows), encoding="utf-8")
    say(f"wrote {path} and {path.with_suffix('.md')}")
    if opts.results_path is not None:
        results = opts.results_path
        old = results.read_text(encoding="utf-8") if results.is_file() else ""
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(update_results(old, results_sections(rows, machine, opts, argv)), encoding="utf-8")
        say(f"updated {results} ({', '.join(c for c in opts.cases)})")
