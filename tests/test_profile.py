"""Profiles load and validate fully; each mistake is one line naming the file, the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacksync.core.errors import ProfileError
from stacksync.core.redact import redact, strip_credentials
from stacksync.lock import profile


def make(tmp_path: Path, toml: str, requirements: str = "torch==2.4.0\nflash-attn==2.8.0\n") -> Path:
    folder = tmp_path / "locks" / "p"
    folder.mkdir(parents=True)
    (folder / "stack.toml").write_text(toml)
    (folder / "requirements.in").write_text(requirements)
    return folder


def test_shipped_profiles_load() -> None:
    demo = profile.load("demo")
    assert demo.base and demo.python == "3.11"
    gpu = profile.load("gpu-cu121")
    assert gpu.base == ("torch", "torchvision", "triton")
    fa = gpu.deferred_by_name("flash_attn")
    assert fa.requires == ("torch", "einops") and fa.rebuild_on == ("torch",)
    assert gpu.cuda == "12.1"


def test_full_profile(tmp_path: Path) -> None:
    folder = make(tmp_path, '''
python = "3.10"
base = ["Torch"]
index_url = "https://${ART_USER}:${ART_TOKEN}@art.example/api/pypi/simple"
trusted_hosts = ["art.example"]
emit_index_urls = true
[smoke]
base = ["torch"]
[deferred.flash_attn]
requires = ["torch", "einops>=0.6"]
build_env = { MAX_JOBS = "2" }
''')
    p = profile.load(folder)
    assert p.base == ("torch",) and p.deferred[0].name == "flash-attn"
    idx = p.index.expanded({"ART_USER": "me", "ART_TOKEN": "s3cret"})
    assert idx.pip_args()[:2] == ["--index-url", "https://me:s3cret@art.example/api/pypi/simple"]
    assert idx.lock_lines() == ["--index-url https://art.example/api/pypi/simple", "--trusted-host art.example"]
    with pytest.raises(ProfileError, match=r"stack.toml: index_url: environment variable ART_TOKEN is not set"):
        p.index.expanded({"ART_USER": "me"})


def test_smoke_modules_accumulate_over_phases(tmp_path: Path) -> None:
    p = profile.load(make(tmp_path, '[smoke]\nbase = ["torch"]\nrest = ["vllm", "torch"]\n'
                                    'deferred = ["flash_attn"]\n', "torch==2.4.0\nflash-attn==2.8.0\nvllm\n"))
    assert p.smoke_modules(through="base") == ["torch"]
    assert p.smoke_modules(through="rest") == ["torch", "vllm"]  # each once, in phase order
    assert p.smoke_modules() == ["torch", "vllm", "flash_attn"]


def test_pip_index_env_is_honoured_when_the_profile_names_none(tmp_path: Path) -> None:
    p = profile.load(make(tmp_path, ""))
    idx = p.index.expanded({"PIP_INDEX_URL": "http://mirror/simple", "PIP_EXTRA_INDEX_URL": "http://b/simple"})
    assert idx.index_url == "http://mirror/simple" and idx.extra_index_urls == ("http://b/simple",)
    assert p.index.expanded({}).index_url == profile.DEFAULT_INDEX


@pytest.mark.parametrize(
    ("toml", "key", "needle"),
    [
        ('pyhton = "3.11"', "pyhton", "did you mean 'python'"),
        ('python = "3"', "python", "not a CPython X.Y version"),
        ('backend = "conda"', "backend", "unknown backend"),
        ('base = "torch"', "base", "must be a list of strings"),
        ('index_url = "https://user:hunter2@host/simple"', "index_url", "literal credential"),
        ('index_url = "https://${U}:hunter2@host/simple"', "index_url", "literal password"),
        ('[deferred.flash-attn]\nrequire = ["torch"]', "deferred.flash-attn.require", "did you mean 'requires'"),
        ('[deferred.xformers]\nrequires = ["torch"]', "deferred.xformers", "not in requirements.in"),
        ('[deferred.flash-attn]\nrequires = ["torch>>2"]', "deferred.flash-attn.requires", "not a requirement"),
        ('base = ["flash-attn"]\n[deferred.flash-attn]', "deferred", "both base and deferred"),
        ('[smoke]\nbuild = ["x"]', "smoke.build", "unknown key"),
        ('cuda = "twelve"', "cuda", "not a CUDA X.Y version"),
        ("python = ", "", "not valid TOML"),
    ],
)
def test_mistakes_are_one_line_with_file_and_key(tmp_path: Path, toml: str, key: str, needle: str) -> None:
    folder = make(tmp_path, toml)
    with pytest.raises(ProfileError) as info:
        profile.load(folder)
    message = str(info.value)
    assert message.startswith(f"{folder / 'stack.toml'}: {key + ': ' if key else ''}")
    assert needle in message
    assert "\n" not in message
    assert "hunter2" not in message


def test_unknown_profile_suggests_the_close_one(tmp_path: Path) -> None:
    make(tmp_path, "")
    with pytest.raises(ProfileError, match=r"unknown profile 'q'.*pick one of: p"):
        profile.load("q", locks_dir=tmp_path / "locks")
    with pytest.raises(ProfileError, match=r"did you mean 'demo'"):
        profile.load("dmeo")


def test_missing_requirements_in(tmp_path: Path) -> None:
    folder = make(tmp_path, "")
    (folder / "requirements.in").unlink()
    with pytest.raises(ProfileError, match=r"requirements.in: file not found"):
        profile.load(folder)


def test_redaction() -> None:
    assert redact("fetch https://user:s3cret@host/simple/x failed") == "fetch https://user:****@host/simple/x failed"
    assert redact("https://tok3n@host/simple") == "https://****@host/simple"
    assert redact("git+https://host/a@deadbeef") == "git+https://host/a@deadbeef"
    assert strip_credentials("https://u:p@host:8080/simple") == "https://host:8080/simple"
