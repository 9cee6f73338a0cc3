"""The reader against pip's own parser (``pip._internal.req.req_file.parse_requirements``, the
oracle: allowed in tests, never in stacksync) on a corpus shaped like real files (tests/data/real):
a conda training-env freeze, an ML repo's requirements with bare wheel URLs + markers + per-line
options, a PowerShell UTF-16 freeze, CRLF, a UTF-8 BOM, a PEP 263 coding line, uv / pip list / pip
freeze output, a pip-compile hashed lock and pip's own test-data shapes; plus the lines pip refuses."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from pip._internal.exceptions import InstallationError
from pip._internal.network.session import PipSession
from pip._internal.req.constructors import install_req_from_parsed_requirement
from pip._internal.req.req_file import parse_requirements

from stacksync.lock.lockfile import LockProblems, Pin, parse

DATA = Path(__file__).parent / "data" / "real"
CORPUS = sorted(p.name for p in DATA.iterdir() if p.suffix == ".txt"
                and p.name not in ("included-requirements.txt", "constraints.txt"))


def pip_view(path: Path) -> list[dict[str, Any]]:
    """What pip reads: one dict per requirement (constraints included), in file order."""
    out = []
    for parsed in parse_requirements(str(path), session=PipSession()):
        ireq = install_req_from_parsed_requirement(parsed, user_supplied=True)
        line = int(parsed.comes_from.rsplit("(line ", 1)[1].rstrip(")"))
        out.append({
            "name": ireq.name and ireq.name.lower().replace("_", "-").replace(".", "-"),
            "line": line,
            "editable": parsed.is_editable,
            "constraint": parsed.constraint,
            "url": ireq.link.url if ireq.link is not None else None,
            "specifier": str(ireq.req.specifier) if ireq.req is not None else "",
            "marker": str(ireq.markers) if ireq.markers is not None else None,
            "hashes": sorted(f"{k}:{v}" for k, vs in (parsed.options or {}).get("hashes", {}).items() for v in vs),
            "config": (parsed.options or {}).get("config_settings"),
        })
    return out


def our_view(pins: list[Pin]) -> list[dict[str, Any]]:
    out = []
    for p in pins:
        bare_wheel = p.url is not None and "@" not in p.requirement.split("://")[0] and not p.editable \
            and p.file_version and p.url.split("#")[0].endswith(".whl")
        out.append({
            "name": p.name, "line": p.line, "editable": p.editable, "constraint": p.constraint, "url": p.url,
            "specifier": f"=={p.file_version}" if bare_wheel else p.specifier,
            "marker": str(p.marker) if p.marker is not None else None,
            "hashes": list(p.hashes),
            "config": _config(p),
        })
    return out


def _config(p: Pin) -> dict[str, Any] | None:
    values = p.option_values("--config-settings")
    if not values:
        return None
    conf: dict[str, Any] = {}
    for v in values:
        key, _, val = v.partition("=")
        conf[key] = val if key not in conf else [*([conf[key]] if isinstance(conf[key], str) else conf[key]), val]
    return conf


def _comparable(pip_rows: list[dict[str, Any]], ours: list[dict[str, Any]]) -> list[str]:
    """Differences, field by field; a name pip cannot know before building (an sdist URL, a local
    folder) is not compared (stacksync reads it from the file name / pyproject.toml)."""
    diffs = []
    if len(pip_rows) != len(ours):
        return [f"{len(pip_rows)} requirements in pip, {len(ours)} in stacksync"]
    for a, b in zip(pip_rows, ours, strict=True):
        for key in a:
            if key == "name" and a[key] is None:
                continue
            if key == "url" and a[key] is not None and b[key] is not None:
                same = a[key].rstrip("/") == b[key].rstrip("/")
            else:
                same = a[key] == b[key]
            if not same:
                diffs.append(f"line {a['line']}: {key}: pip {a[key]!r}, stacksync {b[key]!r}")
    return diffs


@pytest.fixture
def corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the corpus as the current directory (pip reads relative paths from there)."""
    copy = tmp_path / "real"
    shutil.copytree(DATA, copy)
    monkeypatch.chdir(copy)
    monkeypatch.setenv("SS_CORPUS_DIR", str(copy))
    monkeypatch.setenv("SS_CORPUS_HOST", "files.example")
    return copy


@pytest.mark.parametrize("name", CORPUS)
def test_each_corpus_file_parses_as_pip_parses_it(corpus: Path, name: str) -> None:
    path = corpus / name
    parsed = parse(path)
    pins = [*parsed.pins, *parsed.constraints]
    # pip yields in file order with the included files in place; ours: the same, constraints last
    pip_rows = sorted(pip_view(path), key=lambda r: r["constraint"])
    ours = our_view(pins)
    ours_sorted = sorted(ours, key=lambda r: r["constraint"])
    assert _comparable(pip_rows, ours_sorted) == []
    assert pins


def test_the_count_of_files_that_parse_as_pip_does(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The number the issue note reports: files tried, files read exactly as pip reads them."""
    same = 0
    for name in CORPUS:
        path = corpus / name
        parsed = parse(path)
        if not _comparable(sorted(pip_view(path), key=lambda r: (r["constraint"], 0)),
                           sorted(our_view([*parsed.pins, *parsed.constraints]), key=lambda r: (r["constraint"], 0))):
            same += 1
    with capsys.disabled():
        print(f"\ncorpus: {same} of {len(CORPUS)} files parse as pip parses them")
    assert same == len(CORPUS) and len(CORPUS) >= 10


@pytest.mark.parametrize(("text", "needle", "fix"), [
    ("torch==2.3.0 --global-option=--no-cuda\n", "unknown option --global-option", "use an option pip takes"),
    ("numpy = 1.26\n", "not a requirement", "write name==version"),
    ("-c missing-constraints.txt\n", "constraints file missing-constraints.txt not found", "check the path"),
    ("-r missing.txt\n", "requirements file missing.txt not found", "check the path"),
    ("-e https://files.example/x-1.0.tar.gz\n", "not a valid editable requirement", "drop -e"),
    ("-e git+https://git.example/org/x.git@0123456789abcdef0123456789abcdef01234567\n",
     "cannot tell the project name", "#egg=NAME"),
    ("x==1.0 --hash=md5:0123\n", "malformed hash", "sha256"),
    ("https://files.example/not-a-wheel.whl\n", "not a valid wheel file name", "NAME-VERSION"),
    ("x==1.0 --index-url\n", "--index-url option requires 1 argument", "give the option its value"),
])
def test_what_pip_refuses_is_refused_with_the_line_and_a_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            text: str, needle: str, fix: str) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "requirements.txt"
    path.write_text("ok==1.0\n" + text)
    with pytest.raises((InstallationError, Exception)):
        for parsed in parse_requirements(str(path), session=PipSession()):
            install_req_from_parsed_requirement(parsed, user_supplied=True)
    with pytest.raises(LockProblems) as info:
        parse(path)
    message = str(info.value)
    assert message.startswith(f"{path}:2: ") and needle in message and fix in message, message
    assert "\n" not in message
