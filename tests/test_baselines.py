"""Real baselines in: a pasted freeze (conda ``@ file://`` lines, an editable VCS install) becomes a
profile (``invoke freeze --from``), compiles, syncs a twin on the local index with the VCS pin at its
commit, and diffs as the same; diff's VCS / unknown-version / not-for-this-platform sections; profile
name checks; the explicit short flags; compile's refusals with the requirements.in line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import stackprofile
from clihelp import invoke
from pkgfactory import IndexServer

from stacksync.compile import compiler as comp
from stacksync.core.errors import ProfileError
from stacksync.env.diff import diff_sides
from stacksync.lock import profile
from stacksync.lock.lockfile import LockProblems, parse

REPO = Path(__file__).resolve().parent.parent  # this checkout: its tasks.py and locks/

SHA_A = "3f1c2a9b8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a"
SHA_B = "8fa9bff7e8f5e5f5b2c1a6f1e0a1c2d3e4f5a6b7"


def git_project(root: Path, name: str, requires: list[str]) -> tuple[Path, str]:
    """A tiny setuptools project in a fresh git repository, committed; returns (repo, sha)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed: the VCS case needs a real repository")
    module = name.replace("-", "_")
    (root / module).mkdir(parents=True)
    (root / module / "__init__.py").write_text("VALUE = 1\n")
    deps = ", ".join(f'"{r}"' for r in requires)
    (root / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools"]\n'
                                         'build-backend = "setuptools.build_meta"\n'
                                         f'[project]\nname = "{name}"\nversion = "0.1"\ndependencies = [{deps}]\n'
                                         f'[tool.setuptools]\npackages = ["{module}"]\n')
    git = ["git", "-C", str(root), "-c", "user.email=t@t", "-c", "user.name=t", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "first"], check=True)
    sha = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    return root, sha


