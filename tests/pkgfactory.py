"""Build wheels and sdists in-process (zipfile / tarfile), and the small stand-in ML stack the tests
install from a local index.

The stack mimics the failure modes that matter for stacksync, with tiny pure-Python packages:

* ``torch-like`` needs the shared library shipped by ``nvidia-cudnn-like``: installed ``--no-deps``,
  ``import torch_like`` fails like real torch does without its CUDA wheels.
* ``flash-attn-like`` is an sdist whose ``setup.py`` imports ``torch_like`` at build time, so it fails
  under build isolation; the built package records the torch-like version it was built against
  (``flash_attn_like/_built_against.py``) and refuses to import under any other one, like a compiled
  extension with an undefined symbol.
* setuptools (from virtualenv's embedded wheels), wheel and packaging (repacked from this interpreter)
  so that isolated and non-isolated builds work offline.

:class:`IndexServer` (a real pypiserver) lives here too, so tests can annotate the fixtures with it.
Import this module as ``import pkgfactory`` (pytest puts ``tests/`` on ``sys.path``; ``tests`` is not a
package).
"""

from __future__ import annotations

import base64
import csv
import gzip
import hashlib
import importlib.metadata
import io
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import textwrap
import time
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

FileMap = Mapping[str, str | bytes]

# A fixed timestamp keeps archives byte-identical across builds (stable hashes within a session).
_EPOCH = (2024, 1, 1, 0, 0, 0)
_MTIME = int(time.mktime((*_EPOCH, 0, 0, -1)))

TORCH_LIKE_VERSIONS = ("2.3.0", "2.4.0", "2.4.0+cu121")
CUDNN_LIKE_VERSION = "9.1.0"
CUBLAS_LIKE_VERSION = "12.1.0"
FLASH_ATTN_LIKE_VERSION = "2.8.0"
EINOPS_LIKE_VERSION = "0.8.0"
CUDNN_LIB = "nvidia/cudnn_like/lib/libcudnn_like.so.9"
CUBLAS_LIB = "nvidia/cublas_like/lib/libcublas_like.so.12"
CUDNN_IMPORT_ERROR = "libcudnn_like.so.9: cannot open shared object file: No such file or directory"


def normalize(name: str) -> str:
    """PEP 503 normalized name (``Torch_Like`` -> ``torch-like``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _escaped(name: str) -> str:
    """Name as it appears in wheel / sdist file names and the .dist-info folder."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _as_bytes(content: str | bytes) -> bytes:
    return content.encode("utf-8") if isinstance(content, str) else content


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, as pip-compile writes it after ``--hash=sha256:``."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def installed_dist(sp: Path, name: str, version: str, files: dict[str, str], *, record: bool = True,
          extra_record: tuple[str, ...] = ()) -> Path:
    """An installed distribution in site-packages ``sp`` as pip leaves it: ``files`` written, a dist-info
    with METADATA and (unless ``record=False``) a RECORD listing the files, its own two and ``extra_record``."""
    info = sp / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n")
    for rel, text in files.items():
        (sp / rel).parent.mkdir(parents=True, exist_ok=True)
        (sp / rel).write_text(text)
    if record:
        rows = [*files, f"{info.name}/METADATA", f"{info.name}/RECORD", *extra_record]
        (info / "RECORD").write_text("".join(f"{r},,\n" for r in rows))
    return info


def metadata_text(
    name: str,
    version: str,
    *,
    requires: Iterable[str] = (),
    requires_python: str | None = ">=3.8",
    metadata_version: str = "2.1",
    summary: str | None = None,
    extra_headers: Iterable[tuple[str, str]] = (),
) -> str:
    """A core-metadata document (METADATA / PKG-INFO)."""
    lines = [
        f"Metadata-Version: {metadata_version}",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {summary or f'{name}: stand-in package for stacksync tests'}",
    ]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines += [f"Requires-Dist: {req}" for req in requires]
    lines += [f"{key}: {value}" for key, value in extra_headers]
    return "\n".join(lines) + "\n\n"


