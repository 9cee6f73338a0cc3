"""Pins the index serves as an sdist only (pyairports in the gpu stack): sync builds each once into the
wheelhouse and installs it by hash in its phase; a second twin builds nothing. A pin with no wheel
for the target and no sdist is one line saying what the index has. Real pip, local index, offline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pkgfactory
import pytest
from pkgfactory import IndexServer
from stackprofile import LOCK_A, TOKEN_VAR, USER_VAR, builds, freeze, virtualenv_at, write_profile

from stacksync.core import runner
from stacksync.core.errors import FetchError
from stacksync.sync.run import run
from stacksync.sync.state import Options

pytestmark = pytest.mark.slow

AIRPORTS_SETUP = """\
from setuptools import setup

setup(name="airports-like", version="0.0.1", packages=["airports_like"])
"""


@pytest.fixture
def index(fresh_index_server: IndexServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[IndexServer]:
    """The stand-in stack plus outlines-like 1.0 (a wheel) requiring airports-like 0.0.1 (an sdist only)
    and other-like 1.0 (a wheel for Windows only)."""
    extra = tmp_path / "extra"
    pkgfactory.build_sdist(extra, "airports-like", "0.0.1", setup_py=AIRPORTS_SETUP,
                           files={"airports_like/__init__.py": "CODES = ['LHR']\n"})
    pkgfactory.build_wheel(extra, "outlines-like", "1.0", requires=["airports-like==0.0.1"],
                           files={"outlines_like/__init__.py": "import airports_like\n"})
    pkgfactory.build_wheel(extra, "other-like", "1.0", tag="cp311-cp311-win_amd64",
                           files={"other_like/__init__.py": ""})
    # an sdist plus a wheel for another platform: found by the wheel download's failure, then built
    pkgfactory.build_sdist(extra, "mixed-like", "1.0", setup_py=AIRPORTS_SETUP.replace("airports", "mixed")
                           .replace("0.0.1", "1.0"), files={"mixed_like/__init__.py": ""})
    pkgfactory.build_wheel(extra, "mixed-like", "1.0", tag="cp311-cp311-win_amd64",
                           files={"mixed_like/__init__.py": ""})
    fresh_index_server.add(*extra.iterdir())
    monkeypatch.setenv(USER_VAR, fresh_index_server.user)
    monkeypatch.setenv(TOKEN_VAR, fresh_index_server.password)
    yield fresh_index_server


def _lines(index: IndexServer, *names: str) -> str:
    out = []
    for name, via in (("outlines-like", "-r requirements.in"), ("airports-like", "outlines-like"),
                      ("other-like", "-r requirements.in"), ("mixed-like", "-r requirements.in")):
        if name not in names:
            continue
        files = [p for p in index.packages_dir.iterdir() if p.name.startswith(name.replace("-", "_") + "-")]
        head = f"{name}=={'0.0.1' if name == 'airports-like' else '1.0'}"
        out.append(" \\\n".join([head, *(f"    --hash=sha256:{pkgfactory.sha256_of(f)}" for f in files)])
                   + f"\n    # via {via}\n")
    return "".join(out)


def test_an_sdist_only_dependency_is_built_once_and_installed_in_its_phase(index: IndexServer, tmp_path: Path,
                                                                          _virtualenv_app_data: Path) -> None:
    prof = write_profile(tmp_path / "sdistdep", index.packages_dir, index, LOCK_A,
                         extra_lock_lines=_lines(index, "outlines-like", "airports-like", "mixed-like"))
    for n, venv_name in enumerate(("one", "two")):
        venv = virtualenv_at(tmp_path / venv_name, _virtualenv_app_data)
        runner.history.clear()
        outcome = run(Options(profile=str(prof), venv=str(venv), cache_dir=tmp_path / f"cache-{venv_name}"))
        started = [list(a) for a in runner.history]
        assert outcome.verdict == "synced", outcome.summary
        got = freeze(venv)
        assert got["airports-like"] == "0.0.1" and got["outlines-like"] == "1.0" and got["mixed-like"] == "1.0"
        sdist_builds = [a for a in builds(started) if any(("airports" in str(x) or "mixed" in str(x)) for x in a)]
        # the first twin builds each sdist once (build isolation on: no --no-build-isolation); the
        # second takes the wheels from the wheelhouse and builds nothing
        assert len(sdist_builds) == (2 if n == 0 else 0), sdist_builds
        assert all("--no-build-isolation" not in a for a in sdist_builds)
        assert not [a for a in builds(started) if "flash" not in " ".join(map(str, a))
                    and a not in sdist_builds]
    again = run(Options(profile=str(prof), venv=str(tmp_path / "two"), cache_dir=tmp_path / "cache-two"))
    assert again.verdict == "in-sync"


def test_a_pin_with_no_wheel_for_the_target_says_what_the_index_has(index: IndexServer, tmp_path: Path,
                                                                  _virtualenv_app_data: Path) -> None:
    prof = write_profile(tmp_path / "nowheel", index.packages_dir, index, LOCK_A,
                         extra_lock_lines=_lines(index, "other-like"))
    venv = virtualenv_at(tmp_path / "venv", _virtualenv_app_data)
    before = freeze(venv)
    with pytest.raises(FetchError) as info:
        run(Options(profile=str(prof), venv=str(venv), cache_dir=tmp_path / "cache"))
    text = str(info.value)
    assert "requirements.txt:" in text and "other-like==1.0 has no wheel for this target" in text
    assert "other Pythons / platforms only: other_like-1.0-cp311-cp311-win_amd64.whl" in text
    assert "fix: compile the lock for this target's Python and platform" in text
    assert freeze(venv) == before


def test_plan_of_a_venv_that_does_not_exist_yet_is_against_an_empty_environment(
        index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prof = write_profile(tmp_path / "fresh", index.packages_dir, index, LOCK_A)
    venv = tmp_path / "not-yet"
    outcome = run(Options(profile=str(prof), venv=str(venv), cache_dir=tmp_path / "cache", dry_run=True))
    out = capsys.readouterr().out
    assert outcome.verdict == "planned" and not venv.exists()
    assert "does not exist yet: planned against an empty environment" in out
    assert outcome.plan is not None
    planned = {a.name: a.kind for a in outcome.plan.actions()}
    assert {n: planned[n] for n in LOCK_A} == {n: "install" for n in LOCK_A}
    assert planned["flash-attn-like"] == "install"
    assert run(Options(profile=str(prof), venv=str(venv), cache_dir=tmp_path / "cache"), steps=("plan",)).verdict \
        == "planned" and not venv.exists()


def test_a_deferred_package_that_a_locked_package_requires_does_not_break_the_rest_phase(
        index: IndexServer, tmp_path: Path, _virtualenv_app_data: Path) -> None:
    """airports-like deferred by the user: outlines-like (rest) requires it before the deferred phase
    installs it; the rest phase installs the lock's files without resolving, verify checks after."""
    prof = write_profile(tmp_path / "deferdep", index.packages_dir, index, LOCK_A,
                         extra_lock_lines=_lines(index, "outlines-like", "airports-like"),
                         toml_extra='[deferred.airports-like]\nbuild_requires = ["setuptools"]\n')
    with (prof / "requirements.in").open("a") as fh:
        fh.write("outlines-like==1.0\nairports-like==0.0.1\n")
    venv = virtualenv_at(tmp_path / "venv", _virtualenv_app_data)
    outcome = run(Options(profile=str(prof), venv=str(venv), cache_dir=tmp_path / "cache"))
    assert outcome.verdict == "synced", outcome.summary
    assert outcome.plan is not None and "airports-like" in {a.name for a in outcome.plan.actions("deferred")}
    assert freeze(venv)["airports-like"] == "0.0.1"


def test_flash_attn_built_without_its_cuda_part_is_not_smoke_imported() -> None:
    """On a GPU-less host (FLASH_ATTENTION_SKIP_CUDA_BUILD=TRUE) `import flash_attn` needs the CUDA
    extension that was not built: the shipped gpu profile's deferred smoke module is left out, with why."""
    from types import SimpleNamespace

    from stacksync.lock import profile as profile_mod
    from stacksync.sync.smoke import skipped_modules

    prof = profile_mod.load("gpu-cu121", Path(__file__).resolve().parent.parent / "locks")
    state = SimpleNamespace(profile=prof)
    assert skipped_modules(state, {}) == {}  # type: ignore[arg-type]
    skipped = skipped_modules(state, {"FLASH_ATTENTION_SKIP_CUDA_BUILD": "TRUE"})  # type: ignore[arg-type]
    assert skipped == {"flash_attn": "flash-attn built without its CUDA part (FLASH_ATTENTION_SKIP_CUDA_BUILD=TRUE)"}
