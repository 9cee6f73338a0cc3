"""Build leases: one node builds a build key, the others wait for its wheel.

Several nodes syncing at once against one shared wheelhouse (an NFS or Lustre folder) all miss the
same key; without a lease each builds it (hours for flash-attn), the builds are not byte-identical,
and the last rename wins while the others fail pip's hash check. A lease is a file per key,
``<wheelhouse>/.leases/<short key>.lease``, holding one JSON document::

    {"host": "node07", "pid": 4242, "started": "2026-12-03T09:41:07Z", "what": "flash-attn 2.8.0.post2
     (key 9c1f0a2b3c4d)", "token": "<random>"}

How it is taken (safe on NFS, where ``O_EXCL`` was long unreliable): the document is written to a
temporary file in the same folder, then hard-linked to the lease name; ``link(2)`` is atomic and
fails when the name exists, and when an NFS reply is lost the link count of the temporary file (2)
says whether it worked. The body is therefore complete the moment the lease exists.

While the build runs a thread touches the lease every ``stale_after / 5`` seconds (its mtime is the
heartbeat). A lease is **stale**, and the next node takes it over, when it has not been touched for
``stale_after`` seconds (``STACKSYNC_LEASE_STALE_S``, default 300), or at once when it was taken on
this host by a process that no longer exists (a killed builder). A takeover goes through a second,
short-lived ``<lease>.takeover`` file taken the same way, so that two nodes never both remove a stale
lease and both build. Waiting is bounded by ``STACKSYNC_BUILD_WAIT_S`` (default 12 h).
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import os
import secrets
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from stacksync.core.errors import SyncError
from stacksync.core.fs import new_file_mode

__all__ = ["LEASE_DIR", "STALE_ENV", "WAIT_ENV", "Holder", "Lease", "LeaseBusy", "LeaseTimeout", "path_for",
           "read_holder", "stale_reason", "try_acquire", "acquire", "stale_after", "wait_limit", "busy_line"]

LEASE_DIR = ".leases"
STALE_ENV = "STACKSYNC_LEASE_STALE_S"
WAIT_ENV = "STACKSYNC_BUILD_WAIT_S"
DEFAULT_STALE_S = 300.0
DEFAULT_WAIT_S = 12 * 3600.0
#: how long a takeover file may live before another node removes it (its holder died mid-takeover)
TAKEOVER_STALE_S = 30.0


class LeaseBusy(SyncError):
    """Another node holds the build lease of a key (``--no-wait``), one line saying who since when."""

    exit_code = 1


class LeaseTimeout(LeaseBusy):
    """The build lease was still held when the wait limit ran out."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lease: what the lease file says, and when it was last touched (its mtime)."""

    host: str
    pid: int
    started: str
    what: str
    token: str
    touched: float

    def to_json(self) -> dict[str, object]:
        return {"host": self.host, "pid": self.pid, "started": self.started, "what": self.what,
                "token": self.token}


def _seconds(environ: Mapping[str, str], var: str, default: float) -> float:
    text = environ.get(var, "")
    try:
        value = float(text) if text else default
    except ValueError:
        raise SyncError(f"{var}={text!r}: not a number of seconds (fix: e.g. {var}={default:g})") from None
    if value <= 0:
        raise SyncError(f"{var}={text!r}: must be more than 0 seconds (fix: e.g. {var}={default:g})")
    return value


def stale_after(environ: Mapping[str, str] | None = None) -> float:
    """Seconds without a heartbeat after which a lease is taken over (``STACKSYNC_LEASE_STALE_S``)."""
    return _seconds(os.environ if environ is None else environ, STALE_ENV, DEFAULT_STALE_S)


def wait_limit(environ: Mapping[str, str] | None = None) -> float:
    """Seconds a sync waits for another node's build (``STACKSYNC_BUILD_WAIT_S``)."""
    return _seconds(os.environ if environ is None else environ, WAIT_ENV, DEFAULT_WAIT_S)


def path_for(root: Path, short: str) -> Path:
    """The lease file of key ``short`` in wheelhouse ``root``."""
    return Path(root) / LEASE_DIR / f"{short}.lease"


def read_holder(path: Path) -> Holder | None:
    """What the lease at ``path`` says; ``None`` when there is none. A body that cannot be read
    (written by something else) is a holder with unknown host and pid."""
    try:
        touched = path.stat().st_mtime
    except FileNotFoundError:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Holder(host=str(data["host"]), pid=int(data["pid"]), started=str(data["started"]),
                      what=str(data.get("what", "")), token=str(data["token"]), touched=touched)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return Holder(host="?", pid=0, started="?", what="", token="", touched=touched)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return True  # unknown: only the heartbeat can tell
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def stale_reason(holder: Holder, *, now: float, stale_s: float, host: str | None = None,
                 alive: Callable[[int], bool] = _pid_alive) -> str | None:
    """Why ``holder``'s lease may be taken over (``None``: it is live). Pure but for ``alive``."""
    idle = now - holder.touched
    if idle > stale_s:
        return f"no heartbeat for {idle:.0f} s (stale after {stale_s:g} s)"
    if holder.host == (host or socket.gethostname()) and not alive(holder.pid):
        return f"pid {holder.pid} on {holder.host} is gone"
    return None


