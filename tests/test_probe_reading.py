"""The probe's own reading of the distributions on sys.path against importlib.metadata (issue 21).

``probe.py env`` reads every ``*.dist-info`` folder on the target's sys.path itself (one METADATA read
per distribution, no email parser, importlib.metadata not imported) and falls back to importlib.metadata
wherever the two could differ. Each case runs a driver inside an interpreter (``-I``, as the probe runs)
that prints both readings: where the fast one answers, it must equal importlib.metadata's, field by field
and in order; where it cannot be sure, it answers ``None`` and the probe's answer is importlib.metadata's.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stacksync.core import defaults, runner

MakeVenv = Callable[..., Path]

DRIVER = """\
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("_probe", sys.argv[1])
probe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(probe)
sys.path.extend(a for a in sys.argv[2:] if not a.startswith("import:"))
for a in sys.argv[2:]:
    if a.startswith("import:"):  # start-up code a .pth line would run
        __import__(a[len("import:"):])
print(json.dumps({"fast": probe.read_path_distributions(), "slow": probe.metadata_distributions(),
                  "probe": probe.distributions()}))
"""


def readings(python: str | Path, tmp_path: Path, *extra: Path | str) -> dict[str, Any]:
    """Both readings in ``python`` (``extra`` folders appended to its sys.path first, then the
    ``import:NAME`` modules imported)."""
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    proc = subprocess.run([str(python), "-I", str(driver), str(defaults.PROBE_SCRIPT), *map(str, extra)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, env=runner.clean_env())
    assert proc.returncode == 0, proc.stderr
    found: dict[str, Any] = json.loads(proc.stdout)
    assert found["probe"] == found["slow"]  # what the probe answers is importlib.metadata's, always
    return found


def dist(site: Path, folder: str, metadata: str, files: dict[str, str] | None = None) -> Path:
    """A ``*.dist-info`` folder in ``site`` with this METADATA text (written as bytes: CRLF kept) and files."""
    path = site / folder
    path.mkdir(parents=True)
    (path / "METADATA").write_bytes(metadata.encode())
    for name, text in (files or {}).items():
        (path / name).write_text(text)
    return path


def sure_cases(site: Path) -> None:
    """Distributions the fast reading must read exactly as importlib.metadata does."""
    dist(site, "plain_a-1.0.dist-info", "Metadata-Version: 2.1\nName: plain-a\nVersion: 1.0\n"
         "Requires-Dist: plain-b>=1\nrequires-dist: extra-thing ; extra == 'x'\n\nbody: not a header\n",
         {"INSTALLER": "uv\n"})
    dist(site, "crlf-2.0.dist-info", "Metadata-Version: 2.1\r\nName: CRLF\r\nVersion: 2.0 \r\n"
         "Summary: folded\r\n  over two lines\r\n\r\nRequires-Dist: in-the-body\r\n", {"INSTALLER": "  pip \n"})
    dist(site, "other_folder_name-3.0.dist-info", "Name: Real.Name\nversion:\t3.0+cu121\n",
         {"direct_url.json": '{"url": "file:///x", "dir_info": {"editable": true}}'})
    dist(site, "broken_json-1.0.dist-info", "Name: broken-json\nVersion: 1.0\n", {"direct_url.json": "{not json"})
    # the same project twice in one folder: which one importlib.metadata takes depends on the listing
    dist(site, "dup-1.0.dist-info", "Name: dup\nVersion: 1.0\n")
    dist(site, "Dup-2.0.dist-info", "Name: Dup\nVersion: 2.0\n")
    dist(site, "~up-1.0.dist-info", "Name: stashed\nVersion: 1.0\n")  # pip's stash: not installed


UNSURE: dict[str, Callable[[Path], object]] = {
    "egg-info": lambda site: (site / "old-1.0.egg-info").write_text("Name: old\nVersion: 1.0\n"),
    "folded requires": lambda site: dist(site, "fold-1.0.dist-info", "Name: fold\nVersion: 1.0\n"
                                         "Requires-Dist: a\n  b\n"),
    "requires.txt": lambda site: dist(site, "reqtxt-1.0.dist-info", "Name: reqtxt\nVersion: 1.0\n",
                                      {"requires.txt": "a\n"}),
    "no metadata": lambda site: (site / "nometa-1.0.dist-info").mkdir(),
    "no name": lambda site: dist(site, "noname-1.0.dist-info", "Version: 1.0\n"),
    "not a header": lambda site: dist(site, "nohead-1.0.dist-info", "Name: nohead\nVersion: 1.0\nnot a header\n"),
    "From line": lambda site: dist(site, "from-1.0.dist-info", "From nobody\nName: from\nVersion: 1.0\n"),
    "bom": lambda site: dist(site, "bom-1.0.dist-info", "\ufeffName: bom\nVersion: 1.0\n"),
}


def test_sure_cases_read_as_importlib_metadata_reads_them(tmp_path: Path) -> None:
    site = tmp_path / "site"
    sure_cases(site)
    found = readings(sys.executable, tmp_path, site)
    assert found["fast"] is not None and found["fast"] == found["slow"]
    mine = {d["name"]: d for d in found["fast"] if d["location"] == str(site)}
    assert sorted(mine) == ["broken-json", "crlf", "dup", "plain-a", "real-name"]
    assert mine["crlf"]["version"] == "2.0 " and mine["crlf"]["installer"] == "pip"
    assert mine["plain-a"]["requires"] == ["plain-b>=1", "extra-thing ; extra == 'x'"]
    assert mine["real-name"]["direct_url"]["dir_info"]["editable"] and mine["broken-json"]["direct_url"] is None


@pytest.mark.parametrize("case", sorted(UNSURE))
def test_unsure_cases_are_left_to_importlib_metadata(case: str, tmp_path: Path) -> None:
    site = tmp_path / "site"
    sure_cases(site)
    UNSURE[case](site)
    found = readings(sys.executable, tmp_path, site)
    assert found["fast"] is None


def test_a_finder_of_distributions_besides_the_path_finder_is_asked(tmp_path: Path) -> None:
    """Start-up code that puts its own distribution finder on sys.meta_path (a ``.pth`` import line):
    the fast reading cannot see what it adds, so importlib.metadata answers."""
    site = tmp_path / "site"
    sure_cases(site)
    code = tmp_path / "code"
    code.mkdir()
    (code / "finder.py").write_text("import sys\nclass F:\n    @staticmethod\n    def find_distributions("
                                    "context=None):\n        return iter(())\nsys.meta_path.append(F)\n")
    assert readings(sys.executable, tmp_path, site, code)["fast"] is not None
    assert readings(sys.executable, tmp_path, site, code, "import:finder")["fast"] is None


def test_a_real_venv_with_installed_packages(make_venv: MakeVenv, stack_packages: Path, tmp_path: Path) -> None:
    """pip's own dist-info folders (RECORD, INSTALLER, entry points), a setuptools, the stand-in stack."""
    venv = make_venv()
    subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", "--no-index", "--find-links",
                    str(stack_packages), "torch-like==2.4.0", "plain-a==1.0"], check=True, capture_output=True,
                   stdin=subprocess.DEVNULL, env=runner.clean_env())
    found = readings(venv / "bin/python", tmp_path)
    assert found["fast"] is not None and found["fast"] == found["slow"]
    assert {"pip", "torch-like", "plain-a"} <= {d["name"] for d in found["fast"]}


