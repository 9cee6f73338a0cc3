"""What one requirement says, in every shape pip accepts (pure; no pip import).

pip's ``parse_req_from_line`` / ``parse_editable`` decide the shape; this module follows them:

- ``name[extras] <specifier> ; marker`` and ``name @ URL ; marker`` (PEP 508, read by ``packaging``);
- a bare URL (``https://.../x-1.0-py3-none-any.whl; python_version < "3.12"``: the marker needs
  ``"; "`` after a URL, as in pip) or a path to an archive (``./dist/x-1.0.tar.gz``): the name and
  version come from the wheel / sdist file name (a wheel's, exactly as pip reads it; an sdist's as
  PEP 625 spells it), or from ``#egg=``;
- VCS URLs (``git+https://host/org/repo.git@<sha>#egg=name``): ``vcs``, ``commit`` (a full hex
  object id) or ``revision`` (a branch or tag, not exact), ``subdirectory``;
- ``-e`` editables: a VCS URL with ``#egg=`` or a ``name @ URL``, or a local directory (its name
  read from ``pyproject.toml`` / ``setup.cfg`` / ``setup.py``, else the folder's name).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

from packaging.markers import InvalidMarker, Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from stacksync.core.redact import shown_line

__all__ = ["Shape", "ShapeError", "VCS_PREFIXES", "ARCHIVE_EXTENSIONS", "read_requirement", "read_editable",
           "split_vcs", "version_from_filename", "is_url", "simple_pin", "plain_line", "requirement", "editable_fix"]

VCS_PREFIXES = ("git+", "hg+", "svn+", "bzr+")
_LOWER_HEX = frozenset("0123456789abcdef")
#: pip's ``is_url`` schemes: what it downloads from, and its VCS schemes (``vcs.all_schemes``)
_URL_SCHEMES = {"http", "https", "file", "ftp",
                "bzr+http", "bzr+https", "bzr+ssh", "bzr+sftp", "bzr+ftp", "bzr+lp", "bzr+file",
                "git+http", "git+https", "git+ssh", "git+git", "git+file",
                "hg+file", "hg+http", "hg+https", "hg+ssh", "hg+static-http",
                "svn+ssh", "svn+http", "svn+https", "svn+svn", "svn+file"}
ARCHIVE_EXTENSIONS = (".zip", ".whl", ".tar.bz2", ".tbz", ".tar.gz", ".tgz", ".tar", ".tar.xz", ".txz", ".tlz",
                      ".tar.lz", ".tar.lzma")
# Pattern strings, compiled on first use by re's own cache (lazy: start-up cost).
_HEX = r"^[0-9a-f]{40}([0-9a-f]{24})?$"
_PROJECT = r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$"


# ``name`` or ``name==version`` and nothing else, a version in the spelling pip-compile and uv write
# (release, a/b/rc, .postN, .devN, +local): the lines of a compiled lock (see :func:`simple_pin`).
_SIMPLE = (r"([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)"
           r"(?:==([0-9]+(?:\.[0-9]+)*(?:(?:a|b|rc)[0-9]+)?(?:\.post[0-9]+)?(?:\.dev[0-9]+)?"
           r"(?:\+[a-z0-9]+(?:\.[a-z0-9]+)*)?))?")


class ShapeError(ValueError):
    """A requirement pip refuses, or one whose name or version cannot be known exactly; ``fix`` is
    what to write instead on that line."""

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix


@dataclass(frozen=True)
class Shape:
    name: NormalizedName
    requirement: Requirement | None = None
    url: str | None = None
    marker: Marker | None = None
    extras: frozenset[str] = frozenset()
    specifier: str = ""
    #: version read from a wheel / sdist file name in the URL or path (the ``==`` pin pip makes of a
    #: bare wheel; the version of a conda ``name @ file:///.../x-1.0-...whl``)
    file_version: str | None = None
    vcs: str | None = None
    commit: str | None = None
    revision: str | None = None
    subdirectory: str | None = None
    editable: bool = False
    #: a bare URL or path (no ``name @``): pip reads the name from the file name
    bare: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)


def is_url(text: str) -> bool:
    """pip's ``is_url``: a scheme pip downloads from, or a VCS scheme."""
    scheme = urlsplit(text).scheme.lower() if ":" in text else ""
    return scheme in _URL_SCHEMES


def _filename(url: str) -> str:
    """The last path segment, unquoted (``torch-2.3.0%2Bcu121-...whl`` -> ``torch-2.3.0+cu121-...whl``)."""
    path = urlsplit(url).path if "://" in url or url.startswith("file:") else url
    return unquote(path.rstrip("/").rsplit("/", 1)[-1])


