"""Defaults in one place. Precedence everywhere: command-line argument > environment variable
(``STACKSYNC_*``) > profile (``stack.toml``) > these defaults."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LOCKS_DIR = Path(os.environ.get("STACKSYNC_LOCKS_DIR", PROJECT_ROOT / "locks"))
DEFAULT_PROFILE = os.environ.get("STACKSYNC_PROFILE", "demo")
DEFAULT_VENV = PROJECT_ROOT / ".venv"
# Artifacts a sync downloads before touching the target (one folder per profile; gitignored).
CACHE_DIR = Path(os.environ.get("STACKSYNC_CACHE_DIR", PROJECT_ROOT / ".stacksync-cache"))
# Where `nox -s reproduce` (and the benchmarks) write their JSON reports and summaries (gitignored).
REPORTS_DIR = Path(os.environ.get("STACKSYNC_REPORTS_DIR", PROJECT_ROOT / "reports"))

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
