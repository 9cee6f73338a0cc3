"""The one atomic write: a temporary file in the target's folder, fsynced, then ``os.replace``.

Every file stacksync writes (locks, journals, manifests, receipts, wheels and their sidecars,
downloads, caches) goes through :func:`atomic_file`, so that

- a reader sees the old file or the new one, never half of one;
- the new file's mode is what any file the user writes would get (``0o666 & ~umask``: 0644 under
  umask 022), while a file that already exists keeps its mode (a compile keeps a committed lock's
  mode); ``tempfile.mkstemp`` alone would leave 0600;
- the temporary file is removed on any failure, and the old file is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal, overload

__all__ = ["atomic_copy", "atomic_file", "atomic_write_bytes", "atomic_write_text", "current_umask",
           "fsync_dir", "new_file_mode"]


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (``/proc/self/status``);
    elsewhere set and restored at once (``os.umask`` has no read-only form)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def new_file_mode() -> int:
    """The mode a new regular file gets under the current umask (0644 under umask 022)."""
    return 0o666 & ~current_umask()


def _final_mode(path: Path) -> int:
    """``path``'s own mode when it exists (it is being replaced), else the mode of a new file."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return new_file_mode()


def fsync_dir(folder: Path) -> None:
    """fsync a folder so that a rename in it survives a crash (best effort: not every file system
    lets a folder be opened or synced)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@overload
def atomic_file(path: str | os.PathLike[str], mode: Literal["w"] = ..., *, fsync: bool = ...,
                ) -> contextlib.AbstractContextManager[IO[str]]: ...
@overload
def atomic_file(path: str | os.PathLike[str], mode: Literal["wb"], *, fsync: bool = ...,
                ) -> contextlib.AbstractContextManager[IO[bytes]]: ...
def atomic_file(path: str | os.PathLike[str], mode: Literal["w", "wb"] = "w", *,
                fsync: bool = True) -> contextlib.AbstractContextManager[IO[str]] | \
        contextlib.AbstractContextManager[IO[bytes]]:
    """An open temporary file beside ``path`` (text: UTF-8, ``\\n`` line ends); when the ``with``
    block ends normally it is flushed, fsynced, given its final mode and renamed onto ``path``.
    An exception inside the block (a failed check, a full disk, Ctrl-C) removes it and leaves
    ``path`` untouched."""
    cm: Any = _atomic_file(Path(path), mode, fsync)  # the overloads above give the handle's type
    return cm  # type: ignore[no-any-return]


@contextlib.contextmanager
def _atomic_file(target: Path, mode: str, fsync: bool) -> Iterator[IO[str] | IO[bytes]]:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        if mode == "wb":
            fh: IO[str] | IO[bytes] = os.fdopen(fd, "wb")
        else:
            fh = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
        with fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.chmod(tmp, _final_mode(target))
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str, *, fsync: bool = True) -> Path:
    """Replace ``path`` with ``text`` (UTF-8) atomically; see :func:`atomic_file`."""
    with atomic_file(path, "w", fsync=fsync) as fh:
        fh.write(text)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, fsync: bool = True) -> Path:
    """Replace ``path`` with ``data`` atomically; see :func:`atomic_file`."""
    with atomic_file(path, "wb", fsync=fsync) as fh:
        fh.write(data)
    return Path(path)


def atomic_copy(src: str | os.PathLike[str], dst: str | os.PathLike[str], *, move: bool = False) -> Path:
    """Put ``src``'s bytes at ``dst`` atomically. ``move``: rename ``src`` in when it is on the same
    file system (it is then gone), else copy; either way ``dst`` gets the mode of a new file (or
    keeps its own), not ``src``'s."""
    source, target = Path(src), Path(dst)
    if move:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            os.replace(source, tmp)
        except OSError:  # another file system: copy below
            tmp.unlink(missing_ok=True)
        else:
            try:
                final = _final_mode(target)
                with open(tmp, "rb") as fh:
                    os.fsync(fh.fileno())
                os.chmod(tmp, final)
                os.replace(tmp, target)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            return target
    with open(source, "rb") as fin, atomic_file(target, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
    return target
