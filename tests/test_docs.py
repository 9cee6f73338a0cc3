"""README is a first screen; docs/ holds the rest; the measured tables are written by the tools.

Pure file checks: no process is started.
"""

from __future__ import annotations

import re
from pathlib import Path

from devtools import bench, chaos
from devtools.bench import BenchOptions, Goal, Row

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
COMMANDS = (
    "python3 -m venv .tools && .tools/bin/pip install -q -e '.[dev]' && .tools/bin/invoke sync",
    "python3 -m venv .tools && .tools/bin/pip install -q -e '.[dev]' && .tools/bin/python -m pytest",
)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _pages() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", page.read_text(encoding="utf-8"), re.M)}


def test_readme_starts_with_the_two_commands_and_stays_a_first_screen() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "# stacksync"
    assert lines[1:5] == ["", "```bash", *COMMANDS]
    assert README.stat().st_size < 10 * 1024


def test_every_relative_link_resolves() -> None:
    broken = []
    for page in _pages():
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == []


def test_every_docs_page_is_linked_from_the_index_and_cites_nothing_outside_the_repository() -> None:
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    for page in sorted(DOCS.rglob("*.md")):
        if page.name != "index.md":
            assert str(page.relative_to(DOCS)) in index, page
    for page in _pages():
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"(^|[\s`'\"(])/(work|root|home)/", text, re.M), page  # no machine paths
        for outside in ("FIELD-NOTES", "STYLE.md"):
            assert outside not in text, (page, outside)


def test_results_page_has_a_section_per_bench_case() -> None:
    text = (DOCS / "results" / "bench.md").read_text(encoding="utf-8")
    for case in bench.CASES:
        assert f"<!-- bench:{case} -->" in text and f"<!-- /bench:{case} -->" in text
        assert f"## {case}\n\nMeasured " in text
    assert bench.RESULTS_PATH == DOCS / "results" / "bench.md"
    assert chaos.RESULTS_PATH == DOCS / "results" / "chaos.md"


def _machine() -> dict[str, object]:
    return {"cpu_count": 2, "machine": "x86_64", "python": "3.11.7", "date_utc": "2026-12-03T09:00:00Z",
            "stacksync_commit": "0123456789abcdef", "stacksync_tree_modified": False,
            "load_average_1_5_15": [1.0, 2.0, 3.0],
            "tools": {"pip": "26.3", "pip-tools": "7.6.2", "uv": "uv 0.13.9 (x86_64-unknown-linux-gnu)"}}


def test_bench_rewrites_only_the_sections_of_the_cases_it_ran() -> None:
    rows = [Row("noop", "stacksync", samples=[0.1, 0.2, 0.3], goal=Goal("<= 0.3 s", max_s=0.3)),
            Row("compile (warm)", "stacksync (uv)", samples=[1.0]),
            Row("compile (cold)", "stacksync (uv)", samples=[2.0])]
    bench.judge(rows)
    opts = BenchOptions(runs=3, cases=("noop", "compile"))
    sections = bench.results_sections(rows, _machine(), opts, ["--case", "noop", "--case", "compile"])
    assert set(sections) == {"noop", "compile"}
    assert ("Measured 2026-12-03T09:00:00Z with `nox -s bench -- --case noop --case compile` (3 run(s) each), "
            "2 cores x86_64, Python 3.11.7, pip 26.3, pip-tools 7.6.2, uv 0.13.9, load average 1.0 / 2.0 / 3.0, "
            "stacksync byte-compiled as a wheel install leaves it, at 0123456.") in sections["noop"]
    assert "compile (warm)" in sections["compile"] and "compile (cold)" in sections["compile"]
    assert "| noop | stacksync | 0.200 |" in sections["noop"]

    first = bench.update_results("", sections)
    assert first.startswith(bench.RESULTS_HEADER)
    assert first.index("<!-- bench:noop -->") < first.index("<!-- bench:compile -->")
    kept = first.replace("<!-- /bench:compile -->", "<!-- /bench:compile -->\n\n<!-- bench:verify -->\nold verify\n"
                         "<!-- /bench:verify -->")
    noop_only = {"noop": sections["noop"].replace("0.200", "9.999")}
    second = bench.update_results(kept, noop_only)
    assert "9.999" in second and "old verify" in second and "compile (warm)" in second
    assert second.count("<!-- bench:noop -->") == 1
    assert bench.update_results(second, noop_only) == second


def test_bench_results_options() -> None:
    assert bench.parse_args([]).results_path == bench.RESULTS_PATH
    assert bench.parse_args(["--results", "r.md"]).results_path == Path("r.md")
    assert bench.parse_args(["--no-results"]).results_path is None


def test_chaos_results_page() -> None:
    data = {"kill_points": [{"point": "before-base", "what": "after fetch", "killed": True, "converged": True,
                             "left": ["journal stacksync-journal.json: phase base"]}],
            "fuzz": [{"kind": "lock", "result": "clear error", "changed": False}], "cli": []}
    page = chaos.results_page(data, when="2026-12-03 09:00 UTC", seconds=101.6, passed=True, commit="0123456",
                              pytest_args=["-x"], machine="2 cores x86_64")
    assert page.startswith("# Fault suite results\n")
    assert ("Measured 2026-12-03 09:00 UTC with `nox -s chaos -- -x`: passed in 102 s, 2 cores x86_64, "
            "at 0123456.") in page
    assert chaos.table(data) in page
    assert "| before-base | after fetch | journal stacksync-journal.json | yes |" in page


def test_chaos_table_counts_landed_kills_and_every_hostile_input() -> None:
    data = {"kill_points": [], "fuzz": [{"kind": "lock", "result": "clear error", "changed": False}] * 3,
            "hostile": [{"kind": "local state", "result": "clear error", "changed": False}] * 2,
            "cli": [{"input": "x", "ok": True, "traceback": False, "changed": False}],
            "random_requested": 2, "sync_seconds": 20.0,
            "random_kills": [{"how": "SIGTERM", "killed": True, "converged": True, "rc": 143, "cost_s": {"copy": 1.0}},
                             {"how": "SIGINT", "killed": False, "converged": True, "rc": 0, "cost_s": {"copy": 3.0}},
                             {"how": "SIGINT", "killed": True, "converged": True, "rc": 130, "cost_s": {"copy": 2.0}}]}
    counts = chaos.summary(data)
    assert (counts["hostile"], counts["random_kills"], counts["random_killed"], counts["random_missed"]) == (6, 3, 2, 1)
    text = chaos.table(data)
    assert "| ... landed before the sync ended (asked for: 2) | 2 |" in text
    assert "| SIGINT | pip-tools | 2 | 1 | 2 | 0, 130 |" in text
    assert "| copy | 2.0 | 3.0 |" in text


def test_each_finding_of_issue_20_names_tests_that_exist() -> None:
    page = (DOCS / "crash-consistency.md").read_text(encoding="utf-8")
    table = page[page.index("## Issue 20's findings"):]
    names = set(re.findall(r"\b(test_[a-z0-9_]+)\b", table)) - {p.stem for p in (ROOT / "tests").glob("test_*.py")}
    sources = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").glob("test_*.py"))
    assert len(names) > 40
    assert not [n for n in sorted(names) if f"def {n}(" not in sources]
