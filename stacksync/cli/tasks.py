"""stacksync's tasks: thin wrappers that parse options and call stacksync, collected in :data:`ns`.

They run as ``stacksync TASK`` (stacksync.cli.program) or as ``invoke TASK`` in a project whose tasks.py
is ``from stacksync.tasks import ns``. ``--list`` shows them; ``--help TASK`` shows each option. Errors
become one line on stderr and a non-zero exit (stacksync.cli.edge).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from invoke.collection import Collection
from invoke.context import Context

from stacksync.cli import syncing
from stacksync.cli.edge import catch_early_interrupts, one_line_errors
from stacksync.cli.flags import (
    task,  # explicit short flags: -p --profile, -y --yes, -n --dry-run, -v --verbose, -o --out
)
from stacksync.cli.syncing import SYNC_HELP as _SYNC_HELP
from stacksync.cli.syncing import VARIANT_HELP as _VARIANT_HELP
from stacksync.cli.syncing import run_steps as _sync
from stacksync.core import console

if TYPE_CHECKING:
    from stacksync.lock.profile import Profile

catch_early_interrupts()  # Ctrl-C while invoke loads a task: one line and exit 130, not a silent exit 1


@task(help={
    "python": "interpreter or venv to capture (default: the python running invoke); with --from, the live "
              "environment whose versions repair the lines FILE cannot say",
    "from": "a baseline file to turn into --profile NAME: pip freeze, pip list (table or json), uv pip list, "
            "conda list (or --export / --explicit), conda env export YAML, a requirements file",
    "python-version": "with --from: the baseline's Python X.Y (default: what FILE says, else assumed and noted)",
    "platform": "with --from: the baseline's sys.platform (linux, win32, darwin; default: what FILE says)",
    "out": "write to this file instead of stdout",
    "profile": "write locks/<profile>/requirements.in and, when the profile is new, a commented stack.toml",
    "all": "keep pip, setuptools and wheel",
    "manifest": "write the file-level JSON manifest (versions, wheel tags, every file's hash, digest) to FILE",
    "verbose": "show every command started",
})
def freeze(c: Context, python: str = "", from_: str = "", out: str = "", profile: str = "", all: bool = False,
           manifest: str = "", verbose: bool = False, python_version: str = "", platform: str = "") -> None:
    """Capture an environment (or turn a baseline FILE into a profile) as sorted name==version lines."""
    from stacksync.core.errors import StacksyncError
    from stacksync.env.baseline import from_file, write_profile
    from stacksync.env.freeze import write_freeze

    with one_line_errors(verbose):
        if manifest:
            from stacksync.env.manifest import write

            doc, scan = write(python or sys.executable, manifest)
            console.info(f"wrote {manifest} ({len(scan.dists)} distributions, {scan.files:,} files, "
                         f"{doc['digest']})")
            if not out and not profile:
                return
        if from_:
            if not profile:
                raise StacksyncError(f"{from_}: --from needs --profile NAME (fix: invoke freeze --from {from_} "
                                     "--profile NAME)")
            proposal = from_file(from_, profile, python=python or None, include_installers=all,
                                 python_version=python_version or None, platform=platform or None)
            req, toml = write_profile(proposal, profile)
            console.info(f"{from_}: read as {proposal.format}; Python {proposal.python} ({proposal.python_why}); "
                         f"platform {proposal.platform} ({proposal.platform_why})")
            for warning in proposal.warnings:
                console.warn(warning)
            console.info(f"wrote {req} ({proposal.pinned} pinned, {proposal.as_written} as written, "
                         f"{len(proposal.repaired)} repaired from "
                         f"@ file://, {len(proposal.unknown)} version unknown, {len(proposal.vcs)} VCS at a commit, "
                         f"{len(proposal.left_out)} left out, {len(proposal.apart)} not PyPI packages)"
                         + (f" and {toml}" if toml else
                                                                   " (stack.toml kept as it was)")
                         + f"; review, then: invoke compile --profile {profile}")
            return
        text, frozen, written = write_freeze(python or sys.executable, out=out or None,
                                             profile_name=profile or None, include_installers=all)
        for warning in frozen.warnings:
            console.warn(warning)
        if written:
            console.info(f"wrote {written} ({len(frozen.lines)} packages)")
        else:
            sys.stdout.write(text)


@task(positional=["a", "b"], help={
    "a": "lock/freeze file, python interpreter, venv folder or profile name",
    "b": "the other side",
    "json": "print JSON instead of a table",
    "all": "count pip, setuptools and wheel differences too",
    "files": "compare file by file (venvs, pythons or manifests from invoke freeze --manifest)",
    "variant": "a profile with [variants]: compare this variant's lock (default: the one the driver picks for "
               "the interpreter on the other side, else for this host)",
    "verbose": "show every command started",
})
def diff(c: Context, a: str, b: str, json_: bool = False, all: bool = False, files: bool = False,
         variant: str = "", verbose: bool = False) -> None:
    """Compare two environments: exit 0 identical, 1 different, 2 bad input."""
    from stacksync.env.diff import diff_sides, render

    if files:
        from stacksync.env.manifest import diff_files, render_lines

        with one_line_errors(verbose):
            found = diff_files(a, b, include_installers=all)
            if json_:
                print(json.dumps(found.to_json(a, b), indent=2))
            else:
                console.out.print("\n".join(render_lines(found, a, b)), markup=False, highlight=False)
        if not found.identical:
            raise SystemExit(1)
        return
    with one_line_errors(verbose):
        picked: list[str] = []

        def pick(prof: Profile, other: Path | None) -> Profile:
            from stacksync.cuda.variant import for_python
            from stacksync.env.environment import find_python

            chosen, choice = for_python(prof, find_python(other) if other else sys.executable, variant or None)
            console.info(f"variant {choice.name} of profile {prof.name!r}: {choice.why}")
            picked.append(choice.name)
            return chosen

        _, _, result = diff_sides(a, b, include_installers=all, pick=pick)
        if variant and not picked:
            from stacksync.core.errors import StacksyncError

            raise StacksyncError(f"--variant {variant}: neither {a} nor {b} is a profile with [variants] "
                                 f"(fix: drop --variant)")
        if json_:
            print(json.dumps(result.to_json(a, b), indent=2))
        else:
            console.out.print(render(result, a, b))
    if not result.identical:
        raise SystemExit(1)


@task(help={
    "python": "interpreter to check (default: the project's .venv, else the python running invoke)",
    "venv": "venv folder to check",
    "profile": "also check this profile's lock against the host before installing",
    "variant": "with --profile: check this variant's lock (default: the one the host's driver picks)",
    "json": "print JSON instead of a list",
    "verbose": "show every command started",
})
def doctor(c: Context, python: str = "", venv: str = "", profile: str = "", variant: str = "", json_: bool = False,
           verbose: bool = False) -> None:
    """Diagnose the CUDA / torch / build side of a target: exit 1 when any finding is an error."""
    from stacksync.cuda.doctor import diagnose, render

    with one_line_errors(verbose):
        report = diagnose(python=python or None, venv=venv or None, profile=profile or None,
                          variant=variant or None)
        if json_:
            print(json.dumps(report.to_json(), indent=2))
        else:
            console.out.print(render(report))
    if report.errors:
        raise SystemExit(1)


@task(name="compile", iterable=["upgrade_package"], help={
    "profile": "profile to compile (default: STACKSYNC_PROFILE, else demo)",
    "all": "compile every profile in locks/",
    "upgrade": "ignore the committed pins and pick the newest allowed versions",
    "upgrade-package": "=PACKAGE: upgrade only this package (repeat the option for more)",
    "check": "do not write: exit 1 with a diff when a committed lock is stale, 0 when fresh",
    "backend": "pip-tools (default), uv or auto",
    "provided-from": "a profile with provided = [...]: read their versions from this python (the image's) "
                     "into locks/<profile>/[<variant>/]provided.txt and resolve the lock against them",
    "verbose": "show every command started",
})
def compile_(c: Context, profile: str = "", all: bool = False, upgrade: bool = False,
             upgrade_package: list[str] | None = None, check: bool = False, backend: str = "",
             provided_from: str = "", verbose: bool = False) -> None:
    """Write locks/<profile>/requirements.txt (+ deferred.txt): every pin hashed from the index."""
    from stacksync.compile.compiler import compile_profiles, report

    with one_line_errors(verbose):
        results = compile_profiles([profile] if profile else [], all_profiles=all, backend=backend or None,
                                   upgrade=upgrade, upgrade_packages=upgrade_package or [], check=check,
                                   provided_from=provided_from or None)
        stale = report(results, check=check)
    if stale:
        raise SystemExit(1)


@task(help={
    "format": "pylock (PEP 751 pylock.toml); the only format so far",
    "out": "write to this file (default: stdout)",
    "profile": "profile whose hashed lock to export (default: STACKSYNC_PROFILE, else demo)",
    "variant": "a profile with [variants]: export this variant's lock (one pylock.toml per variant)",
    "verbose": "show every command started",
})
def export(c: Context, format: str = "pylock", out: str = "", profile: str = "", variant: str = "",
           verbose: bool = False) -> None:
    """Export the profile's hashed lock (and deferred pins) as a PEP 751 pylock.toml; URLs from the index."""
    from stacksync.build.export import export as export_pylock
    from stacksync.core import defaults
    from stacksync.core.errors import StacksyncError

    with one_line_errors(verbose):
        if format not in ("pylock", "pylock.toml"):
            raise StacksyncError(f"export: unknown format {format!r} (fix: --format pylock)")
        text, count = export_pylock(profile or defaults.profile_name(), out=out or None, variant=variant or None)
        if out:
            console.info(f"wrote {out} ({count} packages)")
        else:
            sys.stdout.write(text)


