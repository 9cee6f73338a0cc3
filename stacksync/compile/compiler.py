"""``invoke compile``: turn a profile's ``requirements.in`` into the hashed lock every install trusts.

Pipeline (plain functions, in order; the pure ones first, then :func:`compile_profile`):

1. :func:`resolver_inputs`: ``requirements.in`` with the deferred packages commented out (line numbers
   kept), plus one ``deferred-<name>.in`` per deferred package with its ``requires`` and
   ``build_requires`` from ``stack.toml`` (the sync installs them before building it, so they are locked
   and hashed like everything else).
2. :func:`deferred_pins`: each deferred package must be an ``==`` pin in ``requirements.in``; its
   hashes come from the index's simple API for exactly that version. Nothing is built or downloaded.
3. The backend resolves (``Backend.compile_lock``): for pip-tools, pip-compile without
   ``--generate-hashes``, then ``lockhashes.add_index_hashes`` reads every file's sha256 from the index:
   the same hashes pip-compile would compute by downloading every file.
4. :func:`render_lock` / :func:`render_deferred`: a header without dates, paths, or credentials; index
   lines only when ``emit_index_urls`` asks for them, credential-free.
   VCS pins at a commit (``name @ git+URL@sha``) are resolved with the rest (their dependencies are
   locked and hashed), then moved out of the hashed body into ``vcs.txt`` (:mod:`stacksync.lock.vcs`): no
   hash covers a checkout, and ``--require-hashes`` must hold for every line of ``requirements.txt``.
   Before resolving, :func:`stacksync.compile.checks.precheck` refuses what no resolver can lock
   (editables, VCS without a commit, conda build paths) with its line and fix; a resolver failure is
   mapped back to the ``requirements.in`` line it is about (:func:`~stacksync.compile.checks.explain_failure`).
5. Write the files atomically (temp file + ``os.replace``) only when everything succeeded; or, for
   ``--check``, compare with the committed files and return a diff.
"""

from __future__ import annotations

import difflib
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from stacksync.backends import indexapi
from stacksync.backends.backend import get_backend, resolve_name
from stacksync.backends.base import ResolveRequest
from stacksync.backends.lockhashes import pinned_versions
from stacksync.compile import checks as compilecheck
from stacksync.core import defaults
from stacksync.core.errors import CommandFailed, LockError, ProfileError, StacksyncError
from stacksync.core.fs import atomic_write_text
from stacksync.env.environment import find_python, probe
from stacksync.lock import profile as profiles
from stacksync.lock import provided, vcs
from stacksync.lock.lockfile import Pin, parse, parse_text
from stacksync.lock.profile import IndexConfig, Profile
from stacksync.lock.variants import platform_admits, platform_name

__all__ = ["CompileResult", "FileOutcome", "compile_profile", "compile_profiles",
           "resolver_inputs", "deferred_pins", "render_lock",
           "render_deferred"]

INPUT_NAME = defaults.REQUIREMENTS_IN  # the resolver input keeps this name: `# via -r requirements.in`


@dataclass(frozen=True)
class FileOutcome:
    """One file compile produces: the committed text (``None``: absent) and the new one (``None``:
    should not exist)."""

    path: Path
    old: str | None
    new: str | None

    @property
    def changed(self) -> bool:
        return self.old != self.new

    def diff(self, label: str | None = None) -> str:
        name = label or self.path.as_posix()
        return "".join(difflib.unified_diff(
            (self.old or "").splitlines(keepends=True), (self.new or "").splitlines(keepends=True),
            fromfile=f"{name} (committed)", tofile=f"{name} (compiled now)"))


@dataclass
class CompileResult:
    profile: str
    files: list[FileOutcome] = field(default_factory=list)
    packages: int = 0
    hashes: int = 0
    seconds: float = 0.0
    written: bool = False

    @property
    def changed(self) -> bool:
        return any(f.changed for f in self.files)

    @property
    def stale(self) -> list[FileOutcome]:
        return [f for f in self.files if f.changed]


# --- pure parts ------------------------------------------------------------------------------------

def deferred_input_name(name: str) -> str:
    return f"deferred-{canonicalize_name(name)}.in"


