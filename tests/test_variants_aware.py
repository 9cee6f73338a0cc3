"""Every command that reads a profile's lock reads the chosen variant's (issue 22): ``plan --json`` and the
receipt say which variant and why, ``verify`` and ``diff <profile>`` judge against that variant's lock
(``--variant`` overrides), ``export`` writes one variant's pylock.toml (or refuses, naming ``--variant``),
a deferred wheel built for one variant is never served to another from a shared wheelhouse, and
``nox -s reproduce`` proves the variant the host's driver picks.

One profile with cpu / cu121 / cu124 variants of the stand-in torch (local labels on a main index and two
"PyTorch" indexes) and flash-attn-like deferred, compiled once; the driver is a gcc-built libcuda injected
at the probe seam (``STACKSYNC_LIBCUDA``), nvidia-smi switched off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import tomllib
from clihelp import invoke
from schemacheck import errors
from stackprofile import (
    STAND_IN_DEFERRED,
    TEAM_TOKEN,
    TEAM_USER,
    freeze,
    record,
    stand_in_profile,
    stop_all,
    team_server,
    variant_auth,
    variant_indexes,
    variant_url,
    variants_toml,
)
from test_doctor import fake_libcuda  # noqa: F401  (the fixture: a gcc-built libcuda.so reporting a CUDA version)

from stacksync.build import wheelhouse
from stacksync.build.publish import publish

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "docs" / "plan-json.schema.json").read_text())


@pytest.fixture(scope="module")
def multi(stack_packages: Path, tmp_path_factory: pytest.TempPathFactory,
          fake_libcuda: Callable[..., Path]) -> Iterator[dict[str, object]]:  # noqa: F811
    """The compiled profile ``locks/multi`` (one lock per variant), its indexes, one wheelhouse for every
    test of the module, and the environment of a host whose driver supports CUDA 12.1 / 12.4 / none."""
    root = tmp_path_factory.mktemp("aware")
    servers = variant_indexes(stack_packages, root)
    folder = stand_in_profile(root / "locks" / "multi", STAND_IN_DEFERRED, variant_url(servers["main"]),
                              deferred=True, extra=variants_toml(servers))
    house = root / "wheelhouse"
    # no CUDA toolkit: this host's nvcc (another CUDA major than the variants') would stop doctor's build
    # checks; flash-attn-like has no CUDA code to compile
    (root / "no-cuda-toolkit").mkdir()
    base_env = {**variant_auth(servers), "STACKSYNC_NVIDIA_SMI": "",
                "STACKSYNC_WHEELHOUSE": str(house), "CUDA_HOME": str(root / "no-cuda-toolkit")}
    compiled = invoke("compile", "--profile", str(folder), extra=base_env)
    assert compiled.returncode == 0, compiled.stderr
    drivers = {"12.1": str(fake_libcuda(12010)), "12.4": str(fake_libcuda(12040)), "none": str(root / "no-libcuda")}
    yield {"root": root, "folder": folder, "house": house,
           "env": {d: {**base_env, "STACKSYNC_LIBCUDA": lib} for d, lib in drivers.items()}}
    stop_all(servers)


def _env(multi: dict[str, object], driver: str) -> dict[str, str]:
    return multi["env"][driver]  # type: ignore[index, no-any-return]


@pytest.fixture(scope="module")
def synced121(multi: dict[str, object]) -> dict[str, object]:
    """A venv synced on a CUDA 12.1 host (the cu121 variant), with its receipt; the first flash-attn-like
    build, into the module's wheelhouse."""
    root = Path(str(multi["root"]))
    venv, receipt = root / "venv121", root / "r121.json"
    done = invoke("sync", "--profile", str(multi["folder"]), "--venv", str(venv), "--yes", "--report", str(receipt),
                  extra=_env(multi, "12.1"))
    assert done.returncode == 0, done.stderr
    return {"venv": venv, "receipt": json.loads(receipt.read_text()), "stderr": done.stderr}


def test_plan_json_says_which_variant_and_why(multi: dict[str, object]) -> None:
    folder = Path(str(multi["folder"]))
    missing = Path(str(multi["root"])) / "not-yet"  # planned against an empty environment: nothing is made
    planned = invoke("plan", "--profile", str(folder), "--venv", str(missing), "--json", extra=_env(multi, "12.1"))
    assert planned.returncode == 0, planned.stderr
    doc = json.loads(planned.stdout)
    assert errors(doc, SCHEMA) == []
    assert doc["variant"]["name"] == "cu121" and doc["lock"] == str(folder / "cu121" / "requirements.txt")
    assert doc["variant"]["why"].startswith("a driver with CUDA 12.1, platform linux")
    assert doc["variant"]["why"].endswith("the highest CUDA variant it supports (cuda 12.1)")
    assert doc["variant"]["lock_folder"] == str(folder / "cu121")
    assert {a["name"]: a["locked"] for a in doc["phases"]["base"]}["torch-like"] == "2.4.0+cu121"
    assert not missing.exists()

    forced = invoke("plan", "--profile", str(folder), "--venv", str(missing), "--json", "--variant", "cpu",
                    extra=_env(multi, "12.4"))
    assert forced.returncode == 0, forced.stderr
    doc = json.loads(forced.stdout)
    assert doc["variant"]["name"] == "cpu" and doc["variant"]["why"].startswith("--variant cpu (this machine: "
                                                                               "a driver with CUDA 12.4")
    assert errors(doc, SCHEMA) == []


