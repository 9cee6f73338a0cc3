"""The fast snapshot (site-packages read in-process) against the real probe, on real venvs.

Every case compares ``environment.snapshot`` (fast) with ``environment.probe`` (the interpreter's own
importlib.metadata) field by field, and says from ``runner.history`` whether the fast path was taken.
"""

from __future__ import annotations

import email
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from stackprofile import LOCK_A, TOKEN_VAR, USER_VAR, expected_a, write_profile

from stacksync.core import runner
from stacksync.env import distinfo, environment, sitepackages
from stacksync.env.environment import Snapshot, probe, snapshot
from stacksync.sync.deferred import write_state
from stacksync.sync.run import run
from stacksync.sync.state import Options

MakeVenv = Callable[..., Path]


def probes(history: list[list[str]]) -> int:
    return sum(1 for argv in history if any(a.endswith("probe.py") and "env" in "".join(argv[i + 1:i + 2]).split("+")
                                             for i, a in enumerate(argv)))


def fast(venv: Path, cache: Path) -> tuple[Snapshot, int]:
    """The fast snapshot and how many probe processes it started."""
    before = len(runner.history)
    snap = snapshot(venv, cache_dir=cache)
    return snap, probes(runner.history[before:])


def assert_same(a: Snapshot, b: Snapshot) -> None:
    assert a.versions() == b.versions()
    for name, dist in b.distributions.items():
        other = a.distributions[name]
        assert (other.requires, other.direct_url, other.installer, other.location, other.display_name) == \
               (dist.requires, dist.direct_url, dist.installer, dist.location, dist.display_name), name
    assert (a.state, a.cuda, a.pip_version, a.marker_environment, a.version) == \
           (b.state, b.cuda, b.pip_version, b.marker_environment, b.version)
    assert a.raw == b.raw and a == b


def git_project(root: Path) -> Path:
    """A one-module setuptools project in a git repository (for a real VCS install)."""
    root.mkdir()
    (root / "setup.py").write_text("from setuptools import setup\nsetup(name='Vcs.Like', version='0.3', "
                                   "py_modules=['vcs_like'], install_requires=['plain-a>=1'])\n")
    (root / "vcs_like.py").write_text("X = 1\n")
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    return root


def pip_install(venv: Path, *args: str) -> None:
    subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", "--no-index", *args],
                   check=True, stdin=subprocess.DEVNULL, capture_output=True, env=runner.clean_env())


# --- the pure readers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "Metadata-Version: 2.1\nName: Foo_Bar\nVersion: 1.0 \nRequires-Dist: a>=1\nrequires-dist:  b ; extra == 'x'\n"
    "\nbody: not a header\n",
    "Metadata-Version: 2.1\nNAME:Foo\nversion:\t2\nSummary: folded\n  summary line\n",
])
def test_headers_equal_email_parsing(text: str) -> None:
    msg = email.message_from_string(text)
    headers = distinfo.metadata_headers(text)
    assert headers == {"name": msg.get_all("Name"), "version": msg.get_all("Version"),
                       "requires-dist": msg.get_all("Requires-Dist") or []}


@pytest.mark.parametrize("text", ["Name: foo\nVersion: 1\nRequires-Dist: a\n  folded\n", "Name: foo\nnot a header\n",
                                  "From nobody\nName: foo\n"])
def test_headers_unsure_is_none(text: str) -> None:
    assert distinfo.metadata_headers(text) is None


def test_pth_import_lines_pass_path_lines_do_not(tmp_path: Path) -> None:
    (tmp_path / "a.pth").write_text("# comment\nimport os\n\n")
    found = sitepackages.pth_fingerprint([str(tmp_path)])
    assert found is not None and [p for p, _ in found] == [str(tmp_path / "a.pth")]
    (tmp_path / "b.pth").write_text("/some/dir\n")
    assert sitepackages.pth_fingerprint([str(tmp_path)]) is None


# --- real venvs ----------------------------------------------------------------------------------------

