"""Installer backends: which one a run uses (:func:`resolve_name`, :func:`get_backend`).

A backend turns a request (resolve these inputs; download these pins; install this file into that
interpreter; sync that interpreter to these files) into argv lists and hands them to
:func:`stacksync.core.runner.run`, the only place that starts processes. The rest of stacksync decides
*what* to do (plans, filtered files, flags such as ``--only-binary``); a backend decides *how* its
tools spell it.

``pip-tools`` (pip-compile / pip-sync / pip, pinned together in pyproject.toml) is the default: it is
what the users' recipes use. ``uv`` is a faster backend behind the same methods. ``auto`` picks uv when
it is installed. Precedence: ``--backend`` > ``STACKSYNC_BACKEND`` > ``stack.toml`` ``backend`` >
``pip-tools``.

The interface is :class:`~stacksync.backends.base.Backend`; the backends are
:class:`~stacksync.backends.piptools.PipTools` and :class:`~stacksync.backends.uv.Uv`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from stacksync.core import defaults
from stacksync.core.errors import StacksyncError

if TYPE_CHECKING:
    from stacksync.backends.base import Backend

__all__ = ["get_backend", "reproduce_venv_backend", "resolve_name"]

BACKEND_ENV = defaults.BACKEND_ENV
KNOWN = ("pip-tools", "uv", "auto")


def resolve_name(cli: str | None, profile_backend: str | None) -> str:
    """The backend name after precedence (argument > env > profile > default), ``auto`` resolved."""
    name = cli or defaults.setting(BACKEND_ENV) or profile_backend or "pip-tools"
    if name not in KNOWN:
        raise StacksyncError(f"unknown backend {name!r} (fix: use one of {', '.join(KNOWN)})")
    if name == "auto":
        from stacksync.backends.uv import uv_executable  # lazy: start-up cost

        return "uv" if uv_executable() else "pip-tools"
    return name


# --- uv -----------------------------------------------------------------------------------------------

# pip option -> uv spelling, for the index options of IndexConfig.pip_args().
# sys_platform -> uv --python-platform for a target that is not this host (uv's own aliases).
# pip-compile's UNSAFE_PACKAGES: with --allow-unsafe they are pinned last, under this comment.
def reproduce_venv_backend(argv: Sequence[str], locks_dir: Path | None = None) -> str | None:
    """nox's ``venv_backend`` for ``nox -s reproduce``: ``"uv"`` when the stacksync backend resolves to
    uv for every selected profile (``-- --backend uv`` in ``argv``, ``STACKSYNC_BACKEND``, stack.toml
    ``backend``, ``auto``), else ``None`` (nox's default, or ``nox -db``). Read when the noxfile loads,
    before nox parses the session's posargs; a bad value is left for the session to report."""
    post = list(argv[list(argv).index("--") + 1:]) if "--" in argv else []
    cli: str | None = None
    names: list[str] = []
    for i, arg in enumerate(post):
        value = post[i + 1] if i + 1 < len(post) else ""
        if arg in ("--backend", "--profile"):
            cli, names = (value, names) if arg == "--backend" else (cli, [*names, value])
        elif arg.startswith(("--backend=", "--profile=")):
            key, _, value = arg.partition("=")
            cli, names = (value, names) if key == "--backend" else (cli, [*names, value])
    from stacksync.lock import profile as profile_mod

    try:
        chosen = {resolve_name(cli, profile_mod.load(n, locks_dir).backend)
                  for n in names or profile_mod.available(locks_dir)}
    except StacksyncError:
        return None
    return "uv" if chosen == {"uv"} else None

def get_backend(name: str) -> Backend:
    """The backend object for a resolved name (see :func:`resolve_name`)."""
    # lazy: start-up cost (a run imports the one backend it uses)
    if name == "pip-tools":
        from stacksync.backends.piptools import PipTools

        return PipTools()
    if name == "uv":
        from stacksync.backends.uv import Uv

        return Uv()
    raise StacksyncError(f"unknown backend {name!r} (fix: use one of {', '.join(KNOWN)})")
