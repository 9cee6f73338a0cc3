"""Installer backends: the one interface that ``compile`` and every sync phase go through.

A backend turns a request (resolve these inputs; download these pins; install this file into that
interpreter; sync that interpreter to these files) into argv lists and hands them to
:func:`stacksync.runner.run`, the only place that starts processes. The rest of stacksync decides
*what* to do (plans, filtered files, flags such as ``--only-binary``); a backend decides *how* its
tools spell it.

``pip-tools`` (pip-compile / pip-sync / pip, pinned together in pyproject.toml) is the default: it is
what the users' recipes use. ``uv`` is a faster backend behind the same methods. ``auto`` picks uv when
it is installed. Precedence: ``--backend`` > ``STACKSYNC_BACKEND`` > ``stack.toml`` ``backend`` >
``pip-tools``.

Sections below: selection, compile (resolve + hash), install / sync (target interpreters).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Protocol

from .errors import StacksyncError

__all__ = ["Backend", "PipTools", "get_backend", "resolve_name"]

BACKEND_ENV = "STACKSYNC_BACKEND"
KNOWN = ("pip-tools", "uv", "auto")


class Backend(Protocol):
    """What compile and the sync phases need from an installer toolchain."""

    name: str

    def versions(self) -> dict[str, str]:
        """Versions of the tools this backend runs (recorded in lock headers and reports)."""
        ...

    # compile and install / sync methods are declared in their sections below (see PipTools).


def uv_executable() -> str | None:
    """The uv binary: the one installed beside this interpreter (``pip install stacksync[uv]``), else
    one on PATH."""
    here = Path(sys.executable).parent / "uv"
    if here.is_file():
        return str(here)
    return shutil.which("uv")


def resolve_name(cli: str | None, profile_backend: str | None) -> str:
    """The backend name after precedence (argument > env > profile > default), ``auto`` resolved."""
    name = cli or os.environ.get(BACKEND_ENV) or profile_backend or "pip-tools"
    if name not in KNOWN:
        raise StacksyncError(f"unknown backend {name!r} (fix: use one of {', '.join(KNOWN)})")
    if name == "auto":
        return "uv" if uv_executable() else "pip-tools"
    return name


class PipTools:
    """pip-compile for resolving, pip for downloads and installs, pip-sync for the rest phase."""

    name = "pip-tools"

    def versions(self) -> dict[str, str]:
        from importlib.metadata import version

        return {"pip": version("pip"), "pip-tools": version("pip-tools")}

    # --- compile ----------------------------------------------------------------------------------

    # --- install / sync ---------------------------------------------------------------------------


def get_backend(name: str) -> Backend:
    """The backend object for a resolved name (see :func:`resolve_name`)."""
    if name == "pip-tools":
        return PipTools()
    raise StacksyncError(f"backend {name!r} is not available yet (fix: use --backend pip-tools)")
