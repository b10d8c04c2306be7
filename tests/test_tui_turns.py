"""What a lane's stream shows of an agent's turns and of reasoning, through
the real app: a live Thunderdome race of a sim lane that is always wrong
(emulator over loopback HTTP, real sandbox), in tool and in text mode, and
its recording replayed; a scripted reasoning race. Colours are read from the
painted segments and compared by luminance, never by style names."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
from rich.color import Color
from rich.segment import Segment

from thunderdome.core import events as ev
from thunderdome.race.tasks import load_task
from thunderdome.recording.replay import load_recording
from thunderdome.sources.fixed import ListSource
from thunderdome.core.specs import BackendSpec
from thunderdome.tui.app import make_app
from thunderdome.tui.feed import TOOL, TURN
from thunderdome.tui.widgets.stream import TokenStream

sys.path.insert(0, str(Path(__file__).parent))
from _pilot import wait_for  # type: ignore[import-not-found]  # noqa: E402
from tui_scripted import long_race  # noqa: E402

TURN_RULE = "── turn 2 ─"
ANSWER_RULE = "── answer ─"


def luminance(color: Color) -> float:
    """WCAG relative luminance of a painted colour (0 black .. 1 white)."""
    def channel(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = color.get_truecolor()
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def painted(stream: TokenStream, index: int) -> list[Segment]:
    """Row ``index``'s segments as the screen gets them (the widget's own
    style applied), with visible text."""
    top = stream._window_top()
    assert top <= index < top + stream._height(), f"row {index} is not on screen"
    return [seg for seg in stream.render_line(index - top) if seg.text.strip() and seg.style is not None]


def row_luminance(stream: TokenStream, index: int) -> float:
    colors = {seg.style.color for seg in painted(stream, index)}
    assert len(colors) == 1 and None not in colors, colors
    return luminance(colors.pop())


def rows(stream: TokenStream) -> list[str]:
    return stream.plain.split("\n")


def first_row(stream: TokenStream, predicate) -> int:
    return next(i for i, row in enumerate(rows(stream)) if predicate(row))


def assert_turns_shown(stream: TokenStream, what: str) -> None:
    """One rule before turn 2, the feedback above it (dim), the answer bright."""
    text = rows(stream)
    assert sum(row.startswith(TURN_RULE) for row in text) == 1, stream.plain
    label = first_row(stream, lambda row: row.startswith(f"↳ {what} sent to the model"))
    rule = first_row(stream, lambda row: row.startswith(TURN_RULE))
    assert label < rule
    shown = text[label + 1 : rule]
    assert shown and all(row.startswith("  ") for row in shown if row)
    assert any("That did not solve the task" in row for row in shown), shown
    assert any("You have 1 more turn" in row for row in shown), shown
    answer = first_row(stream, lambda row: row.strip() and not row.startswith(("↳", "  ", "──")))
    bright = luminance(stream.rich_style.color)  # what answer text is painted in
    assert row_luminance(stream, answer) == pytest.approx(bright)
    for index in (label, label + 1, rule):
        assert row_luminance(stream, index) < bright * 0.6, (index, text[index])


def wrong_lane(agent: str) -> BackendSpec:
    return BackendSpec(name="wrong", kind="sim", profile="instant", model="instant", agent=agent,
                       options={"wrong_rate": 1.0})


@pytest.mark.parametrize(("agent", "what"), [("tools", "tool result"), ("text", "feedback")])
async def test_a_lanes_turns_are_apart_and_its_feedback_dim_live_and_replayed(tmp_path, agent, what):
    task = dataclasses.replace(load_task("hello-file"), max_turns=2)
    recording = tmp_path / "race.jsonl"
    app = make_app(mode="race", task=task, specs=[wrong_lane(agent)], recording_path=recording,
                   output_dir=str(tmp_path / "out"), results_delay=30.0, emulator="thread", time_scale=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.over, what="race end")
        await pilot.pause()
        stream = screen.lanes["wrong"].stream
        assert_turns_shown(stream, what)
        live = stream.plain
    assert [e.type for e in load_recording(recording).events].count("feedback_sent") == 1

    replay = make_app(mode="replay", replay_path=recording, speed=16.0, results_delay=30.0)
    async with replay.run_test(size=(120, 40)) as pilot:
        screen = replay.screen
        await wait_for(pilot, lambda: screen.over, what="replay end")
        await pilot.pause()
        stream = screen.lanes["wrong"].stream
        assert_turns_shown(stream, what)
        assert stream.plain == live


async def test_reasoning_is_dimmer_than_the_answer_and_the_answer_start_is_marked_once():
    events = long_race(until=1.4, reasoning=12, lanes=(("thinker", "cloud"),))
    spec = BackendSpec(name="thinker", kind="sim", profile="cloud", model="cloud")
    app = make_app(mode="race", task=load_task("long-essay"), specs=[spec],
                   source_factory=lambda t, s: ListSource(events, live=True), clock=lambda: 5.0)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: "thinker" in screen.lanes and screen.lanes["thinker"].stream.answer_chars > 40,
                       what="the answer")
        await pilot.pause()
        stream = screen.lanes["thinker"].stream
        text = rows(stream)
        assert sum(row.startswith(ANSWER_RULE) for row in text) == 1, stream.plain
        marker = first_row(stream, lambda row: row.startswith(ANSWER_RULE))
        reasoning = "".join(e.text for e in events if getattr(e, "channel", "") == "reasoning")
        assert " ".join(text[:marker]).split() == reasoning.split()  # the reasoning, then the marker
        assert text[marker + 1].strip()  # the answer follows at once, no blank row
        answer = row_luminance(stream, marker + 1)
        assert answer == pytest.approx(luminance(stream.rich_style.color))
        assert row_luminance(stream, 0) < answer * 0.6 and row_luminance(stream, marker) < answer * 0.6
        assert all(seg.style.italic for seg in painted(stream, 0))
        assert not any(seg.style.italic for seg in painted(stream, marker + 1))

        stream.extend([("answer", " more answer"), ("reasoning", " a late thought"), ("answer", " and more")])
        await pilot.pause()
        assert sum(row.startswith(ANSWER_RULE) for row in rows(stream)) == 1  # once per turn, not per switch
        stream.extend([(TURN, "2"), ("reasoning", "call a tool"), (TOOL, "$ ls\n"), ("answer", "listed")])
        await pilot.pause()
        text = rows(stream)
        assert sum(row.startswith(ANSWER_RULE) for row in text) == 2  # a tool call answers too
        assert text[-5].startswith("── turn 2 ─") and text[-4] == "call a tool" and text[-3].startswith(ANSWER_RULE)
        assert text[-2:] == ["$ ls", "listed"]
        await pilot.press("t")  # hidden reasoning: nothing to mark off
        await wait_for(pilot, lambda: not stream.show_reasoning, what="collapse")
        assert not any(row.startswith(ANSWER_RULE) for row in rows(stream))
        await pilot.pause()
        assert "reasoning hidden" in stream.render_line(0).text  # the placeholder: dim and italic too
        assert row_luminance(stream, 0) < answer * 0.6 and all(seg.style.italic for seg in painted(stream, 0))


def agent_race() -> list[ev.Event]:
    """A scripted first_correct lane that reasons, answers, is told it was
    wrong and starts turn 2 (cut there: the race is still running)."""
    lanes = ({"name": "thinker", "kind": "sim", "model": "cloud", "url": ""},)
    out: list[ev.Event] = [
        ev.RaceStarted(t=0.0, task="hello-file", kind="thunderdome", title="Create a file with exact content",
                       lanes=lanes, started_at="2025-01-01T12:00:00.000+00:00", isolation="bwrap",
                       win_rule="first_correct", max_tokens=256),
        ev.LaneStarted(t=0.001, lane="thinker"),
    ]
    t = 0.01
    for turn, (thought, command) in enumerate(
        [("The file must hold one line; echo adds the newline.", 'echo "Hello, Thunderdome" > greeting.txt'),
         ("The check wants the exclamation mark as well.", "echo 'Hello, Thunderdome!' > greeting.txt")], start=1):
        out.append(ev.RequestSent(t=t, lane="thinker", turn=turn))
        words = [(w, "reasoning") for w in thought.split(" ")] + [("\n\n```bash\n" + command + "\n```", "answer")]
        for k, (word, channel) in enumerate(words):
            t += 0.02
            text = word if k == 0 or channel == "answer" else " " + word
            out.append(ev.TokenDelta(t=t, lane="thinker", text=text, channel=channel, turn=turn))
        if turn == 2:
            break
        out += [
            ev.StreamEnded(t=t + 0.001, lane="thinker", turn=turn, finish_reason="stop"),
            ev.CommandExtracted(t=t + 0.002, lane="thinker", turn=turn, command=command),
            ev.ExecFinished(t=t + 0.05, lane="thinker", turn=turn, exit_code=0, duration=0.04),
            ev.Verdict(t=t + 0.06, lane="thinker", turn=turn, detail="greeting.txt: got 'Hello, Thunderdome'"),
            ev.FeedbackSent(t=t + 0.06, lane="thinker", turn=turn, text=(
                "Your command ran:\n```bash\n" + command + "\n```\n\nIt exited with code 0 after 0.04 s.\n\n"
                "That did not solve the task: greeting.txt: got 'Hello, Thunderdome'.\n\n"
                "You have 2 more turns. Reply with a corrected command in one ```bash code block.")),
        ]
        t += 0.07
    return out


class TestTurnsPicture:
    def test_reasoning_answer_feedback_and_turns(self, snap_compare):
        events = agent_race()
        task = dataclasses.replace(load_task("hello-file"), max_turns=3)
        spec = BackendSpec(name="thinker", kind="sim", profile="cloud", model="cloud")
        app = make_app(mode="race", task=task, specs=[spec], source_factory=lambda t, s: ListSource(events, live=True),
                       clock=lambda: 1000.0, results_delay=0.01)

        async def run_before(pilot) -> None:
            await wait_for(pilot, lambda: "thinker" in getattr(pilot.app.screen, "lanes", {})
                           and pilot.app.screen.feed.standings.events_seen == len(events)
                           and pilot.app.screen.feed.pending == 0, what="the scripted race")
            await pilot.pause()

        assert snap_compare(app, terminal_size=(100, 46), run_before=run_before)
