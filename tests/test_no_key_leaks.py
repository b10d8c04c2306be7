"""No API key, nor any 8-character piece of one, reaches anything a person or a
file can see — through the real CLI and the real TUI, against a hostile
server over loopback that echoes every credential it gets: split across the
reasoning and answer channels, straddling the error-text cut, from URL
userinfo and query parameters, and a key pasted where a variable name belongs."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from _pilot import results_shown, wait_for  # type: ignore[import-not-found]
from hostile_server import HostileServer, key_pieces

from thunderdome.config import load_backends
from thunderdome.race.tasks import load_task
from thunderdome.core.redact import REDACTED
from thunderdome.recording.replay import load_recording

KEY = "sk-hostile-SUFFIXKEY-0123456789"  # in HOSTILE_API_KEY: found by its name's suffix
PLAIN = "pl41nVALUE-4242-qwxzjkvb"  # in LANE_CREDENTIAL: known only as a backend's api_key_env
PASSWORD = "pa55word-Userinfo-777"
QUERY_KEY = "QUERYkey-abcdef-98765"
PASTED = "sk_live_PASTEDkey0123456789abc"  # a key typed as api_key_env's *name*
SECRETS = (KEY, PLAIN, PASSWORD, QUERY_KEY, PASTED)


def assert_no_piece(blob: bytes | str, where: str) -> None:
    data = blob.encode() if isinstance(blob, str) else blob
    for secret in SECRETS:
        for piece in key_pieces(secret):
            assert piece.encode() not in data, f"{where}: {piece!r} of a secret is visible"


@pytest.fixture(scope="module")
def server() -> Iterator[HostileServer]:
    with HostileServer() as s:
        yield s


@pytest.fixture
def keys(monkeypatch) -> dict[str, str]:
    monkeypatch.setenv("HOSTILE_API_KEY", KEY)
    monkeypatch.setenv("LANE_CREDENTIAL", PLAIN)
    return {"HOSTILE_API_KEY": KEY, "LANE_CREDENTIAL": PLAIN}


def backends_file(folder: Path, url: str) -> Path:
    host = url.removeprefix("http://")
    path = folder / "backends.yaml"
    path.write_text(
        "backends:\n"
        f"  - {{name: echo, kind: openai, url: '{url}/v1', model: echo, api_key_env: HOSTILE_API_KEY}}\n"
        f"  - {{name: deny, kind: openai, url: '{url}/v1', model: deny, api_key_env: LANE_CREDENTIAL}}\n"
        f"  - {{name: creds, kind: openai, url: 'http://bob:{PASSWORD}@{host}/v1?key={QUERY_KEY}', model: echo}}\n",
        encoding="utf-8",
    )
    return path


def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Run ``thunderdome ARGS`` as a user would; exit code and every byte of stdout + stderr."""
    full = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "COLUMNS")}
    full.update(env or {})
    done = subprocess.run([sys.executable, "-m", "thunderdome", *args], capture_output=True, env=full, timeout=120)
    return done.returncode, done.stdout + done.stderr


def test_cli_race_json_recording_exports_replay_and_backends_never_show_a_key(tmp_path, server, keys):
    backends = backends_file(tmp_path, server.url)
    record, out = tmp_path / "race.jsonl", tmp_path / "out.json"
    code, shown = cli("race", "--backends", str(backends), "--task", "long-essay", "--headless",
                      "--json", str(out), "--record", str(record), "--max-tokens", "40", env=keys)
    assert code == 0, shown.decode()
    outputs = {"race --headless": shown, "--json": out.read_bytes(), "recording": record.read_bytes()}
    for fmt in ("json", "csv", "md"):
        code, outputs[f"export {fmt}"] = cli("export", str(record), "--format", fmt, env=keys)
        assert code == 0
    code, outputs["replay --headless"] = cli("replay", str(record), "--headless", "--json", "-", env=keys)
    assert code == 0
    code, outputs["backends"] = cli("backends", "--backends", str(backends), env=keys)
    assert code == 0
    for where, blob in outputs.items():
        assert_no_piece(blob, where)
    # the server really echoed them: split across channels, and into the error text at the cut
    recording = load_recording(record)
    text = {"echo": "", "creds": ""}
    for event in recording.events:
        if getattr(event, "type", "") == "token_delta":
            text[event.lane] += event.text
    assert text["echo"].startswith("I was sent ") and REDACTED in text["echo"]
    assert text["creds"].count(REDACTED) == 2  # the URL's password and its query key
    failed = next(e for e in recording.events if getattr(e, "type", "") == "lane_failed")
    assert failed.lane == "deny" and "HTTP 401" in failed.reason and REDACTED in failed.reason
    assert "bob:" not in str(recording.header["backends"]) and QUERY_KEY[:8] not in str(recording.header)
    # the other outputs were about the same race (not empty)
    assert b"echo" in outputs["export md"] and b"deny" in outputs["replay --headless"]


def test_a_key_pasted_as_the_variable_name_is_never_printed(tmp_path, server):
    path = tmp_path / "pasted.yaml"
    path.write_text(f"backends:\n  - {{name: x, kind: openai, url: '{server.url}/v1', model: m, api_key_env: {PASTED}}}\n")
    code, race = cli("race", "--backends", str(path), "--task", "long-essay", "--headless")
    assert code == 2 and b"is not set" in race and REDACTED.encode() in race
    code, listing = cli("backends", "--backends", str(path))
    assert code == 0 and b"NOT SET" in listing
    assert_no_piece(race, "race error")
    assert_no_piece(listing, "backends")


