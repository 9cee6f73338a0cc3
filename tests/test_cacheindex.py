"""The fetch step's cache listing (issue 21): one listing per run, lookups by (name, version), each file
hashed once, Requires-Dist read once per wheel and then kept by sha256."""

from __future__ import annotations

import json
import os
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from stacksync.core.stamp import RACY_NS
from stacksync.lock.lockfile import Pin, file_sha256
from stacksync.sync.cacheindex import REQUIRES_MEMO, SHA256_MEMO, CacheIndex, wheel_parts
from stacksync.sync.fetch import _cached_wheel

ANY = frozenset({Tag("py3", "none", "any")})


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


# ------------------------------------------------- the digests verified by earlier runs (SHA256_MEMO)

def _counting() -> tuple[list[str], Callable[[Path], str]]:
    hashed: list[str] = []

    def hasher(path: Path) -> str:
        hashed.append(path.name)
        return file_sha256(path)

    return hashed, hasher


def _later() -> int:
    """A listing's time past the timestamp grain of every file written so far (the racy rule)."""
    return time.time_ns() + RACY_NS + 1


def test_a_verified_digest_is_kept_for_the_next_run(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path, "plain_a", "1.0", [])
    hashed, hasher = _counting()
    first = CacheIndex(tmp_path, now_ns=_later())
    digest = first.sha256(wheel, hasher)
    first.save()
    memo = json.loads((tmp_path / SHA256_MEMO).read_text())
    st = wheel.stat()
    assert memo == {"format": 1, "files": {wheel.name: [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                                                        digest]}}
    next_run = CacheIndex(tmp_path, now_ns=_later())
    assert next_run.sha256(wheel, hasher) == digest == file_sha256(wheel)
    assert hashed == [wheel.name]  # read once, by the first run
    assert SHA256_MEMO not in next_run.names and REQUIRES_MEMO not in next_run.names  # not cache entries