def deferred_pins(profile: Profile, parsed_in: Sequence[Pin]) -> dict[NormalizedName, Pin]:
    """The ``==`` pin of each deferred package in ``requirements.in``; anything else is one
    :class:`LockError` naming ``requirements.in:line`` and the fix."""
    out: dict[NormalizedName, Pin] = {}
    for d in profile.deferred:
        pins = [p for p in parsed_in if p.name == d.name]
        if not pins:  # profile.load already refuses this; kept for callers that build profiles by hand
            raise ProfileError(profile.stack_toml, f"deferred.{d.name}", f"{d.name} is not in {INPUT_NAME}",
                               f"add {d.name}==VERSION to {profile.requirements_in}")
        pin = pins[0]
        if pin.version is None or pin.url is not None or "==" not in pin.specifier:
            found = pin.specifier or ("a direct URL" if pin.url else "no version")
            raise LockError(pin.path, pin.line, f"deferred package {d.name} must be pinned with == ({found})",
                            f"write {d.name}==VERSION: deferred packages are not resolved, only hashed")
        if Path(pin.path).resolve() != profile.requirements_in.resolve():
            raise LockError(pin.path, pin.line, f"deferred package {d.name} is pinned in an included file",
                            f"move the pin into {profile.requirements_in}")
        out[d.name] = pin
    return out


def resolver_inputs(profile: Profile, requirements_text: str,
                    deferred: Mapping[NormalizedName, Pin]) -> dict[str, str]:
    """File name -> text of the resolver's input files (see the module docstring, step 1)."""
    lines = requirements_text.splitlines()
    for pin in deferred.values():
        index = pin.line - 1
        while True:
            original = lines[index]
            lines[index] = f"# deferred (installed last, see stack.toml): {original}"
            if not original.rstrip().endswith("\\") or index + 1 >= len(lines):
                break
            index += 1
    files = {INPUT_NAME: "\n".join(lines) + "\n"}
    for d in profile.deferred:
        reqs = [*d.requires, *d.build_requires]
        if reqs:
            files[deferred_input_name(d.name)] = (
                f"# [deferred.{d.name}] requires + build_requires from stack.toml\n" + "\n".join(reqs) + "\n")
    return files


def regenerate_command(profile_name: str) -> str:
    """``profile_name`` may be ``NAME/VARIANT`` (a result's label): compile writes every variant's lock."""
    return f"invoke compile --profile {profile_name.split('/', 1)[0]}"


def header(profile_name: str, versions: Mapping[str, str], backend: str, python: str, what: Sequence[str],
           on: str | None = None) -> str:
    """The lock header: what regenerates it and what it was resolved with; no dates, no paths, no URLs.
    ``on``: the platform resolved for (default: this machine's; :func:`resolved_on`)."""
    tools = ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
    return (
        "#\n"
        + "".join(f"# {line}\n" for line in what)
        + "# This file is generated by stacksync; regenerate with:\n"
        "#\n"
        f"#    {regenerate_command(profile_name)}\n"
        "#\n"
        f"# backend: {backend} ({tools})\n"
        f"# resolved for: Python {python} on {on or f'{sys.platform} {platform.machine()}'}\n"
        "#\n"
    )


def resolved_on(profile: Profile) -> str:
    """``linux x86_64`` (this machine, when the profile admits it), else the first of its platforms,
    e.g. ``linux aarch64``: what a cross-target backend resolved for (pip-tools refuses another platform)."""
    if platform_admits(profile.platforms, sys.platform, platform.machine()):
        return f"{sys.platform} {platform.machine()}"
    plat, _, machine = profile.platforms[0].partition("_")
    return f"{plat} {machine}" if machine else plat


def render_lock(head: str, body: str, index_lines: Sequence[str]) -> str:
    flags = "".join(f"{line}\n" for line in index_lines)
    return head + (flags + "\n" if flags else "") + body


def render_deferred(head: str, pins: Mapping[NormalizedName, Pin], hashes: Mapping[NormalizedName, Sequence[str]],
                    index_lines: Sequence[str], notes: Mapping[NormalizedName, Sequence[str]] | None = None) -> str:
    lines = []
    for name in sorted(pins):
        lines.append(f"{name}=={pins[name].version}" + "".join(f" \\\n    --hash={h}" for h in sorted(hashes[name])))
        lines += [f"    # {note}" for note in (notes or {}).get(name, ())]
        lines.append("    # via -r requirements.in")
    return render_lock(head, "\n".join(lines) + "\n", index_lines)


def running_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def check_python(profile: Profile) -> None:
    """pip-tools resolves for the interpreter running it: refuse to write a lock for another X.Y."""
    here = running_python()
    if profile.python and profile.python != here:
        raise ProfileError(profile.stack_toml, "python",
                           f"the lock is for Python {profile.python}, but compile runs under Python {here}",
                           f"compile with uv, which resolves for another Python: "
                           f"`invoke compile --profile {profile.name} --backend uv`; or run pip-tools from a "
                           f"stacksync installed under Python {profile.python}, e.g. "
                           f"`python{profile.python} -m venv .tools && .tools/bin/pip install -e .` then "
                           f"`.tools/bin/invoke compile --profile {profile.name}`")