@pytest.mark.parametrize("start", [20, 50, 70])
async def test_check_output_is_redacted_before_it_is_cut(keys, start):
    """A check's output is cut to 80 characters, a file's or stdout's to 60:
    a key starting anywhere before the cut leaves no piece of itself."""
    from thunderdome.race.checks import run_checks
    from thunderdome.sandbox import Sandbox, SandboxLimits, detect_isolation
    from thunderdome.core.specs import Check

    said = "x" * start + KEY + " and more"
    checks = [Check(kind="stdout_equals", value="42"), Check(kind="command", command=f"printf '{said}' >&2; exit 1")]
    async with Sandbox(limits=SandboxLimits(timeout=10), isolation=detect_isolation()) as box:
        res = await box.run(f"printf '{said}'")

        async def run(command: str):
            return await box.run(command)

        stdout_check = await run_checks(checks[:1], workdir=box.workdir, result=res, run=run)
        command_check = await run_checks(checks[1:], workdir=box.workdir, result=res, run=run)
    assert res.stdout == said and "got 'xxxx" in stdout_check.detail, stdout_check.detail
    assert "(exit 1): xxxx" in command_check.detail, command_check.detail
    for outcome in (stdout_check, command_check):
        assert_no_piece(outcome.detail, f"check detail with the key at {start}")



async def test_tui_race_screen_screenshots_and_exports_never_show_a_key(tmp_path, server, keys):
    from thunderdome.tui.app import make_app

    specs = load_backends(backends_file(tmp_path, server.url))
    task = dataclasses.replace(load_task("long-essay"), max_tokens=40, timeout=60)
    record = tmp_path / "tui.jsonl"
    app = make_app(mode="race", task=task, specs=specs, recording_path=record, output_dir=str(tmp_path / "out"),
                   results_delay=1.0)
    async with app.run_test(size=(140, 44)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: getattr(screen, "over", False), "race end")
        await pilot.pause(0.3)
        race_svg = app.export_screenshot()
        lanes = {name: view.stream.plain for name, view in screen.lanes.items()}
        await wait_for(pilot, lambda: results_shown(app), "results")
        await pilot.pause(0.3)
        await pilot.press("s")
        await wait_for(pilot, lambda: app.last_screenshot is not None, "screenshot")
        await pilot.press("e")
        await wait_for(pilot, lambda: len(app.last_export) == 2, "export")
        files = [Path(app.last_screenshot), *(Path(p) for p in app.last_export)]
    assert "I was sent" in lanes["echo"] and REDACTED in lanes["echo"]  # the key came, split, and was hidden
    assert_no_piece(race_svg, "race screen")
    for path in files:
        assert_no_piece(path.read_bytes(), path.name)
    assert_no_piece(record.read_bytes(), "recording")


async def test_the_token_widget_holds_a_possible_key_start_until_it_knows(keys):
    from textual.app import App, ComposeResult

    from thunderdome.tui.widgets.lane import LaneView

    class OneStream(App[None]):
        def compose(self) -> ComposeResult:
            yield LaneView("a", "#ffffff")

    app = OneStream()
    async with app.run_test(size=(60, 10)) as pilot:
        stream = app.query_one(LaneView).stream
        stream.extend([("reasoning", "I was sent "), ("reasoning", KEY[:10])])
        await pilot.pause()
        assert stream.plain.strip() == "I was sent"  # only the key's beginning waits
        stream.extend([("answer", KEY[10:] + " — ok, ask")])
        await pilot.pause()
        assert REDACTED in stream.plain and stream.plain.rstrip().endswith("ok, a")  # "sk" could begin it again
        assert_no_piece(stream.plain, "token widget")
        stream.release_held()  # the lane ended
        await pilot.pause()
        assert stream.plain.rstrip().endswith("ok, ask")


async def test_a_key_cut_by_a_turns_end_or_inside_the_feedback_is_never_painted(keys):
    """The answer's last piece begins a key and the turn ends there (the
    feedback follows): what was held is released redacted; a key in the
    feedback (command output) is redacted before its lines are cut."""
    from textual.app import App, ComposeResult

    from thunderdome.core.events import FeedbackSent, RequestSent, TokenDelta
    from thunderdome.tui.feed import EventFeed
    from thunderdome.tui.widgets.lane import LaneView

    class OneStream(App[None]):
        def compose(self) -> ComposeResult:
            yield LaneView("a", "#ffffff")

    feed = EventFeed()
    frame = feed.feed_all([
        TokenDelta(t=0.1, lane="a", text="I echo "),
        TokenDelta(t=0.2, lane="a", text=KEY[:12]),
        FeedbackSent(t=0.3, lane="a", text=f"stdout:\n{'x' * 230}{KEY}\n{KEY} said", role="tool"),
        RequestSent(t=0.4, lane="a", turn=2),
        TokenDelta(t=0.5, lane="a", text="a new reply", turn=2),
    ])
    app = OneStream()
    async with app.run_test(size=(80, 16)) as pilot:
        stream = app.query_one(LaneView).stream
        stream.extend(frame.text["a"])
        await pilot.pause()
        shown = stream.plain
    assert shown.startswith(f"I echo {REDACTED}\n↳ tool result sent to the model")
    assert "── turn 2 ─" in shown and f"{REDACTED} said" in shown
    assert_no_piece(shown, "a lane's turns")