def test_the_receipt_records_the_variant_and_the_reason(multi: dict[str, object],
                                                        synced121: dict[str, object]) -> None:
    receipt = synced121["receipt"]
    assert isinstance(receipt, dict)
    folder = Path(str(multi["folder"]))
    assert receipt["variant"]["name"] == "cu121" and "a driver with CUDA 12.1" in receipt["variant"]["why"]
    assert receipt["variant"]["lock_folder"] == str(folder / "cu121")
    assert receipt["lock"]["path"] == str(folder / "cu121" / "requirements.txt")
    assert freeze(Path(str(synced121["venv"])))["torch-like"] == "2.4.0+cu121"


def test_verify_judges_against_the_chosen_variants_lock(multi: dict[str, object],
                                                        synced121: dict[str, object]) -> None:
    folder, venv = Path(str(multi["folder"])), str(synced121["venv"])
    ok = invoke("verify", "--profile", str(folder), "--venv", venv, extra=_env(multi, "12.1"))
    assert ok.returncode == 0, ok.stderr
    assert f"twin of the lock {folder / 'cu121' / 'requirements.txt'}" in ok.stderr
    # the same venv on a 12.4 host: the cu124 lock is the one to match, and it does not
    newer = invoke("verify", "--profile", str(folder), "--venv", venv, extra=_env(multi, "12.4"))
    assert newer.returncode == 1 and "Traceback" not in newer.stderr
    assert "variant cu124 of profile 'multi'" in newer.stderr
    assert "NOT the lock's twin" in newer.stderr and str(folder / "cu124" / "requirements.txt") in newer.stderr
    assert "differs: torch-like: lock 2.4.0+cu124, target 2.4.0+cu121" in newer.stderr
    forced = invoke("verify", "--profile", str(folder), "--venv", venv, "--variant", "cu121",
                    extra=_env(multi, "12.4"))
    assert forced.returncode == 0, forced.stderr
    assert "variant cu121 of profile 'multi': --variant cu121" in forced.stderr


def test_diff_profile_compares_the_chosen_variants_lock(multi: dict[str, object],
                                                        synced121: dict[str, object]) -> None:
    folder, venv = str(multi["folder"]), str(synced121["venv"])
    same = invoke("diff", folder, venv, extra=_env(multi, "12.1"))
    assert same.returncode == 0, same.stdout + same.stderr
    assert "variant cu121 of profile 'multi'" in same.stderr and "identical" in same.stdout
    other = invoke("diff", folder, venv, "--json", extra=_env(multi, "12.4"))
    assert other.returncode == 1, other.stderr
    changed = {c["name"]: (c["a"], c["b"]) for c in json.loads(other.stdout)["changed"]}
    assert changed["torch-like"] == ("2.4.0+cu124", "2.4.0+cu121")
    forced = invoke("diff", venv, folder, "--variant", "cu121", extra=_env(multi, "12.4"))
    assert forced.returncode == 0, forced.stdout + forced.stderr
    lock = str(Path(folder) / "cu121" / "requirements.txt")
    stray = invoke("diff", lock, venv, "--variant", "cu121", extra=_env(multi, "12.1"))
    assert stray.returncode == 2 and "neither" in stray.stderr and "fix: drop --variant" in stray.stderr


def test_export_writes_one_variants_lock_or_names_variant(multi: dict[str, object], synced121: dict[str, object],
                                                          tmp_path: Path) -> None:
    folder = str(multi["folder"])
    refused = invoke("export", "--profile", folder, extra=_env(multi, "12.1"))
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "has variants, each with its own lock (fix: --variant one of cpu, cu121, cu124" in refused.stderr
    unknown = invoke("export", "--profile", folder, "--variant", "cu999", extra=_env(multi, "12.1"))
    assert unknown.returncode != 0 and "has no variant 'cu999'" in unknown.stderr
    docs = {}
    for variant in ("cu121", "cu124"):
        out = tmp_path / f"pylock.{variant}.toml"
        done = invoke("export", "--profile", folder, "--variant", variant, "--out", str(out),
                      extra=_env(multi, "12.1"))
        assert done.returncode == 0, done.stderr
        docs[variant] = tomllib.loads(out.read_text())
        assert f"--variant {variant}" in out.read_text()
    for variant, doc in docs.items():
        versions = {p["name"]: p["version"] for p in doc["packages"]}
        assert versions["torch-like"] == f"2.4.0+{variant}" and doc["tool"]["stacksync"]["variant"] == variant
    # the cu121 build in the wheelhouse is cu121's (its key's base is torch-like 2.4.0+cu121), never cu124's
    built = {v: [w for p in d["packages"] if p["name"] == "flash-attn-like" for w in p.get("wheels", [])
                 if "path" in w] for v, d in docs.items()}
    assert len(built["cu121"]) == 1 and built["cu124"] == []


