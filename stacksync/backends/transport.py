"""How stacksync's own HTTP requests travel: the transport settings pip honours (and ``runner`` passes on
to pip), so that the index client's requests go where pip's go.

* proxies: ``PIP_PROXY`` (pip's ``--proxy``, for http and https), else ``HTTP_PROXY`` / ``HTTPS_PROXY``;
  ``NO_PROXY`` hosts are asked directly;
* trust: ``PIP_CERT`` (a CA bundle) when set, else the system trust store through ``truststore`` when it
  is importable (what pip uses), else Python's default certificates; ``PIP_CLIENT_CERT`` (one PEM with
  the key and the certificate) for indexes that want a client certificate;
* credentials for an index URL without userinfo: netrc (``NETRC``, else ``~/.netrc``), then ``keyring``
  when importable and pip would ask it (``PIP_KEYRING_PROVIDER=import``, or the default ``auto`` without
  ``PIP_NO_INPUT``, as pip decides). Every password found is registered for masking.
"""

from __future__ import annotations

import functools
import netrc
import os
import ssl
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

from stacksync.core.errors import IndexUnavailable
from stacksync.core.redact import register_url, strip_credentials

__all__ = ["TransportSettings", "transport_settings", "opener", "stored_credentials"]


def stored_credentials(url: str) -> tuple[str, str] | None:
    """(user, password) for ``url``'s host from netrc (``NETRC`` or ``~/.netrc``), else from keyring
    when pip would ask it; ``None`` when neither has any. A netrc that cannot be read or parsed is
    skipped, as pip (requests) skips it."""
    host = urllib.parse.urlsplit(url).hostname
    if not host:
        return None
    path = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    if os.path.isfile(path):
        try:
            entry = netrc.netrc(path).authenticators(host)
        except (OSError, netrc.NetrcParseError):
            entry = None
        if entry is not None and entry[2]:
            return entry[0] or "", entry[2]
    return _keyring_credentials(url)


def _keyring_credentials(url: str) -> tuple[str, str] | None:
    provider = os.environ.get("PIP_KEYRING_PROVIDER", "auto").strip().lower() or "auto"
    no_input = os.environ.get("PIP_NO_INPUT", "").strip().lower() in ("1", "true", "yes", "on")
    # pip: with --no-input, the "auto" provider does not use keyring (a backend may prompt)
    if provider not in ("auto", "import") or (provider == "auto" and no_input):
        return None
    try:
        import keyring  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    bare = strip_credentials(url)
    try:
        for where in (bare, urllib.parse.urlsplit(bare).netloc):
            cred = keyring.get_credential(where, None)
            if cred is not None and cred.password:
                return cred.username or "", cred.password
    except Exception:  # noqa: BLE001 - any backend failure means "no credentials", as in pip
        return None
    return None


@dataclass(frozen=True)
class TransportSettings:
    """What the index client takes from the environment (read at each request: tests and long runs
    may change it). ``proxies``: scheme -> proxy URL."""

    proxies: tuple[tuple[str, str], ...]
    cafile: str | None
    client_cert: str | None


def transport_settings(environ: Mapping[str, str] | None = None) -> TransportSettings:
    """pip's transport settings: ``PIP_PROXY`` (a ``[user:password@]host:port``, for http and https)
    wins over ``HTTP_PROXY`` / ``HTTPS_PROXY`` (``NO_PROXY`` is applied per request by urllib);
    ``PIP_CERT``; ``PIP_CLIENT_CERT``."""
    env = os.environ if environ is None else environ
    proxies = dict(urllib.request.getproxies_environment()) if environ is None else {
        k[:-len("_proxy")].lower(): v for k, v in env.items()
        if v and k.lower() in ("http_proxy", "https_proxy", "all_proxy")}
    pip_proxy = (env.get("PIP_PROXY") or "").strip()
    if pip_proxy:
        if "://" not in pip_proxy:
            pip_proxy = f"http://{pip_proxy}"
        proxies["http"] = proxies["https"] = pip_proxy
    proxies.pop("no", None)
    for proxy in proxies.values():
        register_url(proxy)
    return TransportSettings(tuple(sorted(proxies.items())), env.get("PIP_CERT") or None,
                             env.get("PIP_CLIENT_CERT") or None)


def _ssl_context(settings: TransportSettings) -> ssl.SSLContext:
    """PIP_CERT when set (as pip), else the system trust store (truststore, as pip) when importable,
    else Python's default certificates; PIP_CLIENT_CERT loaded into it."""
    ctx: ssl.SSLContext
    if settings.cafile:
        if not os.path.exists(settings.cafile):
            raise IndexUnavailable(f"PIP_CERT={settings.cafile}: no such file (fix: point PIP_CERT at a CA bundle "
                                   "in PEM format, or unset it)")
        ctx = ssl.create_default_context(cafile=settings.cafile)
    else:
        try:
            import truststore  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            ctx = ssl.create_default_context()
        else:
            ctx = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if settings.client_cert:
        try:
            ctx.load_cert_chain(settings.client_cert)
        except (OSError, ssl.SSLError) as exc:
            raise IndexUnavailable(f"PIP_CLIENT_CERT={settings.client_cert}: cannot load it "
                                   f"({getattr(exc, 'strerror', None) or exc}) (fix: point PIP_CLIENT_CERT at one "
                                   "PEM file holding the private key and the certificate, as pip expects)") from None
    return ctx


@functools.lru_cache(maxsize=8)
def opener(settings: TransportSettings) -> urllib.request.OpenerDirector:
    """One opener per transport setting (the SSL context loads the trust store once)."""
    return urllib.request.build_opener(urllib.request.ProxyHandler(dict(settings.proxies)),
                                       urllib.request.HTTPSHandler(context=_ssl_context(settings)))
