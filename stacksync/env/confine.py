"""Paths a RECORD names, kept inside the environment, and files read only when they are regular files.

A RECORD is data written by whatever installed the package. Its rows are relative to the folder that
holds the dist-info (purelib / platlib: site-packages); scripts sit in ``prefix/bin``, data files in
``prefix``, headers in ``prefix/include/...``: every scheme path an installer writes to is inside the
prefix. So a row is resolved (``..`` folded, symlinked folders followed) and must land inside the
real path of that prefix; anything else (``../../../../dev/zero``, ``/etc/passwd``, a folder that is a
symlink to ``/``) is a finding, never opened.

Opening is guarded too: :func:`open_regular` opens with ``O_NONBLOCK`` (a FIFO does not block the
open) and ``O_NOFOLLOW`` where asked (a last component that is a symlink is not followed blindly) and
keeps the file only when ``fstat`` says it is a regular file: a FIFO, a device or a folder is refused
before a byte is read, so no read can block or go on forever.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

__all__ = ["scheme_base", "Confine", "NotRegular", "open_regular", "read_regular", "read_regular_stat"]

_SITE_FOLDERS = ("site-packages", "dist-packages")


def scheme_base(location: str) -> str:
    """The prefix a site-packages folder belongs to: ``P`` for ``P/lib*/python*/site-packages`` (and
    Debian's ``P/lib/python3/dist-packages``) or ``P/Lib/site-packages``; ``location`` itself for any
    other layout (nothing outside it is then trusted)."""
    parts = os.path.normpath(os.path.abspath(location)).split(os.sep)
    if len(parts) >= 4 and parts[-1] in _SITE_FOLDERS and parts[-2].startswith("python") \
            and parts[-3].lower().startswith("lib"):
        return os.sep.join(parts[:-3]) or os.sep
    if len(parts) >= 3 and parts[-1] == "site-packages" and parts[-2] == "Lib":
        return os.sep.join(parts[:-2]) or os.sep
    return os.path.normpath(os.path.abspath(location))


@dataclass
class Confine:
    """Resolve paths and say whether they stay inside ``base`` (its real path). Folders are resolved
    once each (one ``lstat`` per new folder, cached), so confining a torch RECORD's 15k rows costs
    about one ``lstat`` per folder they live in, not per component of every row."""

    base: str
    _real: str = ""
    _dirs: dict[str, str] = field(default_factory=dict)
    _places: dict[tuple[str, str], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._real = os.path.realpath(self.base)

    def inside(self, real: str) -> bool:
        """``real`` (already resolved) is the base or below it."""
        return real == self._real or real.startswith(self._real.rstrip(os.sep) + os.sep)

    def real_dir(self, folder: str) -> str:
        """The real path of the absolute, normalized ``folder`` (symlinks followed, cached)."""
        hit = self._dirs.get(folder)
        if hit is None:
            parent, name = os.path.split(folder)
            if not name or parent == folder:
                hit = folder
            else:
                joined = os.path.join(self.real_dir(parent), name)
                try:
                    link = stat.S_ISLNK(os.lstat(joined).st_mode)
                except OSError:
                    link = False
                hit = os.path.realpath(joined) if link else joined
            self._dirs[folder] = hit
        return hit

    def place(self, location: str, rel: str) -> str | None:
        """Where RECORD row ``rel`` (relative to ``location``, or absolute) is: its folder resolved, its
        last component as written (``open_regular(..., follow=False)`` refuses it if it is a symlink;
        :meth:`follow` then decides); ``None`` when the folder is outside the base. Each row's folder
        is resolved once (``_places``): per row this is a split, a lookup and a join."""
        sub, _, name = rel.rpartition("/")
        if name in ("", ".", ".."):
            path = os.path.abspath(os.path.join(location, rel))  # an absolute rel replaces location
            sub, name = os.path.split(path)
            if not name:
                return None
            real = os.path.join(self.real_dir(sub), name)
            return real if self.inside(real) else None
        key = (location, sub)
        folder = self._places.get(key)
        if folder is None:
            real = self.real_dir(os.path.abspath(os.path.join(location, sub) if sub else location))
            folder = real if self.inside(real) else ""
            self._places[key] = folder
        return os.path.join(folder, name) if folder else None

    def follow(self, path: str) -> str | None:
        """The real path of a symlink at ``path`` when it stays inside the base, else ``None``."""
        real = os.path.realpath(path)
        return real if self.inside(real) else None


class NotRegular(OSError):
    """The path is not a regular file (a FIFO, a device, a folder, a symlink not followed)."""

    def __init__(self, path: str, what: str) -> None:
        super().__init__(f"{path}: {what}, not a regular file")
        self.what = what
        self.strerror = f"{what}, not a regular file"


def _what(mode: int) -> str:
    for test, what in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return "a special file"


def open_regular(path: str, *, follow: bool = True) -> tuple[int, int]:
    """``(fd, size)`` of ``path`` opened read-only when it is a regular file; :class:`NotRegular`
    otherwise (``follow=False``: a symlink as last component too), other ``OSError`` as ``open``
    raises them. The caller closes ``fd``."""
    fd, st = _open_regular(path, follow)
    return fd, st.st_size


_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def _open_regular(path: str, follow: bool) -> tuple[int, os.stat_result]:
    flags = _FLAGS if follow else _FLAGS | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if not follow and os.path.islink(path):
            raise NotRegular(path, "a symlink") from exc
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular(path, _what(st.st_mode))
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_regular(path: str, *, follow: bool = True) -> bytes:
    """The bytes of a regular file, read up to its size as ``fstat`` gave it (plus one byte, so a file
    that grows while it is read is not read forever; one ``read`` when it holds that size).
    :class:`NotRegular` / ``OSError`` as :func:`open_regular`."""
    return read_regular_stat(path, follow=follow)[0]


def read_regular_stat(path: str, *, follow: bool = True) -> tuple[bytes, os.stat_result]:
    """:func:`read_regular` with the ``fstat`` of the file it read (a check that also keeps the
    file's stamp, as the damage memo and the artifact record do, needs no second ``stat``: the stamp
    is the one of the bytes read)."""
    fd, st = _open_regular(path, follow)
    try:  # os.read, not a file object around fd: this reads every RECORD of a target (~15 µs less each)
        left = st.st_size + 1
        data = os.read(fd, left)
        if len(data) == st.st_size:  # the common case: all of it in one read, no second read for the end
            return data, st
        chunks = [data]
        left -= len(data)
        while left > 0 and data:
            data = os.read(fd, left)
            chunks.append(data)
            left -= len(data)
        return b"".join(chunks), st
    finally:
        os.close(fd)
