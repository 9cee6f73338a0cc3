"""The one atomic write (stacksync.core.fs): modes from the umask, an existing file's mode kept, nothing
left behind on failure."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stacksync.core import fs


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    """Set the process umask for one test (restored after)."""
    old = os.umask(0o022)

    def set_(value: int) -> None:
        os.umask(value)
    yield set_
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_current_umask_reads_without_changing(umask: Callable[[int], None]) -> None:
    umask(0o027)
    assert fs.current_umask() == 0o027
    assert fs.current_umask() == 0o027  # still the same: reading did not change it


@pytest.mark.parametrize(("mask", "want"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_file_mode_follows_umask(tmp_path: Path, umask: Callable[[int], None], mask: int,
                                    want: int) -> None:
    umask(mask)
    text = fs.atomic_write_text(tmp_path / "a.txt", "hello\n")
    data = fs.atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    src = tmp_path / "src.whl"
    src.write_bytes(b"wheel")
    os.chmod(src, 0o600)
    copied = fs.atomic_copy(src, tmp_path / "copy.whl")
    moved = fs.atomic_copy(copied, tmp_path / "moved.whl", move=True)
    assert text.read_text(encoding="utf-8") == "hello\n"
    assert data.read_bytes() == b"\x00\x01"
    assert moved.read_bytes() == b"wheel" and not copied.exists()
    assert [_mode(p) for p in (text, data, moved)] == [want, want, want]


def test_existing_file_keeps_its_mode(tmp_path: Path, umask: Callable[[int], None]) -> None:
    umask(0o022)
    lock = tmp_path / "lock.txt"
    lock.write_text("old\n", encoding="utf-8")
    os.chmod(lock, 0o640)
    fs.atomic_write_text(lock, "new\n")
    assert lock.read_text(encoding="utf-8") == "new\n"
    assert _mode(lock) == 0o640


def test_text_is_utf8_with_newline_line_ends(tmp_path: Path) -> None:
    out = fs.atomic_write_text(tmp_path / "t.txt", "é\nb\n")
    assert out.read_bytes() == "é\nb\n".encode()


def test_failure_leaves_no_temp_file_and_old_file_intact(tmp_path: Path) -> None:
    target = tmp_path / "journal.json"
    target.write_text("old\n", encoding="utf-8")
    with pytest.raises(RuntimeError, match="check refused"):
        with fs.atomic_file(target, "wb") as fh:
            fh.write(b"half of a new file")
            raise RuntimeError("check refused")
    assert target.read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["journal.json"]


def test_unwritable_data_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        fs.atomic_write_text(tmp_path / "x.txt", b"bytes, not text")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_copy_of_missing_source_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        fs.atomic_copy(tmp_path / "absent.whl", tmp_path / "dst.whl", move=True)
    assert list(tmp_path.iterdir()) == []
