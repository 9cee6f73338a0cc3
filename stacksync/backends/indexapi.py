"""A small client for the simple repository API (PEP 503 HTML, PEP 691 JSON): list a project's files
with the sha256 the index publishes, and download one file with its hash verified.

Why not let pip do it: hashing a lock with ``pip-compile --generate-hashes`` downloads every file of
every pin (24.5 GB for the gpu stack on an index without PEP 658, measured), while the simple
API already publishes each file's sha256. Deferred packages (flash-attn) cannot even be downloaded by
pip without building them. This module reads the pages instead: one small request per project.

Public API (stable; the sync feature uses it to fetch deferred sdists):

* :func:`project_files` ``(index, name) -> list[IndexFile]``: every file of ``name`` on the index URL
  (and the extra index URLs), with absolute URL, sha256 (``None`` when the index publishes none),
  ``requires_python``, ``yanked`` and the version parsed from the file name.
* :func:`fetch_file` ``(file, dest_dir) -> Path``: download to a temporary name, verify the sha256,
  rename. A mismatch raises :class:`HashMismatch` and leaves nothing behind.
* :func:`files_for_pins` ``(index, pins) -> dict``: :func:`project_files` for many projects at once
  (concurrent requests), filtered to the pinned versions.

Credentials: a URL's ``user:password@`` is taken out of the URL and sent as a basic-auth header; every
message shows URLs redacted. Errors are :class:`~stacksync.core.errors.IndexUnavailable` subclasses whose
text is one line with the fix.

Transport (proxies, trust store, client certificate, netrc / keyring credentials) is pip's, read by
:mod:`stacksync.backends.transport`.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from stacksync.backends.transport import opener, stored_credentials, transport_settings
from stacksync.core.errors import IndexUnavailable
from stacksync.core.fs import atomic_file
from stacksync.core.redact import redact, register_secret, register_url, strip_credentials
from stacksync.core.runner import DEFAULT_INDEX_TIMEOUT, INDEX_TIMEOUT_ENV, timeout_from_env
from stacksync.lock.lockfile import file_sha256

__all__ = ["IndexFile", "IndexUnavailable", "HashMismatch", "ProjectNotFound", "project_files", "fetch_file",
           "files_for_pins", "hash_file_url", "split_auth", "ACCEPT"]

ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
TIMEOUT_ENV, DEFAULT_TIMEOUT = INDEX_TIMEOUT_ENV, DEFAULT_INDEX_TIMEOUT
WORKERS = 12
_CHUNK = 1 << 20
# Archive types pip accepts from an index (pip's SUPPORTED_EXTENSIONS); .egg / .exe are ignored as pip does.
_SDIST_EXTS = (".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tar", ".tgz", ".tbz", ".txz", ".tlz")


class ProjectNotFound(IndexUnavailable):
    """No index knows the project (404 everywhere)."""


class HashMismatch(IndexUnavailable):
    """A downloaded file's sha256 differs from the one the index (or the lock) gives."""


@dataclass(frozen=True)
class IndexFile:
    """One file of a project as the index lists it. ``url`` is absolute and credential-free (auth is
    re-attached from :attr:`index_url` when fetching); ``sha256`` is hex or ``None``."""

    filename: str
    url: str
    sha256: str | None
    requires_python: str | None
    yanked: bool
    name: NormalizedName
    version: Version
    index_url: str  # the (credential-holding) index URL it was listed by; never shown unredacted

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")

    def hash_option(self) -> str:
        if self.sha256 is None:
            raise ValueError(f"{self.filename} has no published sha256")
        return f"sha256:{self.sha256}"


# --- URLs and HTTP ---------------------------------------------------------------------------------

def timeout() -> float:
    """Seconds per request and per read: ``$STACKSYNC_INDEX_TIMEOUT`` (read on each call), else 30."""
    return timeout_from_env(TIMEOUT_ENV, DEFAULT_TIMEOUT)


