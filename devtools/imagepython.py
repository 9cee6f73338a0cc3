"""A real "image Python" made from this machine's interpreter: what an NGC container's system Python is to a
``--system-site-packages`` venv, without a container.

A venv made from a venv does not see the base venv's packages (its ``home`` is the base interpreter's
folder), so a stand-in image must be an interpreter *installation*. CPython finds its prefix from the
landmark ``lib/pythonX.Y/os.py`` next to its executable's folder, so a prefix folder holding

* ``bin/python3``: a copy of the real interpreter binary (a symlink would be followed back to its own
  prefix),
* ``lib/pythonX.Y/<entry>``: a symlink to each entry of the real standard library, except
* ``lib/pythonX.Y/site-packages``: a real, empty folder (the image's own site-packages), and
* ``lib/libpythonX.Y.so*``: links to the shared library, for a binary whose RUNPATH is ``$ORIGIN/../lib``

is an installation whose ``sys.prefix`` is that folder (:func:`make_image` checks it): ``pip --python
IMAGE install`` puts packages into its site-packages, ``IMAGE -m venv --system-site-packages`` makes a
venv that sees them. Used by tests/test_image_python.py and by devtools/gpu_check.py's rehearsal on a
host without a GPU.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import sysconfig
from pathlib import Path

from stacksync.core import runner

__all__ = ["ImageError", "make_image", "base_interpreter"]


class ImageError(RuntimeError):
    """The copied interpreter does not take the new folder as its prefix."""


def base_interpreter() -> Path:
    """The real interpreter binary behind the running Python (through a venv and its symlinks)."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    return Path(os.path.realpath(base))


def make_image(prefix: Path, *, python: Path | None = None) -> Path:
    """Make the image installation at ``prefix`` (see the module docstring) from ``python`` (default: the
    running one's base interpreter, whose standard library this process knows); returns its
    ``bin/python3``. Raises :class:`ImageError` when the copy's ``sys.prefix`` is not ``prefix``."""
    python = python or base_interpreter()
    xy = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    stdlib = Path(sysconfig.get_paths(vars={"installed_base": sys.base_prefix, "base": sys.base_prefix})["stdlib"])
    prefix = prefix.absolute()
    (prefix / "bin").mkdir(parents=True, exist_ok=True)
    lib = prefix / "lib" / xy
    lib.mkdir(parents=True, exist_ok=True)
    exe = prefix / "bin" / "python3"
    shutil.copy2(python, exe)
    for entry in stdlib.iterdir():
        if entry.name != "site-packages" and not (lib / entry.name).exists():
            (lib / entry.name).symlink_to(entry)
    (lib / "site-packages").mkdir(exist_ok=True)
    libdir = sysconfig.get_config_var("LIBDIR")
    for so in Path(libdir).glob(f"lib{xy}*.so*") if libdir else ():
        if not (prefix / "lib" / so.name).exists():
            (prefix / "lib" / so.name).symlink_to(so)
    found = runner.run([str(exe), "-I", "-c", "import json, sys, sysconfig; print(json.dumps([sys.prefix, "
                        "sys.base_prefix, sysconfig.get_paths()['purelib']]))"], check=False, env=_bare_env())
    if found.returncode != 0:
        raise ImageError(f"{exe}: the copied interpreter does not start: {found.stderr.strip()[-500:]}")
    got_prefix, got_base, purelib = json.loads(found.stdout)
    if Path(got_prefix) != prefix or Path(got_base) != prefix or Path(purelib) != lib / "site-packages":
        raise ImageError(f"{exe}: sys.prefix {got_prefix}, base {got_base}, purelib {purelib}: the copy did not "
                         f"take {prefix} as its prefix (no landmark {lib / 'os.py'}?)")
    return exe


def _bare_env() -> dict[str, str]:
    """The environment without the variables that point an interpreter elsewhere."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONPATH", "VIRTUAL_ENV")}
