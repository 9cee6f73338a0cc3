"""devtools.bench: statistics, goals, case selection, table and JSON (pure), the wheel / profile
builder, the measuring loop with real callables, and one small real no-op run (slow). No timing asserts:
only that rows were measured, judged by their own rules and reported."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from devtools import bench
from devtools.bench import BenchOptions, Contender, Goal, Row
from stacksync.core.errors import StacksyncError
from stacksync.lock.lockfile import parse


def test_summarize_median_min_max() -> None:
    assert bench.summarize([3.0, 1.0, 2.0]) == (2.0, 1.0, 3.0)
    assert bench.summarize([4.0, 1.0, 2.0, 3.0]) == (2.5, 1.0, 4.0)
    assert bench.summarize([0.5]) == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError):
        bench.summarize([])


def test_row_statistics_and_empty_row() -> None:
    row = Row("noop", "x", samples=[0.2, 0.1, 0.4, 0.3, 0.25])
    assert (row.median, row.min, row.max) == (0.25, 0.1, 0.4)
    empty = Row("noop", "y", status="backend not available")
    assert (empty.median, empty.min, empty.max) == (None, None, None)


def _noop_rows(ours: list[float], pip_sync: list[float], uv: list[float]) -> list[Row]:
    goal = Goal("<= 0.3 s, faster than both", max_s=0.3, faster_than=("pip-sync", "uv pip sync"))
    return [Row("noop", "stacksync", ours, goal=goal), Row("noop", "pip-sync", pip_sync),
            Row("noop", "uv pip sync", uv)]


def test_judge_max_and_faster_than() -> None:
    rows = _noop_rows([0.1, 0.2, 0.15], [0.6, 0.5, 0.7], [0.3, 0.25, 0.26])
    bench.judge(rows)
    assert rows[0].met is True and rows[0].why == ""
    assert rows[1].met is None  # no goal of its own

    slow = _noop_rows([0.35, 0.4, 0.36], [0.6], [0.03])
    bench.judge(slow)
    assert slow[0].met is False
    assert "> 0.3 s" in slow[0].why and "not faster than uv pip sync" in slow[0].why
    assert "pip-sync (" not in slow[0].why  # it is faster than pip-sync


def test_judge_ratio_and_missing_reference() -> None:
    goal = Goal("<= 1.10x bare", ratio=1.10, ratio_of="bare")
    ok = [Row("cold", "ours", [10.5], goal=goal), Row("cold", "bare", [10.0])]
    bench.judge(ok)
    assert ok[0].met is True and ok[0].detail["ratio"] == 1.05
    over = [Row("cold", "ours", [12.0], goal=goal), Row("cold", "bare", [10.0])]
    bench.judge(over)
    assert over[0].met is False and "1.20x bare > 1.1x" in over[0].why
    missing = [Row("cold", "ours", [1.0], goal=goal), Row("cold", "bare", status="failed: boom")]
    bench.judge(missing)
    assert missing[0].met is None and "reference not measured: bare" in missing[0].why
    # A reference in another case does not count.
    other_case = [Row("compile (warm)", "ours", [1.0], goal=goal), Row("compile (cold)", "bare", [1.0])]
    bench.judge(other_case)
    assert other_case[0].met is None


def test_judge_skips_rows_that_did_not_run() -> None:
    rows = [Row("noop", "ours", status="backend not available", goal=Goal("<= 0.3 s", max_s=0.3))]
    bench.judge(rows)
    assert rows[0].met is None


def test_select_cases() -> None:
    assert bench.select_cases([]) == bench.CASES
    assert bench.select_cases([], quick=True) == bench.CHEAP_CASES
    assert bench.select_cases(["compile", "noop"]) == ("noop", "compile")  # CASES order
    assert bench.select_cases(["noop,cold"], quick=True) == ("noop", "cold")
    with pytest.raises(StacksyncError, match="unknown case 'nope'.*fix: --case one of noop, cold, scale, compile"):
        bench.select_cases(["nope"])


def test_parse_args() -> None:
    assert bench.parse_args([]) == BenchOptions()
    quick = bench.parse_args(["--quick"])
    assert (quick.runs, quick.cases, quick.quick) == (1, bench.CHEAP_CASES, True)
    opts = bench.parse_args(["--runs", "7", "--case", "compile", "--with-bare-pip-compile", "--json", "x.json"])
    assert (opts.runs, opts.cases, opts.with_bare_pip_compile, opts.json_path) == (7, ("compile",), True,
                                                                                   Path("x.json"))
    verify = bench.parse_args(["--case", "verify", "--verify-venv", "/tmp/torch-venv"])
    assert (verify.cases, verify.verify_venvs) == (("verify",), (Path("/tmp/torch-venv"),))
    assert bench.parse_args(["--backend", "uv"]).backends == ("uv",)
    assert bench.parse_args(["--no-bytecode"]).bytecode is False and bench.parse_args([]).bytecode is True
    with pytest.raises(StacksyncError, match="unknown backend 'conda'"):
        bench.parse_args(["--backend", "conda"])
    with pytest.raises(StacksyncError, match="unknown argument.*--frobnicate"):
        bench.parse_args(["--frobnicate"])
    with pytest.raises(StacksyncError, match="at least 1"):
        bench.parse_args(["--runs", "0"])
    with pytest.raises(StacksyncError, match="nox -s bench"):
        bench.parse_args(["--runs", "many"])


def _sample_rows() -> list[Row]:
    rows = _noop_rows([0.1, 0.12, 0.11], [0.6, 0.55, 0.58], [0.03, 0.03, 0.02])
    rows.append(Row("noop", "stacksync (uv)", status="backend not available",
                    goal=Goal("<= 0.3 s", max_s=0.3)))
    rows.append(Row("compile (warm)", "bare pip-compile --generate-hashes", status=bench.BARE_PIP_COMPILE_SKIP))
    bench.judge(rows)
    return rows


def test_table_rows_and_rendering() -> None:
    rows = _sample_rows()
    cells = bench.table_rows(rows)
    assert cells[0][:8] == ["noop", "stacksync", "0.110", "0.100", "0.120", "-", "-", "3"]  # no CPU samples
    assert cells[0][9].startswith("NO (not faster than uv pip sync")
    assert cells[1][8:] == ["", ""]
    assert cells[3][2] == "backend not available" and cells[3][9].startswith("n/a")
    assert cells[4][2] == bench.BARE_PIP_COMPILE_SKIP
    text = bench.render_table(rows)
    for header in bench.HEADERS:
        assert header in text
    assert "backend not available" in text and "24.5 GB per run" in text
    md = bench.render_markdown(rows)
    assert md.splitlines()[0] == "| " + " | ".join(bench.HEADERS) + " |"
    assert len(md.splitlines()) == 2 + len(rows)


def test_to_json_round_trips() -> None:
    rows = _sample_rows()
    doc = json.loads(json.dumps(bench.to_json(rows, {"cpu_count": 2}, BenchOptions(runs=3))))
    assert doc["machine"] == {"cpu_count": 2} and doc["options"]["runs"] == 3
    first = doc["rows"][0]
    assert (first["median_s"], first["min_s"], first["max_s"], first["runs"]) == (0.11, 0.1, 0.12, 3)
    assert first["met"] is False and first["goal"].startswith("<= 0.3 s")
    assert doc["rows"][3]["status"] == "backend not available" and doc["rows"][3]["median_s"] is None


def test_build_wheel_is_a_valid_wheel(tmp_path: Path) -> None:
    path = bench.build_wheel(tmp_path, "bench-pkg-007", "1.0", ["bench-pkg-008==1.0"])
    assert path.name == "bench_pkg_007-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        meta = zf.read("bench_pkg_007-1.0.dist-info/METADATA").decode()
        record = zf.read("bench_pkg_007-1.0.dist-info/RECORD").decode()
    assert "bench_pkg_007/__init__.py" in names
    assert "Name: bench-pkg-007" in meta and "Requires-Dist: bench-pkg-008==1.0" in meta
    assert all(n in record for n in names)
    again = bench.build_wheel(tmp_path / "again", "bench-pkg-007", "1.0", ["bench-pkg-008==1.0"])
    assert again.read_bytes() == path.read_bytes()  # same inputs, same hash


def test_write_noop_profile(tmp_path: Path) -> None:
    from stacksync.lock import profile as profile_mod

    locks, wheels = bench.write_noop_profile(tmp_path, count=9)
    prof = profile_mod.load(bench.NOOP_PROFILE, locks)
    assert prof.index.index_url == (tmp_path / "simple").as_uri()
    lock = parse(prof.lock_path, lock=True)
    assert [p.name for p in lock.pins] == bench.noop_names(9)
    for pin in lock.pins:
        wheel = wheels / f"{pin.name.replace('-', '_')}-1.0-py3-none-any.whl"
        assert pin.hashes == (f"sha256:{hashlib.sha256(wheel.read_bytes()).hexdigest()}",)
        page = (tmp_path / "simple" / pin.name / "index.html").read_text()
        assert wheel.as_uri() in page and pin.hashes[0].split(":")[1] in page
    # chains of four: 000 -> 001 -> 002 -> 003, then 004 starts a new one
    assert lock.pins[1].via == ("bench-pkg-000",) and lock.pins[4].via == ("-r requirements.in",)


def test_measure_round_robin_unavailable_skip_and_failure() -> None:
    calls: list[str] = []
    log: list[str] = []

    def boom() -> None:
        raise RuntimeError("exploded\nsecond line")

    contenders = [
        Contender("a", lambda: calls.append("a"), prepare=lambda: calls.append("prep-a"),
                  goal=Goal("faster than b", faster_than=("b",))),
        Contender("b", lambda: calls.append("b")),
        Contender("gone", lambda: calls.append("gone"), unavailable=lambda: "backend not available"),
        Contender("skipped", lambda: calls.append("skipped"), skip="skipped (why)"),
        Contender("broken", boom),
        Contender("once", lambda: calls.append("once"), runs=1, warmup=False),
    ]
    rows = {r.tool: r for r in bench.measure("case", contenders, 3, log=log.append)}
    # warm-up round, then three timed rounds, a before b each time
    assert calls == ["prep-a", "a", "b", "prep-a", "a", "b", "once", "prep-a", "a", "b", "prep-a", "a", "b"]
    assert len(rows["a"].samples) == 3 and len(rows["b"].samples) == 3 and len(rows["once"].samples) == 1
    assert len(rows["a"].cpu_samples) == 3 and all(c >= 0 for c in rows["a"].cpu_samples)
    assert rows["gone"].status == "backend not available" and rows["gone"].samples == []
    assert rows["skipped"].status == "skipped (why)"
    assert rows["broken"].status == "failed: exploded" and rows["broken"].samples == []
    assert rows["a"].met is not None  # judged against b
    assert any("FAILED: exploded" in line for line in log)


def test_backend_unavailable_names_known_backends() -> None:
    assert bench.backend_unavailable("pip-tools") is None
    reason = bench.backend_unavailable("uv")
    assert reason is None or reason.startswith("backend not available")


@pytest.mark.slow
def test_noop_case_runs_for_real(tmp_path: Path) -> None:
    """The cheapest case, small (8 packages), one run: every contender that can run here measures a
    no-op (stacksync's in-process run raises if the verdict is not "in-sync")."""
    contenders = bench.noop_contenders(tmp_path, ("pip-tools", "uv"), count=8)
    rows = {r.tool: r for r in bench.measure("noop", contenders, 1, log=lambda _m: None)}
    for tool in ("stacksync sync.run (pip-tools)", "stacksync CLI: invoke sync (pip-tools)", "pip-sync",
                 "uv pip sync", bench.LAUNCHER_FLOOR, bench.PYTHON_FLOOR):
        assert rows[tool].status == "ok", rows[tool].status
        assert len(rows[tool].samples) == 1
    for tool in ("stacksync sync.run (uv)", "stacksync CLI: invoke sync (uv)"):
        assert rows[tool].status in ("ok", "backend not available"), rows[tool].status
    assert rows["stacksync sync.run (pip-tools)"].met is not None  # judged against both references
    assert rows[bench.LAUNCHER_FLOOR].goal is None  # a reference row, judged by nothing
    assert rows[bench.PYTHON_FLOOR].goal is None
    text = bench.render_table(list(rows.values()))
    assert "pip-sync" in text and "uv pip sync" in text


def test_machine_info_names_the_machine_and_tools() -> None:
    info = bench.machine_info()
    assert isinstance(info["cpu_count"], int) and info["python"].count(".") == 2
    assert info["tools"]["pip"] and info["tools"]["pip-tools"]
    assert info["stacksync_commit"] is None or len(info["stacksync_commit"]) == 40
    json.dumps(info)  # goes into reports/bench.json as is


def test_deferred_case_profile_and_sdist(tmp_path: Path) -> None:
    """The deferred case's inputs: a profile whose locks hash the dists it wrote, a team index with
    ${VAR} credentials, and an sdist that imports the base in setup.py (byte-identical when rebuilt)."""
    import tarfile

    from devtools import bench_deferred
    from stacksync.lock import profile as profile_mod

    assert bench.select_cases(["deferred"]) == ("deferred",)
    locks, packages = bench_deferred.write_deferred_profile(tmp_path, 5001, 5002)
    prof = profile_mod.load(bench_deferred.PROFILE, locks)
    assert prof.team_index == "http://${BENCH_TEAM_USER}:${BENCH_TEAM_TOKEN}@127.0.0.1:5002/simple/"
    assert [d.name for d in prof.deferred] == ["bench-ext"] and prof.deferred[0].rebuild_on == ("bench-torch",)
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in packages.iterdir()}
    for lock in (prof.lock_path, prof.deferred_path):
        for pin in parse(lock, lock=True).pins:
            (digest,) = pin.hashes
            assert digest.split(":")[1] in files.values(), pin.name
    sdist = packages / "bench_ext-1.0.tar.gz"
    with tarfile.open(sdist) as tf:
        setup_py = tf.extractfile("bench_ext-1.0/setup.py").read().decode()  # type: ignore[union-attr]
    assert "import bench_torch" in setup_py
    assert bench_deferred.build_sdist(tmp_path / "again").read_bytes() == sdist.read_bytes()


