"""The pure parts of build once, install everywhere: the build key (parts, digest, differences, facts
read from files and wheels), the wheelhouse store (names, sidecars, lookup with its hash check,
prune), the prebuilt URL template, the publish URLs, and the new stack.toml keys. No processes."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from pathlib import Path

import pkgfactory
import pytest
from packaging.utils import canonicalize_name, parse_wheel_filename

from stacksync.build import buildkey, prebuilt, wheelhouse
from stacksync.build.buildkey import BuildKey
from stacksync.build.publish import listing_url, upload_url
from stacksync.core.errors import ProfileError, StacksyncError
from stacksync.lock import profile as profile_mod

TORCH_CONFIG = 'set(TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=0")\n'


def key(**kw: object) -> BuildKey:
    base: dict[str, object] = dict(
        package="flash-attn", version="2.8.0.post2", source_sha256=("b51d",), base=(("torch", "2.4.0+cu121"),),
        cuda="12.1", cxx11_abi=False, cuda_from="torch", python="cp311", platform="linux_x86_64", glibc="2.36",
        build_env=(("TORCH_CUDA_ARCH_LIST", "8.0"),))
    base.update(kw)
    return BuildKey(**base)  # type: ignore[arg-type]


def test_digest_is_stable_and_every_part_counts() -> None:
    k = key()
    assert k.digest == key().digest and len(k.digest) == 64 and k.short == k.digest[:12]
    assert BuildKey.from_json(json.loads(json.dumps(k.to_json()))) == k
    for change in ({"base": (("torch", "2.4.0"),)}, {"cuda": "12.4"}, {"cxx11_abi": True}, {"cxx11_abi": None},
                   {"python": "cp312"}, {"glibc": "2.28"}, {"build_env": ()}, {"source_sha256": ("x",)}):
        assert key(**change).digest != k.digest, change
    assert k.describe() == ("flash-attn 2.8.0.post2 for torch 2.4.0+cu121, cuda 12.1, cxx11abi FALSE, cp311 "
                            "linux_x86_64 (glibc 2.36), TORCH_CUDA_ARCH_LIST=8.0")


def test_differences_name_the_parts() -> None:
    old, new = key().to_json(), key(base=(("torch", "2.5.1+cu124"),), cxx11_abi=None, build_env=()).to_json()
    assert buildkey.differences(old, new) == ["base.torch 2.4.0+cu121 -> 2.5.1+cu124",
                                              "build_env.TORCH_CUDA_ARCH_LIST 8.0 -> unset", "cxx11_abi False -> None"]
    assert buildkey.differences(old, old) == []


def test_key_env_leaves_parallelism_out_and_reads_the_arch_list() -> None:
    assert buildkey.key_env({"MAX_JOBS": "4", "NVCC_THREADS": "2", "FLASH_ATTENTION_FORCE_BUILD": "TRUE"}, {}) == (
        ("FLASH_ATTENTION_FORCE_BUILD", "TRUE"),)
    assert buildkey.key_env({}, {"TORCH_CUDA_ARCH_LIST": "9.0", "MAX_JOBS": "8"}) == (("TORCH_CUDA_ARCH_LIST", "9.0"),)
    assert buildkey.key_env({"TORCH_CUDA_ARCH_LIST": "8.0"}, {"TORCH_CUDA_ARCH_LIST": "9.0"}) == (
        ("TORCH_CUDA_ARCH_LIST", "8.0"),)  # the profile's value wins


def test_tags() -> None:
    assert buildkey.python_tag("3.11", "cpython-311-x86_64-linux-gnu") == "cp311"
    assert buildkey.python_tag("3.13", "cpython-313t-x86_64-linux-gnu") == "cp313t"
    assert buildkey.platform_tag("linux-x86_64", "x86_64") == "linux_x86_64"
    assert buildkey.platform_tag("macosx-11.0-arm64", "arm64") == "macosx_11_0_arm64"
    assert buildkey.cuda_source([canonicalize_name("einops"), canonicalize_name("torch")]) == "torch"
    assert buildkey.cuda_source([canonicalize_name("torch-like")]) == "torch-like"
    assert buildkey.cuda_source([]) is None


def test_cuda_and_abi_read_from_files_and_from_a_wheel(tmp_path: Path) -> None:
    sp = tmp_path / "site-packages"
    (sp / "torch" / "share" / "cmake" / "Torch").mkdir(parents=True)
    (sp / "torch" / "version.py").write_text("__version__ = '2.4.0+cu121'\ncuda: Optional[str] = '12.1'\n")
    (sp / "torch" / "share" / "cmake" / "Torch" / "TorchConfig.cmake").write_text(TORCH_CONFIG)
    assert buildkey.files_facts([tmp_path / "other", sp], "torch") == ("12.1", False)
    (sp / "torch" / "share" / "cmake" / "Torch" / "TorchConfig.cmake").unlink()
    assert buildkey.files_facts([sp], "torch") == ("12.1", None)  # no cmake flag, no libc10.so: ABI absent
    (sp / "torch" / "lib").mkdir()
    (sp / "torch" / "lib" / "libc10.so").write_bytes(b"\x7fELF...\0_ZNKSt7__cxx1112basic_stringIcSt11char_traits\0")
    assert buildkey.files_facts([sp], "torch") == ("12.1", True)  # torch >= 2.13 wheels: from the library
    (sp / "torch" / "lib" / "libc10.so").write_bytes(b"\x7fELF...\0_ZNKSs4sizeEv\0")
    assert buildkey.files_facts([sp], "torch") == ("12.1", False)
    assert buildkey.files_facts([sp], "torch-like") is None  # not installed there
    wheel = pkgfactory.build_wheel(tmp_path / "w", "torch", "2.5.1", files={
        "torch/version.py": "cuda = '12.4'\n",
        "torch/share/cmake/Torch/TorchConfig.cmake": TORCH_CONFIG.replace("0", "1")})
    assert buildkey.wheel_facts(wheel, "torch") == ("12.4", True)
    assert buildkey.wheel_facts(tmp_path / "missing.whl", "torch") is None


def _wheel(tmp_path: Path, name: str = "flash-attn-like") -> Path:
    return pkgfactory.build_wheel(tmp_path / "built", name, "2.8.0", files={"flash_attn_like/__init__.py": "x = 1\n"})


def test_wheelhouse_add_lookup_entries(tmp_path: Path) -> None:
    house, k = tmp_path / "house", key(package="flash-attn-like", version="2.8.0")
    assert wheelhouse.lookup(k, house) is None
    entry = wheelhouse.add(house, _wheel(tmp_path), k, profile="gpu", source="build", built_on="node-7")
    assert entry.wheel == house / k.short / f"flash_attn_like-2.8.0-0ss{k.short}-py3-none-any.whl"
    name, version, build, _ = parse_wheel_filename(entry.wheel.name)
    assert (str(name), str(version), build) == ("flash-attn-like", "2.8.0", (0, f"ss{k.short}"))
    assert wheelhouse.lookup(k, house) == entry.wheel == wheelhouse.lookup(k.digest, house)
    assert wheelhouse.lookup(key(cuda="12.4"), house) is None
    (found,) = wheelhouse.entries(house)
    assert (found.digest, found.profile, found.built_on, found.sha256) == (k.digest, "gpu", "node-7", entry.sha256)
    sidecar = json.loads((entry.wheel.parent / (entry.wheel.name + wheelhouse.SIDECAR_SUFFIX)).read_text())
    assert sidecar["key"] == k.to_json() and sidecar["describe"] == k.describe()
    entry.wheel.write_bytes(entry.wheel.read_bytes() + b"\0")
    with pytest.raises(wheelhouse.TamperedWheel, match=f"--prune --key {k.short}"):
        wheelhouse.lookup(k, house)


def test_wheelhouse_prune_filters(tmp_path: Path) -> None:
    house = tmp_path / "house"
    old = wheelhouse.add(house, _wheel(tmp_path), key(cuda="11.8"), profile="a", source="build",
                         built_at="2026-01-01T00:00:00Z")
    new = wheelhouse.add(house, _wheel(tmp_path), key(cuda="12.4"), profile="b", source="build",
                         built_at="2026-11-30T00:00:00Z")
    now = dt.datetime(2026, 12, 2, tzinfo=dt.timezone.utc)
    with pytest.raises(StacksyncError, match="--older-than DAYS"):
        wheelhouse.prune(house)
    assert [e.digest for e in wheelhouse.prune(house, older_than_days=30, dry_run=True, now=now)] == [old.digest]
    assert len(wheelhouse.entries(house)) == 2  # dry run
    assert wheelhouse.prune(house, older_than_days=30, profile="b", now=now) == []  # every filter must hold
    assert [e.digest for e in wheelhouse.prune(house, keys=[new.digest[:6]])] == [new.digest]
    assert [e.digest for e in wheelhouse.entries(house)] == [old.digest] and not (house / new.short).exists()
    assert wheelhouse.parse_days("") is None and wheelhouse.parse_days("1.5") == 1.5
    with pytest.raises(StacksyncError, match="not a number of days"):
        wheelhouse.parse_days("soon")


def test_wheelhouse_dir_precedence(tmp_path: Path) -> None:
    env = {wheelhouse.ENV_VAR: str(tmp_path / "env")}
    assert wheelhouse.resolve_dir(tmp_path / "cli", "toml", tmp_path, env) == tmp_path / "cli"
    assert wheelhouse.resolve_dir(None, "toml", tmp_path, env) == tmp_path / "env"
    assert wheelhouse.resolve_dir(None, "toml", tmp_path, {}) == tmp_path / "toml"  # relative to the profile
    assert wheelhouse.resolve_dir(None, None, tmp_path, {}).name == "wheelhouse"


def test_prebuilt_template_filled_from_the_lock() -> None:
    template = "https://h/v{version}/flash_attn-{version}+cu{cuda_major}torch{torch_mm}cxx11abi{abi}-cp{py}-cp{py}-x.whl"
    values = prebuilt.template_vars("2.6.3", "2.4.0+cu121", "3.11", {})
    assert prebuilt.fill(template, values, source="s", key="k") == (
        "https://h/v2.6.3/flash_attn-2.6.3+cu12torch2.4cxx11abiFALSE-cp311-cp311-x.whl")
    assert prebuilt.template_vars("2.8.0", "2.7.1+cu118", "3.12", {})["abi"] == "TRUE"
    assert prebuilt.template_vars("2.8.0", "2.7.1+cu118", "3.12", {})["cuda_major"] == "11"
    assert prebuilt.template_vars("2.8.0", "2.4.0", "3.11", {"abi": "TRUE"})["abi"] == "TRUE"
    with pytest.raises(ProfileError, match=r"cannot fill \{cuda_major\}.*wheel_vars = \{ cuda_major"):
        prebuilt.fill(template, prebuilt.template_vars("2.8.0", "2.4.0", "3.11", {}), source="s", key="k")
    note = prebuilt.comment("https://u:p@h/x.whl", "a" * 64)
    assert note == f"prebuilt: https://h/x.whl sha256:{'a' * 64}"
    assert prebuilt.pinned_before(f"x==1 \\\n    # {note}\n", "https://u:p@h/x.whl") == "a" * 64
    assert prebuilt.pinned_before(f"    # {note}\n", "https://h/y.whl") is None


def _profile(tmp_path: Path, extra: str = "", deferred_extra: str = "") -> Path:
    folder = tmp_path / "p"
    folder.mkdir(exist_ok=True)
    (folder / "requirements.in").write_text("torch\nflash-attn==2.8.0\n")
    (folder / "stack.toml").write_text(textwrap.dedent(f"""\
        base = ["torch"]
        {extra}
        [deferred.flash-attn]
        requires = ["torch"]
        """) + deferred_extra)
    return folder


def test_profile_keys_and_publish_urls(tmp_path: Path) -> None:
    folder = _profile(tmp_path, 'team_index = "https://${U}:${T}@art.example/api/pypi/ml/simple"\nwheelhouse = "wh"',
                      'wheels = "https://h/{version}.whl"\nprebuilt = "require"\nwheel_vars = { abi = "TRUE" }\n')
    prof = profile_mod.load(folder)
    d = prof.deferred[0]
    assert (d.wheels, d.prebuilt, dict(d.wheel_vars)) == ("https://h/{version}.whl", "require", {"abi": "TRUE"})
    assert prof.wheelhouse == "wh"
    assert upload_url(prof, None) == ("https://${U}:${T}@art.example/api/pypi/ml/", f"{prof.stack_toml}: team_index")
    assert upload_url(prof, "https://other/") == ("https://other/", "--to")
    assert listing_url(prof, None) == prof.team_index and listing_url(prof, "https://other") == "https://other/simple/"
    with pytest.raises(ProfileError, match="team_index: the URL holds a literal credential"):
        profile_mod.load(_profile(tmp_path, 'team_index = "https://me:hunter2@h/simple"'))
    with pytest.raises(ProfileError, match="unknown mode 'always'"):
        profile_mod.load(_profile(tmp_path, "", 'prebuilt = "always"\n'))
    with pytest.raises(ProfileError, match="no team index to publish to"):
        upload_url(profile_mod.load(_profile(tmp_path)), None)
