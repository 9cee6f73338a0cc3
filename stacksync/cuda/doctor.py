"""``invoke doctor``: diagnose the CUDA / torch / build side of a target, before and after a sync.

Facts come from two probe commands run in the target interpreter: ``probe.py env`` (distributions,
markers; a :class:`~stacksync.env.environment.Snapshot`) and ``probe.py cuda`` (driver through
libcuda, nvcc, ninja, compiler, memory, glibc, CUDA libraries; :class:`Facts`). Everything else here
is pure: facts in, a list of :class:`~stacksync.cuda.finding.Finding` out, each with its fix.

- :mod:`stacksync.cuda.facts`: the facts (:func:`~stacksync.cuda.facts.probe_facts`) and the CUDA build
  a torch or a lock needs.
- :mod:`stacksync.cuda.checks`: the checks (host, target, build, pre-install), pure.
- here: :func:`diagnose` runs the probes (one process: ``probe.py env+cuda``) and all the checks;
  :func:`render` prints the findings.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.text import Text

from stacksync.core import defaults
from stacksync.core.errors import TargetError
from stacksync.core.redact import redact
from stacksync.cuda.checks import findings_for
from stacksync.cuda.facts import Facts, facts_from_json
from stacksync.cuda.finding import Finding, err, ok
from stacksync.cuda.variant import NoVariant, for_facts
from stacksync.env.environment import find_python, snapshot_from_json
from stacksync.env.probeshare import run_probes
from stacksync.lock import profile as profile_mod

__all__ = ["Report", "diagnose", "render"]


# ---------------------------------------------------------------------------------------- reporting


@dataclass
class Report:
    python: Path
    python_version: str
    profile: str | None
    findings: list[Finding]
    facts: Facts
    note: str = ""

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    def summary(self) -> str:
        ok = sum(f.level == "ok" for f in self.findings)
        return f"{len(self.errors)} errors, {len(self.warnings)} warnings, {ok} ok"

    def to_json(self) -> dict[str, Any]:
        return {
            "target": {"python": str(self.python), "version": self.python_version},
            "profile": self.profile,
            "note": self.note,
            "summary": {"errors": len(self.errors), "warnings": len(self.warnings),
                        "ok": sum(f.level == "ok" for f in self.findings)},
            "findings": [f.to_json() for f in self.findings],
            "facts": self.facts.raw,
        }


_STYLE = {"ok": ("ok", "green"), "warning": ("warning", "yellow"), "error": ("ERROR", "bold red")}


def render(report: Report) -> Group:
    """Findings as a list in check order (host, target, lock, build), each with its fix under it; ok
    findings too (they are the facts)."""
    lines: list[Text] = []
    head = f"doctor: {report.python} (Python {report.python_version})"
    if report.profile:
        head += f", profile {report.profile!r}"
    lines.append(Text(redact(head), style="bold"))
    if report.note:
        lines.append(Text(redact(report.note), style="dim"))
    for finding in report.findings:
        label, style = _STYLE[finding.level]
        line = Text()
        line.append(f"{label:>7} ", style=style)
        line.append(f"{finding.topic}: ", style="bold")
        line.append(redact(finding.message))
        lines.append(line)
        if finding.fix and finding.level != "ok":
            lines.append(Text(f"{'':>8}fix: {redact(finding.fix)}", style="cyan"))
    style = "bold red" if report.errors else ("yellow" if report.warnings else "green")
    lines.append(Text(report.summary(), style=style))
    return Group(*lines)


def _target(python: str | None, venv: str | None) -> tuple[Path, str]:
    if python and venv:
        raise TargetError("give --python or --venv, not both")
    if python or venv:
        return find_python(python or venv or ""), ""
    project = defaults.find_project_dir()
    default = project / ".venv" if project is not None else Path(".venv")
    if default.is_dir():
        return find_python(default), ""
    return Path(sys.executable), (f"no --python/--venv and no {default.absolute()}: checking the "
                                  "interpreter that runs stacksync")


def diagnose(python: str | None = None, venv: str | None = None, profile: str | None = None, *,
             import_torch: bool = False, locks_dir: Path | None = None, variant: str | None = None) -> Report:
    """Probe the target (``--python`` / ``--venv``, default the project's ``.venv``) and run every
    check; with ``profile``, check its lock against this host too (a profile with variants: the lock of
    the variant sync would pick, or ``variant``, reported as a ``variant`` finding)."""
    prof = profile_mod.load(profile, locks_dir) if profile else None
    exe, note = _target(python, venv)
    # one process answers both (probe.py env+cuda)
    docs = run_probes(exe, ["env", "cuda"], *(["--import-torch"] if import_torch else []))
    snapshot = snapshot_from_json(exe, docs["env"])
    facts = facts_from_json(docs["cuda"], source=f"probe.py cuda in {exe}")
    chosen: list[Finding] = []
    if prof is not None and prof.variants:
        try:
            prof, choice = for_facts(prof, facts, variant)
            chosen.append(ok("variant", f"{choice.name}: {choice.why}"))
        except NoVariant as exc:
            chosen.append(err("variant", str(exc).split(" (fix: ")[0], f"pass --variant, or add a variant "
                              f"to {prof.stack_toml}"))
    findings = chosen + findings_for(snapshot, facts, prof)
    name = f"{prof.name}/{prof.variant}" if prof and prof.variant else (prof.name if prof else None)
    return Report(snapshot.python, snapshot.version, name, findings, facts, note)
