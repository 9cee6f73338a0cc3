"""Signs of life during long work (issue 21): a heartbeat for a command whose output is captured (a
deferred build: elapsed time and the last line it printed, its whole output kept in a log file), and
a download meter (files, bytes, rate, ETA).

On a terminal (stderr is a TTY, no ``CI`` variable set) they are drawn live with rich: the download as
a progress bar (percentage of the files, bytes, rate, ETA), the heartbeat as a status line redrawn each
second; rich is imported only then. Elsewhere (CI logs, a pipe, a file) lines are plain and
rate-limited: one per ``STACKSYNC_HEARTBEAT_S`` seconds (default 10), so a CI log gets a line every few
seconds, not a flood. ``-q`` silences both (:func:`stacksync.core.console.progress`); ``-v`` streams the
command's own output instead. :func:`stacksync.core.runner.run` feeds the lines and the ticks; nothing
here starts a process.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from stacksync.core import console

__all__ = ["HEARTBEAT_ENV", "Heartbeat", "DownloadMeter", "interval", "human_bytes", "human_seconds", "live"]

HEARTBEAT_ENV = "STACKSYNC_HEARTBEAT_S"
DEFAULT_INTERVAL = 10.0


def interval() -> float:
    """Seconds between two progress lines (``STACKSYNC_HEARTBEAT_S``; a bad value: the default)."""
    try:
        value = float(os.environ.get(HEARTBEAT_ENV, "") or DEFAULT_INTERVAL)
    except ValueError:
        return DEFAULT_INTERVAL
    return value if value > 0 else DEFAULT_INTERVAL


def live(environ: Any = None) -> bool:
    """Whether progress is drawn live (rich): stderr is a terminal, ``CI`` is not set (CI systems
    set it; some give a pseudo-terminal whose redraws fill the log) and ``-q`` was not given."""
    env = os.environ if environ is None else environ
    if console.quiet() or env.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def human_seconds(s: float) -> str:
    s = int(round(s))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


class Heartbeat:
    """What a watched command shows: every :func:`interval` seconds one line ``LABEL: 1 min 20 s,
    last: <its last output line>``; every line also goes to ``log`` (kept; named when the command fails)."""

    def __init__(self, label: str, log: Path | None = None, every: float | None = None) -> None:
        self.label = label
        self.log_path = log
        self.every = every if every is not None else interval()
        self.last = ""
        self._lock = threading.Lock()
        self._log: IO[str] | None = None
        self._start = time.monotonic()
        self._shown = self._start
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(log, "w", encoding="utf-8", errors="replace")  # closed in close()
        self._display: Any = self._start_display() if live() else None

    def _start_display(self) -> Any:
        """The live status line (rich, lazy: start-up cost)."""
        status = console.err.status(self.status(), spinner="dots")
        status.start()
        return status

    def _redraw(self) -> None:
        self._display.update(self.status())

    def line(self, text: str) -> None:
        """One line of the command's output (called from its reader threads)."""
        with self._lock:
            if self._log is not None:
                self._log.write(text if text.endswith("\n") else text + "\n")
            stripped = text.strip()
            if stripped:
                self.last = stripped
        if self._display is not None:
            self._redraw()

    def tick(self) -> None:
        """Called about once a second while the command runs: redraws the live display, or shows a
        plain line when one is due."""
        now = time.monotonic()
        if self._display is not None:
            self._redraw()
        elif now - self._shown >= self.every:
            self._shown = now
            console.progress(self.status(now))

    def status(self, now: float | None = None) -> str:
        elapsed = (now if now is not None else time.monotonic()) - self._start
        with self._lock:
            last = self.last
        return f"{self.label}: {human_seconds(elapsed)}" + (f", last: {last[:160]}" if last else "")

    def close(self) -> None:
        with self._lock:
            if self._log is not None:
                self._log.close()
                self._log = None
            display, self._display = self._display, None
        if display is not None:
            display.stop()


# pip's lines while it downloads ("Downloading six-1.16.0-py2.py3-none-any.whl (11 kB)")
_PIP_DOWNLOADING = r"^\s*Downloading (?:\S+/)?(\S+) \(([\d.]+) (kB|MB|GB|B)\)"
_UNITS = {"B": 1, "kB": 1000, "MB": 1000**2, "GB": 1000**3}


class DownloadMeter(Heartbeat):
    """A heartbeat for downloads: ``fetch: 12/800 files, 1.2 GB, 35.0 MB/s, ETA 2 min 10 s``. Bytes come
    from :meth:`add` (an in-process download) or from pip's ``Downloading NAME (SIZE)`` lines; the ETA
    is by files left at the rate so far."""

    def __init__(self, label: str, files: int, log: Path | None = None, every: float | None = None) -> None:
        self.files = files
        self.done = 0
        self.bytes = 0.0
        self._closed = False
        self._task: Any = None
        super().__init__(label, log, every)

    def _start_display(self) -> Any:
        """A rich progress bar: the label, the bar and percentage of the files, then files, bytes, rate
        and ETA as the plain line gives them; cleared when done (the plain last line stays)."""
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn  # lazy: start-up cost

        bar = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                       TextColumn("{task.fields[info]}"), console=console.err, transient=True,
                       refresh_per_second=4)
        self._task = bar.add_task(self.label, total=max(self.files, 1), info=self._figures())
        bar.start()
        return bar

    def _redraw(self) -> None:
        with self._lock:
            done = self.done
        self._display.update(self._task, completed=min(done, self.files), info=self._figures())

    def finish(self, files: int, nbytes: int) -> None:
        """What is in the cache once the download ended (any backend): the final line's figures."""
        with self._lock:
            self.done, self.bytes = files, float(nbytes)

    def close(self) -> None:
        """The last line, whatever the interval: files, bytes, rate and time of the whole download."""
        super().close()
        if not self._closed:
            self._closed = True
            console.progress(self.status())

    def add(self, nbytes: int, finished: bool = False) -> None:
        with self._lock:
            self.bytes += nbytes
            self.done += 1 if finished else 0
        self.tick()

    def line(self, text: str) -> None:
        super().line(text)
        match = re.match(_PIP_DOWNLOADING, text)
        if match:
            with self._lock:
                self.done += 1
                self.bytes += float(match.group(2)) * _UNITS[match.group(3)]

    def status(self, now: float | None = None) -> str:
        return f"{self.label}: {self._figures(now)}"

    def _figures(self, now: float | None = None) -> str:
        elapsed = max((now if now is not None else time.monotonic()) - self._start, 1e-6)
        with self._lock:
            done, nbytes = self.done, self.bytes
        rate = nbytes / elapsed
        text = f"{done}/{self.files} files, {human_bytes(nbytes)}, {human_bytes(rate)}/s"
        if 0 < done < self.files:
            text += f", ETA {human_seconds(elapsed / done * (self.files - done))}"
        return text + f" ({human_seconds(elapsed)})"
