"""Credentials: expand ``${VAR}`` references at run time, and redact them everywhere they are shown.

A credential must never reach a lock, a log line, an error message or a report, so every string
that leaves stacksync and may contain a URL goes through :func:`redact`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# scheme://user:password@host or scheme://token@host inside any text.
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s:]+(?::[^/@\s]*)?)@")


class MissingVariable(KeyError):
    """A ``${VAR}`` reference names an environment variable that is not set."""


def env_refs(value: str) -> list[str]:
    """The names of the ``${VAR}`` references in ``value``."""
    return _VAR.findall(value)


def expand(value: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace ``${VAR}`` with the variable's value; raise :class:`MissingVariable` when unset."""
    env = os.environ if environ is None else environ

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in env:
            raise MissingVariable(name)
        return env[name]

    return _VAR.sub(sub, value)


def redact(text: str) -> str:
    """``https://user:secret@host/x`` -> ``https://user:****@host/x``; a bare token becomes ``****``."""

    def sub(m: re.Match[str]) -> str:
        user, sep, _password = m.group("userinfo").partition(":")
        shown = f"{user}:****" if sep else "****"
        return f"{m.group('scheme')}{shown}@"

    return _USERINFO.sub(sub, text)


def strip_credentials(url: str) -> str:
    """The URL without any userinfo: what a lock may carry when a profile asks for its index lines."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=host))