def check_platform(profile: Profile) -> None:
    """pip-tools resolves for the machine it runs on: a profile (or variant) for another platform is
    refused with the fix (uv resolves for any platform)."""
    here = platform_name(sys.platform, platform.machine())
    if platform_admits(profile.platforms, sys.platform, platform.machine()):
        return
    variant = profile.variants.get(profile.variant or "")
    key = f"variants.{profile.variant}.platforms" if variant is not None and variant.platforms is not None \
        else "platforms"
    what = f"variant {profile.variant!r}" if profile.variant else f"profile {profile.name!r}"
    where = f"[variants.{profile.variant}] or the profile" if profile.variant else "the profile"
    raise ProfileError(profile.stack_toml, key, f"{what} is for {', '.join(profile.platforms)}; the pip-tools "
                       f"backend resolves only for this machine ({here})",
                       f'set backend = "uv" in stack.toml ({where}; uv resolves for another platform), '
                       "or pass --backend uv")


EXCLUDES_TXT = "provided-excludes.txt"


def image_only(profile: Profile, index: IndexConfig, given: Mapping[NormalizedName, str], *,
               cross_target: bool) -> list[NormalizedName]:
    """The provided packages whose recorded version no index serves (an image's own build, e.g. NGC's
    ``torch 2.10.0a0+b4e4ee81d3``): no resolver can take them as constraints, so uv leaves them out of the
    resolution (``--excludes``: what needs them is locked without them; the sync's dependency check reads
    the machine's version). pip-tools has no such option: refused with the fix."""
    out: list[NormalizedName] = []
    for name, version in sorted(given.items()):
        try:
            files = indexapi.project_files(index, name)
        except indexapi.ProjectNotFound:
            files = []
        if not any(str(f.version) == version or f.version == _version(version) for f in files):
            out.append(name)
    if out and not cross_target:
        shown = ", ".join(f"{n} {given[n]}" for n in out)
        raise ProfileError(provided.provided_path(profile), "", f"{shown} (the machine's) is on no index: "
                           "pip-tools cannot resolve the other packages against it",
                           'set backend = "uv" in stack.toml (it leaves such a package out of the resolution)')
    return out


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def target_python(profile: Profile, *, cross_target: bool) -> tuple[str, str]:
    """(X.Y.Z resolved for, X.Y for the header). pip-tools resolves for the running interpreter (and
    refuses another profile Python); a cross-target backend (uv) resolves for the profile's X.Y."""
    if not cross_target:
        check_python(profile)
    if cross_target and profile.python and profile.python != running_python():
        return profile.python, profile.python
    return platform.python_version(), running_python()


# --- the pipeline ----------------------------------------------------------------------------------

def same_but_backend(old: str | None, new: str | None) -> str | None:
    """``--check`` with the other backend: a committed lock that differs only in the header's
    ``# backend:`` line (same pins, hashes, layout) is fresh, so ``old`` is kept."""
    if old is None or new is None:
        return new

    def content(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.startswith("# backend: ")]

    return old if content(old) == content(new) else new


def _copy_includes(profile: Profile, workdir: Path) -> None:
    """Copy the files ``requirements.in`` includes (-r / -c, relative) beside the resolver input."""
    for option in parse(profile.requirements_in, follow_includes=False).options:
        if option.name in ("-r", "-c") and "://" not in option.value and not Path(option.value).is_absolute():
            src = profile.folder / option.value
            if src.is_file():
                (workdir / option.value).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, workdir / option.value)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _write_atomic(path: Path, text: str | None) -> None:
    if text is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)  # locks/<profile>/<variant>/ on a variant's first compile
    atomic_write_text(path, text)  # a committed lock keeps its mode


