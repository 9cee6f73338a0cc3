"""What one requirement is (stacksync.lock.reqshape): PEP 508 lines, bare URLs and paths, VCS URLs,
editables, and the refusals that name the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacksync.lock import reqshape as rsh

SHA = "3f1c2a9b8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a"


def test_pep508_pin_and_marker() -> None:
    shape = rsh.read_requirement('Torch_Like[cuda]==2.4.0 ; sys_platform == "linux"', base=Path("."))
    assert (shape.name, shape.specifier, shape.extras, shape.url) == \
        ("torch-like", "==2.4.0", frozenset({"cuda"}), None)
    assert shape.marker is not None and str(shape.marker) == 'sys_platform == "linux"'
    assert not shape.bare and not shape.editable


def test_name_at_wheel_url_reads_version_from_its_own_file_name() -> None:
    url = "https://h/p/torch-2.3.0%2Bcu121-cp311-cp311-linux_x86_64.whl"
    shape = rsh.read_requirement(f"torch @ {url}", base=Path("."))
    assert (shape.name, shape.url, shape.file_version) == ("torch", url, "2.3.0+cu121")
    other = rsh.read_requirement(f"numpy @ {url}", base=Path("."))  # not this project's file: no version
    assert other.file_version is None


def test_name_at_vcs_url() -> None:
    shape = rsh.read_requirement(f"trainer @ git+https://h/r.git@{SHA}#subdirectory=pkg", base=Path("."))
    assert (shape.vcs, shape.commit, shape.revision, shape.subdirectory) == ("git", SHA, SHA, "pkg")
    branch = rsh.read_requirement("trainer @ git+https://h/r.git@main", base=Path("."))
    assert (branch.commit, branch.revision) == (None, "main")


def test_split_vcs_takes_the_last_at_of_the_path() -> None:
    assert rsh.split_vcs("git+ssh://git@h/r.git@v1.2#egg=r") == ("git", "ssh://git@h/r.git", "v1.2")
    assert rsh.split_vcs("git+https://h/r.git") == ("git", "https://h/r.git", None)


def test_bare_urls_and_files() -> None:
    wheel = rsh.read_requirement("https://h/einops-0.8.0-py3-none-any.whl", base=Path("."))
    assert (wheel.name, wheel.file_version, wheel.bare) == ("einops", "0.8.0", True)
    egg = rsh.read_requirement("git+https://h/r.git@main#egg=acme_trainer", base=Path("."))
    assert (egg.name, egg.vcs, egg.bare) == ("acme-trainer", "git", True)
    sdist = rsh.read_requirement("./dist/plain_b-1.0.tar.gz", base=Path("/w"))
    assert (sdist.name, sdist.file_version, sdist.url) == ("plain-b", "1.0", "file:///w/dist/plain_b-1.0.tar.gz")


def test_version_from_filename_and_is_url() -> None:
    assert rsh.version_from_filename("file:///x/flash_attn-2.8.0.post2.tar.gz") == ("flash-attn", "2.8.0.post2")
    assert rsh.version_from_filename("https://h/README.md") is None
    assert rsh.is_url("git+file:///r") and rsh.is_url("HTTPS://h/x") and not rsh.is_url("C:/x") \
        and not rsh.is_url("pkg==1")


def test_local_project_folder(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "Acme.Trainer"\nversion = "1"\n', encoding="utf-8")
    shape = rsh.read_requirement("./proj[dev]", base=tmp_path)
    assert (shape.name, shape.extras, shape.url, shape.notes) == ("acme-trainer", frozenset({"dev"}),
                                                                  project.as_uri(), ())
    editable = rsh.read_editable("./proj", base=tmp_path)
    assert editable.editable and editable.name == "acme-trainer"
    (tmp_path / "guess").mkdir()
    (tmp_path / "guess" / "setup.py").write_text("from setuptools import setup\nsetup()\n", encoding="utf-8")
    guessed = rsh.read_editable("./guess", base=tmp_path)
    assert guessed.name == "guess" and "guessed" in guessed.notes[0]


def test_editable_vcs_needs_a_name() -> None:
    shape = rsh.read_editable(f"git+https://h/r.git@{SHA}#egg=acme_trainer", base=Path("."))
    assert (shape.name, shape.commit, shape.editable) == ("acme-trainer", SHA, True)
    assert rsh.read_editable("git://h/r.git#egg=r", base=Path(".")).vcs == "git"  # pip adds git+
    with pytest.raises(rsh.ShapeError, match="cannot tell the project name") as exc:
        rsh.read_editable("git+https://h/r.git@main", base=Path("."))
    assert "#egg=NAME" in exc.value.fix


def test_editable_missing_file_url_is_named_from_its_folder(tmp_path: Path) -> None:
    shape = rsh.read_editable((tmp_path / "gone_pkg").as_uri(), base=tmp_path)
    assert shape.name == "gone-pkg" and shape.editable and "is not there" in shape.notes[0]


@pytest.mark.parametrize(("text", "message", "fix"), [
    ("pkg=1.0", "not a requirement", "= is not a valid operator"),
    ("pkg @ https://h/x.tar.gz ; python_version >>> '3'", "malformed marker", "PEP 508 marker"),
    ("https://h/not-a-wheel.whl", "is not a valid wheel file name", "NAME-VERSION"),
    ("https://h/archive/main.tar.gz", "a URL without a project name", "NAME @ https://h/archive/main.tar.gz"),
    ("git+https://h/r.git#egg=bad name", "is not a project name", "NAME @ URL"),
    ("./no/such/dir/", "not a requirement", "looks like a path"),
])
def test_refusals_carry_a_fix(text: str, message: str, fix: str) -> None:
    with pytest.raises(rsh.ShapeError, match=message) as exc:
        rsh.read_requirement(text, base=Path("/nonexistent-base"))
    assert fix in exc.value.fix


def test_plain_url_is_not_editable() -> None:
    with pytest.raises(rsh.ShapeError, match="not a valid editable requirement") as exc:
        rsh.read_editable("pkg @ https://h/pkg-1.0.tar.gz", base=Path("."))
    assert exc.value.fix.startswith("drop -e")


def test_project_name_from_setup_cfg(tmp_path: Path) -> None:
    (tmp_path / "setup.cfg").write_text("[metadata]\nname = acme-cfg\n", encoding="utf-8")
    assert rsh.project_name(tmp_path) == "acme-cfg"
    assert rsh.project_name(tmp_path / "absent") is None


@pytest.mark.parametrize("text", ["plain", "plain==1.0", "Mixed_Case.Name==2.4.0+cu121", "a==1.0rc1.post2.dev3",
                                  "x[a]==1", "x>=1,<2", "x==1 ; python_version < '3.12'", "x @ https://h/x.whl",
                                  "x.tar.gz", "x == 1.0"])
def test_cached_requirement_equals_packaging(text: str) -> None:
    """``reqshape.requirement`` (cached; plain lines built from their parts) is packaging's Requirement:
    every attribute, its text, equality and hash."""
    from packaging.requirements import Requirement

    mine, theirs = rsh.requirement(text), Requirement(text)
    slots = getattr(Requirement, "__slots__", None) or list(vars(theirs))  # whatever packaging keeps
    assert {"name", "url", "extras", "specifier", "marker"} <= set(slots)
    for slot in slots:
        assert getattr(mine, slot) == getattr(theirs, slot), slot
    assert type(mine) is type(theirs) and str(mine) == str(theirs) and mine == theirs and hash(mine) == hash(theirs)
    assert rsh.requirement(text) is mine  # parsed once a run


def test_cached_requirement_refuses_what_packaging_refuses() -> None:
    from packaging.requirements import InvalidRequirement

    with pytest.raises(InvalidRequirement):
        rsh.requirement("not a requirement!")