def _python(minor: int) -> str | None:
    """A python3.MINOR that runs: on PATH (a pyenv shim may refuse), else one pyenv installed."""
    found = [shutil.which(f"python3.{minor}"),
             *sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/3.{minor}.*/bin/python3.{minor}")))]
    for python in filter(None, found):
        if subprocess.run([python, "-I", "-c", "pass"], capture_output=True, env=runner.clean_env()).returncode == 0:
            return python
    return None


@pytest.mark.parametrize("minor", [10, 12, 13])
def test_other_pythons_read_the_same(minor: int, tmp_path: Path) -> None:
    """importlib.metadata's discovery as 3.10 to 3.13 write it (the fast reading is taken on 3.10+)."""
    python = _python(minor)
    if python is None:
        pytest.skip(f"no python3.{minor} that runs (on PATH, or pyenv's) to compare with")
    site = tmp_path / "site"
    sure_cases(site)
    found = readings(python, tmp_path, site)
    assert found["fast"] is not None and found["fast"] == found["slow"]
    UNSURE["egg-info"](site)
    assert readings(python, tmp_path, site)["fast"] is None


def test_raw_reads_are_read_as_text_mode_reads(tmp_path: Path) -> None:
    """The probe reads its files with os.open / os.read and decodes them itself: a METADATA longer than
    one read, old Mac "\\r" newlines, a NUL byte in a description, a folder where INSTALLER or
    direct_url.json should be, must all read as importlib.metadata's text-mode reads do."""
    site = tmp_path / "site"
    body = "".join(f"line {i} of a long description\n" for i in range(6000))  # ~190 KB: several reads
    dist(site, "long-1.0.dist-info", "Name: long\nVersion: 1.0\nRequires-Dist: a\n\n" + body + "\x00 end\n",
         {"INSTALLER": "pip"})
    dist(site, "oldmac-1.0.dist-info", "Name: oldmac\rVersion: 1.0\rRequires-Dist: b>=2\r\rbody\r")
    folders = dist(site, "folders-1.0.dist-info", "Name: folders\nVersion: 1.0\n")
    (folders / "INSTALLER").mkdir()
    (folders / "direct_url.json").mkdir()
    found = readings(sys.executable, tmp_path, site)
    assert found["fast"] is not None and found["fast"] == found["slow"]
    mine = {d["name"]: d for d in found["fast"] if d["location"] == str(site)}
    assert mine["long"]["requires"] == ["a"] and mine["long"]["installer"] == "pip"
    assert mine["oldmac"]["requires"] == ["b>=2"] and mine["oldmac"]["version"] == "1.0"
    assert mine["folders"]["installer"] is None and mine["folders"]["direct_url"] is None


def test_undecodable_metadata_is_left_to_importlib_metadata(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 in METADATA: text mode raises, so the fast reading is unsure."""
    site = tmp_path / "site"
    folder = dist(site, "latin-1.0.dist-info", "Name: latin\nVersion: 1.0\n")
    (folder / "METADATA").write_bytes(b"Name: latin\nVersion: 1.0\nSummary: caf\xe9\n")
    driver = tmp_path / "driver.py"
    driver.write_text("import importlib.util, sys\n"
                      "spec = importlib.util.spec_from_file_location('_probe', sys.argv[1])\n"
                      "probe = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(probe)\n"
                      "sys.path.append(sys.argv[2])\nprint(probe.read_path_distributions())\n")
    proc = subprocess.run([sys.executable, "-I", str(driver), str(defaults.PROBE_SCRIPT), str(site)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, env=runner.clean_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "None"
