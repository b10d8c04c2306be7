"""Presenter mode: the real app driven with Pilot.

``b`` and ``--big`` (``make_app(presenter=True)``) turn it on; it carries over
to the next race; the big figures are the values the normal lane header shows
at the same moment; a lane's first token flashes its panel (driven by the
feed's first-token fact, asserted by state, never by time); and every text
cell the presenter view paints has a WCAG contrast ratio >= 4.5:1, computed
from the colours the screen is actually painted with.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from rich.color import Color

from thunderdome.core import events as ev
from thunderdome.sources.fixed import ListSource
from thunderdome.core.specs import BackendSpec, TaskSpec
from thunderdome.tui.app import make_app
from thunderdome.tui.screens.race import RaceScreen
from thunderdome.tui.themes import PRESENTER_THEME, THEME
from thunderdome.tui.widgets.lane import LaneView
from thunderdome.tui.widgets.presenter import PresenterLane, PresenterView

sys.path.insert(0, str(Path(__file__).parent))
from _cells import cells, contrast_ratio, text_colors  # type: ignore[import-not-found]  # noqa: E402
from _pilot import wait_for  # type: ignore[import-not-found]  # noqa: E402
from tui_scripted import long_race, sigkill_race  # noqa: E402

SPECS = [BackendSpec(name="cloud", kind="sim", profile="cloud", model="cloud")]
LONG = TaskSpec(name="long-essay", title="essay", kind="long", user="-", max_tokens=1024)
SIGKILL = TaskSpec(name="sigkill", title="sigkill", kind="thunderdome", win_rule="last_standing", user="-", max_tokens=256)
WCAG_AA = 4.5


def scripted_app(events, *, live: bool = True, task: TaskSpec = LONG, **kw):
    return make_app(
        mode="race",
        task=task,
        specs=SPECS,
        source_factory=lambda t, s: ListSource(events, live=live),
        clock=lambda: 1000.0,
        results_delay=kw.pop("results_delay", 0.01),
        **kw,
    )


def shown(app, lanes: int = 3) -> bool:
    screen = app.screen
    return (
        isinstance(screen, RaceScreen)
        and screen.feed.standings.events_seen > 0
        and screen.feed.pending == 0
        and len(screen.lanes) == lanes
    )


def presenter_lanes(app) -> dict[str, PresenterLane]:
    return {lane.lane_name: lane for lane in app.screen.query(PresenterLane)}


def presenting(app, lanes: int = 3) -> bool:
    return shown(app, lanes) and len(presenter_lanes(app)) == lanes and all(
        lane.snapshot is not None and lane.region.area for lane in presenter_lanes(app).values()
    )


def in_presenter_mode(app) -> bool:
    screen = app.screen
    return (
        screen.has_class("-presenter")
        and screen.query_one(PresenterView).display
        and screen.query_one(PresenterView).region.area > 0
        and screen.query_one("#body").region.area == 0
        and app.theme == PRESENTER_THEME.name
    )


# -- on and off ---------------------------------------------------------------------


async def test_b_turns_presenter_mode_on_and_off():
    heard: list[RaceScreen.PresenterToggled] = []

    def hook(message) -> None:
        if isinstance(message, RaceScreen.PresenterToggled) and not any(m is message for m in heard):
            heard.append(message)

    app = scripted_app(long_race(until=12.3))
    async with app.run_test(size=(120, 36), message_hook=hook) as pilot:
        await wait_for(pilot, lambda: shown(app), "the race")
        assert not app.screen.has_class("-presenter") and app.theme == THEME.name
        assert app.screen.query_one("#body").region.area > 0
        await pilot.press("b")
        await wait_for(pilot, lambda: in_presenter_mode(app) and presenting(app), "presenter mode")
        assert [m.on for m in heard] == [True] and app.presenter
        await pilot.press("b")
        await wait_for(pilot, lambda: not app.screen.has_class("-presenter") and app.theme == THEME.name, "normal mode")
        await pilot.pause()
        assert app.screen.query_one("#body").region.area > 0
        assert app.screen.query_one(PresenterView).region.area == 0
        assert [m.on for m in heard] == [True, False] and not app.presenter


async def test_big_flag_starts_in_presenter_mode_and_keeps_it_for_the_next_race():
    app = scripted_app(long_race(until=3.0), presenter=True)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: presenting(app) and in_presenter_mode(app), "presenter mode")
        first = app.screen
        await pilot.press("r")  # the next race screen the app starts
        await wait_for(pilot, lambda: isinstance(app.screen, RaceScreen) and app.screen is not first, "the rerun")
        await wait_for(pilot, lambda: presenting(app) and in_presenter_mode(app), "presenter mode on the rerun")


async def test_presenter_mode_in_a_replay(tmp_path):
    from thunderdome.recording.record import Recorder

    path = tmp_path / "race.jsonl"
    recorder = Recorder(path)
    await recorder.start()
    for event in long_race():
        recorder(event)
    await recorder.close()
    app = make_app(mode="replay", replay_path=path, speed=16.0, presenter=True, results_delay=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RaceScreen) and app.screen.feed.finished is not None, "the replay's end")
        await wait_for(pilot, lambda: in_presenter_mode(app) and presenting(app), "presenter mode")
        figures = {name: lane.figures["tps"].digits.value for name, lane in presenter_lanes(app).items()}
        assert figures == {"cloud": "208.0", "dgx-spark": "42.9", "rtx4090": "8.7"}
        await pilot.press("b")  # not in a replay's full footer, but bound
        await wait_for(pilot, lambda: not app.screen.has_class("-presenter") and app.theme == THEME.name, "normal mode")


# -- the same figures as the normal view ----------------------------------------------


@pytest.mark.parametrize("until", [1.0, 12.3, None])
async def test_big_figures_are_the_lane_headers_figures(until):
    app = scripted_app(long_race(until=until), live=until is not None, results_delay=3600)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: shown(app) and (until is not None or app.screen.feed.finished is not None), "the race")
        await pilot.pause()
        headers = {view.lane_name: view.header.build_rows(120)[1].plain for view in app.screen.query(LaneView)}
        await pilot.press("b")
        await wait_for(pilot, lambda: presenting(app), "presenter mode")
        for name, lane in presenter_lanes(app).items():
            header = headers[name]
            ttft, tps, elapsed = (lane.figures[key].digits.value for key in ("ttft", "tps", "elapsed"))
            if ttft == "-":
                assert "TTFT" not in header
            else:
                assert f"TTFT {ttft} s" in " ".join(header.split())
            assert (f"{tps} tok/s" if tps != "-" else "— tok/s") in header
            assert header.rstrip().endswith(f"{elapsed} s"), (header, elapsed)


# -- the first-token flash ------------------------------------------------------------


async def test_a_lanes_first_token_flashes_its_panel_then_the_flash_ends():
    events = long_race(until=0.85)  # requests sent, no token yet
    app = scripted_app(events, presenter=True)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: presenting(app), "presenter mode")
        lanes = presenter_lanes(app)
        assert not any(lane.flashing for lane in lanes.values())
        first = next(e for e in long_race() if isinstance(e, ev.TokenDelta) and e.lane == "cloud")
        app.screen.feed.push(first)  # as the source thread would
        await wait_for(pilot, lambda: lanes["cloud"].flashing, "cloud's flash")
        assert lanes["cloud"].has_class("-flash")
        assert not lanes["dgx-spark"].flashing and not lanes["rtx4090"].flashing
        await wait_for(pilot, lambda: not lanes["cloud"].flashing, "the flash to end")
        assert not lanes["cloud"].has_class("-flash")
        assert lanes["cloud"].figures["ttft"].digits.value == "0.900"  # the figure stays


async def test_first_tokens_caught_up_on_later_do_not_flash():
    app = scripted_app(long_race(until=12.3), presenter=True)  # every first token is seconds old
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: presenting(app), "presenter mode")
        assert not any(lane.flashing for lane in presenter_lanes(app).values())


# -- contrast -------------------------------------------------------------------------


def test_contrast_ratio_matches_wcag_reference_values():
    white, black = Color.parse("#ffffff"), Color.parse("#000000")
    assert contrast_ratio(white, black) == pytest.approx(21.0)
    assert contrast_ratio(Color.parse("#777777"), white) == pytest.approx(4.48, abs=0.01)  # the classic just-failing grey
    assert contrast_ratio(Color.parse("#767676"), white) >= WCAG_AA


def low_contrast_cells(app) -> list[str]:
    """Every text cell of the presenter view under 4.5:1, described ('' chars and
    block elements (bars, the lane's colour strip) are not text)."""
    region = app.screen.query_one(PresenterView).region
    bad = []
    for x, y, char, style in cells(app, region):
        if not char.strip() or 0x2580 <= ord(char) <= 0x259F:
            continue
        fg, bg = text_colors(style)
        if fg is None or bg is None or style.dim:
            bad.append(f"{char!r} at {x},{y}: unresolved colour or dim ({style})")
            continue
        ratio = contrast_ratio(fg, bg)
        if ratio < WCAG_AA:
            bad.append(f"{char!r} at {x},{y}: {fg.name} on {bg.name} = {ratio:.2f}")
    return bad


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
@pytest.mark.parametrize(
    "race",
    [
        pytest.param(lambda: (long_race(until=12.3), LONG), id="streaming-finished"),
        pytest.param(lambda: (long_race(until=0.85, error_lane="rtx4090"), LONG), id="waiting-error"),  # no first token: no flash of its own
        pytest.param(lambda: (sigkill_race(), SIGKILL), id="winner-eliminated"),
    ],
)
async def test_every_presenter_text_cell_has_contrast_4_5(size, race):
    events, task = race()
    app = scripted_app(events, task=task, presenter=True, results_delay=3600)
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: presenting(app), "presenter mode")
        await pilot.pause()
        checked = sum(1 for _, _, c, _ in cells(app, app.screen.query_one(PresenterView).region) if c.strip())
        assert checked > 100  # the view painted its figures
        assert low_contrast_cells(app) == []
        for lane in presenter_lanes(app).values():  # the inverted, flashing panel too
            lane.flashing = True
        await wait_for(pilot, lambda: all(lane.has_class("-flash") for lane in presenter_lanes(app).values()), "the flash")
        await pilot.pause()
        assert low_contrast_cells(app) == []
