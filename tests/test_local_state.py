"""The target's own files that stacksync did not write as they are (a state file that is ``[]``, garbage,
a directory, a record of the wrong shape; a journal that is a directory or garbage): one line naming
the file and a fix that works, the file never rewritten. A deferred build whose import fails is
rebuilt on request (``sync --rebuild NAME``), and the smoke failure's fix says so."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clihelp import invoke
from pkgfactory import IndexServer
from stackprofile import LOCK_A, TOKEN_VAR, USER_VAR, expected_a, freeze, record, virtualenv_at, write_profile

from stacksync.core import runner
from stacksync.env import journal
from stacksync.sync import statefile
from stacksync.sync.deferred import write_state
from stacksync.sync.plan import Action, Plan, with_rebuilds

GOOD_RECORD = {"version": "2.8.0", "built_against": {"torch-like": "2.4.0"}}

BAD_STATES: list[tuple[str, Any, str]] = [
    ("list", [], "a JSON list, not an object"),
    ("string", "x", "a JSON str, not an object"),
    ("deferred-list", {"deferred": []}, "'deferred' is a list"),
    ("record-int", {"deferred": {"flash-attn-like": 3}}, "the record of 'flash-attn-like' is a int"),
    ("no-version", {"deferred": {"flash-attn-like": {"built_against": {}}}}, "has no version"),
    ("against-list", {"deferred": {"flash-attn-like": {"version": "1", "built_against": ["torch"]}}},
     "no built_against table"),
]


@pytest.mark.parametrize("name,data,why", BAD_STATES, ids=[c[0] for c in BAD_STATES])
def test_a_malformed_state_file_is_one_line_and_kept(tmp_path: Path, name: str, data: Any, why: str) -> None:
    path = tmp_path / statefile.STATE_FILE
    path.write_text(json.dumps(data))
    before = path.read_bytes()
    with pytest.raises(statefile.LocalStateError) as err:
        statefile.read_state_file(tmp_path)
    text = str(err.value)
    assert str(path) in text and why in text and "fix: move it away" in text and "\n" not in text
    with pytest.raises(statefile.LocalStateError):  # recording another build does not rewrite it from {}
        write_state(tmp_path, "other-like", "1.0", {"torch-like": "2.4.0"})
    assert path.read_bytes() == before


def test_an_unreadable_state_file_or_journal_is_one_line(tmp_path: Path) -> None:
    (tmp_path / statefile.STATE_FILE).mkdir()  # tests run as root: chmod 000 would not stop a read
    with pytest.raises(statefile.LocalStateError, match="cannot read the target's build records"):
        statefile.check_local_files(tmp_path)
    (tmp_path / statefile.STATE_FILE).rmdir()
    (tmp_path / statefile.STATE_FILE).write_text("{not json")
    with pytest.raises(statefile.LocalStateError, match="invalid JSON"):
        statefile.check_local_files(tmp_path)
    (tmp_path / statefile.STATE_FILE).write_text(json.dumps({"deferred": {"flash-attn-like": GOOD_RECORD}}))
    assert statefile.read_state_file(tmp_path)["deferred"]["flash-attn-like"] == GOOD_RECORD
    journal.path(tmp_path).mkdir()
    with pytest.raises(statefile.LocalStateError, match="a directory") as err:
        statefile.check_local_files(tmp_path)
    assert f"rm -r {journal.path(tmp_path)}" in str(err.value)
    journal.path(tmp_path).rmdir()
    journal.path(tmp_path).write_text("garbage\n")
    with pytest.raises(statefile.LocalStateError, match="not a journal stacksync writes"):
        statefile.check_local_files(tmp_path)
    journal.path(tmp_path).unlink()
    statefile.check_local_files(tmp_path)  # a good state file and no journal: fine
    assert statefile.read_state_file(tmp_path / "nowhere") == {}


def test_with_rebuilds_turns_a_keep_into_a_rebuild() -> None:
    plan = Plan()
    plan.phases["deferred"] = [Action("deferred", "flash-attn-like", "keep", "2.8.0", "2.8.0")]  # type: ignore[arg-type]
    plan.unrecorded = ("flash-attn-like",)  # type: ignore[assignment]
    out = with_rebuilds(plan, ["flash-attn-like"])  # type: ignore[list-item]
    (action,) = out.phases["deferred"]
    assert action.kind == "reinstall" and "--rebuild" in action.reason and not out.unrecorded


# --- end to end: a synced target, then its local files broken -------------------------------------------

@pytest.fixture(scope="module")
def synced(index_server: IndexServer, stack_packages: Path, _virtualenv_app_data: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("local-state")
    prof = write_profile(root / "standin", stack_packages, index_server, LOCK_A)
    env = runner.clean_env({USER_VAR: index_server.user, TOKEN_VAR: index_server.password,
                            "STACKSYNC_CACHE_DIR": str(root / "cache"), "XDG_CACHE_HOME": str(root / "xdg")})
    venv = virtualenv_at(root / "template", _virtualenv_app_data)
    done = invoke("sync", "--profile", str(prof), "--venv", str(venv), "--yes", env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    yield {"root": root, "profile": prof, "env": env, "venv": venv, "stack": stack_packages}


def _copy(synced: dict[str, Any], name: str) -> Path:
    dest = Path(synced["root"]) / name
    shutil.copytree(synced["venv"], dest, symlinks=True)
    return dest


def _one_line(proc: Any) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode != 0 and len(lines) == 1 and lines[0].startswith("stacksync: error: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    return str(lines[0])


@pytest.mark.slow
@pytest.mark.parametrize("case", ["state-list", "state-dir", "state-garbage", "journal-dir", "journal-garbage"])
def test_sync_refuses_a_broken_local_file_with_one_line(synced: dict[str, Any], case: str) -> None:
    venv = _copy(synced, case)
    what, kind = case.split("-")
    path = venv / statefile.STATE_FILE if what == "state" else journal.path(venv)
    if path.exists():
        path.unlink()
    if kind == "dir":
        path.mkdir()
    else:
        path.write_text("[]" if kind == "list" else "\x00garbage")
    before = freeze(venv)
    proc = invoke("sync", "--profile", str(synced["profile"]), "--venv", str(venv), "--yes", env=synced["env"],
                  timeout=300)
    line = _one_line(proc)
    assert str(path) in line and "fix:" in line, line
    assert path.is_dir() if kind == "dir" else path.read_text() in ("[]", "\x00garbage")
    assert freeze(venv) == before
    # the fix works: move it away, sync again
    shutil.move(str(path), str(path) + ".bad")
    again = invoke("sync", "--profile", str(synced["profile"]), "--venv", str(venv), "--yes", env=synced["env"],
                   timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]


@pytest.mark.slow
def test_a_build_that_imports_wrong_is_rebuilt_on_request(synced: dict[str, Any]) -> None:
    venv = _copy(synced, "wrong-build")
    sp = next(venv.glob("lib/python*/site-packages"))
    # built against another torch-like, while the record says 2.4.0: a plain sync keeps it
    (sp / "flash_attn_like" / "_built_against.py").write_text('TORCH = "2.3.0"\n')
    prof, env = str(synced["profile"]), synced["env"]
    verify = invoke("verify", "--profile", prof, "--venv", str(venv), env=env, timeout=300)
    assert verify.returncode != 0
    assert "undefined symbol" in verify.stderr and "--rebuild flash-attn-like" in verify.stderr, verify.stderr
    unknown = invoke("sync", "--profile", prof, "--venv", str(venv), "--yes", "--rebuild", "torch-like", env=env,
                     timeout=300)
    assert "not a deferred package" in _one_line(unknown)
    fixed = invoke("sync", "--profile", prof, "--venv", str(venv), "--yes", "--rebuild", "flash-attn-like", env=env,
                   timeout=600)
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    assert "building flash-attn-like" in fixed.stderr and "rebuild requested" in fixed.stderr, fixed.stderr
    assert (sp / "flash_attn_like" / "_built_against.py").read_text().strip() == 'TORCH = "2.4.0"'
    again = invoke("verify", "--profile", prof, "--venv", str(venv), env=env, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    got = freeze(venv)
    assert {k: got.get(k) for k in expected_a(synced["stack"])} == expected_a(synced["stack"])
    assert record(venv)["built_against"] == {"torch-like": "2.4.0"}