# --- sync: `invoke sync` runs plan, fetch, install-base, sync-rest, install-deferred, verify in order ------
# (their shared body is stacksync.cli.syncing)

@task(iterable=list(syncing.ITERABLE), help={**_SYNC_HELP,
            "rebuild": "=NAME: build this deferred package again from its sdist, even when the plan keeps it "
                       "(repeat for more)",
            "no-wait": "another node is building a deferred package's key: fail at once instead of waiting for it",
            "wheelhouse": "where deferred wheels are kept by build key (default: STACKSYNC_WHEELHOUSE, "
                          "stack.toml wheelhouse, .stacksync-cache/wheelhouse)",
            "lock": "sync to this lock instead of the profile's requirements.txt (a PEP 751 pylock.toml, or a "
                    "hashed requirements file)",
            "variant": _VARIANT_HELP,
            "json": "with --dry-run: print the plan as JSON on stdout (docs/plan-json.md)",
            "quiet": "errors and the final verdict line only (no plan, progress, phase or warning lines)"})
def sync(c: Context, profile: str = "", python: str = "", venv: str = "", dry_run: bool = False, yes: bool = False,
         force: bool = False, wait: bool = False, report: str = "", backend: str = "", wheelhouse: str = "",
         lock: str = "", verbose: bool = False, accept_foreign_lock: bool = False, variant: str = "",
         json_: bool = False, quiet: bool = False, rebuild: list[str] | None = None, no_wait: bool = False) -> None:
    """Make the target the exact twin of the profile's lock, in phases; a second run does nothing."""
    syncing.sync(profile, python, venv, dry_run, yes, force, wait, report, backend, wheelhouse, lock, verbose,
                 accept_foreign_lock, variant, json_, quiet, rebuild, no_wait)