def test_deferred_rows_name_the_processes_a_run_started() -> None:
    """The deferred rows' JSON detail lists each process of the last run in words (what the window
    holds is checked against it: a hit is doctor's probe, one install and one env+smoke probe)."""
    from devtools.bench_deferred import _what

    py = "/t/venv/bin/python"
    assert _what([py, "-I", "/s/stacksync/probes/probe.py", "env+smoke", "--json-out", "/x.json", "m"]) == \
        "probe env+smoke"
    assert _what([py, "-m", "pip", "install", "--require-hashes", "-r", "r.txt"]) == "pip install"
    assert _what(["/usr/bin/uv", "pip", "install"]) == "uv"


def test_judge_on_cpu_on_a_sum_and_on_minimums() -> None:
    """Issue 21's goals: CPU medians against a sum of reference rows (bare uv + smoke floor), and
    minimums (the deferred hits); the table says which figure was judged and the ratio."""
    goal = Goal("<= 2x bare + floor (CPU)", ratio=2.0, ratio_of="bare", plus=("floor",), cpu=True)
    rows = [Row("scale", "ours", [9.0, 9.0, 9.0], goal=goal, cpu_samples=[2.0, 2.2, 2.4]),
            Row("scale", "bare", [1.0, 1.0, 1.0], cpu_samples=[1.0, 0.9, 1.1]),
            Row("scale", "floor", [0.1, 0.1, 0.1], cpu_samples=[0.1, 0.1, 0.1])]
    bench.judge(rows)  # wall 9.0 / 1.1 would fail; CPU 2.2 / 1.1 = 2.0 meets it
    assert rows[0].met is True and rows[0].detail["ratio"] == 2.0 and rows[0].why == "CPU median 2.00x"
    assert bench.table_rows(rows)[0][5:7] == ["2.200", "2.000"]
    rows[0].cpu_samples = [2.5, 2.6, 2.7]
    bench.judge(rows)
    assert rows[0].met is False and rows[0].why == "CPU median 2.36x bare + floor > 2x"
    rows[2] = Row("scale", "floor", status="failed: boom")
    bench.judge(rows)
    assert rows[0].met is None and rows[0].why == "reference not measured: floor"

    by_min = Goal("<= 1.2x bare (minimums)", ratio=1.2, ratio_of="bare", by_min=True)
    hit = [Row("deferred", "hit", [0.5, 0.36, 0.9], goal=by_min), Row("deferred", "bare", [0.3, 0.4, 0.5])]
    bench.judge(hit)  # medians 0.5 / 0.4 = 1.25x; minimums 0.36 / 0.3 = 1.2x
    assert hit[0].met is True and hit[0].detail["ratio"] == 1.2 and hit[0].why == "min 1.20x"


