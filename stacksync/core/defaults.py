"""Defaults in one place. Precedence everywhere: command-line argument > environment variable
(``STACKSYNC_*``) > profile (``stack.toml``) > these defaults.

Settings are read when a command runs, never at import: the functions below look at the environment
and the current directory each time they are called.

The *project folder* is where the user works: the folder holding ``locks/`` (found from the current
directory upwards) or ``$STACKSYNC_PROJECT``; never where stacksync is installed. The default target
venv (``.venv``), the download cache (``.stacksync-cache``) and the reports (``reports/``) live there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from stacksync.core.errors import EmptySetting, NoProjectFolder

PROJECT_ENV = "STACKSYNC_PROJECT"
LOCKS_ENV = "STACKSYNC_LOCKS_DIR"
PROFILE_ENV = "STACKSYNC_PROFILE"
CACHE_ENV = "STACKSYNC_CACHE_DIR"
REPORTS_ENV = "STACKSYNC_REPORTS_DIR"
WHEELHOUSE_ENV = "STACKSYNC_WHEELHOUSE"
BACKEND_ENV = "STACKSYNC_BACKEND"
#: every ``STACKSYNC_*`` setting that is read as a value (a name, a folder, a number of seconds). One set to
#: the empty string is refused (:func:`check_settings`): ``STACKSYNC_PROFILE="$PROFILE"`` with ``PROFILE``
#: unset in CI would otherwise mean the default profile, and a sync with ``-y`` would remove a twin's
#: packages for it. Test hooks (``STACKSYNC_NVIDIA_SMI``, where empty means none; ``STACKSYNC_LIBCUDA``,
#: ``STACKSYNC_PLATFORM``, ``STACKSYNC_FAULT*``, ``STACKSYNC_TRACE_NOOP``) are not settings.
VALUE_SETTINGS = (PROJECT_ENV, LOCKS_ENV, PROFILE_ENV, CACHE_ENV, REPORTS_ENV, WHEELHOUSE_ENV, BACKEND_ENV,
                  "STACKSYNC_PROBE_TIMEOUT", "STACKSYNC_SMOKE_TIMEOUT", "STACKSYNC_INDEX_TIMEOUT",
                  "STACKSYNC_HEARTBEAT_S", "STACKSYNC_LEASE_STALE_S", "STACKSYNC_BUILD_WAIT_S", "STACKSYNC_NOOP_STAMP")


def setting(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of setting ``name``; ``None`` when it is not set; :class:`EmptySetting` when it is set
    to an empty (or blank) value."""
    value = (os.environ if environ is None else environ).get(name)
    if value is None:
        return None
    if not value.strip():
        raise EmptySetting(name)
    return value


def check_settings(environ: Mapping[str, str] | None = None) -> None:
    """Refuse the first of :data:`VALUE_SETTINGS` that is set but empty (the CLI edge calls this before a
    task does anything)."""
    for name in VALUE_SETTINGS:
        setting(name, environ)
#: the profile a command uses when neither ``--profile`` nor ``$STACKSYNC_PROFILE`` names one
FALLBACK_PROFILE = "demo"
LOCKS = "locks"


def find_project_dir(start: Path | None = None) -> Path | None:
    """``$STACKSYNC_PROJECT``, else the nearest folder from ``start`` (default: the current directory)
    upwards that holds a ``locks/`` folder, else the folder holding ``$STACKSYNC_LOCKS_DIR``; ``None``
    when there is none."""
    given = setting(PROJECT_ENV)
    if given:
        return Path(given).absolute()
    here = (start or Path.cwd()).absolute()
    for folder in (here, *here.parents):
        if (folder / LOCKS).is_dir():
            return folder
    locks = setting(LOCKS_ENV)
    return Path(locks).absolute().parent if locks else None


def project_dir() -> Path:
    """The project folder (see the module docstring); :class:`NoProjectFolder` when there is none."""
    found = find_project_dir()
    if found is None:
        raise NoProjectFolder(Path.cwd())
    return found


def find_locks_dir() -> Path | None:
    """``$STACKSYNC_LOCKS_DIR``, else the project folder's ``locks/``; ``None`` without a project."""
    given = setting(LOCKS_ENV)
    if given:
        return Path(given)
    project = find_project_dir()
    return project / LOCKS if project is not None else None


def locks_dir() -> Path:
    """Where the profiles are: ``$STACKSYNC_LOCKS_DIR``, else ``<project>/locks``."""
    found = find_locks_dir()
    if found is None:
        raise NoProjectFolder(Path.cwd())
    return found


def new_locks_dir() -> Path:
    """Where a new profile is written: as :func:`locks_dir`, or ``./locks`` when there is no project yet
    (``freeze --profile NAME`` in an empty folder starts a project there)."""
    return find_locks_dir() or Path.cwd() / LOCKS


def profile_name() -> str:
    """The profile a command uses without ``--profile``: ``$STACKSYNC_PROFILE``, else ``demo``."""
    return setting(PROFILE_ENV) or FALLBACK_PROFILE


def default_venv() -> Path:
    """The target venv without ``--venv`` / ``--python``: ``<project>/.venv``."""
    return project_dir() / ".venv"


def cache_dir() -> Path:
    """Artifacts a sync downloads before touching the target (one folder per profile; gitignored):
    ``$STACKSYNC_CACHE_DIR``, else ``<project>/.stacksync-cache``."""
    given = setting(CACHE_ENV)
    return Path(given) if given else project_dir() / ".stacksync-cache"


def reports_dir() -> Path:
    """Where ``nox -s reproduce`` (and the benchmarks) write their JSON reports and summaries
    (gitignored): ``$STACKSYNC_REPORTS_DIR``, else ``<project>/reports``."""
    given = setting(REPORTS_ENV)
    return Path(given) if given else project_dir() / "reports"


# The probe run *inside* a target interpreter by path (standard library only; shipped in the wheel).
PROBE_SCRIPT = Path(__file__).resolve().parents[1] / "probes" / "probe.py"

# File names inside a profile folder locks/<name>/.
REQUIREMENTS_IN = "requirements.in"
STACK_TOML = "stack.toml"
LOCK_TXT = "requirements.txt"
DEFERRED_TXT = "deferred.txt"

# The build tag of a wheel stacksync built (``0ss<key>``): a build tag must start with a digit (PEP 427).
BUILD_TAG_PREFIX = "0ss"

# Packages that pip freeze hides and that a twin check shows apart.
INSTALLER_PACKAGES = frozenset({"pip", "setuptools", "wheel", "distribute"})

# Versions stacksync is known to work with (recorded in lock headers and reports).
SUPPORTED_PIP = "26.3"
SUPPORTED_PIP_TOOLS = "7.6.2"
