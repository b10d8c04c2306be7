"""What a frame costs Textual: a steady race asks for no layout, the stream
windows follow (or stay where the viewer wheeled them), and no full GC pass
runs while racing. Driven by a source the test feeds by hand, waiting on the
screen's frame counter (never on sleeps)."""

from __future__ import annotations

import gc
import threading
from typing import Any, Callable

from _pilot import results_shown, wait_for  # type: ignore[import-not-found]

from thunderdome.core import events as ev
from thunderdome.sources.base import RecordingStatus, ReplayControls
from thunderdome.core.specs import BackendSpec, TaskSpec
from thunderdome.tui import gc_policy
from thunderdome.tui.app import make_app
from thunderdome.tui.screens.race import RaceScreen

TASK = TaskSpec(name="frames", title="frames", kind="long", user="-", max_tokens=5000)
NAMES = [f"lane{i}" for i in range(8)]


class HandSource:
    """A live source whose events the test pushes itself."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: str | None = None
        self.recording: RecordingStatus | None = None
        self.controls: ReplayControls | None = None
        self.push: Callable[[ev.Event], None] | None = None

    def start(self, on_event: Callable[[ev.Event], None]) -> None:
        self.push = on_event

    def stop(self, timeout: float = 10.0) -> None:
        self.done.set()


def make(source: HandSource):
    specs = [BackendSpec(name=n, kind="sim", profile="instant") for n in NAMES]
    return make_app(mode="race", task=TASK, specs=specs, source_factory=lambda t, s: source, results_delay=0.05)


def start_race(push: Callable[[ev.Event], None]) -> None:
    lanes = tuple({"name": n, "kind": "sim", "model": "instant", "url": ""} for n in NAMES)
    push(ev.RaceStarted(t=0.0, task="frames", kind="long", title="frames", lanes=lanes, max_tokens=5000))
    for name in NAMES:
        push(ev.LaneStarted(t=0.0, lane=name))
        push(ev.RequestSent(t=0.0, lane=name))


def tokens(push: Callable[[ev.Event], None], t: float, count: int) -> None:
    for k in range(count):
        for name in NAMES:
            text = "\n" if k % 9 == 8 else f" w{k}"
            push(ev.TokenDelta(t=t + k * 1e-4, lane=name, text=text))


async def frames(pilot, screen: RaceScreen, count: int) -> None:
    target = screen._frames + count
    await wait_for(pilot, lambda: screen._frames >= target and screen.feed.pending == 0, f"{count} frames")


async def race_under_way(pilot, app, source: HandSource, count: int, frame_count: int = 2) -> RaceScreen:
    """The race started and every lane's first ``count`` tokens on screen
    (``frame_count`` frames drawn since): the race screen."""
    screen = app.screen
    assert isinstance(screen, RaceScreen)
    await wait_for(pilot, lambda: source.push is not None, "the source to start")
    assert source.push is not None
    start_race(source.push)
    tokens(source.push, 0.5, count)
    await frames(pilot, screen, frame_count)
    return screen


async def test_a_steady_race_asks_for_no_layout():
    source = HandSource()
    app = make(source)
    async with app.run_test(size=(200, 60)) as pilot:
        screen = await race_under_way(pilot, app, source, 20, 6)  # statuses change, the lanes fill up
        await pilot.pause()
        layouts: list[Any] = []
        original = screen._refresh_layout

        def counted(*args: Any, **kwargs: Any) -> Any:
            layouts.append(kwargs)
            return original(*args, **kwargs)

        screen._refresh_layout = counted  # type: ignore[method-assign]
        height = screen.lanes[NAMES[0]].stream.size.height
        for step in range(12):  # ~60 tokens a lane per frame: every window moves every frame
            tokens(source.push, 1.0 + step * 0.05, 60)
            await frames(pilot, screen, 1)
        await pilot.pause()
        assert layouts == [], f"{len(layouts)} layouts while streaming"
        stream = screen.lanes[NAMES[3]].stream
        assert stream.following and stream._row_count() > 3 * height
        shown = [stream.render_line(y).text.rstrip() for y in range(stream.size.height)]
        assert shown[-1].strip() and shown[-1].split()[-1] in stream.tail_lines(1)[0]
        assert "w59" in "".join(shown)  # the newest token is on screen


async def test_a_wheeled_back_stream_stays_put_and_follows_again_at_the_end():
    source = HandSource()
    app = make(source)
    async with app.run_test(size=(200, 60)) as pilot:
        screen = await race_under_way(pilot, app, source, 300)
        stream = screen.lanes[NAMES[0]].stream
        assert stream.scroll_rows(-5) and not stream.following
        before = [stream.render_line(y).text[:-1] for y in range(stream.size.height)]  # [-1]: the scrollbar
        tokens(source.push, 1.0, 200)
        await frames(pilot, screen, 2)
        assert [stream.render_line(y).text[:-1] for y in range(stream.size.height)] == before
        assert stream.scroll_rows(10_000) and stream.following
        last = stream.render_line(stream.size.height - 1).text
        assert last.strip() and last.split()[-1] in stream.tail_lines(1)[0]
        assert not stream.scroll_rows(1)  # already at the newest row


async def test_the_wheel_scrolls_a_lanes_text_only_over_its_text():
    """The wheel over a lane's header leaves its text where it is; over the text it wheels it back."""
    from textual import events

    source = HandSource()
    app = make(source)
    async with app.run_test(size=(200, 60)) as pilot:
        screen = await race_under_way(pilot, app, source, 300)
        view = screen.lanes[NAMES[0]]
        stream = view.stream

        async def wheel(row: int) -> None:  # row: the screen row under the mouse
            x = view.content_region.x + 4
            app.post_message(events.MouseScrollUp(None, x, row, 0, -1, 0, False, False, False, x, row))
            await pilot.pause()

        await wheel(view.header.region.y)
        assert stream.following
        text_top = view.content_region.y + view.content_region.height - stream.size.height
        await wheel(text_top + 1)
        assert not stream.following


async def test_no_full_gc_pass_while_racing_and_all_given_back_after():
    threshold = gc.get_threshold()
    source = HandSource()
    app = make(source)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: source.push is not None, "the source to start")
        assert gc_policy.racing()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[2] >= gc_policy.RACING_GEN2_THRESHOLD
        start_race(source.push)
        tokens(source.push, 0.5, 50)
        for name in NAMES:
            source.push(ev.LaneFinished(t=1.0, lane=name, reason="stop"))
        source.push(ev.RaceFinished(t=1.0, winner=NAMES[0]))
        await wait_for(pilot, lambda: results_shown(app),
                       "the results")
        await wait_for(pilot, lambda: not gc_policy.racing(), "the collector given back after the results")
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == threshold
        assert screen.over


async def test_quitting_mid_race_gives_the_collector_back():
    threshold = gc.get_threshold()
    source = HandSource()
    app = make(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: source.push is not None, "the source to start")
        assert gc_policy.racing()
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, "quit")
    assert not gc_policy.racing()
    assert gc.get_threshold() == threshold and gc.get_freeze_count() == 0
