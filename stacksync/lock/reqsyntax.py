"""pip's requirement-file grammar, written down once (pure; no pip import).

What ``pip._internal.req.req_file`` does to a file before a requirement is parsed, in the same
order: decode (:func:`decode`: BOMs, a PEP 263 ``coding:`` comment, UTF-8, the locale's encoding),
split lines (``str.splitlines``: LF, CRLF, CR), join ``\\`` continuations (a comment line ends one),
strip comments (``#`` at the start or after whitespace), expand ``${VAR}`` (upper-case names, set and
non-empty only), then split each line into the requirement part and the options part at the first
space-separated word that starts with ``-`` (:func:`break_args_options`) and read the options with
pip's option table (:data:`OPTIONS`, optparse rules: ``--opt=v``, ``--opt v``, ``-iv``, unique
prefixes of long options).

Everything is linear in the size of the file (no regex that can backtrack on a long line): a 1 MB
line and a 50 MB lock are read in seconds.

The requirement part is then read by :mod:`stacksync.lock.reqshape`.
"""

from __future__ import annotations

import codecs
import locale
import os
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from stacksync.core.redact import register_secret

__all__ = ["Physical", "Logical", "OptionSpec", "OPTIONS", "OptionSyntaxError", "decode", "logical_lines",
           "break_args_options", "parse_options", "strip_comment", "expand_env", "option_fix"]

# pip's order matters: the UTF-16 LE BOM is a prefix of the UTF-32 LE one.
_BOMS = [
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF16, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
]
# Pattern strings, compiled on first use by re's own cache (lazy: start-up cost).
_PEP263 = rb"coding[:=]\s*([-\w.]+)"
_ENV_VAR = r"\$\{([A-Z0-9_]+)\}"


