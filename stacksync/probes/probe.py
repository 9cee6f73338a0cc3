"""The one probe stacksync runs *inside a target interpreter*, by path: ``python -I probe.py COMMAND
--json-out FILE [ARGS]``. Standard library only, CPython >= 3.8; never imports pip, and torch only when
asked (``cuda --import-torch``). The JSON document goes to FILE (its own channel: what imported modules
print on stdout is shown to the user, never parsed); to stdout without ``--json-out``.

Commands:

``env``
    Describe the interpreter. Keys: probe (1), python, marker_environment, platform, distributions
    (name, version, direct_url, installer, location, requires), pip_version, cuda (facts readable from
    files, no import), state (what stacksync recorded in this environment, e.g. what each deferred
    package was built against).
``cuda``
    The CUDA / build side of the machine. Keys: probe_cuda (1), python, driver (libcuda through ctypes:
    cuDriverGetVersion, cuInit, cuDeviceGetCount, device names; nvidia-smi only when libcuda cannot be
    loaded), nvcc, cuda_home, ninja, compiler, memory, cpu_count, max_jobs, glibc, libraries (soname ->
    [{path, source}]), torch (facts read from ``torch/version.py`` as text), torch_import (only with
    ``--import-torch``). Test hooks: ``STACKSYNC_LIBCUDA`` is the driver library to load (a path; when
    set, nothing else is tried); ``STACKSYNC_NVIDIA_SMI`` is the nvidia-smi to run (empty: none).
``smoke MODULE...``
    Import each module. Output: {"smoke": 1, "modules": [{"name": ..., "ok": true|false, "error":
    "ImportError: ...", "seconds": ...}]}. Exit status 0 even when an import fails: the caller reads
    the document.

Several commands share one interpreter: ``env+cuda+smoke --json-out FILE [--import-torch] [MODULE...]``
writes {"probes": 1, "env": {...}, "cuda": {...}, "smoke": {...}}, each part the document that
command alone writes. They run in that order whatever order they are given in (the facts are read
before any smoke import runs code of the target); ``--import-torch`` goes to cuda, the other
arguments are smoke's modules.

Test hook for ``env`` and ``cuda``: ``STACKSYNC_PLATFORM="SYS_PLATFORM MACHINE [LIBC]"`` (e.g. ``linux
aarch64 2.35``, ``darwin arm64 14.0``) makes the probe report that platform (sys_platform, machine, glibc
or macOS version, platform tag) instead of this one: how tests play a GH200 or a Mac target on an x86_64
host. The distributions are still this interpreter's.
"""

import importlib
import json
import os
import platform
import re
import sys
import sysconfig
import time

# importlib.metadata (and the email / zipfile / csv modules it loads) and glob are imported by the
# functions that use them: they are most of this script's start-up (~70 ms of ~110 ms measured on
# Python 3.11), a `smoke` or `cuda` run never reads distributions, and an `env` run reads them
# itself (read_path_distributions), importlib.metadata only where that reading could differ.
if sys.version_info < (3, 8):  # noqa: UP036 (a target, not stacksync: an old one gets this line)
    sys.stderr.write("stacksync needs a target Python >= 3.8\n")
    sys.exit(3)

STATE_FILE = "stacksync-state.json"
# --- env ------------------------------------------------------------------------------------------


_SEPARATORS = re.compile(r"[-_.]+")


def canonical(name):
    low = name.lower()  # first: lower() makes no separator; most names then need no substitution
    return _SEPARATORS.sub("-", low) if "_" in low or "." in low or "--" in low else low


_SYSTEMS = {"linux": "Linux", "darwin": "Darwin", "win32": "Windows"}


def platform_facts():
    """sys_platform, system, machine, glibc, mac_version and platform_tag of this interpreter, or of
    the platform ``STACKSYNC_PLATFORM`` names (see the module docstring)."""
    fake = os.environ.get("STACKSYNC_PLATFORM", "").split()
    if len(fake) >= 2:
        plat, machine, libc = fake[0], fake[1], (fake[2] if len(fake) > 2 else None)
        tag = {"linux": "linux-" + machine, "darwin": f"macosx-{libc or '11.0'}-{machine}"}.get(
            plat, "win-amd64" if machine.lower() in ("amd64", "x86_64") else "win-" + machine.lower())
        return {"sys_platform": plat, "system": _SYSTEMS.get(plat, plat), "machine": machine,
                "glibc": libc if plat == "linux" else None, "mac_version": libc if plat == "darwin" else None,
                "platform_tag": tag}
    return {"sys_platform": sys.platform, "system": platform.system(), "machine": platform.machine(),
            "glibc": glibc_version(), "mac_version": platform.mac_ver()[0] or None,
            "platform_tag": sysconfig.get_platform()}


