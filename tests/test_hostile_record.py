"""A RECORD is data: rows that lead outside the environment, FIFOs and oversized files are reported,
never read (``verify --files``, manifests, the damage scan), in bounded time and memory.

The environment is a hand-made venv layout (no interpreter needed: ``verify --files`` reads a venv
folder in-process). Every check that could hang or eat memory runs in a subprocess with a timeout and
an address-space limit, so a regression fails here instead of hanging the suite.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from stacksync.env import damage, manifest, record
from stacksync.env.confine import Confine, NotRegular, open_regular, scheme_base
from stacksync.env.verify_files import report_lines, summary

ROOT = Path(__file__).resolve().parent.parent
PY = f"python{sys.version_info[0]}.{sys.version_info[1]}"
#: the row the issue measured (23 GB resident before the OOM killer)
DEV_ZERO_ROW = "../../../../../../../../dev/zero,sha256=AAAA,1"
#: address space for the subprocess: far below what reading /dev/zero would take
MEMORY_LIMIT = 1 << 30

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo (POSIX)")


def _sha(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _hostile_venv(tmp_path: Path) -> Path:
    """A venv folder whose one distribution, ``good``, has a RECORD with hostile rows beside honest ones."""
    venv = tmp_path / "venv"
    site = venv / "lib" / PY / "site-packages"
    pkg = site / "good"
    pkg.mkdir(parents=True)
    (venv / "bin").mkdir()
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    init = b"VALUE = 1\n"
    (pkg / "__init__.py").write_bytes(init)
    script = b"#!/x/python\nprint('hi')\n"
    (venv / "bin" / "good").write_bytes(script)
    os.mkfifo(pkg / "pipe")
    (pkg / "big.bin").write_bytes(b"x" * 4_000_000)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not yours\n")
    (pkg / "escape").symlink_to(outside, target_is_directory=True)
    (pkg / "zero.bin").symlink_to("/dev/zero")
    dist_info = site / "good-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: good\nVersion: 1.0\n")
    (dist_info / "INSTALLER").write_text("pip\n")
    deep = "../" * 40
    rows = [
        f"good/__init__.py,{_sha(init)},{len(init)}",
        f"../../../bin/good,{_sha(script)},{len(script)}",
        DEV_ZERO_ROW,
        f"{deep}dev/zero,sha256=AAAA,1",
        f"{outside / 'secret.txt'},sha256=AAAA,10",
        "good/escape/secret.txt,sha256=AAAA,10",
        "good/zero.bin,sha256=AAAA,1",
        "good/pipe,sha256=AAAA,1",
        "good/big.bin,sha256=AAAA,1",
        "good-1.0.dist-info/METADATA,,",
        "good-1.0.dist-info/INSTALLER,,",
        "good-1.0.dist-info/RECORD,,",
    ]
    (dist_info / "RECORD").write_text("\n".join(rows) + "\n")
    return venv


def _bounded(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with an address-space limit and a timeout."""
    prelude = textwrap.dedent(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT}, {MEMORY_LIMIT}))
    """)
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code), *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL, cwd=ROOT)


def test_verify_files_reports_hostile_rows_without_reading_them(tmp_path: Path) -> None:
    venv = _hostile_venv(tmp_path)
    done = _bounded("""
        import json, sys
        from stacksync.env import manifest, record, verify_files
        result = record.verify_environment(sys.argv[1])
        print(json.dumps({"json": verify_files.to_json(result, "T"), "bytes": result.bytes,
                          "lines": verify_files.report_lines(result),
                          "manifest": manifest.build(result)["distributions"]["good"]}))
    """, str(venv))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    problem = out["json"]["problems"][0]
    assert problem["name"] == "good"
    assert sorted(problem["outside"]) == sorted([
        DEV_ZERO_ROW.split(",")[0], "../" * 40 + "dev/zero", str(tmp_path / "outside" / "secret.txt"),
        "good/escape/secret.txt", "good/zero.bin"])
    assert sorted(problem["modified"]) == ["good/big.bin", "good/pipe"]
    assert problem["missing"] == [] and problem["unrecorded"] == [] and out["json"]["unowned"] == []
    # only the honest files and at most size+1 bytes of the oversized one were read
    assert out["bytes"] <= len(b"VALUE = 1\n") + len(b"#!/x/python\nprint('hi')\n") + 2
    lines = "\n".join(out["lines"])
    assert f"RECORD of good names a path outside the environment: {DEV_ZERO_ROW.split(',')[0]} (not opened)" in lines
    assert "good/pipe (unreadable (a FIFO, not a regular file))" in lines
    assert "good/big.bin (larger than its RECORD size (4,000,000 bytes on disk, 1 expected))" in lines
    assert out["json"]["counts"]["outside"] == 5
    assert "good/zero.bin" in out["manifest"]["outside"] and "good/zero.bin" not in out["manifest"]["files"]
    assert out["manifest"]["files"]["good/__init__.py"].startswith("sha256=")


def test_invoke_verify_files_on_a_hostile_venv_exits_1_in_bounded_time(tmp_path: Path) -> None:
    venv = _hostile_venv(tmp_path)
    done = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), "verify", "--files",
                           "--venv", str(venv)], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, cwd=ROOT)
    text = done.stdout + done.stderr
    assert done.returncode == 1, text
    assert "RECORD of good names a path outside the environment" in text
    assert "5 outside the environment" in text
    assert "Traceback" not in text


def test_damage_scan_skips_rows_outside_and_never_blocks(tmp_path: Path) -> None:
    venv = _hostile_venv(tmp_path)
    site = venv / "lib" / PY / "site-packages"
    done = _bounded("""
        import json, sys
        from stacksync.env import damage
        memo = {}
        found = damage.broken_distributions([sys.argv[1]], memo)
        print(json.dumps([[b.name, list(b.missing)] for b in found]))
    """, str(site))
    assert done.returncode == 0, done.stderr
    # every row inside the prefix exists; rows outside were not looked at, so nothing is "missing"
    assert json.loads(done.stdout) == []


def test_a_fifo_or_device_as_record_or_metadata_is_not_read(tmp_path: Path) -> None:
    venv = _hostile_venv(tmp_path)
    dist_info = venv / "lib" / PY / "site-packages" / "good-1.0.dist-info"
    (dist_info / "RECORD").unlink()
    os.mkfifo(dist_info / "RECORD")
    (dist_info / "INSTALLER").unlink()
    (dist_info / "INSTALLER").symlink_to("/dev/zero")
    done = _bounded("""
        import json, sys
        from stacksync.env import damage, record
        site = sys.argv[1]
        broken = damage.broken_distributions([site])
        scan = record.check(record.scan([site]))
        print(json.dumps({"broken": [[b.name, b.has_record] for b in broken],
                          "record": [d.record is None for d in scan.dists]}))
    """, str(dist_info.parent))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out == {"broken": [["good", False]], "record": [True]}


def test_confine_and_open_regular(tmp_path: Path) -> None:
    assert scheme_base(f"/opt/venv/lib/{PY}/site-packages") == "/opt/venv"
    assert scheme_base(f"/opt/venv/lib64/{PY}/site-packages") == "/opt/venv"
    assert scheme_base("/usr/lib/python3/dist-packages") == "/usr"
    assert scheme_base("/srv/app/Lib/site-packages") == "/srv/app"
    assert scheme_base("/srv/odd") == "/srv/odd"
    site = tmp_path / "lib" / PY / "site-packages"
    site.mkdir(parents=True)
    confine = Confine(str(tmp_path))
    assert confine.place(str(site), "../../../bin/x") == str((tmp_path / "bin" / "x").resolve())
    assert confine.place(str(site), "../../../../x") is None
    assert confine.place(str(site), "/etc/passwd") is None
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "link").symlink_to(tmp_path / "fifo")
    done = _bounded("""
        import sys
        from stacksync.env.confine import NotRegular, open_regular
        for path, follow in ((sys.argv[1], True), ("/dev/null", True), (sys.argv[2], False)):
            try:
                open_regular(path, follow=follow)
            except NotRegular as exc:
                print(exc.what)
    """, str(tmp_path / "fifo"), str(tmp_path / "link"))
    assert done.stdout.splitlines() == ["a FIFO", "a character device", "a symlink"], done.stderr
    with pytest.raises(NotRegular, match="a folder"):
        open_regular(str(tmp_path))


def test_report_and_manifest_compare_name_outside_rows() -> None:
    dist = record.Dist(canonicalize_name("good"), "1.0", "/v/site/good-1.0.dist-info", "/v/site", [],
                       outside=["../../../../dev/zero"])
    scan = record.Scan(["/v/site"], [dist])
    assert not scan.ok
    assert "1 outside the environment" in summary(scan, "T")
    assert any("fix: its RECORD was not written by an installer" in line for line in report_lines(scan))
    built = manifest.build(scan)
    clean = manifest.build(record.Scan(["/v/site"], [record.Dist(dist.name, "1.0", dist.folder, dist.location, [])]))
    diff = manifest.compare(built, clean)
    assert [p.kind for p in diff.packages] == ["install"]
    assert any("outside the environment" in n for n in diff.packages[0].notes)
    assert damage.Damage().found is False  # the module imports cleanly with the confinement in place


def test_honest_rows_pass_whether_the_target_is_given_relative_or_through_a_symlink(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    venv = _hostile_venv(tmp_path)
    pipe = venv / "lib" / PY / "site-packages" / "good" / "pipe"
    pipe.unlink()  # in-process here: a regular file, so that a regression cannot hang this test
    pipe.write_text("x")
    (tmp_path / "alias").symlink_to(venv, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    for target in ("venv", "alias", str(tmp_path / "alias")):
        result = record.verify_environment(target)
        (good,) = result.dists
        assert len(good.outside) == 5, (target, good.outside)
        assert good.modified == ["good/big.bin", "good/pipe"] and good.missing == [], target
        assert set(good.paths) >= {"good/__init__.py", "../../../bin/good"}
    site = f"venv/lib/{PY}/site-packages"
    assert damage.broken_distributions([site]) == []


def test_check_confines_a_dist_that_scan_did_not_place(tmp_path: Path) -> None:
    venv = _hostile_venv(tmp_path)
    done = _bounded("""
        import json, sys
        from pathlib import Path
        from packaging.utils import canonicalize_name
        from stacksync.env import record
        site = Path(sys.argv[1])
        rows = record.parse_record((site / "good-1.0.dist-info" / "RECORD").read_text())
        dist = record.Dist(canonicalize_name("good"), "1.0", str(site / "good-1.0.dist-info"), str(site),
                           rows)
        result = record.check(record.Scan([str(site)], [dist]))
        print(json.dumps({"outside": dist.outside, "modified": dist.modified, "bytes": result.bytes}))
    """, str(venv / "lib" / PY / "site-packages"))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert len(out["outside"]) == 5 and out["modified"] == ["good/big.bin", "good/pipe"]
    assert out["bytes"] <= len(b"VALUE = 1\n") + len(b"#!/x/python\nprint('hi')\n") + 2
