"""``nox -s chaos``: run the fault suite (tests/test_chaos.py) alone and print its table.

The suite writes what it did to ``reports/chaos.json`` (``STACKSYNC_CHAOS_REPORT``): one entry per
kill point (what was cut short, what the kill left in the target, whether the re-run converged), one
per hostile input (kind, result, whether the target changed) and one per CLI refusal. This module
only runs pytest, turns that JSON into tables, prints them and writes them to
``docs/results/chaos.md`` (the page docs/crash-consistency.md links) with a line saying when and how.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from stacksync.core import defaults, runner

__all__ = ["REPORT_ENV", "RESULTS_PATH", "report_path", "run_suite", "summary", "table", "results_page", "main"]

# The stacksync checkout (devtools/ lives only there): benchmarks and the fault suite run its code.
REPO = Path(__file__).resolve().parents[1]

REPORT_ENV = "STACKSYNC_CHAOS_REPORT"
SUITE = ("tests/test_chaos.py", "tests/test_chaos_random.py")
#: the random-instant kills and hostile local state write here (the report path + this suffix)
RANDOM_SUFFIX = ".random.json"
RESULTS_PATH = REPO / "docs" / "results" / "chaos.md"


def report_path() -> Path:
    return defaults.reports_dir() / "chaos.json"


def run_suite(report: Path, pytest_args: Sequence[str] = ()) -> int:
    """pytest on the fault suite with the report path set; its exit status."""
    report.parent.mkdir(parents=True, exist_ok=True)
    report.unlink(missing_ok=True)
    Path(str(report) + RANDOM_SUFFIX).unlink(missing_ok=True)
    # the fault suite's own run: 50 random-instant kills unless told otherwise (the test suite's default is
    # a handful, to keep CI's full run within its time)
    # the random kills run the uv backend here (a uv sync of the stand-in stack takes about half as long as
    # pip-tools', and the whole run has to fit in an hour on two busy cores); the test suite's run and the
    # named kill points use pip-tools. STACKSYNC_CHAOS_BACKENDS=pip-tools,uv makes them take turns.
    env = {"STACKSYNC_CHAOS_KILLS": "50", "STACKSYNC_CHAOS_BACKENDS": "uv", **os.environ, REPORT_ENV: str(report)}
    result = runner.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SUITE, *pytest_args],
                        env=env, cwd=REPO, check=False, stream=True)
    return result.returncode


def summary(data: Mapping[str, Any]) -> dict[str, int]:
    """The counts: kill points (killed, converged, reported in sync while damaged), inputs tried
    (clear errors, tracebacks, targets changed), CLI refusals (one line each)."""
    kills = list(data.get("kill_points", []))
    fuzz = list(data.get("fuzz", []))
    cli = list(data.get("cli", []))
    kills_r = list(data.get("random_kills", []))
    hostile = list(data.get("hostile", []))
    return {
        "kill_points": len(kills),
        "killed": sum(bool(k.get("killed")) for k in kills),
        "converged": sum(bool(k.get("converged")) for k in kills),
        "left_damage": sum(bool(k.get("left")) for k in kills),
        "inputs": len(fuzz),
        "clear_errors": sum(f.get("result") == "clear error" for f in fuzz),
        "tracebacks": sum(f.get("result") == "traceback" for f in fuzz),
        "targets_changed": sum(bool(f.get("changed")) for f in fuzz),
        "cli_inputs": len(cli),
        "cli_one_line": sum(bool(c.get("ok")) for c in cli),
        "random_kills": len(kills_r),
        "random_requested": int(data.get("random_requested", 0)),
        "random_killed": sum(bool(k.get("killed")) for k in kills_r),
        "random_missed": sum(not k.get("killed") for k in kills_r),
        "random_converged": sum(bool(k.get("converged")) for k in kills_r),
        "random_false_twins": sum(bool(k.get("false_twin")) for k in kills_r),
        "random_left_running": sum(bool(k.get("left_running")) for k in kills_r),
        "random_tracebacks": sum(bool(k.get("traceback")) for k in kills_r),
        "random_startup_interrupts": sum(bool(k.get("python_startup_interrupt")) for k in kills_r),
        "hostile": len(fuzz) + len(hostile) + len(cli),
        "hostile_tracebacks": sum(f.get("result") == "traceback" for f in [*fuzz, *hostile])
        + sum(bool(c.get("traceback")) for c in cli),
        "hostile_changed": sum(bool(f.get("changed")) for f in [*fuzz, *hostile, *cli]),
        "secrets_in_argv": int(data.get("secrets_in_argv", 0)),
        "secrets_in_output": int(data.get("secrets_in_output", 0)),
    }


def table(data: Mapping[str, Any]) -> str:
    """Markdown: the counts, then one row per kill point and per kind of input."""
    s = summary(data)
    lines = ["| fault suite | count |", "|---|---|",
             f"| kill -9 points (phase boundaries and inside pip) | {s['kill_points']} |",
             f"| ... killed | {s['killed']} |",
             f"| ... left damage in the target (journal, stashes, RECORD) | {s['left_damage']} |",
             f"| ... converged to the lock's twin on re-run | {s['converged']} |",
             f"| hostile inputs tried (locks, stack.toml, profile names, interpreters) | {s['inputs']} |",
             f"| ... clear one-line errors | {s['clear_errors']} |",
             f"| ... tracebacks | {s['tracebacks']} |",
             f"| ... targets changed | {s['targets_changed']} |",
             f"| CLI refusals with one `stacksync: error:` line | {s['cli_one_line']}/{s['cli_inputs']} |",
             f"| random-instant kills tried (kill -9 of the tree or of stacksync alone, SIGTERM, SIGINT) "
             f"| {s['random_kills']} |",
             f"| ... landed before the sync ended (asked for: {s['random_requested']}) | {s['random_killed']} |",
             f"| ... missed (the sync had ended first) | {s['random_missed']} |",
             f"| ... converged on re-run (pip freeze, pip check, imports, RECORD hashes) | "
             f"{s['random_converged']} |",
             f"| ... called in sync by verify while not (false twins) | {s['random_false_twins']} |",
             f"| ... processes of the target left running | {s['random_left_running']} |",
             f"| ... tracebacks | {s['random_tracebacks']} |",
             f"| ... Ctrl-C while Python was still importing invoke (KeyboardInterrupt, no stacksync frame) | "
             f"{s['random_startup_interrupts']} |",
             f"| hostile inputs in all (inputs above + CLI refusals + local state, secret-reaching lines, pins) | "
             f"{s['hostile']} |",
             f"| ... tracebacks / targets changed | {s['hostile_tracebacks']} / {s['hostile_changed']} |",
             f"| secrets seen in any process's argv / in output | {s['secrets_in_argv']} / "
             f"{s['secrets_in_output']} |",
             "", "| kill point | cut short | left in the target | converged |", "|---|---|---|---|"]
    for k in data.get("kill_points", []):
        left = "; ".join(line.split(":", 1)[0] if line.startswith("journal") else line
                         for line in k.get("left", [])) or "nothing"
        lines.append(f"| {k['point']} | {k.get('what', '')} | {left} | {'yes' if k.get('converged') else 'NO'} |")
    lines += _random_rows(data)
    kinds: dict[str, list[Mapping[str, Any]]] = {}
    for f in [*data.get("fuzz", []), *data.get("hostile", [])]:
        kinds.setdefault(str(f.get("kind")), []).append(f)
    lines += ["", "| input kind | tried | clear errors | tracebacks | targets changed |", "|---|---|---|---|---|"]
    for kind, cases in kinds.items():
        lines.append(f"| {kind} | {len(cases)} | {sum(c.get('result') == 'clear error' for c in cases)} | "
                     f"{sum(c.get('result') == 'traceback' for c in cases)} | "
                     f"{sum(bool(c.get('changed')) for c in cases)} |")
    return "\n".join(lines)


def _random_rows(data: Mapping[str, Any]) -> list[str]:
    """Per way of killing: tried, landed, converged, the rc seen; then where a kill's time went (means)."""
    kills = list(data.get("random_kills", []))
    if not kills:
        return []
    timed = data.get("sync_seconds", "?")
    timed_text = (", ".join(f"{b} {v} s" for b, v in timed.items()) if isinstance(timed, Mapping) else f"{timed} s")
    out = ["", f"Random instants drawn over a measured whole sync ({timed_text}; then the median of the whole "
           "syncs seen).", "",
           "| kill | backend | tried | landed | converged | exit statuses |", "|---|---|---|---|---|---|"]
    for how, backend in dict.fromkeys((str(k.get("how")), str(k.get("backend", "pip-tools"))) for k in kills):
        rows = [k for k in kills if k.get("how") == how and str(k.get("backend", "pip-tools")) == backend]
        rcs = ", ".join(str(rc) for rc in sorted({k.get("rc") for k in rows}, key=str))
        out.append(f"| {how} | {backend} | {len(rows)} | {sum(bool(k.get('killed')) for k in rows)} | "
                   f"{sum(bool(k.get('converged')) for k in rows)} | {rcs} |")
    costs: dict[str, list[float]] = {}
    for k in kills:
        for name, seconds in dict(k.get("cost_s", {})).items():
            costs.setdefault(name, []).append(float(seconds))
    if costs:
        out += ["", "| per kill: where the time went | mean s | max s |", "|---|---|---|"]
        out += [f"| {name} | {sum(v) / len(v):.1f} | {max(v):.1f} |" for name, v in costs.items()]
        total = [sum(dict(k.get("cost_s", {})).values()) for k in kills]
        out.append(f"| all | {sum(total) / len(total):.1f} | {max(total):.1f} |")
    return out


