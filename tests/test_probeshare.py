"""Probes that share one target interpreter, and facts reused within one run (issue 21)."""

from __future__ import annotations

import json
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


def _site(venv: Path) -> Path:
    return venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"


def test_a_change_made_while_the_probe_ran_is_not_reused(make_venv: Callable[..., Path]) -> None:
    """The document is kept with the target's state read before the probe process started: what its
    own smoke imports change (a new distribution; a file renamed into an existing dist-info folder,
    which moves only that folder's mtime) makes the next question start a probe again."""
    venv = make_venv("changing")
    python = venv / "bin" / "python"
    site = _site(venv)
    pip_info = next(site.glob("pip-*.dist-info"))
    (site / "adds_dist.py").write_text(f"import os\nos.mkdir({str(site / 'added-1.0.dist-info')!r})\n")
    (site / "touches_info.py").write_text(
        f"import os\nopen({str(pip_info / 'x.tmp')!r}, 'w').close()\n"
        f"os.replace({str(pip_info / 'x.tmp')!r}, {str(pip_info / 'direct_url.json')!r})\n")
    before = len(runner.history)
    with probeshare.shared():
        for module in ("adds_dist", "touches_info"):
            probeshare.run_probes(python, ["env", "smoke"], module)
            probe(python)  # the files changed after the env document was read: asked again
            probe(python)  # nothing changed since that probe: reused
        # (the second smoke probe took the kept env document along: nothing had changed since it)
        assert probe_runs(before) == ["env+smoke", "env", "smoke", "env"]


def test_the_same_document_gives_the_same_snapshot(make_venv: Callable[..., Path]) -> None:
    """One probe's document reused within a run (smoke imports' probe, then verify's) is turned into a
    Snapshot once; a document with the same content that is another object is read again, equal."""
    import dataclasses

    from stacksync.env.environment import Installed, snapshot_from_json

    venv = make_venv("same")
    python = venv / "bin" / "python"
    with probeshare.shared():
        doc = probeshare.run_probes(python, ["env"])["env"]
        first = snapshot_from_json(python, doc)
        assert probe(python) is first  # the kept document: the kept Snapshot
    again = snapshot_from_json(python, json.loads(json.dumps(doc)))
    assert again is not first and again == first
    # the fast construction of each distribution equals the dataclass's own, field for field
    for name, d in first.distributions.items():
        built = Installed(**{f.name: getattr(d, f.name) for f in dataclasses.fields(Installed)})
        assert built == d and hash(built) == hash(d) and vars(built) == vars(d) and name == d.name
