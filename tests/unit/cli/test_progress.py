"""The batch progress bar: drawn for batches on a terminal, absent otherwise."""

from __future__ import annotations

import io

from rich.console import Console

from nuseal.cli.progress import batch_progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_bar_when_stderr_is_not_a_terminal() -> None:
    stream = io.StringIO()
    with batch_progress(5, "Signing", stream=stream) as advance:
        advance("a.nupkg")
    assert stream.getvalue() == ""


def test_no_bar_for_a_single_package() -> None:
    stream = FakeTerminal()
    with batch_progress(1, "Signing", stream=stream) as advance:
        advance("a.nupkg")
    assert stream.getvalue() == ""


def test_bar_counts_the_batch_on_a_terminal() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=100, record=True)
    with batch_progress(3, "Verifying", console=console) as advance:
        for name in ("a.nupkg", "b.nupkg", "c.nupkg"):
            advance(name)
    text = console.export_text()
    assert "Verifying c.nupkg" in text
    assert "3/3" in text
