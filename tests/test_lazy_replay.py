"""A long recording is played as it is read: the replay screen shows its first
events before the file is read whole, the source never holds more than its
window, a restart is a new pass that replays identically, and a corrupt line
in the middle leaves the race so far on screen with a one-line error."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

import pytest
from _pilot import wait_for  # type: ignore[import-not-found]

from benchmarks.big_recording import write_recording
from thunderdome.cli import main
from thunderdome.core.events import Notice, RaceStarted
from thunderdome.recording.replay import RecordingStream, load_recording
from thunderdome.sources.replay import ReplaySource
from thunderdome.tui.app import make_app
from thunderdome.tui.screens.race import RaceScreen

WAIT = 30.0  # generous bound against hangs; never a timing assertion


@pytest.fixture(scope="module")
def long_file(tmp_path_factory) -> Path:
    """60k events, 8 lanes, a ~37 s race: far more than one read-ahead window."""
    return write_recording(tmp_path_factory.mktemp("lazy") / "long.jsonl", 60_000)


class Sink:
    def __init__(self, check: Callable[[], None] = lambda: None) -> None:
        self.events: list = []
        self.cond = threading.Condition()
        self.check = check

    def __call__(self, event) -> None:
        self.check()
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def wait_for(self, n: int) -> list:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.events) >= n, WAIT), f"only {len(self.events)} of {n} events"
            return list(self.events)




async def test_the_replay_screen_shows_events_before_the_file_is_read_whole(long_file):
    app = make_app(mode="replay", replay_path=long_file, speed=1.0)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        assert isinstance(screen, RaceScreen)
        await wait_for(pilot, lambda: any(view.stream.plain.strip() for view in screen.lanes.values()), "tokens shown")
        source = screen.source
        assert isinstance(source, ReplaySource) and source.stream is not None
        assert 0 < source.stream.progress < 1  # shown while most of the file is still unread
        assert len(screen.lanes) == 8 and not screen.failed
        assert source.peak_buffered <= source.window < 60_000
        await pilot.press("q")


def test_the_source_never_holds_more_than_its_window(long_file):
    holder: dict = {}

    def within_window() -> None:
        source = holder["source"]
        assert source.buffered <= source.window

    source = ReplaySource(RecordingStream(long_file), speed=1e9, paused=True, window=64)
    holder["source"] = source
    sink = Sink(within_window)
    source.start(sink)
    try:
        deadline = time.monotonic() + WAIT
        while source.buffered < 64:  # paused: the reader fills its window and waits
            assert time.monotonic() < deadline, "the window never filled"
            time.sleep(0.01)
        time.sleep(0.1)
        assert source.buffered == 64 and sink.events == [] and source.stream.progress < 1
        source.resume()
        assert source.at_end.wait(WAIT)
        assert sink.events == load_recording(long_file).events
        assert source.error is None and source.peak_buffered == 64
        assert source.recording is None or source.recording.final
    finally:
        source.stop()


def test_a_restart_is_a_new_pass_that_replays_identically(long_file, tmp_path):
    cut = tmp_path / "cut.jsonl"
    data = long_file.read_bytes()
    cut.write_bytes(data[: len(data) - 30])  # the last line cut mid-way: a notice ends each pass
    source = ReplaySource(RecordingStream(cut), speed=1e9, window=512)
    sink = Sink()
    source.start(sink)
    try:
        assert source.at_end.wait(WAIT)
        first = sink.wait_for(1)
        loaded = load_recording(cut)
        assert first[: len(loaded.events)] == loaded.events
        tail = first[len(loaded.events) :]
        assert all(isinstance(n, Notice) and n.level == "warning" for n in tail)
        assert [n.message for n in tail] == loaded.notices and loaded.notices
        source.restart()
        both = sink.wait_for(2 * len(first))
        assert isinstance(both[len(first)], RaceStarted) and both[len(first) :] == first
        assert source.restarts == 1 and source.peak_buffered <= 512
    finally:
        source.stop()


def test_read_progress_says_how_far_a_replay_held_up_by_its_file_has_read(long_file):
    source = ReplaySource(RecordingStream(long_file), speed=1e9)  # plays faster than the file reads
    seen: list[float] = []
    source.start(lambda event: None)
    try:
        while not source.at_end.is_set():
            progress = source.read_progress()
            if progress is not None:
                seen.append(progress)
            time.sleep(0.005)
        assert seen and all(0 <= p <= 1 for p in seen) and seen == sorted(seen)
        assert source.read_progress() is None  # read whole: nothing to say
    finally:
        source.stop()


async def test_a_corrupt_line_mid_way_shows_the_race_so_far_and_one_error_line(long_file, tmp_path):
    broken = tmp_path / "broken.jsonl"
    lines = long_file.read_text(encoding="utf-8").splitlines(keepends=True)
    middle = len(lines) // 2
    lines[middle] = '{"type": "token_delta", "t": \n'
    broken.write_text("".join(lines), encoding="utf-8")
    app = make_app(mode="replay", replay_path=broken, speed=16.0)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        source = screen.source
        source.set_speed(1e9)  # to the break at once
        await wait_for(pilot, lambda: screen.failed is not None, "the replay stops at the corrupt line")
        assert isinstance(app.screen, RaceScreen) and app.is_running  # the race stays on screen
        assert screen.feed.standings.events_seen == middle  # the middle - 1 events before the line, and its notice
        assert sum(len(v.stream.plain) for v in screen.lanes.values()) > 0
        errors = [w for w in screen.warnings if "corrupt line" in w]
        assert errors == [source.error] and "\n" not in errors[0] and "Traceback" not in errors[0]
        assert errors[0].startswith(f"{broken}:{middle + 1}: corrupt line")
        await pilot.press("q")


def test_tui_replay_refuses_a_bad_header_before_the_tui(tmp_path, capsys):
    path = tmp_path / "notes.jsonl"
    path.write_text('{"hello": 1}\n', encoding="utf-8")
    assert main(["replay", str(path)]) == 2
    assert "not a Thunderdome recording" in capsys.readouterr().err
