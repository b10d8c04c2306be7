"""Nothing from outside controls the terminal: escape sequences and control
characters from a model's reply, a server's error, a backends file's lane
names or a recording reach no terminal and no CSV/Markdown/JSON output as
raw bytes, and Rich markup in names is shown, never interpreted — through the
real CLI (headless race, export to stdout, replay --headless, backends) and
the real TUI (Pilot screenshots), against a hostile server over loopback."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from hostile_server import ESCAPES, HostileServer
from test_no_key_leaks import cli
from thunderdome.recording.replay import load_recording

CONTROL = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]")
"""Any C0 control but tab and newline, DEL, or a C1 control (UTF-8 encoded)."""
EVIL_NAME = "[/x]\x1b]0;lane-title\x07[bold]"
"""A lane name with a markup closing tag that crashes Rich, an OSC title change and BEL."""


def assert_inert(blob: bytes, where: str) -> None:
    found = CONTROL.search(blob)
    assert found is None, f"{where}: raw control byte {found.group()!r} at {found.start()}: {blob[max(0, found.start() - 40):found.end() + 20]!r}"


@pytest.fixture(scope="module")
def server():
    with HostileServer() as s:
        yield s


def backends_file(folder: Path, url: str) -> Path:
    path = folder / "backends.yaml"
    path.write_text(
        "backends:\n"
        f'  - {{name: "[/x]\\e]0;lane-title\\a[bold]", kind: openai, url: "{url}/v1", model: echo}}\n'
        f'  - {{name: "deny\\e[2J", kind: openai, url: "{url}/v1", model: deny}}\n',
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def hostile_race(server, tmp_path_factory) -> tuple[Path, Path, dict[str, bytes]]:
    """One real headless race against the hostile server: (backends, recording, outputs)."""
    folder = tmp_path_factory.mktemp("hostile")
    backends, record, out = backends_file(folder, server.url), folder / "race.jsonl", folder / "out.json"
    code, shown = cli("race", "--backends", str(backends), "--task", "long-essay", "--headless", "--json", str(out),
                      "--record", str(record), "--max-tokens", "40")
    assert code == 0, shown.decode()
    return backends, record, {"race --headless": shown, "--json": out.read_bytes(), "recording": record.read_bytes()}


def test_the_hostile_server_really_sent_escapes(hostile_race):
    _, record, _ = hostile_race
    recording = load_recording(record)
    reply = "".join(e.text for e in recording.events if getattr(e, "type", "") == "token_delta")
    assert ESCAPES in reply  # the recording keeps the model's text exactly (JSON-escaped on disk)
    assert EVIL_NAME in [lane["name"] for lane in recording.header["backends"]]
    failed = next(e for e in recording.events if getattr(e, "type", "") == "lane_failed")
    assert "invalid credentials ␛]0;pwned-tit" in failed.reason  # a server's error text is made visible where it is read


def test_headless_race_json_and_recording_carry_no_raw_control_byte(hostile_race):
    for where, blob in hostile_race[2].items():
        assert_inert(blob, where)
    assert "[/x]␛]0;lane-title␇[bold]".encode() in hostile_race[2]["race --headless"]  # shown, literally


@pytest.mark.parametrize("fmt", ["json", "csv", "md"])
def test_export_to_stdout_carries_no_raw_control_byte(hostile_race, fmt):
    code, shown = cli("export", str(hostile_race[1]), "--format", fmt)
    assert code == 0
    assert_inert(shown, f"export {fmt}")
    assert "deny␛[2J".encode() in shown  # the lane name, visible


def test_replay_headless_carries_no_raw_control_byte(hostile_race):
    code, shown = cli("replay", str(hostile_race[1]), "--headless", "--json", "-")
    assert code == 0
    assert_inert(shown, "replay --headless")
    assert b"[/x]" in shown


def test_backends_and_tasks_listings_show_markup_and_escapes_literally(hostile_race):
    code, shown = cli("backends", "--backends", str(hostile_race[0]))
    assert code == 0, shown.decode()  # a lane named [/x] used to crash Rich's markup parser
    assert_inert(shown, "backends")
    assert "[/x]␛]0;lane-title␇[bold]".encode() in shown and "deny␛[2J".encode() in shown
    code, shown = cli("tasks")
    assert code == 0
    assert_inert(shown, "tasks")


async def test_tui_replay_of_the_hostile_race_paints_no_control_character(hostile_race, tmp_path):
    from thunderdome.tui.app import make_app
    from thunderdome.tui.screens.race import RaceScreen

    app = make_app(mode="replay", replay_path=hostile_race[1], speed=4.0, output_dir=str(tmp_path))
    async with app.run_test(size=(140, 44)) as pilot:
        deadline = time.monotonic() + 30
        while not (isinstance(app.screen, RaceScreen) and app.screen.over):
            assert time.monotonic() < deadline, "replay did not finish"
            await pilot.pause(0.05)
        await pilot.pause(0.3)
        svg = app.export_screenshot()
        await pilot.press("s")
        while app.last_screenshot is None:
            assert time.monotonic() < deadline, "no screenshot"
            await pilot.pause(0.05)
        saved = Path(app.last_screenshot).read_bytes()
    for where, blob in (("race screen", svg.encode()), ("saved screenshot", saved)):
        assert_inert(blob, where)
        text = blob.decode().replace("&#160;", " ")
        assert "[/x]" in text and "␛]0;pwned-title␇" in text  # the names and the reply, shown literally


def test_json_output_holds_no_raw_control_byte(tmp_path):
    """``--json`` text round-trips the name while every C0/C1 control is a ``\\u`` escape."""
    import json as _json

    from thunderdome.output.headless import write_json

    out = tmp_path / "r.json"
    name = "lane\x9b2J\x1b]0;t\x07"
    write_json({"lanes": [{"name": name}]}, str(out))
    data = out.read_bytes()
    assert not any(b < 0x20 and b != 0x0A for b in data) and "\x9b" not in data.decode("utf-8")
    assert _json.loads(data)["lanes"][0]["name"] == name


async def test_feedback_sent_to_a_model_is_painted_literally(tmp_path):
    """Command output told to the model (a ``FeedbackSent``) holding an OSC
    title change, a screen clear and an 8-bit CSI: recorded, replayed in the
    TUI, shown as text in the lane and never as a raw byte."""
    from test_record import two_turns

    from thunderdome.recording.record import Recorder
    from thunderdome.tui.app import make_app
    from thunderdome.tui.screens.race import RaceScreen

    record = tmp_path / "turns.jsonl"
    async with Recorder(record) as rec:
        for event in two_turns("stderr:\n\x1b]0;pwned-title\x07 \x1b[2J wiped \x9b31m red\n\nThat did not solve it."):
            rec(event)
    assert_inert(record.read_bytes(), "recording")
    app = make_app(mode="replay", replay_path=record, speed=16.0, output_dir=str(tmp_path), results_delay=30.0)
    async with app.run_test(size=(120, 40)) as pilot:
        deadline = time.monotonic() + 30
        while not (isinstance(app.screen, RaceScreen) and app.screen.over):
            assert time.monotonic() < deadline, "replay did not finish"
            await pilot.pause(0.05)
        await pilot.pause()
        svg = app.export_screenshot().encode()
        shown = app.screen.lanes["a"].stream.plain
    assert_inert(svg, "race screen")
    assert "  ␛]0;pwned-title␇ ␛[2J wiped �31m red" in shown.split("\n")
    assert "␛]0;pwned-title␇" in svg.decode().replace("&#160;", " ")