def test_scale_profiles_close_their_dependencies_and_hash_their_wheels(tmp_path: Path) -> None:
    """The scale case's inputs: one set of wheels, a lock per N over the first N of them (package 2k
    requires 2k+1, so every even N is closed), an HTTP index with relative links, ten smoke imports."""
    from devtools import bench_scale
    from stacksync.lock import profile as profile_mod

    assert bench.select_cases(["scale"]) == ("scale",)
    locks = bench_scale.write_scale_profiles(tmp_path, 5003, sizes=(4, 12))
    wheels = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "wheels").iterdir()}
    assert len(wheels) == 12
    for n in (4, 12):
        prof = profile_mod.load(bench_scale.profile_name(n), locks)
        assert prof.index.index_url == "http://127.0.0.1:5003/simple/"
        assert prof.smoke_modules() == bench_scale.smoke_modules(n) and 0 < len(prof.smoke_modules()) <= 10
        pins = parse(prof.lock_path, lock=True).pins
        assert [p.name for p in pins] == bench_scale.scale_names(n)
        assert all(p.hashes[0].split(":")[1] in wheels.values() for p in pins)
        names = {p.name for p in pins}
        for p in pins:  # every Requires-Dist of a locked wheel is locked too
            (whl,) = [w for w in (tmp_path / "wheels").iterdir() if w.name.startswith(p.name.replace("-", "_") + "-")]
            with zipfile.ZipFile(whl) as zf:
                meta = zf.read(f"{p.name.replace('-', '_')}-1.0.dist-info/METADATA").decode()
            assert all(line.split(": ")[1].split("==")[0] in names
                       for line in meta.splitlines() if line.startswith("Requires-Dist"))
    page = (tmp_path / "simple" / "bench-scale-003" / "index.html").read_text()
    assert 'href="../../wheels/bench_scale_003-1.0-py3-none-any.whl#sha256=' in page


