"""``invoke publish``: upload the wheelhouse's deferred-package wheels to the team index with twine.

Where to: ``--to URL`` > the profile's ``team_upload_url`` > its ``team_index`` without the trailing
``/simple`` (pypiserver and Artifactory take uploads there; devpi needs ``team_upload_url``, its
upload URL is not beside ``+simple``). URLs hold credentials only as ``${VAR}`` references; they are
expanded here, passed to twine as ``TWINE_USERNAME`` / ``TWINE_PASSWORD`` (never in an argv), and
every URL shown is redacted.

What: every wheelhouse wheel of one of the profile's deferred packages, except the files the team
index already lists (read first: pypiserver refuses twine's ``--skip-existing``). Each wheel's name
carries its build key as the build tag ``0ss<key>`` (:mod:`stacksync.build.wheelhouse`), which is how a
sync elsewhere finds it; the index's published sha256 is what that sync checks it against.
"""

from __future__ import annotations

import importlib.util
import sys
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from stacksync.backends import indexapi
from stacksync.build import wheelhouse
from stacksync.core import console, runner
from stacksync.core.errors import CommandFailed, IndexUnavailable, ProfileError, StacksyncError
from stacksync.core.redact import MissingVariable, expand, redact, register_secret, strip_credentials
from stacksync.lock import profile as profile_mod
from stacksync.lock import wheelrecord
from stacksync.lock.profile import Profile

__all__ = ["PublishError", "PublishResult", "upload_url", "listing_url", "publish"]


class PublishError(StacksyncError):
    exit_code = 1


@dataclass
class PublishResult:
    url: str  # redacted, credential-free
    uploaded: list[wheelhouse.Entry] = field(default_factory=list)
    already_there: list[wheelhouse.Entry] = field(default_factory=list)


def upload_url(prof: Profile, to: str | None) -> tuple[str, str]:
    """(URL with ``${VAR}`` references, where it came from) after precedence."""
    if to:
        return to, "--to"
    if prof.team_upload_url:
        return prof.team_upload_url, f"{prof.stack_toml}: team_upload_url"
    if prof.team_index:
        base = prof.team_index.rstrip("/")
        for suffix in ("/simple", "/+simple"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
        return base + "/", f"{prof.stack_toml}: team_index"
    raise ProfileError(prof.stack_toml, "team_index", "no team index to publish to",
                       'add team_index = "https://${USER}:${TOKEN}@host/simple" (or pass --to URL)')


def listing_url(prof: Profile, to: str | None) -> str:
    """The simple URL to read what the team index has: ``team_index``, else ``<upload URL>/simple/``."""
    if prof.team_index and not to:
        return prof.team_index
    return upload_url(prof, to)[0].rstrip("/") + "/simple/"


def _expand(value: str, where: str, environ: Mapping[str, str] | None) -> str:
    try:
        return expand(value, environ)
    except MissingVariable as exc:
        raise ProfileError(where, "", f"environment variable {exc.args[0]} is not set",
                           f"export {exc.args[0]}=... before running") from None


def _split(url: str) -> tuple[str, str | None, str | None]:
    parts = urllib.parse.urlsplit(url)
    user = urllib.parse.unquote(parts.username) if parts.username else None
    password = urllib.parse.unquote(parts.password) if parts.password else None
    register_secret(password)  # twine's password: masked in every line, even one twine prints
    return strip_credentials(url), user, password


def _upload_error(exc: CommandFailed, shown: str) -> PublishError:
    out = exc.output.lower()
    if "403" in out:
        return PublishError(f"team index {shown} refused the upload (HTTP 403: wrong password, or no upload "
                            "permission) (fix: check the variables its URL references)")
    if "401" in out:
        return PublishError(f"team index {shown} asks for credentials (HTTP 401) (fix: write them into the URL "
                            "as ${USER}:${TOKEN} references and export the variables)")
    if any(s in out for s in ("connection refused", "max retries", "failed to establish", "name or service")):
        return PublishError(f"team index {shown} is unreachable (fix: check the URL and that the server is up)")
    return PublishError(f"uploading to {shown} failed: {exc}")


def publish(profile_name: str, *, to: str | None = None, wheelhouse_dir: str | None = None,
            locks_dir: Path | None = None, dry_run: bool = False,
            environ: Mapping[str, str] | None = None) -> PublishResult:
    """Upload the profile's deferred wheels that the team index does not list yet; see the module
    docstring. ``dry_run`` lists what would be uploaded."""
    prof = profile_mod.load(profile_name, locks_dir)
    raw, where = upload_url(prof, to)
    url = _expand(raw, where, environ)
    bare, user, password = _split(url)
    shown = redact(bare)
    root = wheelhouse.resolve_dir(wheelhouse_dir, prof.wheelhouse, prof.folder)
    mine = [e for e in wheelhouse.entries(root) if e.package in prof.deferred_names]
    result = PublishResult(url=shown)
    if not mine:
        return result
    listed: set[str] = set()
    index = _expand(listing_url(prof, to), where, environ)
    for name in sorted({e.package for e in mine}):
        try:
            listed |= {f.filename for f in indexapi.project_files(index, name)}
        except indexapi.ProjectNotFound:
            continue
        except IndexUnavailable as exc:
            raise PublishError(f"{where}: {exc}") from None
    for entry in mine:
        wheelhouse.lookup(entry.digest, root)  # a changed file is refused before it leaves the machine
        (result.already_there if entry.wheel.name in listed else result.uploaded).append(entry)
    if dry_run:
        return result
    if not result.uploaded:
        _record(prof, result.already_there)
        return result
    if importlib.util.find_spec("twine") is None:
        raise StacksyncError("invoke publish: twine is not installed (fix: pip install 'stacksync[publish]')")
    env = runner.clean_env({"TWINE_NON_INTERACTIVE": "1",
                            **({"TWINE_USERNAME": user} if user else {}),
                            **({"TWINE_PASSWORD": password} if password else {})})
    console.info(f"publish: uploading {len(result.uploaded)} wheel(s) to {shown}")
    try:
        runner.run([sys.executable, "-m", "twine", "upload", "--non-interactive", "--disable-progress-bar",
                    "--repository-url", bare, *(e.wheel for e in result.uploaded)], env=env)
    except CommandFailed as exc:
        raise _upload_error(exc, shown) from None
    _record(prof, [*result.uploaded, *result.already_there])
    return result


def _record(prof: Profile, published: list[wheelhouse.Entry]) -> None:
    """Published wheels are the team's: their keys and sha256 go into the profile's wheels.txt, which
    is what a sync elsewhere checks a team index wheel against (never the index's own hash alone)."""
    recs = [wheelrecord.WheelRecord(e.package, e.version, e.digest, e.sha256, e.wheel.name) for e in published]
    if recs and wheelrecord.record(prof.folder, prof.name, recs):
        console.info(f"publish: recorded {len(recs)} wheel(s) in {prof.folder / wheelrecord.WHEELS_TXT} "
                     "(commit it with the locks)")