def busy_line(path: Path, holder: Holder, *, now: float | None = None) -> str:
    """``flash-attn 2.8.0 (key 9c1f...) is being built by node07 pid 4242 since 09:41:07Z (heartbeat 3 s ago;
    lease <path>)``."""
    idle = (time.time() if now is None else now) - holder.touched
    what = holder.what or path.stem
    return (f"{what} is being built by {holder.host} pid {holder.pid} since {holder.started} (heartbeat "
            f"{max(idle, 0):.0f} s ago; lease {path})")


def _link_exclusive(path: Path, body: bytes) -> bool:
    """Create ``path`` holding ``body`` only when it does not exist (temporary file + ``link``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, new_file_mode())  # mkstemp's 0600 would hide who holds it from teammates
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            # NFS: the link may have been made while the reply was lost; the link count says so.
            if exc.errno not in (errno.EIO, errno.ETIMEDOUT, errno.ESTALE):
                raise
            return os.stat(tmp).st_nlink == 2
    finally:
        os.unlink(tmp)


class Lease:
    """A held lease. :meth:`release` (or leaving the ``with`` block) stops the heartbeat and removes
    the file when it is still this one's."""

    def __init__(self, path: Path, holder: Holder, heartbeat_s: float) -> None:
        self.path = path
        self.holder = holder
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(heartbeat_s,), daemon=True,
                                        name=f"lease-{path.name}")
        self._thread.start()

    def _mine(self) -> bool:
        now = read_holder(self.path)
        return now is not None and now.token == self.holder.token

    def _beat(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                if not self._mine():
                    self.lost = True  # taken over (this node was too slow to beat): the build goes on
                    return
                os.utime(self.path)
            except OSError:
                continue  # a transient NFS error: the next beat tries again

    def release(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            if self._mine():
                self.path.unlink()
        except OSError:
            pass

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _now_text() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def try_acquire(path: Path, what: str, *, stale_s: float, now: float | None = None) -> Lease | Holder:
    """Take the lease at ``path`` (or take over a stale one): the :class:`Lease`, or the live
    :class:`Holder` that has it."""
    token = secrets.token_hex(16)
    doc = {"host": socket.gethostname(), "pid": os.getpid(), "started": _now_text(), "what": what, "token": token}
    body = (json.dumps(doc, sort_keys=True) + "\n").encode("utf-8")
    beat = max(min(stale_s / 5, 30.0), 0.1)
    for _ in range(3):
        if _link_exclusive(path, body):
            return Lease(path, Holder(host=str(doc["host"]), pid=os.getpid(), started=str(doc["started"]), what=what,
                                      token=token, touched=time.time()), beat)
        holder = read_holder(path)
        if holder is None:
            continue  # released in between: try again
        if stale_reason(holder, now=time.time() if now is None else now, stale_s=stale_s) is None:
            return holder
        _take_over(path, holder)
    holder = read_holder(path)
    return holder if holder is not None else Holder("?", 0, "?", what, "", time.time())


def _take_over(path: Path, stale: Holder) -> None:
    """Remove ``stale``'s lease, under a takeover file so that only one node does it."""
    guard = path.with_name(path.name + ".takeover")
    try:
        if time.time() - guard.stat().st_mtime > TAKEOVER_STALE_S:
            guard.unlink(missing_ok=True)
    except FileNotFoundError:
        pass
    if not _link_exclusive(guard, f"{socket.gethostname()} {os.getpid()}\n".encode()):
        return  # another node is taking it over
    try:
        again = read_holder(path)
        if again is not None and again.token == stale.token and again.touched == stale.touched:
            path.unlink(missing_ok=True)
    finally:
        guard.unlink(missing_ok=True)


def acquire(path: Path, what: str, *, wait: bool, stale_s: float, timeout_s: float, poll_s: float = 1.0,
            ready: Callable[[], bool] | None = None, say: Callable[[str], None] | None = None) -> Lease | None:
    """Take the lease, waiting for its holder when ``wait``: the :class:`Lease`, or ``None`` when
    ``ready()`` (the wheel is in the wheelhouse now) became true while waiting. ``say`` gets the busy
    line once, then once a minute. Raises :class:`LeaseBusy` (not ``wait``) or :class:`LeaseTimeout`."""
    start = time.monotonic()
    said = -1e9
    while True:
        got = try_acquire(path, what, stale_s=stale_s)
        if isinstance(got, Lease):
            return got
        line = busy_line(path, got)
        if not wait:
            raise LeaseBusy(f"{line} (fix: wait for it: sync again without --no-wait)")
        if ready is not None and ready():
            return None
        waited = time.monotonic() - start
        if waited > timeout_s:
            raise LeaseTimeout(f"{line}; gave up after waiting {waited:.0f} s (fix: raise {WAIT_ENV}, or if that "
                               f"build is dead, remove {path})")
        if say is not None and time.monotonic() - said >= 60:
            say(f"deferred: waiting: {line}")
            said = time.monotonic()
        time.sleep(poll_s)


def mode_of(path: Path) -> int:
    """The permission bits of ``path`` (for tests and the writability checks)."""
    return stat.S_IMODE(path.stat().st_mode)