@task(help={**_SYNC_HELP, "variant": _VARIANT_HELP,
            "json": "print the plan as JSON on stdout (docs/plan-json.md); messages stay on stderr"})
def plan(c: Context, profile: str = "", python: str = "", venv: str = "", dry_run: bool = False, yes: bool = False,
         force: bool = False, wait: bool = False, report: str = "", backend: str = "", verbose: bool = False,
         accept_foreign_lock: bool = False, variant: str = "", json_: bool = False) -> None:
    """Print what a sync would install, upgrade, downgrade, rebuild or remove, per phase."""
    _sync(("plan",), profile, python, venv, dry_run, yes, force, wait, report, backend, verbose,
          accept_foreign_lock, variant=variant, json_=json_)


@task(help={**_SYNC_HELP, "variant": _VARIANT_HELP})
def fetch(c: Context, profile: str = "", python: str = "", venv: str = "", dry_run: bool = False, yes: bool = False,
          force: bool = False, wait: bool = False, report: str = "", backend: str = "", verbose: bool = False,
          accept_foreign_lock: bool = False, variant: str = "") -> None:
    """Download and hash-verify every artifact the plan needs into the cache; change nothing."""
    _sync(("plan", "fetch"), profile, python, venv, dry_run, yes, force, wait, report, backend, verbose,
          accept_foreign_lock, variant=variant)