def compile_profile(profile: Profile, *, backend: str | None = None, upgrade: bool = False,
                    upgrade_packages: Sequence[str] = (), check: bool = False,
                    environ: Mapping[str, str] | None = None, provided_from: str | None = None) -> CompileResult:
    """Compile one profile. With ``check``, nothing is written: the result says which file is stale.
    Without, both files are written (atomically) only after everything succeeded. A profile whose machine
    provides packages is resolved with their versions from provided.txt (``provided_from``: read them
    from that interpreter and rewrite it)."""
    start = time.perf_counter()
    prov_path = provided.provided_path(profile)
    old_prov = new_prov = _read(prov_path)
    if provided_from and profile.provided:
        exe = find_python(provided_from)
        new_prov = provided.from_versions(profile, probe(exe).versions(), str(exe))
    given = provided.parse_provided(new_prov, prov_path) if new_prov and profile.provided else {}
    chosen = get_backend(resolve_name(backend, profile.backend))
    if not chosen.cross_target:
        check_platform(profile)
    python_version, python = target_python(profile, cross_target=chosen.cross_target)
    index = profile.index.expanded(environ, source=str(profile.stack_toml))
    parsed_in = parse(profile.requirements_in).pins
    compilecheck.precheck(parsed_in)
    deferred = deferred_pins(profile, parsed_in)

    # Pin the deferred packages first: one small request each, and it checks the index and the
    # credentials (one clear line) before pip-compile starts.
    first = sorted(deferred) or [p.name for p in parsed_in if p.name not in deferred][:1]
    if not deferred and first:
        indexapi.project_files(index, first[0])
    wanted: dict[str, str] = {n: p.version or "" for n, p in deferred.items()}
    deferred_files = indexapi.files_for_pins(index, wanted,
                                             python_version=python_version) if deferred else {}
    deferred_hashes = {n: indexapi.sha256_options(fs) for n, fs in deferred_files.items()}

    lock_path, deferred_path = profile.lock_path, profile.deferred_path
    vcs_path = profile.locks_folder / vcs.VCS_TXT
    old_lock, old_deferred, old_vcs = _read(lock_path), _read(deferred_path), _read(vcs_path)
    with tempfile.TemporaryDirectory(prefix="stacksync-compile-") as tmp:
        workdir = Path(tmp)
        inputs = resolver_inputs(profile, profile.requirements_in.read_text(encoding="utf-8"), deferred)
        excluded = image_only(profile, index, given, cross_target=chosen.cross_target) if given else []
        constrained = {n: v for n, v in given.items() if n not in excluded}
        if constrained:  # constraints: a package needing torch gets the machine's; torch alone is not locked
            inputs["provided.in"] = f"-c {provided.PROVIDED_TXT}\n"
            (workdir / provided.PROVIDED_TXT).write_text(
                "".join(f"{n}=={v}\n" for n, v in sorted(constrained.items())), encoding="utf-8")
        if excluded:
            (workdir / EXCLUDES_TXT).write_text("".join(f"{n}\n" for n in excluded), encoding="utf-8")
        _copy_includes(profile, workdir)
        for name, text in inputs.items():
            (workdir / name).write_text(text, encoding="utf-8")
        if old_lock is not None:  # pip-compile keeps existing pins unless told to upgrade
            (workdir / defaults.LOCK_TXT).write_text(old_lock, encoding="utf-8")
        request = ResolveRequest(workdir=workdir, inputs=tuple(inputs), output=defaults.LOCK_TXT, index=index,
                                 python_version=python_version, upgrade=upgrade,
                                 upgrade_packages=tuple(upgrade_packages), platforms=profile.platforms,
                                 excludes=EXCLUDES_TXT if excluded else None)
        try:
            body = chosen.compile_lock(request)
        except CommandFailed as exc:
            explained = compilecheck.explain_failure(exc, parsed_in, "pip-compile" if chosen.name == "pip-tools"
                                                     else "uv pip compile", python=python,
                                                     platforms=profile.platforms)
            if explained is None:
                raise
            raise explained from None
    vcs_names = [p.name for p in parse_text(body, "<resolver output>", follow_includes=False).pins if p.is_vcs]
    body, vcs_lines = vcs.split_body(body, vcs_names)

    versions = chosen.versions()
    index_lines = index.lock_lines()
    on = resolved_on(profile)
    notes = _pin_prebuilt(profile, deferred, deferred_hashes, pinned_versions(body), python, old_deferred)
    new_lock = render_lock(header(profile.name, versions, chosen.name, python,
                                  [f"Hashed lock of profile {profile.name!r}."], on), body, index_lines)
    new_deferred = None
    if deferred:
        head = header(profile.name, versions, chosen.name, python,
                      [f"Deferred packages of profile {profile.name!r}: pinned in requirements.in,",
                       "hashes read from the index (nothing built); installed last, see stack.toml."], on)
        new_deferred = render_deferred(head, deferred, deferred_hashes, index_lines, notes)

    new_vcs = None
    if vcs_lines:
        new_vcs = vcs.render_vcs_lock(header(profile.name, versions, chosen.name, python,
                                             [f"VCS pins of profile {profile.name!r} at their commit: resolved "
                                              "with the lock (their", "dependencies are in requirements.txt, "
                                              "hashed); no hash covers a checkout, so",
                                              "sync installs these after the rest."], on),
                                      vcs_lines)
    if check:
        new_lock = same_but_backend(old_lock, new_lock) or new_lock
        new_deferred = same_but_backend(old_deferred, new_deferred)
        new_vcs = same_but_backend(old_vcs, new_vcs)
    pinned = pinned_versions(body)
    result = CompileResult(
        profile=f"{profile.name}/{profile.variant}" if profile.variant else profile.name,
        files=[FileOutcome(lock_path, old_lock, new_lock), FileOutcome(deferred_path, old_deferred, new_deferred),
               *([FileOutcome(vcs_path, old_vcs, new_vcs)] if old_vcs is not None or new_vcs is not None else []),
               *([FileOutcome(prov_path, old_prov, new_prov)] if new_prov != old_prov else [])],
        packages=len(pinned) + len(deferred) + len(vcs_lines),
        hashes=new_lock.count("--hash=") + (new_deferred or "").count("--hash="),
    )
    if not check and result.changed:
        for outcome in result.files:
            if outcome.changed:
                _write_atomic(outcome.path, outcome.new)
        result.written = True
    result.seconds = time.perf_counter() - start
    return result


