"""Helpers for driving the Textual app with Pilot."""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable

from thunderdome.tui.screens.results import ResultsScreen

WAIT = 60.0  # a bound against hangs on a loaded CI machine; never a timing assertion


async def wait_for(pilot, condition: Callable[[], bool], what: str = "condition", timeout: float = WAIT) -> None:
    """Let the app run until ``condition()`` holds; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.02)


def results_shown(app) -> bool:
    """The results screen is current *and composed*: ``app.screen`` switches
    before the new screen's widgets are mounted, so a query right after the
    switch can find nothing."""
    return isinstance(app.screen, ResultsScreen) and bool(app.screen.query("#recording-note"))


def until(condition: Callable[[Any], bool]) -> Callable[[Any], Awaitable[None]]:
    """A ``run_before`` for ``snap_compare``: let the app run until
    ``condition(app)`` holds, then one more pause for the picture to settle."""

    async def run_before(pilot) -> None:
        deadline = time.monotonic() + 20
        while not condition(pilot.app):
            assert time.monotonic() < deadline, "the app never reached the state to photograph"
            await pilot.pause(0.05)
        await pilot.pause()

    return run_before
