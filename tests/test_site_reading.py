"""verify's one reading of site-packages (:class:`stacksync.env.distinfo.SiteReading`), shared by the
RECORD check, the host's reading of the versions, the start-up code scan and the artifact record's
check: each check answers with it exactly as it answers with its own reading, a change after one
reading is seen by the next, and what each check refused (no RECORD, a FIFO, an egg-info, an
unreadable folder) it still refuses. Also the cheaper pieces under it: the RECORD rows read with
flags asked once per text, METADATA's Name and Version read up to the line after them, the artifact
record read back without a second parse."""

from __future__ import annotations

import csv
import email
import json
import os
import time
from pathlib import Path

import pytest
from pkgfactory import installed_dist as _dist

from stacksync.env import artifacts, damage, distinfo, hostview, sitepackages
from stacksync.env.confine import Confine, scheme_base
from stacksync.env.distinfo import SiteReading

OLD = time.time() - 3600  # stamps older than the damage memo's racy limit


def _site(tmp_path: Path) -> Path:
    """A target with a bit of everything the scan judges."""
    sp = tmp_path / "lib" / "python3.11" / "site-packages"
    _dist(sp, "good", "1.0", {"good/__init__.py": "", "good/sub/x.py": ""},
          extra_record=("good/__pycache__/x.cpython-311.pyc", "../../../bin/good", "/etc/passwd"))
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "good").write_text("")
    _dist(sp, "torch-like", "2.4.0", {"torch_like/__init__.py": ""}, record=False)
    _dist(sp, "plain-a", "1.0", {"plain_a/__init__.py": ""})
    (sp / "plain_a" / "__init__.py").unlink()
    _dist(sp, "plain-b", "1.0", {"plain_b/__init__.py": ""}, extra_record=("../../../bin/gone",))
    _dist(sp, "stash-me", "1.0", {}).rename(sp / "~tash_me-1.0.dist-info")
    return sp


def _broken(found: damage.Damage) -> set[tuple[str, bool, tuple[str, ...]]]:
    return {(b.name, b.has_record, b.missing) for b in found.broken}


def test_the_scan_with_a_reading_finds_what_the_scan_without_one_finds(tmp_path: Path) -> None:
    sp = _site(tmp_path)
    alone, memo_alone = damage.scan(tmp_path, [str(sp)], memo={}), {}
    damage.scan(tmp_path, [str(sp)], memo=memo_alone)
    reading, memo_shared = SiteReading(), {}
    shared = damage.scan(tmp_path, [str(sp)], memo=memo_shared, reading=reading)
    assert _broken(shared) == _broken(alone) == {
        ("torch-like", False, ()), ("plain-a", True, ("plain_a/__init__.py",)),
        ("plain-b", True, ("../../../bin/gone",))}
    assert shared.stashes == alone.stashes and [p.name for p in shared.stashes] == ["~tash_me-1.0.dist-info"]
    assert memo_shared == memo_alone  # all just written: nothing is memoized (racy), with or without
    # the stamps the reading kept are those of the RECORDs it read
    good = str(sp / "good-1.0.dist-info")
    stamp = reading.record_stamp(good)
    assert stamp is not None and artifacts.record_stat(good) == (stamp.st_mtime_ns, stamp.st_size, stamp.st_ino)


def test_a_file_removed_between_two_readings_is_caught(tmp_path: Path) -> None:
    sp = tmp_path / "lib" / "python3.11" / "site-packages"
    info = _dist(sp, "good", "1.0", {"good/__init__.py": "", "good/b.py": ""})
    for path in [info / "RECORD", sp / "good", info]:
        os.utime(path, (OLD, OLD))
    memo: damage.Memo = {}
    first = SiteReading()
    assert damage.scan(tmp_path, [str(sp)], memo=memo, reading=first).broken == ()
    assert str(info) in memo  # vouched for by its stamps from now on
    (sp / "good" / "b.py").unlink()
    (sp / "~ood").mkdir()  # and a stash appears
    # a reading is one moment: the first one still holds what it listed ...
    assert damage.stashes([sp], first) == []
    # ... and the next check takes a new one, memo or not
    found = damage.scan(tmp_path, [str(sp)], memo=memo, reading=SiteReading())
    assert _broken(found) == {("good", True, ("good/b.py",))} and found.stashes == (sp / "~ood",)
    assert _broken(damage.scan(tmp_path, [str(sp)], reading=SiteReading())) == {("good", True, ("good/b.py",))}


def test_the_artifact_check_takes_the_stamp_of_the_record_the_reading_read(tmp_path: Path) -> None:
    sp = tmp_path / "site-packages"
    info = _dist(sp, "plain-a", "1.0", {"plain_a/__init__.py": ""})
    stat = artifacts.record_stat(info)
    assert stat is not None
    entry = artifacts.Artifact("1.0", "ab" * 32, info.name, stat)
    reading = SiteReading()
    damage.broken_distributions([str(sp)], reading=reading)
    assert entry.holds(str(sp), reading) and entry.holds(str(sp))
    (info / "RECORD").unlink()  # reinstalled behind stacksync's back: a new RECORD
    (info / "RECORD").write_text("plain_a/__init__.py,,\nother,,\n")
    assert entry.holds(str(sp), reading)  # the stamp of what that reading read (one moment) ...
    later = SiteReading()
    damage.broken_distributions([str(sp)], reading=later)
    assert not entry.holds(str(sp), later) and not entry.holds(str(sp))  # ... the next reading sees it
    assert not entry.holds(str(sp), SiteReading())  # a reading that read no RECORD: a stat of its own


