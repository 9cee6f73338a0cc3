"""Signs of life (issue 21): a watched command's heartbeat and log, the download meter's line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from stacksync.core import console, runner
from stacksync.core.progress import DownloadMeter, Heartbeat, human_bytes, human_seconds, interval


def test_a_watched_command_shows_a_heartbeat_and_keeps_its_log(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "logs" / "build.log"
    script = "import sys, time\nfor i in range(3):\n    print('step', i, flush=True); time.sleep(0.6)\n" \
             "print('to stderr', file=sys.stderr)\n"
    with runner.watching(Heartbeat("deferred: building standin", log=log, every=0.3)):
        result = runner.run([sys.executable, "-c", script])
    err = capsys.readouterr().err
    beats = [ln for ln in err.splitlines() if ln.startswith("deferred: building standin: ")]
    assert beats and any(", last: step" in ln for ln in beats), err
    assert result.stdout == "step 0\nstep 1\nstep 2\n" and result.stderr == "to stderr\n"  # still captured
    assert sorted(log.read_text().splitlines()) == ["step 0", "step 1", "step 2", "to stderr"]


def test_quiet_silences_the_heartbeat(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    console.set_level("quiet")
    try:
        with runner.watching(Heartbeat("quiet build", every=0.2)):
            runner.run([sys.executable, "-c", "import time; print('x', flush=True); time.sleep(1)"])
    finally:
        console.set_level("normal")
    assert "quiet build" not in capsys.readouterr().err


def test_the_download_meter_counts_pips_lines() -> None:
    meter = DownloadMeter("fetch", files=4, every=3600)
    meter.line("Collecting six==1.16.0")
    meter.line("  Downloading six-1.16.0-py2.py3-none-any.whl (11 kB)")
    meter.line("  Downloading https://x/torch-2.4.0-cp311-cp311-linux_x86_64.whl (797.2 MB)")
    status = meter.status()
    assert status.startswith("fetch: 2/4 files, 797.2 MB, ") and "/s, ETA " in status
    meter.add(1000, finished=True)
    assert meter.status().startswith("fetch: 3/4 files, 797.2 MB")


def test_formatting_and_the_interval_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (human_bytes(512), human_bytes(1_500_000), human_bytes(3.2e9)) == ("512 B", "1.5 MB", "3.2 GB")
    assert (human_seconds(5), human_seconds(80), human_seconds(3700)) == ("5 s", "1 min 20 s", "1 h 01 min")
    monkeypatch.setenv("STACKSYNC_HEARTBEAT_S", "0.5")
    assert interval() == 0.5
    monkeypatch.setenv("STACKSYNC_HEARTBEAT_S", "soon")
    assert interval() == 10.0


class _Terminal:
    """A stand-in stderr that says it is a terminal (what live() asks)."""

    def isatty(self) -> bool:
        return True


def test_live_drawing_only_on_a_terminal_outside_ci_and_not_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 21: rich draws progress on a terminal; a CI job (``CI`` set), a pipe or ``-q`` gets plain lines
    (or none)."""
    from stacksync.core.progress import live

    assert not live({})  # pytest's captured stderr is no terminal
    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert live({}) and live({"CI": "false"}) and live({"CI": ""})
    assert not live({"CI": "true"}) and not live({"CI": "1"})
    console.set_level("quiet")
    try:
        assert not live({})
    finally:
        console.set_level("normal")


def test_off_a_terminal_the_lines_are_plain_and_rate_limited(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Not a TTY: plain heartbeat lines, at most one per interval (no redraws, no escape codes), and the
    download meter's one last line; rich is not needed for either."""
    script = "import time\nfor i in range(8):\n    print('step', i, flush=True); time.sleep(0.25)\n"
    with runner.watching(Heartbeat("deferred: building slow", every=1.0)):
        runner.run([sys.executable, "-c", script])
    with runner.watching(DownloadMeter("fetch", files=2, every=3600)) as meter:
        meter.line("  Downloading six-1.16.0-py2.py3-none-any.whl (11 kB)")
        meter.line("  Downloading a-1.0-py3-none-any.whl (2.0 MB)")
    err = capsys.readouterr().err
    beats = [ln for ln in err.splitlines() if ln.startswith("deferred: building slow: ")]
    assert 1 <= len(beats) <= 3, err  # ~2 s of output, one line a second at most
    fetch = [ln for ln in err.splitlines() if ln.startswith("fetch: ")]
    assert len(fetch) == 1 and fetch[0].startswith("fetch: 2/2 files, 2.0 MB, "), err
    assert "\x1b[" not in err and "\r" not in err