def _basic(user: str, password: str) -> str:
    register_secret(password)
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def split_auth(url: str) -> tuple[str, str | None]:
    """``http://u:p@host/x`` -> (``http://host/x``, ``Basic ...``); a URL without userinfo gets the
    credentials netrc or keyring hold for its host (:func:`stored_credentials`), as pip does."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        found = stored_credentials(url)
        return url, (_basic(*found) if found else None)
    register_url(url)
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    return strip_credentials(url), _basic(user, password)


def _same_host(a: str, b: str) -> bool:
    pa, pb = urllib.parse.urlsplit(a), urllib.parse.urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)


#: HTTP answers worth asking again (a proxy or an index restarting), as pip's retry policy does
_RETRY_CODES = frozenset({500, 502, 503, 504})


def retries(environ: Mapping[str, str] | None = None) -> int:
    """How many times a request that timed out, was reset or got a 5xx is asked again: pip's
    ``PIP_RETRIES`` when it is a whole number, else 2 (the waits between tries: 0.5 s, 1 s, 2 s...)."""
    value = (os.environ if environ is None else environ).get("PIP_RETRIES", "").strip()
    return max(0, int(value)) if value.isdigit() else 2


def _transient(exc: BaseException) -> bool:
    """A failure another try may not meet: a timeout, a connection reset or cut, a 5xx (not a refused
    connection, a name that does not resolve, a 4xx: those are answers)."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code in _RETRY_CODES
    reason = getattr(exc, "reason", exc)
    return isinstance(reason, (TimeoutError, ConnectionResetError, ConnectionAbortedError))


def _open(url: str, auth: str | None, *, accept: str | None, shown: str):  # type: ignore[no-untyped-def]
    """urlopen with the auth header (only sent to the index's own host), :func:`retries` more tries of a
    transient failure (a mirror that stalls once must not fail a whole compile), and one-line errors."""
    headers = {"User-Agent": "stacksync"}
    if accept:
        headers["Accept"] = accept
    if auth:
        headers["Authorization"] = auth
    request = urllib.request.Request(url, headers=headers)
    tries = 1 + retries()
    for attempt in range(tries):
        try:
            return opener(transport_settings()).open(request, timeout=timeout())
        except (urllib.error.URLError, OSError) as exc:
            if attempt + 1 < tries and _transient(exc):
                time.sleep(0.5 * 2 ** attempt)
                continue
            if isinstance(exc, urllib.error.HTTPError):
                raise _http_error(exc.code, shown, url) from None
            reason = getattr(exc, "reason", exc)
            raise IndexUnavailable(
                f"index {redact(shown)} is unreachable: {redact(str(reason))} "
                "(fix: check the URL in stack.toml / PIP_INDEX_URL, the network or proxy, and that the server is "
                "up)") from None
    raise AssertionError("unreachable")  # the loop returns or raises


@contextmanager
def _reading(shown: str) -> Iterator[None]:
    """A response that stalls (the :func:`timeout` applies to each read too) or breaks part-way is one
    line, not a traceback."""
    try:
        yield
    except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        raise IndexUnavailable(f"index {redact(shown)}: the response stalled or broke while reading "
                               f"({type(exc).__name__}: {redact(str(exc)) or 'no data'}; limit {timeout():g} s per "
                               "read) (fix: retry; for a slow index set STACKSYNC_INDEX_TIMEOUT=SECONDS)") from None


def _http_error(code: int, index_shown: str, url: str) -> IndexUnavailable:
    where = redact(index_shown)
    if code == 401:
        return IndexUnavailable(f"index {where}: credentials refused (HTTP 401) for {redact(url)} "
                                "(fix: set the variables the index URL references, e.g. ART_USER/ART_TOKEN)")
    if code == 403:
        return IndexUnavailable(f"index {where}: access forbidden (HTTP 403) for {redact(url)} "
                                "(fix: check the user/token in the variables the index URL references, e.g. "
                                "ART_USER/ART_TOKEN, and that it may read this repository)")
    if code == 404:
        return ProjectNotFound(f"index {where}: not found (HTTP 404): {redact(url)} "
                               "(fix: check the package name and that this index serves it)")
    return IndexUnavailable(f"index {where}: HTTP {code} for {redact(url)} (fix: retry, or check the server)")


# --- parsing (pure) --------------------------------------------------------------------------------

class _LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.links: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "base" and self.base is None:
            self.base = dict(attrs).get("href")
        elif tag == "a":
            self.links.append(dict(attrs))


def parse_file_name(project: str, filename: str) -> tuple[NormalizedName, Version] | None:
    """The (name, version) of a wheel or sdist file name, or ``None`` for files pip would ignore."""
    try:
        if filename.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(filename)
            return name, version
        for ext in _SDIST_EXTS:
            if filename.endswith(ext):
                stem = filename[: -len(ext)]
                if ext == ".tar.gz":
                    name, version = parse_sdist_filename(filename)
                    return name, version
                # Legacy sdist formats: the same name-version split pip uses.
                want = canonicalize_name(project)
                for i, ch in enumerate(stem):
                    if ch == "-" and canonicalize_name(stem[:i]) == want:
                        return want, Version(stem[i + 1:])
                return None
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None
    return None


