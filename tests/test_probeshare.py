"""Probes that share one target interpreter, and facts reused within one run (issue 21)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from stacksync.core import runner
from stacksync.env import probeshare
from stacksync.env.environment import probe


def probe_runs(before: int) -> list[str]:
    """The probe commands started since ``runner.history`` had ``before`` entries."""
    return [argv[i + 1] for argv in runner.history[before:] for i, a in enumerate(argv) if a.endswith("probe.py")]


def test_facts_are_reused_in_a_run_until_the_target_changes(make_venv: Callable[..., Path]) -> None:
    venv = make_venv("shared")
    python = venv / "bin" / "python"
    before = len(runner.history)
    with probeshare.shared():
        docs = probeshare.run_probes(python, ["smoke", "env"], "json")
        assert docs["smoke"]["modules"][0]["ok"] and docs["env"]["probe"] == 1
        first = probe(python)  # reused: no process
        assert probe_runs(before) == ["env+smoke"] and "pip" in first.distributions
        # a change in site-packages (a new distribution): asked again
        (venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages" /
         "extra_pkg-1.0.dist-info").mkdir()
        probe(python)
        assert probe_runs(before) == ["env+smoke", "env"]
        probe(python)
        assert probe_runs(before) == ["env+smoke", "env"]
        # another process started (an install would be one): asked again, even with the files the same
        runner.run([sys.executable, "-c", "pass"])
        probe(python)
        assert probe_runs(before) == ["env+smoke", "env", "env"]
        # smoke imports are never reused here
        probeshare.run_probes(python, ["smoke"], "json")
        assert probe_runs(before)[-1] == "smoke"
    probe(python)
    probe(python)  # outside a run: every question is a process
    assert probe_runs(before)[-2:] == ["env", "env"]


def test_a_target_that_is_not_a_venv_is_always_asked(tmp_path: Path) -> None:
    """No ``pyvenv.cfg`` beside it: no state to key on, so nothing is ever reused for it."""
    (tmp_path / "bin").mkdir()
    assert probeshare.target_state(tmp_path / "bin" / "python") is None
    (tmp_path / "pyvenv.cfg").write_text("home = /usr/bin\n")
    assert probeshare.target_state(tmp_path / "bin" / "python") is not None
