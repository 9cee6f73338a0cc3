"""The lock model: requirement files as pip-compile, uv and pip freeze write them.

One parser for ``requirements.in``, hashed locks and freeze output. It uses ``packaging`` for every
requirement, marker and version; the only hand-written part is the line grammar pip itself defines
(continuations, comments, option lines, ``--hash``), which ``packaging`` does not cover.

Every problem is reported with ``file:line``; :func:`parse` collects them all before raising, so a
user fixes a broken lock in one pass.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import InvalidMarker, Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from .errors import LockError, StacksyncError

# Option lines pip accepts in requirement files that take a value. Canonical spelling first.
_VALUE_OPTIONS = {
    "-i": "--index-url", "--index-url": "--index-url",
    "--extra-index-url": "--extra-index-url",
    "-f": "--find-links", "--find-links": "--find-links",
    "--trusted-host": "--trusted-host",
    "-c": "-c", "--constraint": "-c",
    "-r": "-r", "--requirement": "-r",
    "--no-binary": "--no-binary", "--only-binary": "--only-binary",
    "--config-settings": "--config-settings",
}
_FLAG_OPTIONS = {"--no-index", "--pre", "--prefer-binary", "--require-hashes", "--use-feature"}
_HASH_ALGOS = {"sha256", "sha384", "sha512"}


class LockProblems(StacksyncError):
    """Every problem found in one or more requirement files; one line each."""

    def __init__(self, problems: list[LockError]) -> None:
        super().__init__(problems)
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


@dataclass(frozen=True)
class Option:
    """An option line such as ``--index-url URL`` (``name`` in its long spelling)."""

    name: str
    value: str
    line: int


@dataclass(frozen=True)
class Pin:
    """One requirement line. ``version`` is the exact string of an ``==``/``===`` pin (local
    versions such as ``2.4.0+cu121`` kept), ``None`` for direct references, editables and
    unpinned requirements."""

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

    @property
    def pinned(self) -> bool:
        return self.version is not None or (self.url is not None and not self.editable)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

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

    def key(self) -> str:
        """What makes two installs the same: the exact version, or the URL of a direct reference."""
        return self.version if self.version is not None else (self.url or "")


@dataclass
class RequirementsFile:
    path: Path
    pins: list[Pin] = field(default_factory=list)
    options: list[Option] = field(default_factory=list)
    header: list[str] = field(default_factory=list)

    def option_values(self, name: str) -> list[str]:
        return [o.value for o in self.options if o.name == name]

    def names(self) -> set[NormalizedName]:
        return {p.name for p in self.pins}

    def for_environment(self, environment: Mapping[str, str] | None) -> dict[NormalizedName, Pin]:
        """The pins whose markers hold for ``environment``, one per name."""
        return {p.name: p for p in self.pins if p.applies(environment)}

    def get(self, name: str) -> list[Pin]:
        want = canonicalize_name(name)
        return [p for p in self.pins if p.name == want]


@dataclass(frozen=True)
class _Logical:
    """One logical line: continuations joined, comment removed, starting line number kept."""

    text: str
    line: int
    comment: str


def _logical_lines(text: str) -> Iterator[_Logical]:
    buf: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not buf:
            start = number
        body, comment = _split_comment(raw)
        if body.rstrip().endswith("\\"):
            buf.append(body.rstrip()[:-1])
            continue
        buf.append(body)
        yield _Logical(" ".join(part.strip() for part in buf).strip(), start, comment)
        buf = []
    if buf:
        yield _Logical(" ".join(part.strip() for part in buf).strip(), start, "")


def _split_comment(raw: str) -> tuple[str, str]:
    """pip's rule: ``#`` starts a comment at the start of a line or after whitespace."""
    stripped = raw.lstrip()
    if stripped.startswith("#"):
        return "", stripped
    for i, ch in enumerate(raw):
        if ch == "#" and i > 0 and raw[i - 1] in " \t":
            return raw[:i], raw[i:]
    return raw, ""