def test_scale_slope_rows_pair_the_runs_of_a_round() -> None:
    """CPU per package between the smallest and largest N, per round: stacksync's judged against bare
    uv + smoke floor; a missing row leaves the slope unmeasured rather than wrong."""
    from devtools import bench_scale as sc

    def row(n: int, what: str, cpu: list[float]) -> Row:
        return Row("scale", sc.tool_name(n, what), [1.0] * len(cpu), cpu_samples=cpu)

    rows = [row(50, sc.STACKSYNC, [1.0, 1.2]), row(800, sc.STACKSYNC, [4.0, 4.2]),
            row(50, sc.BARE, [0.1, 0.1]), row(800, sc.BARE, [1.6, 1.1]),
            row(50, sc.FLOOR, [0.02, 0.02]), row(800, sc.FLOOR, [0.02, 0.02])]
    ours, bare, both = sc.slope_rows(rows)
    assert ours.cpu_samples == pytest.approx([4.0, 4.0]) and ours.samples == []  # ms per package
    assert bare.cpu_samples == pytest.approx([2.0, 1000 / 750])
    assert both.cpu_samples == pytest.approx(bare.cpu_samples)
    bench.judge([*rows, ours, bare, both])
    assert ours.met is False and ours.detail["ratio"] == 2.4  # 4 ms / (median of 2 and 1.33 ms)
    assert bench.table_rows([ours])[0][7] == "2"  # runs: the CPU samples (no wall figures)
    missing = sc.slope_rows(rows[:-1])
    assert missing[0].status == "ok" and missing[2].status.startswith("not measured")