class DecodeError(ValueError):
    """The bytes are not text in any encoding pip would try; ``line`` is where decoding failed."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


def decode(data: bytes) -> tuple[str, str]:
    """Text and the encoding used, as pip decides it (``_decode_req_file``): a BOM (UTF-8 / 16 /
    32, what Windows PowerShell's ``>`` writes), else a ``coding:`` comment in the first two lines,
    else UTF-8, else the locale's encoding."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return _decode(data[len(bom):], encoding), encoding
    for line in data.split(b"\n", 2)[:2]:
        if line[:1] == b"#":
            found = re.search(_PEP263, line)
            if found is not None:
                encoding = found.group(1).decode("ascii")
                try:
                    codecs.lookup(encoding)
                except LookupError:
                    raise DecodeError(f"unknown encoding {encoding!r} in its coding: comment", 1) from None
                return _decode(data, encoding), encoding
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        fallback = locale.getpreferredencoding(False) or "utf-8"
        if codecs.lookup(fallback).name == "utf-8":
            raise DecodeError(f"not UTF-8 (byte {data[exc.start]:#04x})", data.count(b"\n", 0, exc.start) + 1) from None
        return _decode(data, fallback), fallback


def _decode(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        # the line number counted in the encoded bytes is right for 8-bit and UTF-8 text; for UTF-16
        # it is close enough to find the spot
        raise DecodeError(f"not valid {encoding}", data[:exc.start].count(b"\n") + 1) from None


@dataclass(frozen=True)
class Physical:
    """A comment-only line (kept: pip-compile's ``# via`` and freeze's ``# Editable ...`` comments)."""

    line: int
    comment: str


@dataclass(frozen=True)
class Logical:
    """One logical line: continuations joined, the comment removed, ``${VAR}`` expanded; ``line`` is
    the first physical line; ``raw`` is the text before expansion (what a rewritten file keeps)."""

    line: int
    text: str
    raw: str
    end: int


def strip_comment(line: str) -> str:
    """pip's ``COMMENT_RE.sub("", line).strip()``: cut at the first ``#`` that starts the line or
    follows whitespace (the regex ``(^|\\s+)#.*$`` written without backtracking)."""
    start = 0
    while True:
        i = line.find("#", start)
        if i < 0:
            return line.strip()
        if i == 0 or line[i - 1].isspace():
            return line[:i].strip()
        start = i + 1


def expand_env(text: str, environ: Mapping[str, str] | None = None) -> str:
    """``${NAME}`` (upper-case, digits, ``_``) replaced by the variable when it is set and non-empty."""
    if "${" not in text:
        return text
    env = os.environ if environ is None else environ

    def sub(match: re.Match[str]) -> str:
        value = env.get(match.group(1))
        if not value:
            return match.group(0)
        register_secret(value)  # an expanded value is masked in every message that quotes the line
        return value

    return re.sub(_ENV_VAR, sub, text)


def logical_lines(text: str, environ: Mapping[str, str] | None = None) -> Iterator[Logical | Physical]:
    """pip's ``preprocess``: join, strip comments, drop blank lines, expand variables. Comment-only
    lines come out as :class:`Physical` so callers can read ``# via`` annotations."""
    buf: list[str] = []
    start = 0
    number = 0
    for number, line in enumerate(text.splitlines(), start=1):
        # pip's COMMENT_RE.match: "#" first, or after leading whitespace (what lstrip() removes)
        comment = line.lstrip()[:1] == "#"
        item: Logical | Physical | None
        if not line.endswith("\\") or comment:
            if buf:
                buf.append(" " + line if comment else line)
                item = _logical(start, number, "".join(buf), environ)
                buf = []
            elif comment:
                item = Physical(number, line.strip())
            else:
                item = _logical(number, number, line, environ)
            if item is not None:
                yield item
        else:
            if not buf:
                start = number
            buf.append(line.strip("\\"))
    if buf:
        last = _logical(start, number, "".join(buf), environ)
        if last is not None:
            yield last


def _logical(start: int, end: int, joined: str, environ: Mapping[str, str] | None) -> Logical | None:
    body = strip_comment(joined)
    return Logical(start, expand_env(body, environ), body, end) if body else None


def break_args_options(line: str) -> tuple[str, str]:
    """pip's split of a line into the requirement and the options: at the first word (split on
    single spaces) that starts with ``-``. Markers stay in the requirement part, unsplit."""
    tokens = line.split(" ")
    for i, token in enumerate(tokens):
        if token.startswith("-"):
            return " ".join(tokens[:i]), " ".join(tokens[i:])
    return line, ""


@dataclass(frozen=True)
class OptionSpec:
    """One option pip accepts in a requirement file. ``name`` is the long spelling stacksync keeps;
    ``per_requirement``: it applies to the requirement on its line (``--hash``, ``--config-settings``);
    other options on a requirement line are read and ignored by pip (kept here as hints)."""

    name: str
    spellings: tuple[str, ...]
    takes_value: bool
    per_requirement: bool = False


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("--index-url", ("-i", "--index-url", "--pypi-url"), True),
    OptionSpec("--extra-index-url", ("--extra-index-url",), True),
    OptionSpec("--no-index", ("--no-index",), False),
    OptionSpec("-c", ("-c", "--constraint"), True),
    OptionSpec("-r", ("-r", "--requirement"), True),
    OptionSpec("-e", ("-e", "--editable"), True),
    OptionSpec("--find-links", ("-f", "--find-links"), True),
    OptionSpec("--no-binary", ("--no-binary",), True),
    OptionSpec("--only-binary", ("--only-binary",), True),
    OptionSpec("--prefer-binary", ("--prefer-binary",), False),
    OptionSpec("--require-hashes", ("--require-hashes",), False),
    OptionSpec("--no-require-hashes", ("--no-require-hashes",), False),
    OptionSpec("--pre", ("--pre",), False),
    OptionSpec("--all-releases", ("--all-releases",), True),
    OptionSpec("--only-final", ("--only-final",), True),
    OptionSpec("--trusted-host", ("--trusted-host",), True),
    OptionSpec("--use-feature", ("--use-feature",), True),
    OptionSpec("--hash", ("--hash",), True, per_requirement=True),
    OptionSpec("--config-settings", ("-C", "--config-settings"), True, per_requirement=True),
)
_LONG = {s: o for o in OPTIONS for s in o.spellings if s.startswith("--")}
_SHORT = {s: o for o in OPTIONS for s in o.spellings if not s.startswith("--")}
STRONG_HASHES = ("sha256", "sha384", "sha512")


class OptionSyntaxError(ValueError):
    """What pip's option parser refuses (unknown option, missing value, bad --hash ...)."""


def _long(word: str) -> OptionSpec:
    """optparse's ``_match_abbrev``: the exact spelling, or the one long option it is a prefix of."""
    if word in _LONG:
        return _LONG[word]
    matches = sorted({s for s in _LONG if s.startswith(word)})
    if len(matches) == 1:
        return _LONG[matches[0]]
    if matches:
        raise OptionSyntaxError(f"ambiguous option {word} ({', '.join(matches)}?)")
    raise OptionSyntaxError(f"unknown option {word}")


def parse_options(text: str) -> list[tuple[OptionSpec, str]]:
    """The options part of a line, as pip's optparse reads it: ``(spec, value)`` in order; words
    that are not options (after ``--`` or a stray positional) are ignored, as pip ignores them."""
    if "'" in text or '"' in text or "\\" in text:
        try:
            words = shlex.split(text)
        except ValueError as exc:
            raise OptionSyntaxError(f"could not split options: {exc}") from None
    else:  # what shlex.split gives for text without quotes or escapes, without its per-character loop
        words = text.split()
    out: list[tuple[OptionSpec, str]] = []
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word == "--":
            break
        if word.startswith("--"):
            head, eq, inline = word.partition("=")
            spec = _long(head)
            if spec.takes_value:
                if eq:
                    value = inline
                elif i < len(words):
                    value, i = words[i], i + 1
                else:
                    raise OptionSyntaxError(f"{head} option requires 1 argument")
            elif eq:
                raise OptionSyntaxError(f"{head} option does not take a value")
            else:
                value = ""
            out.append((spec, value))
        elif word.startswith("-") and len(word) > 1:
            j = 1
            while j < len(word):  # optparse clusters short options: -ifoo, -rfile
                flag = "-" + word[j]
                spec_s = _SHORT.get(flag)
                if spec_s is None:
                    raise OptionSyntaxError(f"unknown option {flag}")
                if spec_s.takes_value:
                    if j + 1 < len(word):
                        value = word[j + 1:]
                    elif i < len(words):
                        value, i = words[i], i + 1
                    else:
                        raise OptionSyntaxError(f"{flag} option requires 1 argument")
                    out.append((spec_s, value))
                    break
                out.append((spec_s, ""))
                j += 1
        # a positional word: pip's parser returns it and the line handler ignores it
    for spec, value in out:
        _check_value(spec, value)
    return out


def _check_value(spec: OptionSpec, value: str) -> None:
    """The checks pip's option callbacks make."""
    if spec.name == "--hash":
        algo, sep, _ = value.partition(":")
        if not sep:
            raise OptionSyntaxError(f"malformed hash {value!r}: --hash takes a hash name and a value, "
                                    "like --hash=sha256:abcde...")
        if algo not in STRONG_HASHES:
            raise OptionSyntaxError(f"malformed hash {value!r}: pip allows {', '.join(STRONG_HASHES)}")
    elif spec.name == "--config-settings" and "=" not in value:
        raise OptionSyntaxError("arguments to --config-settings must be of the form KEY=VAL")


def option_fix(exc: OptionSyntaxError) -> str:
    """The fix a message about ``exc`` (an option pip refuses) gives."""
    text = str(exc)
    if "unknown option" in text:
        return ("use an option pip takes in requirement files (--index-url, --extra-index-url, -f, -r, -c, "
                "-e, --hash, --config-settings, --pre, --no-binary, --only-binary, --trusted-host ...)")
    if "--hash" in text:
        return "write --hash=sha256:<64 hex digits>"
    return "give the option its value, as pip expects"
