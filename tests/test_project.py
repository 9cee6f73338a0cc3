"""The project folder is where the user works (the folder holding locks/, or $STACKSYNC_PROJECT), not where
stacksync is installed, and settings are read when a command runs, not when stacksync is imported."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacksync.core import defaults
from stacksync.core.errors import NoProjectFolder
from stacksync.lock import profile

SETTINGS = ("STACKSYNC_PROJECT", "STACKSYNC_LOCKS_DIR", "STACKSYNC_PROFILE", "STACKSYNC_CACHE_DIR",
            "STACKSYNC_REPORTS_DIR")


@pytest.fixture
def bare(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_found_from_the_current_directory_upwards(bare: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "locks" / "demo").mkdir(parents=True)
    deep = tmp_path / "src" / "pkg"
    deep.mkdir(parents=True)
    bare.chdir(deep)
    assert defaults.project_dir() == tmp_path
    assert defaults.locks_dir() == tmp_path / "locks"
    assert defaults.default_venv() == tmp_path / ".venv"
    assert defaults.cache_dir() == tmp_path / ".stacksync-cache"
    assert defaults.reports_dir() == tmp_path / "reports"
    assert defaults.profile_name() == "demo"


def test_environment_is_read_per_call_and_wins(bare: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "here" / "locks").mkdir(parents=True)
    bare.chdir(tmp_path / "here")
    assert defaults.project_dir() == tmp_path / "here"
    bare.setenv("STACKSYNC_PROJECT", str(tmp_path / "other"))
    bare.setenv("STACKSYNC_PROFILE", "gpu")
    bare.setenv("STACKSYNC_CACHE_DIR", str(tmp_path / "big" / "cache"))
    assert defaults.project_dir() == tmp_path / "other"
    assert defaults.locks_dir() == tmp_path / "other" / "locks"
    assert defaults.default_venv() == tmp_path / "other" / ".venv"
    assert defaults.cache_dir() == tmp_path / "big" / "cache"
    assert defaults.reports_dir() == tmp_path / "other" / "reports"
    assert defaults.profile_name() == "gpu"
    bare.setenv("STACKSYNC_LOCKS_DIR", str(tmp_path / "team-locks"))
    assert defaults.locks_dir() == tmp_path / "team-locks"


def test_no_project_is_one_line_naming_the_fix(bare: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bare.chdir(tmp_path)
    assert defaults.find_project_dir() is None
    with pytest.raises(NoProjectFolder) as info:
        defaults.cache_dir()
    text = str(info.value)
    assert "\n" not in text and str(tmp_path) in text and "locks/" in text and "STACKSYNC_PROJECT" in text
    with pytest.raises(NoProjectFolder):
        profile.load("demo")
    # What needs no project still works: listing (nothing), and where a first profile would go.
    assert profile.available() == []
    assert defaults.new_locks_dir() == tmp_path / "locks"


def test_a_profile_folder_given_by_path_needs_no_project(bare: pytest.MonkeyPatch, tmp_path: Path) -> None:
    folder = tmp_path / "somewhere" / "mine"
    folder.mkdir(parents=True)
    (folder / "stack.toml").write_text('python = "3.11"\n', encoding="utf-8")
    (folder / "requirements.in").write_text("six\n", encoding="utf-8")
    bare.chdir(tmp_path)
    assert profile.load(folder).name == "mine"


def test_this_checkout_is_a_project_because_it_holds_locks(bare: pytest.MonkeyPatch) -> None:
    repo = Path(__file__).resolve().parent.parent
    bare.chdir(repo / "tests")
    assert defaults.project_dir() == repo
    assert "demo" in profile.available()
