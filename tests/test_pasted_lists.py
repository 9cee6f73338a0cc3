"""Every package-list format people paste (tests/data/real/lists: one baseline in each shape, written
the way pip 26.3, uv 0.13.9 and conda print them) is recognised as a whole and read into the same
pins as the freeze; the baseline's Python and platform come from what the file says (or are given,
or said to be assumed); conda rows with no PyPI project are listed apart; known-stack refusals
(NVIDIA apex, conda's own packages, a local checkout, pip) name the line and the fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stacksync.core.defaults import INSTALLER_PACKAGES
from stacksync.env.baseline import from_file
from stacksync.env.diff import diff_sides
from stacksync.lock import listing
from stacksync.lock.lockfile import RequirementsFile, parse_listing

LISTS = Path(__file__).parent / "data" / "real" / "lists"
REPO = Path(__file__).resolve().parent.parent  # this checkout: its tasks.py


def versions(parsed: RequirementsFile) -> dict[str, str]:
    """name -> version (an editable's noted version), installers left out (pip freeze hides them)."""
    return {p.name: str(p.version or p.editable_version) for p in parsed.pins if p.name not in INSTALLER_PACKAGES}


@pytest.mark.parametrize(("name", "fmt", "freeze"), [
    ("ml-env-freeze.txt", listing.FREEZE, "ml-env-freeze.txt"),
    ("ml-env-pip-list.txt", listing.PIP_LIST_EDITABLE, "ml-env-freeze.txt"),
    ("ml-env-pip-list-utf16.txt", listing.PIP_LIST_EDITABLE, "ml-env-freeze.txt"),
    ("ml-env-uv-pip-list.txt", listing.PIP_LIST_EDITABLE, "ml-env-freeze.txt"),
    ("ml-env-pip-list.json", listing.PIP_JSON, "ml-env-freeze.txt"),
    ("ml-env-conda-list.txt", listing.CONDA_LIST, "ml-env-conda-freeze.txt"),
    ("ml-env-conda-export.txt", listing.CONDA_EXPORT, "ml-env-conda-freeze.txt"),
    ("ml-env-environment.yml", listing.CONDA_YAML, "ml-env-conda-freeze.txt"),
])
def test_each_format_reads_into_the_freezes_pins(name: str, fmt: str, freeze: str) -> None:
    parsed, found = parse_listing(LISTS / name)
    assert found.format == fmt
    expected = versions(parse_listing(LISTS / freeze)[0])
    assert versions(parsed) == expected
    if name.endswith("utf16.txt"):
        assert parsed.encoding == "utf-16"


def test_pip_list_without_the_editable_column() -> None:
    parsed, found = parse_listing(LISTS / "ml-env-pip-list-no-editable.txt")
    assert found.format == listing.PIP_LIST
    expected = versions(parse_listing(LISTS / "ml-env-freeze.txt")[0])
    del expected["trainer"]
    assert versions(parsed) == expected


def test_an_editable_row_keeps_its_name_version_and_location() -> None:
    for name in ("ml-env-pip-list.txt", "ml-env-pip-list.json", "ml-env-freeze.txt"):
        (pin,) = parse_listing(LISTS / name)[0].get("trainer")
        assert (pin.editable, pin.editable_version, pin.url) == (True, "0.3.0", "file:///home/alice/src/trainer"), name


@pytest.mark.parametrize("name", ["ml-env-conda-list.txt", "ml-env-conda-export.txt", "ml-env-environment.yml"])
def test_conda_rows_apart_renamed_and_what_they_say(name: str) -> None:
    parsed, found = parse_listing(LISTS / name)
    apart = {a.name for a in found.apart}
    assert {"python", "pytorch-cuda", "_libgcc_mutex", "mkl", "numpy-base", "libgcc-ng", "cuda-cudart"} <= apart
    assert not apart & {"numpy", "pytorch", "certifi", "pyyaml"}
    assert [h.value for h in found.python][:1] == ["3.10"] and "python 3.10.14 row" in found.python[0].because
    assert [h.value for h in found.platform][:1] == ["linux"]
    assert found.cuda and found.cuda[0].value == "12.1"
    assert any("pytorch 2.3.1 -> torch==2.3.1" in r for r in found.renamed)
    assert parsed.get("torch")[0].version == "2.3.1" and not parsed.get("pytorch")


def test_hand_written_environment_yml(tmp_path: Path) -> None:
    env = tmp_path / "environment.yml"
    env.write_text("name: ml\nchannels:\n  - pytorch\n  - conda-forge\ndependencies:\n  - python=3.9\n"
                   "  - pytorch::pytorch=2.1\n  - cudatoolkit=11.8\n  - numpy>=1.24\n  - py-opencv\n  - pip\n"
                   "  - pip:\n      - \"transformers==4.36.2\"\n      - einops  # any\n")
    parsed, found = parse_listing(env)
    assert found.format == listing.CONDA_YAML
    assert {p.name: p.requirement for p in parsed.pins} == {
        "torch": "torch==2.1.*", "numpy": "numpy>=1.24", "opencv-python": "opencv-python",
        "transformers": "transformers==4.36.2", "einops": "einops"}
    assert [h.value for h in found.python] == ["3.9"]
    assert [a.name for a in found.apart] == ["python", "cudatoolkit"] and [h.value for h in found.cuda] == ["11.8"]
    assert parsed.get("einops")[0].line == 14


def test_pasted_python_line_prompt_and_warnings_are_skipped(tmp_path: Path) -> None:
    pasted = tmp_path / "freeze.txt"
    pasted.write_text("Python 3.10.19\n(venv) alice@gpu01:~/proj$ pip freeze\nWARNING: Ignoring invalid "
                      "distribution -orch (/venv/lib/python3.10/site-packages)\ntorch==2.3.1\nnumpy==1.26.4\n")
    parsed, found = parse_listing(pasted)
    assert found.format == listing.FREEZE and [p.line for p in parsed.pins] == [4, 5]
    assert [n for n, _ in found.dropped] == [1, 2, 3]
    assert [(h.value, h.line) for h in found.python] == [("3.10", 1)]


def test_a_table_without_its_header_is_still_a_table(tmp_path: Path) -> None:
    rows = tmp_path / "rows.txt"
    rows.write_text("numpy    1.26.4   py310h5f9d8c6_0\ntorch 2.3.1 pypi_0 pypi\nlibffi 3.4.4 h6a678d5_1\n")
    parsed, found = parse_listing(rows)
    assert found.format == listing.COLUMNS
    assert versions(parsed) == {"numpy": "1.26.4", "torch": "2.3.1"} and [a.name for a in found.apart] == ["libffi"]


def test_baseline_python_from_cp38_wheel_urls(tmp_path: Path) -> None:
    freeze = tmp_path / "freeze.txt"
    freeze.write_text("numpy==1.24.4\ntorch @ https://download.pytorch.org/whl/cu118/"
                      "torch-2.1.0%2Bcu118-cp38-cp38-linux_x86_64.whl\n")
    proposal = from_file(str(freeze), "old")
    assert (proposal.python, proposal.platform) == ("3.8", "linux")
    assert f'# python: read from {freeze}: a cp38 wheel at line 2\npython = "3.8"\n' in proposal.stack_toml


def test_baseline_python_assumed_is_said_and_given_wins(tmp_path: Path) -> None:
    freeze = tmp_path / "freeze.txt"
    freeze.write_text("numpy==1.26.4\n")
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    proposal = from_file(str(freeze), "p")
    assert proposal.python == here and "# python: assumed:" in proposal.stack_toml
    assert "fix: --python-version X.Y" in proposal.stack_toml
    given = from_file(str(freeze), "p", python_version="3.9", platform="win32")
    assert 'python = "3.9"' in given.stack_toml and 'platforms = ["win32"]' in given.stack_toml
    assert "given (--python-version)" in given.stack_toml


def test_windows_only_freeze_says_win32(tmp_path: Path) -> None:
    freeze = tmp_path / "freeze.txt"
    freeze.write_text("colorama==0.4.6\npywin32==306\n")
    assert from_file(str(freeze), "w").platform == "win32"


def test_known_stacks_apex_conda_tools_local_checkout_installers_counts(tmp_path: Path) -> None:
    freeze = tmp_path / "freeze.txt"
    freeze.write_text("apex==0.1\nconda==25.1.0\nconda-libmamba-solver @ file:///croot/cls_1/work\n"
                      "menuinst==2.2.0\nmylib @ file:///home/alice/src/mylib\nnumpy==1.26.4\npip==24.0\n"
                      "setuptools==69.5.1\nwheel==0.43.0\nrequests>=2\nscipy\n")
    p = from_file(str(freeze), "k")
    assert "# apex @ git+https://github.com/NVIDIA/apex.git@<40-hex commit>   # FIXME: was apex==0.1" \
        in p.requirements_in
    assert "\napex" not in p.requirements_in and "deferred.apex" not in p.stack_toml
    assert any(w.startswith(f"{freeze}:1: apex==0.1 is NVIDIA apex") for w in p.warnings)
    assert any("conda's own packages left out (conda, conda-libmamba-solver, menuinst)" in w for w in p.warnings)
    assert any(f"{freeze}:5: mylib @ file:///home/alice/src/mylib: version unknown in this file (a local path "
               "checkout on the baseline's machine)" in w for w in p.warnings)
    assert "setuptools===69.5.1" in p.requirements_in and "wheel===0.43.0" in p.requirements_in
    assert "pip=" not in p.requirements_in and any("pip left out" in w for w in p.warnings)
    assert (p.pinned, p.as_written, len(p.unknown)) == (3, 2, 1)  # numpy, setuptools, wheel; requests, scipy
    assert sorted(p.left_out) == ["apex", "conda", "conda-libmamba-solver", "menuinst", "pip"]


def test_diff_reads_a_pip_list_and_a_conda_list_as_package_lists() -> None:
    _, _, same = diff_sides(str(LISTS / "ml-env-pip-list.json"), str(LISTS / "ml-env-uv-pip-list.txt"))
    assert same.identical
    _, _, conda = diff_sides(str(LISTS / "ml-env-conda-list.txt"), str(LISTS / "ml-env-conda-freeze.txt"))
    assert conda.identical, conda.counts()


def test_invoke_freeze_from_a_conda_list_names_the_format(tmp_path: Path) -> None:
    env = {**os.environ, "STACKSYNC_LOCKS_DIR": str(tmp_path / "locks")}
    done = subprocess.run([sys.executable, "-m", "invoke", "-r", str(REPO), "freeze", "--from",
                           str(LISTS / "ml-env-conda-list.txt"), "-p", "conda"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "read as conda list; Python 3.10 (read from" in done.stderr
    assert "16 pinned, 0 as written" in done.stderr and "23 not PyPI packages" in done.stderr
    req = (tmp_path / "locks" / "conda" / "requirements.in").read_text()
    assert "torch===2.3.1" in req and "#   line 28: pytorch-cuda 12.1:" in req
    assert 'python = "3.10"' in (tmp_path / "locks" / "conda" / "stack.toml").read_text()


COLLECTED = Path(__file__).parent / "data" / "real" / "collected"


@pytest.mark.parametrize(("name", "fmt", "python", "platform"), [
    ("assistant-base-pip-freeze.txt", listing.FREEZE, None, "linux"),
    ("clinical-bert-pip-list.txt", listing.PIP_LIST, None, "linux"),
    ("dcl-conda-explicit.txt", listing.CONDA_EXPLICIT, "3.6", "linux"),
    ("emcad-environment.yml", listing.CONDA_YAML, "3.8", "linux"),
    ("mega-sam-environment.yml", listing.CONDA_YAML, "3.10", None),
    ("paris-conda-explicit.txt", listing.CONDA_EXPLICIT, "3.9", "linux"),
    ("proteinmpnn-environment.yml", listing.CONDA_YAML, None, None),
    ("pytorch-morph-pip-freeze.txt", listing.FREEZE, None, "win32"),
    ("tinyzero-pip-list.txt", listing.PIP_LIST_EDITABLE, None, "linux"),
    ("topographicvae-conda-list.txt", listing.CONDA_LIST, "3.6", "linux"),
])
def test_collected_public_baselines_become_loadable_profiles(name: str, fmt: str, python: str | None,
                                                             platform: str | None, tmp_path: Path) -> None:
    """Lists published in ML repositories (source in each file's first line): the format is recognised,
    the Python / platform read where the file says them, and the proposal loads as a profile."""
    from stacksync.env.baseline import write_profile
    from stacksync.lock import profile

    found = parse_listing(COLLECTED / name)[1]
    assert found.format == fmt
    assert ([h.value for h in found.python][:1] or [None]) == [python]
    assert ([h.value for h in found.platform][:1] or [None]) == [platform]
    proposal = from_file(str(COLLECTED / name), "p")
    write_profile(proposal, "p", locks_dir=tmp_path)
    loaded = profile.load(tmp_path / "p")
    assert loaded.python == (python or f"{sys.version_info[0]}.{sys.version_info[1]}")
    assert proposal.pinned + proposal.as_written > 0


def test_a_build_column_is_not_a_location_and_develop_rows_are_apart() -> None:
    parsed, _ = parse_listing(COLLECTED / "clinical-bert-pip-list.txt")
    (torch,) = parsed.get("torch")
    assert (torch.version, torch.editable) == ("2.10.0", False)
    (verl,) = parse_listing(COLLECTED / "tinyzero-pip-list.txt")[0].get("verl")
    assert verl.editable and verl.url == "file:///users/gwang16/Jillian/TinyZero"
    found = parse_listing(COLLECTED / "topographicvae-conda-list.txt")[1]
    assert any(a.name == "tvae" and "development (editable) install" in a.why for a in found.apart)


@pytest.mark.parametrize("name", sorted(p.name for p in LISTS.iterdir() if "utf16" not in p.name))
def test_every_format_saved_by_powershell_as_utf16_reads_the_same(name: str, tmp_path: Path) -> None:
    """Windows PowerShell 5's `>` writes UTF-16 LE with a BOM and CRLF, whatever the command printed."""
    text = (LISTS / name).read_text(encoding="utf-8")
    pasted = tmp_path / name
    pasted.write_bytes(b"\xff\xfe" + text.replace("\n", "\r\n").encode("utf-16-le"))
    parsed, found = parse_listing(pasted)
    original, expected = parse_listing(LISTS / name)
    assert (found.format, parsed.encoding) == (expected.format, "utf-16")
    assert versions(parsed) == versions(original) and [a.name for a in found.apart] == [a.name for a in expected.apart]


def test_collected_conda_tooling_mkl_bindings_and_cuda_builds(tmp_path: Path) -> None:
    """What compiling the collected baselines against PyPI showed: conda's plugins (conda-anaconda-*),
    conda's MKL bindings and C++ libraries built per Python are not PyPI pins; a +cu121 pin names its index."""
    clinical = from_file(str(COLLECTED / "clinical-bert-pip-list.txt"), "c")
    assert {"conda-anaconda-telemetry", "conda-anaconda-tos", "anaconda-auth"} <= set(clinical.left_out)
    found = parse_listing(COLLECTED / "emcad-environment.yml")[1]
    assert "libboost-python" in {a.name for a in found.apart}
    paris = parse_listing(COLLECTED / "paris-conda-explicit.txt")[1]
    assert {"mkl_fft", "mkl_random", "mkl-service"} <= {a.name for a in paris.apart}
    tiny = from_file(str(COLLECTED / "tinyzero-pip-list.txt"), "t")
    assert '# extra_index_urls = ["https://download.pytorch.org/whl/cu121"]' in tiny.stack_toml