def test_measure_records_what_a_self_timed_action_returns() -> None:
    """A self-timed contender (one phase of a sync) records the seconds its action returns."""
    returned = iter([0.25, 0.5, 0.75])
    rows = bench.measure("deferred", [Contender("phase", lambda: next(returned), self_timed=True, warmup=False),
                                      Contender("broken", lambda: None, self_timed=True, warmup=False)],
                         2, log=lambda _m: None)
    assert rows[0].samples == [0.25, 0.5] and rows[0].cpu_samples == []  # a phase's CPU is not told apart
    assert rows[1].status.startswith("failed: broken: a self-timed action returns its seconds")


def test_verify_case_runs_for_real(tmp_path: Path, make_venv) -> None:  # type: ignore[no-untyped-def]
    """The verify case on a fresh venv (pip and setuptools), one run: each row hashes every file and
    records what it hashed; the pool row has a goal, the 1-thread row is a reference."""
    venv = make_venv("verify-me")
    contenders = bench.verify_contenders(tmp_path, [venv], demo_venv=False)
    rows = bench.measure("verify", contenders, 1, log=lambda _m: None)
    assert [r.status for r in rows] == ["ok", "ok"] and all(len(r.samples) == 1 for r in rows)
    assert rows[0].tool.startswith("verify --files: verify-me (") and rows[0].goal is not None
    assert rows[0].detail["files"] > 100 and rows[0].detail["bytes"] > 1_000_000
    assert rows[1].goal is None and rows[1].detail["last_run_gb_s"] > 0
