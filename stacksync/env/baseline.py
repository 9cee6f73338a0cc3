"""``invoke freeze --from FILE --profile NAME``: a pasted baseline (``pip freeze`` of a conda env, a
requirements file) becomes a profile in one command.

:func:`propose` is pure: from the baseline's lines (and, when given, a live environment's versions)
it writes ``requirements.in`` and a commented ``stack.toml``:

- ``name==version`` lines as exact pins (``name===version``: ``==2.4.0`` would admit
  ``2.4.0+cu121``, which pip prefers); conda ``name @ file:///croot/...`` lines repaired to
  ``name==version`` (from the wheel / sdist file name, or the live environment's dist-info); a line
  whose version cannot be known is written unpinned, with one warning naming that line;
- VCS installs (editable or not) kept as pins at their commit, non-editable, in a section of their
  own (the sync installs them after the rest, see :mod:`stacksync.lock.vcs`); editable folders that are
  git checkouts become pins at their HEAD commit; others are left out with a warning;
- ``base`` / ``deferred`` / ``[smoke]`` proposed from :mod:`stacksync.lock.knownstacks`; per-line
  ``--index-url`` hints proposed as ``extra_index_urls`` (commented out).

The user reviews both files and runs ``invoke compile --profile NAME``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import NormalizedName

from stacksync.core import defaults
from stacksync.core.defaults import INSTALLER_PACKAGES
from stacksync.core.fs import atomic_write_text
from stacksync.core.redact import redact, strip_credentials
from stacksync.env.environment import Snapshot
from stacksync.lock import knownstacks, vcs
from stacksync.lock.listing import Hint, Listing
from stacksync.lock.lockfile import Pin, parse_listing

__all__ = ["Proposal", "propose", "from_file", "pins_from_snapshot", "write_profile"]


@dataclass
class Proposal:
    requirements_in: str = ""
    stack_toml: str = ""
    warnings: list[str] = field(default_factory=list)
    pinned: int = 0
    repaired: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    vcs: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)
    #: lines written as they were (a range or a bare name): compile picks the version
    as_written: int = 0
    #: the format detected, and what the list holds that is not a PyPI pin (conda rows)
    format: str = ""
    apart: list[str] = field(default_factory=list)
    python: str = ""
    python_why: str = ""
    platform: str = ""
    platform_why: str = ""


def _vcs_line(pin: Pin) -> str | None:
    """``name @ git+URL@commit`` (``#subdirectory=`` kept, ``#egg=`` and ``-e`` dropped)."""
    if pin.url is None or pin.commit is None:
        return None
    url = pin.url.split("#", 1)[0]
    sub = f"#subdirectory={pin.subdirectory}" if pin.subdirectory else ""
    marker = f" ; {pin.marker}" if pin.marker is not None else ""
    return f"{pin.name} @ {url}{sub}{marker}"


def _exact(version: str) -> str:
    """``===2.4.0`` for a version without a local part: a freeze's ``torch==2.4.0`` is that exact
    build, but ``==2.4.0`` also admits ``2.4.0+cu121`` (PEP 440), which pip then prefers."""
    return f"=={version}" if "+" in version else f"==={version}"


def _marker(pin: Pin) -> str:
    return f" ; {pin.marker}" if pin.marker is not None else ""


#: what ``invoke freeze`` leaves out by default: the twin's venv has its own pip. setuptools and wheel
#: stay pinned (a twin builds sdists with them; compile locks them with --allow-unsafe)
_LEFT_OUT_INSTALLERS = frozenset(INSTALLER_PACKAGES - {"setuptools", "wheel"})
#: where conda-build unpacks and builds a package: a ``name @ file:///croot/...`` line is a conda build
_CONDA_BUILD_DIRS = ("/croot/", "/conda-bld/", "/feedstock_root/", "/home/conda/feedstock", "/tmp/build/",
                     "/opt/conda/conda-bld/", "/work/")


def _describe_local(url: str) -> str:
    """A conda build folder, or a project checkout on the baseline's machine."""
    return "a conda build folder" if any(d in url for d in _CONDA_BUILD_DIRS) else \
        "a local path checkout on the baseline's machine"


def propose(pins: Sequence[Pin], *, profile: str, source: str, python: str,
            live: Mapping[NormalizedName, str] | None = None, include_installers: bool = False,
            platform: str = "linux", python_why: str = "", platform_why: str = "") -> Proposal:
    """``requirements.in`` and ``stack.toml`` for ``pins`` (one baseline, in file order); ``python_why``
    / ``platform_why``: where ``python`` / ``platform`` come from (a comment in stack.toml)."""
    out = Proposal(python=python, python_why=python_why, platform=platform, platform_why=platform_why)
    installers: list[NormalizedName] = []
    from_source_only: list[str] = []
    plain: list[str] = []
    unpinned: list[str] = []
    vcs_lines: list[str] = []
    index_hints: dict[str, list[str]] = {}
    from_source: list[NormalizedName] = []
    names: list[NormalizedName] = []
    eq_names: list[NormalizedName] = []
    conda_tools: list[NormalizedName] = []
    for pin in sorted(pins, key=lambda p: p.name):
        if pin.name in _LEFT_OUT_INSTALLERS and not include_installers:
            installers.append(pin.name)
            continue
        if knownstacks.is_conda_tooling(pin.name):
            conda_tools.append(pin.name)
            continue
        known_source = knownstacks.FROM_SOURCE_ONLY.get(pin.name)
        if known_source is not None and not pin.is_vcs and pin.url is None:
            what, source_pin = known_source
            from_source_only.append(f"# {source_pin}   # FIXME: was {pin.requirement} ({pin.where}): {what}")
            out.left_out.append(pin.name)
            out.warnings.append(f"{pin.where}: {pin.requirement} is {what}: not looked up on the index; "
                                f"proposed as a source pin, commented out (fix: write {source_pin} with the commit "
                                f"you built, in locks/{profile}/requirements.in)")
            continue
        for url in (*pin.option_values("--index-url"), *pin.option_values("--extra-index-url")):
            index_hints.setdefault(strip_credentials(url), []).append(f"{pin.where} ({pin.name})")
        if pin.is_vcs or pin.editable:
            line = _vcs_line(pin) if pin.is_vcs else None
            if line is None and pin.editable and not pin.is_vcs and pin.url:
                folder = vcs.folder_of(pin.url)
                checkout = vcs.read_checkout(folder) if folder is not None else None
                if checkout is not None and checkout.remote and checkout.commit:
                    line = f"{pin.name} @ {vcs.vcs_url(checkout.remote, checkout.commit)}"
            if line is None:
                why = ("a VCS reference without a commit (at a branch or tag)" if pin.is_vcs
                       else "an editable folder that is not a git checkout with a remote")
                if pin.is_vcs:
                    vcs_lines.append(f"{pin.requirement}  # FIXME: pin a commit (@<40-hex sha>)")
                else:
                    out.left_out.append(pin.name)
                out.warnings.append(f"{pin.where}: {pin.name} is {why}: "
                                    + ("kept as written; compile refuses it until it names a commit "
                                       f"(fix: write {pin.name} @ {redact(pin.url or '')}@<sha>)" if pin.is_vcs else
                                       "left out (fix: install it separately in the twin, or commit and "
                                       "push it and pin it as NAME @ git+URL@<sha>)"))
                continue
            vcs_lines.append(line)
            out.vcs.append(pin.name)
            names.append(pin.name)
            from_source.append(pin.name)
            continue
        names.append(pin.name)
        local = re.search(r"\+(cu\d+|cpu|rocm[\d.]+)$", pin.version or "")
        if local is not None and pin.url is None:  # torch==2.4.0+cu121: a build of the PyTorch index
            index_hints.setdefault(f"https://download.pytorch.org/whl/{local.group(1)}", []).append(
                f"{pin.where} ({pin.name}=={pin.version})")
        if pin.version is not None and pin.url is None and pin.specifier.startswith("=="):
            plain.append(f"{pin.name}{_exact(pin.version)}{_marker(pin)}")
            eq_names.append(pin.name)
            continue
        if pin.url is not None:
            version = pin.file_version or (live or {}).get(pin.name)
            if pin.url.split("#", 1)[0].endswith((".tar.gz", ".zip")):
                from_source.append(pin.name)
            if version is not None and (pin.is_local_file or live is not None):
                plain.append(f"{pin.name}{_exact(version)}{_marker(pin)}")
                eq_names.append(pin.name)
                out.repaired.append(f"{pin.name}=={version}")
                continue
            if not pin.is_local_file:
                plain.append(f"{pin.name} @ {pin.url}{_marker(pin)}")
                continue
            unpinned.append(f"{pin.name}{_marker(pin)}  # was {redact(pin.url)} ({pin.where})")
            out.unknown.append(pin.name)
            out.warnings.append(f"{pin.where}: {pin.name} @ {redact(pin.url)}: version unknown in this file "
                                f"({_describe_local(pin.url)}); written unpinned, so compile picks the newest "
                                f"(fix: write {pin.name}==VERSION in locks/{profile}/requirements.in, or add "
                                "--python ENV to read it from the live environment)")
            continue
        plain.append(f"{pin.requirement}")  # a range or a bare name: as written
        out.as_written += 1
    if conda_tools:
        out.left_out += conda_tools
        out.warnings.append(f"{redact(source)}: conda's own packages left out ({', '.join(conda_tools)}): they "
                            "are the conda tool, not the stack (fix: add them to requirements.in if the twin "
                            "needs them)")
    if installers:
        out.left_out += installers
        out.warnings.append(f"{redact(source)}: {', '.join(installers)} left out: the twin's venv brings its own "
                            "installer (fix: --all keeps it as a pin)")
    out.pinned = len(plain) - out.as_written
    lines = [f"# Baseline of profile {profile!r} from {redact(source)}, written by invoke freeze;",
             f"# review it, then: invoke compile --profile {profile}", ""]
    lines.append("# === pins the exact version string: ==2.4.0 would also admit 2.4.0+cu121 (PEP 440)")
    if out.repaired:
        lines.append(f"# {len(out.repaired)} `@ file://` line(s) (conda) repaired to ==version")
    lines += plain
    if unpinned:
        lines += ["", "# version unknown in the baseline: compile picks the newest allowed (pin them to match)",
                  *unpinned]
    if from_source_only:
        lines += ["", "# built from source, not on the index under this name: pin the source you built",
                  *from_source_only]
    if vcs_lines:
        lines += ["", "# VCS pins at their commit: resolved with the rest, installed after it (no hash can",
                  "# cover a checkout; compile writes them to vcs.txt); never editable in the twin",
                  *vcs_lines]
    out.requirements_in = "\n".join(lines) + "\n"
    out.stack_toml = _stack_toml(profile, source, python, names, eq_names, from_source, index_hints, platform,
                                 python_why, platform_why)
    return out


def _toml_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(f'"{i}"' for i in items) + "]"


def _stack_toml(profile: str, source: str, python: str, names: Sequence[NormalizedName],
                pinned_eq: Sequence[NormalizedName], from_source: Sequence[NormalizedName],
                index_hints: Mapping[str, list[str]], platform: str, python_why: str = "",
                platform_why: str = "") -> str:
    base = knownstacks.propose_base(names)
    # a deferred package is an == pin in requirements.in (compile hashes that exact version)
    deferred = knownstacks.propose_deferred(pinned_eq, from_source=from_source)
    lines = [f"# Written by `invoke freeze --from {redact(source)} --profile {profile}`: a proposal from",
             "# stacksync's table of known stacks (stacksync/knownstacks.py). Review, then:",
             f"#   invoke compile --profile {profile}",
             *([f"# python: {python_why}"] if python_why else []),
             f'python = "{python}"',
             *([f"# platforms: {platform_why}"] if platform_why else []),
             f"platforms = {_toml_list([platform])}",
             '# index_url = "https://pypi.org/simple"   # or your mirror: https://${USER}:${TOKEN}@host/simple']
    if index_hints:
        lines.append("# indexes the baseline names (per-line --index-url / --extra-index-url, which pip ignores on "
                     "a requirement line; +cuXXX / +cpu builds of the PyTorch index):")
        lines.append(f"# extra_index_urls = {_toml_list(list(index_hints))}")
        lines += [f"#   {url}: {', '.join(where)}" for url, where in index_hints.items()]
    if base:
        lines.append("# installed first, binary only, with their locked dependencies (the nvidia-* runtime "
                     "wheels come with torch)")
    lines.append(f"base = {_toml_list(base)}")
    smoke_base = ["torch"] if "torch" in base else [knownstacks.modules_of(b)[0] for b in base[:1]]
    lines += ["", "[smoke]", f"base = {_toml_list(smoke_base)}"]
    if deferred:
        lines.append(f"deferred = {_toml_list([knownstacks.modules_of(n)[0] for n in deferred])}")
    for name, known in deferred.items():
        env = ", ".join(f'{k} = "{v}"' for k, v in known.build_env.items())
        lines += ["", f"[deferred.{name}]" + (f"   # {known.note}" if known.note else ""),
                  f"requires = {_toml_list(list(known.requires))}",
                  f"imports = {_toml_list(list(known.imports))}",
                  f"build_requires = {_toml_list(list(known.build_requires))}",
                  f"build_env = {{ {env} }}"]
    return "\n".join(lines) + "\n"


def pins_from_snapshot(snapshot: Snapshot) -> list[Pin]:
    """A live environment as baseline lines (what ``pip freeze`` would print, commits included)."""
    from stacksync.lock.lockfile import parse_text

    lines = []
    for name in sorted(snapshot.distributions):
        dist = snapshot.distributions[name]
        url = dist.url
        if dist.kind == "vcs" and url:
            lines.append(f"{name} @ {url}")
        elif dist.kind == "editable":
            folder = vcs.folder_of(str((dist.direct_url or {}).get("url", "")))
            checkout = vcs.read_checkout(folder) if folder is not None else None
            if checkout is not None and checkout.remote and checkout.commit:
                lines.append(f"{name} @ {vcs.vcs_url(checkout.remote, checkout.commit)}")
            else:
                lines.append(f"# Editable install with no version control ({name}=={dist.version})")
                lines.append(f"-e {folder}" if folder is not None else f"{name}=={dist.version}")
        else:
            lines.append(f"{name}=={dist.version}")
    return parse_text("\n".join(lines) + "\n", f"{snapshot.python} (live)").pins


def _choose(hints: Sequence[Hint], what: str, source: str) -> tuple[str | None, str, list[str]]:
    """The value most hints agree on, why, and a warning when they disagree."""
    if not hints:
        return None, "", []
    counts: dict[str, int] = {}
    for h in hints:
        counts[h.value] = counts.get(h.value, 0) + 1
    value = max(counts, key=lambda v: (counts[v], -next(i for i, h in enumerate(hints) if h.value == v)))
    first = next(h for h in hints if h.value == value)
    why = f"read from {redact(source)}: {first.because}"
    warnings = []
    if len(counts) > 1:
        others = ", ".join(f"{h.value} ({h.because})" for h in hints if h.value != value)[:300]
        warnings.append(f"{redact(source)}: the file says more than one {what}: {value} ({first.because}) and "
                        f"{others}; {value} written (fix: give --{what.replace(' ', '-')} X)")
    return value, why, warnings


def _apart_notes(found: Listing, source: str) -> tuple[list[str], list[str]]:
    """Comment lines for requirements.in and warnings for the rows of a conda list that are not pins."""
    if not found.apart and not found.cuda and not found.renamed:
        return [], []
    comments = ["", f"# not PyPI packages in {redact(source)} ({found.format}): left out; pip does not install "
                "them (use conda for them, or drop them: a PyPI wheel brings the libraries it needs)"]
    comments += [f"#   line {a.line}: {a.name} {a.version}: {a.why}" for a in found.apart]
    warnings = []
    if found.apart:
        warnings.append(f"{redact(source)}: {len(found.apart)} conda row(s) with no PyPI project left out "
                        f"({', '.join(a.name for a in found.apart[:12])}{' ...' if len(found.apart) > 12 else ''}); "
                        "listed in requirements.in (fix: none needed for C libraries and the interpreter; install "
                        "the others with conda)")
    if found.cuda:
        cuda = found.cuda[0]
        tag = "cu" + cuda.value.replace(".", "")
        comments.append(f"# CUDA {cuda.value} ({cuda.because}): torch's PyPI wheels bring their own nvidia-*-cu"
                        f"{cuda.value.split('.')[0]} libraries; for exactly this CUDA build use "
                        f"index_url = \"https://download.pytorch.org/whl/{tag}\" in stack.toml")
        warnings.append(f"{redact(source)}: the baseline used CUDA {cuda.value} ({cuda.because}): not a PyPI "
                        f"package (fix: for torch's {tag} build set index_url = "
                        f"\"https://download.pytorch.org/whl/{tag}\" in stack.toml)")
    comments += [f"# renamed: {r}" for r in found.renamed]
    return comments, warnings


def from_file(path: str, profile: str, *, python: str | None = None, include_installers: bool = False,
              python_version: str | None = None, platform: str | None = None) -> Proposal:
    """Read ``path`` (a freeze, ``pip list``, ``conda list`` ..., see :mod:`stacksync.lock.listing`)
    and propose the profile; ``python``: a live environment whose dist-info versions repair the lines
    the file cannot. The baseline's Python and platform: given, else what the file says, else the live
    environment's, else the interpreter running stacksync (and stack.toml says it was assumed)."""
    from stacksync.env.environment import probe

    parsed, found = parse_listing(path)
    snapshot = probe(python) if python else None
    warnings: list[str] = []
    file_py, file_py_why, more = _choose(found.python, "python version", path)
    warnings += more
    file_plat, file_plat_why, more = _choose(found.platform, "platform", path)
    warnings += more
    if python_version:
        py, py_why = python_version, "given (--python-version)"
    elif file_py is not None:
        py, py_why = file_py, file_py_why
    elif snapshot is not None:
        py, py_why = snapshot.python_xy, f"the live environment {snapshot.python}"
    else:
        py = f"{sys.version_info[0]}.{sys.version_info[1]}"
        py_why = (f"assumed: {redact(path)} does not say (no cpXY wheel tag, no 'Python X.Y' line, no conda python "
                  "row); this is the Python running stacksync (fix: --python-version X.Y)")
    if platform:
        plat, plat_why = platform, "given (--platform)"
    elif file_plat is not None:
        plat, plat_why = file_plat, file_plat_why
    elif snapshot is not None:
        plat, plat_why = snapshot.marker_environment.get("sys_platform", "linux"), "the live environment"
    else:
        plat = sys.platform
        plat_why = f"assumed: {redact(path)} does not say; this machine's (fix: --platform linux|win32|darwin)"
    proposal = propose(parsed.pins, profile=profile, source=str(path), python=py,
                       live=snapshot.versions() if snapshot is not None else None,
                       include_installers=include_installers, platform=plat, python_why=py_why,
                       platform_why=plat_why)
    proposal.format = found.format
    comments, more = _apart_notes(found, path)
    proposal.requirements_in += "\n".join(comments) + ("\n" if comments else "")
    proposal.apart = [f"{a.name} {a.version}".strip() for a in found.apart]
    proposal.warnings = warnings + more + proposal.warnings
    if found.dropped:
        proposal.warnings.append(f"{redact(path)}: {len(found.dropped)} pasted line(s) that are not requirements "
                                 f"skipped (line {', '.join(str(n) for n, _ in found.dropped[:5])}: "
                                 f"{found.dropped[0][1][:60]!r} ...)")
    return proposal


def write_profile(proposal: Proposal, profile: str, *, locks_dir: Path | None = None,
                  overwrite_toml: bool = False) -> tuple[Path, Path | None]:
    """Write ``locks/<profile>/requirements.in`` (and ``stack.toml`` when new, or asked) atomically.
    Returns (requirements.in, stack.toml written or None)."""
    folder = (locks_dir or defaults.new_locks_dir()) / profile
    folder.mkdir(parents=True, exist_ok=True)
    req = folder / defaults.REQUIREMENTS_IN
    _write(req, proposal.requirements_in)
    toml = folder / defaults.STACK_TOML
    if overwrite_toml or not toml.exists():
        _write(toml, proposal.stack_toml)
        return req, toml
    return req, None


def _write(path: Path, text: str) -> None:
    atomic_write_text(path, text)