def test_a_wheel_changed_in_place_after_it_was_memoized_is_hashed_again_and_refused(tmp_path: Path) -> None:
    """Same name, same size, mtime set back: the ctime (and for a replaced file the inode) still moves,
    so the memo's entry no longer matches; the new bytes are hashed and the lock's hash refuses them."""
    wheel = _wheel(tmp_path, "plain_a", "1.0", [])
    first = CacheIndex(tmp_path, now_ns=_later())
    pin = Pin(canonicalize_name("plain-a"), "plain-a==1.0", 1, "requirements.txt", version="1.0",
              hashes=(f"sha256:{first.sha256(wheel, file_sha256)}",))
    assert _cached_wheel(first, pin, ANY) == wheel
    first.save()
    st = wheel.stat()
    data = bytearray(wheel.read_bytes())
    data[-1] ^= 0xFF  # one byte of the zip's end record, in place
    time.sleep(0.01)
    with open(wheel, "r+b") as fh:
        fh.write(data)
    os.utime(wheel, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (wheel.stat().st_size, wheel.stat().st_mtime_ns, wheel.stat().st_ino) == (st.st_size, st.st_mtime_ns,
                                                                                    st.st_ino)
    hashed, hasher = _counting()
    next_run = CacheIndex(tmp_path, now_ns=_later())
    assert next_run.sha256(wheel, hasher) == file_sha256(wheel) != pin.hashes[0][7:]
    assert hashed == [wheel.name]
    assert _cached_wheel(CacheIndex(tmp_path, now_ns=_later()), pin, ANY) is None  # never taken from the cache


def test_racy_entries_are_not_kept(tmp_path: Path) -> None:
    """A file changed within the timestamp grain of the listing is hashed, and hashed again by the next
    run: its stat could stay the same through a second change."""
    wheel = _wheel(tmp_path, "plain_a", "1.0", [])
    hashed, hasher = _counting()
    first = CacheIndex(tmp_path)  # now: the wheel was just written
    digest = first.sha256(wheel, hasher)
    first.save()
    assert not (tmp_path / SHA256_MEMO).exists()
    assert CacheIndex(tmp_path).sha256(wheel, hasher) == digest
    assert hashed == [wheel.name, wheel.name]
    # an entry kept earlier whose file is now racy is dropped, not kept with the new stat
    (tmp_path / SHA256_MEMO).write_text(json.dumps({"format": 1, "files": {wheel.name: [1, 2, 3, 4, digest]}}))
    listing = CacheIndex(tmp_path)
    assert listing.sha256(wheel, hasher) == digest
    listing.save()
    assert json.loads((tmp_path / SHA256_MEMO).read_text())["files"] == {}


@pytest.mark.parametrize("text", [
    "", "not json", "[]", '{"format": 2, "files": {}}', '{"format": 1, "files": []}', '{"format": 1}',
])
def test_a_malformed_memo_is_dropped(tmp_path: Path, text: str) -> None:
    wheel = _wheel(tmp_path, "plain_a", "1.0", [])
    (tmp_path / SHA256_MEMO).write_text(text)
    hashed, hasher = _counting()
    listing = CacheIndex(tmp_path, now_ns=_later())
    assert listing.sha256(wheel, hasher) == file_sha256(wheel) and hashed == [wheel.name]
    listing.save()  # written again, of the right shape
    assert list(json.loads((tmp_path / SHA256_MEMO).read_text())["files"]) == [wheel.name]


def test_a_malformed_entry_is_never_used_and_dropped(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path, "plain_a", "1.0", [])
    other = _wheel(tmp_path, "plain_b", "1.0", [])
    st = wheel.stat()
    stat = [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
    for entry in ([*stat, "z" * 64], [*stat, "a" * 63], [*stat[:3], str(stat[3]), "a" * 64],
                  [*stat[:3], float(stat[3]), "a" * 64], stat, {"sha256": "a" * 64}, None):
        (tmp_path / SHA256_MEMO).write_text(json.dumps({"format": 1, "files": {wheel.name: entry,
                                                                               "gone.whl": [*stat, "b" * 64]}}))
        hashed, hasher = _counting()
        listing = CacheIndex(tmp_path, now_ns=_later())
        assert listing.sha256(wheel, hasher) == file_sha256(wheel) and hashed == [wheel.name]
        listing.save()
        files = json.loads((tmp_path / SHA256_MEMO).read_text())["files"]
        assert files == {wheel.name: [*stat, file_sha256(wheel)]}  # the bad entry replaced, the gone one dropped
    # an entry of another file in the folder: kept while the file is there
    listing = CacheIndex(tmp_path, now_ns=_later())
    listing.sha256(other, file_sha256)
    listing.save()
    assert sorted(json.loads((tmp_path / SHA256_MEMO).read_text())["files"]) == sorted([wheel.name, other.name])


def test_only_the_folder_own_files_are_memoized(tmp_path: Path) -> None:
    """A wheel of the wheelhouse (another folder) is hashed by each run, as before."""
    cache, house = tmp_path / "cache", tmp_path / "wheelhouse"
    cache.mkdir()
    house.mkdir()
    wheel = _wheel(house, "plain_a", "1.0", [])
    hashed, hasher = _counting()
    for _ in range(2):
        listing = CacheIndex(cache, now_ns=_later())
        assert listing.sha256(wheel, hasher) == file_sha256(wheel)
        listing.save()
    assert hashed == [wheel.name, wheel.name] and not (cache / SHA256_MEMO).exists()


WHEEL_NAMES = [
    "plain_a-1.0-py3-none-any.whl", "Mixed.Case_Name-2.4.0+cu121-cp311-cp311-manylinux_2_17_x86_64.whl",
    "torch-2.4.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "a-1.0-py2.py3-none-any.whl",
    "a-01.0-py3-none-any.whl", "a-1!2.0rc1.post2.dev3-py3-none-any.whl", "a-1.0-1-py3-none-any.whl",
    "a-1.0-1abc-py3-none-any.whl", "a-1.0-x-py3-none-any.whl", "a__b-1.0-py3-none-any.whl", "a b-1.0-py3-none-any.whl",
    "-1.0-py3-none-any.whl", "a-not_a_version-py3-none-any.whl", "a-1.0-py3-none.whl", "a-1.0-py3--any.whl",
    "a-1.0-3py-none-any.whl", "a-1.0-py3-none-any-extra-part.whl", "a-1.0-py3.none-none-any.whl", "a.whl",
    "ünï-1.0-py3-none-any.whl", "a-1.0-py3-none-any.tar.gz", "a-1.0-py3-none-ANY.whl",
]


@pytest.mark.parametrize("name", WHEEL_NAMES)
def test_wheel_parts_read_names_as_packaging(name: str) -> None:
    try:
        project, version, _, tags = parse_wheel_filename(name)
    except InvalidWheelFilename:
        assert wheel_parts(name) is None
    else:
        assert wheel_parts(name) == (project, str(version), tags)
