"""The deferred phase's pure parts (stacksync.sync.deferred): where a wheel comes from (a wheelhouse hit
by build key before any build), how a source is described and recorded, and the build-record state
file. No venv, no pip: a state holds only what these functions read."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pkgfactory
import pytest
from packaging.utils import canonicalize_name

from stacksync.build import wheelhouse
from stacksync.build.buildkey import BuildKey
from stacksync.lock import wheelrecord
from stacksync.sync import deferred, wheelsource
from stacksync.sync.statefile import LocalStateError


def _key(torch: str = "2.4.0") -> BuildKey:
    return BuildKey(package="flash-attn-like", version="2.8.0", source_sha256=("sha256:" + "b" * 64,),
                    base=(("torch-like", torch),), cuda=None, cxx11_abi=None, cuda_from=None, python="cp311",
                    platform="linux_x86_64", glibc="2.36", build_env=())


def test_source_json_and_description_are_redacted(tmp_path: Path) -> None:
    source = deferred.Source("team-index", tmp_path / "f-2.8.0-1sk9c1f-cp311-cp311-linux_x86_64.whl", "ab" * 32,
                             "https://user:s3cret@team.example/simple/", _key())
    doc = source.to_json()
    assert doc["kind"] == "team-index" and doc["key"] == _key().digest and "s3cret" not in doc["from"]
    text = source.describe()
    assert text.startswith("team index wheel f-2.8.0") and f"(key {_key().short})" in text and "s3cret" not in text
    assert "build from the sdist" in deferred.Source("build", tmp_path / "f.tar.gz", "", "https://i/", None).describe()


def test_choose_takes_the_wheelhouse_wheel_of_the_exact_key(tmp_path: Path) -> None:
    root = tmp_path / "house"
    wheel = pkgfactory.build_wheel(tmp_path / "built", "flash-attn-like", "2.8.0",
                                   files={"flash_attn_like/__init__.py": ""}, tag="cp311-cp311-linux_x86_64")
    entry = wheelhouse.add(root, wheel, _key(), profile="p", source="built")
    state = SimpleNamespace(opts=SimpleNamespace(wheelhouse=str(root)),
                            profile=SimpleNamespace(wheelhouse=None, folder=tmp_path, team_index=None, name="p"))
    d = SimpleNamespace(name=canonicalize_name("flash-attn-like"), wheels=None, untrusted="refuse")
    # Not recorded in the profile's wheels.txt: refused (untrusted = "refuse"), whatever its sidecar says.
    with pytest.raises(wheelsource.UntrustedWheel, match="records no wheel for key"):
        deferred.choose(state, d, None, _key())  # type: ignore[arg-type]  # reads only these fields
    wheelrecord.record(tmp_path, "p", [wheelrecord.WheelRecord("flash-attn-like", "2.8.0", _key().digest,
                                                               entry.sha256, entry.wheel.name)])
    source = deferred.choose(state, d, None, _key())  # type: ignore[arg-type]
    assert (source.kind, source.path, source.sha256) == ("wheelhouse", entry.wheel, entry.sha256)
    assert source.key == _key()
    assert wheelsource.from_wheelhouse(state, d, _key("2.3.0")) is None  # type: ignore[arg-type]  # another torch


def test_write_state_records_and_keeps_other_packages(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = deferred.write_state(tmp_path, "flash-attn", "2.8.0.post2", {"torch": "2.4.0"},
                                    key=_key().to_json(), source={"kind": "wheelhouse"})
        deferred.write_state(tmp_path, "other", "1.0", {})
    finally:
        os.umask(old)
    data = json.loads(path.read_text(encoding="utf-8"))
    record = data["deferred"]["flash-attn"]
    assert record["version"] == "2.8.0.post2" and record["built_against"] == {"torch": "2.4.0"}
    assert record["key_digest"] == _key().digest and record["source"] == {"kind": "wheelhouse"}
    assert record["built_at"].endswith("Z") and set(data["deferred"]) == {"flash-attn", "other"}
    assert "key" not in data["deferred"]["other"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # the umask's mode, not mkstemp's 0600
    assert sorted(p.name for p in tmp_path.iterdir()) == [deferred.STATE_FILE]


def test_write_state_keeps_an_unreadable_file_and_says_so(tmp_path: Path) -> None:
    """Rewriting it from {} would drop every other deferred package's build record (issue 20)."""
    (tmp_path / deferred.STATE_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(LocalStateError, match="not a stacksync state file"):
        deferred.write_state(tmp_path, "flash-attn", "2.8.0", {"torch": "2.4.0"})
    assert (tmp_path / deferred.STATE_FILE).read_text(encoding="utf-8") == "{not json"