@task(help={**_SYNC_HELP, "variant": _VARIANT_HELP})
def install_base(c: Context, profile: str = "", python: str = "", venv: str = "", dry_run: bool = False,
                 yes: bool = False, force: bool = False, wait: bool = False, report: str = "", backend: str = "",
                 verbose: bool = False, accept_foreign_lock: bool = False, variant: str = "") -> None:
    """Install the base packages with their locked dependencies (binary only, hashed); smoke-import them."""
    _sync(("plan", "fetch", "base"), profile, python, venv, dry_run, yes, force, wait, report, backend, verbose,
          accept_foreign_lock, variant=variant)


@task(help={**_SYNC_HELP, "variant": _VARIANT_HELP})
def sync_rest(c: Context, profile: str = "", python: str = "", venv: str = "", dry_run: bool = False,
              yes: bool = False, force: bool = False, wait: bool = False, report: str = "", backend: str = "",
              verbose: bool = False, accept_foreign_lock: bool = False, variant: str = "") -> None:
    """pip-sync the rest of the lock (a hashed install when nothing is removed), keeping built deferred packages."""
    _sync(("plan", "fetch", "rest"), profile, python, venv, dry_run, yes, force, wait, report, backend, verbose,
          accept_foreign_lock, variant=variant)


@task(help={**_SYNC_HELP, "variant": _VARIANT_HELP})
def install_deferred(c: Context, profile: str = "", python: str = "", venv: str = "", dry_run: bool = False,
                     yes: bool = False, force: bool = False, wait: bool = False, report: str = "",
                     backend: str = "", verbose: bool = False, accept_foreign_lock: bool = False,
                     variant: str = "") -> None:
    """Build the deferred packages (e.g. flash-attn) that are missing or built against other base versions."""
    _sync(("plan", "fetch", "deferred"), profile, python, venv, dry_run, yes, force, wait, report, backend,
          verbose, accept_foreign_lock, variant=variant)


@task(help={**_SYNC_HELP, "variant": _VARIANT_HELP})
def install_vcs(c: Context, profile: str = "", python: str = "", venv: str = "", dry_run: bool = False,
                yes: bool = False, force: bool = False, wait: bool = False, report: str = "",
                backend: str = "", verbose: bool = False, accept_foreign_lock: bool = False, variant: str = "") -> None:
    """Install the VCS pins of vcs.txt at their locked commit (no hash can cover a checkout)."""
    _sync(("plan", "fetch", "vcs"), profile, python, venv, dry_run, yes, force, wait, report, backend,
          verbose, accept_foreign_lock, variant=variant)


@task(help={**_SYNC_HELP, "files": "instead: check every installed file against its RECORD sha256 (no lock "
                                   "needed; with --profile also against the locked wheels in the sync cache); "
                                   "modified, missing, unrecorded files and other builds per package; exit 1 on any",
            "quiet": "errors and the final verdict line only",
            "variant": "a profile with [variants]: check against this variant's lock (default: the one the "
                       "target's driver picks, as sync does)"})
def verify(c: Context, profile: str = "", python: str = "", venv: str = "", dry_run: bool = False,
           yes: bool = False, force: bool = False, wait: bool = False, report: str = "", backend: str = "",
           files: bool = False, verbose: bool = False, accept_foreign_lock: bool = False, quiet: bool = False,
           variant: str = "") -> None:
    """Check the target: dependencies, twin of the lock, smoke imports; one summary line; exit 1 if not."""
    if files:
        from stacksync.env.verify_files import verify_files

        with one_line_errors(verbose):
            ok = verify_files(python or None, venv or None, report=report or None, profile=profile or None)
        if not ok:
            raise SystemExit(1)
        return
    _sync(("plan", "verify"), profile, python, venv, dry_run, yes, force, wait, report, backend, verbose,
          accept_foreign_lock, quiet=quiet, variant=variant)


# --- build once, install everywhere: the wheelhouse and the team index (stacksync.build.wheelhouse / publish) ---