def platform_document(facts):
    """The ``platform`` key of ``env``: system, machine, glibc (and the macOS version on a Mac)."""
    doc = {"system": facts["system"], "machine": facts["machine"], "glibc": facts["glibc"]}
    if facts["mac_version"]:
        doc["mac_version"] = facts["mac_version"]
    return doc


def marker_environment(facts=None):
    """The PEP 508 marker environment, computed as packaging.markers.default_environment does."""
    facts = facts or platform_facts()
    impl = sys.implementation
    version = f"{impl.version.major}.{impl.version.minor}.{impl.version.micro}"
    if impl.version.releaselevel != "final":
        version += impl.version.releaselevel[0] + str(impl.version.serial)
    return {
        "implementation_name": impl.name,
        "implementation_version": version,
        "os_name": os.name,
        "platform_machine": facts["machine"],
        "platform_release": platform.release(),
        "platform_system": facts["system"],
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "platform_python_implementation": platform.python_implementation(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": facts["sys_platform"],
    }


def glibc_version():
    try:
        value = os.confstr("CS_GNU_LIBC_VERSION")  # e.g. "glibc 2.36"
    except (AttributeError, ValueError, OSError):
        return None
    if value and value.startswith("glibc "):
        return value.split(" ", 1)[1]
    return None


def read_json(dist, filename):
    try:
        text = dist.read_text(filename)
    except Exception:
        return None
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def distributions():
    """Installed distributions, first on sys.path wins (as import does): read from the ``*.dist-info``
    folders on sys.path (:func:`read_path_distributions`), or through importlib.metadata wherever that
    reading could differ from it."""
    found = read_path_distributions()
    return found if found is not None else metadata_distributions()


# email.feedparser's header line: a name of printable characters but ':', then ':'
_HEADER = re.compile(r"^[\041-\071\073-\176]*:")
_WANTED = ("name", "version", "requires-dist")
# the folder names of importlib.metadata's Prepared.normalize (its grouping of one folder's entries)
_NORMALIZE = re.compile(r"[-_.]+")


def metadata_headers(text):
    """Name, Version and Requires-Dist of a METADATA text, valued as importlib.metadata values them
    (``email.message_from_string``, compat32); ``None`` where this reading could differ (a folded wanted
    header, a line email would not take for a header). stacksync.env.distinfo holds the host's copy."""
    found = {k: [] for k in _WANTED}
    last = ""
    # text mode: newlines are "\n" (str.splitlines splits on more); the headers end at the first empty line
    for line in text.partition("\n\n")[0].split("\n"):
        if not line:
            break
        if line[0] in " \t":
            if last in found:
                return None
            continue
        if not _HEADER.match(line):  # a "From " line too: a space is not a header name's
            return None
        key, _, value = line.partition(":")
        last = key.lower()
        values = found.get(last)
        if values is not None:
            values.append(value.lstrip(" \t"))
    return found


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0)  # Windows: no translation here (done below)
_UNREACHABLE = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def read_path_text(path):
    """As ``PathDistribution.read_text`` (``open(path, encoding="utf-8").read()``), with os.open / os.read
    (a text-mode open's TextIOWrapper and decoder cost ~4x as much, three files per distribution): ``None``
    for a file that is missing or not reachable (a folder fails on the read, as there); bytes that are not
    UTF-8 raise UnicodeDecodeError; CRLF and a lone CR become LF (text mode's universal newlines)."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except _UNREACHABLE:
        return None
    try:
        data = os.read(fd, 65536)
        while True:  # to the read that says end of file
            more = os.read(fd, 65536)
            if not more:
                break
            data += more
    except _UNREACHABLE:
        return None
    finally:
        os.close(fd)
    text = data.decode("utf-8")
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def read_path_json(path):
    """As :func:`read_json`: ``None`` for a missing, empty, unreadable or invalid file."""
    if not os.access(path, os.F_OK):  # most have none: no exception raised and caught per distribution
        return None
    try:
        return json.loads(read_path_text(path) or "null")
    except Exception:
        return None


def _location(root):
    """``str(dist.locate_file(""))`` of a distribution found in ``root``: ``str(pathlib.Path(root))``
    (pathlib imported only for a path it would spell otherwise: it costs more than the reading)."""
    if root.startswith("/") and "//" not in root and "/./" not in root and not root.endswith(("/", "/.")):
        return root
    import pathlib

    return str(pathlib.Path(root))


def _path_finder_only():
    """Whether importlib.metadata's discovery here is the standard path finder's alone (another
    finder on sys.meta_path may add distributions: then it is asked)."""
    from importlib.machinery import PathFinder

    return all(getattr(f, "find_distributions", None) is None or f is PathFinder for f in sys.meta_path)


def read_path_distributions():
    """The distributions importlib.metadata lists, in its order (sys.path entries in order; within one,
    its listing grouped by normalized folder name), each read as importlib.metadata reads it, without
    importing it (~0.1 s, and its email parsing three times per distribution: ~0.6 ms each). ``None``
    when this reading could differ: a Python whose importlib.metadata was not checked against it, a
    finder of distributions besides the path finder, a zip or egg on sys.path, an ``*.egg-info``, a
    METADATA that is missing or that the header reading is unsure of, a ``requires.txt`` beside a
    METADATA without Requires-Dist."""
    if not (3, 10) <= sys.version_info[:2] <= (3, 14) or not _path_finder_only():
        return None
    seen = {}
    for root in sys.path:
        if not isinstance(root, str) or not root or root.lower().endswith(".egg"):
            return None
        try:
            children = os.listdir(root)
        except Exception:
            if os.path.isfile(root):
                return None  # importlib.metadata reads a zip's metadata
            continue
        groups = {}
        for child in children:
            low = child.lower()
            if low.endswith(".egg-info"):
                return None
            if low.endswith(".dist-info"):
                group = low.rpartition(".")[0].partition("-")[0]
                if "." in group or "__" in group:  # else the substitution changes nothing
                    group = _NORMALIZE.sub("-", group).replace("-", "_")
                groups.setdefault(group, []).append(child)
        location = None
        base = os.path.join(root, "")  # the folder's path and a separator: one concatenation per file
        for child in [c for group in groups.values() for c in group]:
            # pip's "~"-prefixed stash of an uninstall that never committed is not installed (pip
            # ignores it too): importlib.metadata would list it under the package's own name.
            if child.startswith("~"):
                continue
            folder = base + child + os.sep
            try:
                text = read_path_text(folder + "METADATA")
            except (OSError, UnicodeError):
                return None
            headers = metadata_headers(text) if text else None
            if headers is None or not headers["name"] or not headers["version"]:
                return None
            name = headers["name"][0]
            if not name:
                continue
            key = canonical(name)
            if key in seen:
                continue
            requires = headers["requires-dist"]
            if not requires and os.access(folder + "requires.txt", os.F_OK):
                return None
            try:
                installer = read_path_text(folder + "INSTALLER")
            except (OSError, UnicodeError):
                return None
            location = location or _location(root)
            seen[key] = {
                "name": key,
                "display_name": name,
                "version": headers["version"][0],
                "direct_url": read_path_json(folder + "direct_url.json"),
                "installer": (installer or "").strip() or None,
                "location": location,
                "requires": requires,
            }
    return [seen[k] for k in sorted(seen)]


def metadata_distributions():
    """:func:`distributions` through importlib.metadata itself."""
    from importlib import metadata

    seen = {}
    for dist in metadata.distributions():
        # pip's "~"-prefixed stash of an uninstall that never committed is not installed (pip
        # ignores it too): importlib.metadata would list it under the package's own name.
        if os.path.basename(str(getattr(dist, "_path", ""))).startswith("~"):
            continue
        name = dist.metadata["Name"]
        if not name:
            continue
        key = canonical(name)
        if key in seen:
            continue
        try:
            location = str(dist.locate_file(""))
        except Exception:
            location = None
        seen[key] = {
            "name": key,
            "display_name": name,
            "version": dist.version,
            "direct_url": read_json(dist, "direct_url.json"),
            "installer": (dist.read_text("INSTALLER") or "").strip() or None,
            "location": location,
            "requires": dist.requires or [],
        }
    return [seen[k] for k in sorted(seen)]


def site_packages():
    paths = sysconfig.get_paths()
    return sorted({paths["purelib"], paths["platlib"]})


def seen_site_dirs(sp_dirs):
    """``sp_dirs`` and then the other site-packages folders on sys.path: a ``--system-site-packages`` venv
    imports torch from the system's (an NGC image's), and its files there say what it was built for."""
    extra = [p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages")
             and p not in sp_dirs and os.path.isdir(p)]
    return list(sp_dirs) + extra


def torch_cuda_from_files(sp_dirs):
    """torch/version.py holds `cuda = '12.1'` (or None): read the file, do not import torch."""
    for sp in sp_dirs:
        path = os.path.join(sp, "torch", "version.py")
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
            match = re.search(r"^cuda\s*(?::\s*\S+)?\s*=\s*['\"]([^'\"]+)['\"]", text, re.M)
            return match.group(1) if match else None
    return None


def nvidia_libraries(sp_dirs):
    """Shared libraries shipped by nvidia-*-cuXX wheels: {soname: path} (glob imported only if needed)."""
    found = {}
    for sp in [sp for sp in sp_dirs if os.path.isdir(os.path.join(sp, "nvidia"))]:
        import glob

        for path in sorted(glob.glob(os.path.join(sp, "nvidia", "*", "lib", "lib*.so*"))):
            found.setdefault(os.path.basename(path), path)
    return found


def cuda_facts(sp_dirs):
    return {
        "torch_cuda": torch_cuda_from_files(sp_dirs),
        "nvidia_libraries": nvidia_libraries(sp_dirs),
        "cuda_home": os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH"),
        "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


def stacksync_state():
    path = os.path.join(sys.prefix, STATE_FILE)
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


# --- smoke ----------------------------------------------------------------------------------------


def try_import(name):
    start = time.perf_counter()
    try:
        importlib.import_module(name)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # an extension's import can raise anything, SystemExit included
        text = f"{type(exc).__name__}: {exc}"
        return {"name": name, "ok": False, "error": text, "seconds": time.perf_counter() - start}
    return {"name": name, "ok": True, "error": None, "seconds": time.perf_counter() - start}


# --- the one entry point --------------------------------------------------------------------------


def json_out(argv):
    """(path or None, the other args): ``--json-out PATH`` first sends the document to a file of its
    own, so that what imported modules print on stdout (vllm does) never mixes with it."""
    if argv[:1] == ["--json-out"] and len(argv) > 1:
        return argv[1], argv[2:]
    return None, argv


def emit(doc, path):
    """Write ``doc`` as one JSON document to ``path`` (stdout when ``None``). ``json.dumps``, not
    ``json.dump``: only the one-shot encoding is the C encoder (a tenth of a second for 800 packages)."""
    text = json.dumps(doc) + "\n"  # keys as built: sorting them is 1/3 of the encoding
    if path is None:
        sys.stdout.write(text)
        return
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def env_doc():
    dists = distributions()
    sp = site_packages()
    pip = [d["version"] for d in dists if d["name"] == "pip"]
    facts = platform_facts()
    return {
        "probe": 1,
        "python": {
            "executable": sys.executable,
            "version": platform.python_version(),
            "implementation": sys.implementation.name,
            "prefix": sys.prefix,
            "base_prefix": getattr(sys, "base_prefix", sys.prefix),
            "is_venv": sys.prefix != getattr(sys, "base_prefix", sys.prefix),
            "soabi": sysconfig.get_config_var("SOABI"),
            "platform_tag": facts["platform_tag"],
            "site_packages": sp,
        },
        "marker_environment": marker_environment(facts),
        "platform": platform_document(facts),
        "pip_version": pip[0] if pip else None,
        "distributions": dists,
        "cuda": cuda_facts(seen_site_dirs(sp)),
        "state": stacksync_state(),
    }


def load_cuda_module():
    """``probe_cuda.py`` from this folder. ``-I`` leaves the script's folder off ``sys.path``: it is put
    first for this one import and taken off again, so no module of the target is shadowed by ours."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    try:
        import probe_cuda
    finally:
        sys.path.remove(here)
    return probe_cuda


