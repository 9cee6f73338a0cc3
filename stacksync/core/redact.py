"""Credentials: expand ``${VAR}`` references at run time, and redact them everywhere they are shown.

A credential must never reach a lock, a log line, an error message or a report, so every string
that leaves stacksync and may contain a URL goes through :func:`redact`. Two kinds of masking:

* URL shapes: the userinfo of ``scheme://user:password@host`` (whatever the password is);
* values: every value stacksync expands from a ``${VAR}`` (:func:`expand`) and every credential it
  holds (an index URL's userinfo, a netrc / keyring password, twine's password) is registered once
  (:func:`register_secret`) and masked wherever it appears, with or without a URL around it (an error
  text that quotes a file, a child's output, a receipt).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from urllib.parse import quote, unquote, urlsplit, urlunsplit

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# scheme://user:password@host or scheme://token@host inside any text.
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s:]+(?::[^/@\s]*)?)@")


MASK = "****"
# Values shorter than this are not registered: masking "1", "ab" or "dev" everywhere would make every
# message unreadable (and reveal the value by where the masks fall); such a value is no secret anyway.
MIN_SECRET_LENGTH = 4
_secrets: set[str] = set()
_secrets_lock = threading.Lock()  # the index client registers from its worker threads


def register_secret(value: str | None) -> None:
    """Mask ``value`` in all output from now on (with its percent-encoded and -decoded spellings, as
    a URL carries it). Values shorter than :data:`MIN_SECRET_LENGTH` are ignored (see there)."""
    if not value:
        return
    forms = {value, unquote(value), quote(value, safe="")}
    with _secrets_lock:
        _secrets.update(f for f in forms if len(f) >= MIN_SECRET_LENGTH and f != MASK)


def register_url(url: str | None) -> None:
    """Register the credentials in a URL's userinfo: the password, or a bare token (``token@host``)."""
    if not url or "@" not in url:
        return
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    if parts.password:
        register_secret(parts.password)
    elif parts.username:
        register_secret(parts.username)


def register_refs(value: str, environ: Mapping[str, str] | None = None) -> None:
    """Register the values of the set variables that ``value``'s ``${VAR}`` references name (what a
    profile does when it loads, before anything is expanded or printed)."""
    env = os.environ if environ is None else environ
    for name in env_refs(value):
        register_secret(env.get(name))


def registered_secrets() -> frozenset[str]:
    """What is masked now (for tests and for children that must be told)."""
    with _secrets_lock:
        return frozenset(_secrets)


def forget_secrets() -> None:
    """Empty the registry (tests that run several profiles in one process)."""
    with _secrets_lock:
        _secrets.clear()


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
        register_secret(env[name])
        return env[name]

    return _VAR.sub(sub, value)


def redact(text: str) -> str:
    """``https://user:secret@host/x`` -> ``https://user:****@host/x``; a bare token becomes ``****``;
    every registered secret (:func:`register_secret`) becomes ``****`` wherever it appears."""

    def sub(m: re.Match[str]) -> str:
        user, sep, _password = m.group("userinfo").partition(":")
        shown = f"{user}:{MASK}" if sep else MASK
        return f"{m.group('scheme')}{shown}@"

    text = _USERINFO.sub(sub, text)
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)  # a longer secret first: it may hold a shorter one
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def shown_line(text: str, limit: int = 120) -> str:
    """A line quoted in a message: masked first (so a cut cannot leave half a secret readable), then
    cut to ``limit`` characters, control characters (a NUL-separated ``/proc/self/environ``) escaped."""
    masked = redact(text)
    cut = masked[:limit]
    cut = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in cut)[:limit]
    return cut + (f"... ({len(masked):,} characters)" if len(masked) > limit else "")


def strip_credentials(url: str) -> str:
    """The URL without any userinfo: what a lock may carry when a profile asks for its index lines."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=host))