@pytest.mark.slow
def test_a_conda_freeze_with_an_editable_vcs_line_becomes_a_synced_twin(
        index_server: IndexServer, stack_packages: Path, make_venv, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo, sha = git_project(tmp_path / "trainer", "acme-trainer", ["plain-a<2"])
    freeze = tmp_path / "pip-freeze.txt"
    freeze.write_text(
        "einops-like @ file:///croot/einops-like_1717/work/dist/einops_like-0.8.0-py3-none-any.whl\n"
        f"-e git+file://{repo}@{sha}#egg=acme_trainer\n"
        "plain-b @ file:///croot/plain-b_1700591183607/work\n"
        "nvidia-cudnn-like==9.1.0\nnvidia-cublas-like==12.1.0\ntorch-like==2.4.0\n"
        "pip==26.3\n")
    locks = tmp_path / "locks"
    env = {"STACKSYNC_LOCKS_DIR": str(locks), "STACKSYNC_CACHE_DIR": str(tmp_path / "cache"),
           stackprofile.USER_VAR: index_server.user,
           stackprofile.TOKEN_VAR: index_server.password}
    made = invoke("freeze", "--from", str(freeze), "-p", "twin", cwd=tmp_path, extra=env)
    assert made.returncode == 0, made.stderr
    assert f"{freeze}:3: plain-b @ file:///croot/plain-b_1700591183607/work: version unknown" in made.stderr
    req_in = (locks / "twin" / "requirements.in").read_text()
    assert "einops-like===0.8.0\n" in req_in and "torch-like===2.4.0\n" in req_in and "pip==" not in req_in
    assert f"acme-trainer @ git+file://{repo}@{sha}\n" in req_in and "-e " not in req_in
    toml = locks / "twin" / "stack.toml"
    # the user's review: point the profile at the local index, and make torch-like the base phase
    text = toml.read_text()
    assert f'python = "{stackprofile.PY_XY}"' in text and "base = []\n\n[smoke]\nbase = []" in text
    url = f"http://${{{stackprofile.USER_VAR}}}:${{{stackprofile.TOKEN_VAR}}}@127.0.0.1:{index_server.port}/simple/"
    toml.write_text(text.replace("base = []\n\n[smoke]\nbase = []",
                                 f'index_url = "{url}"\nbase = ["torch-like"]\n\n[smoke]\nbase = ["torch_like"]'))
    compiled = invoke("compile", "-p", "twin", cwd=tmp_path, extra=env)
    assert compiled.returncode == 0, compiled.stderr
    lock = parse(locks / "twin" / "requirements.txt", lock=True)
    assert "acme-trainer" not in lock.names() and all(p.hashes for p in lock.pins)
    assert {"plain-a", "plain-b", "einops-like", "torch-like"} <= lock.names()  # the VCS pin's dependency too
    (vcs_pin,) = parse(locks / "twin" / "vcs.txt", lock=True).pins
    assert (vcs_pin.name, vcs_pin.commit, vcs_pin.editable) == ("acme-trainer", sha, False)
    venv = make_venv("twin")
    planned = invoke("sync", "-p", "twin", "--venv", str(venv), "-n", "-y", cwd=tmp_path, extra=env)
    assert planned.returncode == 0, planned.stderr
    assert "vcs: 1 to change" in planned.stdout and f"install   acme-trainer {sha}" in planned.stdout
    synced = invoke("sync", "-p", "twin", "--venv", str(venv), "-y", cwd=tmp_path, extra=env)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "twin of the lock" in synced.stderr
    direct = json.loads(next((venv / "lib").glob("python*/site-packages/acme_trainer-0.1.dist-info"))
                        .joinpath("direct_url.json").read_text())
    assert direct["vcs_info"]["commit_id"] == sha and "dir_info" not in direct  # at its commit, not editable
    again = invoke("sync", "-p", "twin", "--venv", str(venv), cwd=tmp_path, extra=env)
    assert again.returncode == 0 and "already in sync" in again.stderr, again.stderr
    # the baseline and the twin: the VCS line is the same commit; plain-b's version was not in the file
    a, b, result = diff_sides(str(freeze), str(venv))
    assert [(s.name, s.same) for s in result.sources] == [("acme-trainer", True)]
    assert [c.name for c in result.unknown] == ["plain-b"] and not result.changed
    # an extra package makes the rest phase run pip-sync (it removes what no file lists): the VCS pin stays
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index", "--find-links",
                    str(stack_packages), "packaging"], check=True, capture_output=True)
    removed = invoke("sync", "-p", "twin", "--venv", str(venv), "-y", cwd=tmp_path, extra=env)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert "remove    packaging" in removed.stdout and "vcs: 0 to change, 1 to keep" in removed.stdout
    assert "twin of the lock" in removed.stderr
    # the profile says where the checkout is: then, and only then, the twin installs it editable
    toml.write_text(toml.read_text() + f'\n[vcs.acme-trainer]\ncheckout = "{repo}"\n')
    editable = invoke("sync", "-p", "twin", "--venv", str(venv), "-y", cwd=tmp_path, extra=env)
    assert editable.returncode == 0, editable.stdout + editable.stderr
    assert f"reinstall acme-trainer {sha} (not editable) -> {sha} (editable from {repo})" in editable.stdout
    assert "twin of the lock" in editable.stderr
    direct = json.loads(next((venv / "lib").glob("python*/site-packages/acme_trainer-0.1.dist-info"))
                        .joinpath("direct_url.json").read_text())
    assert direct["dir_info"] == {"editable": True} and direct["url"] == repo.as_uri()


def test_diff_vcs_commits_file_versions_and_markers(tmp_path: Path) -> None:
    a = tmp_path / "a.txt"
    b = tmp_path / "b.txt"
    a.write_text(f"-e git+https://github.com/org/trainer.git@{SHA_A}#egg=trainer\n"
                 f"peft @ git+https://github.com/huggingface/peft.git@{SHA_A}\n"
                 "numpy @ file:///croot/numpy_1/work/dist/numpy-1.26.4-cp311-cp311-linux_x86_64.whl\n"
                 "certifi @ file:///croot/certifi_1717618050233/work/certifi\n"
                 'pywin32==306 ; sys_platform == "win32"\n')
    b.write_text(f"trainer @ git+https://github.com/org/trainer.git@{SHA_A}\n"
                 f"peft @ git+https://github.com/huggingface/peft.git@{SHA_B}\n"
                 "numpy==1.26.4\ncertifi==2024.6.2\n")
    _, _, result = diff_sides(str(a), str(b))
    assert {(s.name, s.same) for s in result.sources} == {("trainer", True), ("peft", False)}
    assert [c.name for c in result.unknown] == ["certifi"] and result.same == 2  # numpy by its file name
    assert result.not_for_platform == [(f"{a}:5", 'pywin32==306 ; sys_platform == "win32"')]
    assert not result.identical and "1 not for this platform" in result.counts()
    shown = invoke("diff", str(a), str(b), cwd=tmp_path)
    assert shown.returncode == 1, shown.stderr
    for needle in ("VCS and editable installs", "changed", "version unknown in this file", "not for this platform",
                   "pywin32==306"):
        assert needle in shown.stdout, needle


