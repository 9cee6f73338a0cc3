"""``nox -s chaos``: run the fault suite (tests/test_chaos.py) alone and print its table.

The suite writes what it did to ``reports/chaos.json`` (``STACKSYNC_CHAOS_REPORT``): one entry per
kill point (what was cut short, what the kill left in the target, whether the re-run converged), one
per hostile input (kind, result, whether the target changed) and one per CLI refusal. This module
only runs pytest and turns that JSON into the table README shows.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from stacksync.core import defaults, runner

__all__ = ["REPORT_ENV", "report_path", "run_suite", "summary", "table", "main"]

# The stacksync checkout (devtools/ lives only there): benchmarks and the fault suite run its code.
REPO = Path(__file__).resolve().parents[1]

REPORT_ENV = "STACKSYNC_CHAOS_REPORT"
SUITE = "tests/test_chaos.py"


def report_path() -> Path:
    return defaults.reports_dir() / "chaos.json"


def run_suite(report: Path, pytest_args: Sequence[str] = ()) -> int:
    """pytest on the fault suite with the report path set; its exit status."""
    report.parent.mkdir(parents=True, exist_ok=True)
    report.unlink(missing_ok=True)
    env = {**os.environ, REPORT_ENV: str(report)}
    result = runner.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", SUITE, *pytest_args],
                        env=env, cwd=REPO, check=False, stream=True)
    return result.returncode


def summary(data: Mapping[str, Any]) -> dict[str, int]:
    """The counts: kill points (killed, converged, reported in sync while damaged), inputs tried
    (clear errors, tracebacks, targets changed), CLI refusals (one line each)."""
    kills = list(data.get("kill_points", []))
    fuzz = list(data.get("fuzz", []))
    cli = list(data.get("cli", []))
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
             "", "| kill point | cut short | left in the target | converged |", "|---|---|---|---|"]
    for k in data.get("kill_points", []):
        left = "; ".join(line.split(":", 1)[0] if line.startswith("journal") else line
                         for line in k.get("left", [])) or "nothing"
        lines.append(f"| {k['point']} | {k.get('what', '')} | {left} | {'yes' if k.get('converged') else 'NO'} |")
    kinds: dict[str, list[Mapping[str, Any]]] = {}
    for f in data.get("fuzz", []):
        kinds.setdefault(str(f.get("kind")), []).append(f)
    lines += ["", "| input kind | tried | clear errors | tracebacks | targets changed |", "|---|---|---|---|---|"]
    for kind, cases in kinds.items():
        lines.append(f"| {kind} | {len(cases)} | {sum(c.get('result') == 'clear error' for c in cases)} | "
                     f"{sum(c.get('result') == 'traceback' for c in cases)} | "
                     f"{sum(bool(c.get('changed')) for c in cases)} |")
    return "\n".join(lines)


def main(pytest_args: Sequence[str], log: Callable[[str], object] = print) -> bool:
    """Run the suite, print the table; ``True`` when the suite passed."""
    report = Path(os.environ.get(REPORT_ENV) or report_path())
    status = run_suite(report, pytest_args)
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log(f"no report at {report} (the suite did not get to write it)")
        return False
    log("\n" + table(data))
    log(f"report: {report}")
    return status == 0
