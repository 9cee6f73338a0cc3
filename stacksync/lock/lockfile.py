"""The lock model: requirement files as pip reads them, and as pip-compile, uv and pip freeze write them.

One reader for ``requirements.in``, hashed locks and freeze output (``pip freeze``, ``pip list
--format=freeze``, ``uv pip freeze``, conda's pip section). The line grammar pip defines
(encodings, continuations, comments, ``${VAR}``, options) is :mod:`stacksync.lock.reqsyntax`; what one
requirement says (PEP 508, bare URLs and archive paths, VCS, editables) is :mod:`stacksync.lock.reqshape`;
``packaging`` parses every requirement, marker and version.

Every problem is reported with ``file:line`` and the fix for that line; :func:`parse` collects them
all before raising, so a user fixes a broken file in one pass. What pip accepts is accepted; what is
refused is what pip refuses, or what cannot be made exact (a lock line without an exact version, a
VCS reference without a commit).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.markers import Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from stacksync.core.errors import LockError, StacksyncError
from stacksync.core.redact import shown_line, strip_credentials
from stacksync.lock import reqshape, reqsyntax
from stacksync.lock.reqsyntax import Logical, OptionSyntaxError, Physical

if TYPE_CHECKING:
    from stacksync.lock import listing

_HEX_DIGITS = frozenset("0123456789abcdef")
# What pip freeze writes above an editable line: "# Editable Git install with no remote (name==1.0)"
_EDITABLE_COMMENT = "# Editable"


class LockProblems(StacksyncError):
    """Every problem found in one or more requirement files; one line each."""

    def __init__(self, problems: list[LockError]) -> None:
        super().__init__(problems)
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


@dataclass(frozen=True)
class Option:
    """An option line such as ``--index-url URL`` (``name`` in its long spelling; ``-r`` / ``-c``
    for includes)."""

    name: str
    value: str
    line: int


@dataclass(frozen=True)
class Pin:
    """One requirement line. ``version`` is the exact string of an ``==``/``===`` pin (local
    versions such as ``2.4.0+cu121`` kept), ``None`` for direct references, editables and
    unpinned requirements (a bare wheel URL gets the version its file name says, as pip does).

    Direct references keep their ``url``; VCS ones their ``vcs`` (``git``...), ``commit`` (a full
    hex id, ``None`` for a branch or tag, see ``revision``) and ``subdirectory``. ``file_version``
    is the version a wheel / sdist file name in the URL says (conda's ``name @ file:///...whl``).
    ``options`` are the other options on the line (``--config-settings``, and those pip ignores on a
    requirement line such as ``--index-url``, kept as hints). ``source_line`` is the line as written
    (``${VAR}`` unexpanded); ``editable_version`` the version pip freeze noted above an editable."""

    name: NormalizedName
    requirement: str
    line: int
    path: str
    version: str | None = None
    specifier: str = ""
    extras: frozenset[str] = frozenset()
    marker: Marker | None = None
    url: str | None = None
    editable: bool = False
    hashes: tuple[str, ...] = ()
    via: tuple[str, ...] = ()
    vcs: str | None = None
    commit: str | None = None
    revision: str | None = None
    subdirectory: str | None = None
    file_version: str | None = None
    options: tuple[tuple[str, str], ...] = ()
    source_line: str = ""
    constraint: bool = False
    editable_version: str | None = None

    @property
    def pinned(self) -> bool:
        return self.version is not None or (self.url is not None and not self.editable)

    @property
    def is_vcs(self) -> bool:
        return self.vcs is not None

    @property
    def is_local_file(self) -> bool:
        """A ``file:`` direct reference that is not VCS (conda's ``name @ file:///croot/...``)."""
        return self.url is not None and self.vcs is None and self.url.startswith("file:")

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def option_values(self, name: str) -> list[str]:
        return [v for k, v in self.options if k == name]

    def applies(self, environment: Mapping[str, str] | None) -> bool:
        """Whether the marker holds for ``environment`` (a PEP 508 marker environment, as the probe
        records it). ``None`` means "the host running stacksync"."""
        if self.marker is None:
            return True
        env = dict(environment) if environment is not None else None
        if env is not None:
            env.setdefault("extra", "")
        try:
            return self.marker.evaluate(env)
        except (UndefinedComparison, UndefinedEnvironmentName):
            return False

    def display(self) -> str:
        """The pin as messages name it: ``name==version``, ``name @ URL`` for a direct reference (its
        credentials stripped), ``name SPECIFIER`` or the bare name for an unpinned requirement."""
        if self.version is not None:
            return f"{self.name}=={self.version}"
        if self.url is not None:
            return f"{self.name} @ {strip_credentials(self.url)}"
        return f"{self.name}{self.specifier}"

    def key(self) -> str:
        """What makes two installs the same: the exact version; for a direct reference to a wheel or
        sdist, the version its file name says (the hash pins the file); else the URL."""
        if self.version is not None:
            return self.version
        if self.file_version is not None and not self.is_vcs:
            return self.file_version
        return self.url or ""


@dataclass
class RequirementsFile:
    path: Path
    pins: list[Pin] = field(default_factory=list)
    options: list[Option] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    #: pins of ``-c`` constraint files (they limit versions; they are not requirements)
    constraints: list[Pin] = field(default_factory=list)
    #: the encoding the file was read in (``utf-16`` for a PowerShell ``pip freeze > file``)
    encoding: str = "utf-8"

    def option_values(self, name: str) -> list[str]:
        return [o.value for o in self.options if o.name == name]

    def names(self) -> set[NormalizedName]:
        return {p.name for p in self.pins}

    def for_environment(self, environment: Mapping[str, str] | None) -> dict[NormalizedName, Pin]:
        """The pins whose markers hold for ``environment``, one per name."""
        return {p.name: p for p in self.pins if p.applies(environment)}

    def not_for(self, environment: Mapping[str, str] | None) -> list[Pin]:
        """The pins whose markers do not hold for ``environment`` (listed, never dropped silently)."""
        return [p for p in self.pins if not p.applies(environment)]

    def get(self, name: str) -> list[Pin]:
        want = canonicalize_name(name)
        return [p for p in self.pins if p.name == want]


def parse_text(text: str, path: str | Path = "<string>", *, lock: bool = False,
               follow_includes: bool = True, environ: Mapping[str, str] | None = None,
               _stack: tuple[Path, ...] = ()) -> RequirementsFile:
    """Parse requirement-file text. With ``lock``, every requirement must be an exact pin or a pinned
    direct reference (what an install may trust). Raises :class:`LockProblems` with every problem."""
    result = RequirementsFile(Path(path))
    problems: list[LockError] = []
    seen: dict[tuple[NormalizedName, str], Pin] = {}
    last_pin: int | None = None
    in_header = True
    editable_note: str | None = None
    base = Path(path).parent
    vias: dict[int, list[str]] = {}
    for item in reqsyntax.logical_lines(text, environ):
        if isinstance(item, Physical):
            if in_header and not result.pins and not result.options:
                result.header.append(item.comment)
            elif last_pin is not None:
                _via(vias, last_pin, item.comment)
            if item.comment.startswith(_EDITABLE_COMMENT):
                editable_note = item.comment
            continue
        in_header = False
        note, editable_note = editable_note, None
        try:
            parsed = _parse_logical(item, str(path), base, lock=lock, editable_note=note)
        except LockError as exc:
            problems.append(exc)
            last_pin = None
            continue
        for option in parsed[1]:
            result.options.append(option)
            if follow_includes and option.name in ("-r", "-c"):
                problems.extend(_include(result, option, Path(path), lock=lock, seen=seen, environ=environ,
                                         stack=(*_stack, Path(os.path.abspath(path)))))
        pin = parsed[0]
        if pin is None:
            last_pin = None
            continue
        clash = seen.get((pin.name, str(pin.marker)))
        if clash is not None and clash.key() != pin.key():
            problems.append(LockError(path, pin.line,
                                      f"{pin.name} is pinned twice: {clash.key()} (line {clash.line}) "
                                      f"and {pin.key()}",
                                      "keep one pin, or give each a marker that tells them apart"))
            continue
        seen[(pin.name, str(pin.marker))] = pin
        if clash is None:
            result.pins.append(pin)
            last_pin = len(result.pins) - 1
    if problems:
        raise LockProblems(problems)
    for index, entries in vias.items():
        # A pin made by this parse, not yet seen by anyone else: its ``via`` is set in place
        # (dataclasses.replace costs ~20 µs a pin; an 800-pin lock has 800 ``# via`` blocks).
        pin = result.pins[index]
        object.__setattr__(pin, "via", (*pin.via, *entries))
    return result


def _include(result: RequirementsFile, option: Option, here: Path, *, lock: bool,
             seen: dict[tuple[NormalizedName, str], Pin], environ: Mapping[str, str] | None,
             stack: tuple[Path, ...]) -> list[LockError]:
    """Follow ``-r`` / ``-c`` as pip does: relative to the including file; a missing file is an
    error naming the line that includes it; a file that includes itself is refused.

    An include must stay inside the folder of the file first read (a profile folder): a lock from a
    pull request with ``-r /proc/self/environ`` or ``-r ../../.netrc`` would otherwise put any
    readable file into the error output (and CI logs). Such a line is refused, never followed."""
    shown = shown_line(option.value)
    if reqshape.is_url(option.value) and not option.value.startswith("file:"):
        return [LockError(here, option.line, f"includes a URL ({shown}); stacksync reads local files only",
                          f"download it and include the local copy: {option.name} FILE")]
    included = here.parent / option.value
    root = (stack[0] if stack else Path(os.path.abspath(here))).parent
    if not _inside(included, root):
        return [LockError(here, option.line, f"{option.name} {shown} names a file outside the folder {root}; "
                          "stacksync reads included files only from inside it (not followed)",
                          f"copy the file into {root} and include it by a relative path, or remove the "
                          f"{option.name} line")]
    if Path(os.path.abspath(included)) in stack or len(stack) > 32:
        return [LockError(here, option.line, f"{shown} includes a file that is already being read "
                          f"(an include cycle, through {here.name})", f"remove the {option.name} line")]
    if not included.is_file():
        kind = "constraints" if option.name == "-c" else "requirements"
        return [LockError(here, option.line, f"{kind} file {shown} not found ({shown_line(str(included))})",
                          f"check the path (relative to {here.parent}), or remove the {option.name} line")]
    try:
        sub = _parse_file(included, lock=lock and option.name == "-r", environ=environ, stack=stack)
    except LockProblems as exc:
        return exc.problems
    if option.name == "-c":
        result.constraints.extend(replace(p, constraint=True) for p in (*sub.pins, *sub.constraints))
        return []
    for pin in sub.pins:
        seen.setdefault((pin.name, str(pin.marker)), pin)
        result.pins.append(pin)
    result.constraints.extend(sub.constraints)
    result.options.extend(o for o in sub.options if o.name not in ("-r", "-c"))
    return []


def _inside(path: Path, root: Path) -> bool:
    """Whether ``path`` is in ``root`` once both are resolved (``..`` and symbolic links followed)."""
    try:
        return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))
    except (OSError, ValueError):  # a NUL byte, a name too long
        return False


