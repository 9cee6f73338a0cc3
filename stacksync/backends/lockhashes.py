"""The ``--hash`` options of a resolved lock body: every file of each pinned version, sha256 as the
index publishes it (:mod:`stacksync.backends.indexapi`), and the sha256 of direct-URL pins."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name

from stacksync.backends import indexapi
from stacksync.lock.lockfile import file_sha256, parse_text
from stacksync.lock.profile import IndexConfig

__all__ = ["add_hashes", "add_index_hashes", "pinned_versions", "strip_hashes", "url_hashes"]


def _requirement_name(line: str) -> NormalizedName | None:
    """The project name of a pip-compile requirement line, ``None`` for comments / options / blanks."""
    if not line or line[0] in " \t#-":
        return None
    body = line.split(" \\", 1)[0].strip()
    try:
        return canonicalize_name(Requirement(body).name)
    except InvalidRequirement:
        return None


def pinned_versions(body: str) -> dict[str, str]:
    """name -> exact version of every pin in a pip-compile body (``packaging`` parses each line)."""
    parsed = parse_text(body, "<pip-compile output>", lock=True, follow_includes=False)
    return {p.name: p.version for p in parsed.pins if p.version is not None}


def add_hashes(body: str, hashes: Mapping[NormalizedName, Sequence[str]]) -> str:
    """Insert `` \\\n    --hash=sha256:...`` after each requirement line, as pip-compile's writer does
    (sorted, one per line, before the ``# via`` lines)."""
    out: list[str] = []
    for line in body.splitlines():
        name = _requirement_name(line)
        if name is not None and hashes.get(name):
            line = line.rstrip() + "".join(f" \\\n    --hash={h}" for h in sorted(set(hashes[name])))
        out.append(line)
    return "\n".join(out) + "\n"


def strip_hashes(body: str) -> str:
    """``body`` without its ``--hash`` options (and the line continuations that carried them)."""
    out: list[str] = []
    for line in body.splitlines():
        if line.strip().startswith("--hash="):
            if out and out[-1].rstrip().endswith("\\"):
                out[-1] = out[-1].rstrip()[:-1].rstrip()
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def add_index_hashes(body: str, index: IndexConfig | object, *, python_version: str) -> str:
    """:func:`add_hashes` with every file of each pinned version, sha256 as the index publishes it
    (downloaded and hashed only when the index gives none)."""
    files = indexapi.files_for_pins(index, pinned_versions(body), python_version=python_version)
    hashes = {name: indexapi.sha256_options(fs) for name, fs in files.items()}
    return add_hashes(body, {**hashes, **url_hashes(body)})


def url_hashes(body: str) -> dict[NormalizedName, list[str]]:
    """sha256 of each direct-URL pin that is not VCS (``name @ https://.../x-1.0-...whl``, a bare
    wheel URL in requirements.in): the URL's ``#sha256=`` when it has one, else the file hashed (read
    for ``file:``, downloaded otherwise), as ``pip-compile --generate-hashes`` does."""
    from packaging.version import Version

    out: dict[NormalizedName, list[str]] = {}
    for pin in parse_text(body, "<pip-compile output>", follow_includes=False).pins:
        if pin.url is None or pin.is_vcs or pin.hashes:
            continue
        url, _, fragment = pin.url.partition("#")
        given = next((v for k, _, v in (p.partition("=") for p in fragment.split("&")) if k == "sha256"), None)
        if given:
            out[pin.name] = [f"sha256:{given.lower()}"]
        elif url.startswith("file:"):
            out[pin.name] = [f"sha256:{file_sha256(Path(unquote(urlsplit(url).path)))}"]
        else:
            file = indexapi.IndexFile(filename=url.rsplit("/", 1)[-1], url=url, sha256=None, requires_python=None,
                                      yanked=False, name=pin.name, version=Version(pin.file_version or "0"),
                                      index_url="")
            out[pin.name] = [f"sha256:{indexapi.hash_file_url(file)}"]
    return out
