"""Output: results on stdout, messages on stderr; every message redacted.

``out`` and ``err`` are rich consoles made on first use (lazy: start-up cost; importing rich is a large
share of a no-op sync). A plain message (:func:`info`) is written straight to stderr while no rich
console for stderr exists; once one does (a caller's ``console.err.capture()``, a warning on a terminal),
every message goes through it, so a capture sees them all.

``-q`` / ``-v`` set the level (:func:`set_level`): quiet drops :func:`info`, :func:`progress` and
:func:`warn` lines (errors and the final :func:`verdict` stay), verbose adds :func:`detail` lines.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from stacksync.core.redact import redact

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["info", "warn", "error", "detail", "progress", "result", "verdict", "set_level", "quiet", "verbose",
           "setup_logging"]

_LEVELS = ("quiet", "normal", "verbose")
_level = "normal"
_made: dict[str, Console] = {}
#: while a sync records what it prints (stacksync.core.stamp): ``(kind, text)`` of every line
_printed: list[tuple[str, str]] | None = None


def recorded(into: list[tuple[str, str]] | None) -> None:
    """Keep ``(kind, text)`` of every line printed from now on in ``into`` (``None``: stop); kind is
    ``stderr`` / ``stdout`` for plain lines, ``warn`` / ``error`` for those."""
    global _printed
    _printed = into


def _console(name: str) -> Console:
    made = _made.get(name)
    if made is None:
        from rich.console import Console  # lazy: start-up cost

        made = _made[name] = Console(stderr=(name == "err"), highlight=False, soft_wrap=True)
    return made


def __getattr__(name: str) -> Console:
    """``console.out`` / ``console.err``: the rich consoles, made when first asked for."""
    if name in ("out", "err"):
        return _console(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def set_level(level: str) -> None:
    """``quiet`` (``-q``), ``normal`` or ``verbose`` (``-v``)."""
    global _level
    if level not in _LEVELS:
        raise ValueError(f"console level {level!r} is not one of {', '.join(_LEVELS)}")
    _level = level


def quiet() -> bool:
    return _level == "quiet"


def verbose() -> bool:
    return _level == "verbose"


def _plain(text: str, kind: str = "stderr") -> None:
    if _printed is not None:
        _printed.append((kind, text))
    if "err" in _made:
        _made["err"].print(text, markup=False)
    else:
        stream = sys.stderr
        stream.write(text + "\n")
        stream.flush()


def result(text: str, *, err: bool = False) -> None:
    """Text printed as it is (the plan), on stdout (``err``: stderr): through the rich console for that
    stream when one exists (a caller's capture), else straight to the stream, so that printing a
    plan does not import rich (a larger share of a sync's start-up than the printing)."""
    name = "err" if err else "out"
    if _printed is not None:
        _printed.append(("stderr" if err else "stdout", text))
    if name in _made:
        _made[name].print(text, markup=False)
    else:
        stream = sys.stderr if err else sys.stdout
        stream.write(text + "\n")
        stream.flush()


def info(message: str) -> None:
    if _level != "quiet":
        _plain(redact(message))


def detail(message: str) -> None:
    """A line shown only with ``-v``."""
    if _level == "verbose":
        _plain(redact(message))


def progress(message: str) -> None:
    """A progress line (a rate-limited download line, a build's heartbeat): like :func:`info`."""
    info(message)


def verdict(message: str) -> None:
    """The command's final verdict line: shown at every level (with ``-q``, the one line besides errors)."""
    _plain(redact(message))


def warn(message: str) -> None:
    if _level == "quiet":
        return
    text = f"stacksync: warning: {redact(message)}"
    if "err" in _made or sys.stderr.isatty():
        if _printed is not None:
            _printed.append(("warn", text))
        _console("err").print(text, style="yellow", markup=False)
    else:
        _plain(text, "warn")


def error(message: str) -> None:
    text = f"stacksync: error: {redact(message)}"
    if "err" in _made or sys.stderr.isatty():
        if _printed is not None:
            _printed.append(("error", text))
        _console("err").print(text, style="bold red", markup=False)
    else:
        _plain(text, "error")


class _RedactingFormatter(logging.Formatter):
    """Every log line redacted as a whole (the message with its arguments filled in, and a traceback
    if one is logged), whatever the caller redacted itself."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(verbose: bool = False) -> None:
    """``--verbose`` shows every command stacksync starts (redacted)."""
    level = logging.DEBUG if verbose else logging.WARNING
    logging.basicConfig(level=level, stream=sys.stderr, format="stacksync: %(message)s")
    logging.getLogger().setLevel(level)  # basicConfig does nothing the second time it is called
    for handler in logging.getLogger().handlers:
        if not isinstance(handler.formatter, _RedactingFormatter):
            handler.setFormatter(_RedactingFormatter("stacksync: %(message)s"))