def _via(vias: dict[int, list[str]], index: int, comment: str) -> None:
    """pip-compile's ``# via`` annotations under a pin (attached once, at the end: linear time)."""
    text = comment.lstrip("#").strip()
    if not text or text == "via" or comment.startswith(_EDITABLE_COMMENT):
        return
    if text.startswith("via "):
        text = text[4:].strip()
    vias.setdefault(index, []).append(text)


#: the default of every Pin field that has one (all plain values: no default_factory)
_PIN_DEFAULTS = {f.name: f.default for f in fields(Pin) if f.default is not MISSING}


def _new_pin(**values: Any) -> Pin:
    """``Pin(**values)``, made without the frozen dataclass's ``__init__`` (one ``object.__setattr__`` per
    field: ~7 µs a pin, ~2 µs this way; a lock makes one per line): the same fields in the instance's
    ``__dict__``, equal and hashing equal (tests/test_lockfile.py). A freshly made pin only: never use
    it to change one."""
    pin: Pin = object.__new__(Pin)
    state = pin.__dict__
    state.update(_PIN_DEFAULTS)
    state.update(values)
    return pin


def _parse_logical(logical: Logical, path: str, base: Path, *, lock: bool,
                   editable_note: str | None) -> tuple[Pin | None, list[Option]]:
    number = logical.line
    plain = reqshape.plain_line(logical.text)
    if plain is not None and (plain[1] is not None or not lock):
        name, version, hashes, requirement = plain
        return _new_pin(name=canonicalize_name(name), requirement=requirement, line=number, path=path,
                        version=version, specifier=f"=={version}" if version is not None else "", hashes=hashes,
                        source_line=logical.raw), []
    args, opts_text = reqsyntax.break_args_options(logical.text)
    args = args.strip()
    try:
        opts = reqsyntax.parse_options(opts_text) if opts_text else []
    except OptionSyntaxError as exc:
        raise LockError(path, number, shown_line(str(exc)) if "malformed hash" in str(exc) else
                        f"pip cannot read '{shown_line(logical.text)}': {shown_line(str(exc))}",
                        reqsyntax.option_fix(exc)) from None
    hashes = tuple(sorted({v for s, v in opts if s.name == "--hash"}))
    for h in hashes:
        digest = h.partition(":")[2]
        if not digest or not set(digest) <= _HEX_DIGITS:
            raise LockError(path, number, f"malformed hash '{shown_line(h)}'", "write --hash=sha256:<64 hex digits>")
    editables = [v for s, v in opts if s.name == "-e"]
    if not args and not editables:
        if hashes and lock:
            raise LockError(path, number, "hash line with no requirement before it",
                            "put the --hash lines right after their 'name==version \\' line")
        return None, [Option(s.name, v, number) for s, v in opts if s.name not in ("--hash", "--config-settings")]
    kept = tuple((s.name, v) for s, v in opts if s.name not in ("--hash", "-e"))
    if lock and not args:
        raise LockError(path, number, f"editable requirement '{shown_line(editables[0])}' in a lock; pip cannot "
                        "hash-check it", reqshape.editable_fix(editables[0]))
    simple = reqshape.simple_pin(args) if args else None
    if simple is not None and (simple[1] is not None or not lock):
        # what the shape and _pin below make of it, without packaging's parse (~50 µs a line)
        name, version = simple
        return _new_pin(name=canonicalize_name(name), requirement=args, line=number, path=path, version=version,
                        specifier=f"=={version}" if version is not None else "", hashes=hashes, options=kept,
                        source_line=logical.raw), []
    try:
        if args:
            shape = reqshape.read_requirement(args, base=base)
        else:
            shape = reqshape.read_editable(editables[0], base=base)
    except reqshape.ShapeError as exc:
        raise LockError(path, number, exc.message, exc.fix) from None
    requirement = args or f"-e {editables[0]}"
    if shape.editable:
        kept = tuple(kv for kv in kept if kv[0] == "--config-settings")  # pip ignores the rest on -e
    pin = _pin(shape, requirement, number, path, hashes, kept, logical.raw, editable_note)
    _check_lock(pin, shape, path, lock=lock)
    return pin, []