def _make_file(project: str, filename: str, url: str, sha256: str | None, requires_python: str | None,
               yanked: object, index_url: str) -> IndexFile | None:
    parsed = parse_file_name(project, filename)
    if parsed is None or parsed[0] != canonicalize_name(project):
        return None
    return IndexFile(filename=filename, url=url, sha256=sha256.lower() if sha256 else None,
                     requires_python=requires_python or None, yanked=bool(yanked) or yanked == "",
                     name=parsed[0], version=parsed[1], index_url=index_url)


def parse_json_page(project: str, text: str, page_url: str, index_url: str = "") -> list[IndexFile]:
    """Files of a PEP 691 JSON project page. ``page_url`` resolves relative URLs."""
    data = json.loads(text)
    files: list[IndexFile] = []
    for entry in data.get("files", []):
        url = urllib.parse.urljoin(page_url, entry["url"])
        url, _, fragment = url.partition("#")
        digest = (entry.get("hashes") or {}).get("sha256") or _fragment_sha256(fragment)
        yanked = entry.get("yanked", False)
        made = _make_file(project, entry["filename"], url, digest, entry.get("requires-python"),
                          yanked is not False, index_url)
        if made is not None:
            files.append(made)
    return files


def parse_html_page(project: str, text: str, page_url: str, index_url: str = "") -> list[IndexFile]:
    """Files of a PEP 503 HTML project page (hash from the ``#sha256=`` fragment)."""
    parser = _LinkParser()
    parser.feed(text)
    base = urllib.parse.urljoin(page_url, parser.base) if parser.base else page_url
    files: list[IndexFile] = []
    for attrs in parser.links:
        href = attrs.get("href")
        if not href:
            continue
        url, _, fragment = urllib.parse.urljoin(base, href).partition("#")
        filename = urllib.parse.unquote(url.rsplit("/", 1)[-1])
        made = _make_file(project, filename, url, _fragment_sha256(fragment), attrs.get("data-requires-python"),
                          "data-yanked" in attrs, index_url)
        if made is not None:
            files.append(made)
    return files


def _fragment_sha256(fragment: str) -> str | None:
    for part in fragment.split("&"):
        algo, _, value = part.partition("=")
        if algo == "sha256" and value:
            return value
    return None


# --- listing ---------------------------------------------------------------------------------------

def _project_page(index_url: str, name: str) -> list[IndexFile]:
    """One index's files for ``name``; :class:`ProjectNotFound` on 404."""
    bare, auth = split_auth(index_url)
    page = urllib.parse.urljoin(bare.rstrip("/") + "/", f"{canonicalize_name(name)}/")
    with _open(page, auth, accept=ACCEPT, shown=index_url) as resp, _reading(index_url):
        final = resp.geturl()
        ctype = resp.headers.get("Content-Type", "")
        body = resp.read().decode(resp.headers.get_content_charset() or "utf-8", errors="replace")
    if ctype.split(";")[0].strip() == JSON_TYPE:
        return parse_json_page(name, body, final, index_url)
    return parse_html_page(name, body, final, index_url)


def index_urls(index: object) -> list[str]:
    """The URLs to ask, in pip's order: ``index_url`` then ``extra_index_urls`` (an expanded
    :class:`~stacksync.lock.profile.IndexConfig`, or a plain sequence / string of URLs)."""
    if isinstance(index, str):
        return [index]
    if isinstance(index, Sequence):
        return [str(u) for u in index]
    primary = getattr(index, "index_url", None)
    extras = getattr(index, "extra_index_urls", ())
    from stacksync.lock.profile import DEFAULT_INDEX

    return [primary or DEFAULT_INDEX, *extras]


def project_files(index: object, name: str) -> list[IndexFile]:
    """Every file of project ``name`` on the index URL and the extra index URLs (pip looks at all of
    them, so does this). A project missing from one index is fine if another has it; missing from all
    raises :class:`ProjectNotFound`. Unreachable index / 401 / 403 raise :class:`IndexUnavailable`.

    ``index``: an expanded ``IndexConfig``, a URL, or a list of URLs (credentials in the userinfo)."""
    urls = index_urls(index)
    files: list[IndexFile] = []
    missing: ProjectNotFound | None = None
    for url in urls:
        try:
            files += _project_page(url, name)
        except ProjectNotFound as exc:
            missing = exc
    if not files and missing is not None:
        shown = ", ".join(redact(u) for u in urls)
        raise ProjectNotFound(f"no project {canonicalize_name(name)!r} on the index ({shown}) "
                              "(fix: check the name in requirements.in, or add the index that serves it)")
    return files


