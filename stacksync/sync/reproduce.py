"""``nox -s reproduce``: prove that a committed lock rebuilds, from nothing, into its exact twin.

nox owns the fresh venv; this module runs the same phases ``invoke sync`` runs (:func:`stacksync.sync.run.run`,
no second install path) into it, then asserts what CI promises: the venv's freeze equals the lock
(exact versions, nothing extra, nothing missing), ``pip check`` is clean and the smoke imports pass.
It writes a JSON report and a short human summary under ``reports/``.

Profiles that need hardware this machine lacks (a CUDA profile where no NVIDIA driver loads) are
skipped with the reason unless forced: :func:`hardware_skip_reason` decides from doctor's host facts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stacksync.backends.backend import get_backend, resolve_name
from stacksync.core import defaults, runner
from stacksync.core.errors import StacksyncError
from stacksync.core.fs import atomic_write_text
from stacksync.core.redact import redact
from stacksync.env.environment import Snapshot, probe
from stacksync.env.freeze import freeze
from stacksync.lock import profile as profile_mod
from stacksync.lock.lockfile import file_sha256
from stacksync.sync.run import run as run_sync
from stacksync.sync.state import Options

__all__ = ["ReproduceError", "Result", "hardware_skip_reason", "parse_posargs", "reproduce", "selected_profiles"]


class ReproduceError(StacksyncError):
    """The fresh venv is not the lock's twin, ``pip check`` complains, or a smoke import fails."""

    exit_code = 1


@dataclass
class Result:
    """What one reproduce run proved, and where its report is."""

    profile: str
    verdict: str  # "twin" | "failed"
    freeze_sha256: str
    report: dict[str, Any]
    report_path: Path
    summary_path: Path
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Posargs:
    """``nox -s reproduce -- [--profile NAME ...] [--force] [--backend B]``."""

    profiles: tuple[str, ...] = ()
    force: bool = False
    backend: str | None = None
    #: a profile with variants: reproduce this variant's lock instead of the one this host's driver picks
    variant: str | None = None


def parse_posargs(posargs: Sequence[str]) -> Posargs:
    parser = argparse.ArgumentParser(prog="nox -s reproduce --", add_help=False, exit_on_error=False)
    parser.add_argument("--profile", action="append", default=[])
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--backend")
    parser.add_argument("--variant")
    try:
        ns, rest = parser.parse_known_args(list(posargs))
    except argparse.ArgumentError as exc:
        raise StacksyncError(f"nox -s reproduce: {exc} "
                             "(fix: -- --profile NAME [--force] [--backend B] [--variant V])") from None
    if rest:
        raise StacksyncError(f"nox -s reproduce: unknown argument(s) {' '.join(rest)} "
                             "(fix: -- --profile NAME [--force] [--backend B] [--variant V])")
    return Posargs(tuple(ns.profile), bool(ns.force), ns.backend, ns.variant)


def selected_profiles(locks_dir: Path | None = None) -> list[tuple[str, str]]:
    """``(python, profile)`` for every profile with a lock: what the session is parametrized over.
    A profile without ``python`` runs on the Python that runs nox."""
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    out = []
    for name in profile_mod.available(locks_dir):
        folder = (locks_dir or defaults.locks_dir()) / name
        try:
            prof = profile_mod.load(name, locks_dir)
        except StacksyncError:
            if (folder / defaults.LOCK_TXT).is_file():
                out.append((here, name))  # the session reports the error when it runs
            continue
        # a profile with variants has one lock per variant (locks/<profile>/<variant>/requirements.txt)
        if any(p.lock_path.is_file() for p in ([prof.for_variant(v) for v in prof.variants] or [prof])):
            out.append((prof.python or here, name))
    return out


def hardware_skip_reason(prof: profile_mod.Profile, *, python: str | Path = sys.executable,
                         variant: str | None = None) -> str | None:
    """Why this machine cannot prove ``prof`` (``None`` when it can). A profile with ``cuda`` needs a
    driver that loads and runs that CUDA version; the facts come from doctor's probe of the host. A
    profile with variants is proved as the variant this host's driver picks (``variant``: that one),
    so only a host no variant fits is skipped."""
    from stacksync.cuda import cudalibs
    from stacksync.cuda.facts import probe_facts

    if prof.variants:
        from stacksync.cuda.variant import NoVariant, for_python

        try:
            prof, _ = for_python(prof, python, variant)
        except NoVariant as exc:
            return str(exc)
    if prof.cuda is None:
        return None
    driver = probe_facts(python).driver
    if not driver.found:
        return (f"profile {prof.name!r} needs CUDA {prof.cuda} and an NVIDIA driver; none loads here "
                "(libcuda.so.1 cannot be loaded); run it on a GPU machine, or force it with "
                "`nox -s reproduce -- --profile " + prof.name + " --force`")
    if driver.cuda and cudalibs.driver_runs(driver.cuda, prof.cuda) == "no":
        return (f"profile {prof.name!r} needs CUDA {prof.cuda}; this driver runs CUDA <= {driver.cuda}; "
                "update the driver, or force it with --force")
    return None


