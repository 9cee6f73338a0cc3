"""The fetch step's cache listing (issue 21): one listing per run, lookups by (name, version), each file
hashed once, Requires-Dist read once per wheel and then kept by sha256."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from packaging.utils import canonicalize_name

from stacksync.lock.lockfile import file_sha256
from stacksync.sync.cacheindex import REQUIRES_MEMO, CacheIndex


def _wheel(folder: Path, name: str, version: str, requires: list[str], tag: str = "py3-none-any") -> Path:
    path = folder / f"{name}-{version}-{tag}.whl"
    meta = "Metadata-Version: 2.1\nName: {}\nVersion: {}\n{}".format(
        name, version, "".join(f"Requires-Dist: {r}\n" for r in requires))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{name}-{version}.dist-info/METADATA", meta)
    return path


def test_listing_indexes_wheels_by_name_and_version(tmp_path: Path) -> None:
    a1 = _wheel(tmp_path, "plain_a", "1.0", [])
    a2 = _wheel(tmp_path, "plain_a", "2.0", [])
    b = _wheel(tmp_path, "plain_b", "1.0", ["plain-a>=1"], tag="cp311-cp311-manylinux_2_17_x86_64")
    (tmp_path / "plain_a-1.0.tar.gz").write_bytes(b"sdist")
    (tmp_path / ".hidden").write_text("x")
    listing = CacheIndex(tmp_path)
    name_a, name_b = canonicalize_name("plain-a"), canonicalize_name("plain-b")
    assert [p for p, _ in listing.wheels_of(name_a, "1.0")] == [a1]
    assert [p for p, _ in listing.wheels_of(name_a, "2.0")] == [a2]
    assert listing.wheels_of(name_a, "2") == []  # the exact version string, as the lock pins it
    assert listing.wheels_of(name_a, "3.0") == [] and listing.wheels_of(name_a, None) == []
    assert listing.wheels_of(name_a, "not a version") == []
    [(path, tags)] = listing.wheels_of(name_b, "1.0")
    assert path == b and {str(t) for t in tags} == {"cp311-cp311-manylinux_2_17_x86_64"}
    assert [p.name for p in listing.files_of(name_a)] == ["plain_a-1.0-py3-none-any.whl", "plain_a-1.0.tar.gz",
                                                          "plain_a-2.0-py3-none-any.whl"]
    assert CacheIndex(tmp_path / "missing").files == {}


def test_each_file_hashed_once_a_run_and_requires_read_once(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path, "plain_b", "1.0", ["plain-a>=1", "extra-c; python_version<'3'"])
    hashed: list[str] = []

    def hasher(path: Path) -> str:
        hashed.append(path.name)
        return file_sha256(path)

    first = CacheIndex(tmp_path)
    digest = first.sha256(wheel, hasher)
    later = CacheIndex(tmp_path, first)  # the listing after a download: what was verified stays verified
    assert later.sha256(wheel, hasher) == digest == file_sha256(wheel)
    assert hashed == [wheel.name]

    opened: list[str] = []

    def reader(path: Path) -> list[str] | None:
        opened.append(path.name)
        return ["plain-a>=1", "extra-c; python_version<'3'"]

    assert later.requires(wheel, digest, reader) == ["plain-a>=1", "extra-c; python_version<'3'"]
    assert later.requires(wheel, digest, reader) == ["plain-a>=1", "extra-c; python_version<'3'"]
    later.save()
    assert opened == [wheel.name]
    assert json.loads((tmp_path / REQUIRES_MEMO).read_text())[digest] == ["plain-a>=1", "extra-c; python_version<'3'"]
    # A later run reads the memo, not the zip; the memo file is not a cache entry.
    next_run = CacheIndex(tmp_path)
    assert next_run.requires(wheel, digest, reader) == ["plain-a>=1", "extra-c; python_version<'3'"]
    assert opened == [wheel.name] and REQUIRES_MEMO not in [p.name for ps in next_run.files.values() for p in ps]


def test_a_damaged_memo_is_ignored(tmp_path: Path) -> None:
    (tmp_path / REQUIRES_MEMO).write_text('{"abc": [1, 2], "def": ["x"]')
    assert CacheIndex(tmp_path).requires(tmp_path / "w.whl", "abc", lambda p: ["y"]) == ["y"]
    (tmp_path / REQUIRES_MEMO).write_text('{"abc": [1, 2], "def": ["x"]}')
    listing = CacheIndex(tmp_path)
    assert listing.requires(tmp_path / "w.whl", "abc", lambda p: None) is None  # a bad entry is read again
    assert listing.requires(tmp_path / "w.whl", "def", lambda p: ["z"]) == ["x"]


def test_a_changed_wheel_under_the_same_name_is_hashed_again(tmp_path: Path) -> None:
    """The memo of hashes is keyed by path, size and mtime: a wheel replaced under the same file name (a
    rebuild, a damaged download) is not trusted from it; its Requires-Dist is read again (keyed by sha256)."""
    import os

    wheel = _wheel(tmp_path, "plain_b", "1.0", ["plain-a>=1"])
    first = CacheIndex(tmp_path)
    old = first.sha256(wheel, file_sha256)
    assert first.requires(wheel, old, lambda p: ["plain-a>=1"]) == ["plain-a>=1"]
    first.save()
    wheel.unlink()
    _wheel(tmp_path, "plain_b", "1.0", ["plain-a>=2", "plain-c"])
    st = wheel.stat()
    os.utime(wheel, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a write within the same tick moves it too
    hashed: list[str] = []

    def hasher(path: Path) -> str:
        hashed.append(path.name)
        return file_sha256(path)

    for later in (CacheIndex(tmp_path, first), CacheIndex(tmp_path)):  # the same run after a download, a new run
        new = later.sha256(wheel, hasher)
        assert new == file_sha256(wheel) != old
        assert later.requires(wheel, new, lambda p: ["plain-a>=2", "plain-c"]) == ["plain-a>=2", "plain-c"]
    assert hashed == [wheel.name, wheel.name]