def _pin_prebuilt(profile: Profile, deferred: Mapping[NormalizedName, Pin],
                  hashes: dict[NormalizedName, list[str]], pinned: Mapping[str, str], python_xy: str,
                  old_deferred: str | None) -> dict[NormalizedName, list[str]]:
    """Each deferred package with a ``wheels`` template: the prebuilt wheel for the locked base,
    fetched once, its sha256 added to the pin's hashes and noted in a ``# prebuilt:`` comment."""
    from stacksync.build import buildkey, prebuilt

    notes: dict[NormalizedName, list[str]] = {}
    for d in profile.deferred:
        pin = deferred.get(d.name)
        if not d.wheels or pin is None or pin.version is None:
            continue
        base = buildkey.cuda_source(d.rebuild_on)
        values = prebuilt.template_vars(pin.version, pinned.get(base) if base else None, python_xy, d.wheel_vars)
        with tempfile.TemporaryDirectory(prefix="stacksync-prebuilt-") as tmp:
            got = prebuilt.pin_for_compile(profile.stack_toml, d.name, d.wheels, d.prebuilt, values, old_deferred,
                                           Path(tmp))
        if got is not None:
            url, digest = got
            hashes[d.name] = sorted({*hashes.get(d.name, []), f"sha256:{digest}"})
            notes[d.name] = [prebuilt.comment(url, digest)]
    return notes


def compile_profiles(names: Sequence[str], *, all_profiles: bool = False, locks_dir: Path | None = None,
                     backend: str | None = None, upgrade: bool = False, upgrade_packages: Sequence[str] = (),
                     check: bool = False, provided_from: str | None = None) -> list[CompileResult]:
    """:func:`compile_profile` for each named profile (or every profile with ``all_profiles``)."""
    root = locks_dir or defaults.locks_dir()
    chosen = profiles.available(root) if all_profiles else list(names) or [defaults.profile_name()]
    if not chosen:
        raise StacksyncError(f"no profiles in {root} (fix: create locks/<name>/stack.toml and requirements.in)")
    loaded = [profiles.load(name, root) for name in chosen]  # every stack.toml checked before resolving
    # a profile with variants: one lock per variant, in locks/<profile>/<variant>/
    each = [q for p in loaded for q in ([p.for_variant(v) for v in p.variants] or [p])]
    return [compile_profile(p, backend=backend, upgrade=upgrade, upgrade_packages=upgrade_packages, check=check,
                            provided_from=provided_from) for p in each]


def _shown(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def report(results: Sequence[CompileResult], *, check: bool) -> bool:
    """Print what compile did (stderr) and, for ``--check``, the diff of each stale file (stdout).
    Returns whether any file is stale in check mode."""
    from stacksync.core import console

    stale_any = False
    for result in results:
        if check:
            for outcome in result.stale:
                stale_any = True
                console.out.print(outcome.diff(_shown(outcome.path)), markup=False, end="")
                console.error(f"{_shown(outcome.path)} is stale against requirements.in / stack.toml "
                              f"(fix: {regenerate_command(result.profile)})")
            if not result.stale:
                console.info(f"{result.profile}: lock is fresh ({result.packages} packages, {result.hashes} hashes)")
            continue
        what = "wrote " + ", ".join(_shown(o.path) for o in result.stale) if result.written else "unchanged"
        console.info(f"{result.profile}: {what} ({result.packages} packages, {result.hashes} hashes, "
                     f"{result.seconds:.1f} s)")
    return stale_any