def _freeze_text(snapshot: Snapshot) -> str:
    """The venv's freeze without the header (no date, no path) and without pip / setuptools / wheel
    (they come with the venv backend, not the lock): what two runs must agree on byte for byte."""
    return "\n".join(freeze(snapshot).lines) + "\n"


def reproduce(profile_name: str, venv: Path, *, venv_backend: str, backend: str | None = None,
              report_dir: Path | None = None, locks_dir: Path | None = None, force: bool = False,
              variant: str | None = None) -> Result:
    """Sync the fresh ``venv`` to ``profile_name``'s lock with :func:`stacksync.sync.run.run`, then prove the
    twin: freeze == lock, ``pip check`` clean, smoke imports pass. Always writes the report; raises
    :class:`ReproduceError` (listing every difference) when the proof fails."""
    prof = profile_mod.load(profile_name, locks_dir)
    backend_name = resolve_name(backend, prof.backend)
    installer = get_backend(backend_name)
    python = runner.python_in(venv)
    installer.ensure_installer(python)
    report_dir = report_dir or defaults.reports_dir()
    receipt_path = report_dir / f"reproduce-{prof.name}.receipt.json"
    problems: list[str] = []
    try:
        run_sync(Options(profile=prof.name, venv=str(venv), yes=True, force=force, report=str(receipt_path),
                         backend=backend_name, locks_dir=locks_dir, variant=variant))
    except StacksyncError as exc:
        problems = str(exc).splitlines()
    snapshot = probe(python)
    # The installer's own dependency check (pip check, or uv pip check: a uv venv has no pip), beside
    # the one verify computed from the probe.
    check = installer.check(python)
    if check.returncode != 0:
        label = "pip check" if installer.name == "pip-tools" else f"{installer.name} pip check"
        problems += [f"{label}: {line}" for line in (check.stdout + check.stderr).strip().splitlines()]
    frozen = _freeze_text(snapshot)
    freeze_sha = hashlib.sha256(frozen.encode()).hexdigest()
    # sync writes its receipt whether it succeeded or failed: the one source of the lock and timings.
    receipt = json.loads(receipt_path.read_text(encoding="utf-8")) if receipt_path.is_file() else {}
    verdict = "twin" if not problems else "failed"
    report = {
        "stacksync_reproduce": 1,
        "profile": prof.name,
        # a profile with variants: the one the sync chose here and why (from its receipt)
        "variant": receipt.get("variant"),
        "verdict": verdict,
        "problems": problems,
        "venv": {"path": str(venv), "backend": venv_backend, "python": snapshot.version},
        "installers": {"backend": backend_name, **installer.versions(),
                       "target_pip": snapshot.pip_version},
        "lock": receipt.get("lock", {"path": str(prof.lock_path),
                                          "sha256": file_sha256(prof.lock_path) if prof.lock_path.is_file() else None}),
        "packages": len(snapshot.distributions),
        "freeze_sha256": freeze_sha,
        # the file-level digest (every installed file's hash, stacksync.env.manifest) from the sync receipt
        "manifest_sha256": (receipt.get("manifest") or {}).get("digest"),
        "timings_s": receipt.get("timings_s", {}),
        "twin": receipt.get("twin"),
        "sync_receipt": str(receipt_path),
    }
    report_dir.mkdir(parents=True, exist_ok=True)
    report_path = report_dir / f"reproduce-{prof.name}.json"
    atomic_write_text(report_path, redact(json.dumps(report, indent=2, sort_keys=True)) + "\n")
    atomic_write_text(report_dir / f"reproduce-{prof.name}.freeze.txt", frozen)
    summary_path = report_dir / f"reproduce-{prof.name}.txt"
    atomic_write_text(summary_path, redact(summary(report)) + "\n")
    result = Result(prof.name, verdict, freeze_sha, report, report_path, summary_path, problems)
    if problems:
        raise ReproduceError("\n".join([f"reproduce {prof.name}: the fresh venv is NOT the lock's twin "
                                        f"(report: {report_path})", *problems]))
    return result


def summary(report: dict[str, Any]) -> str:
    """The short human summary: phases, times, package counts, verdict."""
    timings = report.get("timings_s") or {}
    phases = ", ".join(f"{k} {v:.1f}s" for k, v in timings.items())
    lock = report.get("lock") or {}
    lines = [
        f"reproduce {report['profile']}: {'TWIN' if report['verdict'] == 'twin' else 'FAILED'}",
        *([f"  variant: {report['variant']['name']} ({report['variant']['why']})"] if report.get("variant") else []),
        f"  venv: {report['venv']['path']} ({report['venv']['backend']}, Python {report['venv']['python']})",
        f"  lock: {lock.get('path')} sha256 {str(lock.get('sha256'))[:16]}...",
        "  installers: " + ", ".join(f"{k} {v}" for k, v in report["installers"].items() if v),
        f"  packages in the venv: {report['packages']}; freeze sha256 {report['freeze_sha256'][:16]}...",
        f"  manifest (every installed file): {report.get('manifest_sha256') or '-'}",
        f"  phases: {phases or '-'}",
    ]
    lines += [f"  problem: {p}" for p in report["problems"]]
    return "\n".join(lines)


