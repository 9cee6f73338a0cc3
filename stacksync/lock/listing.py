"""Package lists as people paste them, recognised as a whole (pure; no I/O).

A baseline arrives as ``pip freeze`` output, but just as often as ``pip list`` (a ``Package Version``
table under a ``----- -----`` rule, maybe with an ``Editable project location`` column), ``pip list
--format=json``, ``uv pip list``, ``conda list`` (``# Name Version Build Channel``; channel ``pypi``
rows are pip-installed), ``conda list --export`` (``name=version=build``) or ``conda env export``
YAML (conda rows plus a ``pip:`` list), with a ``Python 3.10.19`` line or a shell prompt on top.

:func:`read_listing` detects the format from the text and rewrites the list as requirement-file
text, one output line per input line (so ``file:line`` still points at the pasted line), that
:func:`stacksync.lock.lockfile.parse_text` reads like a freeze. Conda rows with no PyPI project (the
interpreter, C libraries, CUDA) are listed apart with what they are; conda names with another PyPI
name are renamed (:data:`stacksync.lock.knownstacks.CONDA_RENAMES`). What the list says about the
baseline's Python, platform and CUDA is collected with the line that says it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath, PureWindowsPath

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from stacksync.lock import knownstacks

__all__ = ["Apart", "Hint", "Listing", "detect", "read_listing", "hints_from_requirements"]

FREEZE = "pip freeze / requirements file"
PIP_LIST = "pip list / uv pip list (columns)"
PIP_LIST_EDITABLE = "pip list / uv pip list (columns, with the editable project location)"
PIP_JSON = "pip list --format=json"
CONDA_LIST = "conda list"
CONDA_EXPORT = "conda list --export"
CONDA_EXPLICIT = "conda list --explicit"
CONDA_YAML = "conda env export (environment.yml)"
COLUMNS = "a name / version table without a header"

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
_RULE = re.compile(r"^-{3,}(\s+-{3,})+\s*$")
_PYTHON_LINE = re.compile(r"^\s*Python\s+(\d+)\.(\d+)(\.\d+)?\S*\s*$")
_PROMPT = re.compile(r"^\s*(\(\S+\)\s*)?([\w.@:~/\\-]*[$#>%]|PS [^>]*>|>>>)\s*"
                     r"(python\d*(\.\d+)?\s+-m\s+)?(pip|pip3|uv|conda|mamba|micromamba|python)\b")
_NOISE = ("WARNING:", "DEPRECATION:", "[notice]", "ERROR: Ignored", "Note:")
_CONDA_EXPORT_ROW = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9._-]*)=([^=\s]+)=([^=\s]+)$")
_CONDA_SPEC = re.compile(r"^(?:[\w.-]+::)?([A-Za-z0-9_][A-Za-z0-9._-]*)\s*(?:(==|>=|<=|!=|=|>|<|~=)\s*([^=\s]+)"
                         r"(?:=([^=\s]+))?)?\s*$")
_CP_TAG = re.compile(r"-cp(\d)(\d+)-(?:cp\d+m?|abi3|none)-([A-Za-z0-9_.]+)\.whl")
_CONDA_PY_BUILD = re.compile(r"^py(\d)(\d{1,2})(?!\d)|^py(\d)\.(\d{1,2})(?!\d)")
_CUDA_BUILD = re.compile(r"cuda(\d+)\.?(\d)")


@dataclass(frozen=True)
class Apart:
    """A row that is not a PyPI pin: ``why`` says what it is."""

    line: int
    name: str
    version: str
    why: str


@dataclass(frozen=True)
class Hint:
    """What the file says about the baseline: ``value`` (``3.10``, ``linux``, ``12.1``) and where."""

    value: str
    line: int
    because: str


@dataclass
class Listing:
    """A pasted list as requirement-file text (``text``: one line per input line) and what it says."""

    format: str
    text: str
    apart: list[Apart] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)
    dropped: list[tuple[int, str]] = field(default_factory=list)
    python: list[Hint] = field(default_factory=list)
    platform: list[Hint] = field(default_factory=list)
    cuda: list[Hint] = field(default_factory=list)
    #: rows written as pins (a table row, a conda row), for the summary
    rows: int = 0
    #: line -> version of an editable row (a table's editable location; freeze writes it in a comment)
    editable_versions: dict[int, str] = field(default_factory=dict)


def _platform_of(text: str) -> str | None:
    """``sys_platform`` of a conda subdir (``linux-64``), a wheel platform tag or a prefix path."""
    t = text.lower()
    if t.startswith(("linux", "manylinux", "musllinux")) or t.startswith(("/home/", "/opt/", "/root/", "/usr/")):
        return "linux"
    if t.startswith(("win", "c:\\", "d:\\")) or re.match(r"^[a-z]:[\\/]", t):
        return "win32"
    if t.startswith(("osx", "macosx", "/users/")):
        return "darwin"
    return None


def _version_ok(version: str) -> bool:
    try:
        Version(version)
    except InvalidVersion:
        return False
    return True


def _conda_python(build: str) -> str | None:
    m = _CONDA_PY_BUILD.match(build)
    if m is None:
        return None
    major, minor = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    return f"{major}.{minor}"


def _xy(version: str) -> str | None:
    parts = version.split(".")
    return f"{parts[0]}.{parts[1]}" if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit() else None


def _table_rows(lines: list[str]) -> int:
    """How many lines look like ``name version [build [channel]]`` (no ``==``, ``@``, option)."""
    count = 0
    for line in lines:
        words = line.split()
        if 2 <= len(words) <= 4 and _NAME.match(words[0]) and words[1][:1].isdigit() and "=" not in line \
                and "@" not in line and not line.lstrip().startswith("-"):
            count += 1
    return count


def detect(text: str) -> str:
    """The format of ``text`` (one of the module's format names)."""
    stripped = text.lstrip()
    if stripped.startswith("[") and stripped.rstrip().endswith("]"):
        try:
            data = json.loads(stripped)
        except ValueError:
            data = None
        if isinstance(data, list) and all(isinstance(d, dict) and "name" in d and "version" in d for d in data):
            return PIP_JSON
    lines = text.splitlines()
    keys = {ln.split(":", 1)[0] for ln in lines if ln[:1].isalpha() and ":" in ln}
    if "dependencies" in keys and any(ln.rstrip() == "dependencies:" for ln in lines):
        return CONDA_YAML
    for i, line in enumerate(lines):
        words = line.lstrip("#").split()
        if line.startswith("#") and [w.lower() for w in words[:3]] == ["name", "version", "build"]:
            return CONDA_LIST
        if line.startswith("# packages in environment at"):
            return CONDA_LIST
        if line.strip() == "@EXPLICIT":
            return CONDA_EXPLICIT
        if line.startswith(("# platform:", "# $ conda create")) and any(ln.strip() == "@EXPLICIT" for ln in lines):
            return CONDA_EXPLICIT
        if line.startswith(("# platform:", "# $ conda create")):
            return CONDA_EXPORT
        if [w.lower() for w in words[:2]] == ["package", "version"] and not line.startswith("#") \
                and i + 1 < len(lines) and _RULE.match(lines[i + 1]):
            return PIP_LIST_EDITABLE if "editable project location" in line.lower() else PIP_LIST
    body = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if body and sum(bool(_CONDA_EXPORT_ROW.match(ln.strip())) for ln in body) * 2 > len(body):
        return CONDA_EXPORT
    if body and _table_rows(body) * 2 > len(body):
        return COLUMNS
    return FREEZE


def read_listing(text: str) -> Listing:
    """``text`` (decoded) as requirement-file text, with what it says about the baseline."""
    fmt = detect(text)
    if fmt == PIP_JSON:
        return _from_json(text)
    lines = text.splitlines()
    listing = Listing(fmt, "")
    out = [_preamble(listing, n, ln) for n, ln in enumerate(lines, start=1)]
    if fmt in (PIP_LIST, PIP_LIST_EDITABLE):
        _from_pip_table(listing, lines, out)
    elif fmt in (CONDA_LIST, COLUMNS):
        _from_conda_table(listing, lines, out)
    elif fmt == CONDA_EXPORT:
        _from_conda_export(listing, lines, out)
    elif fmt == CONDA_EXPLICIT:
        _from_conda_explicit(listing, lines, out)
    elif fmt == CONDA_YAML:
        _from_yaml(listing, lines, out)
    else:
        _editables_from_freeze(lines, out)
    listing.text = "\n".join(o if o is not None else "" for o in out) + "\n"
    pythons, platforms = hints_from_requirements(listing.text)
    if any(h.because.startswith(("the conda python", "python")) for h in listing.python):
        listing.python = [h for h in listing.python if not h.because.startswith("the build")]
    listing.python += pythons
    listing.platform += platforms
    return listing


def _preamble(listing: Listing, number: int, line: str) -> str | None:
    """A pasted ``Python 3.10.19`` line, a shell prompt, a pip warning: ``None`` (dropped, noted);
    anything else: the line as it is."""
    m = _PYTHON_LINE.match(line)
    if m is not None:
        listing.python.append(Hint(f"{m.group(1)}.{m.group(2)}", number, f"line {number} says {line.strip()!r}"))
        listing.dropped.append((number, line.strip()))
        return None
    if _PROMPT.match(line) or line.lstrip().startswith(_NOISE):
        listing.dropped.append((number, line.strip()))
        return None
    return line


def _file_url(location: str, name: str) -> str:
    """``file:`` URL of an editable location (a POSIX or a Windows path), with ``#egg=NAME``: the
    folder is on the baseline's machine, not necessarily this one."""
    if re.match(r"^[A-Za-z]:[\\/]", location):
        url = PureWindowsPath(location).as_uri()
    elif location.startswith("/"):
        url = PurePosixPath(location).as_uri()
    else:
        url = location
    return f"{url}#egg={name}"


_EDITABLE_NOTE = re.compile(r"^# Editable.*\(([A-Za-z0-9._-]+)==([^)\s]+)\)\s*$")


def _editables_from_freeze(lines: list[str], out: list[str | None]) -> None:
    """pip freeze writes an editable without VCS as ``# Editable install with no version control
    (name==1.0)`` then ``-e /abs/path``: the path is on the baseline's machine, so the line becomes
    ``-e file:///abs/path#egg=name`` (the name from the comment)."""
    note: tuple[str, str] | None = None
    for i, line in enumerate(lines):
        if out[i] is None:
            continue
        m = _EDITABLE_NOTE.match(line.strip())
        if m is not None:
            note = (m.group(1), m.group(2))
            continue
        words = line.split()
        if note is not None and len(words) == 2 and words[0] in ("-e", "--editable") \
                and (words[1].startswith("/") or re.match(r"^[A-Za-z]:[\\/]", words[1])):
            out[i] = f"-e {_file_url(words[1], note[0])}"
        if line.strip():
            note = None


def hints_from_requirements(text: str) -> tuple[list[Hint], list[Hint]]:
    """Python and platform hints from requirement lines: ``cp38`` wheel tags in URLs, and packages
    that only install on one platform (``pywin32``, ``nvidia-*-cu12``) written without a marker."""
    pythons: list[Hint] = []
    platforms: list[Hint] = []
    for number, line in enumerate(text.splitlines(), start=1):
        for m in _CP_TAG.finditer(line):
            pythons.append(Hint(f"{m.group(1)}.{m.group(2)}", number,
                                f"a cp{m.group(1)}{m.group(2)} wheel at line {number}"))
            plat = _platform_of(m.group(3))
            if plat is not None:
                platforms.append(Hint(plat, number, f"a {m.group(3)} wheel at line {number}"))
        body = line.split("#", 1)[0].strip()
        if not body or ";" in body:
            continue
        name = canonicalize_name(re.split(r"[\s=<>!~@\[;]", body, maxsplit=1)[0])
        if name in ("pywin32", "pywinpty", "pypiwin32", "windows-curses", "wmi"):
            platforms.append(Hint("win32", number, f"{name} (Windows only) at line {number}"))
        elif name in ("pyobjc-core", "appnope"):
            platforms.append(Hint("darwin", number, f"{name} (macOS only) at line {number}"))
        elif knownstacks.is_cuda_runtime(name) or name in ("triton", "uvloop"):
            platforms.append(Hint("linux", number, f"{name} (no Windows wheel) at line {number}"))
    return pythons, platforms


def _from_json(text: str) -> Listing:
    listing = Listing(PIP_JSON, "")
    out: list[str] = []
    for entry in json.loads(text):
        name, version = str(entry["name"]), str(entry["version"])
        location = entry.get("editable_project_location")
        out.append(f"-e {_file_url(str(location), name)}" if location else f"{name}=={version}")
        if location:
            listing.editable_versions[len(out)] = version
        listing.rows += 1
    listing.text = "\n".join(out) + "\n"
    listing.platform += hints_from_requirements(listing.text)[1]
    return listing


def _columns(rule: str) -> list[int]:
    """The start of each column under a ``----- -------`` rule."""
    return [m.start() for m in re.finditer(r"-+", rule)]


def _from_pip_table(listing: Listing, lines: list[str], out: list[str | None]) -> None:
    starts: list[int] = []
    location_at: int | None = None
    for i, line in enumerate(lines):
        if out[i] is None:
            continue
        words = line.split()
        if [w.lower() for w in words[:2]] == ["package", "version"] and i + 1 < len(lines) \
                and _RULE.match(lines[i + 1]):
            starts = _columns(lines[i + 1])
            # the columns pip may add: Build (a wheel's build tag), Editable project location, Location,
            # Installer; only the editable location makes a row an editable install
            location_at = next((s for s in starts if line[s:].lower().startswith("editable project location")),
                               None)
            out[i] = ""
            continue
        if _RULE.match(line) or not line.strip():
            out[i] = ""
            continue
        if len(words) < 2 or not _NAME.match(words[0]):
            continue  # left as written: the reader names the line
        location = line[location_at:].split("  ", 1)[0].strip() \
            if location_at is not None and len(line) > location_at else ""
        out[i] = f"-e {_file_url(location, words[0])}" if location else f"{words[0]}=={words[1]}"
        if location:
            listing.editable_versions[i + 1] = words[1]
        listing.rows += 1


#: conda packages that exist on one platform only: the baseline's platform when nothing else says it
_CONDA_PLATFORM_ROWS = {"_libgcc_mutex": "linux", "libgcc-ng": "linux", "libstdcxx-ng": "linux",
                        "vs2015_runtime": "win32", "vc": "win32", "ucrt": "win32", "vc14_runtime": "win32",
                        "libcxx": "darwin"}


def _conda_row(listing: Listing, number: int, name: str, version: str, build: str, channel: str) -> str:
    """One conda row as a requirement line ('' when it is listed apart)."""
    n = name.lower()
    listing.rows += 1
    if n == "python" and _xy(version):
        listing.python.append(Hint(_xy(version) or "", number, f"the conda python {version} row at line {number}"))
    py = _conda_python(build)
    if py is not None and not listing.python:
        listing.python.append(Hint(py, number, f"the build {build} of {name} at line {number}"))
    cuda = _CUDA_BUILD.search(build) if n in ("pytorch", "torchvision", "torchaudio") else None
    if cuda is not None:
        listing.cuda.append(Hint(f"{cuda.group(1)}.{cuda.group(2)}", number, f"{name}'s build {build}"))
    if n in ("pytorch-cuda", "cudatoolkit", "cuda-version", "cuda-toolkit") and _xy(version):
        listing.cuda.append(Hint(_xy(version) or "", number, f"{name} {version} at line {number}"))
    plat = _CONDA_PLATFORM_ROWS.get(n) or ("linux" if n.startswith("ld_impl_linux") else None)
    if plat is not None and not any(h.value == plat for h in listing.platform):
        listing.platform.append(Hint(plat, number, f"the {plat}-only conda package {name} at line {number}"))
    if channel == "pypi" or build.startswith("pypi_"):
        return f"{name}=={version}"
    if channel == "<develop>" or build.startswith("dev_"):
        listing.apart.append(Apart(number, name, version, "a development (editable) install: its source is a "
                                   "folder on the baseline's machine (pin it as NAME @ git+URL@<commit>)"))
        return ""
    why = knownstacks.conda_only(n, build)
    if why is not None:
        listing.apart.append(Apart(number, name, version, why))
        return ""
    pypi = knownstacks.CONDA_RENAMES.get(n)
    if not version:
        return pypi or name
    if not _version_ok(version):
        listing.apart.append(Apart(number, name, version, f"conda version {version!r} is not a PEP 440 version"))
        return ""
    if pypi is not None and canonicalize_name(pypi) != canonicalize_name(name):
        listing.renamed.append(f"line {number}: conda {name} {version} -> {pypi}=={version}")
        return f"{pypi}=={version}"
    return f"{name}=={version}"


def _from_conda_table(listing: Listing, lines: list[str], out: list[str | None]) -> None:
    for i, line in enumerate(lines):
        if out[i] is None:
            continue
        if line.lstrip().startswith("#") or not line.strip():
            comment = line.lstrip("# ").strip()
            if comment.startswith("packages in environment at"):
                plat = _platform_of(comment.removeprefix("packages in environment at").strip(" :"))
                if plat is not None:
                    listing.platform.append(Hint(plat, i + 1, f"the environment path at line {i + 1}"))
            out[i] = ""
            continue
        words = line.split()
        if len(words) < 2 or not _NAME.match(words[0]) or "=" in line or "@" in line:
            continue
        build = words[2] if len(words) > 2 else ""
        channel = words[3] if len(words) > 3 else ""
        out[i] = _conda_row(listing, i + 1, words[0], words[1], build, channel)


def _from_conda_export(listing: Listing, lines: list[str], out: list[str | None]) -> None:
    for i, line in enumerate(lines):
        if out[i] is None:
            continue
        if line.startswith("# platform:"):
            plat = _platform_of(line.split(":", 1)[1].strip())
            if plat is not None:
                listing.platform.append(Hint(plat, i + 1, f"{line.strip()!r} at line {i + 1}"))
        m = _CONDA_EXPORT_ROW.match(line.strip())
        if m is None:
            out[i] = "" if line.lstrip().startswith("#") or not line.strip() else line
            continue
        out[i] = _conda_row(listing, i + 1, m.group(1), m.group(2), m.group(3), "")


_PACKAGE_FILE = re.compile(r"/([^/]+)/([^/]+)-([^-/]+)-([^-/]+)\.(?:tar\.bz2|conda)$")


def _from_conda_explicit(listing: Listing, lines: list[str], out: list[str | None]) -> None:
    """``conda list --explicit``: ``@EXPLICIT`` then one package URL per line, the file name
    ``name-version-build.conda`` (or ``.tar.bz2``) under its subdir (``linux-64``)."""
    for i, line in enumerate(lines):
        if out[i] is None:
            continue
        text = line.strip().split("#", 1)[0].strip()
        if line.startswith("# platform:"):
            plat = _platform_of(line.split(":", 1)[1].strip())
            if plat is not None:
                listing.platform.append(Hint(plat, i + 1, f"{line.strip()!r} at line {i + 1}"))
        m = _PACKAGE_FILE.search(text)
        if m is None:
            out[i] = ""
            if text and text != "@EXPLICIT":
                listing.apart.append(Apart(i + 1, text[:80], "", "a line conda --explicit does not write"))
            continue
        subdir, name, version, build = m.group(1), m.group(2), m.group(3), m.group(4)
        if subdir != "noarch" and not listing.platform:
            plat = _platform_of(subdir)
            if plat is not None:
                listing.platform.append(Hint(plat, i + 1, f"the {subdir} package at line {i + 1}"))
        out[i] = _conda_row(listing, i + 1, name, version, build, "")


def _yaml_item(line: str) -> tuple[int, str] | None:
    """``(indent, value)`` of a YAML block-sequence item ``  - value`` (quotes and comments off)."""
    stripped = line.lstrip(" ")
    if not stripped.startswith("- ") and stripped != "-":
        return None
    value = stripped[1:].strip()
    if " #" in value:
        value = value.split(" #", 1)[0].rstrip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    return len(line) - len(stripped), value


def _from_yaml(listing: Listing, lines: list[str], out: list[str | None]) -> None:
    """The regular shape ``conda env export`` writes (and environment.yml files follow): top-level
    keys, a ``dependencies:`` block sequence of conda specs, one ``- pip:`` item with a nested list
    of requirement lines. Anything else in the file is ignored (blanked)."""
    section = ""
    pip_indent: int | None = None
    for i, line in enumerate(lines):
        if out[i] is None:
            continue
        number = i + 1
        out[i] = ""
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[:1].isalpha():
            key, _, value = line.partition(":")
            section = key.strip()
            pip_indent = None
            if section == "prefix":
                plat = _platform_of(value.strip())
                if plat is not None:
                    listing.platform.append(Hint(plat, number, f"the prefix {value.strip()} at line {number}"))
            continue
        if section != "dependencies":
            continue
        item = _yaml_item(line)
        if item is None:
            continue
        indent, value = item
        if pip_indent is not None and indent > pip_indent:
            out[i] = value  # a pip requirement line, as pip reads it
            listing.rows += 1
            continue
        pip_indent = None
        if value.rstrip(":").strip() == "pip" and value.endswith(":"):
            pip_indent = indent
            continue
        m = _CONDA_SPEC.match(value)
        if m is None:
            listing.apart.append(Apart(number, value, "", "a conda spec stacksync cannot read"))
            continue
        name, op, version, build = m.group(1), m.group(2) or "", m.group(3) or "", m.group(4) or ""
        if name.lower() == "pip" and not version:
            continue
        if op in ("=", "==") and "*" not in version:
            row = _conda_row(listing, number, name, version, build, "")
            if op == "=" and not build and row and version.count(".") < 2:
                row += ".*"  # a hand-written `numpy=1.26` is conda's fuzzy match: 1.26.*
            out[i] = row
        else:
            row = _conda_row(listing, number, name, "", "", "")
            spec = f"{op}{version}" if op and op != "=" else (f"=={version.rstrip('.*')}.*" if version else "")
            out[i] = f"{row}{spec}" if row else ""
            if name.lower() == "python" and version and _xy(version.rstrip(".*")):
                listing.python.append(Hint(_xy(version.rstrip(".*")) or "", number, f"python{op}{version} at "
                                           f"line {number}"))