def version_from_filename(url: str) -> tuple[NormalizedName, str] | None:
    """(name, version) from a wheel or sdist file name at the end of ``url`` or a path, else ``None``."""
    name = _filename(url.split("#", 1)[0])
    try:
        if name.endswith(".whl"):
            n, v, _, _ = parse_wheel_filename(name)
            return n, str(v)
        if name.endswith((".tar.gz", ".zip")):
            n, v = parse_sdist_filename(name)
            return n, str(v)
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return None


def _fragment(url: str, key: str) -> str | None:
    frag = url.split("#", 1)[1] if "#" in url else ""
    for part in frag.split("&"):
        k, _, v = part.partition("=")
        if k == key:
            return v
    return None


def _egg(url: str) -> str | None:
    egg = _fragment(url, "egg")
    if egg is None:
        return None
    if not re.match(_PROJECT, egg, re.IGNORECASE):
        raise ShapeError(f"#egg={egg} is not a project name", "write NAME @ URL (without #egg=), e.g. "
                         f"mypkg @ {url.split('#', 1)[0]}")
    return egg


def split_vcs(url: str) -> tuple[str, str, str | None]:
    """``git+https://host/r.git@rev#frag`` -> (``git``, ``https://host/r.git``, ``rev`` or ``None``):
    the revision is after the last ``@`` of the path, as pip splits it."""
    vcs, _, rest = url.partition("+")
    rest = rest.split("#", 1)[0]
    parts = urlsplit(rest)
    path, rev = parts.path, None
    if "@" in path:
        path, rev = path.rsplit("@", 1)
    repo = parts._replace(path=path, fragment="").geturl()
    return vcs.lower(), repo, rev or None


def _vcs_fields(url: str) -> dict[str, str | None]:
    if not url.lower().startswith(VCS_PREFIXES):
        return {}
    vcs, _, rev = split_vcs(url)
    commit = rev.lower() if rev is not None and re.match(_HEX, rev.lower()) else None
    return {"vcs": vcs, "commit": commit, "revision": rev, "subdirectory": _fragment(url, "subdirectory")}


def _marker(text: str) -> Marker | None:
    text = text.strip()
    if not text:
        return None
    try:
        return Marker(text)
    except InvalidMarker as exc:
        raise ShapeError(f"malformed marker {_q(text)}: {_first_line(exc)}",
                         "write a PEP 508 marker, e.g. ; python_version >= \"3.10\"") from exc


def _q(text: str) -> str:
    """A piece of a line quoted in a message: masked, cut at 120 characters, one line (a hostile
    ``-r /proc/self/environ`` or a pasted file must not print the whole file or a secret)."""
    return f"'{shown_line(text)}'"


def _first_line(exc: Exception) -> str:
    """packaging's parse errors draw a caret on extra lines; one line is what a user reads."""
    return shown_line(str(exc).strip().splitlines()[0], 200)


def _looks_like_path(text: str) -> bool:
    return os.sep in text or (os.altsep is not None and os.altsep in text) or text.startswith(".")


def _path_url(path: str, base: Path) -> str:
    return (base / path).resolve().as_uri() if not os.path.isabs(path) else Path(path).as_uri()


def simple_pin(text: str) -> tuple[str, str | None] | None:
    """``(name, version)`` of a requirement that is a bare ``name`` (version ``None``) or ``name==version``
    with a plain version, as written; ``None`` for anything else (extras, markers, other operators,
    URLs, spaces, a name that reads as an archive path...). What :func:`read_requirement` and
    packaging make of such a line is known without parsing it: the pin of a compiled lock, read 800
    times in a run of an 800-package lock (tests/test_lockfile.py holds the two readings equal)."""
    found = re.fullmatch(_SIMPLE, text)
    if found is None or found.group(1).lower().endswith(ARCHIVE_EXTENSIONS):
        return None
    return found.group(1), found.group(2)


@lru_cache(maxsize=16384)
def requirement(text: str) -> Requirement:
    """``packaging.requirements.Requirement(text)``, cached (read-only: never change the result). One
    Requires-Dist line is read from the fetched wheel, from the installed dist-info and by verify in
    one run, ~50 µs each time; a plain ``name`` / ``name==version`` (:func:`simple_pin`) is built from
    its parts, as packaging builds it (tests/test_reqshape.py holds them equal). Raises
    :class:`InvalidRequirement` as packaging does."""
    simple = simple_pin(text)
    if simple is None:
        return Requirement(text)
    req = Requirement.__new__(Requirement)
    req.name, req.url, req.extras, req.marker = simple[0], None, set(), None
    req.specifier = SpecifierSet(f"=={simple[1]}" if simple[1] is not None else "")
    return req


