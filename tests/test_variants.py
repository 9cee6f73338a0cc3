"""Variants of a profile: parsing and validation (stacksync.lock.variants) and the choice by the target's
driver and platform (stacksync.cuda.variant, pure)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from test_doctor import fake_libcuda  # noqa: F401  (the fixture: a gcc-built libcuda.so reporting a CUDA version)

from stacksync.core.errors import ProfileError
from stacksync.cuda import doctor
from stacksync.cuda.variant import NoVariant, choose
from stacksync.lock import profile

TOML = '''
index_url = "https://pypi.example/simple"
[deferred.flash-attn]
requires = ["torch"]
build_env = { MAX_JOBS = "4" }
[variants.cpu]
base_index_url = "https://torch.example/whl/cpu"
[variants.cu121]
cuda = "12.1"
base_index_url = "https://torch.example/whl/cu121"
[variants.cu124]
cuda = "12.4"
base_index_url = "https://torch.example/whl/cu124"
platforms = ["linux"]
provided = ["Torch"]
[variants.cu124.deferred.flash-attn]
wheels = "https://host/fa-{version}.whl"
build_env = { TORCH_CUDA_ARCH_LIST = "9.0" }
'''


def make(tmp_path: Path, toml: str, requirements: str = "torch==2.4.0\nflash-attn==2.8.0\n") -> Path:
    folder = tmp_path / "locks" / "p"
    folder.mkdir(parents=True)
    (folder / "stack.toml").write_text(toml)
    (folder / "requirements.in").write_text(requirements)
    return folder


def test_variants_override_what_differs(tmp_path: Path) -> None:
    p = profile.load(make(tmp_path, TOML))
    assert list(p.variants) == ["cpu", "cu121", "cu124"] and p.variant is None
    assert p.lock_path == p.folder / "requirements.txt"
    v = p.for_variant("cu124")
    assert (v.variant, v.cuda, v.platforms, v.provided) == ("cu124", "12.4", ("linux",), ("torch",))
    assert v.lock_path == p.folder / "cu124" / "requirements.txt"
    assert v.deferred_path == p.folder / "cu124" / "deferred.txt"
    assert v.requirements_in == p.requirements_in  # shared
    assert v.index.index_url == "https://pypi.example/simple"
    assert v.index.extra_index_urls == ("https://torch.example/whl/cu124",)
    fa = v.deferred_by_name("flash-attn")
    assert fa.wheels == "https://host/fa-{version}.whl"
    assert dict(fa.build_env) == {"MAX_JOBS": "4", "TORCH_CUDA_ARCH_LIST": "9.0"}  # merged, variant wins
    cpu = p.for_variant("cpu")
    assert (cpu.cuda, cpu.provided, cpu.deferred_by_name("flash-attn").wheels) == (None, (), None)


def test_profile_without_variants_is_unchanged(tmp_path: Path) -> None:
    p = profile.load(make(tmp_path, 'cuda = "12.1"\n'))
    assert (p.variants, p.variant, p.provided) == ({}, None, ())
    assert p.locks_folder == p.folder and p.lock_path == p.folder / "requirements.txt"


@pytest.mark.parametrize(("toml", "message"), [
    ('[variants.cu121]\ncuda = "12"\n', r"variants\.cu121\.cuda: '12' is not a CUDA X\.Y version"),
    ('[variants.cu121]\ncudaa = "12.1"\n', r"variants\.cu121\.cudaa: unknown key .*did you mean 'cuda'"),
    ('[variants]\ncu121 = 3\n', r"variants\.cu121: must be a table"),
    ('variants = 3\n', r"variants: must hold one table per variant"),
    ('[variants."../x"]\n', r"is not a usable variant name"),
    ('[variants.cpu]\nprovided = "torch"\n', r"variants\.cpu\.provided: must be a list of package names"),
    ('provided = [1]\n', r"provided: must be a list of package names"),
    ('[variants.cpu.deferred.vllm]\nwheels = "x"\n', r"vllm is not a deferred package of the profile"),
    ('[deferred.flash-attn]\nrequires = ["torch"]\n[variants.cpu.deferred.flash-attn]\nrequires = []\n',
     r"variants\.cpu\.deferred\.flash-attn\.requires: unknown key"),
    ('[variants.cpu]\nbase_index_url = "https://me:pw@host/simple"\n', r"literal credential"),
    ('[variants.ngc]\nauto = "no"\n', r"variants\.ngc\.auto: must be true or false, found 'no'"),
    ('[variants.ngc]\npython = "3"\n', r"variants\.ngc\.python: '3' is not a CPython X\.Y version"),
])
def test_variant_mistakes_are_one_line(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ProfileError, match=message) as info:
        profile.load(make(tmp_path, toml))
    assert "\n" not in str(info.value) and "stack.toml" in str(info.value)


@pytest.fixture
def variants(tmp_path: Path) -> dict[str, object]:
    return dict(profile.load(make(tmp_path, TOML)).variants)


@pytest.mark.parametrize(("driver", "platform", "chosen"), [
    ("12.4", "linux", "cu124"), ("12.6", "linux", "cu124"), ("13.0", "linux", "cu124"),
    ("12.1", "linux", "cu121"), ("12.3", "linux", "cu121"),
    ("11.8", "linux", "cpu"), (None, "linux", "cpu"),
    ("12.4", "win32", "cu121"),  # cu124 is for linux only
])
def test_choice_by_driver_and_platform(variants: dict, driver: str | None, platform: str, chosen: str) -> None:
    choice = choose(variants, driver, platform)
    assert choice.name == chosen
    assert (driver or "no NVIDIA driver") in choice.why


def test_variant_option_overrides(variants: dict) -> None:
    choice = choose(variants, "12.4", "linux", override="cpu")
    assert choice.name == "cpu" and choice.why.startswith("--variant cpu")
    with pytest.raises(NoVariant, match=r"no variant 'cu999' \(fix: --variant one of cpu, cu121, cu124\)"):
        choose(variants, "12.4", "linux", override="cu999")


def test_no_fit_is_refused_with_what_each_needs(variants: dict) -> None:
    gpu_only = {k: v for k, v in variants.items() if k != "cpu"}
    with pytest.raises(NoVariant) as info:
        choose(gpu_only, "11.8", "linux", machine="x86_64", profile="p")
    text = str(info.value)
    assert "no variant fits this machine (a driver with CUDA 11.8, platform linux_x86_64)" in text
    assert "cu121 needs a driver with CUDA >= 12.1" in text
    assert "cu124 needs a driver with CUDA >= 12.4, platform linux" in text


def test_platform_with_machine(tmp_path: Path) -> None:
    p = profile.load(make(tmp_path, '[variants.gh200]\ncuda = "12.4"\nplatforms = ["linux_aarch64"]\n'
                                    '[variants.cpu]\n'))
    assert choose(p.variants, "12.4", "linux", machine="aarch64").name == "gh200"
    assert choose(p.variants, "12.4", "linux", machine="x86_64").name == "cpu"


def test_doctor_reports_the_variant_the_driver_picks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     fake_libcuda: Callable[..., Path]) -> None:  # noqa: F811
    folder = make(tmp_path, TOML)
    monkeypatch.setenv("STACKSYNC_LIBCUDA", str(fake_libcuda(12040)))
    monkeypatch.setenv("STACKSYNC_NVIDIA_SMI", "")
    report = doctor.diagnose(python=sys.executable, profile=str(folder))
    first = report.findings[0]
    assert (first.level, first.topic) == ("ok", "variant")
    assert first.message.startswith("cu124: a driver with CUDA 12.4")
    assert report.profile == "p/cu124"
    unknown = doctor.diagnose(python=sys.executable, profile=str(folder), variant="cu999").findings[0]
    assert (unknown.level, unknown.topic) == ("error", "variant") and "no variant 'cu999'" in unknown.message


def test_export_takes_one_variant_or_names_variant(tmp_path: Path) -> None:
    from stacksync.build.export import for_export
    from stacksync.core.errors import StacksyncError

    p = profile.load(make(tmp_path, TOML))
    assert for_export(p, "cu121").lock_path == p.folder / "cu121" / "requirements.txt"
    with pytest.raises(StacksyncError, match=r"has variants, each with its own lock \(fix: --variant one of "
                                             r"cpu, cu121, cu124; --out pylock\.<variant>\.toml for each\)"):
        for_export(p, None)
    with pytest.raises(StacksyncError, match="has no variant 'cu999'"):
        for_export(p, "cu999")
    plain = profile.load(make(tmp_path / "plain", 'cuda = "12.1"\n'))
    assert for_export(plain, None) is plain
    with pytest.raises(StacksyncError, match=r"has no \[variants\] \(fix: drop --variant cu121\)"):
        for_export(plain, "cu121")


def test_diff_of_a_profile_with_variants_needs_a_way_to_choose(tmp_path: Path) -> None:
    from stacksync.core.errors import StacksyncError
    from stacksync.env.diff import load_side

    folder = make(tmp_path, TOML)
    with pytest.raises(StacksyncError, match=r"has variants \(cpu, cu121, cu124\), each with its own lock "
                                             r"\(fix: --variant NAME\)"):
        load_side(str(folder))
    seen: list[tuple[str | None, Path | None]] = []

    def pick(prof: profile.Profile, other: Path | None) -> profile.Profile:
        seen.append((prof.variant, other))
        return prof.for_variant("cu124")

    with pytest.raises(StacksyncError, match=r"cu124/requirements.txt: profile 'p' has no lock yet"):
        load_side(str(folder), pick=pick, other=tmp_path / "venv")
    assert seen == [(None, tmp_path / "venv")]


def test_a_variant_with_auto_false_is_taken_only_by_name(tmp_path: Path) -> None:
    """An NGC container's variant needs the same driver as a plain CUDA one: only --variant takes it; its
    Python is the image's."""
    p = profile.load(make(tmp_path, 'python = "3.11"\n[variants.cu128]\ncuda = "12.8"\n'
                                    '[variants.ngc]\ncuda = "13.1"\npython = "3.12"\nprovided = ["torch"]\n'
                                    'auto = false\n'))
    assert choose(p.variants, "13.1", "linux", machine="x86_64").name == "cu128"
    assert choose(p.variants, "13.1", "linux", machine="x86_64", override="ngc").name == "ngc"
    with pytest.raises(NoVariant, match=r"cu128 needs a driver with CUDA >= 12\.8; ngc needs --variant ngc "
                                        r"\(auto = false\)"):
        choose(p.variants, "12.2", "linux", machine="x86_64")
    assert p.for_variant("ngc").python == "3.12" and p.for_variant("cu128").python == "3.11"
