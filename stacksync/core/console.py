"""Output: results on stdout, messages on stderr; every message redacted."""

from __future__ import annotations

import logging
import sys

from rich.console import Console

from stacksync.core.redact import redact

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def info(message: str) -> None:
    err.print(redact(message), markup=False)


def warn(message: str) -> None:
    err.print(f"stacksync: warning: {redact(message)}", style="yellow", markup=False)


def error(message: str) -> None:
    err.print(f"stacksync: error: {redact(message)}", style="bold red", markup=False)


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
