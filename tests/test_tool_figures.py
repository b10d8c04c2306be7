"""Tool-mode figures reach every consumer: time to first tool call, time to
action, turns, model and tool time in the lane's info row, the results
screen, the headless summary and the exports; the call's command shows in the
lane's stream as it forms. Real races: the emulator over loopback HTTP, the
real CLI, the real app through Pilot; the figures checked against an
independent reducer over the recording."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from thunderdome.output.export import export_file
from thunderdome.core.metrics import Standings
from thunderdome.race.tasks import load_task
from thunderdome.recording.replay import load_recording
from thunderdome.core.specs import BackendSpec
from thunderdome.core.tool_figures import seconds, tool_line
from thunderdome.tui import numbers
from thunderdome.tui.app import make_app
from thunderdome.tui.screens.race import RaceScreen

sys.path.insert(0, str(Path(__file__).parent))
from _pilot import results_shown, wait_for  # type: ignore[import-not-found]

COMMAND = "echo 'Hello, Thunderdome!' > greeting.txt"


def backends(tmp_path: Path, protocol: str, agent: str = "tools") -> Path:
    path = tmp_path / "b.yaml"
    path.write_text(f"backends:\n  - {{name: a, kind: sim, profile: fast-local, protocol: {protocol}, agent: {agent}}}\n")
    return path


def race_cli(tmp_path: Path, protocol: str, agent: str = "tools") -> tuple[str, dict, Path]:
    out, rec = tmp_path / "out.json", tmp_path / "race.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "thunderdome", "race", "--backends", str(backends(tmp_path, protocol, agent)),
         "--task", "hello-file", "--headless", "--json", str(out), "--record", str(rec), "--time-scale", "0.1"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout + result.stderr, json.loads(out.read_text())["lanes"][0], rec


@pytest.mark.parametrize("protocol", ["openai", "anthropic", "responses", "ollama"])
def test_headless_summary_and_exports_carry_the_tool_figures(tmp_path: Path, protocol: str) -> None:
    stdout, lane, rec = race_cli(tmp_path, protocol)
    assert lane["status"] == "winner" and lane["ttftc_s"] is not None and lane["tta_s"] >= lane["ttftc_s"]
    assert lane["model_s"] > 0 and lane["tool_s"] is not None
    truth = Standings().apply_all(load_recording(rec).events)
    (s,) = truth.ranked(truth.finished_t)
    assert f"⚒ a: {tool_line(s)}" in stdout
    assert f"first call {seconds(s.ttftc_s)} · action {seconds(s.tta_s)} · 1 turn" in stdout

    row = next(csv.DictReader(io.StringIO(export_file(rec, "csv"))))
    for key in ("ttftc_s", "tta_s", "model_s", "tool_s"):
        assert float(row[key]) == lane[key]
    md = export_file(rec, "md")
    header = next(line for line in md.splitlines() if " lane " in line and line.startswith("|"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    values = [c.strip() for c in next(line for line in md.splitlines() if line.startswith("|") and "| a " in line).strip("|").split("|")]
    shown = dict(zip(cells, values))
    assert shown["1st call s"] == f"{lane['ttftc_s']:.3f}" and shown["action s"] == f"{lane['tta_s']:.3f}"
    assert shown["model s"] == f"{lane['model_s']:.3f}" and shown["tool s"] == f"{lane['tool_s']:.3f}"
    assert shown["turns"] == "1"
    assert "1st call: time from request sent to the first tool call's name" in md


def test_a_text_mode_race_shows_no_tool_figures(tmp_path: Path) -> None:
    stdout, lane, rec = race_cli(tmp_path, "openai", agent="text")
    assert lane["ttftc_s"] is None and "⚒" not in stdout
    md = export_file(rec, "md")
    assert "1st call" not in md and "action s" not in md
    assert next(csv.DictReader(io.StringIO(export_file(rec, "csv"))))["ttftc_s"] == ""


async def test_the_tui_shows_the_command_as_it_forms_and_the_tool_figures(tmp_path: Path) -> None:
    recording = tmp_path / "race.jsonl"
    spec = BackendSpec(name="a", kind="sim", profile="fast-local", model="fast-local", protocol="anthropic")
    app = make_app(mode="race", task=load_task("hello-file"), specs=[spec], recording_path=recording,
                   results_delay=1.0, emulator="thread", time_scale=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, RaceScreen)
        await wait_for(pilot, lambda: screen.over, what="race end")
        await pilot.pause()
        view = screen.lanes["a"]
        stream = view.stream.plain
        info = view.info.render().plain
        await wait_for(pilot, lambda: results_shown(app), what="results")
        note = app.screen.query_one("#recording-note").render().plain
        winner = app.screen.query_one("#winner-text").render().plain
        await pilot.press("q")

    truth = Standings().apply_all(load_recording(recording).events)
    (s,) = truth.ranked(truth.finished_t)
    assert f"$ {COMMAND}" in stream  # decoded from the streamed JSON arguments, not shown as JSON
    assert '{"command"' not in stream
    assert f"call {numbers.seconds(s.ttftc_s).strip()}" in info and f"act {numbers.seconds(s.tta_s).strip()}" in info
    assert f"model {numbers.seconds(s.model_s).strip()} / tool {numbers.seconds(s.tool_s).strip()}" in info
    assert f"⚒ a  {tool_line(s)}" in note
    assert f"action {numbers.seconds(s.tta_s).strip()}" in winner


def test_the_feed_shows_each_argument_fragment_as_command_text_made_visible() -> None:
    from thunderdome.core.events import ToolCallDelta, ToolCallDone, ToolCallStarted
    from thunderdome.tui.feed import TOOL, EventFeed

    feed = EventFeed(clock=lambda: 0.0)
    arguments = json.dumps({"command": "printf '\x1b]52;c;aGk=\x07' && ls"})
    fragments = [arguments[i: i + 5] for i in range(0, len(arguments), 5)]
    assert feed.feed_all([ToolCallStarted(t=0.1, lane="a", call_id="c", name="bash")]).text == {}
    shown = []
    for i, fragment in enumerate(fragments):
        frame = feed.feed_all([ToolCallDelta(t=0.2 + i / 100, lane="a", text=fragment)])
        shown += [text for channel, text in frame.text.get("a", []) if channel == TOOL]
    assert len(shown) > 5  # piece by piece, not at the end
    assert "".join(shown) == "$ printf '␛]52;c;aGk=␇' && ls"
    assert feed.series["a"].total == len(fragments)  # argument deltas are output on the chart
    done = feed.feed_all([ToolCallDone(t=0.5, lane="a", call_id="c", name="bash", arguments=arguments)])
    assert done.text["a"] == [(TOOL, "\n")]
    other = feed.feed_all([ToolCallDone(t=0.6, lane="a", turn=2, call_id="d", name="shell", arguments='{"argv": ["ls"]}')])
    assert other.text["a"] == [(TOOL, 'shell {"argv": ["ls"]}\n')]