def results_page(data: Mapping[str, Any], *, when: str, seconds: float, passed: bool, commit: str,
                 pytest_args: Sequence[str] = (), machine: str = "") -> str:
    """docs/results/chaos.md: a heading, one line saying when / how / on what, the tables."""
    command = " ".join(["nox -s chaos", *(["--", *pytest_args] if pytest_args else [])])
    outcome = "passed" if passed else "FAILED"
    where = f", {machine}" if machine else ""
    return (f"# Fault suite results\n\nWritten by `nox -s chaos` (devtools/chaos.py). What the suite does: "
            f"[crash consistency](../crash-consistency.md).\n\nMeasured {when} with `{command}`: {outcome} "
            f"in {seconds:.0f} s{where}, at {commit}.\n\n{table(data)}\n")


def _machine() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    text = f"{os.cpu_count()} cores {platform.machine()}, Python {platform.python_version()}"
    return text + (f", load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}" if load else "")


def _commit() -> str:
    head = runner.run(["git", "rev-parse", "--short=7", "HEAD"], cwd=REPO, check=False)
    dirty = runner.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                       check=False)
    commit = head.stdout.strip() if head.returncode == 0 else "unknown commit"
    return commit + (" + uncommitted changes" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def main(pytest_args: Sequence[str], log: Callable[[str], object] = print,
         results: Path | None = RESULTS_PATH) -> bool:
    """Run the suite, print the table, write ``results`` (unless ``None``); ``True`` when the suite
    passed."""
    report = Path(os.environ.get(REPORT_ENV) or report_path())
    started = time.monotonic()
    status = run_suite(report, pytest_args)
    seconds = time.monotonic() - started
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log(f"no report at {report} (the suite did not get to write it)")
        return False
    try:
        data.update(json.loads(Path(str(report) + RANDOM_SUFFIX).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        log(f"no report at {report}{RANDOM_SUFFIX} (random kills and hostile state did not run)")
    log("\n" + table(data))
    log(f"report: {report}")
    if results is not None:
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(results_page(data, when=when, seconds=seconds, passed=status == 0, commit=_commit(),
                                        pytest_args=pytest_args, machine=_machine()), encoding="utf-8")
        log(f"wrote {results}")
    return status == 0