def parse_text(text: str, path: str | Path = "<string>", *, lock: bool = False,
               follow_includes: bool = True) -> RequirementsFile:
    """Parse requirement-file text. With ``lock``, every requirement must be an exact pin or a pinned
    direct reference (what an install may trust). Raises :class:`LockProblems` with every problem."""
    result = RequirementsFile(Path(path))
    problems: list[LockError] = []
    seen: dict[tuple[NormalizedName, str], Pin] = {}
    last_pin: int | None = None
    in_header = True
    for logical in _logical_lines(text):
        if logical.comment and not logical.text:
            if in_header:
                result.header.append(logical.comment)
            elif last_pin is not None:
                _attach_via(result, last_pin, logical.comment)
            continue
        if not logical.text:
            in_header = in_header and not result.pins
            continue
        in_header = False
        try:
            item = _parse_logical(logical, str(path), lock=lock)
        except LockError as exc:
            problems.append(exc)
            last_pin = None
            continue
        if isinstance(item, Option):
            result.options.append(item)
            if follow_includes and item.name == "-r":
                problems.extend(_include(result, Path(path).parent / item.value, lock=lock, seen=seen))
            continue
        clash = seen.get((item.name, str(item.marker)))
        if clash is not None and clash.key() != item.key():
            problems.append(LockError(path, item.line,
                                      f"{item.name} is pinned twice: {clash.key()} (line {clash.line}) "
                                      f"and {item.key()}",
                                      "keep one pin, or give each a marker that tells them apart"))
            continue
        seen[(item.name, str(item.marker))] = item
        if clash is None:
            result.pins.append(item)
            last_pin = len(result.pins) - 1
    if problems:
        raise LockProblems(problems)
    return result


#: files whose ``-r`` includes are being read (a file that includes itself, directly or not)
_INCLUDING: list[Path] = []


def _include(result: RequirementsFile, included: Path, *, lock: bool,
             seen: dict[tuple[NormalizedName, str], Pin]) -> list[LockError]:
    here = Path(os.path.abspath(result.path))
    chain = [*_INCLUDING, here]
    if Path(os.path.abspath(included)) in chain or len(chain) > 32:
        return [LockError(result.path, 0, f"-r {included.name} includes a file that is already being read "
                          "(an include cycle)", "remove the -r line that closes the cycle")]
    _INCLUDING.append(here)
    try:
        sub = parse(included, lock=lock)
    except LockProblems as exc:
        return exc.problems
    finally:
        _INCLUDING.pop()
    for pin in sub.pins:
        seen.setdefault((pin.name, str(pin.marker)), pin)
        result.pins.append(pin)
    result.options.extend(o for o in sub.options if o.name != "-r")
    return []


def _attach_via(result: RequirementsFile, index: int, comment: str) -> None:
    text = comment.lstrip("#").strip()
    if not text or text == "via":
        return
    if text.startswith("via "):
        text = text[4:].strip()
    pin = result.pins[index]
    result.pins[index] = Pin(**{**pin.__dict__, "via": (*pin.via, text)})


def _parse_logical(logical: _Logical, path: str, *, lock: bool) -> Option | Pin:
    text, number = logical.text, logical.line
    if text.startswith("--hash"):
        raise LockError(path, number, "hash line with no requirement before it",
                        "put the --hash lines right after their 'name==version \\' line")
    if text.startswith(("-e ", "--editable ", "--editable=")):
        value = text.split("=", 1)[1] if text.startswith("--editable=") else text.split(None, 1)[1]
        return _editable(value.strip(), path, number, lock=lock)
    if text.startswith("-"):
        return _option(text, path, number)
    return _requirement(text, path, number, lock=lock)


def _option(text: str, path: str, number: int) -> Option:
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise LockError(path, number, f"cannot read option line: {exc}") from exc
    head, _, inline = words[0].partition("=")
    if head in _FLAG_OPTIONS:
        return Option(head, inline or " ".join(words[1:]), number)
    if head not in _VALUE_OPTIONS:
        raise LockError(path, number, f"unknown option {head!r}",
                        "use a pip requirement-file option such as --index-url or --hash")
    value = inline or (words[1] if len(words) > 1 else "")
    if not value:
        raise LockError(path, number, f"option {head} needs a value")
    return Option(_VALUE_OPTIONS[head], value, number)


