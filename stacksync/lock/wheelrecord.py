"""``locks/<profile>/wheels.txt``: the deferred-package wheels a profile trusts, committed with its locks.

A shared wheelhouse's sidecar is a checksum anyone who can write the folder can edit, and a team
index publishes the sha256 of whatever file it holds: neither says what the team built. So when a
sync builds a deferred wheel, or ``invoke publish`` uploads one, its build key and sha256 are written
here, and a sync takes a wheel from a wheelhouse or team index only when its sha256 is the one this
file records for its key (otherwise it builds, or refuses with ``untrusted = "refuse"``). The same
idea as ``invoke compile`` pinning a prebuilt wheel's sha256 in ``deferred.txt``.

One line per key, sorted by package, version, key; stable, so a change shows in review::

    # Deferred-package wheels trusted by profile 'gpu': one line per build key (written by invoke sync
    # and invoke publish; commit it with the locks). package version key sha256 file
    flash-attn 2.8.0.post2 9c1f0a... 5d2e71... flash_attn-2.8.0.post2-0ss9c1f0a2b3c4d-cp311-cp311-linux_x86_64.whl

Pure parsing and rendering; :func:`record` does one locked read-modify-write of the file.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from stacksync.core.errors import LockError
from stacksync.core.fs import atomic_write_text

__all__ = ["WHEELS_TXT", "WheelRecord", "parse", "render", "read", "record"]

WHEELS_TXT = "wheels.txt"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, order=True)
class WheelRecord:
    package: str
    version: str
    key: str  # the build key's full digest
    sha256: str
    filename: str

    def line(self) -> str:
        return f"{self.package} {self.version} {self.key} {self.sha256} {self.filename}"


def parse(text: str, path: Path | str) -> dict[str, WheelRecord]:
    """Key digest -> record; a malformed line is a :class:`LockError` naming ``path:line``."""
    out: dict[str, WheelRecord] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 5 or not _HEX64.match(parts[2]) or not _HEX64.match(parts[3]) \
                or not parts[4].endswith(".whl"):
            raise LockError(path, number, "not a wheel record: expected 'package version key sha256 file.whl' "
                            "with a 64-hex key and sha256", "restore the line from git, or remove it and sync "
                            "or publish again to record the wheel")
        rec = WheelRecord(*parts)
        out[rec.key] = rec
    return out


def render(records: Iterable[WheelRecord], profile: str) -> str:
    head = [f"# Deferred-package wheels trusted by profile {profile!r}: one line per build key (written by invoke",
            "# sync and invoke publish; commit it with the locks). package version key sha256 file"]
    return "\n".join(head + [r.line() for r in sorted(set(records))]) + "\n"


def read(folder: Path) -> dict[str, WheelRecord]:
    """The records of the profile in ``folder`` (none when it has no wheels.txt)."""
    path = Path(folder) / WHEELS_TXT
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    return parse(text, path)


def record(folder: Path, profile: str, new: Iterable[WheelRecord]) -> bool:
    """Add or replace the records of ``new``'s keys; ``True`` when the file changed. The read-modify-
    write holds an ``flock`` on ``.wheels.txt.lock`` (nodes syncing from one checkout write at once);
    the file is replaced atomically, keeping its mode (new: 0666 minus the umask)."""
    path = Path(folder) / WHEELS_TXT
    fd = os.open(Path(folder) / f".{WHEELS_TXT}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        have = read(folder)
        merged: Mapping[str, WheelRecord] = {**have, **{r.key: r for r in new}}
        if merged == have:
            return False
        atomic_write_text(path, render(merged.values(), profile))
        return True
    finally:
        os.close(fd)
