"""The fault suite: kill -9 of a real ``invoke sync`` at every phase boundary and inside each pip
operation, then a re-run that must converge; a fuzz of malformed locks, stack.toml files, profile
names and interpreters that must give one clear line and leave the target exactly as it was.

The kills are deterministic: ``STACKSYNC_FAULT=at:<point>`` makes stacksync SIGKILL its own process
group at a named point; ``STACKSYNC_FAULT=child:<word>`` puts tests/faultinject on the PYTHONPATH of the
matching pip / pip-sync command, whose audit hook kills the group at a chosen file-system event
(a stash folder about to be removed, the Nth file written, a RECORD about to be written).

Every kill starts from a copy of one venv at lock B (torch-like 2.3.0, plain-a 2.0, plus an unlocked
plain-b) and syncs it to lock A with ``--yes``: a base upgrade, a pip-sync removal and downgrade, a
deferred rebuild. With ``STACKSYNC_CHAOS_REPORT=FILE`` the counts go to FILE (``nox -s chaos``).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pkgfactory
import pytest
from clihelp import invoke
from pkgfactory import IndexServer
from stackprofile import LOCK_A, LOCK_B, TOKEN_VAR, USER_VAR, expected_a, freeze, virtualenv_at, write_profile

from stacksync.core import defaults, runner
from stacksync.core.errors import StacksyncError
from stacksync.env import damage, journal
from stacksync.sync.run import run
from stacksync.sync.state import Options

ROOT = Path(__file__).resolve().parent.parent
FAULTINJECT = Path(__file__).resolve().parent / "faultinject"

pytestmark = pytest.mark.slow

RESULTS: dict[str, Any] = {"kill_points": [], "fuzz": [], "cli": []}

# (id, STACKSYNC_FAULT, STACKSYNC_FAULT_EVENT (``{sp}``: the target's site-packages, ``{cache}``: the
# artifact cache), what is cut short)
KILL_POINTS = [
    ("before-preflight", "at:before:preflight", "", "after the plan, before doctor / confirmation"),
    ("inside-fetch", "child:download", "write:{cache}:1", "pip download writing the first wheel into the cache"),
    ("before-base", "at:before:base", "", "after fetch, before the first change"),
    ("inside-base-install", "child:base.txt", "write:{sp}:2", "base upgrade of torch-like: old one stashed, "
                                                              "new one half written"),
    ("inside-base-record", "child:base.txt", "write:RECORD:1", "base upgrade: files written, RECORD not"),
    ("before-rest", "at:before:rest", "", "between base and rest"),
    ("inside-rest-uninstall", "child:piptools", "rmtree:~:1", "pip-sync uninstalling (flash-attn-like, "
                                                              "plain-b): stashed, not committed"),
    ("inside-rest-install", "child:piptools", "write:RECORD:1", "pip-sync's install of plain-a 1.0: RECORD "
                                                                "not written"),
    ("before-deferred", "at:before:deferred", "", "between rest and the deferred build"),
    ("inside-deferred-build", "child:deferred-flash-attn-like-build.txt", "write:_built_against.py:1",
     "pip wheel: flash-attn-like's setup.py running (builds outside the target)"),
    ("inside-deferred-install", "child:deferred-flash-attn-like-wheel.txt", "write:{sp}:2",
     "the wheelhouse wheel of flash-attn-like half installed (no dist-info yet)"),
    ("before-verify", "at:before:verify", "", "after the deferred phase"),
    ("inside-verify", "at:inside:verify", "", "verify between the twin check and the smoke imports"),
    ("after-verify", "at:after:verify", "", "verified, journal not yet removed"),
]


# --- fixtures ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    out = os.environ.get("STACKSYNC_CHAOS_REPORT")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(RESULTS, indent=2, sort_keys=True) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def world(index_server: IndexServer, stack_packages: Path, _virtualenv_app_data: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Profiles A and B on the shared index, a venv at lock B plus plain-b, and a cache holding what
    the sync to A needs (one fetch, shared by every kill point but the fetch one)."""
    root = tmp_path_factory.mktemp("chaos")
    prof_a = write_profile(root / "standin", stack_packages, index_server, LOCK_A)
    prof_b = write_profile(root / "standin-b", stack_packages, index_server, LOCK_B)
    cache = root / "cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(USER_VAR, index_server.user)
        mp.setenv(TOKEN_VAR, index_server.password)
        mp.setenv("XDG_CACHE_HOME", str(root / "xdg"))
        start = virtualenv_at(root / "start", _virtualenv_app_data)
        run(Options(profile=str(prof_b), venv=str(start), cache_dir=cache / "standin-b", yes=True))
        subprocess.run([str(start / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index", "--find-links",
                        str(stack_packages), "plain-b"], check=True, capture_output=True, stdin=subprocess.DEVNULL)
        run(Options(profile=str(prof_a), venv=str(start), cache_dir=cache / "standin", yes=True), ("plan", "fetch"))
        yield {"root": root, "a": prof_a, "b": prof_b, "start": start, "cache": cache, "stack": stack_packages,
               "server": index_server}


def _copy_venv(world: dict[str, Any], name: str) -> Path:
    dest = Path(world["root"]) / name
    shutil.copytree(world["start"], dest, symlinks=True)
    return dest


def _site_packages(venv: Path) -> Path:
    return next(venv.glob("lib/python*/site-packages"))


def _env(world: dict[str, Any], cache: Path, **extra: str) -> dict[str, str]:
    server: IndexServer = world["server"]
    env = runner.clean_env({USER_VAR: server.user, TOKEN_VAR: server.password, "STACKSYNC_CACHE_DIR": str(cache),
                            "XDG_CACHE_HOME": str(Path(world["root"]) / "xdg")})
    env = {k: v for k, v in env.items() if not k.startswith("STACKSYNC_FAULT")}
    env.update(extra)
    return env


def _damage_left(venv: Path) -> list[str]:
    return damage.scan(venv, [str(_site_packages(venv))]).lines()


# --- kill -9 at every point -------------------------------------------------------------------------------

@pytest.mark.parametrize("point,fault,event,what", KILL_POINTS, ids=[p[0] for p in KILL_POINTS])
def test_kill_then_resync_converges(world: dict[str, Any], point: str, fault: str, event: str, what: str,
                                    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    started = time.perf_counter()
    venv = _copy_venv(world, f"kill-{[p[0] for p in KILL_POINTS].index(point):02d}")  # no argv word in it
    sp = _site_packages(venv)
    cache = Path(world["root"]) / f"cache-{point}" if point == "inside-fetch" else Path(world["cache"])
    sync_args = ["sync", "--profile", str(world["a"]), "--venv", str(venv), "--yes"]
    faulty = _env(world, cache, STACKSYNC_FAULT=fault, STACKSYNC_FAULT_PATH=str(FAULTINJECT),
                  STACKSYNC_FAULT_EVENT=event.format(sp=sp, cache=cache))
    killed = invoke(*sync_args, env=faulty, timeout=180, new_session=True)
    assert killed.returncode == -9, f"{point}: not killed (rc {killed.returncode}): {killed.stderr[-2000:]}"
    _wait_for_the_killed_tree(venv)
    left = _damage_left(venv)

    # Nothing reports the cut-short target as synced: verify fails (not the twin, or interrupted).
    # (In-process from here: the same code, without two more interpreter start-ups per point.)
    capsys.readouterr()
    opts = {"profile": str(world["a"]), "venv": str(venv), "cache_dir": cache / "standin"}
    with monkeypatch.context() as mp:
        for key, value in _env(world, cache).items():
            if key.startswith(("SS_TEST", "XDG")):
                mp.setenv(key, value)
        with pytest.raises(StacksyncError) as refused:
            run(Options(**opts), ("plan", "verify"))  # type: ignore[arg-type]
        verify_says = str(refused.value).splitlines()[0]
        again = run(Options(**opts, yes=True))  # type: ignore[arg-type]
    said = capsys.readouterr().err
    assert again.verdict == "synced", (point, again.summary)
    assert "already in sync" not in said, said
    if left:
        assert "target was interrupted" in said, said

    got = {n: v for n, v in freeze(venv).items() if n not in ("pip", "wheel")}
    imports = subprocess.run([str(venv / "bin" / "python"), "-c", "import torch_like, flash_attn_like, plain_a"],
                             capture_output=True, text=True)
    after = _damage_left(venv)
    state = json.loads((venv / "stacksync-state.json").read_text())
    converged = (got == expected_a(Path(world["stack"])) and imports.returncode == 0 and not after
                 and not journal.path(venv).exists()
                 and state["deferred"]["flash-attn-like"]["built_against"] == {"torch-like": "2.4.0"}
                 and not any(p.name.startswith("~") for p in sp.iterdir()))
    RESULTS["kill_points"].append({"point": point, "what": what, "killed": True, "left": left,
                                   "verify": verify_says[:200], "converged": converged,
                                   "seconds": round(time.perf_counter() - started, 2)})
    assert converged, (point, got, imports.stderr, after)


def _wait_for_the_killed_tree(venv: Path, timeout: float = 30.0) -> None:
    """Wait until every process of the killed tree is gone: the kill is one ``SIGKILL`` to both process
    groups, but a child (pip) may still be exiting when ``invoke`` is reaped, and it holds the target's
    lock until its last descriptor closes. (A user's immediate re-run would be told the target is busy,
    which is right; the test wants the state the kill left, not that race.)"""
    lock = venv / ".stacksync.lock"
    if not lock.exists():
        return
    fd = os.open(lock, os.O_RDWR)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
                return
            except BlockingIOError:
                assert time.monotonic() < deadline, f"{venv}: the killed tree still holds the lock after {timeout} s"
                time.sleep(0.05)
    finally:
        os.close(fd)


def test_inside_kills_leave_the_damage_pip_leaves(world: dict[str, Any]) -> None:
    """The kills inside pip hit what the issue measured: stash folders, a dist-info without RECORD."""
    by_point = {r["point"]: r["left"] for r in RESULTS["kill_points"]}
    if len(by_point) < len(KILL_POINTS):
        pytest.skip("runs after the kill points (select the whole module)")
    assert any("stash" in line for line in by_point["inside-rest-uninstall"])
    assert any("stash" in line for line in by_point["inside-base-install"])
    assert any("no RECORD" in line for line in by_point["inside-base-record"])
    # The journal is written before the first change (after the fetch, which changes nothing).
    before_change = ("before-preflight", "inside-fetch")
    assert all(any("journal" in line for line in by_point[p]) for p in by_point if p not in before_change)
    assert not by_point["before-preflight"] and not by_point["inside-fetch"]  # nothing written before that


# --- hostile input: one clear line, the target unchanged ----------------------------------------------------

def _tree(venv: Path) -> dict[str, tuple[int, int]]:
    """Every file of the target (path -> size, mtime), what a change would show."""
    out = {}
    for dirpath, _, files in os.walk(venv):
        for f in files:
            p = os.path.join(dirpath, f)
            if f == ".stacksync.lock":
                continue
            st = os.lstat(p)
            out[os.path.relpath(p, venv)] = (st.st_size, st.st_mtime_ns)
    return out


def _lock_variants(good: str, deferred: str) -> list[tuple[str, str, str | None]]:
    """(id, requirements.txt, deferred.txt or None for the good one)."""
    head_end = good.index("\n#\n", good.index("# resolved for:")) + 3
    header, body = good[:head_end], good[head_end:]
    first = body.split("\n")[0]  # 'einops-like==0.8.0 \'
    digest = body.split("--hash=sha256:", 1)[1][:64]
    v: list[tuple[str, str, str | None]] = [
        ("empty", "", None), ("only-comments", "# nothing\n#\n", None), ("header-only", header, None),
        ("blank-lines", "\n\n\n", None), ("only-options", header + "--index-url https://x.invalid/simple\n", None),
        ("sha256-63", good.replace(digest, digest[:63]), None),
        ("sha256-65", good.replace(digest, digest + "a"), None),
        ("sha256-nonhex", good.replace(digest, "g" * 64), None),
        ("sha256-upper", good.replace(digest, digest.upper()), None),
        ("sha1", good.replace("sha256:" + digest, "sha1:" + digest[:40]), None),
        ("md5", good.replace("sha256:" + digest, "md5:" + digest[:32]), None),
        ("empty-digest", good.replace("sha256:" + digest, "sha256:"), None),
        ("sha512-short", good.replace("sha256:" + digest, "sha512:" + digest), None),
        ("no-hash", header + "plain-a==1.0\n", None),
        ("unpinned", header + "plain-a>=1.0 \\\n    --hash=sha256:" + digest + "\n", None),
        ("bare-name", header + "plain-a \\\n    --hash=sha256:" + digest + "\n", None),
        ("wildcard", header + "plain-a==1.* \\\n    --hash=sha256:" + digest + "\n", None),
        ("bad-version", header + "plain-a==abc \\\n    --hash=sha256:" + digest + "\n", None),
        ("twice", good + "plain-a==2.0 \\\n    --hash=sha256:" + digest + "\n", None),
        ("self-include", good + "-r requirements.txt\n", None),
        ("missing-include", good + "-r nowhere.txt\n", None),
        ("unknown-option", good + "--frobnicate\n", None),
        ("hash-alone", header + "--hash=sha256:" + digest + "\n", None),
        ("junk-after", good.replace(first, first.replace(" \\", " junk \\"), 1), None),
        ("bad-marker", header + 'plain-a==1.0 ; python_version >> "3" \\\n    --hash=sha256:' + digest + "\n", None),
        ("editable", header + "-e ./src/plain-a\n", None),
        ("vcs-no-commit", header + "plain-a @ git+https://example.invalid/plain-a.git\n", None),
        ("binary", "\x00\x01\x02garbage\xff", None), ("nul-in-line", good.replace("==", "=\x00=", 1), None),
        ("pip-compile-header",
         good.replace(header, "#\n# This file is autogenerated by pip-compile with Python 3.11\n#\n"), None),
        ("other-profile", good.replace("'standin'", "'gpu-cu121'").replace("--profile standin", "--profile gpu-cu121"),
         None),
        ("other-python", good.replace("resolved for: Python 3.", "resolved for: Python 2."), None),
        ("no-header", body, None),
        ("deferred-empty", good, ""),
        ("deferred-is-lock", good, good.replace("Hashed lock of", "Deferred packages of")),
        ("deferred-foreign", good, deferred.split("#\n", 2)[-1]),
        ("deferred-sha-63", good, deferred.replace(deferred.split("sha256:")[1][:64],
                                                   deferred.split("sha256:")[1][:63])),
    ]
    # A truncated write: cut inside a digest, after "name==", after a continuation. (A cut that lands
    # between two whole entries leaves a valid, shorter lock: only an empty one is refused as such.)
    cuts = []
    for marker, offset in (("--hash=sha256:", 20), ("==", 2), (" \\\n", 2)):
        start = 0
        while (at := body.find(marker, start)) >= 0:
            cuts.append(at + offset)
            start = at + 1
    for i, cut in enumerate(sorted(set(cuts))):
        text = header + body[:cut]
        v.append((f"truncated-{i:02d}", text, None))
    # every pin's digest one digit short, one too long
    for i, d in enumerate(sorted({h[:64] for h in body.split("--hash=sha256:")[1:]})):
        v.append((f"sha256-63-pin{i}", good.replace(d, d[:63]), None))
        v.append((f"sha256-65-pin{i}", good.replace(d, d + "0"), None))
    return v


_TOML_VARIANTS = [
    ("toml-syntax", "python = \n"), ("toml-latin1", "description = \"caf\xe9\"\n"),
    ("toml-python-int", "python = 3\n"), ("toml-python-2", 'python = "2.7"\n'),
    ("toml-python-other", 'python = "3.9"\n'),
    ("toml-backend", 'backend = "conda"\n'), ("toml-base-str", 'base = "torch-like"\n'),
    ("toml-unknown-key", 'colour = "blue"\n'), ("toml-platform", 'platforms = ["win32"]\n'),
    ("toml-cuda", 'cuda = "twelve"\n'), ("toml-index-var", 'index_url = "https://${SS_UNSET_VARIABLE}@x.invalid/simple"\n'),
    ("toml-deferred-not-table", "[deferred]\nflash-attn-like = 3\n"),
    ("toml-deferred-unknown", '[deferred.not-in-requirements]\nrequires = []\n'),
    ("toml-smoke-type", "[smoke]\nbase = 1\n"), ("toml-empty-bytes", "\x00\x00"),
    ("toml-base-not-locked", 'base = ["not-locked-anywhere"]\n'), ("toml-python-list", 'python = ["3.11"]\n'),
    ("toml-deferred-base", '[deferred.torch-like]\nrequires = []\n'),
    ("toml-build-env-int", '[deferred.x]\nbuild_env = { MAX_JOBS = 4 }\n'),
]


def _set_top(toml: str, extra: str) -> str:
    """``extra`` as top-level keys of ``toml`` (a key already there is replaced); tables at the end."""
    if extra.startswith("["):
        return toml + "\n" + extra
    key = extra.split("=", 1)[0].strip()
    lines = [ln for ln in toml.split("\n") if ln.split("=", 1)[0].strip() != key or ln.startswith(" ")]
    return extra + "\n".join(lines)


def _run_case(kind: str, name: str, opts: Options, venv: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    before = _tree(venv)
    outcome: dict[str, Any] = {"kind": kind, "input": name}
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        run(opts)
        outcome["result"] = "accepted"
    except StacksyncError as exc:
        text = str(exc)
        outcome["result"] = "clear error" if text and "Traceback" not in text else "unclear error"
        outcome["message"] = text.splitlines()[0][:300]
    except Exception as exc:  # noqa: BLE001 - a traceback is what this test counts
        outcome["result"] = "traceback"
        outcome["message"] = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    outcome["changed"] = _tree(venv) != before
    return outcome


def test_fuzz_hostile_inputs_give_one_clear_line_and_change_nothing(world: dict[str, Any], tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    server: IndexServer = world["server"]
    monkeypatch.setenv(USER_VAR, server.user)
    monkeypatch.setenv(TOKEN_VAR, server.password)
    venv = _copy_venv(world, "fuzz-target")  # lock B + plain-b: any accepted lock-A-like input would change it
    cache = Path(world["cache"]) / "standin"
    good_folder = Path(world["a"])
    good = (good_folder / "requirements.txt").read_text(encoding="utf-8")
    deferred = (good_folder / "deferred.txt").read_text(encoding="utf-8")
    cases: list[dict[str, Any]] = []

    def profile_copy(name: str) -> Path:
        folder = tmp_path / "p" / name / "standin"  # same profile name: only the mutated file differs
        shutil.copytree(good_folder, folder)
        return folder

    for name, text, dtext in _lock_variants(good, deferred):
        folder = profile_copy(name)
        (folder / "requirements.txt").write_bytes(text.encode("utf-8", "surrogateescape")
                                                  if "\xff" not in text else text.encode("latin-1"))
        if dtext is not None:
            (folder / "deferred.txt").write_text(dtext, encoding="utf-8")
        cases.append(_run_case("lock", name, Options(profile=str(folder), venv=str(venv), cache_dir=cache, yes=True),
                               venv))
    for name, extra in _TOML_VARIANTS:
        folder = profile_copy(name)
        toml = (folder / "stack.toml").read_text(encoding="utf-8")
        data = _set_top(toml, extra)
        raw = data.encode("latin-1") if "latin1" in name else data.encode("utf-8")
        if name == "toml-empty-bytes":
            raw = b"\x00\x00\xff\xfe"
        (folder / "stack.toml").write_bytes(raw)
        cases.append(_run_case("stack.toml", name, Options(profile=str(folder), venv=str(venv), cache_dir=cache,
                                                            yes=True), venv))
    for name, prof in [("name-too-long", "p" * 300), ("name-nul", "bad\x00name"), ("name-unknown", "no-such-profile"),
                       ("name-dotdot", "../../etc"), ("name-empty-dir", str(tmp_path))]:
        cases.append(_run_case("profile name", name, Options(profile=prof, venv=str(venv), cache_dir=cache, yes=True),
                               venv))
    # interpreters
    bad = tmp_path / "interp"
    bad.mkdir()
    (bad / "not-exec").write_text("#!/bin/sh\nexit 0\n")
    # the document's file is the argument after --json-out (the probe's argv: -I probe.py COMMAND --json-out PATH)
    out_arg = '#!/bin/sh\nout=; prev=; for a in "$@"; do [ "$prev" = --json-out ] && out=$a; prev=$a; done\n'
    scripts = {
        "hangs": "#!/bin/sh\nsleep 300 &\necho $! > \"$0.child\"\nwait\n",
        "exits-1": "#!/bin/sh\necho broken >&2\nexit 1\n",
        "prints-garbage": "#!/bin/sh\necho 'WARNING: not json'\nexit 0\n",
        "wrong-json": f"{out_arg}echo '{{\"probe\": 2}}' > \"$out\"\n",
        "json-list": f"{out_arg}echo '[1, 2]' > \"$out\"\n",
        "half-json": f"{out_arg}printf '{{\"probe\": 1, \"distri' > \"$out\"\n",
        "segfault": "#!/bin/sh\nkill -SEGV $$\n",
    }
    for sname, body in scripts.items():
        (bad / sname).write_text(body)
        (bad / sname).chmod(0o755)
    (bad / "venv-file").write_text("not a venv\n")
    (bad / "empty-venv").mkdir()
    prof = str(good_folder)
    interp: list[tuple[str, Options]] = [
        ("python-not-executable", Options(profile=prof, python=str(bad / "not-exec"), yes=True)),
        ("venv-is-a-file", Options(profile=prof, venv=str(bad / "venv-file"), yes=True)),
        ("venv-without-python", Options(profile=prof, venv=str(bad / "empty-venv"), yes=True)),
        ("python-missing", Options(profile=prof, python=str(bad / "nope"), yes=True)),
        ("python-and-venv", Options(profile=prof, python=str(venv / "bin" / "python"), venv=str(venv), yes=True)),
        ("own-interpreter", Options(profile=prof, python=sys.executable, yes=True)),
        ("python-is-a-directory-name", Options(profile=prof, python="no-such-python3.99", yes=True)),
        *[(f"python-{s}", Options(profile=prof, python=str(bad / s), yes=True)) for s in scripts],
    ]
    for name, opts in interp:
        opts.cache_dir = cache
        cases.append(_run_case("interpreter", name, opts, venv, env={"STACKSYNC_PROBE_TIMEOUT": "1.5"}))
    child = (bad / "hangs.child")
    if child.exists():  # the hanging wrapper's own child died with its process group
        status = Path(f"/proc/{int(child.read_text())}/status")
        assert not status.exists() or "State:\tZ" in status.read_text(), "the wrapper's child survived"
    RESULTS["fuzz"] = cases
    assert len(cases) >= 100, len(cases)
    tracebacks = [c for c in cases if c["result"] == "traceback"]
    changed = [c for c in cases if c["changed"]]
    accepted = [c for c in cases if c["result"] != "clear error"]
    assert not tracebacks, tracebacks
    assert not changed, changed
    assert not accepted, accepted
    assert freeze(venv) == freeze(Path(world["start"]))


# --- the same refusals through the real CLI: one `stacksync: error:` line, non-zero -------------------------

def test_cli_gives_one_line_for_each_hostile_input(world: dict[str, Any], tmp_path: Path) -> None:
    venv = _copy_venv(world, "cli-target")
    before = _tree(venv)
    env = _env(world, Path(world["cache"]), STACKSYNC_PROBE_TIMEOUT="1.5")
    self_include = tmp_path / "selfinc" / "standin"
    shutil.copytree(world["a"], self_include)
    with open(self_include / "requirements.txt", "a", encoding="utf-8") as fh:
        fh.write("-r requirements.txt\n")
    latin = tmp_path / "latin" / "standin"
    shutil.copytree(world["a"], latin)
    with open(latin / "stack.toml", "ab") as fh:
        fh.write(b'description = "caf\xe9"\n')
    empty = tmp_path / "empty" / "standin"
    shutil.copytree(world["a"], empty)
    (empty / "requirements.txt").write_text("# truncated\n", encoding="utf-8")
    plain = tmp_path / "plain-file"
    plain.write_text("x\n")
    noexec = tmp_path / "python"
    noexec.write_text("#!/bin/sh\n")
    hang = tmp_path / "hang"
    hang.write_text("#!/bin/sh\nsleep 300\n")
    hang.chmod(0o755)
    a = str(world["a"])
    cases = {
        "profile name too long": ["sync", "--profile", "x" * 300, "--venv", str(venv)],
        "--python not executable": ["sync", "--profile", a, "--python", str(noexec)],
        "--venv at a regular file": ["sync", "--profile", a, "--venv", str(plain)],
        "-r include of itself": ["sync", "--profile", str(self_include), "--venv", str(venv), "--yes"],
        "non-UTF-8 stack.toml": ["sync", "--profile", str(latin), "--venv", str(venv)],
        "empty lock": ["sync", "--profile", str(empty), "--venv", str(venv), "--yes"],
        "hanging interpreter": ["sync", "--profile", a, "--python", str(hang)],
    }
    # each setting read as a value, set but empty (an unset variable expanded in CI), on a real sync -y
    settings = {f"{var}=\"\"": ({var: ""}, ["sync", "--profile", a, "--venv", str(venv), "--yes"])
                for var in defaults.VALUE_SETTINGS}
    problems = []
    for name, (extra, args) in {**{n: ({}, c) for n, c in cases.items()}, **settings}.items():
        proc = invoke(*args, env={**env, **extra}, timeout=60, new_session=True)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        traceback = "Traceback" in proc.stderr + proc.stdout
        ok = proc.returncode != 0 and len(lines) == 1 and lines[0].startswith("stacksync: error: ") and not traceback
        changed = _tree(venv) != before
        RESULTS["cli"].append({"input": name, "rc": proc.returncode, "line": lines[0] if lines else "", "ok": ok,
                               "traceback": traceback, "changed": changed})
        if not ok or changed:
            problems.append((name, proc.returncode, changed, proc.stderr[-1500:]))
    assert not problems, problems
    assert _tree(venv) == before


def test_probe_output_on_stdout_is_shown_not_parsed(world: dict[str, Any], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A module that prints a WARNING on stdout at import (as vllm does) neither breaks the smoke
    document nor disappears: the user sees it on stderr."""
    venv = _copy_venv(world, "noisy")
    sp = _site_packages(venv)
    (sp / "noisy_like.py").write_text('print("WARNING 12-02 vllm-like: noisy import on stdout")\nVALUE = 1\n')
    from stacksync.sync.smoke import smoke

    results = smoke(venv / "bin" / "python", ["noisy_like", "plain_a"])
    assert [r["ok"] for r in results] == [True, True]
    assert "noisy import on stdout" in capsys.readouterr().err
    pkgfactory.normalize("noisy-like")  # the stand-in helpers stay importable here