def read_requirement(text: str, *, base: Path) -> Shape:
    """The requirement part of a non-editable line (``base``: the directory relative paths are read
    against: pip reads them against the current directory; a requirements file is usually run from
    its own folder, and stacksync reads them from there)."""
    url_like = is_url(text)
    sep = "; " if url_like else ";"
    head, marker_text = (text.split(sep, 1) + [""])[:2] if sep in text else (text, "")
    head = head.strip()
    if url_like:
        return _bare_url(head, _marker(marker_text), text)
    stripped, extras = _strip_extras(head)
    if _looks_like_path(head) and (base / stripped).is_dir():
        return _local_dir(stripped, base, extras, _marker(marker_text), editable=False)
    if stripped.lower().endswith(ARCHIVE_EXTENSIONS) and ("@" not in head or _looks_like_path(head.split("@", 1)[0])):
        return _bare_url(_path_url(stripped, base), _marker(marker_text), text, extras=extras)
    return _pep508(text)


def _strip_extras(text: str) -> tuple[str, frozenset[str]]:
    if text.endswith("]") and "[" in text:
        i = text.rfind("[")
        if i > 0:
            extras = frozenset(e.strip() for e in text[i + 1:-1].split(",") if e.strip())
            return text[:i].rstrip(), extras
    return text, frozenset()


def _pep508(text: str) -> Shape:
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        if ";" in text:
            _marker(text.split(";", 1)[1])
        hint = ""
        if "://" in text:
            hint = ("write NAME @ URL; a VCS URL takes its VCS prefix (git+https://, git+ssh://, git+file://), "
                    "as pip requires")
        elif "=" in text and not any(op in text for op in ("==", ">=", "<=", "!=", "~=", "===")):
            hint = "= is not a valid operator: write name==version"
        elif _looks_like_path(text):
            hint = "it looks like a path, but there is no such file or folder: check the path"
        raise ShapeError(f"not a requirement: {_q(text)} ({_first_line(exc)})",
                         hint or "write name==version, or name @ URL") from exc
    url = req.url
    fields = _vcs_fields(url) if url else {}
    file_version = None
    if url and not fields:
        # pip takes any URL here (a wrong file name fails at install); the version is read only
        # from a file name of this very project
        found = version_from_filename(url)
        if found is not None and found[0] == canonicalize_name(req.name):
            file_version = found[1]
    return Shape(name=canonicalize_name(req.name), requirement=req, url=url, marker=req.marker,
                 extras=frozenset(req.extras), specifier=str(req.specifier), file_version=file_version,
                 **fields)  # type: ignore[arg-type]


def _bare_url(url: str, marker: Marker | None, text: str, *, extras: frozenset[str] = frozenset()) -> Shape:
    fields = _vcs_fields(url)
    egg = _egg(url)
    found = None if fields else version_from_filename(url)
    if url.split("#", 1)[0].lower().endswith(".whl") and found is None:
        raise ShapeError(f"{_filename(url)} is not a valid wheel file name", "point at a wheel named "
                         "NAME-VERSION-PYTAG-ABITAG-PLATTAG.whl")
    if found is not None:
        name, version = found
    elif egg is not None:
        name, version = canonicalize_name(egg), None
    else:
        what = "a VCS URL" if fields else "a URL"
        raise ShapeError(f"{what} without a project name: {_q(url)}",
                         f"write NAME @ {shown_line(url)} (pip reads the name only by building the project)")
    return Shape(name=name, url=url, marker=marker, extras=extras, file_version=version, bare=True,
                 **fields)  # type: ignore[arg-type]


