"""The one host-side reader of installed distributions (stacksync.env.distinfo), and record.py /
damage.py reading through it, on dist-info folders written in place (no venv, no pip)."""

from __future__ import annotations

import json
from pathlib import Path

from stacksync.env import damage, distinfo, record


def _dist(site: Path, name: str, version: str, *, files: dict[str, str] | None = None,
          installer: str | None = "pip", direct_url: object = None, record_rows: bool = True) -> Path:
    folder = site / f"{name.replace('-', '_')}-{version}.dist-info"
    folder.mkdir(parents=True)
    (folder / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n",
                                     encoding="utf-8")
    if installer is not None:
        (folder / "INSTALLER").write_text(installer + "\n", encoding="utf-8")
    if direct_url is not None:
        (folder / "direct_url.json").write_text(json.dumps(direct_url), encoding="utf-8")
    rows = [f"{folder.name}/METADATA,,", f"{folder.name}/RECORD,,"]
    for rel, text in (files or {}).items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text, encoding="utf-8")
        rows.append(f"{rel},,")
    if record_rows:
        (folder / "RECORD").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def test_reads_name_version_installer_direct_url_record(tmp_path: Path) -> None:
    folder = _dist(tmp_path, "Torch-Like", "2.4.0+cpu", files={"torch_like/__init__.py": "x = 1\n"},
                   direct_url={"url": "file:///w/torch_like.whl", "archive_info": {}})
    assert distinfo.read_name_version(str(folder)) == ("torch-like", "2.4.0+cpu")
    assert distinfo.read_installer(str(folder)) == "pip"
    assert distinfo.read_direct_url(str(folder)) == {"url": "file:///w/torch_like.whl", "archive_info": {}}
    rows = distinfo.read_record(str(folder))
    assert rows is not None and distinfo.RecordEntry("torch_like/__init__.py", None, None) in rows


def test_missing_and_invalid_files_are_none(tmp_path: Path) -> None:
    folder = _dist(tmp_path, "a", "1", installer=None, record_rows=False)
    (folder / "direct_url.json").write_text("[1, 2]", encoding="utf-8")  # valid JSON, not an object
    assert distinfo.read_installer(str(folder)) is None
    assert distinfo.read_direct_url(str(folder)) is None
    assert distinfo.read_record(str(folder)) is None
    (folder / "METADATA").write_text("Metadata-Version: 2.1\nName: a\n\n", encoding="utf-8")
    assert distinfo.read_name_version(str(folder)) is None  # no Version


def test_folders_sorted_stashes_and_eggs_on_request(tmp_path: Path) -> None:
    _dist(tmp_path, "b", "1")
    _dist(tmp_path, "a", "1")
    (tmp_path / "~orch_like-2.3.0.dist-info").mkdir()
    (tmp_path / "old.egg-info").mkdir()
    names = [Path(f).name for _, f in distinfo.dist_info_folders([tmp_path, tmp_path / "absent"], stashes=False)]
    assert names == ["a-1.dist-info", "b-1.dist-info"]
    with_all = [Path(f).name for _, f in distinfo.dist_info_folders([tmp_path], egg_info=True)]
    assert with_all == ["a-1.dist-info", "b-1.dist-info", "old.egg-info", "~orch_like-2.3.0.dist-info"]


def test_record_scan_reads_through_the_reader(tmp_path: Path) -> None:
    _dist(tmp_path, "torch-like", "2.4.0", files={"torch_like/__init__.py": "x = 1\n"}, installer="uv",
          direct_url={"url": "https://example.invalid/t.whl", "archive_info": {}})
    (tmp_path / "stray.py").write_text("", encoding="utf-8")
    result = record.scan([str(tmp_path)])
    [dist] = result.dists
    assert (dist.name, dist.version, dist.installer) == ("torch-like", "2.4.0", "uv")
    assert dist.direct_url == {"url": "https://example.invalid/t.whl", "archive_info": {}}
    assert dist.record is not None and len(dist.record) == 3
    assert [u.path for u in result.unowned] == ["stray.py"]


def test_damage_finds_missing_files_and_no_record(tmp_path: Path) -> None:
    _dist(tmp_path, "ok", "1", files={"ok/__init__.py": ""})
    _dist(tmp_path, "cut", "2", files={"cut/__init__.py": ""})
    (tmp_path / "cut" / "__init__.py").unlink()
    _dist(tmp_path, "half", "3", record_rows=False)
    _dist(tmp_path, "conda-owned", "4", record_rows=False, installer="conda")  # not ours to judge
    broken = {b.name: b for b in damage.broken_distributions([tmp_path])}
    assert sorted(broken) == ["cut", "half"]
    assert broken["cut"].missing == ("cut/__init__.py",) and broken["cut"].version == "2"
    assert broken["half"].describe().startswith("half 3: no RECORD")


def test_read_file_reads_as_text_mode_does(tmp_path: Path) -> None:
    """``read_file`` decodes and translates newlines itself (issue 21: it reads every RECORD of a target):
    the same text io.TextIOWrapper gives, for CRLF, a lone CR, bytes that are not UTF-8, and a
    multi-byte character and a CRLF cut by the wrapper's 8 KiB chunks; whole files of several MiB."""
    import io

    cases = {
        "crlf": b"a,b\r\nc,d\r\n", "lone-cr": b"a\rb\r\n\rc", "latin1": b"caf\xe9,x\n\xff\xfe\n",
        "split": b"x" * 8191 + "é".encode() + b"\r" + b"y" * 8190 + b"\r\nend",
        "big": b"path/to/a/file.py,sha256=abc,123\r\n" * 200_000, "empty": b"",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        expected = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace").read()
        assert distinfo.read_file(str(tmp_path), name) == expected, name