def _pin(shape: reqshape.Shape, requirement: str, number: int, path: str, hashes: tuple[str, ...],
         options: tuple[tuple[str, str], ...], raw: str, editable_note: str | None) -> Pin:
    version = None
    if shape.requirement is not None and shape.url is None:
        specs = list(shape.requirement.specifier)
        if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
            version = specs[0].version
            if specs[0].operator == "==":
                try:
                    Version(version)
                except InvalidVersion as exc:
                    raise LockError(path, number, f"{shape.requirement.name}: '{shown_line(version)}' is not a "
                                    "PEP 440 version", "pin a released version") from exc
    elif shape.bare and shape.file_version is not None and shape.url is not None \
            and shape.url.split("#", 1)[0].endswith(".whl"):
        version = None  # a bare wheel stays a direct reference; its version is file_version
    noted = None
    if editable_note is not None and shape.editable and editable_note.endswith(")") and "(" in editable_note:
        inner = editable_note.rsplit("(", 1)[1][:-1]
        noted_name, sep, noted_version = inner.partition("==")
        if sep and canonicalize_name(noted_name) == shape.name:
            noted = noted_version
    return Pin(name=shape.name, requirement=requirement, line=number, path=path, version=version,
               specifier=shape.specifier, extras=shape.extras, marker=shape.marker, url=shape.url,
               editable=shape.editable, hashes=hashes, vcs=shape.vcs, commit=shape.commit,
               revision=shape.revision, subdirectory=shape.subdirectory, file_version=shape.file_version,
               options=options, source_line=raw, editable_version=noted)


