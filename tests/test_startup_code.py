"""Verdicts the target cannot fake: versions and build records are read from the venv's site-packages on
the host and checked against the probe (which runs inside the target); start-up code (sitecustomize,
usercustomize, ``.pth`` import lines) is a finding of ``verify`` unless a package or a known tool put it
there. End to end: a ``sitecustomize.py`` that rewrites the probe's ``--json-out`` file."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clihelp import invoke
from pkgfactory import IndexServer
from stackprofile import LOCK_A, TOKEN_VAR, USER_VAR, virtualenv_at, write_profile

from stacksync.core import runner
from stacksync.env import hostview

FAKER = '''\
import atexit, json, sys

def _fake():
    if "--json-out" not in sys.argv:
        return
    path = sys.argv[sys.argv.index("--json-out") + 1]
    try:
        with open(path) as fh:
            data = json.load(fh)
    except Exception:
        return
    for d in data.get("distributions") or []:
        if d.get("name") == "plain-a":
            d["version"] = "1.0"
    for m in data.get("modules") or []:
        m["ok"], m["error"] = True, None
    with open(path, "w") as fh:
        json.dump(data, fh)

atexit.register(_fake)
'''


def _venv_shell(root: Path) -> Path:
    (root / "pyvenv.cfg").parent.mkdir(parents=True, exist_ok=True)
    (root / "pyvenv.cfg").write_text("home = /usr/bin\ninclude-system-site-packages = false\n")
    sp = root / "lib" / "python3.11" / "site-packages"
    sp.mkdir(parents=True)
    return sp


def test_startup_code_is_found_and_known_pieces_are_told_apart(tmp_path: Path) -> None:
    sp = _venv_shell(tmp_path)
    (sp / "sitecustomize.py").write_text("print('hi')\n")
    (sp / "usercustomize").mkdir()
    (sp / "_virtualenv.pth").write_text("import _virtualenv\n")
    (sp / "__editable__.demo-1.0.pth").write_text("import __editable___demo_finder; "
                                                  "__editable___demo_finder.install()\n")
    (sp / "paths.pth").write_text("/opt/somewhere\n")  # a path entry: no code
    (sp / "evil.pth").write_text("import os; os.system('true')\n")
    owned = sp / "owned-1.0.dist-info"
    owned.mkdir()
    (owned / "METADATA").write_text("Metadata-Version: 2.1\nName: owned\nVersion: 1.0\n\n")
    (owned / "RECORD").write_text("owned.pth,,\nowned-1.0.dist-info/RECORD,,\n")
    (sp / "owned.pth").write_text("import owned_hook\n")
    found = hostview.startup_code(hostview.venv_site_dirs(tmp_path) or [])
    unexplained = " | ".join(found.unexplained)
    known = " | ".join(found.known)
    assert "sitecustomize.py" in unexplained and "usercustomize" in unexplained and "evil.pth" in unexplained
    assert "paths.pth" not in unexplained + known
    assert "virtualenv's start-up hook" in known and "editable install finder" in known
    assert "owned.pth" in known and "installed by owned-1.0" in known
    assert len(found.unexplained) == 3 and len(found.known) == 3


def test_the_host_reading_and_disagreements(tmp_path: Path) -> None:
    sp = _venv_shell(tmp_path)
    dist = sp / "plain_a-2.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: plain-a\nVersion: 2.0\n\n")
    (dist / "INSTALLER").write_text("pip\n")
    view = hostview.read(tmp_path)
    assert view is not None and dict(view.versions) == {"plain-a": "2.0"}
    said = hostview.disagreements(view, {"plain-a": "1.0"}, {})  # type: ignore[dict-item]
    assert said == ["plain-a: the target's interpreter says 1.0, its site-packages hold 2.0"]
    assert hostview.disagreements(view, {"plain-a": "2.0"}, {"deferred": {}})  # type: ignore[dict-item]
    assert not hostview.disagreements(view, {"plain-a": "2.0"}, {})  # type: ignore[dict-item]
    (tmp_path / "pyvenv.cfg").write_text("include-system-site-packages = true\n")
    assert hostview.read(tmp_path) is None  # it also sees the system's packages: no host reading


@pytest.fixture(scope="module")
def synced(index_server: IndexServer, stack_packages: Path, _virtualenv_app_data: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("startup")
    prof = write_profile(root / "standin", stack_packages, index_server, LOCK_A)
    env = runner.clean_env({USER_VAR: index_server.user, TOKEN_VAR: index_server.password,
                            "STACKSYNC_CACHE_DIR": str(root / "cache"), "XDG_CACHE_HOME": str(root / "xdg")})
    venv = virtualenv_at(root / "venv", _virtualenv_app_data)
    done = invoke("sync", "--profile", str(prof), "--venv", str(venv), "--yes", env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    yield {"root": root, "profile": prof, "env": env, "venv": venv, "stack": stack_packages}


@pytest.mark.slow
def test_a_sitecustomize_that_fakes_the_probe_is_not_a_twin(synced: dict[str, Any]) -> None:
    venv: Path = synced["venv"]
    prof, env = str(synced["profile"]), synced["env"]
    good = invoke("verify", "--profile", prof, "--venv", str(venv), env=env, timeout=300)
    assert good.returncode == 0, good.stderr[-2000:]
    assert "start-up code (known)" in good.stderr  # virtualenv's _virtualenv.pth, listed as such
    # the wrong version of plain-a, and start-up code that makes the probe say the locked one
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--find-links", str(synced["stack"]), "plain-a==2.0"], check=True, capture_output=True,
                   stdin=subprocess.DEVNULL)
    sp = next(venv.glob("lib/python*/site-packages"))
    (sp / "sitecustomize.py").write_text(FAKER)
    probe = subprocess.run([str(venv / "bin" / "python"), "-I", str(Path(runner.__file__).parent.parent / "probes"
                                                                    / "probe.py"), "env", "--json-out",
                            str(synced["root"] / "probe.json")], capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr
    said = json.loads((synced["root"] / "probe.json").read_text())
    assert {d["name"]: d["version"] for d in said["distributions"]}["plain-a"] == "1.0"  # the fake works

    verify = invoke("verify", "--profile", prof, "--venv", str(venv), env=env, timeout=300)
    assert verify.returncode != 0, verify.stderr
    assert "sitecustomize.py" in verify.stderr and "twin of the lock" not in verify.stderr.replace("NOT the", "")
    for cache in ("fresh-cache", "cache"):  # the probe itself (refused: its answer differs from the files),
        # then the fast reading from the cached facts (plain-a is downgraded; verify reports the code)
        e = {**env, "STACKSYNC_CACHE_DIR": str(synced["root"] / cache)}
        sync = invoke("sync", "--profile", prof, "--venv", str(venv), "--yes", env=e, timeout=600)
        assert "already in sync" not in sync.stdout + sync.stderr, sync.stderr
        assert sync.returncode != 0, sync.stderr  # the start-up code is a finding; or the answer differs
        assert "Traceback" not in sync.stderr
    shutil.move(str(sp / "sitecustomize.py"), str(synced["root"] / "sitecustomize.py.removed"))
    fixed = invoke("sync", "--profile", prof, "--venv", str(venv), "--yes", env=env, timeout=600)
    assert fixed.returncode == 0, fixed.stderr[-2000:]