def read_editable(value: str, *, base: Path) -> Shape:
    """An ``-e`` value, as pip's ``parse_editable`` reads it."""
    try:
        req = Requirement(value)
    except InvalidRequirement:
        req = None
    if req is not None and req.url:
        fields = _vcs_fields(req.url)
        if not fields and not req.url.startswith("file:"):
            raise _not_editable(value)
        return Shape(name=canonicalize_name(req.name), requirement=req, url=req.url, marker=req.marker,
                     extras=frozenset(req.extras), editable=True, **fields)  # type: ignore[arg-type]
    stripped, extras = _strip_extras(value)
    if (base / stripped).is_dir() and not is_url(stripped):
        return _local_dir(stripped, base, extras, None, editable=True)
    if stripped.lower().startswith("file:"):
        # pip takes a file: URL editable without looking at it; the name is read from the project when
        # it is there, else from #egg= or the folder's name (pip freeze's comment above says it too)
        egg = _egg(stripped)
        folder = Path(unquote(urlsplit(stripped).path))
        if folder.is_dir():
            shape = _local_dir(str(folder), base, extras, None, editable=True)
            return shape if egg is None else Shape(**{**shape.__dict__, "name": canonicalize_name(egg)})
        return Shape(name=canonicalize_name(egg or folder.name), url=stripped.split("#", 1)[0], extras=extras,
                     editable=True, notes=(f"{folder} is not there; name from {'#egg=' if egg else 'its folder'}",))
    url = value
    for vcs in ("git", "hg", "svn", "bzr"):
        if url.lower().startswith(f"{vcs}:"):
            url = f"{vcs}+{url}"
            break
    fields = _vcs_fields(url)
    if not fields:
        raise _not_editable(value)
    egg = _egg(url)
    if egg is None:
        raise ShapeError(f"cannot tell the project name of {_q(value)}",
                         f"add #egg=NAME to the URL, or write -e NAME @ {shown_line(value)}")
    return Shape(name=canonicalize_name(egg), url=url, editable=True, **fields)  # type: ignore[arg-type]


def _not_editable(value: str) -> ShapeError:
    return ShapeError(f"{shown_line(value)} is not a valid editable requirement (pip takes a path to a local "
                      "project or a VCS URL such as git+https://...)",
                      f"drop -e to install it as a plain requirement: {shown_line(value)}")


def _local_dir(path: str, base: Path, extras: frozenset[str], marker: Marker | None, *, editable: bool) -> Shape:
    folder = (base / path).resolve() if not os.path.isabs(path) else Path(path)
    if not folder.is_dir():
        raise ShapeError(f"{path}: no such project folder", "check the path (relative paths are read "
                         "from the requirements file's folder)")
    if not any((folder / f).is_file() for f in ("pyproject.toml", "setup.py", "setup.cfg")):
        raise ShapeError(f"{path} is not installable: neither setup.py nor pyproject.toml found",
                         "point at the project's root folder")
    name = project_name(folder)
    return Shape(name=canonicalize_name(name or folder.name), url=folder.as_uri(), marker=marker, extras=extras,
                 editable=editable, notes=() if name else (f"project name of {path} guessed from its folder",))


def project_name(folder: Path) -> str | None:
    """The ``[project] name`` of pyproject.toml, or ``name =`` in setup.cfg / setup.py, without building."""
    # lazy: start-up cost (only a local project path in a lock reads its pyproject.toml)
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    try:
        data = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))
        name = data.get("project", {}).get("name")
        if isinstance(name, str) and name:
            return name
    except (OSError, tomllib.TOMLDecodeError, AttributeError):
        pass
    for fname, pattern in (("setup.cfg", r"^\s*name\s*=\s*([A-Za-z0-9._-]+)\s*$"),
                           ("setup.py", r"""\bname\s*=\s*["']([A-Za-z0-9._-]+)["']""")):
        try:
            found = re.search(pattern, (folder / fname).read_text(encoding="utf-8"), re.MULTILINE)
        except OSError:
            continue
        if found:
            return found.group(1)
    return None


def plain_line(text: str) -> tuple[str, str | None, tuple[str, ...], str] | None:
    """``(name, version, hashes, requirement)`` of a line that is a plain pin or name
    (:func:`simple_pin`) alone or followed by ``--hash=sha256:<64 hex>`` options alone (what
    pip-compile and uv write for every package, and a requirements.in of names); ``None`` for anything
    else. What the option parser and :mod:`stacksync.lock.lockfile` make of such a line, without them
    (tests/test_lockfile.py holds the readings equal)."""
    head, sep, rest = text.partition(" --hash=")
    requirement = head.strip()  # no space in a plain pin: the first word that starts with "-" is this one
    simple = simple_pin(requirement)
    if simple is None:
        return None
    if not sep:
        return simple[0], simple[1], (), requirement
    words = f"--hash={rest}".split()
    for word in words:  # each exactly --hash=sha256:<64 lower-case hex digits>
        if len(word) != 78 or not word.startswith("--hash=sha256:") or not _LOWER_HEX.issuperset(word[14:]):
            return None
    return simple[0], simple[1], tuple(sorted({w[7:] for w in words})), requirement


def editable_fix(value: str) -> str:
    """The fix for an editable line in a lock: its commit without ``-e`` when it names one."""
    try:
        shape = read_editable(value, base=Path.cwd())
    except ShapeError:
        shape = None
    if shape is not None and shape.vcs and shape.commit:
        return f"pin it at its commit without -e: {shape.name} @ {shape.url}"
    return "install editable projects separately, or pin a released version"