def _check_lock(pin: Pin, shape: reqshape.Shape, path: str, *, lock: bool) -> None:
    if not lock:
        return
    number = pin.line
    if pin.editable:
        raise LockError(path, number, f"editable requirement '{shown_line(pin.requirement[3:])}' in a lock; pip cannot "
                        "hash-check it",
                        f"pin it at a commit without -e ({pin.name} @ {pin.url})" if pin.is_vcs and pin.commit
                        else "install editable projects separately, or pin a released version")
    if pin.version is None and pin.url is None:
        found = pin.specifier or "no version"
        raise LockError(path, number, f"{pin.name} is not pinned ({found}) in a lock",
                        f"pin an exact version, e.g. {pin.name}==X.Y.Z, or compile the lock again")
    if pin.is_vcs and pin.commit is None:
        rev = f" (at {pin.revision!r}, a branch or tag)" if pin.revision else ""
        raise LockError(path, number, f"{pin.name}: VCS reference without a commit in a lock{rev}",
                        "append @<full commit sha> to the URL")


def _parse_file(path: Path, *, lock: bool, environ: Mapping[str, str] | None,
                stack: tuple[Path, ...], follow_includes: bool = True) -> RequirementsFile:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise LockProblems([LockError(path, 0, "file not found", "check the path, or run `invoke compile`")]) from None
    except OSError as exc:
        raise LockProblems([LockError(path, 0, f"cannot read file: {exc}")]) from exc
    try:
        text, encoding = reqsyntax.decode(data)
    except reqsyntax.DecodeError as exc:
        raise LockProblems([LockError(path, exc.line, f"cannot decode the file: {exc}",
                                      "save it as UTF-8 (pip also reads UTF-16 with a BOM, or a "
                                      "'# -*- coding: NAME -*-' first line)")]) from None
    parsed = parse_text(text, path, lock=lock, follow_includes=follow_includes, environ=environ, _stack=stack)
    parsed.encoding = encoding
    return parsed