def _write_wheel(path: Path, entries: Mapping[str, bytes], dist_info: str) -> Path:
    """Write ``entries`` plus a RECORD (sha256, size) for all of them."""
    record_name = f"{dist_info}/RECORD"
    rows = [(arc, _record_hash(data), str(len(data))) for arc, data in entries.items()]
    rows.append((record_name, "", ""))
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for arc, data in [*entries.items(), (record_name, buf.getvalue().encode())]:
            info = zipfile.ZipInfo(arc, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return path


def build_wheel(
    dest_dir: Path,
    name: str,
    version: str,
    *,
    requires: Iterable[str] = (),
    files: FileMap | None = None,
    requires_python: str | None = ">=3.8",
    tag: str = "py3-none-any",
    metadata_version: str = "2.1",
) -> Path:
    """Build ``{name}-{version}-{tag}.whl`` in ``dest_dir`` and return its path.

    ``files`` maps paths inside site-packages (``"pkg/__init__.py"``) to text or bytes. METADATA carries
    ``Requires-Dist`` lines for ``requires``; RECORD lists every file with its sha256 and size.
    """
    dist_info = f"{_escaped(name)}-{version}.dist-info"
    entries: dict[str, bytes] = {arc: _as_bytes(data) for arc, data in (files or {}).items()}
    entries[f"{dist_info}/METADATA"] = metadata_text(
        name, version, requires=requires, requires_python=requires_python, metadata_version=metadata_version
    ).encode()
    entries[f"{dist_info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: stacksync-tests\nRoot-Is-Purelib: true\nTag: {tag}\n\n"
    ).encode()
    top_levels = sorted({arc.split("/", 1)[0] for arc in (files or {}) if "/" in arc or arc.endswith(".py")})
    entries[f"{dist_info}/top_level.txt"] = "".join(
        f"{top.removesuffix('.py')}\n" for top in top_levels
    ).encode()
    return _write_wheel(Path(dest_dir) / f"{_escaped(name)}-{version}-{tag}.whl", entries, dist_info)


def _pyproject_toml(build_requires: Iterable[str]) -> str:
    reqs = ", ".join(f'"{r}"' for r in build_requires)
    return f'[build-system]\nrequires = [{reqs}]\nbuild-backend = "setuptools.build_meta"\n'


def build_sdist(
    dest_dir: Path,
    name: str,
    version: str,
    *,
    setup_py: str,
    files: FileMap | None = None,
    requires: Iterable[str] = (),
    requires_python: str | None = ">=3.8",
    build_requires: Iterable[str] = ("setuptools>=61",),
    metadata_version: str = "2.2",
) -> Path:
    """Build ``{name}-{version}.tar.gz`` (PEP 625 file name) in ``dest_dir`` and return its path.

    The archive holds PKG-INFO (static ``Requires-Dist``, metadata 2.2 like recent setuptools output),
    ``setup.py`` as given, a ``pyproject.toml`` using ``setuptools.build_meta`` with
    ``build_requires``, and ``files`` (paths relative to the project root).
    """
    base = f"{_escaped(name)}-{version}"
    entries: dict[str, bytes] = {
        "PKG-INFO": metadata_text(name, version, requires=requires, requires_python=requires_python,
                                  metadata_version=metadata_version).encode(),
        "setup.py": textwrap.dedent(setup_py).encode(),
        "pyproject.toml": _pyproject_toml(build_requires).encode(),
    }
    entries.update({rel: _as_bytes(data) for rel, data in (files or {}).items()})
    path = Path(dest_dir) / f"{base}.tar.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fixed gzip header mtime (tarfile's "w:gz" would stamp the current time) keeps the hash stable.
    with open(path, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=_MTIME) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for rel, data in sorted(entries.items()):
            info = tarfile.TarInfo(f"{base}/{rel}")
            info.size = len(data)
            info.mtime = _MTIME
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
    return path


_SKIP_DIST_INFO = {"INSTALLER", "RECORD", "REQUESTED", "direct_url.json"}


def repack_installed(dest_dir: Path, dist_name: str) -> Path:
    """Re-create the wheel of a pure-Python distribution installed in *this* interpreter (used for
    ``wheel`` and ``packaging``, which virtualenv no longer embeds). Scripts outside site-packages and
    byte-code are left out; the original WHEEL file (tags) is kept."""
    dist = importlib.metadata.distribution(dist_name)
    name, version = dist.metadata["Name"], dist.version
    dist_info = f"{_escaped(name)}-{version}.dist-info"
    entries: dict[str, bytes] = {}
    for rel in dist.files or ():
        posix = rel.as_posix()
        if posix.startswith("..") or "__pycache__" in posix or posix.endswith(".pyc"):
            continue
        if posix.endswith(".dist-info/" + rel.name):
            if rel.name in _SKIP_DIST_INFO:
                continue
            posix = f"{dist_info}/{rel.name}"
        entries[posix] = Path(str(dist.locate_file(rel))).read_bytes()
    tag = "py3-none-any"
    for line in entries.get(f"{dist_info}/WHEEL", b"").decode().splitlines():
        if line.startswith("Tag:"):
            tag = line.split(":", 1)[1].strip()
            break
    return _write_wheel(Path(dest_dir) / f"{_escaped(name)}-{version}-{tag}.whl", entries, dist_info)


def copy_embedded_setuptools(dest_dir: Path, python_version: str = "3.11") -> Path:
    """Copy the setuptools wheel that virtualenv embeds for ``python_version``."""
    from virtualenv.seed.wheels.embed import BUNDLE_FOLDER, BUNDLE_SUPPORT

    filename = BUNDLE_SUPPORT[python_version]["setuptools"]
    target = Path(dest_dir) / filename
    shutil.copyfile(Path(BUNDLE_FOLDER) / filename, target)
    return target


# --- the stand-in ML stack --------------------------------------------------------------------------

_TORCH_INIT = '''\
"""torch-like: needs the cuDNN-like shared library from the nvidia-cudnn-like wheel, like real torch."""
import os
import sys

from .version import __version__, cuda  # noqa: F401


def _find(rel):
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for entry in [here] + [p for p in sys.path if p]:
        candidate = os.path.join(entry, *rel.split("/"))
        if os.path.isfile(candidate):
            return candidate
    return None


CUDNN = _find("{cudnn}")
if CUDNN is None:
    raise ImportError("{cudnn_error}")
CUBLAS = _find("{cublas}")
if CUBLAS is None:
    raise ImportError("libcublas_like.so.12: cannot open shared object file: No such file or directory")
'''

_FLASH_INIT = '''\
"""flash-attn-like: compiled against one torch-like version (see _built_against.py)."""
import torch_like

from ._built_against import TORCH

__version__ = "{version}"

if TORCH != torch_like.__version__:
    raise ImportError(
        "flash_attn_like_cuda.so: undefined symbol: built against torch-like "
        + TORCH + ", running " + torch_like.__version__
    )
'''

FLASH_ATTN_LIKE_SETUP_PY = '''\
import os
import sys
import time

import torch_like  # like flash-attn: needs torch at build time (fails under build isolation)
from setuptools import setup

if any("bdist_wheel" in a for a in sys.argv):
    # Tests of concurrent syncs: count the builds started (FLASH_ATTN_LIKE_BUILD_LOG) and make one take
    # measurable time (FLASH_ATTN_LIKE_BUILD_SLEEP seconds), like a real flash-attn build.
    if os.environ.get("FLASH_ATTN_LIKE_BUILD_LOG"):
        with open(os.environ["FLASH_ATTN_LIKE_BUILD_LOG"], "a") as log:
            log.write("%d\\n" % os.getpid())
    time.sleep(float(os.environ.get("FLASH_ATTN_LIKE_BUILD_SLEEP") or 0))

HERE = os.path.dirname(os.path.abspath(__file__))
# A long build, on request (the heartbeat test): STANDIN_BUILD_SLEEP seconds, one line each.
for second in range(int(os.environ.get("STANDIN_BUILD_SLEEP", "0") or 0)):
    print("standin build: compiling kernel %d" % second, flush=True)
    __import__("time").sleep(1)
# A build that shows its environment and fails (the masking test): prints the variable named by
# STANDIN_BUILD_ECHO, then exits 1 so that pip shows the build's output.
if os.environ.get("STANDIN_BUILD_ECHO") and any("bdist_wheel" in a for a in sys.argv):
    print("standin build env: %s=%s" % (os.environ["STANDIN_BUILD_ECHO"],
                                        os.environ.get(os.environ["STANDIN_BUILD_ECHO"])), flush=True)
    sys.exit(1)
with open(os.path.join(HERE, "flash_attn_like", "_built_against.py"), "w") as fh:
    fh.write('TORCH = "%s"\\n' % torch_like.__version__)

setup(
    name="flash-attn-like",
    version="{version}",
    packages=["flash_attn_like"],
    install_requires=["torch-like", "einops-like"],
    python_requires=">=3.8",
)
'''


def _plain(dest: Path, name: str, version: str, requires: Iterable[str] = ()) -> Path:
    module = _escaped(name)
    return build_wheel(dest, name, version, requires=requires,
                       files={f"{module}/__init__.py": f'__version__ = "{version}"\n'})


def _torch_like_cuda(version: str) -> str | None:
    """The CUDA a stand-in build says it is for, as torch's version.py does: ``X.Y`` from a ``+cuXYZ``
    label, none for ``+cpu``, else 12.1 (the unlabelled stand-in is a CUDA 12.1 build)."""
    label = version.partition("+")[2]
    if label == "cpu":
        return None
    if label.startswith("cu") and label[2:].isdigit():
        return f"{label[2:-1]}.{label[-1]}"
    return "12.1"


def build_torch_like(dest: Path, version: str, *, tag: str = "py3-none-any",
                     requires: Iterable[str] | None = None, cuda: bool = True) -> Path:
    """``tag``: the wheel's tag (``cp311-cp311-manylinux_2_17_aarch64`` for one platform's build);
    ``requires``: its Requires-Dist (default: the two nvidia-*-like libraries, none without ``cuda``);
    ``cuda=False``: a CPU build, whose import needs no nvidia-*-like library; a CUDA build's version.py says the
    CUDA of its ``+cuXYZ`` label (:func:`_torch_like_cuda`)."""
    init = _TORCH_INIT.format(cudnn=CUDNN_LIB, cublas=CUBLAS_LIB, cudnn_error=CUDNN_IMPORT_ERROR) if cuda else \
        '"""torch-like, a CPU build."""\nfrom .version import __version__, cuda  # noqa: F401\n'
    default = [f"nvidia-cudnn-like=={CUDNN_LIKE_VERSION}", f"nvidia-cublas-like=={CUBLAS_LIKE_VERSION}"] if cuda else []
    cuda_of = _torch_like_cuda(version) if cuda else None
    return build_wheel(
        dest, "torch-like", version, tag=tag, requires=default if requires is None else requires,
        files={
            "torch_like/__init__.py": init,
            "torch_like/version.py": f"__version__ = '{version}'\ncuda = {cuda_of!r}\n",
        },
    )


def build_flash_attn_like(dest: Path, version: str = FLASH_ATTN_LIKE_VERSION) -> Path:
    return build_sdist(
        dest, "flash-attn-like", version,
        setup_py=FLASH_ATTN_LIKE_SETUP_PY.replace("{version}", version),
        requires=["torch-like", "einops-like"],
        files={"flash_attn_like/__init__.py": _FLASH_INIT.replace("{version}", version)},
    )


def build_stack(dest: Path) -> Path:
    """Write every dist of the stand-in stack into ``dest`` (created) and return it."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    build_wheel(dest, "nvidia-cudnn-like", CUDNN_LIKE_VERSION, files={
        "nvidia/cudnn_like/__init__.py": "",
        "nvidia/cudnn_like/lib/__init__.py": "",
        CUDNN_LIB: b"\x7fELF fake cudnn-like shared library\n",
    })
    build_wheel(dest, "nvidia-cublas-like", CUBLAS_LIKE_VERSION, files={
        "nvidia/cublas_like/__init__.py": "",
        "nvidia/cublas_like/lib/__init__.py": "",
        CUBLAS_LIB: b"\x7fELF fake cublas-like shared library\n",
    })
    for version in TORCH_LIKE_VERSIONS:
        build_torch_like(dest, version)
    build_flash_attn_like(dest)
    _plain(dest, "einops-like", EINOPS_LIKE_VERSION)
    _plain(dest, "plain-a", "1.0")
    _plain(dest, "plain-a", "2.0")
    _plain(dest, "plain-b", "1.0")
    copy_embedded_setuptools(dest)
    repack_installed(dest, "wheel")
    repack_installed(dest, "packaging")
    return dest


# --- the index server --------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _LocalServer:
    """What both servers share: a child process on 127.0.0.1 started with its output in ``log_path`` and
    waited for until a URL answers 200, and stopped (terminate, then kill)."""

    host = "127.0.0.1"
    program = "server"  # its name in an error
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _spawn(self, argv: list[str], ready_path: str, timeout: float, poll: float) -> None:
        """Start ``argv`` and wait until ``ready_path`` answers 200; a child that exits or never answers
        is a ``RuntimeError`` with the end of its log."""
        what = self.program
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{what} exited with {self.process.returncode}: {self.log_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.base_url}{ready_path}", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(poll)
        self.stop()
        raise RuntimeError(f"{what} not ready on {self.base_url} after {timeout}s: {self.log_text()[-2000:]}")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server; its port then refuses connections until it starts again."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class IndexServer(_LocalServer):
    """A real pypiserver on 127.0.0.1 serving ``packages_dir`` with basic auth (htpasswd via passlib)
    on downloads and listings, and ``--disable-fallback`` (unknown names are 404, never PyPI).

    ``url`` has no credentials (pip gets 401 from it); ``auth_url`` embeds ``user:password``.
    ``stop()`` / ``start()`` take it down and bring it back on the same port (index-unavailable cases).
    The backend rescans the folder on every request, so files added to or replaced in
    ``packages_dir`` show up at once with their new ``#sha256=`` fragments.
    """

    program = "pypiserver"

    def __init__(self, packages_dir: Path, root: Path, *, user: str = "stack-ci",
                 password: str = "s3cret-Index-Token") -> None:
        self.packages_dir = Path(packages_dir)
        self.root = Path(root)
        self.user = user
        self.password = password
        self.port = _free_port()
        self.htpasswd = self.root / "htpasswd"
        self.log_path = self.root / "pypiserver.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.root.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():  # passlib imports the stdlib 'crypt' (deprecated in 3.11)
            warnings.simplefilter("ignore", DeprecationWarning)
            from passlib.apache import HtpasswdFile  # type: ignore[import-untyped]

        ht = HtpasswdFile(str(self.htpasswd), new=True)
        ht.set_password(user, password)
        ht.save()

    @property
    def url(self) -> str:
        return f"{self.base_url}/simple/"

    @property
    def auth_url(self) -> str:
        return f"http://{self.user}:{self.password}@{self.host}:{self.port}/simple/"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "pypiserver", "run", "-p", str(self.port), "-i", self.host,
                "--disable-fallback", "-P", str(self.htpasswd), "-a", "download,list,update",
                "--hash-algo", "sha256", "--backend", "simple-dir", str(self.packages_dir)]

    def start(self, timeout: float = 10.0) -> None:
        """Start (or restart) the server and wait until ``/health`` answers."""
        if self.running:
            return
        self._spawn(self.argv(), "/health", timeout, poll=0.05)

    def add(self, *dists: Path) -> list[Path]:
        """Copy dists into ``packages_dir`` (served at once); returns the copies."""
        return [Path(shutil.copy2(d, self.packages_dir / Path(d).name)) for d in dists]

    def __repr__(self) -> str:  # never show the password
        return f"IndexServer({self.url}, packages_dir={self.packages_dir})"


class DevpiServer(_LocalServer):
    """A real devpi-server on 127.0.0.1 with one upload index ``root/team`` (no bases: never PyPI).

    ``devpi-init`` then ``devpi-server --port`` (ready in ~5 s here); the index is made over devpi's
    REST API (``POST /+login`` gives a token, ``PUT /root/team`` with ``X-Devpi-Auth``). twine
    uploads straight to :attr:`upload_url` with basic auth ``root`` / :attr:`password`; pip reads
    :attr:`url` (``+simple``, each link with ``#sha256=``) without credentials."""

    program = "devpi-server"

    def __init__(self, root: Path, *, password: str = "d3vpi-Root") -> None:
        self.root = Path(root)
        self.password = password
        self.user = "root"
        self.port = _free_port()
        self.serverdir = self.root / "serverdir"
        self.log_path = self.root / "devpi.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.root.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def available() -> bool:
        return shutil.which("devpi-server", path=str(Path(sys.executable).parent)) is not None

    def _bin(self, name: str) -> str:
        return str(Path(sys.executable).parent / name)

    @property
    def url(self) -> str:
        return f"{self.base_url}/root/team/+simple/"

    @property
    def upload_url(self) -> str:
        return f"{self.base_url}/root/team/"

    def start(self, timeout: float = 60.0) -> None:
        if not self.serverdir.exists():
            subprocess.run([self._bin("devpi-init"), "--serverdir", str(self.serverdir), "--root-passwd",
                            self.password], check=True, capture_output=True, stdin=subprocess.DEVNULL)
        self._spawn([self._bin("devpi-server"), "--serverdir", str(self.serverdir), "--host", self.host, "--port",
                     str(self.port)], "/+api", timeout, poll=0.1)
        self._make_index()

    def _request(self, method: str, path: str, body: dict[str, object],
                 headers: dict[str, str] | None = None) -> dict[str, object]:
        import json as _json

        req = urllib.request.Request(f"{self.base_url}{path}", data=_json.dumps(body).encode(), method=method,
                                     headers={"Content-Type": "application/json", "Accept": "application/json",
                                              **(headers or {})})
        with urllib.request.urlopen(req, timeout=30) as resp:
            data = _json.loads(resp.read() or b"{}")
        assert isinstance(data, dict)
        return data

    def _make_index(self) -> None:
        import base64

        login = self._request("POST", "/+login", {"user": self.user, "password": self.password})
        token = str(dict(login["result"])["password"])  # type: ignore[call-overload]
        auth = base64.b64encode(f"{self.user}:{token}".encode()).decode()
        try:
            self._request("PUT", "/root/team", {"type": "stage", "bases": [], "volatile": True},
                          headers={"X-Devpi-Auth": auth})
        except urllib.error.HTTPError as exc:
            if exc.code != 409:  # already there (a restart)
                raise

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)

    def __repr__(self) -> str:
        return f"DevpiServer({self.url})"
