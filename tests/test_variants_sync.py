"""End to end on local indexes: a profile with cpu / cu121 / cu124 variants of a stand-in torch (local labels
on a main index and two "PyTorch" indexes), compiled into one lock per variant, and synced to the variant
the (fake) driver picks at the probe seam (``STACKSYNC_LIBCUDA``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from clihelp import invoke
from pkgfactory import IndexServer
from stackprofile import freeze, stand_in_profile, stop_all, variant_auth, variant_indexes, variant_url, variants_toml
from test_doctor import fake_libcuda  # noqa: F401  (the fixture: a gcc-built libcuda.so reporting a CUDA version)

from stacksync.lock.lockfile import parse


@pytest.fixture
def indexes(stack_packages: Path, tmp_path: Path) -> Iterator[dict[str, IndexServer]]:
    """main: the stand-in stack with torch-like 2.4.0+cpu only; cu121 / cu124: that build alone."""
    servers = variant_indexes(stack_packages, tmp_path)
    yield servers
    stop_all(servers)


@pytest.mark.slow
def test_compile_every_variant_and_sync_the_one_the_driver_picks(
        indexes: dict[str, IndexServer], tmp_path: Path, fake_libcuda: Callable[..., Path]) -> None:  # noqa: F811
    folder = stand_in_profile(tmp_path / "locks" / "multi", "torch-like==2.4.0\nplain-b\n",
                              variant_url(indexes["main"]), extra=variants_toml(indexes))
    auth = variant_auth(indexes)
    compiled = invoke("compile", "--profile", str(folder), extra=auth)
    assert compiled.returncode == 0, compiled.stderr
    for variant in ("cpu", "cu121", "cu124"):
        lock = parse(folder / variant / "requirements.txt", lock=True)
        assert {p.name: p.version for p in lock.pins}["torch-like"] == f"2.4.0+{variant}"
        assert f"multi/{variant}: wrote" in compiled.stderr
    assert not (folder / "requirements.txt").exists()
    checked = invoke("compile", "--profile", str(folder), "--check", extra=auth)
    assert checked.returncode == 0 and checked.stderr.count("lock is fresh") == 3, checked.stderr

    venv = tmp_path / "venv"
    no_smi = {"STACKSYNC_NVIDIA_SMI": ""}
    driver = {"12.4": str(fake_libcuda(12040)), "12.1": str(fake_libcuda(12010)),
              None: str(tmp_path / "no-libcuda.so.1")}
    synced = invoke("sync", "--profile", str(folder), "--venv", str(venv), "--yes",
                    extra={**auth, **no_smi, "STACKSYNC_LIBCUDA": driver["12.4"]})
    assert synced.returncode == 0, synced.stderr
    assert "variant cu124 of profile 'multi': a driver with CUDA 12.4" in synced.stderr
    assert freeze(venv)["torch-like"] == "2.4.0+cu124"

    planned = invoke("plan", "--profile", str(folder), "--venv", str(venv),
                     extra={**auth, **no_smi, "STACKSYNC_LIBCUDA": driver["12.1"]})
    assert planned.returncode == 0, planned.stderr
    assert "variant cu121 of profile 'multi'" in planned.stderr and "variant cu121" in planned.stdout
    assert "2.4.0+cu121" in planned.stdout

    overridden = invoke("plan", "--profile", str(folder), "--venv", str(venv), "--variant", "cu121",
                        extra={**auth, **no_smi, "STACKSYNC_LIBCUDA": driver[None]})
    assert overridden.returncode == 0 and "variant cu121 of profile 'multi': --variant cu121" in overridden.stderr

    cpu = invoke("sync", "--profile", str(folder), "--venv", str(venv), "--yes",
                 extra={**auth, **no_smi, "STACKSYNC_LIBCUDA": driver[None]})
    assert cpu.returncode == 0, cpu.stderr
    assert "variant cpu of profile 'multi': no NVIDIA driver" in cpu.stderr
    assert freeze(venv)["torch-like"] == "2.4.0+cpu"

    unknown = invoke("plan", "--profile", str(folder), "--venv", str(venv), "--variant", "cu999",
                     extra={**auth, **no_smi, "STACKSYNC_LIBCUDA": driver[None]})
    assert unknown.returncode != 0 and "Traceback" not in unknown.stderr
    assert "no variant 'cu999' (fix: --variant one of cpu, cu121, cu124)" in unknown.stderr