def parse(path: str | Path, *, lock: bool = False, follow_includes: bool = True,
          environ: Mapping[str, str] | None = None) -> RequirementsFile:
    """Parse the file at ``path`` as pip reads it (any encoding pip decodes, ``-r`` / ``-c``
    followed); a missing file is a :class:`LockProblems` naming it."""
    p = Path(path)
    return _parse_file(p, lock=lock, environ=environ, stack=(), follow_includes=follow_includes)


def parse_listing(path: str | Path, *, environ: Mapping[str, str] | None = None
                  ) -> tuple[RequirementsFile, listing.Listing]:
    """A pasted package list at ``path`` (a freeze, ``pip list``, ``conda list``, ``conda env export``
    ..., any encoding pip decodes) read as a freeze: the pins and what the list says
    (:func:`stacksync.lock.listing.read_listing`). Line numbers are the file's."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise LockProblems([LockError(p, 0, "file not found", "check the path")]) from None
    except OSError as exc:
        raise LockProblems([LockError(p, 0, f"cannot read file: {exc}")]) from exc
    try:
        text, encoding = reqsyntax.decode(data)
    except reqsyntax.DecodeError as exc:
        raise LockProblems([LockError(p, exc.line, f"cannot decode the file: {exc}",
                                      "save it as UTF-8 (pip also reads UTF-16 with a BOM, or a "
                                      "'# -*- coding: NAME -*-' first line)")]) from None
    from stacksync.lock import listing  # lazy: start-up cost (only a pasted list needs its readers)

    found = listing.read_listing(text)
    parsed = parse_text(found.text, p, environ=environ)
    parsed.pins = [replace(pin, editable_version=found.editable_versions[pin.line])
                   if pin.line in found.editable_versions and pin.editable_version is None else pin
                   for pin in parsed.pins]
    parsed.encoding = encoding
    return parsed, found


def require_hashes(pins: Iterable[Pin]) -> None:
    """Every pin must carry a hash (an install runs with --require-hashes)."""
    problems = [LockError(p.path, p.line, f"{p.display()} has no --hash",
                          "compile the lock with hashes: invoke compile")
                for p in pins if not p.hashes and not p.editable]
    if problems:
        raise LockProblems(problems)


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks (torch wheels are GBs): what a lock's ``--hash=sha256:`` holds."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def format_pin(pin: Pin) -> str:
    """``name==version`` (or ``name @ url``) with the marker, without hashes."""
    return pin.requirement