def test_what_each_reading_refused_the_shared_one_refuses(tmp_path: Path) -> None:
    sp = tmp_path / "lib" / "python3.11" / "site-packages"
    fifo = _dist(sp, "fifo-record", "1.0", {"fifo_record/__init__.py": ""})
    (fifo / "RECORD").unlink()
    os.mkfifo(fifo / "RECORD")
    reading = SiteReading()
    assert reading.record(str(fifo)) is None and reading.record_stamp(str(fifo)) is None
    assert _broken(damage.scan(tmp_path, [str(sp)], reading=SiteReading())) == _broken(
        damage.scan(tmp_path, [str(sp)])) == {("fifo-record", False, ())}
    # a METADATA that is a FIFO makes the host's reading unsure (it never blocks), with a reading or not
    (fifo / "METADATA").unlink()
    os.mkfifo(fifo / "METADATA")
    assert sitepackages.read_distributions([str(sp)], full=False) is None
    assert sitepackages.read_distributions([str(sp)], full=False, reading=SiteReading()) is None
    os.unlink(fifo / "METADATA")
    (fifo / "METADATA").write_text("Metadata-Version: 2.1\nName: fifo-record\nVersion: 1.0\n")
    assert sitepackages.read_distributions([str(sp)], full=False, reading=SiteReading()) == \
        sitepackages.read_distributions([str(sp)], full=False) == [
            {"name": "fifo-record", "display_name": "fifo-record", "version": "1.0"}]
    (sp / "old-1.0.egg-info").mkdir()  # read differently (PKG-INFO): unsure
    assert sitepackages.read_distributions([str(sp)], reading=SiteReading()) is None
    # a site-packages path that is a file: unsure for the versions, skipped by the RECORD check
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    shared = SiteReading()
    assert sitepackages.read_distributions([str(not_a_folder)], reading=shared) is None
    assert list(distinfo.dist_info_folders([not_a_folder], reading=shared)) == []
    assert damage.stashes([not_a_folder], shared) == []
    # a missing one is skipped by both
    assert sitepackages.read_distributions([str(tmp_path / "none")], reading=shared) == []


def test_start_up_code_with_a_reading(tmp_path: Path) -> None:
    sp = tmp_path / "site-packages"
    _dist(sp, "hooks", "1.0", {"hooks.pth": "import os\n"})
    (sp / "sitecustomize.py").write_text("import os\n")
    (sp / "paths.pth").write_text("/some/dir\n")
    (sp / "usercustomize").mkdir()
    alone, shared = hostview.startup_code([str(sp)]), hostview.startup_code([str(sp)], SiteReading())
    assert shared == alone
    assert [line.split(": ", 1)[0] for line in shared.unexplained] == [str(sp / "sitecustomize.py"),
                                                                       str(sp / "usercustomize")]
    assert shared.known == [f"{sp / 'hooks.pth'}: .pth file with an import line (run at every start-up), "
                            "installed by hooks-1.0"]


def _row_by_row(text: str, location: str, listings: dict[str, frozenset[str]], confine: Confine) -> tuple[str, ...]:
    """The RECORD check as it read every row before the flags (the oracle)."""
    missing = []
    for line in text.splitlines():
        if line.startswith('"'):
            try:
                rel = next(csv.reader([line]))[0]
            except (csv.Error, StopIteration, IndexError):
                continue
        else:
            rel = line.partition(",")[0]
        if not rel or rel.endswith((".pyc", ".pyo")) or "__pycache__" in rel:
            continue
        if rel[0] != "/" and ".." not in rel:
            sub, _, base = rel.rpartition("/")
            head = f"{location}/{sub}" if sub else location
        else:
            place = confine.place(location, rel)
            if place is None:
                continue
            head, base = os.path.split(place)
        if head not in listings:
            try:
                listings[head] = frozenset(os.listdir(head))
            except OSError:
                listings[head] = frozenset()
        if base not in listings[head]:
            missing.append(rel)
    return tuple(missing)


