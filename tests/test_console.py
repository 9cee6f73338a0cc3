"""core/console: a result printed as it is, without making a rich console (start-up cost, issue 21)."""

from __future__ import annotations

import pytest

from stacksync.core import console


def test_result_is_written_as_is_and_makes_no_rich_console(capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "_made", {})
    console.result("  install   demo [bold]1.0[/bold] :smile:")
    console.result("target: x", err=True)  # --report -: the plan goes to stderr
    out, err = capsys.readouterr()
    assert out == "  install   demo [bold]1.0[/bold] :smile:\n" and err == "target: x\n"  # no markup, no emoji
    assert console._made == {}
    with console.out.capture() as captured:  # a caller's capture (the bench) still sees it
        console.result("in the capture")
    assert captured.get() == "in the capture\n" and capsys.readouterr().out == ""


def test_a_task_runs_with_the_collectors_thresholds() -> None:
    """cli.flags: every task runs with GC_THRESHOLDS (fewer passes over a sync's long-lived objects)."""
    import gc

    from invoke.config import Config
    from invoke.context import Context

    from stacksync.cli import flags

    seen: list[tuple[int, ...]] = []

    @flags.task
    def probe_thresholds(c: Context) -> None:
        seen.append(gc.get_threshold())

    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        probe_thresholds(Context(Config()))
    finally:
        gc.set_threshold(*before)
    assert seen == [flags.GC_THRESHOLDS]