def python_accepts(requires_python: str | None, python_version: str | None) -> bool:
    """Whether a file's Requires-Python admits ``python_version`` (X.Y.Z); pip skips files that do not,
    and treats a missing or malformed value as "any"."""
    if not requires_python or not python_version:
        return True
    try:
        return SpecifierSet(requires_python).contains(python_version, prereleases=True)
    except InvalidSpecifier:
        return True


def files_for_pins(index: object, pins: Mapping[str, str], *, python_version: str | None = None,
                   workers: int = WORKERS) -> dict[NormalizedName, list[IndexFile]]:
    """For each ``name -> exact version``, the files of exactly that version (local label included:
    ``2.4.0`` does not take ``2.4.0+cu121``'s files), pages fetched concurrently. Like pip (and so
    pip-compile's hashes), files whose Requires-Python excludes ``python_version`` are left out and
    yanked files are kept. A pin with no file raises :class:`IndexUnavailable` naming it."""
    items = sorted((canonicalize_name(n), v) for n, v in pins.items())
    if not items:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(items)))) as pool:
        pages = list(pool.map(lambda item: project_files(index, item[0]), items))
    out: dict[NormalizedName, list[IndexFile]] = {}
    for (name, version), files in zip(items, pages, strict=True):
        want = Version(version)
        matching = [f for f in files if f.version == want and python_accepts(f.requires_python, python_version)]
        if not matching:
            shown = ", ".join(redact(strip_credentials(u)) for u in index_urls(index))
            raise IndexUnavailable(f"{name}=={version}: no file of that version on the index ({shown}) "
                                   f"(fix: pin a version the index serves, or add the index that has it)")
        out[name] = matching
    return out


# --- downloading -----------------------------------------------------------------------------------

def _auth_for(file: IndexFile) -> str | None:
    """The index's credentials, sent only when the file lives on the index's own host."""
    bare, auth = split_auth(file.index_url)
    return auth if auth and _same_host(bare, file.url) else None


def hash_file_url(file: IndexFile) -> str:
    """Download ``file`` (streamed, not kept) and return its hex sha256: for indexes that publish none."""
    digest = hashlib.sha256()
    with _open(file.url, _auth_for(file), accept=None, shown=file.index_url) as resp, _reading(file.index_url):
        for chunk in iter(lambda: resp.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_file(file: IndexFile, dest_dir: Path, *, sha256: str | None = None) -> Path:
    """Download ``file`` into ``dest_dir`` (created) as ``file.filename``: written to a temporary name,
    checked against ``sha256`` (default: the index's), then renamed. A mismatch raises
    :class:`HashMismatch` and leaves nothing behind; an existing file with the right hash is reused."""
    want = (sha256 or file.sha256 or "").lower() or None
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / file.filename
    if want and target.is_file() and file_sha256(target) == want:
        return target

    def check(got: str) -> None:
        if want and got != want:
            raise HashMismatch(f"{file.filename}: sha256 {got} does not match the expected {want} "
                               f"(from {redact(strip_credentials(file.url))}) (fix: the file on the index "
                               "changed or the download was corrupted; check the index, then compile the lock again)")

    download(file.url, target, auth=_auth_for(file), shown=file.index_url, check=check)
    return target


def download(url: str, target: Path, *, auth: str | None, shown: str,
             check: Callable[[str], None] | None = None) -> str:
    """Stream ``url`` into a temporary file beside ``target``, hashing as it goes; ``check`` sees the hex
    sha256 and raises to refuse the content; else the file is renamed to ``target``. Nothing is left
    behind on any failure. Returns the sha256. (The one download loop: index files, prebuilt wheels.)"""
    digest = hashlib.sha256()
    with atomic_file(target, "wb") as out:
        with _open(url, auth, accept=None, shown=shown) as resp, _reading(shown):
            for chunk in iter(lambda: resp.read(_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
        got = digest.hexdigest()
        if check is not None:
            check(got)  # raising here removes the temporary file; target is untouched
    return got


def sha256_options(files: Iterable[IndexFile]) -> list[str]:
    """``sha256:<hex>`` for each file, sorted and unique; files without a published hash are
    downloaded and hashed (what pip-compile does for every file)."""
    return sorted({f"sha256:{f.sha256 or hash_file_url(f)}" for f in files})