@pytest.mark.parametrize(("rows", "missing"), [
    ("a/x.py,,\na/y.py,,\nb.py,,\n", ("a/y.py",)),
    ("a/x.py,,\na/gone.py,,\nb/gone.py,,\nb.py,,\n", ("a/gone.py", "b/gone.py")),
    ("a/x.py,,\na/__pycache__/x.cpython-311.pyc,,\na/gone.pyc,,\n", ()),
    ('"a/x,1.py",,\n"/a/gone.py",,\n"a/gone""q.py",,\n', ('a/gone"q.py',)),  # "/a/gone.py": outside
    ("a/x.py,,\x0c/etc/passwd,,\n", ()),  # a line break splitlines knows: the second row is outside
    ("a/x.py,,\x1c../../../bin/gone,,\n\u2028a/gone.py,,\n", ("../../../bin/gone", "a/gone.py")),
    ("../../../bin/tool,,\n../../../bin/gone,,\na/./x.py,,\na//x.py,,\na/,,\n,,\n\n", ("../../../bin/gone", "a/")),
    ("a/x.py\nno-comma-gone\n", ("no-comma-gone",)),
])
def test_the_rows_read_as_the_row_by_row_reading_read_them(tmp_path: Path, rows: str,
                                                           missing: tuple[str, ...]) -> None:
    prefix = tmp_path / "venv"
    sp = prefix / "lib" / "python3.11" / "site-packages"
    info = sp / "a-1.0.dist-info"
    info.mkdir(parents=True)
    (sp / "a").mkdir()
    for name in ["a/x.py", "b.py", "a/x,1.py"]:
        (sp / name).write_text("")
    (prefix / "bin").mkdir()
    (prefix / "bin" / "tool").write_text("")
    (info / "RECORD").write_text(rows, newline="")
    confine = Confine(scheme_base(str(sp)))
    assert _row_by_row(distinfo.read_file(str(info), "RECORD") or "", str(sp), {}, confine) == missing
    for reading in (None, SiteReading()):
        used: set[str] = set()
        assert damage._missing_files(str(info), str(sp), {}, used, confine, reading) == missing


@pytest.mark.parametrize("text", [
    "Metadata-Version: 2.1\nName: Foo_Bar\nVersion: 1.0 \nRequires-Dist: a>=1\n  folded requirement\n",
    "Metadata-Version: 2.1\nName: foo\nVersion: 1\nnot a header after both\n",
    "Metadata-Version: 2.1\nName: foo\nVersion: 1\nVersion: 2\n",
    "Metadata-Version: 2.1\nVersion:\t3\nSummary: x\n  folded summary\nNAME:foo\nClassifier: y\n\nbody: z\n",
])
def test_name_and_version_read_up_to_the_line_after_them_equal_email(text: str) -> None:
    msg = email.message_from_string(text)
    headers = distinfo.metadata_headers(text, name_version=True)
    assert headers is not None
    assert (headers["name"][0], headers["version"][0]) == (msg.get("Name"), msg.get("Version"))


@pytest.mark.parametrize("text", ["Name: foo\nVersion: 1\n  folded version\n", "Name: foo\n bar\nVersion: 1\n",
                                  "Metadata-Version: 2.1\nnot a header\nName: foo\nVersion: 1\n"])
def test_name_and_version_unsure_is_still_none(text: str) -> None:
    assert distinfo.metadata_headers(text, name_version=True) is None


def test_read_text_reads_as_text_mode_and_only_regular_files(tmp_path: Path) -> None:
    path = tmp_path / "METADATA"
    path.write_bytes(b"Name: a\r\nVersion: 1\rSummary: \xc3\xa9\n")
    assert distinfo.read_text(str(path)) == open(path, encoding="utf-8").read()  # noqa: SIM115
    path.write_bytes(b"Name: \xff\n")
    with pytest.raises(UnicodeDecodeError):
        distinfo.read_text(str(path))
    assert distinfo.read_text(str(tmp_path)) is None  # a folder, as open's IsADirectoryError
    assert distinfo.read_text(str(tmp_path / "none")) is None
    os.mkfifo(tmp_path / "fifo")
    assert distinfo.read_text(str(tmp_path / "fifo")) is None  # open() would block here


def test_the_artifact_record_read_back_equals_a_parse_of_its_file(tmp_path: Path) -> None:
    stat = (1733216400123456789, 512, 1234567)
    entries = {"plain-a": artifacts.Artifact("1.0", "ab" * 32, "plain_a-1.0.dist-info", stat),
               "w\u00e9ird": artifacts.Artifact('2.0+"x"', "cd" * 32, "a\\b-2.0.dist-info", stat, "wheelhouse")}
    path = artifacts.write(tmp_path, entries)  # type: ignore[arg-type]
    text = path.read_text(encoding="utf-8")
    rows = ",\n".join(f" {json.dumps(n)}: {json.dumps(entries[n].to_json(), sort_keys=True)}" for n in sorted(entries))
    assert text == '{"artifacts": 1, "dists": {\n' + rows + "\n}}\n"  # as json.dumps writes each entry
    kept = artifacts.read(tmp_path)
    artifacts._last = None
    assert kept == artifacts.read(tmp_path) == entries
    # the same file changed by someone else: parsed, not taken from what this process wrote
    path.write_text(text.replace("ab" * 32, "ef" * 32), encoding="utf-8")
    assert artifacts.read(tmp_path)["plain-a"].sha256 == "ef" * 32  # type: ignore[index]
    path.write_text("{not json", encoding="utf-8")
    assert artifacts.read(tmp_path) == {}