def _split_hashes(text: str, path: str, number: int) -> tuple[str, tuple[str, ...]]:
    """Split ``req --hash=sha256:x --hash sha256:y`` into the requirement and its hashes."""
    if " --" not in f" {text}" or "--hash" not in text:
        return text, ()
    req, _, rest = text.partition(" --")
    hashes: list[str] = []
    words = ("--" + rest).split()
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--hash" and i + 1 < len(words):
            value, i = words[i + 1], i + 2
        elif word.startswith("--hash="):
            value, i = word[len("--hash="):], i + 1
        else:
            raise LockError(path, number, f"unexpected {word!r} after the requirement",
                            "only --hash=ALGO:HEX may follow a requirement")
        algo, sep, digest = value.partition(":")
        if not sep or algo not in _HASH_ALGOS or not digest or any(c not in "0123456789abcdef" for c in digest):
            raise LockError(path, number, f"malformed hash {value!r}", "write --hash=sha256:<64 hex digits>")
        hashes.append(f"{algo}:{digest}")
    return req.strip(), tuple(sorted(set(hashes)))


def _requirement(text: str, path: str, number: int, *, lock: bool) -> Pin:
    body, hashes = _split_hashes(text, path, number)
    try:
        req = Requirement(body)
    except InvalidMarker as exc:
        raise LockError(path, number, f"malformed marker in {body!r}: {_first_line(exc)}",
                        "write a PEP 508 marker, e.g. ; python_version >= \"3.10\"") from exc
    except InvalidRequirement as exc:
        if ";" in body:
            try:
                Marker(body.split(";", 1)[1])
            except InvalidMarker as mexc:
                raise LockError(path, number, f"malformed marker in {body!r}: {_first_line(mexc)}",
                                "write a PEP 508 marker, e.g. ; python_version >= \"3.10\"") from mexc
        raise LockError(path, number, f"not a requirement: {body!r} ({_first_line(exc)})",
                        "write name==version, or name @ URL") from exc
    name = canonicalize_name(req.name)
    version = None
    specs = list(req.specifier)
    if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
        version = specs[0].version
        if specs[0].operator == "==":
            try:
                Version(version)
            except InvalidVersion as exc:
                raise LockError(path, number, f"{req.name}: {version!r} is not a PEP 440 version",
                                "pin a released version") from exc
    if lock and version is None and req.url is None:
        found = str(req.specifier) or "no version"
        raise LockError(path, number, f"{req.name} is not pinned ({found}) in a lock",
                        f"pin an exact version, e.g. {req.name}==X.Y.Z, or compile the lock again")
    vcs = req.url is not None and req.url.startswith(("git+", "hg+", "svn+", "bzr+"))
    if lock and vcs and "@" not in (req.url or "").split("://", 1)[-1]:
        raise LockError(path, number, f"{req.name}: VCS reference without a commit in a lock",
                        "append @<full commit sha> to the URL")
    return Pin(name=name, requirement=body, line=number, path=path, version=version,
               specifier=str(req.specifier), extras=frozenset(req.extras), marker=req.marker,
               url=req.url, hashes=hashes)


def _first_line(exc: Exception) -> str:
    """packaging's parse errors draw a caret on extra lines; one line is what a user reads."""
    return str(exc).strip().splitlines()[0]


def _editable(value: str, path: str, number: int, *, lock: bool) -> Pin:
    egg = value.split("#egg=", 1)[1].split("&")[0] if "#egg=" in value else ""
    if lock:
        raise LockError(path, number, f"editable requirement {value!r} in a lock; pip cannot hash-check it",
                        "install editable projects separately, or pin a released version")
    name = canonicalize_name(egg or Path(value.rstrip("/")).name or "unknown")
    return Pin(name=name, requirement=f"-e {value}", line=number, path=path, url=value, editable=True)


def parse(path: str | Path, *, lock: bool = False, follow_includes: bool = True) -> RequirementsFile:
    """Parse the file at ``path``; a missing file is a :class:`LockProblems` naming it."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LockProblems([LockError(p, 0, "file not found", "check the path, or run `invoke compile`")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LockProblems([LockError(p, 0, f"cannot read file: {exc}")]) from exc
    return parse_text(text, p, lock=lock, follow_includes=follow_includes)


def require_hashes(pins: Iterable[Pin]) -> None:
    """Every pin must carry a hash (an install runs with --require-hashes)."""
    problems = [LockError(p.path, p.line, f"{p.name}=={p.version} has no --hash",
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