def test_plain_venv_then_installs_vcs_and_state(make_venv: MakeVenv, stack_packages: Path, tmp_path: Path) -> None:
    venv = make_venv()
    cache = tmp_path / "probe-cache"
    first, started = fast(venv, cache)
    assert started == 1  # a cache miss runs the probe once and keeps the interpreter facts
    assert [json.loads(p.read_text())["fast"] for p in cache.iterdir()] == [True]
    second, started = fast(venv, cache)
    assert started == 0
    assert_same(second, probe(venv))

    # the stand-in stack (nvidia-*-like shared libraries: the CUDA facts), a VCS install, the state file
    pip_install(venv, "--find-links", str(stack_packages), "torch-like==2.4.0", "plain-a==1.0")
    pip_install(venv, "--no-build-isolation", f"vcs-like @ git+file://{git_project(tmp_path / 'proj')}")
    write_state(venv, "flash-attn-like", "2.8.0", {"torch-like": "2.4.0"})
    after, started = fast(venv, cache)
    assert started == 0
    real = probe(venv)
    assert_same(after, real)
    assert after.distributions["vcs-like"].kind == "vcs" and after.distributions["vcs-like"].requires == ("plain-a>=1",)
    assert after.state and after.cuda["nvidia_libraries"]
    assert after.versions()["torch-like"].startswith("2.4.0")


def test_unsure_targets_fall_back_to_the_probe(make_venv: MakeVenv, tmp_path: Path) -> None:
    venv = make_venv(setuptools=False)
    cache = tmp_path / "probe-cache"
    fast(venv, cache)
    assert fast(venv, cache)[1] == 0
    sp = Path(probe(venv).raw["python"]["site_packages"][0])

    egg = sp / "old_style-1.0.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Metadata-Version: 1.0\nName: old-style\nVersion: 1.0\n")
    snap, started = fast(venv, cache)
    assert started == 1 and "old-style" in snap.distributions
    assert_same(snap, probe(venv))
    egg.rename(sp / "old_style.txt")
    assert fast(venv, cache)[1] == 0  # the unsure reading did not turn the fast path off

    (sp / "extra.pth").write_text(str(tmp_path) + "\n")  # a path entry: sys.path may differ
    snap, started = fast(venv, cache)
    assert started == 1
    assert_same(snap, probe(venv))
    (sp / "extra.pth").unlink()

    cfg = venv / "pyvenv.cfg"
    text = cfg.read_text()
    cfg.write_text(text.replace("include-system-site-packages = false", "include-system-site-packages = true"))
    assert fast(venv, cache)[1] == 1
    cfg.write_text(text)  # pyvenv.cfg's text is in the key: the same text finds the same entry
    assert fast(venv, cache)[1] == 0

    pip = next(sp.glob("pip-*.dist-info"))
    original = (pip / "METADATA").read_text()
    (pip / "METADATA").write_text("Metadata-Version: 2.1\nName: pip\nVersion: 1\nRequires-Dist: a\n  b\n")
    snap, started = fast(venv, cache)
    assert started == 1 and snap.pip_version == "1"
    (pip / "METADATA").write_text(original)
    assert fast(venv, cache)[1] == 0

    key = environment._interpreter_key(venv / "bin/python")
    (cache / f"{key}.json").write_text(json.dumps({**json.loads((cache / f"{key}.json").read_text()), "fast": False}))
    assert fast(venv, cache)[1] == 1  # an interpreter whose reading once differed is always probed
    assert fast(venv, cache)[1] == 1


def test_not_a_venv_always_probes(tmp_path: Path) -> None:
    base = Path(sys.base_prefix, "bin", f"python{sys.version_info[0]}.{sys.version_info[1]}")
    if not base.exists() or (base.parent.parent / "pyvenv.cfg").exists():
        pytest.skip("no base interpreter outside a venv")
    snap, started = fast(base, tmp_path)
    assert started == 1 and snap.python == base and not list(tmp_path.iterdir())


@pytest.mark.slow
def test_noop_sync_starts_no_process(index_server: object, stack_packages: Path, tmp_path: Path,
                                     make_venv: MakeVenv, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a real sync, the fast snapshot equals the probe, and a no-op sync starts nothing."""
    monkeypatch.setenv(USER_VAR, index_server.user)  # type: ignore[attr-defined]
    monkeypatch.setenv(TOKEN_VAR, index_server.password)  # type: ignore[attr-defined]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("STACKSYNC_CACHE_DIR", str(tmp_path / "ss-cache"))
    prof = write_profile(tmp_path / "standin", stack_packages, index_server, LOCK_A)  # type: ignore[arg-type]
    venv = make_venv()
    options = Options(profile=str(prof), venv=str(venv), cache_dir=tmp_path / "cache")
    run(options)
    assert probe(venv).versions().items() >= expected_a(stack_packages).items()
    assert_same(snapshot(venv, cache_dir=tmp_path / "ss-cache" / "probe"), probe(venv))
    before = len(runner.history)
    assert run(options).verdict == "in-sync"
    assert runner.history[before:] == []