def test_diff_accepts_a_freeze_of_stacksyncs_own_tools(tmp_path: Path) -> None:
    """`pip freeze` of .tools (an editable stacksync) against .tools itself: identical."""
    tools = Path(sys.prefix)
    freeze = tmp_path / "tools-freeze.txt"
    freeze.write_text(subprocess.run([sys.executable, "-m", "pip", "freeze"], check=True, capture_output=True,
                                     text=True, env={**os.environ, "PIP_CONFIG_FILE": os.devnull}).stdout)
    assert "-e " in freeze.read_text()
    result = invoke("diff", str(freeze), str(tools), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["identical"] and [v["name"] for v in data["vcs"]] == ["stacksync"] and data["vcs"][0]["same"]


def write(tmp_path: Path, toml: str, requirements: str) -> Path:
    folder = tmp_path / "locks" / "p"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stack.toml").write_text(toml)
    (folder / "requirements.in").write_text(requirements)
    return folder


@pytest.mark.parametrize(("toml", "key", "needle"), [
    ('base = ["pytorch"]', "base", "did you mean 'torch'?"),
    ('base = ["torch"]\n[smoke]\nbase = ["troch"]', "smoke.base", "did you mean 'torch'?"),
    ('[smoke]\nrest = ["pyyaml"]', "smoke.rest", "did you mean 'yaml'?"),
    ('[deferred.flash-attn]\nrequires = ["torch"]\nimports = ["torchh"]', "deferred.flash-attn.imports",
     "did you mean 'torch'?"),
])
def test_unknown_base_smoke_and_imports_names_are_refused(tmp_path: Path, toml: str, key: str, needle: str) -> None:
    folder = write(tmp_path, toml, "torch==2.4.0\nflash-attn==2.8.0\npyyaml==6.0.1\n")
    with pytest.raises(ProfileError) as info:
        profile.load(folder)
    assert f"stack.toml: {key}: " in str(info.value) and needle in str(info.value)


def test_known_import_names_and_lock_only_base_names_load(tmp_path: Path) -> None:
    folder = write(tmp_path, 'base = ["torch", "triton"]\n[smoke]\nbase = ["torch"]\nrest = ["yaml", "PIL", "cv2"]\n',
                   "torch==2.4.0\npyyaml==6.0.1\npillow==10.3.0\nopencv-python==4.10.0.84\n")
    (folder / "requirements.txt").write_text("triton==3.0.0 --hash=sha256:" + "a" * 64 + "\n")
    assert profile.load(folder).base == ("torch", "triton")  # triton: a dependency the lock pins


def test_short_flags_are_the_same_in_every_task(tmp_path: Path) -> None:
    from invoke.collection import Collection

    import tasks

    ns = Collection.from_module(tasks)
    for name in ns.task_names:
        args = {a.name: set(a.names) for a in ns[name].get_arguments()}
        table = {"yes": "y", "profile": "p", "dry_run": "n", "verbose": "v", "quiet": "q", "out": "o"}
        for long, short in table.items():
            if long in args:
                assert short in args[long], (name, long)
        for a in ns[name].get_arguments():
            extra = [n for n in a.names if len(n) == 1 and not a.positional]
            assert extra in ([], [table.get(a.name)]), (name, a)
    (tmp_path / "locks").mkdir()  # a project folder (without one, the error is that there is no project)
    shown = invoke("sync", "--dry-run", "-y", "-p", "no-such-profile", cwd=tmp_path)
    assert shown.returncode == 2 and "unknown profile 'no-such-profile'" in shown.stderr, shown.stderr


def test_compile_refuses_conda_paths_editables_and_branches_before_resolving(tmp_path: Path) -> None:
    folder = write(tmp_path, "", "numpy==1.26.4\n"
                   "certifi @ file:///croot/certifi_1717618050233/work/certifi\n"
                   f"-e git+https://github.com/org/trainer.git@{SHA_A}#egg=trainer\n"
                   "peft @ git+https://github.com/huggingface/peft.git@main\n")
    with pytest.raises(LockProblems) as info:
        comp.compile_profile(profile.load(folder))
    lines = str(info.value).splitlines()
    req = folder / "requirements.in"
    assert lines[0].startswith(f"{req}:2: certifi @ file:///croot/") and "write certifi==VERSION" in lines[0]
    assert lines[1].startswith(f"{req}:3: ") and f"trainer @ git+https://github.com/org/trainer.git@{SHA_A}" in lines[1]
    assert lines[2].startswith(f"{req}:4: peft: VCS reference at 'main'") and "append @<40-hex" in lines[2]
    assert not (folder / "requirements.txt").exists()


def test_a_resolver_failure_names_the_requirements_in_line(index_server: IndexServer, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write(tmp_path, f'index_url = "{index_server.auth_url}"\n'.replace(index_server.password, "${T_PW}"),
                   "plain-b\n# the stand-in stack\nplain-a==7.0\n")
    monkeypatch.setenv("T_PW", index_server.password)
    with pytest.raises(Exception) as info:
        comp.compile_profile(profile.load(folder))
    message = str(info.value)
    assert message.startswith(f"{folder / 'requirements.in'}:3: pip-compile cannot resolve plain-a==7.0"), message
    assert "(fix: pin a version of plain-a the index serves" in message and "line above" not in message
    assert index_server.password not in message


def test_propose_from_a_conda_training_freeze(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """freeze --from's proposal for the corpus conda freeze: repairs, unknowns, conda's own packages,
    VCS section, base / deferred / [smoke] from the known stacks; the live env repairs the rest."""
    import tomllib

    from stacksync.env.baseline import propose

    data = Path(__file__).parent / "data" / "real"
    pins = parse(data / "conda-training-env-freeze.txt").pins
    out = propose(pins, profile="train", source="freeze.txt", python="3.11")
    req = out.requirements_in.splitlines()
    assert "numpy===1.26.4" in req and "torch===2.3.0" in req and "flash-attn===2.5.8" in req
    assert "acme-trainer @ git+https://github.com/acme-ml/trainer.git@3f1c2a9b8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a" in req
    assert any(line.startswith("certifi  # was file:///croot/certifi_") for line in req)
    assert "conda" in out.left_out and not any(line.startswith("conda") for line in req)
    assert sum("version unknown in this file" in w for w in out.warnings) == len(out.unknown) > 10
    toml = tomllib.loads(out.stack_toml)
    assert toml["base"] == ["torch", "torchvision", "torchaudio", "triton"]
    assert set(toml["deferred"]) == {"flash-attn", "deepspeed"}
    assert set(toml["smoke"]["deferred"]) == {"flash_attn", "deepspeed"}
    assert toml["deferred"]["flash-attn"]["imports"] == ["torch"]
    live = propose(pins, profile="train", source="freeze.txt", python="3.11",
                   live={"certifi": "2024.6.2", "tqdm": "4.66.4"})  # type: ignore[dict-item]
    assert "certifi===2024.6.2" in live.requirements_in and "certifi" not in live.unknown
    # the whole proposal loads as a profile and every check passes
    folder = write(tmp_path, out.stack_toml, out.requirements_in)
    assert profile.load(folder).base == ("torch", "torchvision", "torchaudio", "triton")
    hints = propose(parse(data / "ml-repo-requirements.txt").pins, profile="x", source="r.txt", python="3.11")
    assert '# extra_index_urls = ["https://download.pytorch.org/whl/cu121"]' in hints.stack_toml


@pytest.mark.slow
def test_a_bare_wheel_url_with_a_marker_compiles_hashed_and_syncs(index_server: IndexServer, tmp_path: Path,
                                                                  make_venv, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
                                                                  ) -> None:
    import pkgfactory

    from stacksync.lock.lockfile import require_hashes

    wheel = pkgfactory.build_wheel(tmp_path / "wheels", "local-extra", "1.0",
                                   files={"local_extra/__init__.py": ""})
    folder = write(tmp_path, f'index_url = "{index_server.auth_url}"\n'.replace(index_server.password, "${T_PW}"),
                   f'plain-b\n{wheel.as_uri()}; python_version >= "3"\n')
    monkeypatch.setenv("T_PW", index_server.password)
    comp.compile_profile(profile.load(folder))
    lock = parse(folder / "requirements.txt", lock=True)
    require_hashes(lock.pins)  # every line hashed: the URL pin by its file
    (url_pin,) = [p for p in lock.pins if p.url]
    assert url_pin.name == "local-extra" and url_pin.hashes == (f"sha256:{pkgfactory.sha256_of(wheel)}",)
    from stacksync.sync.run import run
    from stacksync.sync.state import Options

    venv = make_venv("url-twin")
    opts = Options(profile="p", venv=str(venv), yes=True, locks_dir=tmp_path / "locks", cache_dir=tmp_path / "cache")
    assert run(opts).verdict == "synced"
    assert run(opts).verdict == "in-sync"  # the URL pin compares by the version its file name says
