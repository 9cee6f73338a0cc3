"""Reading installed distributions' ``*.dist-info`` folders on the host, without starting the target:
METADATA headers, RECORD rows, INSTALLER, ``direct_url.json``. The one reader behind
:mod:`stacksync.env.sitepackages` (the probe's answer from disk), :mod:`stacksync.env.record` (files
against RECORD) and :mod:`stacksync.env.damage` (what an interrupted install left). The probe script
runs inside the target and keeps its own standard-library copy.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["RecordEntry", "metadata_headers", "parse_record", "read_json", "read_text"]

# email.feedparser's header line: a name of printable characters but ':', then ':'
# (the "From " envelope line and folded continuations are handled apart).
_HEADER = re.compile(r"^[\041-\071\073-\176]*:")
_WANTED = ("name", "version", "requires-dist")


@dataclass(frozen=True)
class RecordEntry:
    """One RECORD row: ``path`` as RECORD writes it (relative to site-packages, ``/``-separated),
    ``hash`` as ``algo=urlsafe-b64`` or ``None``, ``size`` in bytes or ``None``."""

    path: str
    hash: str | None
    size: int | None


def parse_record(text: str) -> list[RecordEntry]:
    """RECORD rows (csv: path, hash, size), as pip and uv write them."""
    out = []
    for row in csv.reader(io.StringIO(text)):
        if not row or not row[0]:
            continue
        digest = row[1] if len(row) > 1 and row[1] else None
        size = int(row[2]) if len(row) > 2 and row[2].strip().isdigit() else None
        out.append(RecordEntry(row[0], digest, size))
    return out


def metadata_headers(text: str) -> dict[str, list[str]] | None:
    """The Name, Version and Requires-Dist headers of a METADATA text, valued as
    ``email.message_from_string`` (compat32, which importlib.metadata uses) values them; ``None``
    where this reading could differ from email's (a folded wanted header, a line email would not
    take for a header)."""
    found: dict[str, list[str]] = {k: [] for k in _WANTED}
    last = ""
    # importlib.metadata reads in text mode: newlines are already "\n" (not str.splitlines, which
    # also splits on form feeds and other characters email does not).
    for line in text.split("\n"):
        if not line:
            break
        if line[0] in " \t":
            if last in found:
                return None
            continue
        if line.startswith("From ") or not _HEADER.match(line):
            return None
        key, _, value = line.partition(":")
        last = key.lower()
        if last in found:
            found[last].append(value.lstrip(" \t"))
    return found


def read_text(path: str) -> str | None:
    """As ``PathDistribution.read_text``: ``None`` for a missing file (plain ``open``: pathlib costs
    a third of the time here, ~360 reads for a 120-package target)."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
        return None


def read_json(path: str) -> Any:
    """As the probe's ``read_json``: ``None`` for a missing, empty, undecodable or invalid file."""
    try:
        text = read_text(path)
    except (OSError, UnicodeDecodeError):
        return None
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None