def cuda_doc(argv):
    sp = site_packages()
    return load_cuda_module().document(argv, platform_facts(), sp, seen_site_dirs(sp))


def smoke_doc(names):
    return {"smoke": 1, "modules": [try_import(name) for name in names]}


# the order several commands run in: facts first, then the imports (which run the target's code)
ORDER = ("env", "cuda", "smoke")


def main(argv):
    """``COMMAND[+COMMAND...] [--json-out PATH] [ARGS]``: an unknown command exits 2 with the list."""
    commands = argv[0].split("+") if argv else []
    if not commands or any(c not in ORDER for c in commands):
        sys.stderr.write(f"usage: probe.py {{{','.join(ORDER)}}}[+...] [--json-out PATH] [ARGS]\n")
        sys.exit(2)
    path, args = json_out(argv[1:])
    torch_flag = [a for a in args if a == "--import-torch"]
    docs = {}
    for command in [c for c in ORDER if c in commands]:
        if command == "env":
            docs[command] = env_doc()
        elif command == "cuda":
            docs[command] = cuda_doc(args if len(commands) == 1 else torch_flag)
        else:
            docs[command] = smoke_doc(args if len(commands) == 1 else [a for a in args if a != "--import-torch"])
    emit(docs[commands[0]] if len(commands) == 1 else {"probes": 1, **docs}, path)


if __name__ == "__main__":
    main(sys.argv[1:])