def test_a_wheel_built_for_one_variant_is_never_served_to_another(multi: dict[str, object],
                                                                  synced121: dict[str, object]) -> None:
    root, folder, house = Path(str(multi["root"])), str(multi["folder"]), Path(str(multi["house"]))
    [first] = wheelhouse.entries(house)
    assert first.key["base"]["torch-like"] == "2.4.0+cu121" and first.key["cuda"] == "12.1"
    assert record(Path(str(synced121["venv"])))["key_digest"] == first.digest
    venv124 = root / "venv124"
    done = invoke("sync", "--profile", folder, "--venv", str(venv124), "--yes", extra=_env(multi, "12.4"))
    assert done.returncode == 0, done.stderr
    keys = {e.key["base"]["torch-like"]: e for e in wheelhouse.entries(house)}
    assert set(keys) == {"2.4.0+cu121", "2.4.0+cu124"}  # cu124 built its own; the cu121 wheel was not taken
    assert keys["2.4.0+cu124"].key["cuda"] == "12.4"
    rec = record(venv124)
    assert rec["key_digest"] == keys["2.4.0+cu124"].digest and rec["source"]["kind"] == "build"  # type: ignore[index]
    # a second cu121 target takes the cu121 wheel from the shared wheelhouse: no build
    again = root / "venv121b"
    done = invoke("sync", "--profile", folder, "--venv", str(again), "--yes", extra=_env(multi, "12.1"))
    assert done.returncode == 0, done.stderr
    rec = record(again)
    assert rec["key_digest"] == keys["2.4.0+cu121"].digest and rec["source"]["kind"] == "wheelhouse"  # type: ignore[index]
    assert len(wheelhouse.entries(house)) == 2


def test_published_wheels_are_served_by_key_to_their_own_variant(multi: dict[str, object],
                                                                  synced121: dict[str, object], tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    folder, house = Path(str(multi["folder"])), Path(str(multi["house"]))
    keys = {e.key["base"]["torch-like"]: e for e in wheelhouse.entries(house)}
    assert set(keys) == {"2.4.0+cu121", "2.4.0+cu124"}  # after the test above
    toml = (folder / "stack.toml").read_text()
    with team_server(tmp_path, monkeypatch) as team:
        try:
            (folder / "stack.toml").write_text(
                f'team_index = "http://${{{TEAM_USER}}}:${{{TEAM_TOKEN}}}@127.0.0.1:{team.port}/simple/"\n' + toml)
            result = publish(str(folder), wheelhouse_dir=str(house),
                             environ={**os.environ, **_env(multi, "12.4")})
            assert sorted(e.wheel.name for e in result.uploaded) == sorted(e.wheel.name for e in keys.values())
            # a cu124 target with an empty wheelhouse takes cu124's wheel from the team index, by its key
            venv = Path(str(multi["root"])) / "venv124-team"
            done = invoke("sync", "--profile", str(folder), "--venv", str(venv), "--yes",
                          extra={**_env(multi, "12.4"), "STACKSYNC_WHEELHOUSE": str(tmp_path / "empty-house")})
            assert done.returncode == 0, done.stderr
        finally:
            (folder / "stack.toml").write_text(toml)
    rec = record(venv)
    assert rec["source"]["kind"] == "team-index" and rec["key_digest"] == keys["2.4.0+cu124"].digest  # type: ignore[index]
    assert freeze(venv)["torch-like"] == "2.4.0+cu124"


def test_reproduce_proves_the_variant_the_driver_picks(multi: dict[str, object],
                                                       synced121: dict[str, object]) -> None:
    root = Path(str(multi["root"]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("STACKSYNC_")}
    env.update({**_env(multi, "12.4"), "STACKSYNC_LOCKS_DIR": str(root / "locks"),
                "STACKSYNC_CACHE_DIR": str(root / "nox-cache"), "STACKSYNC_REPORTS_DIR": str(root / "reports")})
    done = subprocess.run([sys.executable, "-m", "nox", "-f", str(ROOT / "noxfile.py"), "--envdir",
                           str(root / "nox"), "--no-color", "-s", "reproduce"], capture_output=True, text=True,
                          env=env, stdin=subprocess.DEVNULL, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((root / "reports" / "reproduce-multi.json").read_text())
    assert report["verdict"] == "twin" and report["variant"]["name"] == "cu124"
    assert report["lock"]["path"].endswith("multi/cu124/requirements.txt")
    assert "variant: cu124 (a driver with CUDA 12.4" in (root / "reports" / "reproduce-multi.txt").read_text()