@task(name="wheelhouse", iterable=["key"], help={
    "wheelhouse": "the folder (default: STACKSYNC_WHEELHOUSE, the profile's stack.toml wheelhouse, "
                  ".stacksync-cache/wheelhouse)",
    "profile": "read the profile's wheelhouse setting; with --prune: only wheels built for this profile",
    "json": "print JSON instead of a table",
    "prune": "remove the wheels matching --older-than / --key / --profile (all the filters given)",
    "older-than": "with --prune: built more than this many days ago",
    "key": "with --prune: a build key (or its first characters); repeat for more",
    "dry-run": "with --prune: show what would be removed",
    "verbose": "show every command started",
})
def wheelhouse_(c: Context, wheelhouse: str = "", profile: str = "", json_: bool = False, prune: bool = False,
                older_than: str = "", key: list[str] | None = None, dry_run: bool = False,
                verbose: bool = False) -> None:
    """List the wheelhouse (key, package, built for, size, built when / where / from), or prune it."""
    from stacksync.build import wheelhouse as wh
    from stacksync.lock.profile import load

    with one_line_errors(verbose):
        prof = load(profile) if profile else None
        root = wh.resolve_dir(wheelhouse or None, prof.wheelhouse if prof else None, prof.folder if prof else None)
        if prune:
            removed = wh.prune(root, older_than_days=wh.parse_days(older_than), keys=key or [],
                               profile=prof.name if prof else None, dry_run=dry_run)
            for e in removed:
                console.info(f"{'would remove' if dry_run else 'removed'} {e.short} {e.wheel.name}")
            console.info(f"{len(removed)} wheel(s) {'to remove' if dry_run else 'removed'} from {root}")
            return
        found = wh.entries(root)
        if json_:
            print(json.dumps({"wheelhouse": str(root), "wheels": [e.to_json() for e in found]}, indent=2))
        else:
            console.out.print(wh.render(found, root), markup=False, end="")


@task(help={
    "profile": "profile whose deferred wheels to upload and whose team_index to upload to",
    "to": "upload URL (default: team_upload_url, else team_index without /simple); ${VAR} credentials",
    "wheelhouse": "the wheelhouse folder (default as for invoke wheelhouse)",
    "dry-run": "list what would be uploaded",
    "verbose": "show every command started",
})
def publish(c: Context, profile: str = "", to: str = "", wheelhouse: str = "", dry_run: bool = False,
            verbose: bool = False) -> None:
    """Upload the wheelhouse's deferred wheels to the team index (twine), skipping those it has."""
    from stacksync.build.publish import publish as run_publish
    from stacksync.core import defaults

    with one_line_errors(verbose):
        result = run_publish(profile or defaults.profile_name(), to=to or None, wheelhouse_dir=wheelhouse or None,
                             dry_run=dry_run)
        for e in result.uploaded:
            console.info(f"{'would upload' if dry_run else 'uploaded'} {e.wheel.name} (key {e.short})")
        for e in result.already_there:
            console.info(f"already on the team index: {e.wheel.name}")
        console.info(f"publish: {len(result.uploaded)} {'to upload' if dry_run else 'uploaded'}, "
                     f"{len(result.already_there)} already there ({result.url})")



@task(name="fleet-report", positional=["inputs"], help={
    "inputs": "receipts (sync --report) and manifests (freeze --manifest) of the nodes: files, a folder or a "
              "quoted glob, comma-separated; the first is the reference",
    "json": "print JSON instead of the table",
    "verbose": "show every command started",
})
def fleet_report(c: Context, inputs: str, json_: bool = False, verbose: bool = False) -> None:
    """One table of N nodes' receipts / manifests; exit 0 all alike, 1 some differ from the first, 2 bad input."""
    from stacksync.env import fleet

    with one_line_errors(verbose):
        report = fleet.compare_fleet([fleet.load_node(p) for p in fleet.expand_inputs([inputs])])
        if json_:
            print(json.dumps(report.to_json(), indent=2))
        else:
            console.out.print(fleet.render(report), markup=False, highlight=False, end="")
    if not report.identical:
        raise SystemExit(1)


ns = Collection(freeze, diff, doctor, compile_, export, sync, plan, fetch, install_base, sync_rest, install_deferred,
                install_vcs, verify, wheelhouse_, publish, fleet_report)
