"""Prebuilt wheels from elsewhere (flash-attn's GitHub releases), pinned like everything else.

``[deferred.flash-attn] wheels = "URL template"`` names where a wheel for the locked base may be
found. :func:`fill` makes the URL from the lock (never from the host), ``invoke compile`` fetches it
once and writes its sha256 into ``deferred.txt`` beside the sdist's (and a ``# prebuilt: URL``
comment), and the sync downloads it again only into its cache, installs it only if its sha256 is one
the lock lists, and otherwise falls back to the wheelhouse / team index / build (``prebuilt =
"prefer"``, the default) or refuses (``"require"``). flash-attn's own setup.py downloads such a wheel
with no hash check; this never does.

Template variables (flash-attn's release naming:
``flash_attn-{version}+cu{cuda_major}torch{torch_mm}cxx11abi{abi}-cp{py}-cp{py}-linux_x86_64.whl``):

``version``        the deferred pin's version                  ``2.8.0.post2``
``torch_version``  the locked torch (first base it is built on)  ``2.4.0+cu121``
``torch_mm``       its major.minor                             ``2.4``
``cuda_major``     from its local label ``+cuXYZ``             ``12``
``cuda_mm``        the label's digits                          ``121``
``abi``            ``TRUE`` from torch 2.7 on (PyTorch's pip wheels use the CXX11 ABI since then),
                   else ``FALSE``
``py``             the profile's Python without the dot        ``311``

``wheel_vars = { abi = "TRUE", cuda_major = "12" }`` gives any of them as is (a torch without a
``+cu`` label needs ``cuda_major``).
"""

from __future__ import annotations

import re
import string
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

from packaging.version import InvalidVersion, Version

from stacksync.core.errors import FetchError, IndexUnavailable, ProfileError
from stacksync.core.redact import redact

__all__ = ["template_vars", "fill", "fetch", "Missing"]

_CUDA_LABEL = re.compile(r"^cu(\d+)$")


class Missing(IndexUnavailable):
    """The prebuilt URL has no file (404) or cannot be reached."""


def template_vars(pin_version: str, base_version: str | None, python_xy: str,
                  overrides: Mapping[str, str]) -> dict[str, str]:
    """The values :func:`fill` substitutes (see the module docstring); ``overrides`` win."""
    out: dict[str, str] = {"version": pin_version, "py": python_xy.replace(".", "")}
    if base_version:
        out["torch_version"] = base_version
        try:
            v = Version(base_version)
        except InvalidVersion:
            v = None
        if v is not None:
            out["torch_mm"] = f"{v.major}.{v.minor}"
            out["abi"] = "TRUE" if (v.major, v.minor) >= (2, 7) else "FALSE"
            label = _CUDA_LABEL.match(v.local or "")
            if label:
                digits = label.group(1)
                out["cuda_mm"] = digits
                out["cuda_major"] = digits[:-1] if len(digits) > 1 else digits
    out.update(overrides)
    return out


def fill(template: str, values: Mapping[str, str], *, source: str, key: str) -> str:
    """``template`` with ``{name}`` replaced; an unknown name is a :class:`ProfileError` with its fix."""
    names = [f for _, f, _, _ in string.Formatter().parse(template) if f]
    missing = [n for n in names if n not in values]
    if missing:
        raise ProfileError(source, key, f"cannot fill {{{missing[0]}}} from the lock",
                           f'give it in wheel_vars, e.g. wheel_vars = {{ {missing[0]} = "..." }}')
    return template.format_map(dict(values))


def file_name(url: str) -> str:
    return urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])


def fetch(url: str, dest_dir: Path, wanted: set[str] | None) -> tuple[Path, str]:
    """Download ``url`` into ``dest_dir`` under its file name: written to a temporary name, hashed,
    then renamed (:func:`stacksync.backends.indexapi.download`: the index client's TLS, PIP_CERT, timeouts and
    one-line errors). With ``wanted`` (hex sha256s the lock lists), any other content raises
    :class:`FetchError` and leaves nothing behind; a file already there with a wanted hash is reused.
    A 404 or an unreachable host raises :class:`Missing`. Returns (path, hex sha256)."""
    from stacksync.backends import indexapi  # here: the index client (urllib, ssl) is not needed on the no-op path
    from stacksync.lock.lockfile import file_sha256

    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / file_name(url)
    shown = redact(url)
    if wanted and target.is_file():
        have = file_sha256(target)
        if have in wanted:
            return target, have

    def check(got: str) -> None:
        if wanted is not None and got not in wanted:
            raise FetchError(f"prebuilt wheel {shown}: sha256 {got} is not one the lock lists "
                             f"({', '.join(sorted(wanted))}); refusing it, nothing was installed (fix: find out "
                             "why the file changed; if it is legitimate, invoke compile again)")

    bare, auth = indexapi.split_auth(url)  # basic auth from the URL's userinfo, never shown
    try:
        got = indexapi.download(bare, target, auth=auth, shown=url, check=check)
    except FetchError:
        raise
    except IndexUnavailable as exc:  # HTTP 404 / 401 / unreachable / stalled: fall back or refuse, per profile
        raise Missing(f"prebuilt wheel {shown}: {exc}") from None
    return target, got


def comment(url: str, sha256: str) -> str:
    """The ``deferred.txt`` comment that records a pinned prebuilt wheel (credential-free)."""
    from stacksync.core.redact import strip_credentials

    return f"prebuilt: {strip_credentials(url)} sha256:{sha256}"


def pinned_before(old_text: str | None, url: str) -> str | None:
    """The sha256 an earlier compile pinned for ``url`` (its ``# prebuilt:`` comment), so that a
    compile fetches each prebuilt wheel once, not on every run."""
    from stacksync.core.redact import strip_credentials

    want = f"prebuilt: {strip_credentials(url)} sha256:"
    for line in (old_text or "").splitlines():
        text = line.strip().lstrip("#").strip()
        if text.startswith(want):
            digest = text[len(want):].strip()
            if re.fullmatch(r"[0-9a-f]{64}", digest):
                return digest
    return None


def pin_for_compile(stack_toml: Path, name: str, template: str, mode: str, values: Mapping[str, str],
                    old_text: str | None, workdir: Path) -> tuple[str, str] | None:
    """(URL, sha256) of the prebuilt wheel for the locked base, fetched once (or taken from the
    earlier ``deferred.txt``); ``None`` when it is missing and ``mode`` is ``prefer``."""
    from stacksync.core import console

    url = fill(template, values, source=str(stack_toml), key=f"deferred.{name}.wheels")
    before = pinned_before(old_text, url)
    if before is not None:
        return url, before
    try:
        _, digest = fetch(url, workdir, None)
    except Missing as exc:
        if mode == "require":
            raise FetchError(f"{stack_toml}: deferred.{name}: {exc} (fix: check the wheels template, or set "
                             'prebuilt = "prefer" to build when there is none)') from None
        console.warn(f"compile: deferred.{name}: {exc}; not pinned (the sync builds it)")
        return None
    return url, digest
