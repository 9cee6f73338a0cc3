"""The one answer to "can this target install this wheel" (stacksync.env.tags), from a probe snapshot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from packaging.tags import Tag

from stacksync.env.environment import Snapshot
from stacksync.env.tags import supported_tags, wheel_fits


def _snapshot(version: str = "3.11.9", *, glibc: str | None = "2.36", machine: str = "x86_64",
              soabi: str = "cpython-311-x86_64-linux-gnu", platform_tag: str = "linux-x86_64") -> Snapshot:
    raw: dict[str, Any] = {"python": {"soabi": soabi, "platform_tag": platform_tag}}
    return Snapshot(python=Path("/t/bin/python"), version=version,
                    marker_environment={"sys_platform": "linux", "platform_machine": machine},
                    distributions={}, platform={"system": "Linux", "machine": machine, "glibc": glibc}, raw=raw)


def test_glibc_target_takes_manylinux_up_to_its_glibc() -> None:
    tags = frozenset(supported_tags(_snapshot(glibc="2.28")))
    assert wheel_fits("torch-2.4.0-cp311-cp311-manylinux_2_28_x86_64.whl", tags)
    assert wheel_fits("torch-2.4.0-cp311-cp311-manylinux2014_x86_64.whl", tags)
    assert wheel_fits("numpy-2.0-cp311-cp311-manylinux1_x86_64.whl", tags)
    assert wheel_fits("x-1-cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", tags)
    assert wheel_fits("six-1.16-py2.py3-none-any.whl", tags)
    assert wheel_fits("x-1-cp311-cp311-linux_x86_64.whl", tags)  # a local build
    assert not wheel_fits("torch-2.4.0-cp311-cp311-manylinux_2_34_x86_64.whl", tags)  # newer glibc
    assert not wheel_fits("torch-2.4.0-cp310-cp310-manylinux_2_17_x86_64.whl", tags)  # other Python
    assert not wheel_fits("torch-2.4.0-cp311-cp311-manylinux_2_17_aarch64.whl", tags)  # other arch
    assert not wheel_fits("torch-2.4.0-cp311-cp311-musllinux_1_2_x86_64.whl", tags)  # glibc target
    assert not wheel_fits("torch-2.4.0.tar.gz", tags)


def test_order_is_most_specific_first() -> None:
    tags = supported_tags(_snapshot(glibc="2.17"))
    assert tags[0] == Tag("cp311", "cp311", "manylinux_2_17_x86_64")
    assert tags.index(Tag("cp311", "abi3", "manylinux_2_17_x86_64")) < tags.index(Tag("py3", "none", "any"))


def test_free_threaded_abi_from_soabi() -> None:
    tags = frozenset(supported_tags(_snapshot("3.13.1", soabi="cpython-313t-x86_64-linux-gnu")))
    assert wheel_fits("x-1-cp313-cp313t-manylinux_2_17_x86_64.whl", tags)
    assert not wheel_fits("x-1-cp313-cp313-manylinux_2_17_x86_64.whl", tags)


def test_aarch64_has_no_manylinux1_alias() -> None:
    tags = frozenset(supported_tags(_snapshot(machine="aarch64", platform_tag="linux-aarch64",
                                              soabi="cpython-311-aarch64-linux-gnu")))
    assert wheel_fits("x-1-cp311-cp311-manylinux2014_aarch64.whl", tags)
    assert not wheel_fits("x-1-cp311-cp311-manylinux1_aarch64.whl", tags)  # never defined for aarch64
    assert not wheel_fits("x-1-cp311-cp311-manylinux_2_17_x86_64.whl", tags)


def test_no_glibc_falls_back_to_this_hosts_platform_tags() -> None:
    """A musl (or unknown libc) target is an interpreter on this host: packaging reads the host's libc,
    musllinux included, instead of the old hand-written check that refused every musllinux wheel."""
    import packaging.tags

    host = [p for p in packaging.tags.platform_tags() if p.endswith("_x86_64")]
    if not host:
        pytest.skip("this host is not x86_64: the fallback keeps only the target's architecture")
    tags = frozenset(supported_tags(_snapshot(glibc=None)))
    assert wheel_fits(f"x-1-cp311-cp311-{host[0]}.whl", tags)
